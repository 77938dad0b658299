//! The projector's own executor against tract on the same graphs: the embedded projectors (both
//! pretrainings, each level) on maps of several sizes, and graphs that are not the exporter's,
//! which it must decline (tract then runs them).

use std::path::{Path, PathBuf};

use edge_ad_core::backbone::FeatureMap;
use edge_ad_core::model::{ACCURATE_PROJECTOR, DEFAULT_PROJECTOR};
use edge_ad_core::projector::{Engines, Projector};
use edge_ad_core::projector_net::{ProjectorNet, ProjectorNetRun};
use prost::Message;
use tract_onnx::pb;

/// A residual-like map: values in about ±2, varying with `seed`.
fn residuals(c: usize, h: usize, w: usize, seed: u32) -> FeatureMap {
    let mut map = FeatureMap::zeros(c, h, w);
    for (i, v) in map.data.iter_mut().enumerate() {
        let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503)) >> 8;
        *v = (x % 4001) as f32 / 1000.0 - 2.0;
    }
    map
}

/// Both engines' projector over the same level files, for maps of `(c, h, w)` each.
fn both(files: &[(PathBuf, Vec<u8>)], shapes: &[(usize, usize, usize)]) -> (Projector, Projector) {
    let origin = Path::new("test");
    let own = Projector::from_bytes_on(files, shapes, origin, Engines::OwnFirst).unwrap();
    let tract = Projector::from_bytes_on(files, shapes, origin, Engines::TractOnly).unwrap();
    (own, tract)
}

fn embedded(files: &[(&str, &[u8]); 2]) -> Vec<(PathBuf, Vec<u8>)> {
    files.iter().map(|(name, bytes)| (PathBuf::from(name), bytes.to_vec())).collect()
}

/// Largest difference between two maps, relative to the largest magnitude in `b`.
fn relative_difference(a: &FeatureMap, b: &FeatureMap) -> f32 {
    let scale = b.data.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.data.iter().zip(&b.data).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn the_embedded_projectors_give_tracts_results_on_maps_of_any_size() {
    // Level channels 40 and 112; the grids of 224 and 336, a small odd one and a single patch.
    for (set, files) in [("224", embedded(&DEFAULT_PROJECTOR)), ("336", embedded(&ACCURATE_PROJECTOR))] {
        for grids in [[(28, 28), (14, 14)], [(42, 42), (21, 21)], [(5, 7), (3, 1)], [(1, 1), (1, 1)]] {
            let shapes = [(40, grids[0].0, grids[0].1), (112, grids[1].0, grids[1].1)];
            let (own, tract) = both(&files, &shapes);
            assert_eq!((own.engine(), tract.engine()), ("own", "tract"));
            let (mut own_run, mut tract_run) = (own.run().unwrap(), tract.run().unwrap());
            for (level, &(c, h, w)) in shapes.iter().enumerate() {
                let input = residuals(c, h, w, level as u32 + 1);
                let (mut a, mut b) = (input.clone(), input.clone());
                own_run.project(level, &mut a).unwrap();
                tract_run.project(level, &mut b).unwrap();
                let d = relative_difference(&a, &b);
                // Measured: below 7e-7; a gate off by 1e-4 gives 6e-5.
                assert!(d < 5e-6, "set {set}, level {level}, {h}×{w}: {d}");
                assert!(relative_difference(&a, &input) > 1e-2, "the projector changes the map");
                // A second run over the same buffers gives the same values.
                let mut again = input.clone();
                own_run.project(level, &mut again).unwrap();
                assert_eq!(again, a, "set {set}, level {level}, {h}×{w}: second run");
            }
        }
    }
}

#[test]
fn a_map_of_another_shape_is_an_error() {
    let net = std::sync::Arc::new(ProjectorNet::compile(DEFAULT_PROJECTOR[0].1, 40).unwrap());
    let mut run = ProjectorNetRun::new(net, 28 * 28).unwrap();
    let err = run.run(&mut residuals(40, 14, 14, 1)).unwrap_err();
    assert!(err.contains("196 patches"), "{err}");
    let err = run.run(&mut residuals(112, 28, 28, 1)).unwrap_err();
    assert!(err.contains("112 channels"), "{err}");
    // The graph's channels are checked when it is compiled.
    let err = ProjectorNet::compile(DEFAULT_PROJECTOR[0].1, 112).unwrap_err();
    assert!(err.contains("[1, 112, -1]"), "{err}");
}

/// The default projector's level-0 graph, changed by `edit`.
fn edited(edit: impl FnOnce(&mut pb::ModelProto)) -> Vec<u8> {
    let mut model = pb::ModelProto::decode(DEFAULT_PROJECTOR[0].1).unwrap();
    edit(&mut model);
    model.encode_to_vec()
}

fn graph(model: &mut pb::ModelProto) -> &mut pb::GraphProto {
    model.graph.as_mut().unwrap()
}

fn node<'a>(model: &'a mut pb::ModelProto, op: &str) -> &'a mut pb::NodeProto {
    graph(model).node.iter_mut().find(|n| n.op_type == op).unwrap()
}

