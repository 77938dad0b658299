//! Residual features: each query patch minus its cosine-nearest reference patch among all patches
//! of the K shots (any position), as ADPretrain does. The search is a blocked GEMM
//! (queries × bankᵀ, matrixmultiply's SIMD kernel through ndarray) followed by an argmax, split
//! over threads by query blocks.

use ndarray::{linalg::general_mat_mul, Array2, ArrayView2};

use crate::backbone::FeatureMap;

/// Query rows per GEMM block: small enough that the block's similarity rows stay in cache.
const BLOCK_ROWS: usize = 64;

/// A bank of reference vectors (rows of `channels` values) with a fast best-match search.
#[derive(Clone, Debug)]
pub struct MatchBank {
    channels: usize,
    /// Rows as searched (unit-normalised for cosine search, raw for L2 search).
    search: Array2<f32>,
    /// Added to every row's product before the argmax (0 for cosine, −‖b‖²/2 for L2).
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

fn unit(row: &[f32], out: &mut [f32]) {
    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
    let inv = if norm > 1e-12 { 1.0 / norm } else { 0.0 };
    for (o, v) in out.iter_mut().zip(row) {
        *o = v * inv;
    }
}

impl MatchBank {
    /// A bank over `rows` (len a multiple of `channels`).
    pub fn new(channels: usize, rows: &[f32], similarity: Similarity) -> Self {
        let n = rows.len() / channels;
        let mut search = Array2::<f32>::zeros((n, channels));
        let mut bias = vec![0.0; n];
        for (i, row) in rows.chunks_exact(channels).enumerate() {
            let dst = search.row_mut(i).into_slice().expect("fresh array is contiguous");
            match similarity {
                Similarity::Cosine => unit(row, dst),
                Similarity::Euclidean => {
                    dst.copy_from_slice(row);
                    bias[i] = -0.5 * row.iter().map(|v| v * v).sum::<f32>();
                }
            }
        }
        Self { channels, search, bias }
    }

    /// Rows in the bank.
    pub fn rows(&self) -> usize {
        self.search.nrows()
    }

    /// For each query row, the index of the best bank row and its score `q·b + bias` (for cosine
    /// the similarity; for L2 `q·b − ‖b‖²/2`). Ties go to the first index. Queries must already be
    /// prepared the same way as the bank (see [`MatchBank::prepare_queries`]).
    pub fn best(&self, queries: ArrayView2<f32>, threads: usize, out: &mut [(usize, f32)]) {
        let n = queries.nrows();
        let blocks = n.div_ceil(BLOCK_ROWS);
        let threads = threads.clamp(1, blocks.max(1));
        let per_thread = blocks.div_ceil(threads) * BLOCK_ROWS;
        if threads == 1 {
            self.best_serial(queries, out);
            return;
        }
        std::thread::scope(|s| {
            for (t, chunk) in out.chunks_mut(per_thread).enumerate() {
                let start = t * per_thread;
                let q = queries.slice(ndarray::s![start..start + chunk.len(), ..]);
                s.spawn(move || self.best_serial(q, chunk));
            }
        });
    }

    fn best_serial(&self, queries: ArrayView2<f32>, out: &mut [(usize, f32)]) {
        let mut sims = Array2::<f32>::zeros((BLOCK_ROWS.min(queries.nrows()), self.rows()));
        for (b, out_block) in out.chunks_mut(BLOCK_ROWS).enumerate() {
            let start = b * BLOCK_ROWS;
            let q = queries.slice(ndarray::s![start..start + out_block.len(), ..]);
            let mut s = sims.slice_mut(ndarray::s![..out_block.len(), ..]);
            general_mat_mul(1.0, &q, &self.search.t(), 0.0, &mut s);
            for (row, slot) in s.rows().into_iter().zip(out_block.iter_mut()) {
                let mut best = (0usize, f32::NEG_INFINITY);
                for (j, (v, bias)) in row.iter().zip(&self.bias).enumerate() {
                    let score = v + bias;
                    if score > best.1 {
                        best = (j, score);
                    }
                }
                *slot = best;
            }
        }
    }

    /// Queries laid out for [`MatchBank::best`]: unit rows for a cosine bank, raw rows otherwise.
    pub fn prepare_queries(&self, rows: &[f32], similarity: Similarity, out: &mut Array2<f32>) {
        for (i, row) in rows.chunks_exact(self.channels).enumerate() {
            let dst = out.row_mut(i).into_slice().expect("fresh array is contiguous");
            match similarity {
                Similarity::Cosine => unit(row, dst),
                Similarity::Euclidean => dst.copy_from_slice(row),
            }
        }
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

    /// Writes `query − nearest reference` for every patch of `query` into `out` (same shape).
    pub fn residuals_into(&self, query: &FeatureMap, threads: usize, out: &mut FeatureMap) {
        let n = query.patches();
        let mut q = Array2::<f32>::zeros((n, self.channels));
        self.search.prepare_queries(&query.data, Similarity::Cosine, &mut q);
        let mut best = vec![(0usize, 0.0f32); n];
        self.search.best(q.view(), threads, &mut best);
        for (p, (j, _)) in best.iter().enumerate() {
            let c = self.channels;
            let reference = &self.raw[j * c..(j + 1) * c];
            let dst = &mut out.data[p * c..(p + 1) * c];
            for ((d, x), r) in dst.iter_mut().zip(&query.data[p * c..(p + 1) * c]).zip(reference) {
                *d = x - r;
            }
        }
    }

    /// `query − nearest reference` as a new map.
    pub fn residuals(&self, query: &FeatureMap, threads: usize) -> FeatureMap {
        let mut out = FeatureMap::zeros(query.channels, query.height, query.width);
        self.residuals_into(query, threads, &mut out);
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

    #[test]
    fn ties_go_to_the_first_row() {
        let rb = ReferenceBank::new(2, vec![1.0, 0.0, 2.0, 0.0]);
        let q = FeatureMap { channels: 2, height: 1, width: 1, data: vec![5.0, 0.0] };
        assert_eq!(rb.residuals(&q, 1).data, vec![4.0, 0.0]);
    }
}
