//! Where results go: verdict sinks (JSON Lines, plain text) and anomaly maps as `.npy` files at
//! the input image's own resolution.

use std::io::Write;
use std::path::Path;

use fast_image_resize::{images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use npyz::WriterBuilder;
use serde::Serialize;

use crate::decision::Verdict;
use crate::error::{Error, Result};
use crate::preprocess::CropGeometry;

/// One part's result, as `run --json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    /// The image's file name (or frame name).
    pub file: String,
    /// Image score; `null` in JSON when not finite.
    pub score: Option<f32>,
    /// `OK` or `NG`.
    pub verdict: &'static str,
    /// The threshold the verdict was made with.
    pub threshold: f32,
    /// Frame path latency in milliseconds (decode excluded).
    pub latency_ms: f64,
    /// Why the part could not be scored (its verdict is then NG); absent when it was scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Record {
    /// A record; a non-finite score becomes `None`.
    pub fn new(file: String, score: f32, verdict: Verdict, threshold: f32, latency_ms: f64) -> Self {
        let score = score.is_finite().then_some(score);
        Self { file, score, verdict: verdict.as_str(), threshold, latency_ms, error: None }
    }

    /// A part that could not be scored: NG with the reason.
    pub fn fault(file: String, threshold: f32, error: String) -> Self {
        Self { file, score: None, verdict: Verdict::Ng.as_str(), threshold, latency_ms: 0.0, error: Some(error) }
    }
}

/// Receives every verdict record of `edge-ad run` (text or JSON Lines on standard output).
pub trait VerdictSink {
    /// Delivers one record.
    fn deliver(&mut self, record: &Record) -> Result<()>;
}

/// One JSON object per line.
pub struct JsonLines<W: Write>(pub W);

impl<W: Write> VerdictSink for JsonLines<W> {
    fn deliver(&mut self, record: &Record) -> Result<()> {
        let line = serde_json::to_string(record)
            .map_err(|e| Error::Stage { stage: "record", reason: format!("JSON: {e}") })?;
        writeln!(self.0, "{line}").map_err(|e| Error::io("stdout", e))
    }
}

/// One aligned human-readable line per part.
pub struct TextLines<W: Write>(pub W);

impl<W: Write> VerdictSink for TextLines<W> {
    fn deliver(&mut self, r: &Record) -> Result<()> {
        let score = r.score.map_or("-".to_string(), |s| format!("{s:.4}"));
        let io = |e| Error::io("stdout", e);
        writeln!(
            self.0,
            "{:<2}  {score:>8}  (threshold {:.4})  {:6.1} ms  {}",
            r.verdict, r.threshold, r.latency_ms, r.file
        )
        .map_err(io)?;
        if let Some(e) = &r.error {
            writeln!(self.0, "    {e}").map_err(io)?;
        }
        Ok(())
    }
}

/// The working-side map resampled (bilinear) onto the source image's pixels: the crop's square
/// gets the map, anything outside the crop (non-square images) gets 0. Row-major, src_height rows.
pub fn map_at_source(map: &[f32], side: u32, g: &CropGeometry) -> Result<Vec<f32>> {
    let mut src = Image::new(side, side, PixelType::F32);
    for (dst, v) in src.buffer_mut().chunks_exact_mut(4).zip(map) {
        dst.copy_from_slice(&v.to_ne_bytes());
    }
    // The crop in source pixels, rounded outwards to whole pixels; the map is stretched over it.
    let (x0, y0) = (g.left.max(0.0).floor() as u32, g.top.max(0.0).floor() as u32);
    let x1 = ((g.left + g.side).ceil() as u32).min(g.src_width);
    let y1 = ((g.top + g.side).ceil() as u32).min(g.src_height);
    let (w, h) = (x1.saturating_sub(x0).max(1), y1.saturating_sub(y0).max(1));
    let mut dst = Image::new(w, h, PixelType::F32);
    Resizer::new()
        .resize(&src, &mut dst, &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)))
        .map_err(|e| Error::Stage { stage: "anomaly map", reason: format!("resize failed: {e}") })?;
    let mut out = vec![0.0f32; g.src_width as usize * g.src_height as usize];
    for (row, chunk) in dst.buffer().chunks_exact(4 * w as usize).enumerate() {
        let y = y0 as usize + row;
        if y >= g.src_height as usize {
            break;
        }
        for (col, px) in chunk.chunks_exact(4).enumerate() {
            let x = x0 as usize + col;
            if x < g.src_width as usize {
                out[y * g.src_width as usize + x] = f32::from_ne_bytes([px[0], px[1], px[2], px[3]]);
            }
        }
    }
    Ok(out)
}

/// Writes a 2-D float32 `.npy` (rows × cols) atomically.
pub fn write_npy(path: &Path, data: &[f32], rows: usize, cols: usize) -> Result<()> {
    let mut bytes = Vec::with_capacity(128 + 4 * data.len());
    let encode = |out: &mut Vec<u8>| -> std::io::Result<()> {
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[rows as u64, cols as u64])
            .writer(out)
            .begin_nd()?;
        w.extend(data.iter().copied())?;
        w.finish()
    };
    encode(&mut bytes).map_err(|e| Error::io(path, e))?;
    crate::files::write_atomic(path, &bytes)
}
