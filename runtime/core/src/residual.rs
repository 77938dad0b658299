//! Residual features: each query patch minus its cosine-nearest reference patch among all patches
//! of the K shots (any position), as ADPretrain does.
//!
//! The search is a GEMM with the argmax fused into it: the bank is packed once, in panels of 16
//! rows laid out channel by channel, and a small kernel takes 4 queries × 16 bank rows at a time,
//! accumulates their 64 dot products in registers and keeps each query's best row as it goes. No
//! similarity matrix is written, and a frame allocates nothing (the queries' buffer lives in a
//! [`SearchScratch`] the caller keeps). On aarch64 (NEON) and on x86-64 CPUs with AVX2 and FMA
//! the kernel is written with fused multiply-adds and keeps the argmax per lane in vector
//! registers (on x86, 30 % less time than the portable kernel for both searches of a frame);
//! elsewhere a portable kernel, compiled for AVX besides the build's baseline, is picked at run
//! time (multiversion). They find the same rows but for near-ties within rounding: the fused sums
//! round once per channel. The NEON kernel is tested under qemu-user by
//! `tests/arm64/search-kernel.sh`, which builds this file on its own. The search replaced a
//! blocked GEMM through ndarray/matrixmultiply plus a separate argmax, which repacked the bank on
//! every call and allocated its packing buffers each time (185 allocations a frame); README,
//! *Speed*, has the figures. Queries are split over threads by blocks.

use multiversion::multiversion;

use crate::feature_map::FeatureMap;

/// Bank rows per panel of the packed bank. Measured on the first level's search (784 queries ×
/// 3136 rows × 40 channels, one thread): 8 rows 3.9 ms, 16 rows 3.2 ms, 24 rows 4.9 ms, 32 rows
/// 4.0–4.6 ms.
const PANEL: usize = 16;
/// Queries per kernel step.
const QUERIES: usize = 4;
/// Queries per thread block.
const BLOCK_ROWS: usize = 64;

/// A bank of reference vectors (rows of `channels` values) with a fast best-match search.
#[derive(Clone, Debug)]
pub struct MatchBank {
    channels: usize,
    similarity: Similarity,
    rows: usize,
    /// Rows as searched (unit-normalised for cosine search, raw for L2 search), packed in panels
    /// of [`PANEL`] rows: panel p holds, for each channel k, the values of k of rows
    /// PANEL·p .. PANEL·(p + 1). The last panel is padded with zero rows.
    packed: Vec<f32>,
    /// Added to every row's product before the argmax (0 for cosine, −‖b‖²/2 for L2); −∞ for the
    /// padding rows, so they never win.
    bias: Vec<f32>,
}

/// How a [`MatchBank`] compares vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Similarity {
    /// Cosine similarity (both sides unit-normalised for the search only).
    Cosine,
    /// Euclidean distance.
    Euclidean,
}

/// The buffers of a search: the prepared queries (padded to a multiple of 4) and the results.
/// They grow to the largest search seen and are then reused.
#[derive(Clone, Debug, Default)]
pub struct SearchScratch {
    queries: Vec<f32>,
    best: Vec<(usize, f32)>,
}

fn unit(row: &[f32], out: &mut [f32]) {
    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
    let inv = if norm > 1e-12 { 1.0 / norm } else { 0.0 };
    for (o, v) in out.iter_mut().zip(row) {
        *o = v * inv;
    }
}

/// `v` resized to `len` (grown with `fill`, never shrunk below its capacity): a scratch buffer
/// that allocates only until it has reached the largest size asked for.
pub(crate) fn sized<T: Clone>(v: &mut Vec<T>, len: usize, fill: T) -> &mut [T] {
    if v.len() < len {
        v.resize(len, fill);
    }
    &mut v[..len]
}

