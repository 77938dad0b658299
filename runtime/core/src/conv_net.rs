//! The backbone's own executor: ONNX graphs made only of convolutions, ReLU6 (or ReLU) clips,
//! residual adds and a constant normalisation of the input — the MobileNet / EfficientNet-Lite
//! family the default model belongs to — run channel-last, in buffers allocated once per worker.
//!
//! Why not tract, for these graphs: on the default backbone tract 0.23.9 spends 7.8 ms of its
//! 12 ms in the 1×1 convolutions' matrix kernels plus about 1 ms packing the activations every
//! run, and runs each depthwise layer's ReLU6 as a separate pass over memory (0.85 ms);
//! onnxruntime needs 6.2 ms for the whole backbone (README, *Speed*; `backbone_profile` against
//! `benches/ort_backbone_profile.py`). Here:
//!
//! - every convolution with one group is a matrix product through the `gemm` crate (AVX-512,
//!   AVX2+FMA or NEON kernels chosen at run time), over blocks of output pixels: the product is
//!   written into the block's output rows (added to the residual's rows, when an Add follows),
//!   then bias and clip are applied in one pass while the rows are still in cache. A 1×1
//!   convolution multiplies the activations where they lie; others (the stem) gather a block's
//!   patches first. The image is normalised into a channel-last buffer once per frame;
//! - depthwise convolutions run channel-last, two pixels × up to 48 channels at a time in
//!   registers, with bias and clip fused;
//! - buffers are reused once a value has had its last reader, and none is allocated per frame.
//!
//! Anything else in a graph (another operator, dilations, grouped but not depthwise
//! convolutions, an Add or Clip that cannot be fused) makes [`ConvNet::compile`] decline, and
//! [`crate::backbone`] runs the graph through tract as before.
#![allow(unsafe_code)]

use std::collections::HashMap;

use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::feature_map::FeatureMap;
use crate::matmul::{product, Layout};

/// Output pixels per block of a matrix-product convolution: the block's output rows (and a
/// gathered block of patches) stay in L2 between the product and the bias and clip. Each block is
/// one call of the gemm crate, which allocates its packing buffers per call: 1024 rows gave the
/// same speed as 128–256 (`backbone_engines`) with 80 allocations a frame instead of 260.
const BLOCK_ROWS: usize = 1024;

/// A channel-last activation: H × W pixels of C values, in one of the run's buffers.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Shape {
    height: usize,
    width: usize,
    channels: usize,
}

impl Shape {
    fn len(&self) -> usize {
        self.height * self.width * self.channels
    }
}

/// Where a convolution reads: the graph's input image (normalised per channel into a
/// channel-last buffer once per frame), or a buffer.
#[derive(Clone, Copy, Debug)]
enum Source {
    Image,
    Buffer(usize),
}

/// Convolution geometry: kernel, stride and padding (top, left).
#[derive(Clone, Copy, Debug)]
struct Window {
    kernel_h: usize,
    kernel_w: usize,
    stride_h: usize,
    stride_w: usize,
    pad_top: usize,
    pad_left: usize,
}

/// One step of the plan.
#[derive(Debug)]
enum Step {
    /// A convolution with one group as a matrix product: `weights` is (kh·kw·Cin) × Cout,
    /// row-major, rows in (ky, kx, c) order.
    Product {
        source: Source,
        input: Shape,
        window: Window,
        /// True for a 1×1, stride 1, unpadded convolution over a buffer: no gathering.
        pointwise: bool,
        weights: Vec<f32>,
        bias: Vec<f32>,
        clip: Option<(f32, f32)>,
        residual: Option<usize>,
        output: usize,
        out: Shape,
    },
    /// A depthwise convolution (one group per channel): `weights` is kh·kw rows of C.
    Depthwise {
        input: usize,
        in_shape: Shape,
        window: Window,
        weights: Vec<f32>,
        bias: Vec<f32>,
        clip: Option<(f32, f32)>,
        output: usize,
        out: Shape,
    },
}

/// A graph compiled for one input side: the steps, the buffers' sizes, and which buffers hold
/// the requested outputs. Shared between workers; each has its own [`ConvNetRun`].
#[derive(Debug)]
pub struct ConvNet {
    side: usize,
    /// Per input channel: value · scale + shift is what the first convolution sees.
    scale: [f32; 3],
    shift: [f32; 3],
    steps: Vec<Step>,
    buffer_sizes: Vec<usize>,
    outputs: Vec<(usize, Shape)>,
    /// Largest gathered block of patches (rows × kh·kw·Cin), for convolutions that gather.
    gather_len: usize,
}

