//! `edge-ad` driven as a user would: generate a dataset, calibrate on 4 shots, run, evaluate —
//! and every kind of bad input answered with a clear error and a non-zero exit.

use std::path::Path;

use edge_ad_core::formats::{decode, encode, ImageScore, ModelCalibration, SiteCalibration};
use edge_ad_e2e::{edge_ad, s};
use edge_ad_eval::synth::{self, SynthSpec};
use serde_json::Value;

fn dataset(root: &Path) {
    let spec = SynthSpec { side: 256, train_good: 6, test_good: 6, per_defect: 2, seed: 11 };
    synth::generate(root, &["weave"], &spec).unwrap();
}

#[test]
fn calibrate_run_and_eval_on_generated_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    dataset(&root);
    let cat = root.join("weave");
    let calib = tmp.path().join("site.calib");

    let r =
        edge_ad(&["calibrate", "--shots", "4", "--source", s(&cat.join("train/good")), "--out", s(&calib), "--json"]);
    assert!(r.ok, "{}", r.stderr);
    let summary: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(summary["shots"], serde_json::json!(["000.png", "001.png", "002.png", "003.png"]));
    let c: SiteCalibration = decode(&std::fs::read(&calib).unwrap()).unwrap();
    assert_eq!(c.shot_names.len(), 4);
    assert_eq!(c.levels.len(), 2);
    assert_eq!(c.threshold.stats.scores.len(), 4 * 5, "each shot and 4 variations, leave-one-out");
    // Defaults: spread 4, margin 0, sensitivity 1, so the threshold is the leave-one-out good
    // scores' mean plus 4 standard deviations (never below the largest), and the image score is
    // the mean of the map's highest 2 %.
    let t = &c.threshold;
    assert_eq!((t.spread, t.margin, t.sensitivity), (4.0, 0.0, 1.0));
    assert_eq!(t.value, t.stats.max.max(t.stats.mean + 4.0 * t.stats.std));
    assert!(t.stats.scores.iter().all(|s| *s <= t.value && *s > 0.0));
    assert_eq!(c.image_score, ImageScore::TopMean { fraction: 0.02 });
    assert_eq!(summary["image_score"], "top:0.02");
    let part_path = cat.join("test/good/000.png");
    let part = s(&part_path);
    // Logs captured to a file or a pipe are plain text: colours only on a terminal.
    let r = edge_ad(&["-vv", "run", "--calibration", s(&calib), "--source", part]);
    assert!(r.ok && r.stderr.contains("DEBUG") && !r.stderr.contains('\x1b'), "{}", r.stderr);
    // The backbone's precision: auto is f32 on x86; f16 asked for by name runs (emulated) and
    // scores the same part close to f32 with the same calibration.
    let score = |extra: &[&str]| {
        let mut args = vec!["-v", "run", "--calibration", s(&calib), "--source", part, "--json"];
        args.extend_from_slice(extra);
        let r = edge_ad(&args);
        assert!(r.ok, "{}", r.stderr);
        let record: Value = serde_json::from_str(r.stdout.trim()).unwrap();
        (record["score"].as_f64().unwrap(), r.stderr)
    };
    let (f32_score, log) = score(&[]);
    #[cfg(target_arch = "x86_64")]
    assert!(log.contains("in f32 (auto asked)"), "{log}");
    let (f16_score, log) = score(&["--precision", "f16"]);
    assert!(log.contains("in f16 (f16 asked)"), "{log}");
    assert!(f16_score != f32_score && (f16_score - f32_score).abs() <= 0.03 * f32_score, "{f16_score} vs {f32_score}");

    // A non-square image, to check that maps come back at the image's own resolution.
    let odd = tmp.path().join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    let img = image::open(cat.join("test/hole/000.png")).unwrap();
    img.crop_imm(0, 0, 256, 200).save(odd.join("wide.png")).unwrap();

    let maps = tmp.path().join("maps");
    let r = edge_ad(&[
        "run",
        "--calibration",
        s(&calib),
        "--source",
        s(&cat.join("test/good")),
        "--source",
        s(&cat.join("test/hole")),
        "--source",
        s(&odd.join("wide.png")),
        "--json",
        "--maps",
        s(&maps),
    ]);
    assert!(r.ok, "{}", r.stderr);
    let records: Vec<Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 6 + 2 + 1);
    for rec in &records {
        for key in ["file", "score", "verdict", "threshold", "latency_ms"] {
            assert!(rec.get(key).is_some(), "{key} missing in {rec}");
        }
        assert!(rec["verdict"] == "OK" || rec["verdict"] == "NG");
        let (score, t) = (rec["score"].as_f64().unwrap(), rec["threshold"].as_f64().unwrap());
        assert_eq!(rec["verdict"] == "NG", score > t, "{rec}");
    }
    // Named by the path as given: the same file name from two folders stays apart.
    let file = |r: &Value| r["file"].as_str().unwrap().to_string();
    let holes: Vec<&Value> = records.iter().filter(|r| file(r).ends_with("hole/000.png")).collect();
    assert_eq!(holes.len(), 1);
    assert!(records.iter().any(|r| file(r) == s(&cat.join("test/good/000.png"))));
    // Same file names from two folders: one map each, none overwritten.
    assert_eq!(std::fs::read_dir(&maps).unwrap().count(), 9);
    assert!(maps.join("000-2.npy").is_file() && maps.join("001-2.npy").is_file());
    // One worker or several: the same records in the same order (latency aside), the input's.
    let (good, hole, wide) = (cat.join("test/good"), cat.join("test/hole"), odd.join("wide.png"));
    let sources = ["--source", s(&good), "--source", s(&hole), "--source", s(&wide)];
    let without_latency = |stdout: &str| -> Vec<Value> {
        stdout
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("latency_ms");
                v
            })
            .collect()
    };
    let expected = without_latency(&r.stdout);
    for workers in ["1", "3"] {
        let mut args = vec!["run", "--calibration", s(&calib), "--json", "--workers", workers];
        args.extend(sources);
        let again = edge_ad(&args);
        assert!(again.ok, "{}", again.stderr);
        assert_eq!(without_latency(&again.stdout), expected, "--workers {workers}");
    }
    let zero = edge_ad(&["run", "--calibration", s(&calib), "--workers", "0", "--source", s(&odd)]);
    assert!(!zero.ok && zero.stderr.contains("--workers"), "{}", zero.stderr);
    let map = npyz::NpyFile::new(std::fs::File::open(maps.join("wide.npy")).unwrap()).unwrap();
    assert_eq!(map.shape(), &[200, 256]);
    let values: Vec<f32> = map.into_vec().unwrap();
    assert!(values.iter().all(|v| v.is_finite()) && values.iter().any(|v| *v > 0.0));

    let report = tmp.path().join("report");
    let r = edge_ad(&["eval", "--dataset", s(&root), "--shots", "4", "--json", "--report", s(&report)]);
    assert!(r.ok, "{}", r.stderr);
    let rows: Vec<Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["category"], "weave");
    assert_eq!(rows[1]["category"], "mean");
    for key in [
        "category",
        "image_auroc",
        "pixel_auroc",
        "aupro",
        "threshold",
        "escape_rate",
        "false_reject_rate",
        "latency_ms_median",
        "latency_ms_p95",
        "frames_per_s",
    ] {
        assert!(rows[1].get(key).is_some(), "{key} missing");
    }
    // One worker gives the same figures as several (the timings aside).
    let one = edge_ad(&["eval", "--dataset", s(&root), "--shots", "4", "--json", "--workers", "1"]);
    assert!(one.ok, "{}", one.stderr);
    let strip = |line: &str| {
        let mut v: Value = serde_json::from_str(line).unwrap();
        for key in ["latency_ms_median", "latency_ms_p95", "frames_per_s", "calibration_s"] {
            v.as_object_mut().unwrap().remove(key);
        }
        v
    };
    assert_eq!(one.stdout.lines().map(strip).collect::<Vec<_>>(), r.stdout.lines().map(strip).collect::<Vec<_>>());
    let auroc = rows[0]["image_auroc"].as_f64().unwrap();
    assert!(auroc > 0.8, "image AUROC {auroc} is not clearly above chance");
    assert!(rows[0]["pixel_auroc"].as_f64().unwrap() > 0.8);
    for key in ["escape_rate", "false_reject_rate", "aupro"] {
        let v = rows[0][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    // The report (runtime/cli/tests/report.rs checks it whole); --json still prints the figures.
    assert!(report.join("index.html").is_file() && report.join("img/c0-image-roc.svg").is_file());
}

#[test]
fn every_scorer_runs_through_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    dataset(&root);
    for scorer in ["patchcore", "padim"] {
        let r = edge_ad(&["eval", "--dataset", s(&root), "--shots", "4", "--json", "--scorer", scorer]);
        assert!(r.ok, "{scorer}: {}", r.stderr);
        let first: Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
        assert_eq!(first["scorer"], scorer);
        let auroc = first["image_auroc"].as_f64().unwrap();
        assert!(auroc > 0.7, "{scorer}: image AUROC {auroc}");
    }
}

