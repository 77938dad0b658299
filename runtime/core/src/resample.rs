//! Resampling a square crop of an RGB frame to the working square: separable Catmull-Rom
//! (bicubic, a = −0.5), antialiased as PIL does it (the filter widens by the downscale factor), the
//! crop given in fractional source pixels. The filter weights are kept between frames and made
//! again only when the frame's size or crop changes, so a frame allocates nothing.
//!
//! Why not fast_image_resize, which the crate used before: version 6.1 computes its weights again
//! on every call and converts them to fixed point one output row and column at a time, each in a
//! vector of its own (454 allocations for a 224² frame, counted in `tests/allocations.rs`), and it
//! has no way to keep them. The weights here are computed as it computes them (PIL's algorithm:
//! `fast_image_resize` `convolution::precompute_coefficients`), the sums are in f32, rounded to 8
//! bits between the two passes and at the end as it rounds: its output and this agree but for
//! about 1 % of values one level apart (its weights are fixed point; tested against it). It costs
//! more than fast_image_resize's SIMD fixed-point loops (`examples/resample_cost.rs`; README,
//! *Speed*).

use image::RgbImage;

/// One axis' filter: for output pixel `i`, input pixels `start[i]..start[i] + len[i]` weighted by
/// `weights[i · window..]`.
#[derive(Debug, Default)]
struct Axis {
    start: Vec<usize>,
    len: Vec<usize>,
    window: usize,
    weights: Vec<f32>,
}

/// Catmull-Rom's kernel (a = −0.5), support 2.
fn catmull_rom(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

impl Axis {
    /// The filter from input pixels `in0..in1` (fractional) of `in_size` to `out_size` outputs,
    /// made in place (vectors keep their capacity). Weights that are zero at either end of an
    /// output's span are dropped; each output's weights sum to one.
    fn make(&mut self, in_size: usize, in0: f64, in1: f64, out_size: usize) {
        let scale = (in1 - in0) / out_size as f64;
        let filter_scale = scale.max(1.0);
        let radius = 2.0 * filter_scale;
        self.window = radius.ceil() as usize * 2 + 1;
        self.start.clear();
        self.len.clear();
        self.weights.clear();
        self.weights.resize(self.window * out_size, 0.0);
        let mut span = vec![0.0f64; self.window];
        for (i, row) in self.weights.chunks_exact_mut(self.window).enumerate() {
            let centre = in0 + (i as f64 + 0.5) * scale;
            let first = (centre - radius).floor().max(0.0) as usize;
            let end = ((centre + radius).ceil().min(in_size as f64) as usize).max(first);
            let mut n = 0;
            let mut start = first;
            for x in first..end.min(first + self.window) {
                let w = catmull_rom((x as f64 - (centre - 0.5)) / filter_scale);
                if n == 0 && w == 0.0 {
                    start = x + 1;
                    continue;
                }
                span[n] = w;
                n += 1;
            }
            while n > 0 && span[n - 1] == 0.0 {
                n -= 1;
            }
            let sum: f64 = span[..n].iter().sum();
            for (w, s) in row.iter_mut().zip(&span[..n]) {
                *w = if sum != 0.0 { (s / sum) as f32 } else { *s as f32 };
            }
            self.start.push(start);
            self.len.push(n);
        }
    }

    /// The input pixels the outputs' spans cover: the lowest start, and one past the highest end.
    fn range(&self) -> (usize, usize) {
        let first = self.start.iter().copied().min().unwrap_or(0);
        let end = self.start.iter().zip(&self.len).map(|(s, n)| s + n).max().unwrap_or(0);
        (first, end.max(first))
    }
}

/// The crop of the frame to resample, in source pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Crop {
    pub left: f64,
    pub top: f64,
    pub side: f64,
}

/// Resamples crops of frames to `side` × `side` RGB, keeping its filters and its buffer between
/// frames.
#[derive(Debug)]
pub(crate) struct Resampler {
    side: usize,
    /// The frame size and crop the filters were made for.
    made_for: Option<(u32, u32, Crop)>,
    columns: Axis,
    rows: Axis,
    /// The vertical pass: `side` rows of the source columns the columns' filter reads, 4 values
    /// a pixel.
    vertical: Vec<f32>,
    /// One row of the vertical pass' sums, 3 values a pixel.
    sums: Vec<f32>,
}

