//! The service in-process, over in-memory output pins: the PLC's view of a box that starts
//! without a calibration (safe state, triggers missed), becomes READY when one appears, pulses OK
//! for a good part and NG for a defective one, and ends in the safe state. (The same service
//! against the kernel's gpio-sim and vivid drivers: tests/hil/run.sh.)

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use common::{calibrate_into, levels, outputs, part, pulses, wait_for, Log};
use edge_ad_line::config::BoxConfig;
use image::RgbImage;

fn trigger(socket: &Path) {
    let mut s = UnixStream::connect(socket).expect("the trigger socket is up");
    s.write_all(b"trigger\n").unwrap();
}

#[test]
fn the_plc_sees_safe_state_then_ready_then_an_ok_and_an_ng_pulse() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let shots: Vec<(String, RgbImage)> = (0..4).map(|k| (format!("shot-{k}.png"), part(k))).collect();
    // The replay: a shot again (a good part for sure), then the same with a dark blot.
    std::fs::create_dir_all(root.join("replay")).unwrap();
    shots[1].1.save(root.join("replay/a-good.png")).unwrap();
    let mut defective = shots[1].1.clone();
    for y in 80..130 {
        for x in 90..140 {
            defective.put_pixel(x, y, image::Rgb([10, 10, 10]));
        }
    }
    defective.save(root.join("replay/b-defective.png")).unwrap();
    let config_path = root.join("box.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
[model]
calibration = "{root}/site.calib"
threads = 1

[source]
kind = "folder"
path = "{root}/replay"

[trigger]
kind = "socket"
path = "{root}/trigger.sock"

[plc]
chip = "/dev/in-memory"
ok = {{ line = 1 }}
ng = {{ line = 2 }}
ok_pulse_ms = 100
ng_pulse_ms = 100
deadline_ms = 20000

[counters]
path = "{root}/counters.json"

[records]
path = "{root}/records.jsonl"

[trust]
box_key = "{root}/box.key"
"#,
            root = root.display()
        ),
    )
    .unwrap();
    let service = common::Serving::start(&config_path);
    let log = service.log.clone();

    // No calibration yet: the safe state, and a trigger is missed (and pulsed as such).
    let socket = root.join("trigger.sock");
    wait_for("the trigger socket", Duration::from_secs(30), || socket.exists());
    wait_for("the calibration fault", Duration::from_secs(60), || {
        std::fs::read_to_string(root.join("records.jsonl")).is_ok_and(|r| r.contains("\"calibration\""))
    });
    let l = levels(&log);
    assert!(l["error"], "ERROR on without a calibration: {l:?}");
    for line in ["ready", "busy", "ok", "ng", "result_valid"] {
        assert!(!l[line], "{line} off in the safe state: {l:?}");
    }
    trigger(&socket);
    wait_for("the missed pulse", Duration::from_secs(10), || pulses(&log, "missed") == 1);

    // An unsigned calibration (copied in, or edited) is not one the box trusts: still the safe state.
    calibrate_into(&root.join("site.calib"), &shots, false);
    wait_for("the refusal", Duration::from_secs(60), || {
        std::fs::read_to_string(root.join("records.jsonl")).is_ok_and(|r| r.contains("unsigned"))
    });
    assert!(!levels(&log)["ready"] && levels(&log)["error"], "an unsigned calibration leaves the box safe");
    // The operator calibrates on the box (signed with its key): the box becomes READY by itself.
    calibrate_into(&root.join("site.calib"), &shots, true);
    wait_for("READY", Duration::from_secs(60), || levels(&log).get("ready") == Some(&true));
    assert!(!levels(&log)["error"]);

    // A good part: BUSY, then an OK pulse with RESULT-VALID, then READY again.
    trigger(&socket);
    wait_for("the OK pulse", Duration::from_secs(30), || pulses(&log, "ok") == 1);
    wait_for("READY after the pulse", Duration::from_secs(5), || levels(&log)["ready"]);
    assert_eq!(pulses(&log, "ng"), 0, "no NG for the good part");
    assert_eq!(pulses(&log, "busy"), 1);
    // A defective part: an NG pulse. The replay then runs out and the service stops by itself.
    trigger(&socket);
    wait_for("the NG pulse", Duration::from_secs(30), || pulses(&log, "ng") == 1);
    let result = service.join();
    result.unwrap();

    assert_eq!(pulses(&log, "ok"), 1);
    assert_eq!(pulses(&log, "result_valid"), 2, "each verdict strobed");
    let l = levels(&log);
    assert!(l["error"] && !l["ready"] && !l["busy"] && !l["ok"] && !l["ng"], "safe state on the way out: {l:?}");
    let records = std::fs::read_to_string(root.join("records.jsonl")).unwrap();
    let verdicts: Vec<serde_json::Value> = records
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "verdict")
        .collect();
    assert_eq!(verdicts.len(), 2, "{records}");
    assert_eq!((verdicts[0]["frame"].as_str(), verdicts[0]["verdict"].as_str()), (Some("a-good.png"), Some("OK")));
    assert_eq!((verdicts[1]["frame"].as_str(), verdicts[1]["verdict"].as_str()), (Some("b-defective.png"), Some("NG")));
}

