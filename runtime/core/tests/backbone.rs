//! The embedded backbone through tract against onnxruntime's reference outputs
//! (fixture copied from shared/models/ref/feat).

use edge_ad_core::backbone::Backbone;
use edge_ad_core::model::{self, Model};
use edge_ad_core::precision::Precision;

fn read_f32(name: &str) -> Vec<f32> {
    let path = format!("{}/tests/fixtures/effnet_lite0_feat/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn embedded_model_matches_its_manifest() {
    let m = Model::embedded_default().unwrap();
    assert_eq!(m.manifest.sha256, model::sha256(model::DEFAULT_ONNX));
    assert_eq!(m.manifest.input_side, 224);
    let outs: Vec<&str> = m.manifest.levels.iter().map(|l| l.output.as_str()).collect();
    assert_eq!(outs, ["feat_s8", "feat_s16"]);
}

/// Both engines in f32 — the crate's own executor (what [`Backbone::new`] picks for this graph) and
/// tract — give onnxruntime's outputs on the reference input: within 1e-5 of the level's largest
/// value (summation orders differ between the three; a wrong tap, padding, stride or fusion is off
/// by far more).
#[test]
fn both_engines_match_onnxruntime_reference() {
    let model = Model::embedded_default().unwrap();
    let input = read_f32("input.bin");
    assert_eq!(input.len(), 3 * 224 * 224);
    let own = Backbone::new(&model, 224).unwrap();
    assert_eq!(own.engine(), "own", "the default graph runs on the own executor");
    let tract = Backbone::on_tract(&model, 224).unwrap();
    assert_eq!(tract.engine(), "tract");
    for mut backbone in [own, tract] {
        let maps = backbone.run(&input).unwrap();
        for (map, (file, shape)) in
            maps.iter().zip([("out_feat_s8.bin", (40, 28, 28)), ("out_feat_s16.bin", (112, 14, 14))])
        {
            assert_eq!((map.channels, map.height, map.width), shape);
            let reference = read_f32(file);
            let mut chw = vec![0.0; reference.len()];
            map.write_chw(&mut chw);
            let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = chw.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            eprintln!("{} {file}: max abs diff {worst:e}, largest value {scale}", backbone.engine());
            assert!(
                worst <= 1e-5 * scale,
                "{} {file}: max abs diff {worst} (largest value {scale})",
                backbone.engine()
            );
            // Not a trivially-zero output.
            assert!(scale > 0.1);
        }
    }
}

/// In f16 (emulated off Arm; native on Armv8.2 FP16, where tests/arm64/run.sh runs this test)
/// the outputs stay near onnxruntime's f32 reference: within 2 % of the largest reference value
/// of each level, and mostly far closer. Half precision carries 11 significant bits, so each of
/// the ~30 layers adds ~0.05 % of rounding; a broken translation (a wrong cast, a depthwise
/// layer read in the wrong type) is off by orders of magnitude more.
#[test]
fn f16_stays_near_the_f32_reference() {
    let mut model = Model::embedded_default().unwrap();
    model.precision = Precision::F16;
    let mut backbone = Backbone::new(&model, 224).unwrap();
    let maps = backbone.run(&read_f32("input.bin")).unwrap();
    for (map, file) in maps.iter().zip(["out_feat_s8.bin", "out_feat_s16.bin"]) {
        let reference = read_f32(file);
        let mut chw = vec![0.0; reference.len()];
        map.write_chw(&mut chw);
        let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = chw.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let mean = chw.iter().zip(&reference).map(|(a, b)| (a - b).abs()).sum::<f32>() / chw.len() as f32;
        eprintln!("{file}: f16 max abs diff {worst:.2e}, mean {mean:.2e}, largest value {scale:.2}");
        assert!(worst <= 0.02 * scale, "{file}: max abs diff {worst} against largest value {scale}");
        assert!(mean <= 0.002 * scale, "{file}: mean abs diff {mean} against largest value {scale}");
    }
}

#[test]
fn other_multiples_of_16_compile_and_give_scaled_grids() {
    let model = Model::embedded_default().unwrap();
    let mut backbone = Backbone::new(&model, 160).unwrap();
    assert_eq!(backbone.level_shapes(), &[(40, 20, 20), (112, 10, 10)]);
    let maps = backbone.run(&vec![0.5; 3 * 160 * 160]).unwrap();
    assert!(maps.iter().all(|m| m.data.iter().all(|v| v.is_finite())));
}

#[test]
fn a_manifest_whose_hash_differs_from_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = model::DEFAULT_ONNX.to_vec();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(dir.path().join("effnet_lite0_feat.onnx"), &bytes).unwrap();
    std::fs::write(dir.path().join("m.manifest"), model::DEFAULT_MANIFEST).unwrap();
    let err = Model::from_manifest(&dir.path().join("m.manifest")).err().expect("must be refused").to_string();
    assert!(err.contains("sha256") && err.contains("m.manifest"), "{err}");
}
