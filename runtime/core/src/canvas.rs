//! An RGB image as an embedded-graphics draw target: what the operator's overlay and the
//! evaluation plots draw into (built-in mono fonts, so no font files are needed on a box).

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
