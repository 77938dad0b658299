//! Synthetic anomalies for data with only good images, so pretraining needs no defect image:
//! cut-paste of an irregular patch of the same part (CutPaste), a noise-shaped blend of a foreign
//! texture (DRAEM), and scratches. Each returns its mask (255 = anomalous).

use edge_ad_eval::synth;
use image::{imageops, GrayImage, ImageBuffer, Luma, RgbImage};
use rand::{rngs::StdRng, Rng};

/// A kind of synthetic anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An irregular patch of the same image pasted elsewhere, slightly recoloured.
    CutPaste,
    /// A foreign texture blended in through a thresholded smooth-noise shape.
    NoiseBlend,
    /// A thin line, light or dark.
    Scratch,
}

/// The kinds in the order they are cycled through.
pub const KINDS: [Kind; 3] = [Kind::CutPaste, Kind::NoiseBlend, Kind::Scratch];

/// Smooth noise in [0, 1): a `cells`×`cells` random grid upsampled with Catmull-Rom.
fn smooth_noise(width: u32, height: u32, cells: u32, rng: &mut StdRng) -> ImageBuffer<Luma<f32>, Vec<f32>> {
    let grid = ImageBuffer::from_fn(cells, cells, |_, _| Luma([rng.random::<f32>()]));
    imageops::resize(&grid, width, height, imageops::FilterType::CatmullRom)
}

/// An irregular blob: smooth noise above a threshold, inside an ellipse of a random size and place.
/// Never empty: the ellipse's centre is always in.
fn blob(width: u32, height: u32, rng: &mut StdRng) -> GrayImage {
    let (w, h) = (width as f32, height as f32);
    let (rx, ry) = (w * rng.random_range(0.06..0.18), h * rng.random_range(0.06..0.18));
    let (cx, cy) = (rng.random_range(rx..w - rx), rng.random_range(ry..h - ry));
    let noise = smooth_noise(width, height, rng.random_range(4..10), rng);
    let threshold = rng.random_range(0.35..0.55);
    let mut mask = GrayImage::from_fn(width, height, |x, y| {
        let d = ((x as f32 - cx) / rx).powi(2) + ((y as f32 - cy) / ry).powi(2);
        // The noise shapes the edge: inside the ellipse, more of it passes near the centre.
        let inside = d < 1.0 && noise.get_pixel(x, y).0[0] + 0.5 * (1.0 - d) > threshold + 0.25;
        Luma([if inside { 255 } else { 0 }])
    });
    mask.put_pixel(cx as u32, cy as u32, Luma([255]));
    mask
}

/// Paints an anomaly of `kind` on `image`; `foreign` is a texture from elsewhere (noise blend).
pub fn paint(image: &mut RgbImage, kind: Kind, foreign: &RgbImage, rng: &mut StdRng) -> GrayImage {
    let (width, height) = image.dimensions();
    match kind {
        Kind::Scratch => synth::paint_defect(image, "scratch", rng),
        Kind::CutPaste => {
            let mask = blob(width, height, rng);
            let source = image.clone();
            let (dx, dy) =
                (rng.random_range(width / 8..width / 2) as i64, rng.random_range(height / 8..height / 2) as i64);
            let gain = [0, 1, 2].map(|_| rng.random_range(0.75f32..1.25));
            for (x, y, m) in mask.enumerate_pixels() {
                if m.0[0] == 0 {
                    continue;
                }
                let sx = (x as i64 + dx).rem_euclid(width as i64) as u32;
                let sy = (y as i64 + dy).rem_euclid(height as i64) as u32;
                let s = source.get_pixel(sx, sy).0;
                image.put_pixel(x, y, image::Rgb([0, 1, 2].map(|c| (s[c] as f32 * gain[c]).clamp(0.0, 255.0) as u8)));
            }
            mask
        }
        Kind::NoiseBlend => {
            let mask = blob(width, height, rng);
            let foreign = imageops::resize(foreign, width, height, imageops::FilterType::Triangle);
            let beta = rng.random_range(0.3f32..0.8);
            for (x, y, m) in mask.enumerate_pixels() {
                if m.0[0] == 0 {
                    continue;
                }
                let (p, f) = (image.get_pixel(x, y).0, foreign.get_pixel(x, y).0);
                let mixed = [0, 1, 2].map(|c| (p[c] as f32 * (1.0 - beta) + f[c] as f32 * beta) as u8);
                image.put_pixel(x, y, image::Rgb(mixed));
            }
            mask
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_kind_changes_exactly_what_its_mask_covers() {
        let mut rng = StdRng::seed_from_u64(3);
        let foreign = synth::good_part("speckle", 128, &mut rng);
        for kind in KINDS {
            for _ in 0..5 {
                let original = synth::good_part("knit", 128, &mut rng);
                let mut image = original.clone();
                let mask = paint(&mut image, kind, &foreign, &mut rng);
                let area = mask.pixels().filter(|m| m.0[0] > 0).count();
                assert!(area > 0 && area < 128 * 128 / 4, "{kind:?}: area {area}");
                let changed_outside = image
                    .enumerate_pixels()
                    .filter(|(x, y, p)| mask.get_pixel(*x, *y).0[0] == 0 && **p != *original.get_pixel(*x, *y))
                    .count();
                assert_eq!(changed_outside, 0, "{kind:?} changed pixels outside its mask");
                let changed_inside = image.pixels().zip(original.pixels()).filter(|(a, b)| a != b).count();
                assert!(changed_inside * 4 >= area, "{kind:?}: only {changed_inside} of {area} masked pixels changed");
            }
        }
    }
}
