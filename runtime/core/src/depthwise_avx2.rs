//! A channel-last depthwise convolution kernel for x86-64 with AVX2 and FMA, added to tract's
//! kernel registry from here.
//!
//! tract-linalg 0.23.9 has channel-last depthwise kernels for aarch64 (NEON) and wasm only; on x86
//! it runs a generic loop that vectorises no further than the build's baseline (SSE2 for a
//! portable build), and the backbone's depthwise layers took 10 ms of its 22–25 ms
//! (`cargo run --release -p edge-ad-core --example backbone_profile`). tract picks its kernels at
//! run time from an `inventory` registry of [`tract_linalg::routines::Routine`]s whose fields are
//! public, so this crate submits one: the same shape and contract as tract's wasm kernel
//! (`tract-linalg src/wasm/depthwise.rs`), 32 channels per step in four AVX registers, with fused
//! multiply-adds. tract runs it only on a CPU that has AVX2 and FMA (the routine says so, and
//! tract checks the CPU); others keep tract's own loop. Written to be offered upstream as
//! `tract-linalg src/x86_64/depthwise.rs`.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

/// `channels` channels of `len` output positions of a channel-last depthwise convolution, as
/// [`tract_linalg::routines::DepthwiseCF32`] describes: for each position `i`, output `c` is
/// `bias[c] + Σₜ kernel[tap_indices[t]·k_stride + c] · input[i·in_stride + offsets[t] + c]`.
///
/// # Safety
/// As [`tract_linalg::routines::DepthwiseCF32`] (every pointer readable or writable over the
/// ranges it names), on a CPU with AVX2 and FMA. `tap_indices` and `offsets` are equally long.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn depthwise_c_f32(
    input: *const f32,
    output: *mut f32,
    kernel: *const f32,
    tap_indices: &[usize],
    offsets: &[isize],
    bias: *const f32,
    channels: usize,
    k_stride: usize,
    len: usize,
    in_stride: isize,
    out_stride: isize,
) {
    // SAFETY: every access stays within the ranges the caller guarantees: channels c < channels,
    // positions i < len, taps t < tap_indices.len() = offsets.len().
    unsafe {
        for i in 0..len {
            let iptr = input.offset(i as isize * in_stride);
            let optr = output.offset(i as isize * out_stride);
            let mut c = 0usize;
            while c + 32 <= channels {
                let mut acc0 = _mm256_loadu_ps(bias.add(c));
                let mut acc1 = _mm256_loadu_ps(bias.add(c + 8));
                let mut acc2 = _mm256_loadu_ps(bias.add(c + 16));
                let mut acc3 = _mm256_loadu_ps(bias.add(c + 24));
                for (&kix, &off) in tap_indices.iter().zip(offsets) {
                    let k = kernel.add(kix * k_stride + c);
                    let x = iptr.offset(off).add(c);
                    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(k), _mm256_loadu_ps(x), acc0);
                    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(k.add(8)), _mm256_loadu_ps(x.add(8)), acc1);
                    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(k.add(16)), _mm256_loadu_ps(x.add(16)), acc2);
                    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(k.add(24)), _mm256_loadu_ps(x.add(24)), acc3);
                }
                _mm256_storeu_ps(optr.add(c), acc0);
                _mm256_storeu_ps(optr.add(c + 8), acc1);
                _mm256_storeu_ps(optr.add(c + 16), acc2);
                _mm256_storeu_ps(optr.add(c + 24), acc3);
                c += 32;
            }
            while c + 8 <= channels {
                let mut acc = _mm256_loadu_ps(bias.add(c));
                for (&kix, &off) in tap_indices.iter().zip(offsets) {
                    let k = _mm256_loadu_ps(kernel.add(kix * k_stride + c));
                    acc = _mm256_fmadd_ps(k, _mm256_loadu_ps(iptr.offset(off).add(c)), acc);
                }
                _mm256_storeu_ps(optr.add(c), acc);
                c += 8;
            }
            while c < channels {
                let mut sum = *bias.add(c);
                for (&kix, &off) in tap_indices.iter().zip(offsets) {
                    sum = (*kernel.add(kix * k_stride + c)).mul_add(*iptr.offset(off).add(c), sum);
                }
                *optr.add(c) = sum;
                c += 1;
            }
        }
    }
}

inventory::submit! {
    tract_linalg::routines::Routine {
        func: tract_linalg::routines::Func::DepthwiseC,
        arch: Some(tract_linalg::isa::Arch::X86_64),
        isa: tract_linalg::isa::IsaReq::ANY
            .needing(&[tract_linalg::isa::Isa::X86_64Avx2, tract_linalg::isa::Isa::X86_64Fma]),
        boost: 0,
        round_trip: false,
        factory: tract_linalg::routines::RoutineFactory::DepthwiseCF32 {
            name: "edge_ad_x86_64_fma_depthwise_c_f32",
            run: depthwise_c_f32,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    }

    /// The kernel against the definition, over channel counts that hit every loop (32-, 8- and
    /// 1-channel steps), strided positions and taps in any order.
    #[test]
    fn matches_the_definition() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("no AVX2/FMA here: the kernel is not run (tract would not pick it either)");
            return;
        }
        let mut seed = 5;
        for channels in [1, 7, 8, 31, 32, 40, 67, 112] {
            let (len, taps, k_stride) = (5usize, 9usize, channels + 3);
            let in_stride = (channels + 2) as isize;
            let offsets: Vec<isize> = (0..taps).map(|t| (t as isize % 3) * in_stride * 6 + t as isize / 3).collect();
            let tap_indices: Vec<usize> = (0..taps).rev().collect();
            let input: Vec<f32> = (0..(len + 20) * in_stride as usize + 64).map(|_| lcg(&mut seed)).collect();
            let kernel: Vec<f32> = (0..taps * k_stride).map(|_| lcg(&mut seed)).collect();
            let bias: Vec<f32> = (0..channels).map(|_| lcg(&mut seed)).collect();
            let out_stride = channels as isize + 1;
            let mut output = vec![f32::NAN; len * out_stride as usize];
            // SAFETY: the buffers above cover every range the contract names.
            unsafe {
                depthwise_c_f32(
                    input.as_ptr(),
                    output.as_mut_ptr(),
                    kernel.as_ptr(),
                    &tap_indices,
                    &offsets,
                    bias.as_ptr(),
                    channels,
                    k_stride,
                    len,
                    in_stride,
                    out_stride,
                )
            };
            for i in 0..len {
                for c in 0..channels {
                    let mut want = bias[c] as f64;
                    for (&kix, &off) in tap_indices.iter().zip(&offsets) {
                        let x = input[(i as isize * in_stride + off) as usize + c];
                        want += kernel[kix * k_stride + c] as f64 * x as f64;
                    }
                    let got = output[i * out_stride as usize + c];
                    assert!((got as f64 - want).abs() < 1e-5, "{channels} channels, position {i}, channel {c}");
                }
                // The gap between positions is not written.
                if out_stride as usize > channels {
                    assert!(output[i * out_stride as usize + channels].is_nan());
                }
            }
        }
    }

    #[test]
    fn tract_picks_it_on_a_cpu_with_avx2_and_fma() {
        let picked = tract_linalg::routines::depthwise_c_f32();
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            let ours: tract_linalg::routines::DepthwiseCF32 = depthwise_c_f32;
            assert!(picked.is_some_and(|f| std::ptr::fn_addr_eq(f, ours)));
        } else {
            assert!(picked.is_none());
        }
    }
}
