//! Pretraining the per-level projectors on residual samples: ADPretrain's losses, Adam with
//! coupled weight decay, the learning rate × 0.1 at 70 % and 90 % of the epochs, batches without
//! any anomalous patch skipped, deterministic for a seed.

use burn::module::Module;
use burn::optim::{decay::WeightDecayConfig, AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};

use crate::corpus::Sample;
use crate::losses::{angle_loss, norm_loss, LossVariant, NormStats};
use crate::projector::{input_scale, LevelProjector, ProjectorSize};

/// The projectors of every level, trained together.
#[derive(Module, Debug)]
pub struct Projectors {
    /// One per backbone level.
    pub levels: Vec<LevelProjector>,
}

/// Training settings. The defaults are the recipe measured best on this project's corpus (the
/// README's ablation); each field's doc names the official code's value where it differs.
#[derive(Clone, Copy, Debug)]
pub struct TrainSettings {
    /// Epochs over the samples.
    pub epochs: usize,
    /// Images per step.
    pub batch: usize,
    /// Adam learning rate (official: 1e-4, too slow for the few hundred steps of a CPU run).
    pub lr: f64,
    /// Coupled L2 weight decay.
    pub weight_decay: f32,
    /// Which loss formulation.
    pub variant: LossVariant,
    /// At most this many anchors per class (normal, anomalous) per level in the angle loss, drawn
    /// at random: its similarity matrix is quadratic in the anchors.
    pub max_anchors: usize,
    /// Scale each level's inputs so the median normal residual has norm 1 (see
    /// [`input_scales`]); off, the projector sees the raw residuals (as the official code).
    pub scale_inputs: bool,
    /// Start every level as the (scaled) identity (see [`LevelProjector::starting_as_identity`]);
    /// off, PyTorch-style random initialisation throughout, as the official code.
    pub identity_start: bool,
    /// How patches are labelled for the losses (official: [`LabelRule::Official`]).
    pub labels: LabelRule,
    /// λ, the angle loss's weight against the norm loss (1 in the paper and the official code;
    /// 0 leaves it out).
    pub angle_weight: f32,
    /// Seed for shuffling and anchor draws.
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch: 8,
            lr: 1e-3,
            weight_decay: 5e-4,
            variant: LossVariant::Official,
            max_anchors: 384,
            scale_inputs: true,
            identity_start: true,
            labels: LabelRule::Margin,
            angle_weight: 0.0,
            seed: 42,
        }
    }
}

/// What training measured.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct TrainReport {
    /// Mean loss per epoch.
    pub epoch_loss: Vec<f32>,
    /// Steps skipped for having no anomalous patch.
    pub skipped: usize,
    /// Per level, the last epoch's mean norm statistics (the radius statistics for the model
    /// calibration).
    pub radius: Vec<NormStats>,
    /// Per level, how well norms separate the training patches before and after the projector
    /// (after the last epoch; `None` for a level without both labels).
    #[serde(default)]
    pub separation: Vec<Option<Separation>>,
}

/// Patch AUROC of the residual norm, anomalous against normal patches, on the training samples:
/// a check that training separates what FeatureNorm scores (a loss can fall while this drops).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Separation {
    /// Of the raw residuals (what FeatureNorm scores without a projector).
    pub raw: f64,
    /// Of the projected residuals.
    pub projected: f64,
}

/// [`Separation`] per level over the first views of `samples`, labelled by `rule` (the patches it
/// leaves out of the losses are left out here too).
pub fn separation(
    model: &Projectors,
    samples: &[Sample],
    channels: &[usize],
    rule: LabelRule,
    device: &Device,
) -> Vec<Option<Separation>> {
    let norm = |row: &[f32]| row.iter().map(|v| v * v).sum::<f32>().sqrt();
    model
        .levels
        .iter()
        .enumerate()
        .map(|(l, proj)| {
            let c = channels[l];
            let (mut raw, mut projected, mut labels) = (Vec::new(), Vec::new(), Vec::new());
            for batch in samples.chunks(8) {
                let n = batch[0].levels[l].angle_labels.len();
                let data: Vec<f32> = batch.iter().flat_map(|s| s.levels[l].view1.iter().copied()).collect();
                let x = Tensor::<3>::from_data(TensorData::new(data.clone(), [batch.len(), n, c]), device);
                let y = crate::projector::tensor_values(proj.forward(x).detach());
                let lab = Labels::of(batch.iter().map(|s| &s.levels[l]), rule);
                for i in (0..lab.kept.len()).filter(|&i| lab.kept[i]) {
                    raw.push(norm(&data[i * c..(i + 1) * c]));
                    projected.push(norm(&y[i * c..(i + 1) * c]));
                    labels.push(lab.norm[i]);
                }
            }
            Some(Separation {
                raw: edge_ad_eval::metrics::auroc(&raw, &labels)?,
                projected: edge_ad_eval::metrics::auroc(&projected, &labels)?,
            })
        })
        .collect()
}

