//! The evaluation report an engineer reads (`edge-ad eval --report DIR`): one self-contained
//! `DIR/index.html` with its images beside it in `DIR/img/` (nothing fetched from elsewhere, no
//! script), showing per category where the threshold sits between the good parts and each
//! defect kind, and which parts it gets wrong.
//!
//! Per category: the figures and the calibration (K, the good leave-one-out scores, spread,
//! margin, sensitivity, threshold); a strip plot of every part's score by kind with the threshold
//! and the thresholds of sensitivity 0.8 and 1.25, and the escape and false-reject rates of each;
//! the image ROC and the pixel ROC with the calibrated operating point, and the PRO curve to FPR
//! 0.3; the worst escapes and worst false rejects as heatmap overlays with the ground truth
//! outlined. Charts are SVG drawn with plotters (the browser renders their text, so no font
//! files are needed).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use image::RgbImage;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::eval::{rates_at, CategoryReport, Details, PartResult};
use edge_ad_core::decision::{with_sensitivity, Verdict};
use edge_ad_core::preprocess::CropGeometry;
use edge_ad_core::{Error, Result};

/// The other sensitivities whose thresholds and rates the report shows beside the calibrated one.
pub const OTHER_SENSITIVITIES: [f32; 2] = [0.8, 1.25];

/// Largest side of an overlay image in the report (larger parts are scaled down).
const OVERLAY_SIDE: u32 = 256;

/// One category of the report: its figures and what the evaluation kept of it.
pub struct Section<'a> {
    /// The figures (as `eval --json` prints them).
    pub report: &'a CategoryReport,
    /// Curves, calibration, parts and worst parts.
    pub details: &'a Details,
}

/// Writes the report into `dir` (created if needed): `index.html` and its images in `dir/img/`.
/// `title` heads the page (the dataset); `mean` is the mean over the sections. Returns the path
/// of `index.html`.
pub fn write(dir: &Path, title: &str, sections: &[Section<'_>], mean: &CategoryReport) -> Result<PathBuf> {
    let img = dir.join("img");
    std::fs::create_dir_all(&img).map_err(|e| Error::io(&img, e))?;
    let mut html = String::new();
    head(&mut html, title);
    summary(&mut html, sections, mean);
    for (i, section) in sections.iter().enumerate() {
        category(&mut html, dir, i, section)?;
    }
    html.push_str("</body>\n</html>\n");
    let index = dir.join("index.html");
    std::fs::write(&index, html).map_err(|e| Error::io(&index, e))?;
    Ok(index)
}

/// Text made safe for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn fig(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1} %", 100.0 * v))
}