impl MatchBank {
    /// A bank over `rows` (len a multiple of `channels`).
    pub fn new(channels: usize, rows: &[f32], similarity: Similarity) -> Self {
        let c = channels.max(1);
        let n = rows.len() / c;
        let panels = n.div_ceil(PANEL);
        let mut packed = vec![0.0f32; panels * PANEL * c];
        let mut bias = vec![f32::NEG_INFINITY; panels * PANEL];
        let mut prepared = vec![0.0f32; c];
        for (i, row) in rows.chunks_exact(c).enumerate() {
            match similarity {
                Similarity::Cosine => {
                    unit(row, &mut prepared);
                    bias[i] = 0.0;
                }
                Similarity::Euclidean => {
                    prepared.copy_from_slice(row);
                    bias[i] = -0.5 * row.iter().map(|v| v * v).sum::<f32>();
                }
            }
            let (panel, lane) = (i / PANEL, i % PANEL);
            for (k, v) in prepared.iter().enumerate() {
                packed[(panel * c + k) * PANEL + lane] = *v;
            }
        }
        Self { channels: c, similarity, rows: n, packed, bias }
    }

    /// Rows in the bank.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// For each query row of `rows` (len a multiple of the bank's channels), the index of the
    /// best bank row and its score `q·b + bias` (for cosine the similarity of the unit rows; for
    /// L2 `q·b − ‖b‖²/2`). Of equal scores the first row (in bank order) wins, and the result does
    /// not depend on `threads`. An empty bank gives row 0 with score −∞.
    pub fn search<'s>(&self, rows: &[f32], threads: usize, scratch: &'s mut SearchScratch) -> &'s [(usize, f32)] {
        self.search_with(best_rows, rows, threads, scratch)
    }

    /// [`Self::search`] with the given kernel (the tests run the portable one through it too).
    fn search_with<'s>(
        &self,
        kernel: Kernel,
        rows: &[f32],
        threads: usize,
        scratch: &'s mut SearchScratch,
    ) -> &'s [(usize, f32)] {
        let c = self.channels;
        let n = rows.len() / c;
        // Padded with zero queries up to a multiple of 4; their results are not returned.
        let padded = n.div_ceil(QUERIES) * QUERIES;
        let queries = sized(&mut scratch.queries, padded * c, 0.0);
        for (row, dst) in rows.chunks_exact(c).zip(queries.chunks_exact_mut(c)) {
            match self.similarity {
                Similarity::Cosine => unit(row, dst),
                Similarity::Euclidean => dst.copy_from_slice(row),
            }
        }
        queries[n * c..].iter_mut().for_each(|v| *v = 0.0);
        let best = sized(&mut scratch.best, padded, (0, f32::NEG_INFINITY));
        best.iter_mut().for_each(|b| *b = (0, f32::NEG_INFINITY));
        let queries = &scratch.queries[..padded * c];
        let blocks = padded.div_ceil(BLOCK_ROWS);
        let threads = threads.clamp(1, blocks.max(1));
        if threads == 1 {
            kernel(queries, c, &self.packed, &self.bias, best);
        } else {
            let per_thread = blocks.div_ceil(threads) * BLOCK_ROWS;
            std::thread::scope(|s| {
                for (chunk, q) in best.chunks_mut(per_thread).zip(queries.chunks(per_thread * c)) {
                    s.spawn(move || kernel(q, c, &self.packed, &self.bias, chunk));
                }
            });
        }
        &scratch.best[..n]
    }
}

/// A search kernel: the queries (rows of `c`), the packed bank and its bias, the results.
type Kernel = fn(&[f32], usize, &[f32], &[f32], &mut [(usize, f32)]);

