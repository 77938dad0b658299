//! Exports a trained [`LevelProjector`] as an ONNX graph (opset 17) through tract's own prost
//! types (`tract_onnx::pb`), so no Python is involved. The graph takes the residual map
//! `residual` [1, C, H, W] (H and W symbolic) and returns `projected` of the same shape, which is
//! the contract of the box's projector stage.
//!
//! Everything that does not depend on the input is folded at export: the references through
//! `ref_proj`, `k` and `v` become constant per-head key and value tensors, and the attention
//! scale 1/√d is folded into the query projection.

use prost::Message;
use tract_onnx::pb;

use crate::projector::{tensor_values, LevelProjector};

const FLOAT: i32 = 1;
const INT64: i32 = 7;

/// A graph under construction: nodes and initialisers with generated names.
#[derive(Default)]
struct GraphBuilder {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    counter: usize,
}

fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 2, i: v, ..Default::default() }
}

fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 7, ints: v.to_vec(), ..Default::default() }
}

impl GraphBuilder {
    fn fresh(&mut self, stem: &str) -> String {
        self.counter += 1;
        format!("{stem}_{}", self.counter)
    }

    fn constant(&mut self, stem: &str, dims: &[usize], data: Vec<f32>) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let name = self.fresh(stem);
        self.initializers.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|d| *d as i64).collect(),
            data_type: FLOAT,
            float_data: data,
            ..Default::default()
        });
        name
    }

    fn shape(&mut self, dims: &[i64]) -> String {
        let name = self.fresh("shape");
        self.initializers.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![dims.len() as i64],
            data_type: INT64,
            int64_data: dims.to_vec(),
            ..Default::default()
        });
        name
    }

    fn node(&mut self, op: &str, inputs: &[&str], attributes: Vec<pb::AttributeProto>) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        self.node_into(op, inputs, attributes, out)
    }

    fn node_into(&mut self, op: &str, inputs: &[&str], attributes: Vec<pb::AttributeProto>, out: String) -> String {
        self.nodes.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.into(),
            attribute: attributes,
            ..Default::default()
        });
        out
    }

    /// x · W + b for a burn `Linear` (weights stored [in, out]).
    fn linear(&mut self, x: &str, l: &burn::nn::Linear, scale: f32) -> String {
        let w = l.weight.val();
        let [i, o] = w.dims();
        let wd: Vec<f32> = tensor_values(w).into_iter().map(|v| v * scale).collect();
        let w = self.constant("w", &[i, o], wd);
        let mm = self.node("MatMul", &[x, &w], vec![]);
        match &l.bias {
            Some(b) => {
                let bd: Vec<f32> = tensor_values(b.val()).into_iter().map(|v| v * scale).collect();
                let b = self.constant("b", &[o], bd);
                self.node("Add", &[&mm, &b], vec![])
            }
            None => mm,
        }
    }
}

fn tensor_type(dims: Vec<pb::tensor_shape_proto::dimension::Value>) -> pb::TypeProto {
    use pb::tensor_shape_proto::Dimension;
    pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: FLOAT,
            shape: Some(pb::TensorShapeProto {
                dim: dims.into_iter().map(|v| Dimension { value: Some(v), ..Default::default() }).collect(),
            }),
        })),
        ..Default::default()
    }
}

