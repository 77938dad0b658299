//! The box on the plant network, against real peers: a Mosquitto broker (Debian's, started here),
//! `mosquitto_sub` watching every topic, and a PLC played over Modbus TCP by pymodbus (an
//! independent client, `plant/modbus_plc.py`) that triggers every part through the trigger coil.
//! The operator's web page is open in headless Chromium (`plant/browser.py watch`) for the first
//! part of the run. The broker is stopped and restarted in the middle of the run, and the browser
//! is killed at the same moment.
//!
//! Checked: every verdict the PLC lines show is the same, in the same order, in the records, in
//! the Modbus registers and on MQTT (same part, verdict and score), and every verdict the page
//! showed is the same too; the broker's outage and the browser's death change nothing on the
//! lines and lose no MQTT message (none dropped: the queue holds them until the broker is back);
//! the status topic says online, then offline at the end.
//!
//! Needs `mosquitto`, `mosquitto_sub` (Debian: mosquitto, mosquitto-clients), pymodbus
//! (`runtime/line/tests/plant/requirements.txt`), and Chromium, chromedriver and Selenium (Debian:
//! chromium, chromium-driver; pip: selenium). Without them the test says so and passes, unless
//! `EDGE_AD_PLANT_TEST=required` (CI sets it). `EDGE_AD_PLANT_PARTS` sets the number of parts
//! (default 1000).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{calibrate_into, outputs, part, wait_for, Log};
use edge_ad_line::config::BoxConfig;
use image::RgbImage;
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn connectable(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The broker's program (Debian puts it in /usr/sbin, which a user's PATH may lack).
fn mosquitto() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

/// Whether the peers are installed; when one is missing the test is skipped unless required.
fn peers_missing() -> Option<String> {
    // Whether the program runs at all (the usage screens exit non-zero).
    let runs = |cmd: &str, args: &[&str]| {
        Command::new(cmd).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
    };
    let succeeds = |cmd: &str, args: &[&str]| {
        Command::new(cmd).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    };
    let missing: Vec<&str> = [
        ("mosquitto", runs(mosquitto(), &["-h"])),
        ("mosquitto_sub", runs("mosquitto_sub", &["--help"])),
        ("pymodbus", succeeds("python3", &["-c", "import pymodbus.client"])),
        ("chromium, chromedriver or selenium", common::browser_missing().is_none()),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(name, _)| name)
    .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// A Mosquitto broker on `port`, persisting sessions in `dir` (so a watcher's session survives a
/// restart), stopped with SIGTERM as a service manager would.
struct Broker {
    child: Option<Child>,
    conf: PathBuf,
    port: u16,
}

impl Broker {
    fn start(dir: &Path, port: u16) -> Self {
        let conf = dir.join("mosquitto.conf");
        // `user root`: run as root, mosquitto would switch to its own user and could not save here.
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nuser root\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut broker = Self { child: None, conf, port };
        broker.run();
        broker
    }

    fn run(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.conf.with_extension("log")).unwrap();
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(&self.conf)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        wait_for("the broker", Duration::from_secs(10), || connectable(self.port));
    }

    /// SIGTERM (the broker saves its sessions), then waits for it to end.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A child process killed when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What `mosquitto_sub -v` printed: (topic, payload) per message.
fn watched(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(t, p)| (t.to_string(), p.to_string())))
        .collect()
}

fn verdict_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["event"] == "verdict")
        .collect()
}

/// A score as the box computed it (f32), from JSON.
fn score(v: &Value) -> Option<u32> {
    v.as_f64().map(|s| (s as f32).to_bits())
}

