//! The frame's brightness and contrast against the shots'. The projector is trained with gain
//! jitter, so a uniformly brighter or darker frame scores as nearly normal; a camera blinded by
//! light, gone dark or blocked would then pass parts. Such a frame is refused before scoring.

use edge_ad_calib::Photometry;
use image::RgbImage;

/// How far a frame's mean luma may stand outside the shots' range: 25 % of the range's middle,
/// and at least 12 grey levels (lighting drifts; the calibration's own variations are ±8 % gain).
const MEAN_SLACK: f32 = 0.25;
const MEAN_SLACK_MIN: f32 = 12.0;
/// How far its contrast (luma standard deviation) may: half to twice the shots', ±3 levels.
const STD_FACTOR: f32 = 2.0;
const STD_SLACK: f32 = 3.0;

/// Luma (BT.601) mean and standard deviation of `image`, over at most about 65 000 pixels.
pub fn luma_stats(image: &RgbImage) -> (f32, f32) {
    let (w, h) = image.dimensions();
    let step = ((w as u64 * h as u64 / 65_536) as f64).sqrt().ceil().max(1.0) as usize;
    let (mut n, mut sum, mut sq) = (0f64, 0f64, 0f64);
    for y in (0..h as usize).step_by(step) {
        for x in (0..w as usize).step_by(step) {
            let [r, g, b] = image.get_pixel(x as u32, y as u32).0;
            let l = 0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64;
            n += 1.0;
            sum += l;
            sq += l * l;
        }
    }
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let mean = sum / n;
    (mean as f32, (sq / n - mean * mean).max(0.0).sqrt() as f32)
}

/// The range of the shots' brightness and contrast.
pub fn of_shots<'a>(shots: impl IntoIterator<Item = &'a RgbImage>) -> Photometry {
    let mut p = Photometry { mean_min: f32::MAX, mean_max: 0.0, std_min: f32::MAX, std_max: 0.0 };
    for image in shots {
        let (mean, std) = luma_stats(image);
        p.mean_min = p.mean_min.min(mean);
        p.mean_max = p.mean_max.max(mean);
        p.std_min = p.std_min.min(std);
        p.std_max = p.std_max.max(std);
    }
    p
}

/// `Err(why)` when `image` is much brighter, darker, flatter or busier than the shots were.
pub fn check(shots: &Photometry, image: &RgbImage) -> Result<(), String> {
    let (mean, std) = luma_stats(image);
    let slack = (MEAN_SLACK * 0.5 * (shots.mean_min + shots.mean_max)).max(MEAN_SLACK_MIN);
    let (lo, hi) = (shots.mean_min - slack, shots.mean_max + slack);
    if !(lo..=hi).contains(&mean) {
        return Err(format!(
            "frame brightness {mean:.0} is outside {lo:.0}–{hi:.0}, where the shots were {:.0}–{:.0}: \
             a blinded, dark or blocked camera is never OK",
            shots.mean_min, shots.mean_max
        ));
    }
    let (lo, hi) = (shots.std_min / STD_FACTOR - STD_SLACK, shots.std_max * STD_FACTOR + STD_SLACK);
    if !(lo..=hi).contains(&std) {
        return Err(format!(
            "frame contrast {std:.1} is outside {:.1}–{hi:.1}, where the shots were {:.1}–{:.1}: \
             a washed-out, blocked or unfocused view is never OK",
            lo.max(0.0),
            shots.std_min,
            shots.std_max
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texture(gain: f32) -> RgbImage {
        RgbImage::from_fn(320, 240, |x, y| {
            let v = (100.0 + 40.0 * ((x as f32 * 0.21).sin() + (y as f32 * 0.17).cos())) * gain;
            let v = v.clamp(0.0, 255.0) as u8;
            image::Rgb([v, v, v / 2 + 20])
        })
    }

    #[test]
    fn a_white_dark_or_flat_frame_is_refused_and_lighting_drift_is_not() {
        let shots = [texture(1.0), texture(0.95), texture(1.05)];
        let p = of_shots(shots.iter());
        assert!(p.is_valid() && p.mean_min < p.mean_max);
        for gain in [0.85, 1.0, 1.15] {
            check(&p, &texture(gain)).unwrap_or_else(|e| panic!("gain {gain}: {e}"));
        }
        let white = RgbImage::from_pixel(320, 240, image::Rgb([255, 255, 255]));
        assert!(check(&p, &white).unwrap_err().contains("brightness"));
        let dark = RgbImage::from_pixel(320, 240, image::Rgb([3, 3, 3]));
        assert!(check(&p, &dark).unwrap_err().contains("brightness"));
        let flat = RgbImage::from_pixel(320, 240, image::Rgb([100, 100, 70]));
        assert!(check(&p, &flat).unwrap_err().contains("contrast"));
    }
}