/// The ONNX bytes of `p`, for residual maps of `C` channels and any H × W.
pub fn export_level(p: &LevelProjector) -> Vec<u8> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    let size = p.size();
    let (c, h) = (size.channels, size.heads);
    let dh = c / h;
    let n = size.keys;
    let mut g = GraphBuilder::default();

    // Constant keys and values, laid out per head: K as [h, dh, N], V as [h, N, dh].
    let kv = p.ref_proj.forward(p.refs.val());
    let k = tensor_values(p.k.forward(kv.clone()));
    let v = tensor_values(p.v.forward(kv));
    let mut kt = vec![0.0f32; h * dh * n];
    let mut vh = vec![0.0f32; h * n * dh];
    for row in 0..n {
        for head in 0..h {
            for d in 0..dh {
                kt[(head * dh + d) * n + row] = k[row * c + head * dh + d];
                vh[(head * n + row) * dh + d] = v[row * c + head * dh + d];
            }
        }
    }
    let kt = g.constant("keys", &[h, dh, n], kt);
    let vh = g.constant("values", &[h, n, dh], vh);

    let to_cl = g.shape(&[1, c as i64, -1]);
    let flat = g.node("Reshape", &["residual", &to_cl], vec![]);
    let x = g.node("Transpose", &[&flat], vec![attr_ints("perm", &[0, 2, 1])]); // [1, L, C]
    let input_scale = g.constant("input_scale", &[], vec![p.input_scale]);
    let x = g.node("Mul", &[&x, &input_scale], vec![]);

    let q = g.linear(&x, &p.q, 1.0 / (dh as f32).sqrt());
    let split = g.shape(&[1, -1, h as i64, dh as i64]);
    let q = g.node("Reshape", &[&q, &split], vec![]);
    let q = g.node("Transpose", &[&q], vec![attr_ints("perm", &[0, 2, 1, 3])]); // [1, h, L, dh]
    let scores = g.node("MatMul", &[&q, &kt], vec![]); // [1, h, L, N]
    let att = g.node("Softmax", &[&scores], vec![attr_int("axis", -1)]);
    let a = g.node("MatMul", &[&att, &vh], vec![]); // [1, h, L, dh]
    let a = g.node("Transpose", &[&a], vec![attr_ints("perm", &[0, 2, 1, 3])]);
    let merge = g.shape(&[1, -1, c as i64]);
    let a = g.node("Reshape", &[&a, &merge], vec![]);
    let a = g.linear(&a, &p.out, 1.0);
    let x1 = g.node("Sub", &[&x, &a], vec![]);

    let hid = g.linear(&x1, &p.fc1, 1.0);
    let squeeze = g.node("ReduceMean", &[&hid], vec![attr_ints("axes", &[1]), attr_int("keepdims", 1)]);
    let s = g.linear(&squeeze, &p.se_a, 1.0);
    let s = g.node("Relu", &[&s], vec![]);
    let s = g.linear(&s, &p.se_b, 1.0);
    let gate = g.node("Sigmoid", &[&s], vec![]);
    let hid = g.node("Mul", &[&hid, &gate], vec![]);
    // Exact GELU: x · ½ · (1 + erf(x / √2)).
    let sqrt2 = g.constant("sqrt2", &[], vec![std::f32::consts::SQRT_2]);
    let one = g.constant("one", &[], vec![1.0]);
    let half = g.constant("half", &[], vec![0.5]);
    let e = g.node("Div", &[&hid, &sqrt2], vec![]);
    let e = g.node("Erf", &[&e], vec![]);
    let e = g.node("Add", &[&e, &one], vec![]);
    let e = g.node("Mul", &[&hid, &e], vec![]);
    let hid = g.node("Mul", &[&e, &half], vec![]);
    let y = g.linear(&hid, &p.fc2, 1.0);
    let y = g.node("Add", &[&y, &x1], vec![]);

    let y = g.node("Transpose", &[&y], vec![attr_ints("perm", &[0, 2, 1])]); // [1, C, L]
    let shape = g.node("Shape", &["residual"], vec![]);
    g.node_into("Reshape", &[&y, &shape], vec![], "projected".into());

    let io_dims =
        || vec![Dim::DimValue(1), Dim::DimValue(c as i64), Dim::DimParam("h".into()), Dim::DimParam("w".into())];
    let graph = pb::GraphProto {
        node: g.nodes,
        name: "edge_ad_projector".into(),
        initializer: g.initializers,
        input: vec![pb::ValueInfoProto {
            name: "residual".into(),
            r#type: Some(tensor_type(io_dims())),
            ..Default::default()
        }],
        output: vec![pb::ValueInfoProto {
            name: "projected".into(),
            r#type: Some(tensor_type(io_dims())),
            ..Default::default()
        }],
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
        producer_name: "edge-ad-host".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}