#[test]
fn every_verdict_is_the_same_on_the_lines_modbus_and_mqtt_through_a_broker_restart() {
    if let Some(missing) = peers_missing() {
        assert_ne!(
            std::env::var("EDGE_AD_PLANT_TEST").as_deref(),
            Ok("required"),
            "EDGE_AD_PLANT_TEST=required but {missing} not installed"
        );
        eprintln!("skipped: {missing} not installed (apt-get install mosquitto mosquitto-clients; pip install -r runtime/line/tests/plant/requirements.txt)");
        return;
    }
    let parts: usize = std::env::var("EDGE_AD_PLANT_PARTS").ok().and_then(|p| p.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let shots: Vec<(String, RgbImage)> = (0..4).map(|k| (format!("shot-{k}.png"), part(k))).collect();
    std::fs::create_dir_all(root.join("replay")).unwrap();
    // Two good parts and two defective ones, replayed over and over.
    for (k, (_, shot)) in shots.iter().take(2).enumerate() {
        shot.save(root.join(format!("replay/{k}-good.png"))).unwrap();
        let mut defective = shot.clone();
        for y in 60..120 {
            for x in 80..150 {
                defective.put_pixel(x, y, image::Rgb([10, 10, 10]));
            }
        }
        defective.save(root.join(format!("replay/{k}-defective.png"))).unwrap();
    }
    calibrate_into(&root.join("site.calib"), &shots, true);

    let (broker_port, modbus_port, web_port) = (free_port(), free_port(), free_port());
    let mut broker = Broker::start(root, broker_port);
    let watch = root.join("watch.out");
    let watcher = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker_port.to_string(), "-t", "edge-ad/test/#", "-v", "-q", "1", "-c"])
        .args(["-i", "watcher"])
        .stdout(std::fs::File::create(&watch).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .map(Killed)
        .expect("mosquitto_sub starts");

    let config_path = root.join("box.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
[model]
calibration = "{r}/site.calib"
threads = 1

[source]
kind = "folder"
path = "{r}/replay"
repeat = true

[trigger]
kind = "modbus"

[plc]
chip = "/dev/in-memory"
ok = {{ line = 1 }}
ng = {{ line = 2 }}
ok_pulse_ms = 1
ng_pulse_ms = 1
deadline_ms = 20000

[modbus]
listen = "127.0.0.1:{modbus_port}"

[mqtt]
host = "127.0.0.1"
port = {broker_port}
prefix = "edge-ad/test"
client_id = "box-under-test"

[web]
listen = "127.0.0.1:{web_port}"

[counters]
path = "{r}/counters.json"

[records]
path = "{r}/records.jsonl"

[trust]
box_key = "{r}/box.key"
"#,
            r = root.display()
        ),
    )
    .unwrap();
    let service = common::Serving::start(&config_path);
    let log = service.log.clone();
    wait_for("the Modbus server", Duration::from_secs(30), || connectable(modbus_port));
    // The probes above were clients too: their connections end first, or one would hold a place.
    std::thread::sleep(Duration::from_millis(500));
    {
        // Clients beyond the limit are turned away (closed at once); the others stay served.
        use std::io::Read;
        let limit = edge_ad_line::plant::modbus::MAX_CLIENTS;
        let open: Vec<std::net::TcpStream> =
            (0..limit).map(|_| std::net::TcpStream::connect(("127.0.0.1", modbus_port)).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut extra = std::net::TcpStream::connect(("127.0.0.1", modbus_port)).unwrap();
        extra.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(extra.read(&mut [0u8; 8]).unwrap_or(usize::MAX), 0, "client {} is closed at once", limit + 1);
        drop(open);
        std::thread::sleep(Duration::from_millis(200));
    }

    // The page in a browser, up before the first part.
    wait_for("the web page", Duration::from_secs(30), || connectable(web_port));
    let page_rows = root.join("page.jsonl");
    let url = format!("http://127.0.0.1:{web_port}/");
    let profile = root.join("chromium");
    let mut browser = common::Browser::start(&["watch", &url, page_rows.to_str().unwrap()], &profile, Stdio::null());
    wait_for("the page in the browser", Duration::from_secs(120), || {
        std::fs::read_to_string(&page_rows).is_ok_and(|t| t.contains("loaded"))
    });

    let started = Instant::now();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plant/modbus_plc.py");
    let mut plc = Command::new("python3")
        .arg(&script)
        .args(["127.0.0.1", &modbus_port.to_string(), &parts.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the Modbus PLC");
    let plc_out = BufReader::new(plc.stdout.take().unwrap());
    let reader = std::thread::spawn(move || plc_out.lines().map_while(Result::ok).collect::<Vec<String>>());

    // A third of the way in, the broker goes away for a second and comes back.
    let records = root.join("records.jsonl");
    wait_for("a third of the parts", Duration::from_secs(600), || verdict_records(&records).len() >= parts / 3);
    let outage_from = verdict_records(&records).len();
    broker.stop();
    browser.kill();
    assert!(!browser.alive(), "the browser is gone");
    std::thread::sleep(Duration::from_secs(1));
    let outage_to = verdict_records(&records).len();
    broker.restart();

    let status = plc.wait().unwrap();
    let modbus: Vec<Value> = reader.join().unwrap().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(status.success(), "the Modbus PLC failed: {modbus:?}");
    let elapsed = started.elapsed();
    service.stop().expect("the service ends cleanly");

    // The lines: every OK or NG that went on, in order.
    let lines: Vec<&str> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(name, on)| *on && (*name == "ok" || *name == "ng"))
        .map(|(name, _)| if *name == "ok" { "OK" } else { "NG" })
        .collect();
    let records = verdict_records(&records);
    let (done, modbus) = modbus.split_last().unwrap();
    assert_eq!(done["done"], true);
    assert_eq!((lines.len(), records.len(), modbus.len()), (parts, parts, parts), "one verdict per part everywhere");
    for (i, ((line, record), reg)) in lines.iter().zip(&records).zip(modbus).enumerate() {
        assert_eq!((record["verdict"].as_str(), reg["verdict"].as_str()), (Some(*line), Some(*line)), "part {i}");
        assert_eq!(record["part"], reg["part"], "part {i}");
        assert_eq!(score(&record["score"]), score(&reg["score"]), "part {i}: the same score over Modbus");
        assert_eq!(record["late"], false);
    }
    // The page: every verdict it showed is the record's (same frame, verdict and score).
    let page: Vec<Value> = std::fs::read_to_string(&page_rows)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("part").is_some())
        .collect();
    assert!(!page.is_empty(), "the page showed no verdict before the browser was killed");
    let by_part: BTreeMap<u64, &Value> = records.iter().map(|r| (r["part"].as_u64().unwrap(), r)).collect();
    for row in &page {
        let record = by_part.get(&row["part"].as_u64().unwrap()).unwrap_or_else(|| panic!("{row} is not a part"));
        assert_eq!((&row["frame"], &row["verdict"]), (&record["frame"], &record["verdict"]), "{row} vs {record}");
        // The score to 4 places, or for a part that could not be scored, why.
        let shown = row["score"].as_str().unwrap();
        match record["score"].as_f64() {
            Some(score) => assert!((shown.parse::<f64>().unwrap() - score).abs() <= 5.1e-5, "{row} vs {record}"),
            None => assert_eq!(Some(shown), record["error"].as_str(), "{row} vs {record}"),
        }
    }
    let ok = lines.iter().filter(|v| **v == "OK").count();
    assert!(ok > 0 && ok < parts, "both verdicts occur: {ok} OK of {parts}");
    assert_eq!((done["ok"].as_u64(), done["ng"].as_u64()), (Some(ok as u64), Some((parts - ok) as u64)));
    assert_eq!(done["missed"], 0, "the PLC only triggered when READY");

    // MQTT: every record arrived (at least once; QoS 1 may repeat), with the same content.
    let counters = edge_ad_line::counters::Counters::read(&root.join("counters.json")).unwrap();
    assert_eq!(counters.mqtt_dropped, 0, "the queue held the outage");
    let mut seen: BTreeMap<u64, Value> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < parts && Instant::now() < deadline {
        for (_, payload) in watched(&watch).iter().filter(|(t, _)| t == "edge-ad/test/verdict") {
            let v: Value = serde_json::from_str(payload).expect("MQTT carries JSON");
            seen.insert(v["part"].as_u64().unwrap(), v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(watcher);
    let missing: Vec<u64> =
        records.iter().map(|r| r["part"].as_u64().unwrap()).filter(|p| !seen.contains_key(p)).collect();
    assert!(
        missing.is_empty(),
        "{} verdicts never reached MQTT (parts {:?}…; the broker was down between parts {outage_from} and {outage_to}); broker log:\n{}",
        missing.len(),
        &missing[..missing.len().min(20)],
        std::fs::read_to_string(root.join("mosquitto.log")).unwrap_or_default()
    );
    for record in &records {
        let m = &seen[&record["part"].as_u64().unwrap()];
        assert_eq!(m, record, "the MQTT message is the record");
    }
    let all = watched(&watch);
    let statuses: Vec<&str> = all.iter().filter(|(t, _)| t == "edge-ad/test/status").map(|(_, p)| p.as_str()).collect();
    assert!(statuses.len() >= 2 && statuses.first() == Some(&r#"{"status":"online"}"#), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&r#"{"status":"offline"}"#), "a clean stop says offline");
    assert!(all.iter().any(|(t, _)| t == "edge-ad/test/counters"), "counter snapshots are published");
    assert!(all.iter().any(|(t, p)| t == "edge-ad/test/event" && p.contains(r#""event":"ready""#)));
    eprintln!(
        "{parts} parts in {:.1} s ({:.1} ms a part) over Modbus; broker down and browser killed between parts \
         {outage_from} and {outage_to}; the page showed {} verdicts before",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / parts as f64,
        page.len()
    );
    assert!(outage_to > outage_from, "parts went on while the broker was away ({outage_from} → {outage_to})");
}

#[test]
fn without_a_broker_the_lines_go_on_and_every_message_is_counted_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let shots: Vec<(String, RgbImage)> = (0..4).map(|k| (format!("shot-{k}.png"), part(k))).collect();
    std::fs::create_dir_all(root.join("replay")).unwrap();
    for k in 0..12 {
        shots[k % 4].1.save(root.join(format!("replay/{k:02}.png"))).unwrap();
    }
    calibrate_into(&root.join("site.calib"), &shots, true);
    // Nothing listens on the broker's port; the queue holds 4 messages.
    let config_path = root.join("box.toml");
    std::fs::write(
        &config_path,
        format!(
            "[model]\ncalibration = \"{r}/site.calib\"\nthreads = 1\n[source]\nkind = \"folder\"\npath = \"{r}/replay\"\n\
             [trigger]\nkind = \"free-run\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nqueue = 4\n\
             [counters]\npath = \"{r}/counters.json\"\n[records]\npath = \"{r}/records.jsonl\"\n[trust]\nbox_key = \"{r}/box.key\"\n",
            r = root.display(),
            port = free_port()
        ),
    )
    .unwrap();
    let config = BoxConfig::load(&config_path).unwrap();
    let log: Log = Arc::default();
    edge_ad_line::service::serve_on(&config, &config_path, outputs(&log), None, &AtomicBool::new(false))
        .expect("the replay runs out and the service ends cleanly, broker or not");
    let counters = edge_ad_line::counters::Counters::read(&root.join("counters.json")).unwrap();
    assert_eq!(counters.ok + counters.ng, 12, "every part got its verdict: {counters:?}");
    assert_eq!(verdict_records(&root.join("records.jsonl")).len(), 12, "and its record");
    let records = std::fs::read_to_string(root.join("records.jsonl")).unwrap().lines().count() as u64;
    // Every record was offered to MQTT (and counter snapshots besides): none reached a broker,
    // so every one is counted, the overflow at once and the 4 queued at the stop.
    assert!(counters.mqtt_dropped >= records, "{} dropped of {records} records", counters.mqtt_dropped);
}
