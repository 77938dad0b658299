//! Pretraining on the CPU and on a CUDA GPU: the same start, samples and steps must give the same
//! losses and weights within float tolerance.
//!
//! On a machine without a GPU (CI) this pins that a CPU run repeats exactly, which the comparison
//! relies on, and that asking for CUDA is a clear error rather than a panic. Built with
//! `--features cuda` on a machine with an NVIDIA GPU (`firmware-host/gpu-check.sh`), it trains
//! on both and compares them; `EDGE_AD_GPU_TEST=required` makes a missing GPU fail instead of skip.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::prelude::*;
use edge_ad_host::corpus::{LevelSample, Sample};
use edge_ad_host::projector::{LevelProjector, ProjectorSize};
use edge_ad_host::train::{self, Projectors, Resume, TrainReport, TrainSettings};

const C: usize = 8;
const PATCHES: usize = 64;

/// Deterministic residuals: normal patches small and varied, a block of anomalous ones larger.
fn samples() -> Vec<Sample> {
    (0..6)
        .map(|s| {
            let value = |i: usize, view: usize| (((i * 37 + s * 11 + view * 5) % 41) as f32 / 20.5 - 1.0) * 0.3;
            // A 3×3 block of the 8×8 patches, somewhere else in every sample.
            let anomalous: Vec<bool> =
                (0..PATCHES).map(|p| (p % 8).abs_diff(s) < 2 && (p / 8).abs_diff(5 - s) < 2).collect();
            let view = |v: usize| -> Vec<f32> {
                (0..PATCHES * C).map(|i| value(i, v) * if anomalous[i / C] { 4.0 } else { 1.0 }).collect()
            };
            Sample {
                levels: vec![LevelSample {
                    view1: view(0),
                    view2: view(1),
                    angle_labels: anomalous.clone(),
                    norm_labels: anomalous.clone(),
                    near_defect: anomalous,
                }],
            }
        })
        .collect()
}

fn settings() -> TrainSettings {
    TrainSettings { epochs: 3, batch: 2, lr: 1e-2, max_anchors: 64, seed: 5, ..TrainSettings::default() }
}

/// The same starting weights on every device: made on the CPU from a fixed seed, then loaded
/// into a projector made on `device` (so that its parameters are tracked there).
fn start(device: &Device) -> Projectors {
    let cpu = Device::flex();
    cpu.seed(11);
    let made = LevelProjector::new(ProjectorSize::edge(C), 0.5, &cpu);
    let level = LevelProjector::new(ProjectorSize::edge(C), 0.5, device).load_record(made.into_record());
    Projectors { levels: vec![level] }
}

/// One run: every step's loss, the trained weights flattened, and the wall time.
fn run(device: &Device) -> (Vec<f32>, Vec<f32>, Duration) {
    let losses = RefCell::new(Vec::new());
    let resume = Resume { projectors: start(device), epochs_done: 0, report: TrainReport::default() };
    let t = Instant::now();
    let (model, _) = train::train(
        &samples(),
        &[ProjectorSize::edge(C)],
        &settings(),
        device,
        Some(resume),
        &mut |_, _, _| Ok(()),
        &|_, _, loss| losses.borrow_mut().push(loss),
    )
    .unwrap();
    let took = t.elapsed();
    let p = &model.levels[0];
    let mut weights = Vec::new();
    for t in [p.refs.val(), p.ref_proj.weight.val(), p.q.weight.val()] {
        weights.extend(t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
    }
    (losses.into_inner(), weights, took)
}

#[test]
fn a_cpu_run_repeats_exactly_and_lowers_the_loss() {
    let (losses, weights, _) = run(&edge_ad_host::device::cpu());
    let (again, weights_again, _) = run(&edge_ad_host::device::cpu());
    assert_eq!(losses.len(), 9, "3 epochs of 3 steps: {losses:?}");
    assert_eq!(losses, again);
    assert_eq!(weights, weights_again);
    let (first, last) = (losses[..3].iter().sum::<f32>(), losses[6..].iter().sum::<f32>());
    assert!(last < first, "the loss did not fall: {losses:?}");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_says_how_to_build_it() {
    let e = edge_ad_host::device::cuda().expect_err("no CUDA in this build");
    assert!(e.to_string().contains("--features cuda"), "{e}");
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_training_matches_the_cpu() {
    if let Err(e) = edge_ad_host::device::cuda_present() {
        let message = e.to_string();
        assert!(message.starts_with("--device cuda: "), "{message}");
        assert!(edge_ad_host::device::cuda().is_err());
        if std::env::var("EDGE_AD_GPU_TEST").as_deref() == Ok("required") {
            panic!("EDGE_AD_GPU_TEST=required but: {message}");
        }
        eprintln!("skipped the GPU comparison: {message}");
        return;
    }
    let gpu = edge_ad_host::device::cuda().unwrap();
    let (cpu_losses, cpu_weights, cpu_time) = run(&edge_ad_host::device::cpu());
    let (gpu_losses, gpu_weights, gpu_time) = run(&gpu);
    eprintln!("tiny run: CPU {cpu_time:?}, GPU {gpu_time:?} (the GPU's includes compiling its kernels)");
    assert_eq!(cpu_losses.len(), gpu_losses.len());
    for (step, (c, g)) in cpu_losses.iter().zip(&gpu_losses).enumerate() {
        assert!((c - g).abs() <= 1e-3 * c.abs().max(1.0), "step {step}: CPU loss {c}, GPU {g}");
    }
    let worst = cpu_weights.iter().zip(&gpu_weights).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-3, "weights differ by up to {worst}");
}
