//! The command line as a user meets it: every verb answers --help, old spellings still work, and
//! misuse is refused with clap's usage exit code (2) or a named error.

use std::process::Command;

fn edge_ad(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edge-ad")).args(args).output().expect("edge-ad runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_verb_answers_help() {
    for verb in ["calibrate", "run", "eval", "demo", "serve", "status", "hash-password"] {
        let (code, out, err) = edge_ad(&[verb, "--help"]);
        assert_eq!(code, 0, "{verb}: {err}");
        assert!(out.contains("Usage: edge-ad"), "{verb}: {out}");
    }
    let (_, out, _) = edge_ad(&["calibrate", "--help"]);
    for flag in ["--shots", "--source", "--config", "--out", "--scorer", "--image-score", "--manifest", "--sensitivity"]
    {
        assert!(out.contains(flag), "calibrate --help lacks {flag}: {out}");
    }
}

#[test]
fn misuse_is_refused_with_a_reason() {
    let (code, _, err) = edge_ad(&["run", "--calibration", "x.calib", "--scorer", "knn"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = edge_ad(&["eval", "--dataset", "d", "--scorer", "knn"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("featurenorm"), "{err}");
    let (code, _, err) = edge_ad(&["--manifest", "m", "--bundle", "b", "run", "--calibration", "c"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = edge_ad(&["run", "--calibration", "c"]);
    assert_eq!(code, 1);
    assert!(err.contains("--source"), "{err}");
    let (code, _, err) = edge_ad(&["--projector", "none", "status", "--config", "box.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("box.toml"), "{err}");
    let (code, _, err) = edge_ad(&["calibrate", "--shots", "1", "--source", "a", "--out", "b"]);
    assert_eq!(code, 1);
    assert!(err.contains("at least 2"), "{err}");
    let (code, _, err) = edge_ad(&["--sensitivity", "0", "run", "--calibration", "c", "--source", "s"]);
    assert_eq!(code, 1);
    assert!(err.contains("sensitivity"), "{err}");
    let (code, _, err) = edge_ad(&["run", "--precision", "half", "--calibration", "c", "--source", "s"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("auto, f32 or f16"), "{err}");
}

#[test]
fn older_spellings_still_parse() {
    // `--model` became `--manifest` (box.toml's name); demo's `--out` became `--keep`.
    let (code, _, err) = edge_ad(&["--model", "/nonexistent.manifest", "run", "--calibration", "c", "--source", "s"]);
    assert_eq!(code, 1, "parsed, then failed on the file: {err}");
    assert!(err.contains("/nonexistent.manifest"), "{err}");
    let (code, out, _) = edge_ad(&["demo", "--out", "x", "--help"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn hash_password_prints_an_argon2id_hash_of_its_input_line() {
    use std::io::Write;
    let hash_of = |input: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edge-ad"))
            .arg("hash-password")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = hash_of(b"line-3 secret\r\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = hash.trim_end();
    assert!(edge_ad_line::plant::web::is_argon2id(hash), "{hash}");
    assert!(edge_ad_line::plant::web::verify(hash, "line-3 secret"), "the line without its line ending");
    assert!(!edge_ad_line::plant::web::verify(hash, "line-3 secret\r"));
    let short = hash_of(b"short\n");
    assert_eq!(short.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8 characters"));
    assert!(short.stdout.is_empty(), "no hash for a refused password");
}