/// The normal centre of each level: the mean raw residual over normal patches (spec §8).
pub fn centers(samples: &[Sample], channels: &[usize]) -> Vec<Vec<f32>> {
    channels
        .iter()
        .enumerate()
        .map(|(l, &c)| {
            let mut sum = vec![0.0f64; c];
            let mut n = 0usize;
            for s in samples {
                let ls = &s.levels[l];
                for (row, label) in ls.view1.chunks_exact(c).zip(&ls.angle_labels) {
                    if !label {
                        sum.iter_mut().zip(row).for_each(|(a, v)| *a += *v as f64);
                        n += 1;
                    }
                }
            }
            sum.into_iter().map(|v| (v / n.max(1) as f64) as f32).collect()
        })
        .collect()
}

/// Per level, the input scale that puts the median norm of normal raw residuals at 1 (see
/// [`input_scale`]).
pub fn input_scales(samples: &[Sample], channels: &[usize]) -> Vec<f32> {
    channels
        .iter()
        .enumerate()
        .map(|(l, &c)| {
            let mut norms: Vec<f32> = samples
                .iter()
                .flat_map(|s| {
                    let ls = &s.levels[l];
                    ls.view1
                        .chunks_exact(c)
                        .zip(&ls.angle_labels)
                        .filter(|(_, a)| !**a)
                        .map(|(row, _)| row.iter().map(|v| v * v).sum::<f32>().sqrt())
                })
                .collect();
            input_scale(&mut norms)
        })
        .collect()
}

/// Which patches count as anomalous, normal or neither in the losses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
pub enum LabelRule {
    /// The official code's: angle loss anomalous when more than 1/6 of the cell is, norm loss
    /// anomalous when the cell's top-left pixel is; every other patch is normal.
    Official,
    /// Anomalous when more than 1/6 of the cell is, for both losses; patches that are not but
    /// touch a defect (in the cell or a neighbouring one) are left out of both losses, since a
    /// CNN's features there see the defect through their receptive field. On thin defects the
    /// official rule calls most defect-covered cells normal and pulls them into the normal shell.
    Margin,
}

impl LabelRule {
    /// Whether `level` has a patch this rule calls anomalous (for the norm loss).
    pub fn any_anomalous(self, level: &crate::corpus::LevelSample) -> bool {
        match self {
            LabelRule::Official => level.norm_labels.iter().any(|v| *v),
            LabelRule::Margin => level.angle_labels.iter().any(|v| *v),
        }
    }
}

/// A batch's labels for one level under a [`LabelRule`], patches of all images in a row.
pub struct Labels {
    /// Angle-loss label per patch (true = anomalous).
    pub angle: Vec<bool>,
    /// Norm-loss label per patch.
    pub norm: Vec<bool>,
    /// Whether the patch takes part in the losses at all.
    pub kept: Vec<bool>,
}

impl Labels {
    /// The labels of `levels` (one level of each image of a batch) under `rule`.
    pub fn of<'a>(levels: impl Iterator<Item = &'a crate::corpus::LevelSample>, rule: LabelRule) -> Self {
        let mut out = Labels { angle: Vec::new(), norm: Vec::new(), kept: Vec::new() };
        for ls in levels {
            out.angle.extend(&ls.angle_labels);
            match rule {
                LabelRule::Official => {
                    out.norm.extend(&ls.norm_labels);
                    out.kept.extend(std::iter::repeat_n(true, ls.angle_labels.len()));
                }
                LabelRule::Margin => {
                    out.norm.extend(&ls.angle_labels);
                    out.kept.extend(ls.angle_labels.iter().zip(&ls.near_defect).map(|(a, near)| *a || !near));
                }
            }
        }
        out
    }
}

/// The rows `rows` as an index tensor for `select`.
fn row_index(rows: &[usize], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(rows.iter().map(|&i| i as i64).collect::<Vec<_>>(), [rows.len()]), device)
}

/// Learning rate of `epoch` (0-based): × 0.1 from 70 % and again from 90 % of the epochs.
pub fn lr_at(base: f64, epoch: usize, epochs: usize) -> f64 {
    let f = epoch as f64 / epochs.max(1) as f64;
    base * if f >= 0.9 {
        0.01
    } else if f >= 0.7 {
        0.1
    } else {
        1.0
    }
}