/// Asserts a failed run whose stderr names `what` and says `why`.
fn fails(args: &[&str], what: &str, why: &str) {
    let r = edge_ad(args);
    assert!(!r.ok, "{args:?} should fail; stdout {}", r.stdout);
    assert!(
        r.stderr.contains(what) && r.stderr.contains(why),
        "{args:?}: stderr {:?} should name {what:?} and say {why:?}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn bad_input_gets_a_clear_error_and_nothing_half_written() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    dataset(&root);
    let good = root.join("weave/train/good");
    let out = tmp.path().join("c.calib");

    fails(
        &["calibrate", "--shots", "4", "--source", s(&tmp.path().join("missing")), "--out", s(&out)],
        "missing",
        "No such file",
    );
    fails(
        &["calibrate", "--shots", "9", "--source", s(&good), "--out", s(&out)],
        s(&good),
        "9 shots asked but the sources hold 6",
    );
    fails(&["calibrate", "--shots", "1", "--source", s(&good), "--out", s(&out)], "at least 2", "shots");
    fails(
        &["calibrate", "--shots", "2", "--source", s(&good), "--out", s(&out), "--side", "1000000"],
        "1000000",
        "maximum",
    );
    fails(&["calibrate", "--shots", "2", "--source", s(&good), "--out", s(&out), "--side", "100"], "100", "stride");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(&["calibrate", "--shots", "2", "--source", s(&empty), "--out", s(&out)], s(&empty), "no PNG, JPEG or BMP");

    let junk = tmp.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::copy(good.join("000.png"), junk.join("a.png")).unwrap();
    std::fs::write(junk.join("b.png"), b"this is not a png").unwrap();
    fails(&["calibrate", "--shots", "2", "--source", s(&junk), "--out", s(&out)], "b.png", "not a readable image");
    image::RgbImage::new(10, 10).save(junk.join("b.png")).unwrap();
    fails(
        &["calibrate", "--shots", "2", "--source", s(&junk), "--out", s(&out)],
        "b.png",
        "smaller than the 32-pixel minimum",
    );
    assert!(!out.exists(), "a failed calibration must not leave a file");

    // A good calibration, then every corruption of it.
    let r = edge_ad(&["calibrate", "--shots", "3", "--source", s(&good), "--out", s(&out)]);
    assert!(r.ok, "{}", r.stderr);
    let bytes = std::fs::read(&out).unwrap();
    // A blinded camera: an all-white frame is NG with its reason, never scored (the projector
    // would call a uniformly bright frame nearly normal).
    let white = tmp.path().join("white");
    std::fs::create_dir_all(&white).unwrap();
    image::RgbImage::from_pixel(256, 256, image::Rgb([255, 255, 255])).save(white.join("w.png")).unwrap();
    let r = edge_ad(&["run", "--calibration", s(&out), "--source", s(&white), "--json"]);
    let rec: Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    assert!(!r.ok && rec["verdict"] == "NG" && rec["error"].as_str().unwrap().contains("brightness"), "{rec}");
    let bad = tmp.path().join("bad.calib");
    let run = |b: &[u8], why: &str| {
        std::fs::write(&bad, b).unwrap();
        fails(&["run", "--calibration", s(&bad), "--source", s(&good)], "bad.calib", why);
    };
    let mut flipped = bytes.clone();
    let n = flipped.len();
    flipped[n / 2] ^= 0x40;
    run(&flipped, "checksum mismatch");
    run(&bytes[..bytes.len() - 10], "truncated");
    run(b"GIF89a not ours at all", "not an edge-ad file");
    run(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/effnet_lite0_feat.manifest")).unwrap(),
        "holds a model manifest where a site calibration was expected",
    );
    let mut other_version = bytes.clone();
    other_version[4] = 9;
    run(&other_version, "format version 9 is not supported");
    // A calibration of the layout before the image-score rule (version 1) asks for a new one.
    let mut older = bytes.clone();
    older[4] = 1;
    run(&older, "calibrate again");

    for (rule, why) in [("top:0", "above 0"), ("top:1.5", "above 0"), ("mean", "expected `max` or `top:F`")] {
        fails(&["calibrate", "--shots", "2", "--source", s(&good), "--out", s(&out), "--image-score", rule], rule, why);
    }
    fails(&["calibrate", "--shots", "2", "--source", s(&good), "--out", s(&out), "--spread=-1"], "spread", "-1");

    // Settings that would pass every part are refused, on every path that takes them.
    for (flag, value) in
        [("--sensitivity", "0.001"), ("--sensitivity", "1e-30"), ("--margin", "1e9"), ("--spread", "1000")]
    {
        let args = ["calibrate", "--shots", "2", "--source", s(&good), "--out", s(&out), flag, value];
        fails(&args, &flag[2..], "must be in");
    }
    fails(
        &[
            "calibrate",
            "--shots",
            "2",
            "--source",
            s(&good),
            "--out",
            s(&out),
            "--side",
            "32",
            "--resize",
            "4000000000",
        ],
        "4000000000",
        "maximum",
    );
    fails(&["--sensitivity", "0.001", "run", "--calibration", s(&out), "--source", s(&good)], "sensitivity", "0.5..=4");
    // A calibration whose threshold was edited (checksum recomputed, value = base / sensitivity
    // kept) is refused: the threshold must follow from the good scores stored beside it.
    let mut edited: SiteCalibration = decode(&bytes).unwrap();
    edited.threshold.base = 100.0;
    edited.threshold.value = 100.0 / edited.threshold.sensitivity;
    run(&encode(&edited).unwrap(), "was altered");
    let mut edited: SiteCalibration = decode(&bytes).unwrap();
    edited.threshold.sensitivity = 1e-6;
    edited.threshold.value = edited.threshold.base / 1e-6;
    run(&encode(&edited).unwrap(), "sensitivity must be in");

    fails(
        &["run", "--calibration", s(&out), "--source", s(&good), "--scorer", "padim"],
        "c.calib",
        "calibrated for scorer featurenorm",
    );
    fails(&["run", "--calibration", s(&out), "--source", s(&tmp.path().join("nothing"))], "nothing", "No such file");
    let proj = tmp.path().join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    fails(
        &["run", "--calibration", s(&out), "--source", s(&good), "--projector", s(&proj)],
        "feat_s8.onnx",
        "No such file",
    );

    // A run over a folder with one unreadable image scores the others, reports it, exits non-zero.
    let r = edge_ad(&["run", "--calibration", s(&out), "--source", s(&junk), "--json"]);
    assert!(!r.ok && r.stderr.contains("b.png"), "{} / {}", r.stdout, r.stderr);
    let records: Vec<Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2, "one record per input, the fault included");
    assert_eq!(records[1]["file"], s(&junk.join("b.png")));
    assert_eq!(records[1]["verdict"], "NG");
    assert!(records[1]["score"].is_null() && records[1]["error"].as_str().unwrap().contains("smaller"));

    // Datasets: an empty category, a defect without its mask, a mask of the wrong size.
    let cat = root.join("weave");
    let test_items: Vec<_> = std::fs::read_dir(cat.join("test/good")).unwrap().map(|e| e.unwrap().path()).collect();
    std::fs::rename(cat.join("ground_truth/hole/001_mask.png"), tmp.path().join("kept_mask.png")).unwrap();
    fails(&["eval", "--dataset", s(&root), "--shots", "4"], "001.png", "has no mask");
    image::GrayImage::new(100, 80).save(cat.join("ground_truth/hole/001_mask.png")).unwrap();
    fails(&["eval", "--dataset", s(&root), "--shots", "4"], "001_mask.png", "mask is 100×80 but its image");
    fails(&["eval", "--dataset", s(&root), "--shots", "7"], "weave", "7 shots asked but train/good holds 6");
    fails(&["eval", "--dataset", s(&root), "--shots", "4", "--category", "nope"], "nope", "not found");
    fails(&["eval", "--dataset", s(&tmp.path().join("void")), "--shots", "4"], "void", "not a folder");
    let hollow = tmp.path().join("hollow/part");
    std::fs::create_dir_all(hollow.join("train/good")).unwrap();
    std::fs::create_dir_all(hollow.join("test")).unwrap();
    std::fs::copy(good.join("000.png"), hollow.join("train/good/000.png")).unwrap();
    fails(&["eval", "--dataset", s(&tmp.path().join("hollow")), "--shots", "1"], "test", "holds no test image");
    assert!(!test_items.is_empty());
}