/// A value of the graph while it is being compiled.
#[derive(Clone, Copy, Debug)]
enum Value {
    /// The image, normalised by `scale` and `shift` so far.
    Image { scale: [f32; 3], shift: [f32; 3] },
    /// A step's output (the step's index, its shape). A Clip or an Add that follows may be fused
    /// into that step (see `Compiler::node`).
    Computed { step: usize, shape: Shape },
}

/// Why a graph is not ours to run.
type Declined = String;

impl ConvNet {
    /// Compiles the ONNX model in `onnx` for a 1×3×`side`×`side` input named `input`, with the
    /// `outputs` named. `Err` says why the graph is not of the family this runs (then tract runs
    /// it); no input makes this panic.
    pub fn compile(onnx: &[u8], input: &str, outputs: &[&str], side: usize) -> Result<Self, String> {
        let (proto, opset) = crate::onnx_read::model(onnx)?;
        let graph = proto.graph.as_ref().ok_or("the model has no graph")?;
        // Before opset 7 the element-wise operators broadcast only by an attribute; opsets 7 to 10
        // give Clip's bounds as attributes (handled below).
        if opset < 7 {
            return Err(format!("opset {opset}"));
        }
        Compiler::new(graph, side, opset)?.compile(input, outputs)
    }

    /// The steps' count (for the log).
    pub fn steps(&self) -> usize {
        self.steps.len()
    }

    /// (C, H, W) of each requested output, in the order asked.
    pub fn output_shapes(&self) -> Vec<(usize, usize, usize)> {
        self.outputs.iter().map(|(_, s)| (s.channels, s.height, s.width)).collect()
    }
}

struct Compiler<'a> {
    graph: &'a pb::GraphProto,
    side: usize,
    /// The model's version of the default ONNX operator set.
    opset: i64,
    constants: HashMap<&'a str, Tensor>,
    values: HashMap<&'a str, Value>,
    /// How many nodes (and graph outputs) read each value.
    readers: HashMap<&'a str, usize>,
    steps: Vec<Step>,
    /// The image's normalisation as the convolutions that read it see it.
    image_normalisation: Option<([f32; 3], [f32; 3])>,
    /// Last step that reads each buffer (logical buffers, one per step output).
    last_read: Vec<usize>,
}

impl<'a> Compiler<'a> {
    fn new(graph: &'a pb::GraphProto, side: usize, opset: i64) -> Result<Self, Declined> {
        let constants = crate::onnx_read::constants(graph)?;
        let mut readers: HashMap<&str, usize> = HashMap::new();
        for node in &graph.node {
            for i in &node.input {
                *readers.entry(i.as_str()).or_default() += 1;
            }
        }
        for o in &graph.output {
            *readers.entry(o.name.as_str()).or_default() += 1;
        }
        Ok(Self {
            graph,
            side,
            opset,
            constants,
            values: HashMap::new(),
            readers,
            steps: Vec::new(),
            image_normalisation: None,
            last_read: Vec::new(),
        })
    }

