//! Scorers: per level, one anomaly score per patch of the projected residual map. FeatureNorm is
//! ADPretrain's; PatchCore-style and PaDiM run on the same features, fitted on the shots' own
//! (leave-one-out) projected residuals.

use edge_ad_calib::ScorerKind;
use nalgebra::DMatrix;

use crate::backbone::FeatureMap;
use crate::error::{Error, Result};
use crate::residual::{MatchBank, SearchScratch, Similarity};

/// Turns a level's projected residual map into patch scores.
pub trait Scorer: Send + Sync {
    /// Which scorer this is.
    fn kind(&self) -> ScorerKind;
    /// Writes one score per patch (row-major H·W) of `projected`, level `level`, into `out`.
    fn level_scores(&self, level: usize, projected: &FeatureMap, threads: usize, out: &mut [f32]);
}

/// FeatureNorm as the official code computes it: a = √(‖z‖₂ + 1) − 1 per patch.
pub struct FeatureNorm;

impl Scorer for FeatureNorm {
    fn kind(&self) -> ScorerKind {
        ScorerKind::FeatureNorm
    }

    fn level_scores(&self, _level: usize, projected: &FeatureMap, _threads: usize, out: &mut [f32]) {
        for (o, z) in out.iter_mut().zip(projected.data.chunks_exact(projected.channels)) {
            let norm = z.iter().map(|v| v * v).sum::<f32>().sqrt();
            *o = (norm + 1.0).sqrt() - 1.0;
        }
    }
}

/// PatchCore-style: Euclidean distance to the nearest patch of the shots' projected residuals
/// (all positions, all shots; no coreset subsampling at K shots).
pub struct PatchCore {
    memory: Vec<MatchBank>,
}

impl PatchCore {
    /// Memory banks from `samples[shot][level]`.
    pub fn fit(samples: &[Vec<FeatureMap>]) -> Self {
        let levels = samples.first().map_or(0, |s| s.len());
        let memory = (0..levels)
            .map(|l| {
                let channels = samples[0][l].channels;
                let rows: Vec<f32> = samples.iter().flat_map(|s| s[l].data.iter().copied()).collect();
                MatchBank::new(channels, &rows, Similarity::Euclidean)
            })
            .collect();
        Self { memory }
    }
}

impl Scorer for PatchCore {
    fn kind(&self) -> ScorerKind {
        ScorerKind::PatchCore
    }

    fn level_scores(&self, level: usize, projected: &FeatureMap, threads: usize, out: &mut [f32]) {
        let bank = &self.memory[level];
        // PatchCore is not the default scorer: its search buffers are made per call.
        let mut scratch = SearchScratch::default();
        let best = bank.search(&projected.data, threads, &mut scratch);
        for ((o, (_, b)), row) in out.iter_mut().zip(best).zip(projected.data.chunks_exact(projected.channels)) {
            // best = q·m − ‖m‖²/2, so ‖q − m‖² = ‖q‖² − 2·best.
            let sq = row.iter().map(|v| v * v).sum::<f32>() - 2.0 * b;
            *o = sq.max(0.0).sqrt();
        }
    }
}

/// PaDiM: per level and position, a Gaussian over the shots (covariance + 0.01·I, as the
/// official code), scored by the Mahalanobis distance.
pub struct Padim {
    levels: Vec<PadimLevel>,
}

struct PadimLevel {
    channels: usize,
    mean: Vec<f32>,
    inv_cov: Vec<f32>,
}

/// Regularisation added to every covariance's diagonal.
pub const PADIM_EPSILON: f64 = 0.01;

impl Padim {
    /// Per-position Gaussians from `samples[shot][level]`.
    pub fn fit(samples: &[Vec<FeatureMap>]) -> Result<Self> {
        let levels = samples.first().map_or(0, |s| s.len());
        let n = samples.len();
        let mut out = Vec::with_capacity(levels);
        for l in 0..levels {
            let (c, patches) = (samples[0][l].channels, samples[0][l].patches());
            let mut mean = vec![0.0f32; patches * c];
            let mut inv_cov = vec![0.0f32; patches * c * c];
            for p in 0..patches {
                let rows: Vec<&[f32]> = samples.iter().map(|s| &s[l].data[p * c..(p + 1) * c]).collect();
                let mu: Vec<f64> = (0..c).map(|i| rows.iter().map(|r| r[i] as f64).sum::<f64>() / n as f64).collect();
                let mut cov = DMatrix::<f64>::identity(c, c) * PADIM_EPSILON;
                let denom = (n.max(2) - 1) as f64;
                for r in &rows {
                    let d: Vec<f64> = r.iter().zip(&mu).map(|(v, m)| *v as f64 - m).collect();
                    for i in 0..c {
                        for j in 0..c {
                            cov[(i, j)] += d[i] * d[j] / denom;
                        }
                    }
                }
                let inv = cov
                    .cholesky()
                    .ok_or_else(|| Error::Stage {
                        stage: "PaDiM",
                        reason: format!("covariance of level {l} is not positive definite"),
                    })?
                    .inverse();
                for (i, m) in mu.iter().enumerate() {
                    mean[p * c + i] = *m as f32;
                }
                for (k, v) in inv.transpose().iter().enumerate() {
                    inv_cov[p * c * c + k] = *v as f32;
                }
            }
            out.push(PadimLevel { channels: c, mean, inv_cov });
        }
        Ok(Self { levels: out })
    }
}

