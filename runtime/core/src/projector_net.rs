//! The projector's own executor: the graph edge-ad-host exports for each level's projector
//! (`firmware-host/src/onnx_export.rs`), run on the residual map as it lies (patch-major rows of
//! C values), in buffers allocated once per worker.
//!
//! The graph, for the L patches of one map (x one patch's row):
//!
//! 1. x ← s · x (a scalar input scale);
//! 2. attention against constant keys and values, per head j of h (head width C / h):
//!    a = concatⱼ softmax(qⱼ · Kⱼ) · Vⱼ with q = x · W_q + b_q, then x₁ = x − (a · W_o + b_o);
//! 3. z = x₁ · W₁ + b₁, gated per column by sigmoid(relu(mean over patches of z · W_a + b_a) · W_b
//!    + b_b) (squeeze and excitation), then exact GELU: z · (erf(z / √2) + 1) · ½;
//! 4. y = z · W₂ + b₂ + x₁.
//!
//! Why not tract for it: tract runs the graph with a tensor allocated for every operator's output
//! (222 allocations a frame at 224², the design wants none) and needs 1.6× onnxruntime's time on
//! it (README, *Speed*). Here the products go through the gemm crate (the crate's `matmul`
//! module; the gate's two one-row products are plain loops), and softmax, erf and the sigmoid
//! through tract-linalg's own kernels, the ones tract's operators call.
//!
//! [`ProjectorNet::compile`] recognises that graph node by node: the operators, their order, how
//! they are wired, and the constants' shapes. Any other graph is declined with the reason, and
//! [`crate::projector`] runs it on tract as before.

use std::collections::HashMap;

use tract_linalg::element_wise::ElementWise;
use tract_linalg::reduce::{MapReduce, Reduce};
use tract_linalg::Func;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::feature_map::FeatureMap;
use crate::matmul::{product, Layout};

/// x · W + b: `weights` is inputs × outputs, row-major; `bias` has one value per output (zeros
/// when the graph has none).
#[derive(Debug)]
struct Linear {
    weights: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

/// One level's projector graph, compiled for residual maps of `channels` channels and any number
/// of patches. Shared between workers; each has its own [`ProjectorNetRun`].
#[derive(Debug)]
pub struct ProjectorNet {
    channels: usize,
    heads: usize,
    /// Keys per head N.
    keys: usize,
    input_scale: f32,
    query: Linear,
    /// Per head, dh × N row-major (the graph's [h, dh, N]).
    key_matrix: Vec<f32>,
    /// Per head, N × dh row-major (the graph's [h, N, dh]).
    value_matrix: Vec<f32>,
    out: Linear,
    fc1: Linear,
    squeeze: Linear,
    excite: Linear,
    /// GELU's constants as the graph gives them: z · (erf(z / divisor) + one) · half.
    gelu_divisor: f32,
    gelu_one: f32,
    gelu_half: f32,
    fc2: Linear,
}

/// Why a graph is not ours to run.
type Declined = String;

impl ProjectorNet {
    /// Recognises the projector graph in `onnx` for residual maps of `channels` channels. `Err`
    /// says why it is not the exported projector's graph (then tract runs it); no input makes
    /// this panic.
    pub fn compile(onnx: &[u8], channels: usize) -> Result<Self, Declined> {
        let (proto, opset) = crate::onnx_read::model(onnx)?;
        let graph = proto.graph.as_ref().ok_or("the model has no graph")?;
        // Softmax before 13 flattens from its axis on (the same on the last axis), ReduceMean from 18
        // takes its axes as an input: the exporter writes 17.
        if !(13..=17).contains(&opset) {
            return Err(format!("opset {opset} (the exported projector's is 17)"));
        }
        let [input] = &graph.input[..] else { return Err("not one graph input".into()) };
        let [output] = &graph.output[..] else { return Err("not one graph output".into()) };
        let mut m = Matcher::new(graph)?;
        let net = m.projector(&input.name, channels)?;
        if m.at != graph.node.len() {
            return Err(format!("{} nodes after the projector's", graph.node.len() - m.at));
        }
        if m.last != output.name {
            return Err(format!("the graph output {} is not the projector's", output.name));
        }
        Ok(net)
    }

