//! The site calibration a box makes from K good parts (`edge-ad calibrate --shots K`).

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::header::{Payload, PayloadKind};
use crate::manifest::{ModelIdentity, Name};

/// How patch features become anomaly scores; the threshold belongs to one scorer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ScorerKind {
    /// ADPretrain's FeatureNorm: √(‖z‖+1) − 1 of the projected residual.
    FeatureNorm,
    /// PatchCore-style: distance to the nearest patch of the shots' own projected residuals.
    PatchCore,
    /// PaDiM: per-position Gaussian over the shots, Mahalanobis distance.
    Padim,
}

impl ScorerKind {
    /// Every scorer, in the order the CLI lists them.
    pub const ALL: [Self; 3] = [Self::FeatureNorm, Self::PatchCore, Self::Padim];

    /// The scorer spelled `name` ([`Self::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The CLI spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::FeatureNorm => "featurenorm",
            Self::PatchCore => "patchcore",
            Self::Padim => "padim",
        }
    }
}

/// How the anomaly map becomes one image score; the threshold belongs to one rule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ImageScore {
    /// The map's maximum (the official code's).
    Max,
    /// The mean of the highest `fraction` of the map's pixels (0 < fraction ≤ 1).
    TopMean {
        /// Share of the map's pixels averaged.
        fraction: f32,
    },
}

impl ImageScore {
    /// Whether the rule can be applied: `Max`, or a share in (0, 1].
    pub fn is_valid(self) -> bool {
        match self {
            Self::Max => true,
            Self::TopMean { fraction } => fraction.is_finite() && fraction > 0.0 && fraction <= 1.0,
        }
    }
}

/// The K-shot reference bank of one feature level: every patch of every shot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReferenceLevel {
    /// Backbone output this level comes from.
    pub output: Name,
    /// Feature channels C.
    pub channels: u32,
    /// Feature grid height.
    pub height: u32,
    /// Feature grid width.
    pub width: u32,
    /// Number of shots K.
    pub shots: u32,
    /// Raw backbone features, K·H·W rows of C values; rows image-major, then row-major patch.
    pub features: Vec<f32>,
}

impl ReferenceLevel {
    /// Patches per shot (H·W).
    pub fn patches_per_shot(&self) -> usize {
        self.height as usize * self.width as usize
    }

    /// Rows of the bank (K·H·W), or `None` when the sizes overflow.
    pub fn rows(&self) -> Option<usize> {
        (self.shots as usize).checked_mul(self.patches_per_shot())
    }
}

/// Statistics of the good-part scores a threshold was made from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ScoreStats {
    /// The scores themselves (leave-one-out scores of the shots and their augmentations).
    pub scores: Vec<f32>,
    /// Smallest score.
    pub min: f32,
    /// Largest score.
    pub max: f32,
    /// Mean score.
    pub mean: f32,
    /// Standard deviation (population).
    pub std: f32,
}

/// The decision threshold and how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Threshold {
    /// Score above which a part is NG (after sensitivity).
    pub value: f32,
    /// Threshold before sensitivity: max(largest good score, mean + spread · std) · (1 + margin).
    pub base: f32,
    /// How many standard deviations of the good scores the threshold stands above their mean.
    pub spread: f32,
    /// Relative margin on top.
    pub margin: f32,
    /// Sensitivity it was made with (value = base / sensitivity).
    pub sensitivity: f32,
    /// The good-part scores behind it.
    pub stats: ScoreStats,
}

/// How bright and how contrasted the shots were: the range of their luma mean and standard
/// deviation (0–255, over the whole frame). A frame far outside it (a blinded, dark or blocked
/// camera) is never a part to pass, whatever its features say.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Photometry {
    /// Lowest mean luma of a shot.
    pub mean_min: f32,
    /// Highest mean luma of a shot.
    pub mean_max: f32,
    /// Lowest luma standard deviation of a shot.
    pub std_min: f32,
    /// Highest luma standard deviation of a shot.
    pub std_max: f32,
}

impl Photometry {
    /// Whether the ranges are finite, non-negative and ordered.
    pub fn is_valid(&self) -> bool {
        let all = [self.mean_min, self.mean_max, self.std_min, self.std_max];
        all.iter().all(|v| v.is_finite() && *v >= 0.0) && self.mean_min <= self.mean_max && self.std_min <= self.std_max
    }
}

/// A box's site calibration: reference bank, threshold, and what it was made with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SiteCalibration {
    /// The model files it was made with.
    pub model: ModelIdentity,
    /// The scorer its threshold belongs to.
    pub scorer: ScorerKind,
    /// How the map becomes the image score its threshold belongs to.
    pub image_score: ImageScore,
    /// Shorter image side after resizing, before the centre crop.
    pub resize_side: u32,
    /// Working resolution: the square side fed to the backbone.
    pub working_side: u32,
    /// File names of the shots, in the order used.
    pub shot_names: Vec<Name>,
    /// One reference bank per backbone level, in manifest order.
    pub levels: Vec<ReferenceLevel>,
    /// The decision threshold.
    pub threshold: Threshold,
    /// The shots' brightness and contrast.
    pub photometry: Photometry,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix_s: u64,
}

impl Payload for SiteCalibration {
    const KIND: PayloadKind = PayloadKind::SiteCalibration;
    /// Version 2 added [`SiteCalibration::image_score`] and [`Threshold::spread`]; version 3
    /// [`SiteCalibration::photometry`].
    const VERSION: u16 = 3;
}

impl SiteCalibration {
    /// Checks internal consistency so a reader can index the banks without bounds surprises.
    /// Returns what is wrong.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.levels.is_empty() {
            return Err("calibration holds no reference level");
        }
        if self.working_side == 0 || self.resize_side < self.working_side {
            return Err("working side is 0 or larger than the resize side");
        }
        let shots = self.levels[0].shots;
        if shots == 0 || shots as usize != self.shot_names.len() {
            return Err("shot count is 0 or does not match the shot names");
        }
        for level in &self.levels {
            if level.shots != shots || level.channels == 0 || level.height == 0 || level.width == 0 {
                return Err("a reference level has zero sizes or another shot count");
            }
            let values = level.rows().and_then(|r| r.checked_mul(level.channels as usize));
            if values != Some(level.features.len()) {
                return Err("a reference level's feature count does not match its sizes");
            }
            if level.features.iter().any(|v| !v.is_finite()) {
                return Err("a reference level holds non-finite features");
            }
        }
        if !self.image_score.is_valid() {
            return Err("image score fraction is not in (0, 1]");
        }
        if !self.photometry.is_valid() {
            return Err("the shots' brightness and contrast ranges are not finite, ordered and non-negative");
        }
        let t = &self.threshold;
        if !(t.value.is_finite() && t.value > 0.0 && t.sensitivity.is_finite() && t.sensitivity > 0.0) {
            return Err("threshold or sensitivity is not a positive finite number");
        }
        if !(t.spread.is_finite() && t.spread >= 0.0 && t.margin.is_finite() && t.margin >= 0.0) {
            return Err("threshold spread or margin is negative or not a finite number");
        }
        // `run --sensitivity` and the box's sensitivity divide `base` again: it must be the
        // base the value was made from.
        if !(t.base.is_finite() && t.base > 0.0) || (t.value - t.base / t.sensitivity).abs() > 1e-5 * t.value {
            return Err("threshold value is not its base divided by its sensitivity");
        }
        Ok(())
    }
}