    fn compile(mut self, input: &str, outputs: &[&str]) -> Result<ConvNet, Declined> {
        let graph = self.graph;
        let Some(input_name) = graph.input.iter().find(|i| i.name == input).map(|i| i.name.as_str()) else {
            return Err(format!("no graph input named {input}"));
        };
        self.values.insert(input_name, Value::Image { scale: [1.0; 3], shift: [0.0; 3] });
        for node in &self.graph.node {
            self.node(node).map_err(|why| format!("node {} ({}): {why}", node.name, node.op_type))?;
        }
        let mut wanted = Vec::new();
        for name in outputs {
            match self.values.get(name) {
                Some(Value::Computed { step, shape }) => wanted.push((*step, *shape)),
                _ => return Err(format!("output {name} is not a convolution's")),
            }
        }
        let (scale, shift) = self.image_normalisation.ok_or("no convolution reads the image")?;
        let (assignment, buffer_sizes) = self.assign_buffers(&wanted);
        for step in &mut self.steps {
            remap(step, &assignment);
        }
        let gather_len = self
            .steps
            .iter()
            .map(|s| match s {
                Step::Product { pointwise: false, window, input, .. } => {
                    BLOCK_ROWS * window.kernel_h * window.kernel_w * input.channels
                }
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        Ok(ConvNet {
            side: self.side,
            scale,
            shift,
            steps: self.steps,
            buffer_sizes,
            outputs: wanted.iter().map(|&(step, shape)| (assignment[step], shape)).collect(),
            gather_len,
        })
    }

    fn image_value(&self, name: &str) -> Option<Value> {
        self.values.get(name).copied().filter(|v| matches!(v, Value::Image { .. }))
    }

    fn readers(&self, name: &str) -> usize {
        self.readers.get(name).copied().unwrap_or(0)
    }

    fn constant(&self, name: &str) -> Result<&Tensor, Declined> {
        self.constants.get(name).ok_or_else(|| format!("{name} is not a constant"))
    }

    fn floats(&self, name: &str) -> Result<Vec<f32>, Declined> {
        let t = self.constant(name)?;
        let t = t.cast_to::<f32>().map_err(|e| format!("{name}: {e}"))?;
        Ok(t.to_plain_array_view::<f32>().map_err(|e| format!("{name}: {e}"))?.iter().copied().collect())
    }

    fn value(&self, name: &str) -> Result<Value, Declined> {
        self.values.get(name).copied().ok_or_else(|| format!("{name} is not a value this runs"))
    }

    fn node(&mut self, node: &'a pb::NodeProto) -> Result<(), Declined> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(format!("an operator of domain {}", node.domain));
        }
        let out = node.output.first().filter(|_| node.output.len() == 1).ok_or("not one output")?.as_str();
        let input = |i: usize| node.input.get(i).map(String::as_str).ok_or_else(|| format!("no input {i}"));
        match (node.op_type.as_str(), node.input.first().and_then(|i| self.image_value(i))) {
            ("Sub" | "Mul" | "Div" | "Add", Some(Value::Image { mut scale, mut shift })) => {
                let k = self.per_channel(input(1)?)?;
                for c in 0..3 {
                    match node.op_type.as_str() {
                        "Sub" => shift[c] -= k[c],
                        "Add" => shift[c] += k[c],
                        "Mul" => (scale[c], shift[c]) = (scale[c] * k[c], shift[c] * k[c]),
                        _ => (scale[c], shift[c]) = (scale[c] / k[c], shift[c] / k[c]),
                    }
                }
                self.values.insert(out, Value::Image { scale, shift });
                Ok(())
            }
            ("Conv", _) => self.conv(node, out),
            ("Clip" | "Relu", _) => {
                let (lo, hi) = if node.op_type == "Relu" {
                    (0.0, f32::INFINITY)
                } else if self.opset < 11 {
                    // Clip-6: the bounds are attributes.
                    let bound = |name: &str, default: f32| -> Result<f32, Declined> {
                        Ok(node.get_attr_opt::<f32>(name).map_err(|e| e.to_string())?.unwrap_or(default))
                    };
                    (bound("min", f32::NEG_INFINITY)?, bound("max", f32::INFINITY)?)
                } else {
                    let bound = |i: usize, default: f32| -> Result<f32, Declined> {
                        match node.input.get(i).filter(|n| !n.is_empty()) {
                            None => Ok(default),
                            Some(n) => self.floats(n)?.first().copied().ok_or_else(|| format!("{n} is empty")),
                        }
                    };
                    (bound(1, f32::NEG_INFINITY)?, bound(2, f32::INFINITY)?)
                };
                if lo.is_nan() || hi.is_nan() || lo > hi {
                    return Err(format!("clip bounds {lo}, {hi}"));
                }
                let Value::Computed { step, shape } = self.value(input(0)?)? else {
                    return Err("clips the image".into());
                };
                if self.readers(input(0)?) != 1 {
                    return Err("its input is also read elsewhere".into());
                }
                match &mut self.steps[step] {
                    Step::Product { clip: c @ None, .. } | Step::Depthwise { clip: c @ None, .. } => {
                        *c = Some((lo, hi))
                    }
                    _ => return Err("follows a clip".into()),
                }
                self.values.insert(out, Value::Computed { step, shape });
                Ok(())
            }
            ("Add", _) => {
                let (a, b) = (self.value(input(0)?)?, self.value(input(1)?)?);
                let (Value::Computed { step: sa, shape: ha }, Value::Computed { step: sb, shape: hb }) = (a, b) else {
                    return Err("adds the image".into());
                };
                if ha != hb {
                    return Err("adds different shapes".into());
                }
                // The later product (no clip, no residual, read only here) takes the other as its
                // residual.
                let fusable = |s: usize, name: &str| {
                    self.readers(name) == 1 && matches!(self.steps[s], Step::Product { clip: None, residual: None, .. })
                };
                let (into, other) = if sa > sb && fusable(sa, input(0)?) {
                    (sa, sb)
                } else if sb > sa && fusable(sb, input(1)?) {
                    (sb, sa)
                } else {
                    return Err("no product to fuse the add into".into());
                };
                if let Step::Product { residual, .. } = &mut self.steps[into] {
                    *residual = Some(other);
                }
                self.read(other, into);
                self.values.insert(out, Value::Computed { step: into, shape: ha });
                Ok(())
            }
            (other, _) => Err(format!("operator {other} is not one this runs")),
        }
    }

    /// A constant that broadcasts over the 1×3×H×W image as one value, or as one value per
    /// channel (shape [3, 1, 1] or [1, 3, 1, 1]).
    fn per_channel(&self, name: &str) -> Result<[f32; 3], Declined> {
        let shape = self.constant(name)?.shape().to_vec();
        let v = self.floats(name)?;
        let rank = shape.len();
        let per_channel = rank >= 3 && shape[rank - 3] == 3 && shape.iter().filter(|&&d| d != 1).count() == 1;
        match v.len() {
            1 => Ok([v[0]; 3]),
            3 if per_channel => Ok([v[0], v[1], v[2]]),
            _ => Err(format!("{name} of shape {shape:?} is not one value or one per channel")),
        }
    }

    /// Notes that `step` reads the output of step `of`.
    fn read(&mut self, of: usize, step: usize) {
        self.last_read[of] = self.last_read[of].max(step);
    }

    fn conv(&mut self, node: &'a pb::NodeProto, out: &'a str) -> Result<(), Declined> {
        let attr_ints = |name: &str| -> Result<Option<Vec<i64>>, Declined> {
            node.get_attr_opt_vec::<i64>(name).map_err(|e| e.to_string())
        };
        if let Some(pad) = node.get_attr_opt::<&str>("auto_pad").map_err(|e| e.to_string())? {
            if pad != "NOTSET" {
                return Err(format!("auto_pad {pad}"));
            }
        }
        if attr_ints("dilations")?.is_some_and(|d| d.iter().any(|&x| x != 1)) {
            return Err("dilated".into());
        }
        let group = node.get_attr_opt::<i64>("group").map_err(|e| e.to_string())?.unwrap_or(1);
        let weight_name = node.input.get(1).ok_or("no weights")?;
        let w = self.constant(weight_name)?;
        let &[cout, cin_per_group, kh, kw] = w.shape() else {
            return Err(format!("weights of shape {:?}", w.shape()));
        };
        let weights = self.floats(weight_name)?;
        let bias = match node.input.get(2).filter(|n| !n.is_empty()) {
            Some(b) => self.floats(b)?,
            None => vec![0.0; cout],
        };
        if bias.len() != cout || cout == 0 || kh == 0 || kw == 0 {
            return Err("bias or kernel of the wrong size".into());
        }
        let strides = attr_ints("strides")?.unwrap_or(vec![1, 1]);
        let pads = attr_ints("pads")?.unwrap_or(vec![0; 4]);
        let (&[sh, sw], &[pt, pl, pb, pr]) = (strides.as_slice(), pads.as_slice()) else {
            return Err("not a 2-D convolution".into());
        };
        let small = |v: i64, lo: i64| (lo..=64).contains(&v);
        if !(small(sh, 1) && small(sw, 1) && [pt, pl, pb, pr].iter().all(|&p| small(p, 0)) && kh <= 64 && kw <= 64) {
            return Err("stride, padding or kernel out of range".into());
        }
        let window = Window {
            kernel_h: kh,
            kernel_w: kw,
            stride_h: sh as usize,
            stride_w: sw as usize,
            pad_top: pt as usize,
            pad_left: pl as usize,
        };
        let source_value = self.value(node.input.first().ok_or("no input")?)?;
        let (source, in_shape) = match source_value {
            Value::Image { scale, shift } => {
                // Every convolution of the image must see it normalised the same way: the run
                // normalises it once.
                match self.image_normalisation {
                    None => self.image_normalisation = Some((scale, shift)),
                    Some(seen) if seen == (scale, shift) => {}
                    Some(_) => return Err("convolutions read the image normalised differently".into()),
                }
                (Source::Image, Shape { height: self.side, width: self.side, channels: 3 })
            }
            Value::Computed { step, shape } => (Source::Buffer(step), shape),
        };
        let out_side = |len: usize, k: usize, s: usize, a: i64, b: i64| {
            (len + a as usize + b as usize).checked_sub(k).map(|span| span / s + 1)
        };
        let (Some(oh), Some(ow)) = (
            out_side(in_shape.height, kh, window.stride_h, pt, pb),
            out_side(in_shape.width, kw, window.stride_w, pl, pr),
        ) else {
            return Err("kernel larger than its padded input".into());
        };
        let out_shape = Shape { height: oh, width: ow, channels: cout };
        let step = self.steps.len();
        let cin = in_shape.channels;
        let step_kind = if group == 1 && cin_per_group == cin {
            if Some(weights.len()) != [cin, kh, kw].iter().try_fold(cout, |n, &d| n.checked_mul(d)) {
                return Err("weights of the wrong size".into());
            }
            // (co, c, ky, kx) → rows (ky, kx, c), columns co.
            let mut product = vec![0.0; weights.len()];
            for co in 0..cout {
                for c in 0..cin {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            product[((ky * kw + kx) * cin + c) * cout + co] =
                                weights[((co * cin + c) * kh + ky) * kw + kx];
                        }
                    }
                }
            }
            let pointwise = matches!(source, Source::Buffer(_))
                && kh == 1
                && kw == 1
                && window.stride_h == 1
                && window.stride_w == 1
                && [pt, pl, pb, pr] == [0; 4];
            Step::Product {
                source,
                input: in_shape,
                window,
                pointwise,
                weights: product,
                bias,
                clip: None,
                residual: None,
                output: step,
                out: out_shape,
            }
        } else if group as usize == cin && cin_per_group == 1 && cout == cin {
            let Source::Buffer(input) = source else {
                return Err("a depthwise convolution of the image".into());
            };
            if Some(weights.len()) != [kh, kw].iter().try_fold(cout, |n, &d| n.checked_mul(d)) {
                return Err("weights of the wrong size".into());
            }
            // (c, 1, ky, kx) → rows (ky, kx) of C.
            let mut taps = vec![0.0; weights.len()];
            for c in 0..cout {
                for t in 0..kh * kw {
                    taps[t * cout + c] = weights[c * kh * kw + t];
                }
            }
            Step::Depthwise { input, in_shape, window, weights: taps, bias, clip: None, output: step, out: out_shape }
        } else {
            return Err(format!("group {group} over {cin} channels"));
        };
        self.steps.push(step_kind);
        self.last_read.push(step);
        if let Source::Buffer(of) = source {
            self.read(of, step);
        }
        self.values.insert(out, Value::Computed { step, shape: out_shape });
        Ok(())
    }

    /// Maps each step's output to a physical buffer, reusing a buffer once its value has had its
    /// last reader; the wanted outputs are never reused. Returns the map and the buffers' sizes.
    fn assign_buffers(&self, wanted: &[(usize, Shape)]) -> (Vec<usize>, Vec<usize>) {
        let mut last = self.last_read.clone();
        for &(step, _) in wanted {
            last[step] = usize::MAX;
        }
        let mut assignment = vec![0; self.steps.len()];
        let mut freed = vec![false; self.steps.len()];
        let mut sizes: Vec<usize> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        for (step, shape) in self.steps.iter().map(Step::out).enumerate() {
            // Values whose last reader came before this step free their buffers for it (not
            // those this step reads: a step never writes where it reads).
            for earlier in 0..step {
                if !freed[earlier] && last[earlier] < step {
                    free.push(assignment[earlier]);
                    freed[earlier] = true;
                }
            }
            // A free buffer big enough, else the biggest free one (grown), else a new one.
            let fits = free.iter().position(|&b| sizes[b] >= shape.len());
            let biggest = (0..free.len()).max_by_key(|&i| sizes[free[i]]);
            let slot = match fits.or(biggest) {
                Some(i) => free.swap_remove(i),
                None => {
                    sizes.push(0);
                    sizes.len() - 1
                }
            };
            sizes[slot] = sizes[slot].max(shape.len());
            assignment[step] = slot;
        }
        (assignment, sizes)
    }
}