#[test]
fn every_verb_has_help() {
    for verb in ["calibrate", "run", "eval", "demo", "serve", "status"] {
        let r = edge_ad(&[verb, "--help"]);
        assert!(r.ok && r.stdout.contains("Usage"), "{verb}: {}", r.stderr);
    }
}

#[test]
fn a_projector_pretrained_by_the_host_tool_is_used_by_the_box() {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("proj");
    let host = edge_ad_e2e::binary("edge-ad-host");
    let r = edge_ad_e2e::run(
        &host,
        &["pretrain", "--out", s(&proj), "--epochs", "1", "--images", "4", "--references", "2", "--batch", "4"],
    );
    assert!(r.ok, "{}", r.stderr);
    assert!(proj.join("feat_s8.onnx").is_file() && proj.join("feat_s16.onnx").is_file());

    let root = tmp.path().join("data");
    dataset(&root);
    let good = root.join("weave/train/good");
    let calib = tmp.path().join("p.calib");
    let r = edge_ad(&["calibrate", "--shots", "3", "--source", s(&good), "--out", s(&calib), "--projector", s(&proj)]);
    assert!(r.ok, "{}", r.stderr);
    let c: SiteCalibration = decode(&std::fs::read(&calib).unwrap()).unwrap();
    assert!(c.model.projector_sha256.is_some(), "the calibration records the projector");
    let r = edge_ad(&["run", "--calibration", s(&calib), "--source", s(&good), "--projector", s(&proj), "--json"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 6);
    // The same calibration with the identity or the default projector is refused: it was made
    // with another model.
    for other in [&["--projector", "none"][..], &[]] {
        let r = edge_ad(&[&["run", "--calibration", s(&calib), "--source", s(&good)], other].concat());
        assert!(!r.ok && r.stderr.contains("projector"), "{other:?}: {}", r.stderr);
    }

    // The model calibration records the radius statistics and the files' digests.
    let mc: ModelCalibration = decode(&std::fs::read(proj.join("model.calib")).unwrap()).unwrap();
    assert_eq!(mc.model, c.model, "made for exactly the files the box calibrated with");
    assert_eq!(mc.levels.len(), 2);
    assert_eq!(
        mc.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["effnet_lite0_feat.onnx", "feat_s8.onnx", "feat_s16.onnx"]
    );

    // One bundle for flashing: the box runs from it alone, with the same results.
    let bundle = tmp.path().join("box.bundle");
    let r = edge_ad_e2e::run(&host, &["bundle", "--projector", s(&proj), "--out", s(&bundle)]);
    assert!(r.ok && r.stdout.contains("with the model calibration"), "{}{}", r.stdout, r.stderr);
    let r1 = edge_ad(&["run", "--calibration", s(&calib), "--source", s(&good), "--projector", s(&proj), "--json"]);
    let r2 = edge_ad(&["--bundle", s(&bundle), "run", "--calibration", s(&calib), "--source", s(&good), "--json"]);
    assert!(r2.ok, "{}", r2.stderr);
    let scores = |out: &str| -> Vec<f64> {
        out.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["score"].as_f64().unwrap()).collect()
    };
    assert_eq!(scores(&r1.stdout), scores(&r2.stdout));
    let r = edge_ad(&[
        "--bundle",
        s(&bundle),
        "run",
        "--calibration",
        s(&calib),
        "--source",
        s(&good),
        "--projector",
        s(&proj),
    ]);
    assert!(!r.ok && r.stderr.contains("the bundle carries the projector"), "{}", r.stderr);
    // Signed for the line: `keygen`, `bundle --key`. A box that trusts the key loads it; an
    // unsigned copy, a stranger's signature or an edit after signing is refused.
    let key = tmp.path().join("host.key");
    let r = edge_ad_e2e::run(&host, &["keygen", "--out", s(&key)]);
    assert!(r.ok, "{}", r.stderr);
    let signed = tmp.path().join("signed.bundle");
    let r = edge_ad_e2e::run(&host, &["bundle", "--projector", s(&proj), "--out", s(&signed), "--key", s(&key)]);
    assert!(r.ok && r.stdout.contains("signed.bundle.sig"), "{}{}", r.stdout, r.stderr);
    let mut public = key.as_os_str().to_owned();
    public.push(".pub");
    let keys = edge_ad_core::trust::read_public_keys(Path::new(&public)).unwrap();
    let box_trust = edge_ad_core::trust::Trust { keys, allow_unsigned: false };
    assert!(edge_ad_core::bundle::load(&signed, &box_trust).is_ok());
    let e = edge_ad_core::bundle::load(&bundle, &box_trust).err().unwrap().to_string();
    assert!(e.contains("box.bundle") && e.contains("unsigned"), "{e}");
    let mut bytes = std::fs::read(&signed).unwrap();
    let n = bytes.len();
    bytes[n / 3] ^= 1;
    std::fs::write(&signed, &bytes).unwrap();
    let e = edge_ad_core::bundle::load(&signed, &box_trust).err().unwrap().to_string();
    assert!(e.contains("altered"), "{e}");
    // A corrupt bundle is refused with its name.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 1;
    std::fs::write(&bundle, &bytes).unwrap();
    let r = edge_ad(&["--bundle", s(&bundle), "run", "--calibration", s(&calib), "--source", s(&good)]);
    assert!(!r.ok && r.stderr.contains("box.bundle"), "{}", r.stderr);
}

