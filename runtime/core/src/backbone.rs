//! The backbone: the model's ONNX graph compiled for one input side, returning the manifest's
//! feature levels. In f32, a graph of the MobileNet / EfficientNet-Lite family (the default model)
//! runs on the crate's own executor ([`crate::conv_net`]); any other graph, and every graph in
//! f16, runs on tract.

use edge_ad_calib::ModelManifest;
use tract_onnx::prelude::*;

use crate::conv_net::{ConvNet, ConvNetRun};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::precision::Precision;

pub use crate::feature_map::FeatureMap;

type Plan = std::sync::Arc<TypedRunnableModel>;

/// A compiled backbone with one frame's worth of run state.
///
/// The compiled graph is shared: [`Backbone::fork`] gives another worker its own state (buffers,
/// tract's per-session scratch, the input tensor) over the same graph, so N workers cost one
/// compilation.
pub struct Backbone {
    engine: Engine,
    side: usize,
    shapes: Vec<(usize, usize, usize)>,
    name: String,
}

/// What runs the graph.
enum Engine {
    /// The crate's own executor ([`crate::conv_net`]).
    Own(ConvNetRun),
    /// tract's compiled plan and one run state over it.
    Tract { plan: Plan, run: GraphRun },
}

impl Backbone {
    /// Compiles `model` for square inputs of `side` pixels: on the crate's own executor when the
    /// graph is of the family it runs and the precision is f32, else on tract
    /// ([`Backbone::on_tract`]).
    pub fn new(model: &Model, side: u32) -> Result<Self> {
        let m = &model.manifest;
        let shapes = expected_shapes(m, side);
        if model.precision == Precision::F32 {
            let outputs: Vec<&str> = m.levels.iter().map(|l| l.output.as_str()).collect();
            match ConvNet::compile(&model.onnx, m.input_name.as_str(), &outputs, side as usize) {
                Ok(net) if net.output_shapes() == shapes => {
                    tracing::info!("{}: the own executor runs the backbone ({} steps)", model.origin, net.steps());
                    let engine = Engine::Own(ConvNetRun::new(std::sync::Arc::new(net)));
                    return Ok(Self { engine, side: side as usize, shapes, name: model.origin.clone() });
                }
                Ok(net) => tracing::info!(
                    "{}: the graph's outputs are {:?}, the manifest says {shapes:?}; tract runs it",
                    model.origin,
                    net.output_shapes()
                ),
                Err(why) => tracing::info!("{}: tract runs the backbone ({why})", model.origin),
            }
        }
        Self::on_tract(model, side)
    }

    /// Compiles `model` for square inputs of `side` pixels on tract, whatever the graph. The
    /// input fact is fixed before optimisation so tract specialises every kernel; the outputs
    /// are the manifest's levels. Convolutions run channel-last (tract's `conv_nhwc` transform):
    /// the depthwise layers then use tract's channel-last loops, which cover stride 2 and
    /// borders (README, *Speed*); the outputs are unchanged. The model's [`Precision`] decides
    /// the float type (see [`crate::precision`]).
    pub fn on_tract(model: &Model, side: u32) -> Result<Self> {
        let m = &model.manifest;
        let err = |reason: String| Error::Model { model: model.origin.clone(), reason };
        let side_us = side as usize;
        let outputs: Vec<&str> = m.levels.iter().map(|l| l.output.as_str()).collect();
        // The file's intermediate shapes are those of its export side; drop them so the input
        // fact alone decides every shape.
        let plan = tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .with_ignore_value_info(true)
            .model_for_read(&mut std::io::Cursor::new(&model.onnx[..]))
            .and_then(|g| g.with_input_fact(0, f32::fact([1, 3, side_us, side_us]).into()))
            .and_then(|mut g| g.select_outputs_by_name(outputs).map(|_| g))
            .and_then(|g| g.into_typed())
            .and_then(|g| g.into_decluttered())
            .and_then(channel_last)
            .and_then(|g| in_precision(g, model.precision))
            .and_then(|g| g.into_optimized())
            .and_then(|g| g.into_runnable())
            .map_err(|e| err(format!("cannot compile the graph for {side}×{side}: {e:#}")))?;
        let shapes = expected_shapes(m, side);
        Self::over(plan, side_us, shapes, model.origin.clone())
    }