impl Step {
    /// The step's output shape.
    fn out(&self) -> Shape {
        match self {
            Step::Product { out, .. } | Step::Depthwise { out, .. } => *out,
        }
    }
}

/// Rewrites a step's logical buffers (step indices) to physical ones.
fn remap(step: &mut Step, to: &[usize]) {
    match step {
        Step::Product { source, residual, output, .. } => {
            if let Source::Buffer(b) = source {
                *b = to[*b];
            }
            if let Some(r) = residual {
                *r = to[*r];
            }
            *output = to[*output];
        }
        Step::Depthwise { input, output, .. } => {
            *input = to[*input];
            *output = to[*output];
        }
    }
}

/// One worker's buffers for a [`ConvNet`]: allocated once, reused every frame.
pub struct ConvNetRun {
    net: std::sync::Arc<ConvNet>,
    buffers: Vec<Vec<f32>>,
    gathered: Vec<f32>,
    /// The normalised image, channel-last.
    image: Vec<f32>,
}

impl ConvNetRun {
    /// Buffers for `net`.
    pub fn new(net: std::sync::Arc<ConvNet>) -> Self {
        let buffers = net.buffer_sizes.iter().map(|&n| vec![0.0; n]).collect();
        let gathered = vec![0.0; net.gather_len];
        let image = vec![0.0; 3 * net.side * net.side];
        Self { net, buffers, gathered, image }
    }