/// The best packed bank row of every query of `queries` (rows of `c`, a multiple of 4 rows) into
/// `out` (which starts at (0, −∞)): with fused multiply-adds on aarch64 ([`neon::best_rows`]) and
/// on x86-64 CPUs with AVX2 and FMA ([`fma::best_rows`]), elsewhere the portable kernel.
#[allow(unsafe_code)] // the calls of the SIMD kernels, on CPUs that have their features
fn best_rows(queries: &[f32], c: usize, packed: &[f32], bias: &[f32], out: &mut [(usize, f32)]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has both features the kernel is compiled for.
        unsafe { fma::best_rows(queries, c, packed, bias, out) };
        return;
    }
    // SAFETY: NEON is part of every aarch64 target Rust builds for.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        neon::best_rows(queries, c, packed, bias, out)
    };
    #[cfg(not(target_arch = "aarch64"))]
    best_rows_portable(queries, c, packed, bias, out);
}

/// Across the 16 lanes of a panel, each with its best score and the panel it came from: the
/// highest score, and of equal scores the first row in bank order (the lowest panel · 16 + lane),
/// which is what one scan in row order keeps. Without any score above −∞: row 0, −∞, as the scan
/// starts. Panels are f32 (exact up to 2²⁴ panels), as the vector kernels keep them.
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
fn first_best(scores: &[f32; PANEL], panels: &[f32; PANEL]) -> (usize, f32) {
    let mut best = (0usize, f32::NEG_INFINITY);
    for (lane, (&s, &p)) in scores.iter().zip(panels).enumerate() {
        let row = p as usize * PANEL + lane;
        if s > best.1 || (s == best.1 && s > f32::NEG_INFINITY && row < best.0) {
            best = (row, s);
        }
    }
    best
}

/// The portable kernel: 4 queries × 16 bank rows at a time, 64 running sums that LLVM keeps in
/// vector registers, and each query's best row kept as it goes. Each dot product sums the channels
/// in order with a separate multiply and add: `f32::mul_add` kept LLVM from vectorising this loop
/// (22 ms against 3.2 ms for the first level's search), since without the FMA feature it is a
/// library call.
// On aarch64 the NEON kernel always runs; the portable one is there for the tests.
#[cfg_attr(all(target_arch = "aarch64", not(test)), allow(dead_code))]
#[multiversion(targets("x86_64+avx", "aarch64+neon"))]
fn best_rows_portable(queries: &[f32], c: usize, packed: &[f32], bias: &[f32], out: &mut [(usize, f32)]) {
    for (four, slots) in queries.chunks_exact(QUERIES * c).zip(out.chunks_exact_mut(QUERIES)) {
        let (q0, rest) = four.split_at(c);
        let (q1, rest) = rest.split_at(c);
        let (q2, q3) = rest.split_at(c);
        for (p, (panel, panel_bias)) in packed.chunks_exact(PANEL * c).zip(bias.chunks_exact(PANEL)).enumerate() {
            let mut sums = [[0.0f32; PANEL]; QUERIES];
            for (k, lanes) in panel.chunks_exact(PANEL).enumerate() {
                let Ok(lanes) = <&[f32; PANEL]>::try_from(lanes) else { continue };
                let x = [q0[k], q1[k], q2[k], q3[k]];
                for (row, &xr) in sums.iter_mut().zip(&x) {
                    for (acc, &b) in row.iter_mut().zip(lanes) {
                        *acc += xr * b;
                    }
                }
            }
            for (row, slot) in sums.iter().zip(slots.iter_mut()) {
                for (j, (s, b)) in row.iter().zip(panel_bias).enumerate() {
                    // Strictly greater: of equal scores the first row (in bank order) stays.
                    let score = s + b;
                    if score > slot.1 {
                        *slot = (p * PANEL + j, score);
                    }
                }
            }
        }
    }
}

/// The kernel for x86-64 CPUs with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // SIMD intrinsics: loads and stores of 8 lanes through pointers
mod fma {
    use std::arch::x86_64::*;

    use super::{first_best, PANEL, QUERIES};