#[test]
fn records_on_a_full_disk_are_counted_and_the_box_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let shots: Vec<(String, RgbImage)> = (0..4).map(|k| (format!("shot-{k}.png"), part(k))).collect();
    std::fs::create_dir_all(root.join("replay")).unwrap();
    for (k, (_, image)) in shots.iter().take(3).enumerate() {
        image.save(root.join(format!("replay/{k}.png"))).unwrap();
    }
    calibrate_into(&root.join("site.calib"), &shots, true);
    let config_path = root.join("box.toml");
    // /dev/full: every write fails with ENOSPC, as on a full disk.
    std::fs::write(
        &config_path,
        format!(
            "[model]\ncalibration = \"{r}/site.calib\"\nthreads = 1\n[source]\nkind = \"folder\"\npath = \"{r}/replay\"\n\
             [trigger]\nkind = \"free-run\"\ninterval_ms = 10\n[counters]\npath = \"{r}/counters.json\"\n\
             [records]\npath = \"/dev/full\"\n[trust]\nbox_key = \"{r}/box.key\"\n",
            r = root.display()
        ),
    )
    .unwrap();
    let config = BoxConfig::load(&config_path).unwrap();
    let log: Log = Arc::default();
    let stop = AtomicBool::new(false);
    edge_ad_line::service::serve_on(&config, &config_path, outputs(&log), None, &stop)
        .expect("the replay runs out and the service ends cleanly, records or not");
    let counters = edge_ad_line::counters::Counters::read(&root.join("counters.json")).unwrap();
    assert_eq!(counters.ok + counters.ng, 3, "every part got its verdict: {counters:?}");
    assert!(counters.records_dropped >= 3, "the lost records are counted: {counters:?}");
    assert_eq!(pulses(&log, "result_valid"), 3);
}

/// A verdict record: part, frame, verdict, score, error.
type Record = (u64, String, String, Option<f64>, Option<String>);