    fn over(plan: Plan, side: usize, shapes: Vec<(usize, usize, usize)>, name: String) -> Result<Self> {
        let run = GraphRun::new(&plan, &[1, 3, side, side])
            .map_err(|e| Error::Model { model: name.clone(), reason: format!("cannot start a run: {e:#}") })?;
        Ok(Self { engine: Engine::Tract { plan, run }, side, shapes, name })
    }

    /// What runs the graph: `"own"` ([`crate::conv_net`]) or `"tract"`.
    pub fn engine(&self) -> &'static str {
        match self.engine {
            Engine::Own(_) => "own",
            Engine::Tract { .. } => "tract",
        }
    }

    /// Another run state over the same compiled plan, for another worker.
    pub fn fork(&self) -> Result<Self> {
        match &self.engine {
            Engine::Own(run) => Ok(Self {
                engine: Engine::Own(ConvNetRun::new(run.net().clone())),
                side: self.side,
                shapes: self.shapes.clone(),
                name: self.name.clone(),
            }),
            Engine::Tract { plan, .. } => Self::over(plan.clone(), self.side, self.shapes.clone(), self.name.clone()),
        }
    }

    /// Input side in pixels.
    pub fn side(&self) -> usize {
        self.side
    }

    /// (C, H, W) of each level.
    pub fn level_shapes(&self) -> &[(usize, usize, usize)] {
        &self.shapes
    }

    /// Empty maps shaped like this backbone's output, for [`Backbone::run_into`].
    pub fn empty_maps(&self) -> Vec<FeatureMap> {
        self.shapes.iter().map(|&(c, h, w)| FeatureMap::zeros(c, h, w)).collect()
    }

    /// Runs the graph on one CHW image (3·side² values) and fills `out` (one map per level).
    pub fn run_into(&mut self, chw: &[f32], out: &mut [FeatureMap]) -> Result<()> {
        let err = |reason: String| Error::Model { model: self.name.clone(), reason };
        let expected = 3 * self.side * self.side;
        if chw.len() != expected {
            return Err(err(format!("input has {} values, the graph takes {expected}", chw.len())));
        }
        if out.len() != self.shapes.len() {
            return Err(err(format!("{} maps given, manifest lists {}", out.len(), self.shapes.len())));
        }
        let run = match &mut self.engine {
            Engine::Own(run) => return run.run(chw, out).map_err(err),
            Engine::Tract { run, .. } => run,
        };
        let results =
            run.run(|input| input.copy_from_slice(chw)).map_err(|e| err(format!("inference failed: {e:#}")))?;
        if results.len() != out.len() {
            return Err(err(format!("graph gave {} outputs, manifest lists {}", results.len(), out.len())));
        }
        for (i, (tensor, map)) in results.iter().zip(out.iter_mut()).enumerate() {
            let view = tensor.to_plain_array_view::<f32>().map_err(|e| err(format!("output {i}: {e:#}")))?;
            let shape = view.shape();
            if shape != [1, map.channels, map.height, map.width] {
                return Err(err(format!(
                    "output {i} has shape {shape:?}, manifest says [1, {}, {}, {}]",
                    map.channels, map.height, map.width
                )));
            }
            match view.as_slice() {
                Some(s) => map.fill_from_chw(s),
                None => map.fill_from_chw(&view.iter().copied().collect::<Vec<_>>()),
            }
        }
        Ok(())
    }

    /// Runs the graph on one CHW image and returns fresh maps.
    pub fn run(&mut self, chw: &[f32]) -> Result<Vec<FeatureMap>> {
        let mut out = self.empty_maps();
        self.run_into(chw, &mut out)?;
        Ok(out)
    }
}