    /// [`super::best_rows_portable`] with explicit 256-bit fused multiply-adds: per channel, two
    /// loads of 16 bank values and eight FMAs into eight accumulators (4 queries × 16 rows).
    /// Each sum is rounded once per channel instead of twice, so scores differ from the portable
    /// kernel's in the last bits; the order of the channels is the same.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn best_rows(queries: &[f32], c: usize, packed: &[f32], bias: &[f32], out: &mut [(usize, f32)]) {
        for (four, slots) in queries.chunks_exact(QUERIES * c).zip(out.chunks_exact_mut(QUERIES)) {
            // Per query and half panel: each lane's best score so far and its panel (as f32: exact
            // up to 2²⁴ panels).
            let mut best_score = [[_mm256_set1_ps(f32::NEG_INFINITY); 2]; QUERIES];
            let mut best_panel = [[_mm256_setzero_ps(); 2]; QUERIES];
            for (p, (panel, panel_bias)) in packed.chunks_exact(PANEL * c).zip(bias.chunks_exact(PANEL)).enumerate() {
                let mut acc = [[_mm256_setzero_ps(); 2]; QUERIES];
                for (k, lanes) in panel.chunks_exact(PANEL).enumerate() {
                    // SAFETY: `lanes` holds 16 values, read as two unaligned 8-lane vectors.
                    let (b0, b1) = unsafe { (_mm256_loadu_ps(lanes.as_ptr()), _mm256_loadu_ps(lanes.as_ptr().add(8))) };
                    for (r, a) in acc.iter_mut().enumerate() {
                        let x = _mm256_set1_ps(four[r * c + k]);
                        a[0] = _mm256_fmadd_ps(x, b0, a[0]);
                        a[1] = _mm256_fmadd_ps(x, b1, a[1]);
                    }
                }
                // SAFETY: 16 bias values, read as two 8-lane vectors.
                let (bias0, bias1) =
                    unsafe { (_mm256_loadu_ps(panel_bias.as_ptr()), _mm256_loadu_ps(panel_bias.as_ptr().add(8))) };
                let here = _mm256_set1_ps(p as f32);
                for (r, a) in acc.iter().enumerate() {
                    for (h, (sum, b)) in [(a[0], bias0), (a[1], bias1)].into_iter().enumerate() {
                        let score = _mm256_add_ps(sum, b);
                        // Strictly greater: a lane keeps its earliest panel of equal scores.
                        let better = _mm256_cmp_ps::<_CMP_GT_OQ>(score, best_score[r][h]);
                        best_score[r][h] = _mm256_blendv_ps(best_score[r][h], score, better);
                        best_panel[r][h] = _mm256_blendv_ps(best_panel[r][h], here, better);
                    }
                }
            }
            for (r, slot) in slots.iter_mut().enumerate() {
                let (mut scores, mut panels) = ([0.0f32; PANEL], [0.0f32; PANEL]);
                // SAFETY: each array has room for two 8-lane vectors.
                unsafe {
                    _mm256_storeu_ps(scores.as_mut_ptr(), best_score[r][0]);
                    _mm256_storeu_ps(scores.as_mut_ptr().add(8), best_score[r][1]);
                    _mm256_storeu_ps(panels.as_mut_ptr(), best_panel[r][0]);
                    _mm256_storeu_ps(panels.as_mut_ptr().add(8), best_panel[r][1]);
                }
                *slot = first_best(&scores, &panels);
            }
        }
    }
}

/// The kernel for aarch64, whose NEON unit always has fused multiply-adds.
#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)] // SIMD loads and stores of 4 lanes through pointers
mod neon {
    use std::arch::aarch64::*;

    use super::{first_best, PANEL, QUERIES};

