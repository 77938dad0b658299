//! A/B model slots: install into the inactive slot and switch, roll back, a cut at every step of
//! an install leaves a whole checked bundle current, a broken or unsigned bundle never becomes
//! current, and a service whose new slot does not load rolls back by itself.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use edge_ad_calib::{encode, Bundle, BundleFile, Name};
use edge_ad_core::model::{sha256, Model, DEFAULT_PROJECTOR};
use edge_ad_core::trust::{self, Signed, Trust};
use edge_ad_line::config::BoxConfig;
use edge_ad_line::slots::{check_bundle, Slots, Step};

/// A signed bundle of the embedded backbone, with the default projector when `projector`.
fn bundle(path: &Path, key: &trust::SigningKey, projector: bool) {
    let model = Model::embedded_default().unwrap();
    let mut files = vec![BundleFile {
        name: model.manifest.file.clone(),
        sha256: model.manifest.sha256,
        bytes: model.onnx.to_vec(),
    }];
    if projector {
        for (name, bytes) in DEFAULT_PROJECTOR {
            files.push(BundleFile {
                name: Name::try_from(name).unwrap(),
                sha256: sha256(bytes),
                bytes: bytes.to_vec(),
            });
        }
    }
    let bytes = encode(&Bundle { manifest: model.manifest.clone(), calibration: None, files }).unwrap();
    std::fs::write(path, &bytes).unwrap();
    std::fs::write(trust::signature_path(path), trust::sign(key, Signed::Bundle, &bytes)).unwrap();
}

/// A box with two signed bundles to install and a box.toml whose model lives in slots.
struct SlotBox {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: BoxConfig,
    config_path: PathBuf,
    v1: PathBuf,
    v2: PathBuf,
}

fn a_box() -> SlotBox {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let key = trust::create_signing_key(&root.join("host.key")).unwrap();
    std::fs::create_dir_all(root.join("keys")).unwrap();
    std::fs::write(root.join("keys/host.pub"), trust::public_key_text(&key.verifying_key())).unwrap();
    let (v1, v2) = (root.join("v1.bundle"), root.join("v2.bundle"));
    bundle(&v1, &key, false);
    bundle(&v2, &key, true);
    std::fs::create_dir_all(root.join("replay")).unwrap();
    image::RgbImage::from_pixel(64, 64, image::Rgb([90, 90, 90])).save(root.join("replay/a.png")).unwrap();
    let config_path = root.join("box.toml");
    std::fs::write(
        &config_path,
        format!(
            "[model]\nbundle = \"{r}/models/current/model.bundle\"\ncalibration = \"{r}/site.calib\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"{r}/replay\"\nrepeat = true\n\
             [trigger]\nkind = \"free-run\"\ninterval_ms = 100000\n\
             [counters]\npath = \"{r}/counters.json\"\n[records]\npath = \"{r}/records.jsonl\"\n\
             [trust]\nkeys = \"{r}/keys\"\nbox_key = \"{r}/box.key\"\n",
            r = root.display()
        ),
    )
    .unwrap();
    let config = BoxConfig::load(&config_path).unwrap();
    SlotBox { _dir: dir, root, config, config_path, v1, v2 }
}

/// How many files the current slot's bundle holds, once it passed the box's checks
/// (signature and digests): 1 for v1, 3 for v2.
fn current_files(b: &SlotBox, slots: &Slots) -> usize {
    let trust = Trust { keys: trust::read_public_keys(&b.root.join("keys")).unwrap(), allow_unsigned: false };
    let path = slots.bundle_in(slots.current().expect("a current slot"));
    assert_eq!(
        std::fs::canonicalize(b.config.model.bundle.as_ref().unwrap()).unwrap(),
        std::fs::canonicalize(&path).unwrap()
    );
    let loaded = edge_ad_core::bundle::load(&path, &trust).expect("the current slot holds a whole, signed bundle");
    1 + 2 * usize::from(loaded.has_projector())
}

fn go(_: Step) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