impl Resampler {
    /// A resampler to `side` × `side` pixels.
    pub fn new(side: usize) -> Self {
        Self {
            side,
            made_for: None,
            columns: Axis::default(),
            rows: Axis::default(),
            vertical: Vec::new(),
            sums: Vec::new(),
        }
    }

    /// Resamples `crop` of `image` into `out` (`side` × `side` RGB, row-major). The crop must lie
    /// within the image and have a positive side; `out` must hold side² · 3 values.
    pub fn run(&mut self, image: &RgbImage, crop: Crop, out: &mut [u8]) {
        let (w, h) = image.dimensions();
        let side = self.side;
        assert_eq!(out.len(), side * side * 3, "output size");
        if self.made_for != Some((w, h, crop)) {
            self.columns.make(w as usize, crop.left, crop.left + crop.side, side);
            self.rows.make(h as usize, crop.top, crop.top + crop.side, side);
            self.made_for = Some((w, h, crop));
        }
        let (first, end) = self.columns.range();
        let span = end - first;
        self.vertical.resize(side * span * 4, 0.0);
        let stride = w as usize * 3;
        self.sums.resize(span * 3, 0.0);
        let source = (image.as_raw().as_slice(), stride, first * 3);
        for (y, row) in self.vertical.chunks_exact_mut((span * 4).max(1)).enumerate().take(side) {
            let weights = &self.rows.weights[y * self.rows.window..][..self.rows.len[y]];
            vertical_row(row, &mut self.sums, source, self.rows.start[y], weights);
        }
        for (out_row, row) in out.chunks_exact_mut(side * 3).zip(self.vertical.chunks_exact((span * 4).max(1))) {
            horizontal_row(out_row, row, &self.columns, first);
        }
    }
}

/// One output row of the vertical pass: each pixel of the span (from byte `offset` of a source
/// row on) summed over source rows `start + t` weighted by `weights[t]` into `sums` (3 values a
/// pixel), then rounded to 8 bits (as PIL and fast_image_resize keep the values between their
/// passes) and written to `out` as 4 values a pixel (RGB and a zero), so that the horizontal pass
/// sums a pixel in one vector.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
fn vertical_row(
    out: &mut [f32],
    sums: &mut [f32],
    (raw, stride, offset): (&[u8], usize, usize),
    start: usize,
    weights: &[f32],
) {
    sums.fill(0.0);
    for (t, &wt) in weights.iter().enumerate() {
        let src = &raw[(start + t) * stride + offset..][..sums.len()];
        // One long run over contiguous values: vector conversions, multiplies and adds.
        for (a, &v) in sums.iter_mut().zip(src) {
            *a += wt * v as f32;
        }
    }
    // Rounded half up to 8 bits between the passes (truncating a non-negative value floors it).
    let level = |v: f32| (v.clamp(0.0, 255.0) + 0.5) as i32 as f32;
    for (px, rgb) in out.chunks_exact_mut(4).zip(sums.chunks_exact(3)) {
        px[0] = level(rgb[0]);
        px[1] = level(rgb[1]);
        px[2] = level(rgb[2]);
        px[3] = 0.0;
    }
}

