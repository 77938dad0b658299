//! ROC and PRO curve plots as PNG, drawn with embedded-graphics (built-in mono fonts, so no font
//! files are needed on a box) into an RGB image.

use std::path::Path;

use embedded_graphics::{
    mono_font::{ascii::FONT_6X10, MonoTextStyle},
    pixelcolor::Rgb888,
    prelude::*,
    primitives::{Line, Polyline, PrimitiveStyle, Rectangle},
    text::Text,
};
use image::RgbImage;

use crate::eval::{CategoryReport, Curves};
use edge_ad_core::canvas::Canvas;
use edge_ad_core::{Error, Result};

const SIZE: u32 = 360;
const MARGIN: i32 = 40;

/// Draws one curve of (x, y) points with x in [0, x_max], y in [0, 1].
pub fn plot(title: &str, x_label: &str, y_label: &str, points: &[(f64, f64)], x_max: f64) -> RgbImage {
    let mut c = Canvas(RgbImage::from_pixel(SIZE, SIZE, image::Rgb([255, 255, 255])));
    let span = SIZE as i32 - 2 * MARGIN;
    let to_px = |x: f64, y: f64| {
        Point::new(
            MARGIN + ((x / x_max).clamp(0.0, 1.0) * span as f64) as i32,
            MARGIN + span - (y.clamp(0.0, 1.0) * span as f64) as i32,
        )
    };
    let text = MonoTextStyle::new(&FONT_6X10, Rgb888::BLACK);
    let grey = PrimitiveStyle::with_stroke(Rgb888::new(200, 200, 200), 1);
    let _ = Rectangle::new(Point::new(MARGIN, MARGIN), Size::new(span as u32, span as u32))
        .into_styled(PrimitiveStyle::with_stroke(Rgb888::BLACK, 1))
        .draw(&mut c);
    for k in 1..4 {
        let f = k as f64 / 4.0;
        let _ = Line::new(to_px(f * x_max, 0.0), to_px(f * x_max, 1.0)).into_styled(grey).draw(&mut c);
        let _ = Line::new(to_px(0.0, f), to_px(x_max, f)).into_styled(grey).draw(&mut c);
    }
    let pts: Vec<Point> = points.iter().filter(|p| p.0 <= x_max).map(|&(x, y)| to_px(x, y)).collect();
    let _ = Polyline::new(&pts).into_styled(PrimitiveStyle::with_stroke(Rgb888::new(200, 30, 30), 2)).draw(&mut c);
    let _ = Text::new(title, Point::new(MARGIN, MARGIN - 12), text).draw(&mut c);
    let _ = Text::new(x_label, Point::new(SIZE as i32 / 2 - 10, SIZE as i32 - 12), text).draw(&mut c);
    let _ = Text::new(y_label, Point::new(4, SIZE as i32 / 2), text).draw(&mut c);
    let _ = Text::new("0", Point::new(MARGIN - 8, MARGIN + span + 12), text).draw(&mut c);
    let _ = Text::new(&format!("{x_max}"), Point::new(MARGIN + span - 10, MARGIN + span + 12), text).draw(&mut c);
    let _ = Text::new("1", Point::new(MARGIN - 10, MARGIN + 4), text).draw(&mut c);
    c.0
}

/// Writes `<category>_roc.png` and `<category>_pro.png` into `dir`.
pub fn write_curves(dir: &Path, report: &CategoryReport, curves: &Curves) -> Result<()> {
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let roc = plot(
        &format!("{} ROC, image AUROC {}", report.category, fmt(report.image_auroc)),
        "FPR",
        "TPR",
        &curves.roc,
        1.0,
    );
    let pro =
        plot(&format!("{} PRO, AUPRO@0.3 {}", report.category, fmt(report.aupro)), "FPR", "PRO", &curves.pro, 0.3);
    for (img, suffix) in [(roc, "roc"), (pro, "pro")] {
        let path = dir.join(format!("{}_{suffix}.png", report.category));
        img.save(&path).map_err(|e| Error::bad_file(&path, format!("cannot write plot: {e}")))?;
    }
    Ok(())
}