#[test]
fn install_switches_slots_and_rollback_returns() {
    let b = a_box();
    let slots = Slots::of(&b.config, &b.config_path).unwrap();
    let check = |p: &Path| check_bundle(&b.config, p);
    assert_eq!(slots.install(&b.v1, &check, &mut go).unwrap(), Some("a"));
    assert_eq!((slots.current(), slots.previous()), (Some("a"), None));
    assert_eq!(current_files(&b, &slots), 1);
    assert_eq!(slots.install(&b.v2, &check, &mut go).unwrap(), Some("b"));
    assert_eq!((slots.current(), slots.previous()), (Some("b"), Some("a")));
    assert_eq!(current_files(&b, &slots), 3);
    assert_eq!(slots.rollback().unwrap(), "a");
    assert_eq!((slots.current(), slots.previous()), (Some("a"), Some("b")));
    assert_eq!(current_files(&b, &slots), 1);

    // Unsigned, or altered after signing: the check refuses it in the slot, nothing switches.
    let unsigned = b.root.join("unsigned.bundle");
    std::fs::copy(&b.v2, &unsigned).unwrap();
    let e = slots.install(&unsigned, &check, &mut go).unwrap_err().to_string();
    assert!(e.contains("unsigned"), "{e}");
    let mut bytes = std::fs::read(&b.v2).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&b.v2, &bytes).unwrap();
    let e = slots.install(&b.v2, &check, &mut go).unwrap_err().to_string();
    assert!(e.contains("altered"), "{e}");
    assert_eq!(slots.current(), Some("a"));
    assert_eq!(current_files(&b, &slots), 1);
}

#[test]
fn a_cut_at_any_step_of_an_install_leaves_a_whole_bundle_current() {
    let light = |p: &Path| -> edge_ad_line::Result<()> {
        let keys = trust::read_public_keys(&p.ancestors().nth(3).unwrap().join("keys"))?;
        edge_ad_core::bundle::load(p, &Trust { keys, allow_unsigned: false })?;
        Ok(())
    };
    for cut in [Step::Cleared, Step::Copied, Step::Checked, Step::Remembered, Step::Switched] {
        let b = a_box();
        let slots = Slots::of(&b.config, &b.config_path).unwrap();
        slots.install(&b.v1, &light, &mut go).unwrap();
        // The power goes after `cut`: whatever is on disk then is what the box boots with.
        let _ = slots.install(&b.v2, &light, &mut |s| {
            if s == cut {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        let want = if cut == Step::Switched { 3 } else { 1 };
        assert_eq!(current_files(&b, &slots), want, "cut after {cut:?}");
        // And the install, run again, completes.
        slots.install(&b.v2, &light, &mut go).unwrap();
        assert_eq!(current_files(&b, &slots), 3, "reinstall after a cut at {cut:?}");
    }
}

#[test]
fn a_new_slot_that_does_not_load_rolls_back_by_itself() {
    let b = a_box();
    let slots = Slots::of(&b.config, &b.config_path).unwrap();
    let light = |_: &Path| Ok(());
    slots.install(&b.v1, &light, &mut go).unwrap();
    slots.install(&b.v2, &light, &mut go).unwrap();
    // The new slot's bundle is damaged after the install (a bad flash sector).
    std::fs::write(slots.bundle_in("b"), b"not a bundle").unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let service = s.spawn(|| {
            edge_ad_line::service::serve_on(
                &b.config,
                &b.config_path,
                edge_ad_plc::Outputs::<NoPin>::none(),
                None,
                &stop,
            )
        });
        let start = std::time::Instant::now();
        while slots.current() != Some("a") && start.elapsed() < std::time::Duration::from_secs(30) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        service.join().unwrap().unwrap();
    });
    assert_eq!((slots.current(), slots.previous()), (Some("a"), Some("b")), "rolled back to the slot that worked");
    let records = std::fs::read_to_string(b.root.join("records.jsonl")).unwrap();
    assert!(records.contains("\"fault\":\"model\""), "{records}");
}

/// No output lines at all (the box without a PLC).
struct NoPin;
impl embedded_hal::digital::ErrorType for NoPin {
    type Error = std::convert::Infallible;
}
impl embedded_hal::digital::OutputPin for NoPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
