//! The backbone's own executor (`conv_net`) against tract on the same graphs: small graphs written
//! with tract_onnx::pb that reach every path (the image's normalisation, a padded stride-2 stem,
//! depthwise layers of every channel grouping at borders and odd sizes, a gathered 3×3
//! convolution over an activation, fused ReLU6 / ReLU and residual adds, a convolution without
//! bias), and the graphs it must decline (tract then runs them).

use edge_ad_core::backbone::{Backbone, FeatureMap};
use edge_ad_core::conv_net::{ConvNet, ConvNetRun};
use edge_ad_core::model::{self, Model};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::*;

mod common;
use common::float_nchw;

/// Deterministic values in roughly [-scale, scale].
fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            let h = (i.wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)).wrapping_mul(2246822519);
            ((h >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A graph under construction.
#[derive(Default)]
struct Graph {
    nodes: Vec<pb::NodeProto>,
    constants: Vec<pb::TensorProto>,
    seed: u32,
}

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 7, ints: v.to_vec(), ..Default::default() }
    // INTS
}

fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 2, i: v, ..Default::default() }
    // INT
}

impl Graph {
    fn constant(&mut self, name: &str, dims: &[i64], data: Vec<f32>) -> String {
        self.constants.push(pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: 1, // FLOAT
            float_data: data,
            ..Default::default()
        });
        name.into()
    }

    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attributes: Vec<pb::AttributeProto>) -> String {
        self.nodes.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            op_type: op.into(),
            name: output.into(),
            attribute: attributes,
            ..Default::default()
        });
        output.into()
    }

    /// A convolution `cin` → `cout` (depthwise when `group` = cin = cout) with random weights.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        input: &str,
        output: &str,
        (cin, cout, group): (usize, usize, usize),
        kernel: usize,
        stride: usize,
        pads: [i64; 4],
        bias: bool,
    ) -> String {
        self.seed += 1;
        let fan_in = cin / group * kernel * kernel;
        let w = values(cout * fan_in, self.seed, 1.5 / (fan_in as f32).sqrt());
        let k = kernel as i64;
        let wname = self.constant(&format!("{output}.w"), &[cout as i64, (cin / group) as i64, k, k], w);
        let mut inputs = vec![input.to_string(), wname];
        if bias {
            inputs.push(self.constant(&format!("{output}.b"), &[cout as i64], values(cout, self.seed + 1000, 0.3)));
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let attributes = vec![
            int("group", group as i64),
            ints("kernel_shape", &[k, k]),
            ints("strides", &[stride as i64, stride as i64]),
            ints("pads", &pads),
            ints("dilations", &[1, 1]),
        ];
        self.node("Conv", &inputs, output, attributes)
    }

    fn relu6(&mut self, input: &str, output: &str) -> String {
        let lo = self.constant(&format!("{output}.lo"), &[], vec![0.0]);
        let hi = self.constant(&format!("{output}.hi"), &[], vec![6.0]);
        self.node("Clip", &[input, &lo, &hi], output, vec![])
    }

    fn encode(self, outputs: &[&str]) -> Vec<u8> {
        self.encode_in_opset(outputs, 17)
    }

    fn encode_in_opset(self, outputs: &[&str], opset: i64) -> Vec<u8> {
        let graph = pb::GraphProto {
            node: self.nodes,
            name: "test".into(),
            initializer: self.constants,
            input: vec![pb::ValueInfoProto { name: "image".into(), r#type: Some(float_nchw(3)), ..Default::default() }],
            output: outputs.iter().map(|o| pb::ValueInfoProto { name: o.to_string(), ..Default::default() }).collect(),
            ..Default::default()
        };
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: opset }],
            graph: Some(graph),
            ..Default::default()
        }
        .encode_to_vec()
    }
}

/// A graph that reaches every path of the executor; its outputs are `s4` (after a residual) and
/// `s8`.
fn every_path() -> Vec<u8> {
    let mut g = Graph::default();
    let mean = g.constant("mean", &[1, 3, 1, 1], vec![0.45, 0.5, 0.55]);
    let std = g.constant("std", &[1, 3, 1, 1], vec![0.22, 0.25, 0.2]);
    g.node("Sub", &["image", &mean], "centred", vec![]);
    g.node("Div", &["centred", &std], "normalised", vec![]);
    // Stem: 3×3 stride 2, padded on the bottom and right only (as TF's SAME exports).
    g.conv("normalised", "stem", (3, 24, 1), 3, 2, [0, 0, 1, 1], true);
    g.relu6("stem", "stem.act");
    // Depthwise 3×3, 24 channels (a 16 and single channels), then a 1×1 to 20 channels.
    g.conv("stem.act", "dw1", (24, 24, 24), 3, 1, [1, 1, 1, 1], true);
    g.relu6("dw1", "dw1.act");
    g.conv("dw1.act", "pw1", (24, 20, 1), 1, 1, [0; 4], true);
    // Expand to 96 (two 48s), depthwise 5×5 stride 2, project to 20 without bias.
    g.conv("pw1", "ex2", (20, 96, 1), 1, 1, [0; 4], true);
    g.relu6("ex2", "ex2.act");
    g.conv("ex2.act", "dw2", (96, 96, 96), 5, 2, [1, 1, 2, 2], true);
    g.node("Relu", &["dw2"], "dw2.act", vec![]);
    g.conv("dw2.act", "pw2", (96, 20, 1), 1, 1, [0; 4], false);
    // A 3×3 convolution over an activation (gathered), 20 → 20, added to its input.
    g.conv("pw2", "full", (20, 20, 1), 3, 1, [1, 1, 1, 1], true);
    g.node("Add", &["pw2", "full"], "s4", vec![]);
    // Expand to 32 (a 32), depthwise 3×3 stride 2 then 5×5 stride 1, project to 40 (48-less).
    g.conv("s4", "ex3", (20, 32, 1), 1, 1, [0; 4], true);
    g.relu6("ex3", "ex3.act");
    g.conv("ex3.act", "dw3", (32, 32, 32), 3, 2, [0, 0, 1, 1], true);
    g.relu6("dw3", "dw3.act");
    g.conv("dw3.act", "dw4", (32, 32, 32), 5, 1, [2, 2, 2, 2], true);
    g.relu6("dw4", "dw4.act");
    g.conv("dw4.act", "s8", (32, 40, 1), 1, 1, [0; 4], true);
    g.encode(&["s4", "s8"])
}