/// Where a resumed run starts: the weights and report after `epochs_done` epochs.
pub struct Resume {
    /// The weights to continue from.
    pub projectors: Projectors,
    /// Epochs already trained.
    pub epochs_done: usize,
    /// What those epochs measured.
    pub report: TrainReport,
}

/// Trains projectors of `sizes` on `samples`; `progress(epoch, step, loss)` after each step and
/// `epoch_done(epochs so far, projectors, report)` after each epoch (to checkpoint). A resumed
/// run continues the learning-rate schedule from its epoch; Adam's moments start afresh, and
/// the shuffles differ from an uninterrupted run's.
pub fn train(
    samples: &[Sample],
    sizes: &[ProjectorSize],
    settings: &TrainSettings,
    device: &Device,
    resume: Option<Resume>,
    epoch_done: &mut dyn FnMut(usize, &Projectors, &TrainReport) -> anyhow::Result<()>,
    progress: &dyn Fn(usize, usize, f32),
) -> anyhow::Result<(Projectors, TrainReport)> {
    let start = resume.as_ref().map_or(0, |r| r.epochs_done);
    let mut rng = StdRng::seed_from_u64(settings.seed.wrapping_add(start as u64));
    device.seed(settings.seed);
    let channels: Vec<usize> = sizes.iter().map(|s| s.channels).collect();
    let (mut model, mut report) = match resume {
        Some(r) => (r.projectors, r.report),
        None => {
            let scales = if settings.scale_inputs { input_scales(samples, &channels) } else { vec![1.0; sizes.len()] };
            let levels = sizes
                .iter()
                .zip(scales)
                .map(|(s, k)| {
                    let p = LevelProjector::new(*s, k, device);
                    if settings.identity_start {
                        p.starting_as_identity()
                    } else {
                        p
                    }
                })
                .collect();
            (Projectors { levels }, TrainReport::default())
        }
    };
    let mut optim = AdamConfig::new().with_weight_decay(Some(WeightDecayConfig::new(settings.weight_decay))).init();
    // The centre lives in the projector's output space, which starts as the scaled residual's.
    let centers: Vec<Tensor<1>> = centers(samples, &channels)
        .into_iter()
        .zip(&model.levels)
        .map(|(c, p)| {
            let c: Vec<f32> = c.into_iter().map(|v| v * p.input_scale).collect();
            Tensor::from_data(TensorData::new(c.clone(), [c.len()]), device)
        })
        .collect();
    let mut order: Vec<usize> = (0..samples.len()).collect();
    for epoch in start..settings.epochs {
        order.shuffle(&mut rng);
        let lr = lr_at(settings.lr, epoch, settings.epochs);
        let (mut total, mut steps) = (0.0f32, 0usize);
        let mut radius: Vec<Vec<NormStats>> = vec![Vec::new(); sizes.len()];
        for (step, batch) in order.chunks(settings.batch).enumerate() {
            if !batch.iter().any(|&i| samples[i].levels.iter().any(|l| settings.labels.any_anomalous(l))) {
                report.skipped += 1;
                continue;
            }
            let mut loss: Option<Tensor<1>> = None;
            for (l, proj) in model.levels.iter().enumerate() {
                let c = channels[l];
                let n = samples[batch[0]].levels[l].angle_labels.len();
                let stack = |pick: &dyn Fn(&Sample) -> &Vec<f32>| {
                    let data: Vec<f32> = batch.iter().flat_map(|&i| pick(&samples[i]).iter().copied()).collect();
                    Tensor::<3>::from_data(TensorData::new(data, [batch.len(), n, c]), device)
                };
                let e1 = proj.forward(stack(&|s| &s.levels[l].view1)).reshape([batch.len() * n, c]);
                let e2 = proj.forward(stack(&|s| &s.levels[l].view2)).reshape([batch.len() * n, c]);
                let labels = Labels::of(batch.iter().map(|&i| &samples[i].levels[l]), settings.labels);
                let (angle, norm) = (&labels.angle, &labels.norm);
                let mut pick = |want: bool| {
                    let mut idx: Vec<usize> =
                        (0..angle.len()).filter(|&i| labels.kept[i] && angle[i] == want).collect();
                    idx.shuffle(&mut rng);
                    idx.truncate(settings.max_anchors);
                    idx
                };
                let mut anchors = pick(false);
                anchors.extend(pick(true));
                let anchor_labels: Vec<bool> = anchors.iter().map(|&i| angle[i]).collect();
                let index = row_index(&anchors, device);
                let a = (settings.angle_weight > 0.0).then(|| {
                    angle_loss(
                        e1.clone().select(0, index.clone()),
                        e2.clone().select(0, index),
                        &anchor_labels,
                        centers[l].clone(),
                        settings.variant,
                    )
                });
                let a = a.flatten().map(|a| a.mul_scalar(settings.angle_weight));
                let (e1, e2, norm) = if labels.kept.iter().all(|k| *k) {
                    (e1, e2, norm.clone())
                } else {
                    let kept: Vec<usize> = (0..norm.len()).filter(|&i| labels.kept[i]).collect();
                    let index = row_index(&kept, device);
                    (e1.select(0, index.clone()), e2.select(0, index), kept.iter().map(|&i| norm[i]).collect())
                };
                let (n1, s1) = norm_loss(e1, &norm, settings.variant);
                let (n2, _) = norm_loss(e2, &norm, settings.variant);
                radius[l].push(s1);
                let level_loss = match a {
                    Some(a) => a + n1 + n2,
                    None => n1 + n2,
                };
                loss = Some(match loss {
                    Some(t) => t + level_loss,
                    None => level_loss,
                });
            }
            let Some(loss) = loss else { continue };
            let value = crate::projector::tensor_values(loss.clone()).first().copied().unwrap_or(f32::NAN);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            total += value;
            steps += 1;
            progress(epoch, step, value);
        }
        report.epoch_loss.push(total / steps.max(1) as f32);
        report.radius = radius
            .iter()
            .map(|r| {
                let n = r.len().max(1) as f32;
                let mean = |f: &dyn Fn(&NormStats) -> f32| r.iter().map(f).filter(|v| v.is_finite()).sum::<f32>() / n;
                NormStats {
                    r_max: mean(&|s| s.r_max),
                    normal_mean: mean(&|s| s.normal_mean),
                    normal_max: r.iter().map(|s| s.normal_max).fold(f32::NEG_INFINITY, f32::max),
                    anomalous_min: r
                        .iter()
                        .map(|s| s.anomalous_min)
                        .filter(|v| v.is_finite())
                        .fold(f32::INFINITY, f32::min),
                }
            })
            .collect();
        if epoch + 1 == settings.epochs {
            report.separation = separation(&model, samples, &channels, settings.labels, device);
        }
        epoch_done(epoch + 1, &model, &report)?;
    }
    Ok((model, report))
}

