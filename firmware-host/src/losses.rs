//! ADPretrain's losses (spec §4): the angle-oriented contrastive loss and the norm-oriented loss,
//! each in the official code's variant and the paper's.

use burn::prelude::*;
use burn::tensor::activation::softplus;

/// Which formulation of the losses to train with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
pub enum LossVariant {
    /// The released code: a = √(‖x‖+1) − 1, an adaptive shell [0.99·r_max, r_max] with
    /// r_max = min(0.9 · smallest anomalous a, 0.4), anomalies pushed past r_max + 0.75; both views
    /// are anchors of the angle loss.
    Official,
    /// The paper: a = √(‖x‖²+1) − 1, normals inside a fixed radius r = 0.4, anomalies past
    /// r' = r + Δr; only the first (original) view anchors the angle loss.
    Paper,
}

impl LossVariant {
    /// The name model calibrations record (and `--loss` takes).
    pub fn name(self) -> &'static str {
        match self {
            Self::Official => "official",
            Self::Paper => "paper",
        }
    }
}

/// Temperature of the angle loss.
pub const TAU: f32 = 0.15;
/// The normal radius r (and the official code's cap on r_max).
pub const RADIUS: f32 = 0.4;
/// The margin Δr between normals and anomalies.
pub const DELTA_R: f32 = 0.75;

/// Row-wise L2 normalisation.
fn normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// The angle-oriented contrastive loss of one level. `e1`, `e2`: projected features of the two
/// views [N, C]; `labels`: patch labels (true = anomalous, the "> 32 pixels" labelling);
/// `center`: the level's normal centre \[C\]. For every anchor the positive is the same patch in
/// the other view; the denominator holds only patches of the opposite label (from both views).
/// `None` when the batch holds only one label (the official code then uses 0).
pub fn angle_loss(
    e1: Tensor<2>,
    e2: Tensor<2>,
    labels: &[bool],
    center: Tensor<1>,
    variant: LossVariant,
) -> Option<Tensor<1>> {
    let n = labels.len();
    let anomalous = labels.iter().filter(|l| **l).count();
    if anomalous == 0 || anomalous == n {
        return None;
    }
    let device = e1.device();
    let c = center.unsqueeze_dim::<2>(0);
    let z1 = normalize(e1 - c.clone());
    let z2 = normalize(e2 - c);
    let pos = (z1.clone() * z2.clone()).sum_dim(1).div_scalar(TAU); // [N, 1]
    let z = Tensor::cat(vec![z1, z2], 0); // [2N, C]
    let pos = Tensor::cat(vec![pos.clone(), pos], 0); // [2N, 1]
    let sim = z.clone().matmul(z.transpose()).div_scalar(TAU); // [2N, 2N]
                                                               // Same-label pairs (the diagonal included) are pushed out of the sum with a large negative.
    let mut same = vec![0.0f32; 4 * n * n];
    for a in 0..2 * n {
        for b in 0..2 * n {
            if labels[a % n] == labels[b % n] {
                same[a * 2 * n + b] = -1.0e4;
            }
        }
    }
    let same = Tensor::<2>::from_data(TensorData::new(same, [2 * n, 2 * n]), &device);
    let masked = sim + same;
    let max = masked.clone().max_dim(1).detach();
    let lse = (masked - max.clone()).exp().sum_dim(1).log() + max; // [2N, 1]
    let per_anchor = lse - pos;
    let anchors = match variant {
        LossVariant::Official => per_anchor,
        LossVariant::Paper => per_anchor.slice([0..n, 0..1]),
    };
    Some(anchors.mean())
}

/// What the norm loss saw in one call: the radius statistics that go into the model calibration.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NormStats {
    /// r_max used (the adaptive shell's outer radius, or the fixed r).
    pub r_max: f32,
    /// Mean a over normal patches.
    pub normal_mean: f32,
    /// Largest a over normal patches.
    pub normal_max: f32,
    /// Smallest a over anomalous patches (NaN when none).
    pub anomalous_min: f32,
}

/// sp(t) · exp(t) with the exponential weight held constant (not differentiated), as the code.
fn weighted_softplus(t: Tensor<1>) -> Tensor<1> {
    softplus(t.clone(), 1.0) * t.exp().detach()
}

/// Mean of `term` over the positions where `mask` is 1 (0 when the mask is empty).
fn masked_mean(term: Tensor<1>, mask: &[f32], device: &Device) -> Tensor<1> {
    let count = mask.iter().sum::<f32>();
    let m = Tensor::<1>::from_data(TensorData::new(mask.to_vec(), [mask.len()]), device);
    (term * m).sum().div_scalar(count.max(1.0))
}

/// The norm-oriented loss of one level and one view. `x`: projected features [N, C]; `labels`:
/// patch labels (true = anomalous, the "top-left pixel" labelling).
pub fn norm_loss(x: Tensor<2>, labels: &[bool], variant: LossVariant) -> (Tensor<1>, NormStats) {
    let device = x.device();
    let sq = x.powf_scalar(2.0).sum_dim(1).squeeze_dim::<1>(1);
    let a = match variant {
        LossVariant::Official => (sq.sqrt() + 1.0).sqrt() - 1.0,
        LossVariant::Paper => (sq + 1.0).sqrt() - 1.0,
    };
    let values = crate::projector::tensor_values(a.clone());
    let anomalous_min = values.iter().zip(labels).filter(|(_, l)| **l).map(|(v, _)| *v).fold(f32::INFINITY, f32::min);
    let (r_max, r_min) = match variant {
        LossVariant::Official => {
            let r = if anomalous_min.is_finite() { (0.9 * anomalous_min).min(RADIUS) } else { RADIUS };
            (r, 0.99 * r)
        }
        LossVariant::Paper => (RADIUS, f32::NEG_INFINITY),
    };
    let boundary = r_max + DELTA_R;
    let pick = |f: &dyn Fn(f32, bool) -> bool| -> Vec<f32> {
        values.iter().zip(labels).map(|(v, l)| if f(*v, *l) { 1.0 } else { 0.0 }).collect()
    };
    let big = pick(&|v, l| !l && v > r_max);
    let small = pick(&|v, l| !l && v < r_min);
    let anom = pick(&|v, l| l && v < boundary);
    let mut loss = masked_mean(weighted_softplus(a.clone() - r_max), &big, &device)
        + masked_mean(weighted_softplus(a.clone().neg() + boundary), &anom, &device);
    if small.iter().any(|v| *v > 0.0) {
        loss = loss + masked_mean(weighted_softplus(a.neg() + r_min), &small, &device);
    }
    let normals: Vec<f32> = values.iter().zip(labels).filter(|(_, l)| !**l).map(|(v, _)| *v).collect();
    let stats = NormStats {
        r_max,
        normal_mean: normals.iter().sum::<f32>() / normals.len().max(1) as f32,
        normal_max: normals.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        anomalous_min: if anomalous_min.is_finite() { anomalous_min } else { f32::NAN },
    };
    (loss, stats)
}