    /// Channels C of the residual maps it takes.
    pub fn channels(&self) -> usize {
        self.channels
    }
}

/// Walks the graph's nodes in order against the exporter's sequence.
struct Matcher<'a> {
    nodes: &'a [pb::NodeProto],
    constants: HashMap<&'a str, Tensor>,
    /// Next node to match.
    at: usize,
    /// The last matched node's output.
    last: &'a str,
}

impl<'a> Matcher<'a> {
    fn new(graph: &'a pb::GraphProto) -> Result<Self, Declined> {
        Ok(Self { nodes: &graph.node, constants: crate::onnx_read::constants(graph)?, at: 0, last: "" })
    }

    /// The next node, which must be `op` of the default domain with one output and its first
    /// input `from`; becomes the last matched.
    fn next(&mut self, op: &str, from: &str) -> Result<&'a pb::NodeProto, Declined> {
        let node = self.nodes.get(self.at).ok_or_else(|| format!("the graph ends where {op} was expected"))?;
        let what = |why: String| format!("node {} ({}): {why}", self.at, node.op_type);
        if node.op_type != op || !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(what(format!("expected {op}")));
        }
        let [out] = &node.output[..] else { return Err(what("not one output".into())) };
        if node.input.first().map(String::as_str) != Some(from) {
            return Err(what(format!("does not read {from}")));
        }
        self.at += 1;
        self.last = out;
        Ok(node)
    }

    /// The node's input `i` as a constant's f32 values and dims.
    fn constant(&self, node: &pb::NodeProto, i: usize) -> Result<(Vec<f32>, Vec<usize>), Declined> {
        let name = node.input.get(i).ok_or_else(|| format!("{} has no input {i}", node.op_type))?;
        let t = self.constants.get(name.as_str()).ok_or_else(|| format!("{name} is not a constant"))?;
        let t = t.cast_to::<f32>().map_err(|e| format!("{name}: {e}"))?;
        let view = t.to_plain_array_view::<f32>().map_err(|e| format!("{name}: {e}"))?;
        Ok((view.iter().copied().collect(), view.shape().to_vec()))
    }

    /// The node's input `i` as one number (a constant of one value).
    fn scalar(&self, node: &pb::NodeProto, i: usize) -> Result<f32, Declined> {
        match self.constant(node, i)?.0[..] {
            [v] if v.is_finite() => Ok(v),
            _ => Err(format!("{}'s input {i} is not one finite number", node.op_type)),
        }
    }

    /// The node's input `i` as integers (a Reshape's target shape).
    fn integers(&self, node: &pb::NodeProto, i: usize) -> Result<Vec<i64>, Declined> {
        let name = node.input.get(i).ok_or_else(|| format!("{} has no input {i}", node.op_type))?;
        let t = self.constants.get(name.as_str()).ok_or_else(|| format!("{name} is not a constant"))?;
        let view = t.to_plain_array_view::<i64>().map_err(|e| format!("{name}: {e}"))?;
        Ok(view.iter().copied().collect())
    }

    fn reshape(&mut self, from: &str, to: &[i64]) -> Result<(), Declined> {
        let node = self.next("Reshape", from)?;
        match self.integers(node, 1)? {
            shape if shape == to => Ok(()),
            shape => Err(format!("a reshape to {shape:?} where {to:?} was expected")),
        }
    }

    fn transpose(&mut self, from: &str, perm: &[i64]) -> Result<(), Declined> {
        let node = self.next("Transpose", from)?;
        match node.get_attr_opt_vec::<i64>("perm").map_err(|e| e.to_string())? {
            Some(p) if p == perm => Ok(()),
            p => Err(format!("a transpose by {p:?} where {perm:?} was expected")),
        }
    }

    /// A node `op` whose second input is `with` (a value of the graph, not a constant).
    fn binary(&mut self, op: &str, from: &str, with: &str) -> Result<(), Declined> {
        let node = self.next(op, from)?;
        match &node.input[..] {
            [_, second] if second == with => Ok(()),
            _ => Err(format!("{op} does not take {with} second")),
        }
    }

    /// A node `op` whose second input is one number.
    fn by_scalar(&mut self, op: &str, from: &str) -> Result<f32, Declined> {
        let node = self.next(op, from)?;
        self.scalar(node, 1)
    }

    /// A MatMul by a constant inputs × outputs matrix, and the Add of a constant bias of outputs
    /// values when one follows.
    fn linear(&mut self, from: &str, inputs: Option<usize>) -> Result<Linear, Declined> {
        let node = self.next("MatMul", from)?;
        let (weights, dims) = self.constant(node, 1)?;
        let &[i, o] = &dims[..] else { return Err(format!("weights of shape {dims:?}")) };
        if inputs.is_some_and(|n| n != i) || i == 0 || o == 0 {
            return Err(format!("weights of shape {dims:?} after {inputs:?} values"));
        }
        let product = self.last;
        let bias = match self.nodes.get(self.at) {
            Some(n) if n.op_type == "Add" && n.input.first().map(String::as_str) == Some(product) => {
                let node = self.next("Add", product)?;
                match self.constant(node, 1)? {
                    (b, d) if d == [o] => b,
                    (_, d) => return Err(format!("a bias of shape {d:?} for {o} outputs")),
                }
            }
            _ => vec![0.0; o],
        };
        Ok(Linear { weights, bias, inputs: i, outputs: o })
    }

    /// The exporter's sequence (`export_level`), from the graph input `input`.
    fn projector(&mut self, input: &'a str, c: usize) -> Result<ProjectorNet, Declined> {
        let ci = i64::try_from(c).map_err(|_| "channels out of range")?;
        self.reshape(input, &[1, ci, -1])?;
        self.transpose(self.last, &[0, 2, 1])?;
        let input_scale = self.by_scalar("Mul", self.last)?;
        let x = self.last;
        let query = self.linear(x, Some(c))?;
        if query.outputs != c {
            return Err(format!("queries of {} values for {c} channels", query.outputs));
        }
        // The head split: [1, L, h, dh] → [1, h, L, dh].
        let split = self.next("Reshape", self.last)?;
        let &[1, -1, h, dh] = &self.integers(split, 1)?[..] else {
            return Err("the head split is not [1, -1, h, dh]".into());
        };
        let (heads, head_dim) = (usize::try_from(h).unwrap_or(0), usize::try_from(dh).unwrap_or(0));
        if heads == 0 || heads.checked_mul(head_dim) != Some(c) {
            return Err(format!("{h} heads of {dh} for {c} channels"));
        }
        self.transpose(self.last, &[0, 2, 1, 3])?;
        let node = self.next("MatMul", self.last)?;
        let (key_matrix, dims) = self.constant(node, 1)?;
        let &[kh, kd, keys] = &dims[..] else { return Err(format!("keys of shape {dims:?}")) };
        if (kh, kd) != (heads, head_dim) || keys == 0 {
            return Err(format!("keys of shape {dims:?} for {heads} heads of {head_dim}"));
        }
        let node = self.next("Softmax", self.last)?;
        if !matches!(node.get_attr_opt::<i64>("axis").map_err(|e| e.to_string())?, None | Some(-1 | 3)) {
            return Err("a softmax not over the keys".into());
        }
        let node = self.next("MatMul", self.last)?;
        let (value_matrix, dims) = self.constant(node, 1)?;
        if dims != [heads, keys, head_dim] {
            return Err(format!("values of shape {dims:?} for {heads} heads, {keys} keys of {head_dim}"));
        }
        self.transpose(self.last, &[0, 2, 1, 3])?;
        self.reshape(self.last, &[1, -1, ci])?;
        let out = self.linear(self.last, Some(c))?;
        if out.outputs != c {
            return Err(format!("an attention output of {} values for {c} channels", out.outputs));
        }
        self.binary("Sub", x, self.last)?;
        let x1 = self.last;
        let fc1 = self.linear(x1, Some(c))?;
        let hidden = self.last;
        let node = self.next("ReduceMean", hidden)?;
        let axes = node.get_attr_opt_vec::<i64>("axes").map_err(|e| e.to_string())?;
        let keepdims = node.get_attr_opt::<i64>("keepdims").map_err(|e| e.to_string())?.unwrap_or(1);
        if axes.as_deref() != Some(&[1]) || keepdims != 1 || node.input.len() != 1 {
            return Err("a mean not over the patches".into());
        }
        let squeeze = self.linear(self.last, Some(fc1.outputs))?;
        self.next("Relu", self.last)?;
        let excite = self.linear(self.last, Some(squeeze.outputs))?;
        if excite.outputs != fc1.outputs {
            return Err(format!("a gate of {} values for {} hidden", excite.outputs, fc1.outputs));
        }
        self.next("Sigmoid", self.last)?;
        let gate = self.last;
        self.binary("Mul", hidden, gate)?;
        let gated = self.last;
        let gelu_divisor = self.by_scalar("Div", gated)?;
        self.next("Erf", self.last)?;
        let gelu_one = self.by_scalar("Add", self.last)?;
        self.binary("Mul", gated, self.last)?;
        let gelu_half = self.by_scalar("Mul", self.last)?;
        let fc2 = self.linear(self.last, Some(fc1.outputs))?;
        if fc2.outputs != c {
            return Err(format!("an output of {} values for {c} channels", fc2.outputs));
        }
        self.binary("Add", self.last, x1)?;
        self.transpose(self.last, &[0, 2, 1])?;
        let y = self.last;
        let node = self.next("Shape", input)?;
        if node.input.len() != 1 {
            return Err("a shape with a range".into());
        }
        let shape = self.last;
        self.binary("Reshape", y, shape)?;
        Ok(ProjectorNet {
            channels: c,
            heads,
            keys,
            input_scale,
            query,
            key_matrix,
            value_matrix,
            out,
            fc1,
            squeeze,
            excite,
            gelu_divisor,
            gelu_one,
            gelu_half,
            fc2,
        })
    }
}

