//! An RGB image as an embedded-graphics draw target, what the operator's overlay draws into
//! (built-in mono fonts, so no font files are needed on a box), and the anomaly heatmap blended
//! over a frame.

use std::convert::Infallible;

use embedded_graphics::{pixelcolor::Rgb888, prelude::*};
use image::RgbImage;

/// An RGB image as an embedded-graphics draw target (pixels outside are clipped).
pub struct Canvas(pub RgbImage);

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(&mut self, pixels: I) -> Result<(), Infallible> {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.0.width() && (p.y as u32) < self.0.height() {
                self.0.put_pixel(p.x as u32, p.y as u32, image::Rgb([c.r(), c.g(), c.b()]));
            }
        }
        Ok(())
    }
}

/// Heat colour of `t` in [0, 1]: blue → green → yellow → red (jet without its dark-red end).
fn heat(t: f32) -> [f32; 3] {
    let t = 0.8 * t.clamp(0.0, 1.0);
    let r = (1.5 - (4.0 * t - 3.0).abs()).clamp(0.0, 1.0);
    let g = (1.5 - (4.0 * t - 2.0).abs()).clamp(0.0, 1.0);
    let b = (1.5 - (4.0 * t - 1.0).abs()).clamp(0.0, 1.0);
    [r * 255.0, g * 255.0, b * 255.0]
}

/// Blends `map` (one value per pixel of `image`, row-major) over `image` as a heatmap; a map of
/// another size is left out. The colour runs from 0.6 × threshold (blue: the typical good surface
/// scores well above zero) to the threshold (red), and the blend grows with the value so good
/// areas stay close to the frame. What the operator's overlay and the evaluation report draw.
pub fn blend_heatmap(image: &mut RgbImage, map: &[f32], threshold: f32) {
    if map.len() != (image.width() as usize) * (image.height() as usize) {
        return;
    }
    let (low, span) = if threshold.is_finite() && threshold > 0.0 {
        (0.6 * threshold, 0.4 * threshold)
    } else {
        (0.0, f32::INFINITY)
    };
    for (p, &v) in image.pixels_mut().zip(map) {
        let t = ((v - low) / span).clamp(0.0, 1.0);
        let alpha = 0.15 + 0.5 * t;
        let c = heat(t);
        for (v, h) in p.0.iter_mut().zip(c) {
            *v = (*v as f32 * (1.0 - alpha) + h * alpha) as u8;
        }
    }
}
