//! `edge-ad serve`, `status` and `calibrate --config` driven as a line engineer would, without
//! hardware: a folder of frames as the source, free-run and socket triggers, no PLC lines. (The
//! camera and the GPIO lines are tested against the real kernel drivers by tests/hil/run.sh.)

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_ad_e2e::{binary, edge_ad, s};
use edge_ad_eval::synth::{self, SynthSpec};
use serde_json::Value;

/// Good shots in `root/good`, a replay of good and defective parts in `root/replay`.
fn parts(root: &Path) {
    let spec = SynthSpec { side: 256, train_good: 4, test_good: 2, per_defect: 1, seed: 5 };
    synth::generate(&root.join("data"), &["weave"], &spec).unwrap();
    let data = root.join("data/weave");
    std::fs::create_dir_all(root.join("replay")).unwrap();
    for (from, to) in
        [("test/good/000.png", "a-good.png"), ("test/hole/000.png", "b-hole.png"), ("test/good/001.png", "c-good.png")]
    {
        std::fs::copy(data.join(from), root.join("replay").join(to)).unwrap();
    }
}

fn config(root: &Path, trigger: &str, extra: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[model]
calibration = "{root}/site.calib"

[source]
kind = "folder"
path = "{root}/replay"

[trigger]
{trigger}

[archive]
dir = "{root}/archive"

[counters]
path = "{root}/state/counters.json"

[trust]
box_key = "{root}/state/box.key"
{extra}
"#,
        root = root.display()
    );
    let path = root.join("box.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn records(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

#[test]
fn free_run_over_a_replay_gives_one_verdict_per_part_and_keeps_the_ng_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    parts(root);
    let cfg = config(root, "kind = \"free-run\"", "");
    // The operator's set-up step from the configured source: 2 shots on 2 key presses.
    std::fs::remove_dir_all(root.join("replay")).unwrap();
    std::fs::create_dir_all(root.join("replay")).unwrap();
    for i in 0..4 {
        std::fs::copy(root.join(format!("data/weave/train/good/{i:03}.png")), root.join(format!("replay/{i}.png")))
            .unwrap();
    }
    let mut child = Command::new(binary("edge-ad"))
        .args(["calibrate", "--config", s(&cfg), "--shots", "4", "--keys"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\n\n\n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(root.join("site.calib").is_file());
    assert!(root.join("site.calib.shots/shot-04.png").is_file(), "the shots are kept for the record");

    parts(root);
    for i in 0..4 {
        std::fs::remove_file(root.join(format!("replay/{i}.png"))).unwrap();
    }
    let run = edge_ad(&["serve", "--config", s(&cfg)]);
    assert!(run.ok, "{}", run.stderr);
    let recs = records(&run.stdout);
    let events: Vec<&str> = recs.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["start", "ready", "verdict", "verdict", "verdict", "stop"], "{}", run.stdout);
    let verdicts: Vec<(&str, &str)> =
        recs[2..5].iter().map(|r| (r["frame"].as_str().unwrap(), r["verdict"].as_str().unwrap())).collect();
    assert_eq!(verdicts[1], ("b-hole.png", "NG"));
    for r in &recs[2..5] {
        assert!(r["score"].as_f64().is_some() && r["latency_ms"].as_f64().unwrap() > 0.0);
        assert!(r["error"].is_null());
    }
    // NG parts are archived as overlay + sidecar.
    let archived: Vec<String> = std::fs::read_dir(root.join("archive"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let ng = verdicts.iter().filter(|v| v.1 == "NG").count();
    assert_eq!(archived.iter().filter(|n| n.ends_with("-NG.png")).count(), ng, "{archived:?}");
    assert_eq!(archived.iter().filter(|n| n.ends_with("-NG.json")).count(), ng);
    assert!(archived.iter().all(|n| !n.ends_with("-OK.png")), "OK frames are not sampled by default");

    // Counters persist across a restart and `status` prints them.
    let status = edge_ad(&["status", "--config", s(&cfg), "--json"]);
    assert!(status.ok, "{}", status.stderr);
    let c: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!((c["triggers"].as_u64(), c["missed"].as_u64()), (Some(3), Some(0)));
    assert_eq!(c["ok"].as_u64().unwrap() + c["ng"].as_u64().unwrap(), 3);
    assert_eq!(c["latency_ms"]["count"].as_u64(), Some(3));
    assert!(edge_ad(&["serve", "--config", s(&cfg)]).ok);
    let c2: Value = serde_json::from_str(&edge_ad(&["status", "--config", s(&cfg), "--json"]).stdout).unwrap();
    assert_eq!(c2["triggers"].as_u64(), Some(6), "counted on from the saved counters");
    let text = edge_ad(&["status", "--config", s(&cfg)]);
    assert!(text.ok && text.stdout.contains("triggers 6") && text.stdout.contains("p95"), "{}", text.stdout);
}

#[test]
fn without_a_calibration_every_trigger_is_missed_until_one_appears() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    parts(root);
    let socket = root.join("trigger.sock");
    let cfg = config(root, &format!("kind = \"socket\"\npath = \"{}\"", socket.display()), "");
    let mut child = Command::new(binary("edge-ad"))
        .args(["serve", "--config", s(&cfg)])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = |what: &str| -> Value {
        let line = lines.next().unwrap_or_else(|| panic!("service ended before {what}")).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next("start")["event"], "start");
    let fault = next("fault");
    assert_eq!((fault["event"].as_str(), fault["fault"].as_str()), (Some("fault"), Some("calibration")));
    assert!(fault["error"].as_str().unwrap().contains("site.calib"), "the error names the file: {fault}");
    let started = Instant::now();
    let mut client = loop {
        match std::os::unix::net::UnixStream::connect(&socket) {
            Ok(c) => break c,
            Err(_) if started.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("{e}"),
        }
    };
    client.write_all(b"trigger\n").unwrap();
    let missed = next("missed");
    assert_eq!((missed["event"].as_str(), missed["fault"].as_str()), (Some("missed"), Some("calibration")));

    // The operator calibrates (from saved good parts, for this box: signed with its key); the
    // running service picks it up and becomes ready.
    let good = root.join("data/weave/train/good");
    let cal = edge_ad(&["calibrate", "--config", s(&cfg), "--shots", "4", "--source", s(&good)]);
    assert!(cal.ok, "{}", cal.stderr);
    assert_eq!(next("ready")["event"], "ready");
    client.write_all(b"trigger\n").unwrap();
    let verdict = next("verdict");
    assert_eq!(verdict["frame"], "a-good.png");
    assert!(verdict["verdict"] == "OK" || verdict["verdict"] == "NG");

    // SIGTERM: the service stops cleanly.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert_eq!(next("stop")["event"], "stop");
    assert!(child.wait().unwrap().success());
}

#[test]
fn bad_configurations_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    parts(root);
    let cases = [
        ("[plc]\nchip = \"/dev/gpiochip-none\"\nok = { line = 1 }\nok_pulse_ms = 0\n", "plc.ok_pulse_ms"),
        ("[plc]\nchip = \"/dev/gpiochip-none\"\nok = { line = 1 }\n", "/dev/gpiochip-none"),
        ("[display]\n", "display"),
    ];
    for (extra, needle) in cases {
        let cfg = config(root, "kind = \"free-run\"", extra);
        let r = edge_ad(&["serve", "--config", s(&cfg)]);
        assert!(!r.ok, "{extra}");
        assert!(r.stderr.contains("box.toml") || r.stderr.contains(needle), "{extra}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{extra}: {}", r.stderr);
    }
    let r = edge_ad(&["serve", "--config", s(&root.join("none.toml"))]);
    assert!(!r.ok && r.stderr.contains("none.toml"), "{}", r.stderr);
    // A box whose service has not run (as right after installing): zeros, and it says why.
    let fresh = config(root, "kind = \"free-run\"", "");
    let r = edge_ad(&["status", "--config", s(&fresh)]);
    assert!(r.ok && r.stdout.contains("no counters yet") && r.stdout.contains("triggers 0"), "{}", r.stdout);
    // A counters file that is not one is an error naming it.
    let counters = root.join("state/counters.json");
    std::fs::create_dir_all(root.join("state")).unwrap();
    std::fs::write(&counters, "not json").unwrap();
    let r = edge_ad(&["status", "--config", s(&fresh)]);
    assert!(!r.ok && r.stderr.contains("counters.json"), "{}", r.stderr);
    std::fs::remove_file(&counters).unwrap();
    // Printing into a closed pipe (`edge-ad status | head -1`) ends the process quietly, no panic.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(binary("edge-ad"))
        .args(["status", "--config", s(&fresh)])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Ended by SIGPIPE (13 on Linux), as `cat` would be, rather than by an error exit.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(13), "{:?}: {stderr}", out.status);
}