#[test]
fn graphs_other_than_the_exporters_are_declined_with_the_reason() {
    let declined = |bytes: Vec<u8>, why: &str| {
        let err = ProjectorNet::compile(&bytes, 40).unwrap_err();
        assert!(err.contains(why), "expected {why:?} in {err:?}");
    };
    declined(b"not onnx".to_vec(), "not an ONNX model");
    // The softmax over another axis.
    declined(
        edited(|m| {
            let n = node(m, "Softmax");
            n.attribute[0].i = 2;
        }),
        "a softmax not over the keys",
    );
    // x₁ = a − x instead of x − a.
    declined(
        edited(|m| {
            let n = node(m, "Sub");
            n.input.swap(0, 1);
        }),
        "does not read",
    );
    // A sigmoid gate turned into a tanh.
    declined(edited(|m| node(m, "Sigmoid").op_type = "Tanh".into()), "expected Sigmoid");
    // A different opset.
    declined(edited(|m| m.opset_import[0].version = 18), "opset 18");
    // A mean over the channels.
    declined(
        edited(|m| {
            let n = node(m, "ReduceMean");
            n.attribute.iter_mut().find(|a| a.name == "axes").unwrap().ints = vec![2];
        }),
        "a mean not over the patches",
    );
    // Keys of another width than the heads'.
    declined(
        edited(|m| {
            let g = graph(m);
            let keys = g.initializer.iter_mut().find(|t| t.name.starts_with("keys")).unwrap();
            keys.dims = vec![2, 20, 64];
        }),
        "keys of shape [2, 20, 64]",
    );
}

#[test]
fn a_declined_graph_runs_on_tract_and_gives_the_same_projection() {
    // An Identity after the projector's output: the same function, not the exporter's graph.
    let bytes = edited(|m| {
        let g = graph(m);
        let last = g.node.last_mut().unwrap();
        last.output = vec!["before".into()];
        g.node.push(pb::NodeProto {
            input: vec!["before".into()],
            output: vec!["projected".into()],
            op_type: "Identity".into(),
            name: "extra".into(),
            ..Default::default()
        });
    });
    assert!(ProjectorNet::compile(&bytes, 40).unwrap_err().contains("nodes after"));
    let shapes = [(40, 28, 28), (112, 14, 14)];
    let mut files = embedded(&DEFAULT_PROJECTOR);
    let own = Projector::from_bytes_on(&files, &shapes, Path::new("test"), Engines::OwnFirst).unwrap();
    files[0].1 = bytes;
    let mixed = Projector::from_bytes_on(&files, &shapes, Path::new("test"), Engines::OwnFirst).unwrap();
    assert_eq!((own.engine(), mixed.engine()), ("own", "own and tract"));
    let input = residuals(40, 28, 28, 7);
    let (mut a, mut b) = (input.clone(), input);
    own.project(0, &mut a).unwrap();
    mixed.project(0, &mut b).unwrap();
    assert!(relative_difference(&b, &a) < 5e-6);
}

/// Each worker has its own buffers, wherever the allocator puts them: the projection must not
/// depend on that to the last bit (workers and processes must agree; tract-linalg's exp-and-sum
/// adds a slice's unaligned head apart).
#[test]
fn runs_over_buffers_anywhere_give_the_same_bits() {
    // A small grid: its buffers come from the heap (16-byte aligned), not from fresh pages.
    let net = std::sync::Arc::new(ProjectorNet::compile(DEFAULT_PROJECTOR[0].1, 40).unwrap());
    let input = residuals(40, 5, 7, 5);
    let mut first = None;
    // Runs kept alive and made between allocations of odd sizes, so that their buffers start at
    // varied offsets.
    let (mut runs, mut spacers) = (Vec::new(), Vec::new());
    for k in 0..12 {
        spacers.push(vec![0u8; 16 + 48 * k]);
        runs.push(ProjectorNetRun::new(net.clone(), 5 * 7).unwrap());
        let mut map = input.clone();
        runs.last_mut().unwrap().run(&mut map).unwrap();
        match &first {
            None => first = Some(map),
            Some(f) => assert!(map.data.iter().zip(&f.data).all(|(a, b)| a.to_bits() == b.to_bits()), "run {k}"),
        }
    }
}