/// Softmax over rows as tract's Softmax operator does it: its whole-buffer row kernel where the
/// host has one and rows are a multiple of 4 long, else its per-row max, exp-and-sum and scale.
enum Softmax {
    Rows(tract_linalg::routines::SoftmaxRowsF32),
    PerRow { max: Box<dyn Reduce<f32>>, exp_sum: Box<dyn MapReduce<f32, f32>>, scale: Box<dyn ElementWise<f32, f32>> },
}

impl Softmax {
    fn new(row_len: usize) -> TractResult<Self> {
        match tract_linalg::routines::softmax_rows_f32() {
            Some(rows) if row_len.is_multiple_of(4) => Ok(Self::Rows(rows)),
            _ => Ok(Self::PerRow {
                max: Func::ReduceMax.reduce_f32()?,
                exp_sum: Func::Softmax2.map_reduce_f32()?,
                scale: Func::MulByScalar.ew_f32_param()?,
            }),
        }
    }

    fn run(&self, rows: &mut [f32], row_len: usize) -> TractResult<()> {
        match self {
            Self::Rows(kernel) => kernel(rows, row_len),
            Self::PerRow { max, exp_sum, scale } => {
                for row in rows.chunks_exact_mut(row_len) {
                    let m = max.run(row)?;
                    let sum = exp_sum.run_with_params(row, m)?;
                    scale.run_with_params(row, sum.recip())?;
                }
            }
        }
        Ok(())
    }
}