/// tract's outputs (channel-major) for a 1×3×side×side input.
fn on_tract(onnx: &[u8], image: &[f32], side: usize) -> Vec<Vec<f32>> {
    let plan = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(onnx))
        .and_then(|g| g.with_input_fact(0, f32::fact([1, 3, side, side]).into()))
        .and_then(|g| g.into_optimized())
        .and_then(|g| g.into_runnable())
        .unwrap();
    let input = Tensor::from_shape(&[1, 3, side, side], image).unwrap();
    let outputs = plan.run(tvec!(input.into())).unwrap();
    outputs.iter().map(|t| t.to_plain_array_view::<f32>().unwrap().iter().copied().collect()).collect()
}

#[test]
fn the_own_executor_gives_tracts_outputs_on_every_path() {
    let onnx = every_path();
    // Odd and even sides: the windows hang over every border in turn.
    for side in [29, 32, 45] {
        let net = ConvNet::compile(&onnx, "image", &["s4", "s8"], side).unwrap();
        let shapes = net.output_shapes();
        let mut run = ConvNetRun::new(std::sync::Arc::new(net));
        let image = values(3 * side * side, side as u32, 0.5).iter().map(|v| v + 0.5).collect::<Vec<_>>();
        let mut maps: Vec<FeatureMap> = shapes.iter().map(|&(c, h, w)| FeatureMap::zeros(c, h, w)).collect();
        run.run(&image, &mut maps).unwrap();
        let expected = on_tract(&onnx, &image, side);
        for (map, want) in maps.iter().zip(&expected) {
            assert_eq!(map.data.len(), want.len(), "side {side}: {:?}", (map.channels, map.height, map.width));
            let mut chw = vec![0.0; want.len()];
            map.write_chw(&mut chw);
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = chw.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(scale > 0.1, "side {side}: a trivially small output ({scale})");
            assert!(worst <= 1e-5 * scale, "side {side}: max abs diff {worst}, largest value {scale}");
        }
        // Run again on the same buffers: the same outputs (no state leaks between frames).
        let first: Vec<Vec<f32>> = maps.iter().map(|m| m.data.clone()).collect();
        run.run(&image, &mut maps).unwrap();
        assert!(maps.iter().zip(&first).all(|(m, f)| m.data == *f), "side {side}: a second run differs");
    }
}

/// Before opset 11, Clip's bounds are attributes: a ReLU6 written that way clips as tract does.
#[test]
fn clip_bounds_given_as_attributes_in_older_opsets_are_read() {
    let mut g = Graph::default();
    g.conv("image", "stem", (3, 16, 1), 3, 2, [0, 0, 1, 1], true);
    let float = |name: &str, f: f32| pb::AttributeProto { name: name.into(), r#type: 1, f, ..Default::default() };
    g.node("Clip", &["stem"], "act", vec![float("min", 0.0), float("max", 0.25)]);
    g.conv("act", "out", (16, 8, 1), 1, 1, [0; 4], true);
    let onnx = g.encode_in_opset(&["out"], 10);
    let side = 24;
    let net = ConvNet::compile(&onnx, "image", &["out"], side).unwrap();
    let &[(c, h, w)] = net.output_shapes().as_slice() else { panic!("one output") };
    let mut run = ConvNetRun::new(std::sync::Arc::new(net));
    let image = values(3 * side * side, 3, 0.5).iter().map(|v| v + 0.5).collect::<Vec<_>>();
    let mut maps = vec![FeatureMap::zeros(c, h, w)];
    run.run(&image, &mut maps).unwrap();
    let want = &on_tract(&onnx, &image, side)[0];
    let mut chw = vec![0.0; want.len()];
    maps[0].write_chw(&mut chw);
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = chw.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-5 * scale, "max abs diff {worst}, largest value {scale}");
}

