//! ADPretrain's feature projector for one level: learnable key/value references through a linear
//! layer, multi-head cross-attention from the residual tokens to them, a *subtractive* residual
//! (x − attn), then an MLP whose hidden layer is gated by squeeze-excitation before an exact GELU,
//! plus an additive residual (spec §3). No LayerNorm, no positional encoding.
//!
//! Sizes are options: the paper's (2048 keys, hidden 4C, 16 heads) and an edge default. At
//! EfficientNet-Lite0's widths and 224², the box runs both levels in about 5 ms at the edge size
//! and 229 ms at the paper's (2-core x86 VM; `cargo bench -p edge-ad-benches -- 'projector size'`).

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, relu, sigmoid, softmax};
use burn::tensor::Distribution;

/// A tensor's values as f32, row-major.
pub fn tensor_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("a float tensor converts to f32")
}

/// Sizes of one level's projector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProjectorSize {
    /// Feature channels C (input = output width).
    pub channels: usize,
    /// Learnable reference vectors (keys/values).
    pub keys: usize,
    /// MLP hidden width.
    pub hidden: usize,
    /// Attention heads (C must be a multiple).
    pub heads: usize,
    /// Squeeze-excitation bottleneck width.
    pub se: usize,
}

/// Which sizing rule `--size` picks for every level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SizeRule {
    /// [`ProjectorSize::edge`].
    Edge,
    /// [`ProjectorSize::paper`].
    Paper,
}

impl SizeRule {
    /// The size this rule gives a level of `channels` channels.
    pub fn for_channels(self, channels: usize) -> ProjectorSize {
        match self {
            Self::Edge => ProjectorSize::edge(channels),
            Self::Paper => ProjectorSize::paper(channels),
        }
    }
}

impl ProjectorSize {
    /// The paper's sizes: 2048 keys, hidden 4C, 16 heads (or fewer when C is not a multiple),
    /// SE width 4C/16 rounded to a multiple of 8 (timm's rule).
    pub fn paper(channels: usize) -> Self {
        let hidden = 4 * channels;
        Self { channels, keys: 2048, hidden, heads: heads_for(channels, 16), se: round8(hidden / 16) }
    }

    /// The edge default: 64 keys, hidden 2C, 4 heads, SE width 2C/8 (at least 8).
    pub fn edge(channels: usize) -> Self {
        let hidden = 2 * channels;
        Self { channels, keys: 64, hidden, heads: heads_for(channels, 4), se: round8(hidden / 8) }
    }

    /// Checks the sizes; returns what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.channels == 0 || self.keys == 0 || self.hidden == 0 || self.heads == 0 || self.se == 0 {
            return Err(format!("projector sizes must be positive: {self:?}"));
        }
        if !self.channels.is_multiple_of(self.heads) {
            return Err(format!("{} channels are not a multiple of {} heads", self.channels, self.heads));
        }
        Ok(())
    }
}

fn round8(v: usize) -> usize {
    v.div_ceil(8).max(1) * 8
}

/// The largest head count ≤ `wanted` that divides `channels`.
fn heads_for(channels: usize, wanted: usize) -> usize {
    (1..=wanted).rev().find(|h| channels.is_multiple_of(*h)).unwrap_or(1)
}

/// One level's projector.
#[derive(Module, Debug)]
pub struct LevelProjector {
    /// Learnable references, [keys, C], initialised N(0, 1).
    pub refs: Param<Tensor<2>>,
    /// The "linear layer" applied to the references (spec: a 1×1 Conv1d, C → C).
    pub ref_proj: Linear,
    /// Attention query projection.
    pub q: Linear,
    /// Attention key projection.
    pub k: Linear,
    /// Attention value projection.
    pub v: Linear,
    /// Attention output projection.
    pub out: Linear,
    /// MLP first layer, C → hidden.
    pub fc1: Linear,
    /// SE squeeze, hidden → se.
    pub se_a: Linear,
    /// SE excite, se → hidden.
    pub se_b: Linear,
    /// MLP second layer, hidden → C.
    pub fc2: Linear,
    /// Attention heads.
    pub heads: usize,
    /// Fixed factor applied to the residuals before anything else (not trained): it brings the
    /// backbone's residual norms to the losses' scale, where normal patches sit near norm 1
    /// (see [`input_scale`]). Not in the weights file; checkpoints record it beside them.
    pub input_scale: f32,
}