    /// The compiled graph.
    pub fn net(&self) -> &std::sync::Arc<ConvNet> {
        &self.net
    }

    /// Runs the graph on one C×H×W image (3·side² values) and fills `outputs`, one map per
    /// requested output, each shaped as [`ConvNet::output_shapes`] says.
    pub fn run(&mut self, chw: &[f32], outputs: &mut [FeatureMap]) -> Result<(), String> {
        let net = &*self.net;
        if chw.len() != 3 * net.side * net.side {
            return Err(format!("input has {} values, the graph takes {}", chw.len(), 3 * net.side * net.side));
        }
        if outputs.len() != net.outputs.len() {
            return Err(format!("{} outputs asked, the graph gives {}", outputs.len(), net.outputs.len()));
        }
        for (map, (_, shape)) in outputs.iter().zip(&net.outputs) {
            if (map.channels, map.height, map.width) != (shape.channels, shape.height, shape.width)
                || map.data.len() != shape.len()
            {
                return Err(format!(
                    "an output map of {}×{}×{}, the graph gives {}×{}×{}",
                    map.channels, map.height, map.width, shape.channels, shape.height, shape.width
                ));
            }
        }
        normalise_image(chw, &mut self.image, (&net.scale, &net.shift));
        for step in &net.steps {
            match step {
                Step::Product { source, input, window, pointwise, weights, bias, clip, residual, output, out } => {
                    let mut dst = std::mem::take(&mut self.buffers[*output]);
                    let src: &[f32] = match source {
                        Source::Image => &self.image,
                        Source::Buffer(b) => &self.buffers[*b],
                    };
                    let residual = residual.map(|r| &self.buffers[r][..out.len()]);
                    let product = Product { input: *input, window: *window, weights, bias, clip: *clip, out: *out };
                    if *pointwise {
                        product.pointwise(src, residual, &mut dst[..out.len()]);
                    } else {
                        product.gathered(
                            |row, oy, ox| gather_buffer(row, src, input, window, (oy, ox)),
                            &mut self.gathered,
                            residual,
                            &mut dst[..out.len()],
                        );
                    }
                    self.buffers[*output] = dst;
                }
                Step::Depthwise { input, in_shape, window, weights, bias, clip, output, out } => {
                    let mut dst = std::mem::take(&mut self.buffers[*output]);
                    depthwise(
                        &self.buffers[*input][..in_shape.len()],
                        *in_shape,
                        *window,
                        weights,
                        bias,
                        clip.unwrap_or((f32::NEG_INFINITY, f32::INFINITY)),
                        &mut dst[..out.len()],
                        *out,
                    );
                    self.buffers[*output] = dst;
                }
            }
        }
        for (map, (buffer, shape)) in outputs.iter_mut().zip(&net.outputs) {
            map.data.copy_from_slice(&self.buffers[*buffer][..shape.len()]);
        }
        Ok(())
    }
}

