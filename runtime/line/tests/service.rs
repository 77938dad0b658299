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