/// One worker's buffers for a [`ProjectorNet`] and maps of one number of patches: allocated
/// once, reused every frame.
pub struct ProjectorNetRun {
    net: std::sync::Arc<ProjectorNet>,
    patches: usize,
    /// x, then x₁ (patches × C).
    x: Vec<f32>,
    /// q, then the heads' attention output (patches × C).
    q: Vec<f32>,
    /// Per head, patches × N scores, then weights: `scores[scores_at..]`, which starts on a
    /// 128-byte boundary (see [`ProjectorNetRun::new`]).
    scores: Vec<f32>,
    scores_at: usize,
    /// z (patches × hidden).
    hidden: Vec<f32>,
    /// z / divisor, then its erf (patches × hidden).
    erf_of: Vec<f32>,
    /// Mean over patches, then the gate (hidden).
    gate: Vec<f32>,
    /// The squeeze's output.
    squeezed: Vec<f32>,
    softmax: Softmax,
    erf: Box<dyn ElementWise<f32>>,
    sigmoid: Box<dyn ElementWise<f32>>,
}

impl ProjectorNetRun {
    /// Buffers for `net` and maps of `patches` patches; `Err` when tract-linalg has no erf,
    /// sigmoid or softmax kernel on this host (then tract runs the graph).
    pub fn new(net: std::sync::Arc<ProjectorNet>, patches: usize) -> Result<Self, String> {
        let (c, e) = (net.channels, net.fc1.outputs);
        let kernels =
            (|| Ok::<_, TractError>((Softmax::new(net.keys)?, Func::Erf.ew_f32()?, Func::Sigmoid.ew_f32()?)))();
        let (softmax, erf, sigmoid) = kernels.map_err(|e| format!("no kernel: {e}"))?;
        // tract-linalg's exp-and-sum takes a slice's unaligned head apart from its aligned body,
        // so a row's sum is added in an order that depends on where the buffer lies: on a
        // malloc'd buffer the scores changed in the last digit from one process to the next.
        // Starting the scores on a 128-byte boundary (tract's tensors' alignment) fixes the order.
        let scores = vec![0.0; net.heads * patches * net.keys + 32];
        let scores_at = scores.as_ptr().align_offset(128).min(32);
        Ok(Self {
            patches,
            x: vec![0.0; patches * c],
            q: vec![0.0; patches * c],
            scores,
            scores_at,
            hidden: vec![0.0; patches * e],
            erf_of: vec![0.0; patches * e],
            gate: vec![0.0; e],
            squeezed: vec![0.0; net.squeeze.outputs],
            softmax,
            erf,
            sigmoid,
            net,
        })
    }

