//! The projector stage runs a per-level ONNX graph through tract. The graph here is a 1×1
//! convolution written with tract_onnx::pb, so the expected output is known exactly.

use edge_ad_core::backbone::FeatureMap;
use edge_ad_core::model::Model;
use edge_ad_core::projector::Projector;
use prost::Message;
use tract_onnx::pb;

mod common;
use common::float_nchw;

fn conv1x1_onnx(c: usize, weight: &[f32], bias: &[f32]) -> Vec<u8> {
    let tensor = |name: &str, dims: Vec<i64>, data: &[f32]| pb::TensorProto {
        name: name.into(),
        dims,
        data_type: 1, // FLOAT
        float_data: data.to_vec(),
        ..Default::default()
    };
    let node = pb::NodeProto {
        input: vec!["x".into(), "w".into(), "b".into()],
        output: vec!["y".into()],
        op_type: "Conv".into(),
        name: "proj".into(),
        ..Default::default()
    };
    let graph = pb::GraphProto {
        node: vec![node],
        name: "projector".into(),
        initializer: vec![tensor("w", vec![c as i64, c as i64, 1, 1], weight), tensor("b", vec![c as i64], bias)],
        input: vec![pb::ValueInfoProto { name: "x".into(), r#type: Some(float_nchw(c)), ..Default::default() }],
        output: vec![pb::ValueInfoProto { name: "y".into(), ..Default::default() }],
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn onnx_projector_applies_each_levels_graph() {
    let model = Model::embedded_default().unwrap();
    let shapes = edge_ad_core::backbone::expected_shapes(&model.manifest, 64);
    let dir = tempfile::tempdir().unwrap();
    let mut weights = Vec::new();
    for (level, &(c, _, _)) in model.manifest.levels.iter().zip(&shapes) {
        let w: Vec<f32> = (0..c * c).map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5).collect();
        let b: Vec<f32> = (0..c).map(|i| i as f32 * 0.01).collect();
        std::fs::write(dir.path().join(format!("{}.onnx", level.output)), conv1x1_onnx(c, &w, &b)).unwrap();
        weights.push((w, b));
    }
    let projector = Projector::from_dir(dir.path(), &model.manifest, &shapes).unwrap();
    assert!(projector.digest().is_some());
    for (l, &(c, h, w)) in shapes.iter().enumerate() {
        let mut map = FeatureMap::zeros(c, h, w);
        map.data.iter_mut().enumerate().for_each(|(i, v)| *v = ((i % 17) as f32 - 8.0) / 8.0);
        let input = map.clone();
        projector.project(l, &mut map).unwrap();
        let (wt, b) = &weights[l];
        for p in 0..h * w {
            for o in 0..c {
                let expected: f32 = b[o] + (0..c).map(|i| wt[o * c + i] * input.data[p * c + i]).sum::<f32>();
                let got = map.data[p * c + o];
                assert!((got - expected).abs() < 1e-4, "level {l} patch {p} ch {o}: {got} vs {expected}");
            }
        }
    }
}

#[test]
fn a_missing_or_wrong_projector_file_is_named() {
    let model = Model::embedded_default().unwrap();
    let shapes = edge_ad_core::backbone::expected_shapes(&model.manifest, 64);
    let dir = tempfile::tempdir().unwrap();
    let err = Projector::from_dir(dir.path(), &model.manifest, &shapes).err().unwrap().to_string();
    assert!(err.contains("feat_s8.onnx"), "{err}");
    std::fs::write(dir.path().join("feat_s8.onnx"), b"not onnx").unwrap();
    let err = Projector::from_dir(dir.path(), &model.manifest, &shapes).err().unwrap().to_string();
    assert!(err.contains("feat_s8.onnx"), "{err}");
    let err = Projector::from_dir(&dir.path().join("nope"), &model.manifest, &shapes).err().unwrap().to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn the_embedded_default_projector_belongs_to_the_default_backbone_only() {
    let model = Model::embedded_default().unwrap();
    let shapes = edge_ad_core::backbone::expected_shapes(&model.manifest, 224);
    let default = Projector::default_for(&model, 224).unwrap();
    let files = edge_ad_core::model::DEFAULT_PROJECTOR;
    assert_eq!(default.digest(), Some(edge_ad_core::model::projector_digest(files.iter().map(|(_, b)| *b))));
    // It changes the residuals, and keeps their shape.
    let (c, h, w) = shapes[0];
    let mut map = FeatureMap::zeros(c, h, w);
    map.data.iter_mut().enumerate().for_each(|(i, v)| *v = ((i % 29) as f32 - 14.0) / 7.0);
    let input = map.clone();
    default.project(0, &mut map).unwrap();
    assert_eq!((map.channels, map.height, map.width), (c, h, w));
    assert!(map.data.iter().zip(&input.data).any(|(a, b)| (a - b).abs() > 1e-3));
    assert!(map.data.iter().all(|v| v.is_finite()));
    // Another backbone (another sha256) gets the identity, not a projector made for other features.
    let mut other = model.clone();
    other.manifest.sha256[0] ^= 1;
    assert!(!other.is_default_backbone());
    assert_eq!(Projector::default_for(&other, 224).unwrap().digest(), None);
    assert_eq!(Projector::default_for(&other, 336).unwrap().digest(), None);
    // `none` asks for the identity; no path asks for the default.
    assert_eq!(Projector::open(Some(std::path::Path::new("none")), &model, 224).unwrap().digest(), None);
    assert_eq!(Projector::open(None, &model, 224).unwrap().digest(), default.digest());
}

#[test]
fn the_accurate_setting_gets_the_projector_pretrained_at_its_side() {
    use edge_ad_core::model::{projector_digest, ACCURATE_PROJECTOR, DEFAULT_PROJECTOR};
    let model = Model::embedded_default().unwrap();
    let digest = |files: &[(&str, &[u8]); 2]| Some(projector_digest(files.iter().map(|(_, b)| *b)));
    assert_ne!(digest(&DEFAULT_PROJECTOR), digest(&ACCURATE_PROJECTOR));
    // The nearer pretraining side wins: 224 up to 280 (a tie stays with the default), 336 above.
    for (side, expected) in [
        (160, &DEFAULT_PROJECTOR),
        (224, &DEFAULT_PROJECTOR),
        (272, &DEFAULT_PROJECTOR),
        (288, &ACCURATE_PROJECTOR),
        (336, &ACCURATE_PROJECTOR),
        (448, &ACCURATE_PROJECTOR),
    ] {
        let p = Projector::open(None, &model, side).unwrap();
        assert_eq!(p.digest(), digest(expected), "side {side}");
    }
    assert_eq!(edge_ad_core::model::embedded_projector(280).1, "models/projector");
    // It compiles for the accurate side's grids and changes the residuals there.
    let shapes = edge_ad_core::backbone::expected_shapes(&model.manifest, 336);
    let p = Projector::default_for(&model, 336).unwrap();
    let (c, h, w) = shapes[0];
    assert_eq!((h, w), (42, 42));
    let mut map = FeatureMap::zeros(c, h, w);
    map.data.iter_mut().enumerate().for_each(|(i, v)| *v = ((i % 31) as f32 - 15.0) / 7.0);
    let input = map.clone();
    p.project(0, &mut map).unwrap();
    assert!(map.data.iter().zip(&input.data).any(|(a, b)| (a - b).abs() > 1e-3));
    assert!(map.data.iter().all(|v| v.is_finite()));
}