#[test]
fn the_shipped_default_projector_is_used_unless_asked_otherwise() {
    // Both shipped projectors (the default, pretrained at 224, and the accurate setting's, at 336)
    // are embedded byte for byte, and each folder's model.calib describes exactly its files on the
    // default backbone.
    let model = edge_ad_core::model::Model::embedded_default().unwrap();
    for (folder, embedded) in [
        ("projector", edge_ad_core::model::DEFAULT_PROJECTOR),
        ("projector-336", edge_ad_core::model::ACCURATE_PROJECTOR),
    ] {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(folder);
        let files: Vec<Vec<u8>> =
            ["feat_s8.onnx", "feat_s16.onnx"].iter().map(|f| std::fs::read(shipped.join(f)).unwrap()).collect();
        let shipped_id = edge_ad_core::model::projector_digest(files.iter().map(|b| b.as_slice()));
        assert_eq!(
            edge_ad_core::model::projector_digest(embedded.iter().map(|(_, b)| *b)),
            shipped_id,
            "the binary embeds the files in models/{folder}"
        );
        let mc: ModelCalibration = decode(&std::fs::read(shipped.join("model.calib")).unwrap()).unwrap();
        mc.validate().unwrap();
        assert_eq!(mc.model.backbone_sha256, model.manifest.sha256);
        assert_eq!(mc.model.projector_sha256, Some(shipped_id));
        for (name, bytes) in ["feat_s8.onnx", "feat_s16.onnx"].iter().zip(&files) {
            let digest = mc.files.iter().find(|f| f.name.as_str() == *name).unwrap().sha256;
            assert_eq!(digest, edge_ad_core::model::sha256(bytes), "{folder}/{name}");
        }
    }
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/projector");
    let files: Vec<Vec<u8>> =
        ["feat_s8.onnx", "feat_s16.onnx"].iter().map(|f| std::fs::read(shipped.join(f)).unwrap()).collect();
    let shipped_id = edge_ad_core::model::projector_digest(files.iter().map(|b| b.as_slice()));

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    dataset(&root);
    let good = root.join("weave/train/good");
    let projector_of = |extra: &[&str]| {
        let calib = tmp.path().join("d.calib");
        let r = edge_ad(&[&["calibrate", "--shots", "3", "--source", s(&good), "--out", s(&calib)], extra].concat());
        assert!(r.ok, "{extra:?}: {}", r.stderr);
        decode::<SiteCalibration>(&std::fs::read(&calib).unwrap()).unwrap().model.projector_sha256
    };
    assert_eq!(projector_of(&[]), Some(shipped_id), "the default is the shipped projector");
    assert_eq!(projector_of(&["--projector", s(&shipped)]), Some(shipped_id), "the same as the folder");
    assert_eq!(projector_of(&["--projector", "none"]), None, "none is the identity");
    let accurate =
        edge_ad_core::model::projector_digest(edge_ad_core::model::ACCURATE_PROJECTOR.iter().map(|(_, b)| *b));
    assert_eq!(
        projector_of(&["--side", "336"]),
        Some(accurate),
        "the accurate side gets the projector pretrained at 336"
    );
    let calib: SiteCalibration = decode(&std::fs::read(tmp.path().join("d.calib")).unwrap()).unwrap();
    assert_eq!(calib.working_side, 336);
    assert_eq!(projector_of(&["--side", "336", "--projector", s(&shipped)]), Some(shipped_id), "unless one is named");
    // The threshold rule does not depend on the projector.
    let calib: SiteCalibration = decode(&std::fs::read(tmp.path().join("d.calib")).unwrap()).unwrap();
    assert_eq!((calib.threshold.spread, calib.threshold.margin), (4.0, 0.0));
}