/// One worker's runs of a compiled graph with one float input: tract's run state (its per-session
/// scratch) and the input tensor, both reused frame after frame. The input is handed to tract by
/// reference count and written again once tract has let go of it, so a run allocates no input.
/// A graph whose input is f16 (the backbone in [`Precision::F16`]) is filled through an f32
/// staging buffer and converted.
pub(crate) struct GraphRun {
    state: TypedSimpleState,
    input: std::sync::Arc<Tensor>,
    /// f32 values for an f16 input; empty for an f32 one.
    staging: Vec<f32>,
}

impl GraphRun {
    /// A run state over `plan`, whose input has `shape` (f32, or f16 when the plan takes f16).
    pub(crate) fn new(plan: &Plan, shape: &[usize]) -> TractResult<Self> {
        let datum = plan.model().input_fact(0)?.datum_type;
        let (input, staging) = if datum == f16::datum_type() {
            (Tensor::zero::<f16>(shape)?, vec![0.0; shape.iter().product()])
        } else {
            (Tensor::zero::<f32>(shape)?, Vec::new())
        };
        Ok(Self { state: TypedSimpleState::new(plan)?, input: std::sync::Arc::new(input), staging })
    }

    /// Writes the input with `fill` (given all its values) and runs the graph.
    pub(crate) fn run(&mut self, fill: impl FnOnce(&mut [f32])) -> TractResult<TVec<TValue>> {
        // tract lets go of the input after a run; were it still held (a failed run), make_mut
        // copies it rather than write under tract.
        let mut plain = std::sync::Arc::make_mut(&mut self.input).try_as_plain_ram_mut()?;
        if self.staging.is_empty() {
            fill(plain.as_slice_mut::<f32>()?);
        } else {
            fill(&mut self.staging);
            for (h, v) in plain.as_slice_mut::<f16>()?.iter_mut().zip(&self.staging) {
                *h = f16::from_f32(*v);
            }
        }
        self.state.run(tvec!(self.input.clone().into_tvalue()))
    }
}

/// In [`Precision::F16`], translates a decluttered graph to f16 except its depthwise convolutions
/// (tract has an f16 matrix kernel on Arm, but no f16 depthwise kernel), and casts its outputs back
/// to f32. The input becomes f16 ([`GraphRun`] converts). f32 leaves the graph as it is.
fn in_precision(mut g: TypedModel, precision: Precision) -> TractResult<TypedModel> {
    use tract_onnx::tract_core::floats::FloatPrecisionTranslator;
    use tract_onnx::tract_core::ops::cast::cast;
    use tract_onnx::tract_core::ops::cnn::Conv;
    use tract_onnx::tract_core::transform::ModelTransform;
    if precision == Precision::F32 {
        return Ok(g);
    }
    let depthwise_kept = |node: &TypedNode| node.op_as::<Conv>().is_none_or(|c| c.group == 1);
    FloatPrecisionTranslator::with_filter(f32::datum_type(), f16::datum_type(), depthwise_kept).transform(&mut g)?;
    let mut outputs = g.output_outlets()?.to_vec();
    for (i, outlet) in outputs.iter_mut().enumerate() {
        if g.outlet_fact(*outlet)?.datum_type == f16::datum_type() {
            *outlet = g.wire_node(format!("output-{i}.f32"), cast(f32::datum_type()), &[*outlet])?[0];
        }
    }
    g.select_output_outlets(&outputs)?;
    Ok(g)
}

/// Rewrites every convolution of a decluttered graph to run channel-last (tract's `conv_nhwc`).
fn channel_last(mut g: TypedModel) -> TractResult<TypedModel> {
    if let Some(t) = tract_onnx::tract_core::transform::get_transform("conv_nhwc")? {
        t.transform(&mut g)?;
    }
    Ok(g)
}

/// (C, H, W) of each level of `manifest` at input side `side`.
pub fn expected_shapes(manifest: &ModelManifest, side: u32) -> Vec<(usize, usize, usize)> {
    manifest
        .levels
        .iter()
        .map(|l| (l.channels as usize, (side / l.stride) as usize, (side / l.stride) as usize))
        .collect()
}