    /// The compiled graph.
    pub fn net(&self) -> &std::sync::Arc<ProjectorNet> {
        &self.net
    }

    /// Projects `map` in place. `Err` when its shape is not the one the run was made for, or a
    /// kernel fails.
    pub fn run(&mut self, map: &mut FeatureMap) -> Result<(), String> {
        let net = &*self.net;
        let (l, c, e) = (self.patches, net.channels, net.fc1.outputs);
        if map.channels != c || map.patches() != l || map.data.len() != l * c {
            return Err(format!(
                "a map of {} channels × {} patches, the run takes {c} × {l}",
                map.channels,
                map.patches()
            ));
        }
        for (x, r) in self.x.iter_mut().zip(&map.data) {
            *x = r * net.input_scale;
        }
        linear(&net.query, &self.x, &mut self.q, l);
        let (n, dh) = (net.keys, c / net.heads);
        let all_scores = &mut self.scores[self.scores_at..][..net.heads * l * n];
        for j in 0..net.heads {
            let scores = &mut all_scores[j * l * n..(j + 1) * l * n];
            product(
                (scores, Layout::dense(l, n)),
                (&self.q[j * dh..], Layout { rows: l, cols: dh, stride: c }),
                (&net.key_matrix[j * dh * n..], Layout::dense(dh, n)),
                false,
                1.0,
            );
        }
        self.softmax.run(all_scores, n).map_err(|e| format!("softmax: {e}"))?;
        // The heads' outputs side by side, over q (no longer read).
        for j in 0..net.heads {
            product(
                (&mut self.q[j * dh..], Layout { rows: l, cols: dh, stride: c }),
                (&all_scores[j * l * n..], Layout::dense(l, n)),
                (&net.value_matrix[j * n * dh..], Layout::dense(n, dh)),
                false,
                1.0,
            );
        }
        // x₁ = x − (a · W_o + b_o), over x.
        for row in self.x.chunks_exact_mut(c) {
            for (v, b) in row.iter_mut().zip(&net.out.bias) {
                *v -= b;
            }
        }
        product((&mut self.x, Layout::dense(l, c)), (&self.q, Layout::dense(l, c)), weights(&net.out), true, -1.0);
        linear(&net.fc1, &self.x, &mut self.hidden, l);
        // The gate: sigmoid(relu(mean · W_a + b_a) · W_b + b_b).
        self.gate.fill(0.0);
        for row in self.hidden.chunks_exact(e) {
            for (m, v) in self.gate.iter_mut().zip(row) {
                *m += v;
            }
        }
        for m in &mut self.gate {
            *m /= l as f32;
        }
        matvec(&net.squeeze, &self.gate, &mut self.squeezed);
        for v in &mut self.squeezed {
            *v = v.max(0.0);
        }
        matvec(&net.excite, &self.squeezed, &mut self.gate);
        self.sigmoid.run(&mut self.gate).map_err(|e| format!("sigmoid: {e}"))?;
        // Gated, then GELU as the graph writes it.
        for row in self.hidden.chunks_exact_mut(e) {
            for (v, g) in row.iter_mut().zip(&self.gate) {
                *v *= g;
            }
        }
        for (t, v) in self.erf_of.iter_mut().zip(&self.hidden) {
            *t = v / net.gelu_divisor;
        }
        self.erf.run(&mut self.erf_of).map_err(|e| format!("erf: {e}"))?;
        for (v, t) in self.hidden.iter_mut().zip(&self.erf_of) {
            *v = *v * (t + net.gelu_one) * net.gelu_half;
        }
        // y = z · W₂ + b₂ + x₁, into the map.
        for (out, x1) in map.data.chunks_exact_mut(c).zip(self.x.chunks_exact(c)) {
            for ((o, x), b) in out.iter_mut().zip(x1).zip(&net.fc2.bias) {
                *o = x + b;
            }
        }
        product(
            (&mut map.data, Layout::dense(l, c)),
            (&self.hidden, Layout::dense(l, e)),
            weights(&net.fc2),
            true,
            1.0,
        );
        Ok(())
    }
}

/// A linear layer's weights as a product operand.
fn weights(layer: &Linear) -> (&[f32], Layout) {
    (&layer.weights, Layout::dense(layer.inputs, layer.outputs))
}

/// `out` (rows × outputs) = `x` (rows × inputs) · W + b.
fn linear(layer: &Linear, x: &[f32], out: &mut [f32], rows: usize) {
    let o = layer.outputs;
    for row in out[..rows * o].chunks_exact_mut(o) {
        row.copy_from_slice(&layer.bias);
    }
    product((out, Layout::dense(rows, o)), (x, Layout::dense(rows, layer.inputs)), weights(layer), true, 1.0);
}

/// `out` = `x` · W + b for one row (the gate's small layers: a plain loop).
fn matvec(layer: &Linear, x: &[f32], out: &mut [f32]) {
    out.copy_from_slice(&layer.bias);
    for (xi, w) in x.iter().zip(layer.weights.chunks_exact(layer.outputs)) {
        for (o, wij) in out.iter_mut().zip(w) {
            *o += xi * wij;
        }
    }
}
