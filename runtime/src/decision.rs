//! The decision: a threshold made from good parts only, and the verdict. A score that is not a
//! finite number at or below the threshold is never OK.

use edge_ad_calib::{ScoreStats, Threshold};

/// Default relative margin over the largest leave-one-out good score with a pretrained projector.
/// The projector gathers good patches near one radius, so 4 shots see nearly the whole spread
/// of good scores but not its top; 0.1 is the smallest margin that kept false rejects under 2 %
/// on a validation set of the training textures (README, *Measured*).
pub const PROJECTOR_MARGIN: f32 = 0.1;
/// Default margin with the identity projector (raw residuals), whose good scores spread wider:
/// there 0.1 more than doubles the escapes, and 0 keeps false rejects under 3 %.
pub const IDENTITY_MARGIN: f32 = 0.0;

/// The default margin for a frame path with (`true`) or without a pretrained projector.
pub fn default_margin(projected: bool) -> f32 {
    if projected {
        PROJECTOR_MARGIN
    } else {
        IDENTITY_MARGIN
    }
}

/// A part's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Good part.
    Ok,
    /// Defective part, or no trustworthy score.
    Ng,
}

impl Verdict {
    /// `OK` or `NG`, as records and the PLC conventions spell them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Ng => "NG",
        }
    }
}

/// OK only for a finite score at or below a finite threshold; NaN, ±∞ and anything above are NG.
pub fn decide(score: f32, threshold: f32) -> Verdict {
    if score.is_finite() && threshold.is_finite() && score <= threshold {
        Verdict::Ok
    } else {
        Verdict::Ng
    }
}

/// Statistics of good-part scores.
pub fn stats(scores: Vec<f32>) -> ScoreStats {
    let n = scores.len().max(1) as f32;
    let mean = scores.iter().sum::<f32>() / n;
    let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f32>() / n;
    let min = scores.iter().copied().fold(f32::INFINITY, f32::min);
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    ScoreStats { scores, min, max, mean, std: var.sqrt() }
}

/// The threshold from good-part scores: base = max · (1 + margin), value = base / sensitivity.
/// Sensitivity above 1 lowers the threshold (more NG), below 1 raises it.
pub fn threshold(scores: Vec<f32>, margin: f32, sensitivity: f32) -> Threshold {
    let stats = stats(scores);
    let base = stats.max * (1.0 + margin);
    Threshold { value: base / sensitivity, base, margin, sensitivity, stats }
}

/// The same threshold with another sensitivity.
pub fn with_sensitivity(t: &Threshold, sensitivity: f32) -> Threshold {
    Threshold { value: t.base / sensitivity, sensitivity, ..t.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_doubtful_is_ok() {
        assert_eq!(decide(0.5, 1.0), Verdict::Ok);
        assert_eq!(decide(1.0, 1.0), Verdict::Ok);
        assert_eq!(decide(1.0001, 1.0), Verdict::Ng);
        assert_eq!(decide(f32::NAN, 1.0), Verdict::Ng);
        assert_eq!(decide(f32::INFINITY, 1.0), Verdict::Ng);
        assert_eq!(decide(f32::NEG_INFINITY, 1.0), Verdict::Ng);
        assert_eq!(decide(0.5, f32::NAN), Verdict::Ng);
    }

    #[test]
    fn threshold_is_margin_over_max_and_sensitivity_moves_it() {
        let t = threshold(vec![1.0, 2.0, 1.5], 0.1, 1.0);
        assert!((t.base - 2.2).abs() < 1e-6 && (t.value - 2.2).abs() < 1e-6);
        assert_eq!(t.stats.min, 1.0);
        assert!((t.stats.mean - 1.5).abs() < 1e-6);
        let tighter = with_sensitivity(&t, 2.0);
        assert!((tighter.value - 1.1).abs() < 1e-6 && tighter.base == t.base);
    }
}