impl LevelProjector {
    /// A freshly initialised projector that multiplies its input by `input_scale` first.
    pub fn new(size: ProjectorSize, input_scale: f32, device: &Device) -> Self {
        let c = size.channels;
        let lin = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        Self {
            refs: Param::from_tensor(Tensor::random([size.keys, c], Distribution::Normal(0.0, 1.0), device)),
            ref_proj: lin(c, c),
            q: lin(c, c),
            k: lin(c, c),
            v: lin(c, c),
            out: lin(c, c),
            fc1: lin(c, size.hidden),
            se_a: lin(size.hidden, size.se),
            se_b: lin(size.se, size.hidden),
            fc2: lin(size.hidden, c),
            heads: size.heads,
            input_scale,
        }
    }

    /// This projector with the attention's output layer and the MLP's last layer zeroed, so it
    /// starts as `x ↦ input_scale · x`: training then departs from the raw residuals (which
    /// FeatureNorm already scores well) instead of from a random map of them. The other layers
    /// keep their random values, so the zeroed ones get gradients from the first step.
    pub fn starting_as_identity(mut self) -> Self {
        let zero = |l: &mut Linear| {
            l.weight = Param::from_tensor(l.weight.val().zeros_like());
            if let Some(b) = &l.bias {
                l.bias = Some(Param::from_tensor(b.val().zeros_like()));
            }
        };
        zero(&mut self.out);
        zero(&mut self.fc2);
        self
    }

    /// The sizes of this projector.
    pub fn size(&self) -> ProjectorSize {
        let [keys, channels] = self.refs.val().dims();
        let [_, hidden] = self.fc1.weight.val().dims();
        let [_, se] = self.se_a.weight.val().dims();
        ProjectorSize { channels, keys, hidden, heads: self.heads, se }
    }

    /// Projects residual tokens `x` [B, L, C] (L = H·W, row-major) to [B, L, C]. Whole images:
    /// the SE gate averages over all L tokens of each image.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, l, c] = x.dims();
        let x = x.mul_scalar(self.input_scale);
        let h = self.heads;
        let dh = c / h;
        let kv = self.ref_proj.forward(self.refs.val()); // [N, C]
        let n = kv.dims()[0];
        let q = self.q.forward(x.clone()).reshape([b, l, h, dh]).swap_dims(1, 2); // [B, h, L, dh]
        let k = self.k.forward(kv.clone()).reshape([n, h, dh]).permute([1, 2, 0]); // [h, dh, N]
        let v = self.v.forward(kv).reshape([n, h, dh]).swap_dims(0, 1); // [h, N, dh]
        let k = k.unsqueeze_dim::<4>(0).expand([b, h, dh, n]);
        let v = v.unsqueeze_dim::<4>(0).expand([b, h, n, dh]);
        let att = softmax(q.matmul(k).mul_scalar(1.0 / (dh as f32).sqrt()), 3); // [B, h, L, N]
        let a = att.matmul(v).swap_dims(1, 2).reshape([b, l, c]);
        let x1 = x - self.out.forward(a);
        let hid = self.fc1.forward(x1.clone()); // [B, L, hidden]
        let squeeze = hid.clone().mean_dim(1); // [B, 1, hidden]
        let gate = sigmoid(self.se_b.forward(relu(self.se_a.forward(squeeze))));
        let hid = gelu(hid * gate);
        self.fc2.forward(hid) + x1
    }
}

/// The input scale that puts the median norm of `normal_norms` (raw residual norms of normal
/// patches) at 1, inside the official loss's normal shell (norm ≤ 0.96 there, anomalies ≥ 3.62).
/// EfficientNet-Lite0's raw residuals have medians of 17–26, where every patch, normal or not,
/// is far outside the shell and the exponentially weighted norm loss only learns to shrink.
pub fn input_scale(normal_norms: &mut [f32]) -> f32 {
    if normal_norms.is_empty() {
        return 1.0;
    }
    let mid = normal_norms.len() / 2;
    let (_, median, _) = normal_norms.select_nth_unstable_by(mid, f32::total_cmp);
    if median.is_finite() && *median > 0.0 {
        1.0 / *median
    } else {
        1.0
    }
}