#[test]
fn a_consistent_calibration_for_another_working_side_is_refused_before_use() {
    // A calibration that passes its checksum and its own consistency checks, but whose banks do
    // not fit the model at its working side.
    use edge_ad_core::formats::*;
    let tmp = tempfile::tempdir().unwrap();
    let model = edge_ad_core::model::Model::embedded_default().unwrap();
    let level = |c: u32, h: u32| ReferenceLevel {
        output: Name::try_from("x").unwrap(),
        channels: c,
        height: h,
        width: h,
        shots: 2,
        features: vec![0.5; (2 * h * h * c) as usize],
    };
    let calib = SiteCalibration {
        model: ModelIdentity { backbone_sha256: model.manifest.sha256, projector_sha256: None },
        scorer: ScorerKind::FeatureNorm,
        image_score: ImageScore::Max,
        resize_side: 1 << 20,
        working_side: 1 << 20,
        shot_names: vec![Name::try_from("a").unwrap(), Name::try_from("b").unwrap()],
        levels: vec![level(40, 2), level(112, 1)],
        threshold: Threshold {
            value: 1.0,
            base: 1.0,
            spread: 0.0,
            margin: 0.0,
            sensitivity: 1.0,
            stats: ScoreStats { scores: vec![1.0], min: 1.0, max: 1.0, mean: 1.0, std: 0.0 },
        },
        photometry: Photometry { mean_min: 0.0, mean_max: 255.0, std_min: 0.0, std_max: 128.0 },
        created_unix_s: 0,
    };
    let path = tmp.path().join("odd.calib");
    std::fs::write(&path, encode(&calib).unwrap()).unwrap();
    let good = tmp.path().join("good");
    std::fs::create_dir_all(&good).unwrap();
    image::RgbImage::new(64, 64).save(good.join("a.png")).unwrap();
    fails(
        &["run", "--calibration", s(&path), "--source", s(&good), "--projector", "none"],
        "odd.calib",
        "calibration level 0 is 40×2×2",
    );
}
