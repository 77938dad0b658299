//! Matrix products for the crate's own executors ([`crate::conv_net`], [`crate::projector_net`]),
//! through the gemm crate (AVX-512, AVX2+FMA or NEON kernels chosen at run time), on row-major
//! slices whose rows may lie further apart than their width (a head's columns of a wider matrix).
#![allow(unsafe_code)]

/// A row-major matrix in a slice: `rows` × `cols` values, row `r` starting at `r · stride`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub rows: usize,
    pub cols: usize,
    pub stride: usize,
}

impl Layout {
    /// A contiguous `rows` × `cols` matrix.
    pub fn dense(rows: usize, cols: usize) -> Self {
        Self { rows, cols, stride: cols }
    }

    /// The values a slice must hold for this layout (`None` on overflow).
    fn span(&self) -> Option<usize> {
        match self.rows {
            0 => Some(0),
            r => (r - 1).checked_mul(self.stride)?.checked_add(self.cols),
        }
    }
}

/// `dst` = `factor` · `lhs` · `rhs`, plus what `dst` held when `accumulate`; single-threaded.
///
/// # Panics
/// When the layouts do not chain (lhs cols ≠ rhs rows, dst ≠ lhs rows × rhs cols), a stride is
/// narrower than its row, or a slice is shorter than its layout: callers size everything from one
/// compiled graph, so any of these is a bug here, not bad input.
pub(crate) fn product(
    (dst, d): (&mut [f32], Layout),
    (lhs, l): (&[f32], Layout),
    (rhs, r): (&[f32], Layout),
    accumulate: bool,
    factor: f32,
) {
    assert!(l.cols == r.rows && d.rows == l.rows && d.cols == r.cols, "operand shapes");
    assert!(d.stride >= d.cols && l.stride >= l.cols && r.stride >= r.cols, "operand strides");
    let fits = |len: usize, layout: Layout| layout.span().is_some_and(|s| s <= len);
    assert!(fits(dst.len(), d) && fits(lhs.len(), l) && fits(rhs.len(), r), "operand sizes");
    if d.rows == 0 || d.cols == 0 {
        return;
    }
    // SAFETY: the asserts above keep every element gemm reads or writes (with the strides given)
    // inside the slices; dst does not overlap them (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            l.cols,
            dst.as_mut_ptr(),
            1,
            d.stride as isize,
            accumulate,
            lhs.as_ptr(),
            1,
            l.stride as isize,
            rhs.as_ptr(),
            1,
            r.stride as isize,
            1.0,
            factor,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain triple loop.
    fn naive(lhs: &[f32], l: Layout, rhs: &[f32], r: Layout) -> Vec<f32> {
        let mut out = vec![0.0; l.rows * r.cols];
        for i in 0..l.rows {
            for j in 0..r.cols {
                out[i * r.cols + j] = (0..l.cols).map(|t| lhs[i * l.stride + t] * rhs[t * r.stride + j]).sum();
            }
        }
        out
    }

    #[test]
    fn strided_operands_give_the_plain_product_and_leave_other_columns_alone() {
        let values = |n: usize, seed: f32| (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect::<Vec<_>>();
        // A 5 × 3 block of a 5 × 7 matrix times a 3 × 4 block of a 3 × 6 matrix, into columns
        // 2..6 of a 5 × 9 matrix that already holds values.
        let (l, r) = (Layout { rows: 5, cols: 3, stride: 7 }, Layout { rows: 3, cols: 4, stride: 6 });
        let (lhs, rhs) = (values(35, 0.1), values(18, 0.7));
        let expected = naive(&lhs, l, &rhs, r);
        let before = values(45, 1.3);
        for (accumulate, factor) in [(false, 1.0), (true, -1.0)] {
            let mut dst = before.clone();
            product((&mut dst[2..], Layout { rows: 5, cols: 4, stride: 9 }), (&lhs, l), (&rhs, r), accumulate, factor);
            for (i, row) in dst.chunks_exact(9).enumerate() {
                for (j, v) in row.iter().enumerate() {
                    let old = before[i * 9 + j];
                    let want = match j.checked_sub(2).filter(|&c| c < 4) {
                        Some(c) if accumulate => old + factor * expected[i * 4 + c],
                        Some(c) => factor * expected[i * 4 + c],
                        None => old,
                    };
                    assert!((v - want).abs() < 1e-5, "({i}, {j}): {v} against {want}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "operand sizes")]
    fn a_short_operand_is_refused() {
        let mut dst = vec![0.0; 4];
        product(
            (&mut dst, Layout::dense(2, 2)),
            (&[1.0; 3], Layout::dense(2, 2)),
            (&[1.0; 4], Layout::dense(2, 2)),
            false,
            1.0,
        );
    }
}