    /// [`super::best_rows_portable`] with explicit 128-bit fused multiply-adds: per channel, four
    /// loads of 4 bank values and sixteen FMAs into sixteen accumulators (4 queries × 16 rows),
    /// the argmax kept per lane as the x86 kernel keeps it. Sums round as on x86 with FMA.
    #[target_feature(enable = "neon")]
    pub(super) fn best_rows(queries: &[f32], c: usize, packed: &[f32], bias: &[f32], out: &mut [(usize, f32)]) {
        for (four, slots) in queries.chunks_exact(QUERIES * c).zip(out.chunks_exact_mut(QUERIES)) {
            let mut best_score = [[vdupq_n_f32(f32::NEG_INFINITY); 4]; QUERIES];
            let mut best_panel = [[vdupq_n_f32(0.0); 4]; QUERIES];
            for (p, (panel, panel_bias)) in packed.chunks_exact(PANEL * c).zip(bias.chunks_exact(PANEL)).enumerate() {
                let Ok(panel_bias) = <&[f32; PANEL]>::try_from(panel_bias) else { continue };
                let mut acc = [[vdupq_n_f32(0.0); 4]; QUERIES];
                for (k, lanes) in panel.chunks_exact(PANEL).enumerate() {
                    let Ok(lanes) = <&[f32; PANEL]>::try_from(lanes) else { continue };
                    let b = load(lanes);
                    for (r, a) in acc.iter_mut().enumerate() {
                        let x = vdupq_n_f32(four[r * c + k]);
                        for (a, b) in a.iter_mut().zip(&b) {
                            *a = vfmaq_f32(*a, x, *b);
                        }
                    }
                }
                let bias = load(panel_bias);
                let here = vdupq_n_f32(p as f32);
                for ((acc, scores), panels) in acc.iter().zip(&mut best_score).zip(&mut best_panel) {
                    for q in 0..4 {
                        let score = vaddq_f32(acc[q], bias[q]);
                        // Strictly greater: a lane keeps its earliest panel of equal scores.
                        let better = vcgtq_f32(score, scores[q]);
                        scores[q] = vbslq_f32(better, score, scores[q]);
                        panels[q] = vbslq_f32(better, here, panels[q]);
                    }
                }
            }
            for ((slot, scores), panels) in slots.iter_mut().zip(&best_score).zip(&best_panel) {
                *slot = first_best(&store(scores), &store(panels));
            }
        }
    }

    /// 16 values as four 4-lane vectors.
    #[target_feature(enable = "neon")]
    fn load(v: &[f32; PANEL]) -> [float32x4_t; 4] {
        // SAFETY: each load reads 4 of the 16 values, at offsets 0, 4, 8 and 12.
        unsafe { [0, 4, 8, 12].map(|i| vld1q_f32(v.as_ptr().add(i))) }
    }

    /// Four 4-lane vectors as 16 values.
    #[target_feature(enable = "neon")]
    fn store(v: &[float32x4_t; 4]) -> [f32; PANEL] {
        let mut out = [0.0f32; PANEL];
        for (i, x) in v.iter().enumerate() {
            // SAFETY: each store writes 4 of the 16 values, at offset 4·i.
            unsafe { vst1q_f32(out.as_mut_ptr().add(4 * i), *x) };
        }
        out
    }
}

/// The K-shot reference bank of one level: raw features for the subtraction, a cosine search bank.
#[derive(Clone, Debug)]
pub struct ReferenceBank {
    channels: usize,
    raw: Vec<f32>,
    search: MatchBank,
}

impl ReferenceBank {
    /// A bank over the raw feature rows of every patch of every shot.
    pub fn new(channels: usize, raw: Vec<f32>) -> Self {
        let search = MatchBank::new(channels, &raw, Similarity::Cosine);
        Self { channels, raw, search }
    }

