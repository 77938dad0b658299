//! The overlay an operator sees: the anomaly map blended over the frame as a heatmap, an OK/NG
//! banner with the score and threshold, and the counters, drawn with embedded-graphics into an
//! RGB buffer. Written as PNG for archived parts and to a Linux framebuffer
//! ([`crate::linux::framebuffer`]) when the box has one.

use embedded_graphics::{
    mono_font::{ascii::FONT_10X20, ascii::FONT_6X10, MonoTextStyle},
    pixelcolor::Rgb888,
    prelude::*,
    primitives::{PrimitiveStyle, Rectangle},
    text::Text,
};
use image::RgbImage;

use crate::error::{Error, Result};
use edge_ad_core::canvas::{blend_heatmap, Canvas};
use edge_ad_core::decision::Verdict;

/// What the overlay says about one part.
pub struct Caption<'a> {
    /// The verdict (`None`: no verdict, a fault).
    pub verdict: Option<Verdict>,
    /// The image score.
    pub score: f32,
    /// The threshold it was held against.
    pub threshold: f32,
    /// A line at the bottom (counters).
    pub footer: &'a str,
}

/// The frame with `map` (one value per frame pixel, row-major) blended over it as a heatmap
/// ([`blend_heatmap`]), then the banner and footer.
pub fn draw(frame: &RgbImage, map: Option<&[f32]>, caption: &Caption<'_>) -> RgbImage {
    let mut out = frame.clone();
    if let Some(map) = map {
        blend_heatmap(&mut out, map, caption.threshold);
    }
    let mut canvas = Canvas(out);
    let width = canvas.0.width();
    let (label, colour) = match caption.verdict {
        Some(Verdict::Ok) => ("OK", Rgb888::new(0, 150, 60)),
        Some(Verdict::Ng) => ("NG", Rgb888::new(200, 20, 20)),
        None => ("ERROR", Rgb888::new(230, 120, 0)),
    };
    let _ = Rectangle::new(Point::zero(), Size::new(width, 26))
        .into_styled(PrimitiveStyle::with_fill(colour))
        .draw(&mut canvas);
    let big = MonoTextStyle::new(&FONT_10X20, Rgb888::WHITE);
    let small = MonoTextStyle::new(&FONT_6X10, Rgb888::WHITE);
    let _ = Text::new(label, Point::new(6, 19), big).draw(&mut canvas);
    let numbers = format!("score {:.4}  threshold {:.4}", caption.score, caption.threshold);
    let _ = Text::new(&numbers, Point::new(70, 16), small).draw(&mut canvas);
    let height = canvas.0.height() as i32;
    let _ = Rectangle::new(Point::new(0, height - 14), Size::new(width, 14))
        .into_styled(PrimitiveStyle::with_fill(Rgb888::BLACK))
        .draw(&mut canvas);
    let _ = Text::new(caption.footer, Point::new(4, height - 4), small).draw(&mut canvas);
    canvas.0
}

/// The overlay as PNG bytes.
pub fn png(image: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| Error::Encode { what: "PNG", reason: e.to_string() })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heatmap_marks_the_anomaly_and_the_banner_says_the_verdict() {
        let frame = RgbImage::from_pixel(200, 120, image::Rgb([128, 128, 128]));
        let mut map = vec![0.0f32; 200 * 120];
        for y in 60..80 {
            for x in 100..130 {
                map[y * 200 + x] = 2.0;
            }
        }
        let caption = Caption { verdict: Some(Verdict::Ng), score: 2.0, threshold: 1.0, footer: "OK 1  NG 1" };
        let out = draw(&frame, Some(&map), &caption);
        let hot = out.get_pixel(115, 70).0;
        let cold = out.get_pixel(20, 60).0;
        assert!(hot[0] > 180 && hot[2] < 100, "the anomaly is red: {hot:?}");
        assert!(cold[2] > cold[0], "good areas lean blue: {cold:?}");
        assert_eq!(out.get_pixel(198, 2).0, [200, 20, 20], "NG banner");
        let ok = draw(&frame, None, &Caption { verdict: Some(Verdict::Ok), ..caption });
        assert_eq!(ok.get_pixel(198, 2).0, [0, 150, 60], "OK banner");
        assert_eq!(ok.get_pixel(100, 60).0, [128, 128, 128], "no map, frame unchanged");
        let text_pixels = (0..200).filter(|&x| ok.get_pixel(x, 115).0 == [255, 255, 255]).count();
        assert!(text_pixels > 0, "the footer is written");
        assert!(png(&out).unwrap().starts_with(b"\x89PNG"));
    }
}