fn head(html: &mut String, title: &str) {
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>edge-ad evaluation: {t}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
tr.mean td {{ font-weight: bold; }}
.charts img {{ border: 1px solid #ddd; margin: 0 0.5em 0.5em 0; vertical-align: top; }}
.parts {{ display: flex; flex-wrap: wrap; gap: 0.6em; }}
figure {{ margin: 0; font-size: 0.8em; max-width: {side}px; }}
figure img {{ display: block; }}
.note {{ color: #555; font-size: 0.9em; }}
section {{ border-top: 2px solid #888; margin-top: 2em; }}
</style>
</head>
<body>
<h1>edge-ad evaluation</h1>
<p>Dataset <code>{t}</code>, edge-ad {v}.</p>
"#,
        t = esc(title),
        side = OVERLAY_SIDE,
        v = env!("CARGO_PKG_VERSION"),
    );
}

fn summary(html: &mut String, sections: &[Section<'_>], mean: &CategoryReport) {
    let _ = writeln!(
        html,
        "<h2>Figures</h2>\n<p>{} {}, {} shots each, scorer {}. Rates at the calibrated threshold.</p>",
        sections.len(),
        if sections.len() == 1 { "category" } else { "categories" },
        mean.shots,
        esc(&mean.scorer)
    );
    html.push_str(
        "<table>\n<tr><th>category</th><th>image AUROC</th><th>pixel AUROC</th><th>AUPRO@0.3</th>\
         <th>threshold</th><th>escapes</th><th>false rejects</th><th>good</th><th>defective</th>\
         <th>ms median</th><th>ms p95</th><th>frames/s</th></tr>\n",
    );
    let row = |html: &mut String, r: &CategoryReport, name: String, class: &str| {
        let _ = writeln!(
            html,
            "<tr{class}><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            fig(r.image_auroc),
            fig(r.pixel_auroc),
            fig(r.aupro),
            r.threshold,
            pct(r.escape_rate),
            pct(r.false_reject_rate),
            r.good_images,
            r.defect_images,
            r.latency_ms_median,
            r.latency_ms_p95,
            r.frames_per_s,
        );
    };
    for (i, s) in sections.iter().enumerate() {
        row(html, s.report, format!("<a href=\"#c{i}\">{}</a>", esc(&s.report.category)), "");
    }
    if sections.len() > 1 {
        row(html, mean, "mean".into(), " class=\"mean\"");
    }
    html.push_str("</table>\n");
    if !mean.defects.is_empty() {
        let title = if sections.len() > 1 { "Per defect kind, mean over the categories" } else { "Per defect kind" };
        let _ = writeln!(html, "<h3>{title}</h3>");
        defect_table(html, mean);
    }
}

fn defect_table(html: &mut String, r: &CategoryReport) {
    html.push_str("<table>\n<tr><th>defect kind</th><th>image AUROC</th><th>escapes</th><th>parts</th></tr>\n");
    for d in &r.defects {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.kind),
            fig(d.image_auroc),
            pct(d.escape_rate),
            d.images
        );
    }
    html.push_str("</table>\n");
}

fn category(html: &mut String, dir: &Path, i: usize, s: &Section<'_>) -> Result<()> {
    let (r, d) = (s.report, s.details);
    let t = &d.threshold;
    let _ = writeln!(html, "<section id=\"c{i}\">\n<h2>{}</h2>", esc(&r.category));
    let loo: Vec<String> = t.stats.scores.iter().map(|v| format!("{v:.3}")).collect();
    let _ = writeln!(
        html,
        "<p>Calibrated on K = {} shots. Good leave-one-out scores ({}): {}. Mean {:.4}, std {:.4}, largest {:.4}. \
         Threshold = max(largest, mean + {} · std) · (1 + {}) / sensitivity {} = <b>{:.4}</b>.</p>",
        r.shots,
        t.stats.scores.len(),
        loo.join(", "),
        t.stats.mean,
        t.stats.std,
        t.stats.max,
        t.spread,
        t.margin,
        t.sensitivity,
        t.value
    );
    // The calibrated threshold and the other sensitivities', lowest sensitivity first.
    let mut sens: Vec<f32> = OTHER_SENSITIVITIES.iter().copied().filter(|s| *s != t.sensitivity).collect();
    sens.push(t.sensitivity);
    sens.sort_by(f32::total_cmp);
    let lines: Vec<(f32, f32)> = sens.iter().map(|&s| (s, with_sensitivity(t, s).value)).collect();
    html.push_str("<table>\n<tr><th>sensitivity</th><th>threshold</th><th>escapes</th><th>false rejects</th></tr>\n");
    for &(s, value) in &lines {
        let (e, f) = rates_at(&d.parts, value);
        let mark = if s == t.sensitivity { " (calibrated)" } else { "" };
        let _ = writeln!(html, "<tr><td>{s}{mark}</td><td>{value:.4}</td><td>{}</td><td>{}</td></tr>", pct(e), pct(f));
    }
    html.push_str("</table>\n<div class=\"charts\">\n");
    let name = |what: &str| format!("img/c{i}-{what}");
    let charts = [
        ("scores.svg", scores_chart(&r.category, d, &lines)?, "scores by kind with the thresholds"),
        (
            "image-roc.svg",
            curve_chart(
                &format!("image ROC, AUROC {}", fig(r.image_auroc)),
                ("FPR (good parts NG)", "TPR (defective parts NG)"),
                &d.image_roc,
                1.0,
                r.false_reject_rate.zip(r.escape_rate.map(|e| 1.0 - e)),
            )?,
            "image ROC",
        ),
        (
            "pixel-roc.svg",
            curve_chart(
                &format!("pixel ROC, AUROC {}", fig(r.pixel_auroc)),
                ("FPR (good pixels above threshold)", "TPR (defect pixels above threshold)"),
                &d.pixel_roc,
                1.0,
                d.pixel_operating_point,
            )?,
            "pixel ROC",
        ),
        (
            "pro.svg",
            curve_chart(
                &format!("PRO to FPR 0.3, AUPRO {}", fig(r.aupro)),
                ("FPR (good pixels)", "PRO (mean region overlap)"),
                &d.pro,
                0.3,
                None,
            )?,
            "PRO curve",
        ),
    ];
    for (file, svg, alt) in charts {
        let path = dir.join(name(file));
        std::fs::write(&path, svg).map_err(|e| Error::io(&path, e))?;
        let _ = writeln!(html, "<img src=\"{}\" alt=\"{alt}\">", name(file));
    }
    html.push_str(
        "</div>\n<p class=\"note\">Strip plot: each dot is a part, green called OK, red called NG \
                   (blue: the good leave-one-out scores the threshold was made from). ROC dots: the calibrated \
                   operating point; for pixels, a map pixel above the threshold counts as flagged.</p>\n",
    );
    if !r.defects.is_empty() {
        html.push_str("<h3>Per defect kind</h3>\n");
        defect_table(html, r);
    }
    let escapes: Vec<_> = d.worst.iter().filter(|w| d.parts[w.part].item.defect.is_some()).collect();
    let rejects: Vec<_> = d.worst.iter().filter(|w| d.parts[w.part].item.defect.is_none()).collect();
    for (title, worst, tag) in [
        ("Worst escapes (defects called OK)", escapes, "escape"),
        ("Worst false rejects (good parts called NG)", rejects, "reject"),
    ] {
        let _ = writeln!(html, "<h3>{title}</h3>");
        if worst.is_empty() {
            html.push_str("<p>None.</p>\n");
            continue;
        }
        html.push_str("<div class=\"parts\">\n");
        for (k, w) in worst.iter().enumerate() {
            let part = &d.parts[w.part];
            let file = name(&format!("{tag}-{k}.jpg"));
            let path = dir.join(&file);
            let image = overlay(part, &w.map, d, t.value)?;
            // JPEG: a photographed part's overlay is about 6 times smaller than as PNG.
            let mut bytes = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 88)
                .encode_image(&image)
                .map_err(|e| Error::bad_file(&path, format!("cannot encode: {e}")))?;
            std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
            let shown = part.item.path.file_name().map_or(String::new(), |f| f.to_string_lossy().into_owned());
            let _ = writeln!(
                html,
                "<figure><img src=\"{file}\" alt=\"{a}\"><figcaption>{kind} <code>{a}</code><br>score {:.4} / threshold {:.4}</figcaption></figure>",
                part.score,
                t.value,
                a = esc(&shown),
                kind = esc(part.item.defect.as_deref().unwrap_or("good")),
            );
        }
        html.push_str("</div>\n");
    }
    html.push_str("</section>\n");
    Ok(())
}

fn chart_error(e: impl std::fmt::Display) -> Error {
    Error::Stage { stage: "report", reason: format!("chart: {e}") }
}

/// The strip plot: one row per kind (the calibration's leave-one-out scores, good, then each
/// defect kind), a dot per part at its score, and a vertical line per threshold.
fn scores_chart(title: &str, d: &Details, lines: &[(f32, f32)]) -> Result<String> {
    let mut kinds: Vec<&str> = d.parts.iter().filter_map(|p| p.item.defect.as_deref()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut rows: Vec<String> = vec!["calibration (LOO)".into(), "good".into()];
    rows.extend(kinds.iter().map(|k| k.to_string()));
    // Top row first: row r sits at y = rows - 1 - r.
    let y_of = |r: usize| (rows.len() - 1 - r) as f64;
    let finite = |v: f32| v.is_finite().then_some(v as f64);
    let values: Vec<f64> = d
        .parts
        .iter()
        .map(|p| p.score)
        .chain(d.threshold.stats.scores.iter().copied())
        .chain(lines.iter().map(|l| l.1))
        .filter_map(finite)
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (0.0, 1.0) };
    let pad = 0.05 * (hi - lo);
    let height = 110 + 34 * rows.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (860, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{title}: image scores"), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(140)
            .build_cartesian_2d((lo - pad)..(hi + pad), -0.6..(rows.len() as f64))
            .map_err(chart_error)?;
        let names = rows.clone();
        let label = move |y: &f64| {
            let r = y.round();
            if (y - r).abs() > 1e-6 || r < 0.0 || r as usize >= names.len() {
                return String::new();
            }
            names[names.len() - 1 - r as usize].clone()
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE)
            .y_labels(2 * rows.len() + 2)
            .y_label_formatter(&label)
            .x_desc("image score")
            .draw()
            .map_err(chart_error)?;
        // A fixed spread inside each row so equal scores stay visible.
        let jitter = |k: usize| ((k as f64 * 0.618_034).fract() - 0.5) * 0.5;
        let loo = d.threshold.stats.scores.iter().enumerate().filter_map(|(k, &s)| finite(s).map(|s| (k, s)));
        chart
            .draw_series(loo.map(|(k, s)| Circle::new((s, y_of(0) + jitter(k)), 3, BLUE.mix(0.7).filled())))
            .map_err(chart_error)?;
        let row_of = |p: &PartResult| match p.item.defect.as_deref() {
            None => 1,
            Some(k) => 2 + kinds.iter().position(|x| *x == k).unwrap_or(0),
        };
        let ok = RGBColor(0, 150, 60);
        let ng = RGBColor(210, 30, 30);
        chart
            .draw_series(d.parts.iter().enumerate().map(|(k, p)| {
                // A NaN or infinite score is drawn at the right edge: it is NG.
                let x = finite(p.score).unwrap_or(hi + pad);
                let colour = if p.verdict == Verdict::Ok { ok } else { ng };
                Circle::new((x, y_of(row_of(p)) + jitter(k)), 3, colour.mix(0.8).filled())
            }))
            .map_err(chart_error)?;
        // Each threshold a vertical line from the bottom row to the labels above the top row.
        let top = rows.len() as f64 - 0.55;
        for &(s, value) in lines {
            let Some(x) = finite(value) else { continue };
            let calibrated = s == d.threshold.sensitivity;
            let points = vec![(x, -0.6), (x, top)];
            let label =
                if calibrated { format!("threshold {value:.3}") } else { format!("sensitivity {s}: {value:.3}") };
            if calibrated {
                chart.draw_series(LineSeries::new(points, BLACK.stroke_width(2))).map_err(chart_error)?;
            } else {
                let grey = RGBColor(120, 120, 120);
                chart.draw_series(DashedLineSeries::new(points, 4, 4, grey.stroke_width(1))).map_err(chart_error)?;
            }
            let style = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
            chart.draw_series([Text::new(label, (x, top + 0.05), style)]).map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// A curve of (x, y) points on [0, x_max] × [0, 1], with the operating point marked.
fn curve_chart(
    title: &str,
    (x_desc, y_desc): (&str, &str),
    points: &[(f64, f64)],
    x_max: f64,
    operating: Option<(f64, f64)>,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (420, 340)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..x_max, 0.0..1.0)
            .map_err(chart_error)?;
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().map_err(chart_error)?;
        if x_max >= 1.0 {
            let grey = RGBColor(170, 170, 170);
            chart
                .draw_series(DashedLineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], 4, 4, grey.into()))
                .map_err(chart_error)?;
        }
        chart
            .draw_series(LineSeries::new(points.iter().copied().filter(|p| p.0 <= x_max), RED.stroke_width(2)))
            .map_err(chart_error)?;
        if let Some((x, y)) = operating {
            chart
                .draw_series([Circle::new((x, y), 5, BLACK.filled())])
                .map_err(chart_error)?
                .label(format!("at the threshold: FPR {x:.3}, TPR {y:.3}"))
                .legend(|(x, y)| Circle::new((x + 8, y), 4, BLACK.filled()));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// The part as captured with its map blended over it as a heatmap (the operator's overlay
/// colours) and the ground truth's outline in magenta, scaled down to [`OVERLAY_SIDE`].
fn overlay(part: &PartResult, map: &[f32], d: &Details, threshold: f32) -> Result<RgbImage> {
    let mut image = edge_ad_core::source::load_image(&part.item.path)?;
    let (w, h) = image.dimensions();
    let geometry = CropGeometry::new(w, h, d.resize_side, d.working_side);
    let at_source = edge_ad_core::output::map_at_source(map, d.working_side, &geometry)?;
    edge_ad_core::canvas::blend_heatmap(&mut image, &at_source, threshold);
    if let Some(path) = &part.item.mask {
        let mask = crate::dataset::read_mask(path)?;
        if mask.dimensions() == (w, h) {
            let inside = |x: i64, y: i64| {
                x >= 0 && y >= 0 && x < w as i64 && y < h as i64 && mask.get_pixel(x as u32, y as u32)[0] > 127
            };
            // The outline: mask pixels with a 4-neighbour outside the mask.
            for y in 0..h as i64 {
                for x in 0..w as i64 {
                    if inside(x, y) && !(inside(x - 1, y) && inside(x + 1, y) && inside(x, y - 1) && inside(x, y + 1)) {
                        image.put_pixel(x as u32, y as u32, image::Rgb([255, 0, 255]));
                    }
                }
            }
        }
    }
    let scale = OVERLAY_SIDE as f64 / w.max(h) as f64;
    if scale < 1.0 {
        let (sw, sh) = (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1));
        image = image::imageops::resize(&image, sw, sh, image::imageops::FilterType::Triangle);
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(esc(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn a_curve_chart_is_an_svg_with_its_title_and_operating_point() {
        let svg =
            curve_chart("image ROC", ("FPR", "TPR"), &[(0.0, 0.0), (0.2, 0.9), (1.0, 1.0)], 1.0, Some((0.2, 0.9)))
                .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("image ROC"));
        assert!(svg.contains("FPR 0.200, TPR 0.900"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
