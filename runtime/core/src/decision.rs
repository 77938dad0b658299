//! The decision: a threshold made from good parts only, and the verdict. A score that is not a
//! finite number at or below the threshold is never OK.

use edge_ad_calib::{ScoreStats, Threshold};

/// Default spread: the threshold stands this many standard deviations of the leave-one-out good
/// scores above their mean (never below the largest of them). Chosen on the real-photograph
/// validation set (README, *How the threshold is made*): there, good parts cut from another
/// region of the same photograph score above every leave-one-out score of the shots far more
/// often than the largest score alone allows for, and the spread of the shots' own scores is the
/// one measure of that variation that 4 good parts give.
pub const DEFAULT_SPREAD: f32 = 4.0;
/// Default relative margin on top of the spread rule.
pub const DEFAULT_MARGIN: f32 = 0.0;

/// The sensitivities a box accepts. Below the range the threshold would rise so far that every
/// part passes (a sensitivity of 0.001 makes it 1000 times the calibrated one); above it, every
/// part fails. Halving or quadrupling the calibrated strictness is as far as a knob goes; beyond
/// that, calibrate again.
pub const SENSITIVITY_RANGE: std::ops::RangeInclusive<f32> = 0.5..=4.0;
/// The spreads a calibration accepts (standard deviations above the mean good score).
pub const SPREAD_RANGE: std::ops::RangeInclusive<f32> = 0.0..=10.0;
/// The relative margins a calibration accepts (at most doubling the threshold).
pub const MARGIN_RANGE: std::ops::RangeInclusive<f32> = 0.0..=1.0;

/// Checks a threshold setting against its range; the error names it and the range.
pub fn check_setting(name: &str, value: f32, range: &std::ops::RangeInclusive<f32>) -> Result<(), String> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!("{name} must be in {}..={}, got {value}", range.start(), range.end()))
    }
}

/// Whether a stored threshold follows from its own good scores, spread, margin and sensitivity
/// by [`threshold`]'s rule, with every setting in range. A calibration whose threshold was
/// edited (and its checksum recomputed) fails here; one whose scores were edited too needs the
/// signature to be caught.
pub fn check_threshold(t: &Threshold) -> Result<(), String> {
    check_setting("sensitivity", t.sensitivity, &SENSITIVITY_RANGE)?;
    check_setting("spread", t.spread, &SPREAD_RANGE)?;
    check_setting("margin", t.margin, &MARGIN_RANGE)?;
    if t.stats.scores.is_empty() || t.stats.scores.iter().any(|s| !s.is_finite()) {
        return Err("the threshold's good scores are missing or not finite".into());
    }
    let again = threshold(t.stats.scores.clone(), t.spread, t.margin, t.sensitivity);
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1e-6);
    let stats_match = close(again.stats.min, t.stats.min)
        && close(again.stats.max, t.stats.max)
        && close(again.stats.mean, t.stats.mean)
        && (again.stats.std - t.stats.std).abs() <= 1e-4 * again.stats.mean.abs().max(1e-6);
    if !(stats_match && close(again.base, t.base) && close(again.value, t.value)) {
        return Err(format!(
            "the threshold {} does not follow from its good scores and settings (they give {}): the file was altered",
            t.value, again.value
        ));
    }
    Ok(())
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

/// The threshold from good-part scores: base = max(largest score, mean + spread · std) ·
/// (1 + margin), value = base / sensitivity. Sensitivity above 1 lowers the threshold (more NG),
/// below 1 raises it.
pub fn threshold(scores: Vec<f32>, spread: f32, margin: f32, sensitivity: f32) -> Threshold {
    let stats = stats(scores);
    // f32::max would drop a NaN; a rule that cannot be computed gives a NaN threshold, which
    // decides NG for every part and which a calibration refuses to write.
    let above_mean = stats.mean + spread * stats.std;
    let base = if above_mean.is_finite() { stats.max.max(above_mean) * (1.0 + margin) } else { f32::NAN };
    Threshold { value: base / sensitivity, base, spread, margin, sensitivity, stats }
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
    fn threshold_is_spread_over_mean_never_below_max_and_sensitivity_moves_it() {
        // mean 1.5, population std √(1/6) ≈ 0.408: mean + 1·std ≈ 1.908 is below the max, 2.
        let t = threshold(vec![1.0, 2.0, 1.5], 1.0, 0.0, 1.0);
        assert!((t.base - 2.0).abs() < 1e-6, "{}", t.base);
        let t = threshold(vec![1.0, 2.0, 1.5], 4.0, 0.1, 1.0);
        let want = (1.5 + 4.0 * (1.0f32 / 6.0).sqrt()) * 1.1;
        assert!((t.base - want).abs() < 1e-5 && (t.value - want).abs() < 1e-5, "{} vs {want}", t.base);
        assert_eq!(t.stats.min, 1.0);
        assert!((t.stats.mean - 1.5).abs() < 1e-6);
        let tighter = with_sensitivity(&t, 2.0);
        assert!((tighter.value - want / 2.0).abs() < 1e-5 && tighter.base == t.base);
    }

    #[test]
    fn a_rule_that_overflows_is_a_nan_threshold_that_passes_nothing() {
        let t = threshold(vec![1.0, f32::MAX], 4.0, 0.0, 1.0);
        assert!(t.value.is_nan());
        assert_eq!(decide(0.0, t.value), Verdict::Ng);
    }
}