/// A matrix-product convolution's constants, for one run.
struct Product<'a> {
    input: Shape,
    window: Window,
    weights: &'a [f32],
    bias: &'a [f32],
    clip: Option<(f32, f32)>,
    out: Shape,
}

impl Product<'_> {
    /// A 1×1 convolution: the input's rows are the product's left operand as they lie.
    fn pointwise(&self, src: &[f32], residual: Option<&[f32]>, dst: &mut [f32]) {
        let (k, n) = (self.input.channels, self.out.channels);
        let pixels = self.out.height * self.out.width;
        for first in (0..pixels).step_by(BLOCK_ROWS) {
            let rows = BLOCK_ROWS.min(pixels - first);
            let block = &mut dst[first * n..(first + rows) * n];
            let residual = residual.map(|r| &r[first * n..(first + rows) * n]);
            self.block(block, &src[first * k..(first + rows) * k], rows, k, residual);
        }
    }

    /// Any other convolution: each block of output pixels' patches is gathered into rows of
    /// kh·kw·Cin by `gather(row, output y, output x)` first.
    fn gathered(
        &self,
        gather: impl Fn(&mut [f32], usize, usize),
        scratch: &mut [f32],
        residual: Option<&[f32]>,
        dst: &mut [f32],
    ) {
        let k = self.window.kernel_h * self.window.kernel_w * self.input.channels;
        let n = self.out.channels;
        let pixels = self.out.height * self.out.width;
        for first in (0..pixels).step_by(BLOCK_ROWS) {
            let rows = BLOCK_ROWS.min(pixels - first);
            let patches = &mut scratch[..rows * k];
            for (r, row) in patches.chunks_exact_mut(k).enumerate() {
                gather(row, (first + r) / self.out.width, (first + r) % self.out.width);
            }
            let block = &mut dst[first * n..(first + rows) * n];
            let residual = residual.map(|r| &r[first * n..(first + rows) * n]);
            self.block(block, patches, rows, k, residual);
        }
    }

    /// One block of output rows: the product (added to the residual's rows when an Add was
    /// fused), then bias and clip in one pass while the rows are in cache.
    fn block(&self, block: &mut [f32], lhs: &[f32], rows: usize, k: usize, residual: Option<&[f32]>) {
        let n = self.out.channels;
        if let Some(r) = residual {
            block.copy_from_slice(r);
        }
        product(
            (block, Layout::dense(rows, n)),
            (lhs, Layout::dense(rows, k)),
            (self.weights, Layout::dense(k, n)),
            residual.is_some(),
            1.0,
        );
        let (lo, hi) = self.clip.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        bias_and_clip(block, self.bias, lo, hi);
    }
}