impl Scorer for Padim {
    fn kind(&self) -> ScorerKind {
        ScorerKind::Padim
    }

    fn level_scores(&self, level: usize, projected: &FeatureMap, _threads: usize, out: &mut [f32]) {
        let g = &self.levels[level];
        let c = g.channels;
        let mut d = vec![0.0f32; c];
        for (p, o) in out.iter_mut().enumerate() {
            let at = p * c..(p + 1) * c;
            for ((di, x), m) in d.iter_mut().zip(&projected.data[at.clone()]).zip(&g.mean[at]) {
                *di = x - m;
            }
            let inv = &g.inv_cov[p * c * c..(p + 1) * c * c];
            let mut acc = 0.0f32;
            for (i, row) in inv.chunks_exact(c).enumerate() {
                acc += d[i] * row.iter().zip(&d).map(|(a, b)| a * b).sum::<f32>();
            }
            *o = acc.max(0.0).sqrt();
        }
    }
}

/// Fits the scorer of `kind` on the shots' projected (leave-one-out) residuals
/// `samples[shot][level]`. FeatureNorm needs none.
pub fn fit(kind: ScorerKind, samples: &[Vec<FeatureMap>]) -> Result<Box<dyn Scorer>> {
    Ok(match kind {
        ScorerKind::FeatureNorm => Box::new(FeatureNorm),
        ScorerKind::PatchCore => Box::new(PatchCore::fit(samples)),
        ScorerKind::Padim => Box::new(Padim::fit(samples)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rows: &[&[f32]]) -> FeatureMap {
        FeatureMap { channels: rows[0].len(), height: 1, width: rows.len(), data: rows.concat() }
    }

    /// The contract every scorer keeps, whatever its maths: one finite, non-negative score per
    /// patch, every output written, the same scores for any thread count, and a patch far from
    /// what the shots showed scoring above every patch like them.
    #[test]
    fn every_scorer_keeps_the_contract() {
        let (c, h, w) = (3, 4, 4);
        // Small pseudo-random residuals, as projected residuals of good parts are.
        let noise = |seed: usize| -> FeatureMap {
            let data =
                (0..c * h * w).map(|i| ((i * 2654435761 + seed * 40503) % 1000) as f32 / 1000.0 * 0.2 - 0.1).collect();
            FeatureMap { channels: c, height: h, width: w, data }
        };
        let samples: Vec<Vec<FeatureMap>> = (0..4).map(|k| vec![noise(k + 1)]).collect();
        for kind in ScorerKind::ALL {
            let scorer = fit(kind, &samples).unwrap();
            assert_eq!(scorer.kind(), kind);
            let mut query = noise(9);
            query.data[5 * c..6 * c].copy_from_slice(&[4.0, -3.0, 5.0]);
            let mut one = vec![f32::NAN; h * w];
            let mut two = vec![f32::NAN; h * w];
            scorer.level_scores(0, &query, 1, &mut one);
            scorer.level_scores(0, &query, 2, &mut two);
            assert!(one.iter().all(|v| v.is_finite() && *v >= 0.0), "{kind:?}: {one:?}");
            assert_eq!(one, two, "{kind:?}: the thread count changes nothing");
            let worst_normal = one.iter().enumerate().filter(|(p, _)| *p != 5).map(|(_, v)| *v).fold(0.0, f32::max);
            assert!(one[5] > worst_normal, "{kind:?}: the odd patch {} ≤ a normal one {worst_normal}", one[5]);
        }
    }

    #[test]
    fn featurenorm_is_sqrt_of_norm_plus_one_minus_one() {
        let m = map(&[&[3.0, 4.0], &[0.0, 0.0]]);
        let mut out = [0.0; 2];
        FeatureNorm.level_scores(0, &m, 1, &mut out);
        assert!((out[0] - (6.0f32.sqrt() - 1.0)).abs() < 1e-6);
        assert_eq!(out[1], 0.0);
    }

    #[test]
    fn patchcore_gives_distance_to_nearest_memory_patch() {
        let shot = vec![map(&[&[0.0, 0.0], &[10.0, 0.0]])];
        let pc = PatchCore::fit(&[shot]);
        let q = map(&[&[1.0, 0.0], &[10.0, 2.0]]);
        let mut out = [0.0; 2];
        pc.level_scores(0, &q, 2, &mut out);
        assert!((out[0] - 1.0).abs() < 1e-4 && (out[1] - 2.0).abs() < 1e-4, "{out:?}");
    }

    #[test]
    fn padim_distance_is_zero_at_the_mean_and_grows_off_it() {
        let shots: Vec<Vec<FeatureMap>> =
            [[1.0f32, 0.0], [-1.0, 0.0], [0.0, 0.5], [0.0, -0.5]].iter().map(|r| vec![map(&[r])]).collect();
        let pd = Padim::fit(&shots).unwrap();
        let mut out = [0.0; 1];
        pd.level_scores(0, &map(&[&[0.0, 0.0]]), 1, &mut out);
        assert!(out[0].abs() < 1e-5);
        // Along the low-variance axis the same step is further in Mahalanobis terms.
        let mut a = [0.0; 1];
        let mut b = [0.0; 1];
        pd.level_scores(0, &map(&[&[0.5, 0.0]]), 1, &mut a);
        pd.level_scores(0, &map(&[&[0.0, 0.5]]), 1, &mut b);
        assert!(b[0] > a[0] * 1.5, "{a:?} {b:?}");
    }
}