/// A training checkpoint: the weights (safetensors, through burn-store) and, beside them, what
/// is needed to resume or export (`checkpoint.json`).
pub mod checkpoint {
    use std::path::Path;

    use anyhow::{bail, Context, Result};
    use burn::prelude::Device;
    use burn::store::{ModuleSnapshot, SafetensorsStore};

    use super::{Projectors, TrainReport};
    use crate::losses::LossVariant;
    use crate::projector::{LevelProjector, ProjectorSize};

    const WEIGHTS: &str = "checkpoint.safetensors";
    const STATE: &str = "checkpoint.json";

    /// What a checkpoint records besides the weights.
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    pub struct State {
        /// Epochs trained so far.
        pub epochs_done: usize,
        /// Projector sizes per level.
        pub sizes: Vec<ProjectorSize>,
        /// The loss variant.
        pub variant: LossVariant,
        /// Training samples.
        pub samples: usize,
        /// The seed.
        pub seed: u64,
        /// The backbone's sha256 (hex): a checkpoint only resumes on the same backbone.
        pub backbone: String,
        /// Per level, the fixed input scale (not in the weights file).
        pub input_scales: Vec<f32>,
        /// What the epochs so far measured.
        pub report: TrainReport,
    }

    /// Writes the weights and state into `dir` (the state last, so a checkpoint with a state has
    /// its weights).
    pub fn save(dir: &Path, projectors: &Projectors, state: &State) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        let weights = dir.join(WEIGHTS);
        // burn-store writes through a temporary file and renames it: an interrupted save keeps
        // the previous checkpoint.
        let mut store = SafetensorsStore::from_file(&weights).overwrite(true);
        projectors.save_into(&mut store).map_err(|e| anyhow::anyhow!("{}: {e}", weights.display()))?;
        let json = serde_json::to_vec_pretty(state)?;
        edge_ad_core::files::write_atomic(&dir.join(STATE), &json)?;
        Ok(())
    }

    /// Reads a checkpoint from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<(Projectors, State)> {
        let state_path = dir.join(STATE);
        let text = std::fs::read_to_string(&state_path)
            .with_context(|| format!("{}: no checkpoint state here", state_path.display()))?;
        let state: State =
            serde_json::from_str(&text).with_context(|| format!("{}: not a checkpoint state", state_path.display()))?;
        if state.sizes.is_empty() {
            bail!("{}: no levels", state_path.display());
        }
        if state.input_scales.len() != state.sizes.len()
            || state.input_scales.iter().any(|k| !(k.is_finite() && *k > 0.0))
        {
            bail!("{}: input_scales must hold one positive scale per level", state_path.display());
        }
        let levels = state.sizes.iter().zip(&state.input_scales).map(|(s, k)| LevelProjector::new(*s, *k, device));
        let mut projectors = Projectors { levels: levels.collect() };
        let weights = dir.join(WEIGHTS);
        let mut store = SafetensorsStore::from_file(&weights);
        let applied = projectors.load_from(&mut store).map_err(|e| anyhow::anyhow!("{}: {e}", weights.display()))?;
        if !applied.missing.is_empty() || !applied.errors.is_empty() {
            bail!("{}: does not fit the recorded sizes ({} tensors missing)", weights.display(), applied.missing.len());
        }
        Ok((projectors, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::LevelSample;

    #[test]
    fn learning_rate_drops_tenfold_at_70_and_90_percent() {
        let lrs: Vec<f64> = (0..10).map(|e| lr_at(1e-4, e, 10)).collect();
        assert_eq!(&lrs[..7], &[1e-4; 7]);
        assert!((lrs[7] - 1e-5).abs() < 1e-12 && (lrs[8] - 1e-5).abs() < 1e-12);
        assert!((lrs[9] - 1e-6).abs() < 1e-12);
    }

    #[test]
    fn margin_labels_leave_out_cells_near_a_defect() {
        // Four cells: clean, near a defect, anomalous (> 1/6), top-left pixel only.
        let level = LevelSample {
            view1: vec![],
            view2: vec![],
            angle_labels: vec![false, false, true, false],
            norm_labels: vec![false, false, false, true],
            near_defect: vec![false, true, true, true],
        };
        let official = Labels::of([&level, &level].into_iter(), LabelRule::Official);
        assert_eq!(official.norm, [false, false, false, true].repeat(2));
        assert!(official.kept.iter().all(|k| *k));
        let margin = Labels::of(std::iter::once(&level), LabelRule::Margin);
        assert_eq!(margin.angle, vec![false, false, true, false]);
        assert_eq!(margin.norm, vec![false, false, true, false]);
        assert_eq!(margin.kept, vec![true, false, true, false]);
        assert!(LabelRule::Margin.any_anomalous(&level) && LabelRule::Official.any_anomalous(&level));
        let clean = LevelSample { angle_labels: vec![false; 4], ..level.clone() };
        assert!(!LabelRule::Margin.any_anomalous(&clean) && LabelRule::Official.any_anomalous(&clean));
    }

    #[test]
    fn separation_of_a_projector_starting_as_identity_equals_the_raw_one() {
        // 6 patches of 8 channels; the anomalous ones are mostly, not all, the larger.
        let norms = [1.0f32, 2.0, 3.0, 5.0, 2.5, 4.0];
        let labels = vec![false, false, false, false, true, true];
        let level = LevelSample {
            view1: norms.iter().flat_map(|n| [*n / 8f32.sqrt(); 8]).collect(),
            view2: vec![],
            angle_labels: labels.clone(),
            norm_labels: labels,
            near_defect: vec![false; 6],
        };
        let device = Device::flex();
        let model = Projectors {
            levels: vec![LevelProjector::new(ProjectorSize::edge(8), 0.5, &device).starting_as_identity()],
        };
        let s = separation(&model, &[Sample { levels: vec![level] }], &[8], LabelRule::Margin, &device);
        let s = s[0].expect("both labels present");
        // 8 anomalous-normal pairs, 5 ordered right (2.5 beats 1 and 2; 4 beats 1, 2 and 3).
        assert!((s.raw - 5.0 / 8.0).abs() < 1e-9, "{s:?}");
        assert!((s.projected - s.raw).abs() < 1e-9, "a scaled identity keeps the order: {s:?}");
    }

    #[test]
    fn centre_is_the_mean_of_normal_patches_only() {
        let level = LevelSample {
            view1: vec![1.0, 2.0, 3.0, 4.0, 100.0, 100.0],
            view2: vec![0.0; 6],
            angle_labels: vec![false, false, true],
            norm_labels: vec![false, false, true],
            near_defect: vec![false, true, true],
        };
        let c = centers(&[Sample { levels: vec![level] }], &[2]);
        assert_eq!(c, vec![vec![2.0, 3.0]]);
    }
}