/// Each row of `values` plus `bias`, clipped to `lo..=hi`.
#[multiversion::multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
fn bias_and_clip(values: &mut [f32], bias: &[f32], lo: f32, hi: f32) {
    for row in values.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = (*v + b).max(lo).min(hi);
        }
    }
}

/// One output pixel's patch, (ky, kx, c) order, from a channel-last buffer; zero outside. The
/// taps of one kernel row that fall inside are one contiguous span of the input.
fn gather_buffer(row: &mut [f32], src: &[f32], input: &Shape, window: &Window, (oy, ox): (usize, usize)) {
    let (h, w, c) = (input.height, input.width, input.channels);
    let span = window.kernel_w * c;
    let x0 = (ox * window.stride_w) as isize - window.pad_left as isize;
    let first = (-x0).clamp(0, window.kernel_w as isize) as usize;
    let end = (w as isize - x0).clamp(first as isize, window.kernel_w as isize) as usize;
    for (ky, to) in row.chunks_exact_mut(span).enumerate() {
        let iy = (oy * window.stride_h + ky).checked_sub(window.pad_top).filter(|&y| y < h);
        let Some(y) = iy else {
            to.fill(0.0);
            continue;
        };
        to[..first * c].fill(0.0);
        to[end * c..].fill(0.0);
        let at = (y * w) as isize + x0 + first as isize;
        let from = &src[at as usize * c..][..(end - first) * c];
        to[first * c..end * c].copy_from_slice(from);
    }
}

/// The C×H×W image as a channel-last buffer, each channel normalised (`value · scale + shift`).
fn normalise_image(chw: &[f32], hwc: &mut [f32], (scale, shift): (&[f32; 3], &[f32; 3])) {
    let plane = hwc.len() / 3;
    for (c, values) in chw.chunks_exact(plane).enumerate().take(3) {
        for (p, v) in values.iter().enumerate() {
            hwc[p * 3 + c] = v * scale[c] + shift[c];
        }
    }
}