    /// Concatenates the patches of the given feature maps (all one level) into a bank.
    pub fn from_maps<'a>(maps: impl IntoIterator<Item = &'a FeatureMap>) -> Self {
        let mut channels = 0;
        let mut raw = Vec::new();
        for m in maps {
            channels = m.channels;
            raw.extend_from_slice(&m.data);
        }
        Self::new(channels, raw)
    }

    /// Reference rows.
    pub fn rows(&self) -> usize {
        self.search.rows()
    }

    /// Raw reference features, rows of C values.
    pub fn raw(&self) -> &[f32] {
        &self.raw
    }

    /// Writes `query − nearest reference` for every patch of `query` into `out` (same shape);
    /// `scratch` holds the search's buffers between frames.
    pub fn residuals_into(
        &self,
        query: &FeatureMap,
        threads: usize,
        out: &mut FeatureMap,
        scratch: &mut SearchScratch,
    ) {
        let c = self.channels;
        let best = self.search.search(&query.data, threads, scratch);
        for ((&(j, _), x), dst) in best.iter().zip(query.data.chunks_exact(c)).zip(out.data.chunks_exact_mut(c)) {
            let reference = &self.raw[j * c..(j + 1) * c];
            for ((d, x), r) in dst.iter_mut().zip(x).zip(reference) {
                *d = x - r;
            }
        }
    }

    /// `query − nearest reference` as a new map.
    pub fn residuals(&self, query: &FeatureMap, threads: usize) -> FeatureMap {
        let mut out = FeatureMap::zeros(query.channels, query.height, query.width);
        self.residuals_into(query, threads, &mut out, &mut SearchScratch::default());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    }

    fn brute_nearest(q: &[f32], bank: &[f32], c: usize) -> usize {
        let cos = |a: &[f32], b: &[f32]| {
            let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
            dot / (na * nb)
        };
        let mut best = (0, f32::NEG_INFINITY);
        for (j, b) in bank.chunks_exact(c).enumerate() {
            let s = cos(q, b);
            if s > best.1 {
                best = (j, s);
            }
        }
        best.0
    }

    #[test]
    fn residual_is_query_minus_cosine_nearest_for_any_thread_count() {
        let (c, rows) = (24, 300);
        let mut seed = 1;
        let bank: Vec<f32> = (0..rows * c).map(|_| lcg(&mut seed)).collect();
        let query =
            FeatureMap { channels: c, height: 10, width: 13, data: (0..130 * c).map(|_| lcg(&mut seed)).collect() };
        let rb = ReferenceBank::new(c, bank.clone());
        let one = rb.residuals(&query, 1);
        let three = rb.residuals(&query, 3);
        assert_eq!(one, three);
        for p in 0..query.patches() {
            let q = &query.data[p * c..(p + 1) * c];
            let j = brute_nearest(q, &bank, c);
            for k in 0..c {
                assert!((one.data[p * c + k] - (q[k] - bank[j * c + k])).abs() < 1e-6, "patch {p}");
            }
        }
    }

    #[test]
    fn a_query_in_the_bank_has_zero_residual_and_cosine_ignores_scale() {
        let c = 4;
        let bank = vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let rb = ReferenceBank::new(c, bank);
        let q = FeatureMap { channels: c, height: 1, width: 2, data: vec![0.0, 1.0, 0.0, 0.0, 3.0, 0.1, 0.0, 0.0] };
        let r = rb.residuals(&q, 1);
        assert_eq!(&r.data[..4], &[0.0; 4]);
        // Matched by angle to the first row, then raw subtraction keeps the scale difference.
        assert!((r.data[4] - 2.0).abs() < 1e-6 && (r.data[5] - 0.1).abs() < 1e-6);
    }

    /// Both kernels on one bank: (index, score) of every query.
    fn both_kernels(c: usize, bank: &[f32], queries: &[f32]) -> [Vec<(usize, f32)>; 2] {
        let mb = MatchBank::new(c, bank, Similarity::Cosine);
        [best_rows, best_rows_portable]
            .map(|kernel| mb.search_with(kernel, queries, 1, &mut SearchScratch::default()).to_vec())
    }

    #[test]
    fn the_dispatched_kernel_finds_the_portable_kernels_rows() {
        let (c, rows, n) = (40, 16 * 9 + 5, 4 * 7 + 3);
        let mut seed = 7;
        let bank: Vec<f32> = (0..rows * c).map(|_| lcg(&mut seed)).collect();
        let queries: Vec<f32> = (0..n * c).map(|_| lcg(&mut seed)).collect();
        let [dispatched, portable] = both_kernels(c, &bank, &queries);
        for (i, (d, p)) in dispatched.iter().zip(&portable).enumerate() {
            assert_eq!(d.0, p.0, "query {i}");
            assert!((d.1 - p.1).abs() < 1e-5, "query {i}: {} against {}", d.1, p.1);
        }
    }

    #[test]
    fn of_equal_rows_across_lanes_and_panels_both_kernels_take_the_first() {
        // Rows 3, 15, 16, 19 and 40 point the query's way. Row 3 is first: before row 19 in the
        // same lane (3) of a later panel, and before rows 15 (lane 15 of panel 0), 16 (lane 0 of
        // panel 1) and 40 (lane 8 of panel 2) in other lanes. Row 5 is opposite, the rest
        // orthogonal.
        let c = 2;
        let mut bank = vec![0.0f32; 48 * c];
        for r in 0..48 {
            bank[r * c + 1] = 1.0;
        }
        for r in [19, 15, 16, 3, 40] {
            bank[r * c..r * c + 2].copy_from_slice(&[2.0, 0.0]);
        }
        bank[5 * c..5 * c + 2].copy_from_slice(&[-1.0, 0.0]);
        // The second query points the other way: row 5 alone.
        let queries = [1.0, 0.0, -3.0, 0.0];
        for (k, found) in both_kernels(c, &bank, &queries).iter().enumerate() {
            assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), [3, 5], "kernel {k}");
        }
    }

    #[test]
    fn ties_go_to_the_first_row() {
        let rb = ReferenceBank::new(2, vec![1.0, 0.0, 2.0, 0.0]);
        let q = FeatureMap { channels: 2, height: 1, width: 1, data: vec![5.0, 0.0] };
        assert_eq!(rb.residuals(&q, 1).data, vec![4.0, 0.0]);
    }

    /// Not a check but a measurement: both kernels on the default model's two searches at 224²
    /// (784 queries × 3136 rows × 40 channels, 196 × 784 × 112) and the first one at 336 (1764 ×
    /// 7056 × 40), interleaved in one run; prints the median of 30 calls of each, four times over.
    /// README, *Speed*, quotes it:
    ///
    ///     cargo test --release -p edge-ad-core --lib kernel_times -- --ignored --nocapture
    #[test]
    #[ignore = "a measurement; run it by name"]
    fn kernel_times() {
        let mut seed = 3;
        for (c, rows, n) in [(40, 3136, 784), (112, 784, 196), (40, 7056, 1764)] {
            let bank: Vec<f32> = (0..rows * c).map(|_| lcg(&mut seed)).collect();
            let queries: Vec<f32> = (0..n * c).map(|_| lcg(&mut seed)).collect();
            let mb = MatchBank::new(c, &bank, Similarity::Cosine);
            let mut out = vec![(0, f32::NEG_INFINITY); n];
            for round in 0..4 {
                let mut line = format!("{n} × {rows} × {c}, round {round}:");
                for (name, portable) in [("dispatched", false), ("portable", true)] {
                    let mut ms: Vec<f64> = (0..30)
                        .map(|_| {
                            out.iter_mut().for_each(|o| *o = (0, f32::NEG_INFINITY));
                            let start = std::time::Instant::now();
                            if portable {
                                best_rows_portable(&queries, c, &mb.packed, &mb.bias, &mut out);
                            } else {
                                best_rows(&queries, c, &mb.packed, &mb.bias, &mut out);
                            }
                            start.elapsed().as_secs_f64() * 1e3
                        })
                        .collect();
                    ms.sort_by(f64::total_cmp);
                    line += &format!("  {name} {:.2} ms", ms[15]);
                }
                println!("{line}");
            }
        }
    }
}