/// One output row of the horizontal pass over a row of the vertical pass (4 values a pixel, the
/// span starting at source column `first`), rounded half up to 8 bits.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
fn horizontal_row(out: &mut [u8], row: &[f32], columns: &Axis, first: usize) {
    let spans = columns.start.iter().zip(&columns.len).zip(columns.weights.chunks_exact(columns.window));
    for (px, ((&start, &n), weights)) in out.chunks_exact_mut(3).zip(spans) {
        let taps = &row[(start - first) * 4..(start - first + n) * 4];
        let mut sum = [0.0f32; 4];
        for (p, &wt) in taps.chunks_exact(4).zip(weights) {
            // Four named lanes: one vector multiply-add a tap.
            let Ok(p) = <&[f32; 4]>::try_from(p) else { continue };
            sum[0] += wt * p[0];
            sum[1] += wt * p[1];
            sum[2] += wt * p[2];
            sum[3] += wt * p[3];
        }
        px[0] = (sum[0].clamp(0.0, 255.0) + 0.5) as u8;
        px[1] = (sum[1].clamp(0.0, 255.0) + 0.5) as u8;
        px[2] = (sum[2].clamp(0.0, 255.0) + 0.5) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fast_image_resize::{images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

    /// Noise with hard edges (Catmull-Rom overshoots there: the clamp is exercised).
    fn frame(w: u32, h: u32, seed: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let n = (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663) ^ seed.wrapping_mul(83_492_791)) >> 7;
            let edge = if (x / 5 + y / 3) % 2 == 0 { 255 } else { 0 };
            image::Rgb([(n % 256) as u8, edge, ((x * 255) / w.max(1)) as u8])
        })
    }

    /// The centred square crop a working side of `side` takes after the shorter side is resized
    /// to `resize` (as `preprocess::CropGeometry` places it).
    fn crop(w: u32, h: u32, resize: u32, side: u32) -> Crop {
        let s = side as f64 * w.min(h) as f64 / resize as f64;
        Crop { left: (w as f64 - s) / 2.0, top: (h as f64 - s) / 2.0, side: s }
    }

    fn reference(image: &RgbImage, c: Crop, side: u32) -> Vec<u8> {
        let mut out = Image::new(side, side, PixelType::U8x3);
        let options = ResizeOptions::new()
            .crop(c.left, c.top, c.side, c.side)
            .resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
        Resizer::new().resize(image, &mut out, &options).unwrap();
        out.into_vec()
    }

    #[test]
    fn it_gives_fast_image_resizes_result_to_a_level_or_so() {
        let side = 224;
        let mut resampler = Resampler::new(side as usize);
        let mut out = vec![0u8; side as usize * side as usize * 3];
        // Down from camera sizes, a plain crop, up from small frames, a tall frame; the same
        // resampler throughout (filters made again on each size change), each size twice.
        for (w, h, resize) in [
            (256, 256, 256),
            (1920, 1080, 256),
            (224, 224, 224),
            (640, 480, 256),
            (150, 200, 256),
            (7, 5, 224),
            (300, 1000, 240),
        ] {
            for seed in 0..2 {
                let image = frame(w, h, seed);
                let c = crop(w, h, resize, side);
                resampler.run(&image, c, &mut out);
                let expected = reference(&image, c, side);
                let diffs: Vec<i32> = out.iter().zip(&expected).map(|(a, b)| (*a as i32 - *b as i32).abs()).collect();
                let worst = *diffs.iter().max().unwrap();
                let share =
                    |more_than: i32| diffs.iter().filter(|d| **d > more_than).count() as f64 / diffs.len() as f64;
                // Measured: at most 1.3 % of values one level apart (its fixed-point weights), and
                // in the 45× enlargement of 7×5 three values of 150,528 two levels apart.
                assert!(worst <= 2, "{w}×{h}: a difference of {worst} levels");
                assert!(share(1) < 1e-4, "{w}×{h}: {:.4} % of values differ by more than a level", share(1) * 100.0);
                assert!(share(0) < 0.02, "{w}×{h}: {:.2} % of values differ", share(0) * 100.0);
            }
        }
    }

    #[test]
    fn a_crop_of_the_output_size_is_a_copy() {
        let image = frame(300, 260, 3);
        let mut resampler = Resampler::new(100);
        let mut out = vec![0u8; 100 * 100 * 3];
        resampler.run(&image, Crop { left: 20.0, top: 30.0, side: 100.0 }, &mut out);
        for (y, row) in out.chunks_exact(300).enumerate() {
            for (x, px) in row.chunks_exact(3).enumerate() {
                assert_eq!(px, &image.get_pixel(x as u32 + 20, y as u32 + 30).0, "({x}, {y})");
            }
        }
    }
}