/// A depthwise convolution, channel-last: each output pixel is the bias plus the sum over the
/// window's taps inside the input (the padding is zero) of tap weight × input, per channel,
/// clipped to `lo..=hi`. Two pixels at a time, up to 48 channels each, so that several
/// independent sums hide the adds' latency; taps in (ky, kx) order. Plain multiplies and adds (no
/// fused multiply-add), so every CPU gives the same sums.
#[multiversion::multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma", "aarch64+neon"))]
#[allow(clippy::too_many_arguments)]
fn depthwise(
    src: &[f32],
    input: Shape,
    window: Window,
    taps: &[f32],
    bias: &[f32],
    (lo, hi): (f32, f32),
    dst: &mut [f32],
    out: Shape,
) {
    let c = input.channels;
    let (h, w) = (input.height, input.width);
    let (kh, kw) = (window.kernel_h, window.kernel_w);
    // The taps of a window starting at `start` (may be negative) over `len` that fall inside.
    let inside = |start: isize, k: usize, len: usize| {
        let first = (-start).max(0) as usize;
        let end = (len as isize - start).clamp(0, k as isize) as usize;
        (first, end.max(first))
    };
    let pixel_step = window.stride_w * c;
    for oy in 0..out.height {
        let y0 = (oy * window.stride_h) as isize - window.pad_top as isize;
        let rows = inside(y0, kh, h);
        let mut ox = 0;
        while ox < out.width {
            let x0 = (ox * window.stride_w) as isize - window.pad_left as isize;
            let cols = inside(x0, kw, w);
            let at = Taps { src, c, w, taps, kw, y0, x0, rows, cols, pixel_step };
            // Two neighbouring pixels whose windows cover the same taps share each tap's weights
            // and give twice the independent sums.
            let pair = ox + 1 < out.width && inside(x0 + window.stride_w as isize, kw, w) == cols;
            let count = if pair { 2 } else { 1 };
            let Some(pixels) = dst.get_mut((oy * out.width + ox) * c..).and_then(|p| p.get_mut(..count * c)) else {
                return;
            };
            if pair {
                at.channels::<2>(bias, pixels, (lo, hi));
            } else {
                at.channels::<1>(bias, pixels, (lo, hi));
            }
            ox += count;
        }
    }
}

/// The window of `P` neighbouring output pixels of a depthwise convolution: the taps inside the
/// input are `rows` × `cols` (ranges of ky and kx) of the first pixel's window, which starts at
/// (`y0`, `x0`); the next pixel's starts `pixel_step` values further.
struct Taps<'a> {
    src: &'a [f32],
    c: usize,
    w: usize,
    taps: &'a [f32],
    kw: usize,
    y0: isize,
    x0: isize,
    rows: (usize, usize),
    cols: (usize, usize),
    pixel_step: usize,
}

impl Taps<'_> {
    /// All channels of `P` pixels (`pixels` holds P·C values): 48 channels at a time where 48
    /// divides C, else 32, then 16, then one; each sum stays in registers across the taps.
    #[inline(always)]
    fn channels<const P: usize>(&self, bias: &[f32], pixels: &mut [f32], clip: (f32, f32)) {
        let c = self.c;
        let mut from = 0;
        if c.is_multiple_of(48) {
            while from + 48 <= c {
                self.sum::<48, P>(from, bias, pixels, clip);
                from += 48;
            }
        }
        while from + 32 <= c {
            self.sum::<32, P>(from, bias, pixels, clip);
            from += 32;
        }
        while from + 16 <= c {
            self.sum::<16, P>(from, bias, pixels, clip);
            from += 16;
        }
        while from < c {
            self.sum::<1, P>(from, bias, pixels, clip);
            from += 1;
        }
    }

    /// Channels `from..from + N` of the `P` pixels: bias plus the taps' products, clipped.
    /// Inlined into the [`depthwise`] clones, whose target features it takes.
    #[inline(always)]
    fn sum<const N: usize, const P: usize>(&self, from: usize, bias: &[f32], pixels: &mut [f32], (lo, hi): (f32, f32)) {
        let chunk = |s: &[f32], at: usize| s.get(at..).and_then(|s| s.first_chunk::<N>()).copied();
        let mut acc = [chunk(bias, from).unwrap_or([0.0; N]); P];
        for ky in self.rows.0..self.rows.1 {
            let iy = (self.y0 + ky as isize) as usize;
            for kx in self.cols.0..self.cols.1 {
                let ix = (self.x0 + kx as isize) as usize;
                let Some(t) = self.taps.get((ky * self.kw + kx) * self.c + from..).and_then(|s| s.first_chunk::<N>())
                else {
                    continue;
                };
                let at = (iy * self.w + ix) * self.c + from;
                for (p, acc) in acc.iter_mut().enumerate() {
                    if let Some(x) = self.src.get(at + p * self.pixel_step..).and_then(|s| s.first_chunk::<N>()) {
                        for i in 0..N {
                            acc[i] += t[i] * x[i];
                        }
                    }
                }
            }
        }
        for (p, acc) in acc.iter().enumerate() {
            if let Some(out) = pixels.get_mut(p * self.c + from..).and_then(|o| o.first_chunk_mut::<N>()) {
                for i in 0..N {
                    out[i] = acc[i].max(lo).min(hi);
                }
            }
        }
    }
}