/// Free-run over the replay in `root` with `in_flight` parts at once: the verdict records in
/// record order, the OK/NG pulses in the order shown, and the counters (triggers, OK, NG).
fn free_run(root: &Path, in_flight: usize) -> (Vec<Record>, Vec<&'static str>, (u64, u64, u64)) {
    let config_path = root.join(format!("box-{in_flight}.toml"));
    let records = root.join(format!("records-{in_flight}.jsonl"));
    let counters = root.join(format!("counters-{in_flight}.json"));
    std::fs::write(
        &config_path,
        format!(
            "[model]\ncalibration = \"{r}/site.calib\"\nthreads = 1\n[source]\nkind = \"folder\"\npath = \"{r}/replay\"\n\
             [trigger]\nkind = \"free-run\"\ninterval_ms = 0\nin_flight = {in_flight}\n\
             [plc]\nchip = \"/dev/in-memory\"\nok = {{ line = 1 }}\nng = {{ line = 2 }}\nok_pulse_ms = 1\nng_pulse_ms = 1\n\
             [counters]\npath = \"{c}\"\n[records]\npath = \"{rec}\"\n[trust]\nbox_key = \"{r}/box.key\"\n",
            r = root.display(),
            c = counters.display(),
            rec = records.display(),
        ),
    )
    .unwrap();
    let config = BoxConfig::load(&config_path).unwrap();
    assert_eq!(config.parts_in_flight(), in_flight);
    let log: Log = Arc::default();
    let stop = AtomicBool::new(false);
    edge_ad_line::service::serve_on(&config, &config_path, outputs(&log), None, &stop)
        .expect("the replay runs out and the service ends cleanly");
    let verdicts = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "verdict")
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap().to_string();
            let error = r["error"].as_str().map(str::to_string);
            (r["part"].as_u64().unwrap(), text("frame"), text("verdict"), r["score"].as_f64(), error)
        })
        .collect();
    let shown =
        log.lock().unwrap().iter().filter(|(n, on)| *on && (*n == "ok" || *n == "ng")).map(|(n, _)| *n).collect();
    let c = edge_ad_line::counters::Counters::read(&counters).unwrap();
    (verdicts, shown, (c.triggers, c.ok, c.ng))
}

#[test]
fn free_run_with_parts_in_flight_gives_the_same_verdicts_in_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let shots: Vec<(String, RgbImage)> = (0..4).map(|k| (format!("shot-{k}.png"), part(k))).collect();
    calibrate_into(&root.join("site.calib"), &shots, true);
    // 13 good pictures: the shots again, new good parts, and every third one with a dark blot.
    std::fs::create_dir_all(root.join("replay")).unwrap();
    for k in 0..13u32 {
        let mut image = shots[(k % 4) as usize].1.clone();
        if k >= 4 {
            image = part(k);
        }
        if k % 3 == 2 {
            for y in 60..90 {
                for x in 70..100 {
                    image.put_pixel(x, y, image::Rgb([10, 10, 10]));
                }
            }
        }
        image.save(root.join(format!("replay/{k:02}.png"))).unwrap();
    }
    // The last file does not decode: that part is NG, and still the last one.
    std::fs::write(root.join("replay/13.png"), b"not a PNG").unwrap();
    let (one, shown_one, counts_one) = free_run(root, 1);
    let (three, shown_three, counts_three) = free_run(root, 3);
    assert_eq!(one.len(), 14, "one verdict per frame: {one:?}");
    let (broken, scored) = one.split_last().unwrap();
    let frames: Vec<String> = (0..13).map(|k| format!("{k:02}.png")).collect();
    assert_eq!(scored.iter().map(|v| v.1.clone()).collect::<Vec<_>>(), frames, "parts in the replay's order");
    assert!(scored.iter().all(|v| v.3.is_some() && v.4.is_none()), "{scored:?}");
    assert!(broken.2 == "NG" && broken.3.is_none(), "{broken:?}");
    assert!(broken.4.as_ref().is_some_and(|e| e.contains("13.png")), "the error names the file: {broken:?}");
    assert!(one.windows(2).all(|w| w[0].0 < w[1].0), "records in part order: {one:?}");
    assert!(scored.iter().any(|v| v.2 == "NG") && scored.iter().any(|v| v.2 == "OK"), "{one:?}");
    // Three parts in flight: every part, the same verdicts and scores, in the same order; the
    // triggers after the last frame are no parts (no verdict, nothing shown).
    assert_eq!(three, one, "in flight 3 against 1");
    let expected: Vec<&str> = one.iter().map(|v| if v.2 == "OK" { "ok" } else { "ng" }).collect();
    assert_eq!(shown_one, expected, "results shown in the parts' order");
    assert_eq!(shown_three, expected, "results shown in the parts' order with three in flight");
    assert_eq!(counts_one, counts_three, "triggers, OK and NG");
    assert_eq!((counts_one.0, counts_one.1 + counts_one.2), (14, 14), "a trigger and a verdict per part");
}