#[test]
fn graphs_of_another_family_are_declined_with_the_reason() {
    // An operator it does not run.
    let mut g = Graph::default();
    g.conv("image", "stem", (3, 8, 1), 3, 2, [1, 1, 1, 1], true);
    g.node("Sigmoid", &["stem"], "out", vec![]);
    let why = ConvNet::compile(&g.encode(&["out"]), "image", &["out"], 32).unwrap_err();
    assert!(why.contains("Sigmoid"), "{why}");

    // A clip whose input is also read elsewhere cannot be fused.
    let mut g = Graph::default();
    g.conv("image", "stem", (3, 8, 1), 3, 2, [1, 1, 1, 1], true);
    g.relu6("stem", "act");
    g.node("Add", &["stem", "act"], "out", vec![]);
    let why = ConvNet::compile(&g.encode(&["out"]), "image", &["out"], 32).unwrap_err();
    assert!(why.contains("also read"), "{why}");

    // A normalisation that broadcasts along the image's width, not its channels.
    let mut g = Graph::default();
    let along_width = g.constant("m", &[1, 1, 1, 3], vec![0.1, 0.2, 0.3]);
    g.node("Sub", &["image", &along_width], "centred", vec![]);
    g.conv("centred", "out", (3, 8, 1), 3, 2, [1, 1, 1, 1], true);
    let why = ConvNet::compile(&g.encode(&["out"]), "image", &["out"], 32).unwrap_err();
    assert!(why.contains("one per channel"), "{why}");

    // A grouped convolution that is not depthwise.
    let mut g = Graph::default();
    g.conv("image", "stem", (3, 8, 1), 3, 2, [1, 1, 1, 1], true);
    g.conv("stem", "out", (8, 8, 2), 3, 1, [1, 1, 1, 1], true);
    let why = ConvNet::compile(&g.encode(&["out"]), "image", &["out"], 32).unwrap_err();
    assert!(why.contains("group 2"), "{why}");

    // Weights that do not match their declared shape, an output that is not there, a kernel
    // larger than its input, and bytes that are not ONNX: declined, no panic.
    let mut g = Graph::default();
    g.constant("w", &[8, 3, 3, 3], vec![0.5; 10]);
    g.node("Conv", &["image", "w"], "out", vec![ints("kernel_shape", &[3, 3])]);
    assert!(ConvNet::compile(&g.encode(&["out"]), "image", &["out"], 32).is_err());
    assert!(ConvNet::compile(&every_path(), "image", &["nowhere"], 32).is_err());
    assert!(ConvNet::compile(&every_path(), "image", &["s8"], 2).is_err());
    assert!(ConvNet::compile(b"not a model", "image", &["out"], 32).is_err());
}

#[test]
fn a_wrongly_sized_input_or_output_is_an_error_not_a_panic() {
    let net = ConvNet::compile(&every_path(), "image", &["s4", "s8"], 32).unwrap();
    let shapes = net.output_shapes();
    let mut run = ConvNetRun::new(std::sync::Arc::new(net));
    let mut maps: Vec<FeatureMap> = shapes.iter().map(|&(c, h, w)| FeatureMap::zeros(c, h, w)).collect();
    assert!(run.run(&[0.5; 10], &mut maps).is_err());
    let mut wrong = vec![FeatureMap::zeros(1, 1, 1), FeatureMap::zeros(1, 1, 1)];
    assert!(run.run(&vec![0.5; 3 * 32 * 32], &mut wrong).is_err());
    assert!(run.run(&vec![0.5; 3 * 32 * 32], &mut maps[..1]).is_err());
}

/// The default model with one operator the executor does not run (an Identity on the input):
/// the backbone falls back to tract, and the features are the same as the default graph's.
#[test]
fn the_backbone_falls_back_to_tract_for_a_graph_it_declines() {
    let default = Model::embedded_default().unwrap();
    let mut proto = pb::ModelProto::decode(&default.onnx[..]).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    for node in &mut graph.node {
        for input in &mut node.input {
            if *input == "image" {
                *input = "image.same".into();
            }
        }
    }
    graph.node.insert(
        0,
        pb::NodeProto {
            input: vec!["image".into()],
            output: vec!["image.same".into()],
            op_type: "Identity".into(),
            name: "identity".into(),
            ..Default::default()
        },
    );
    let onnx = proto.encode_to_vec();
    let mut manifest = default.manifest.clone();
    manifest.sha256 = model::sha256(&onnx);
    let changed = Model::from_parts(manifest, onnx, "identity-first".into()).unwrap();
    let mut fallback = Backbone::new(&changed, 224).unwrap();
    assert_eq!(fallback.engine(), "tract");
    let mut own = Backbone::new(&default, 224).unwrap();
    assert_eq!(own.engine(), "own");
    let image = values(3 * 224 * 224, 7, 0.5).iter().map(|v| v + 0.5).collect::<Vec<_>>();
    for (a, b) in own.run(&image).unwrap().iter().zip(&fallback.run(&image).unwrap()) {
        let scale = b.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-5 * scale, "max abs diff {worst}, largest value {scale}");
    }
}
