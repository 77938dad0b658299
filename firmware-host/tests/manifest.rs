//! The shipped manifest is exactly what `edge-ad-host manifest` makes from its TOML source.

use std::path::Path;
use std::process::Command;

#[test]
fn shipped_manifest_regenerates_byte_for_byte() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.manifest");
    let status = Command::new(env!("CARGO_BIN_EXE_edge-ad-host"))
        .args(["manifest", "--spec"])
        .arg(models.join("effnet_lite0_feat.toml"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(models.join("effnet_lite0_feat.manifest")).unwrap());
}

#[test]
fn a_bad_spec_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("bad.toml");
    std::fs::write(&spec, "name = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edge-ad-host"))
        .args(["manifest", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(tmp.path().join("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("not a valid model description"), "{err}");
    assert!(!tmp.path().join("x").exists());
}
