//! The design's rule: a frame allocates nothing in steady state. Counted with a counting global
//! allocator on the default model and projector (FeatureNorm, one search thread, as each worker
//! runs), from the RGB frame to the verdict: the resample, the backbone and the projector on the
//! crate's own executors (their products through the gemm crate, patched to keep its packing
//! buffers: third_party/README.md), the search, the scorer, the map and the image score. In f16
//! the backbone runs on tract, which allocates inside its run; then those are the only ones.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use edge_ad_core::backbone::Backbone;
use edge_ad_core::calibrate::{self, CalibrationSettings};
use edge_ad_core::model::Model;
use edge_ad_core::pipeline::Extractor;
use edge_ad_core::precision::Precision;
use edge_ad_core::projector::Projector;
use image::RgbImage;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Only the measuring thread's allocations count (the test harness runs its own threads).
static COUNTING: AtomicBool = AtomicBool::new(false);

thread_local! {
    static MEASURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn count() {
    if COUNTING.load(Ordering::Relaxed) && MEASURED.try_with(|m| m.get()).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    MEASURED.with(|m| m.set(true));
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    f();
    COUNTING.store(false, Ordering::Relaxed);
    MEASURED.with(|m| m.set(false));
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// A 256² part with a texture that varies with `seed` (enough structure for the backbone).
fn part(seed: u32) -> RgbImage {
    RgbImage::from_fn(256, 256, |x, y| {
        let v = ((x * 7 + y * 13 + seed * 31) % 64) as u8 + ((x / 16 + y / 16 + seed) % 2) as u8 * 90;
        image::Rgb([v, v.wrapping_add(40), 255 - v])
    })
}

#[test]
fn a_frame_allocates_nothing() {
    frame_allocations(Precision::F32);
}

/// The f16 backbone (emulated off Arm) runs on tract; its input is converted through a buffer kept
/// between frames.
#[test]
fn an_f16_frame_allocates_nothing_of_ours_either() {
    frame_allocations(Precision::F16);
}

/// One measurement at a time: the count is global (the harness runs tests on parallel threads).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn frame_allocations(precision: Precision) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut model = Model::embedded_default().unwrap();
    model.precision = precision;
    let projector = Projector::open(None, &model, 224).unwrap();
    let settings = CalibrationSettings { threads: 1, ..Default::default() };
    let shots: Vec<(String, RgbImage)> = (0..4).map(|k| (format!("{k}.png"), part(k))).collect();
    let mut extractor = Extractor::new(&model, 224, 224).unwrap();
    let calib = calibrate::calibrate(
        &mut extractor,
        projector.clone(),
        calibrate::identity(&model, &projector),
        &shots,
        &settings,
        0,
        &|_| {},
    )
    .unwrap();
    let inspector = calibrate::inspector(&model, projector.clone(), &calib, 1).unwrap();
    let mut inspector = inspector.into_workers(1, 1).unwrap().pop().unwrap();
    let frames: Vec<RgbImage> = (10..16).map(part).collect();
    // Steady state: buffers have grown to their sizes on the first frames.
    for f in &frames[..3] {
        inspector.inspect(f).unwrap();
    }
    let whole: Vec<usize> = frames[3..]
        .iter()
        .map(|f| {
            allocations(|| {
                inspector.inspect(f).unwrap();
            })
        })
        .collect();

    let backbone = Backbone::new(&model, 224).unwrap();
    assert_eq!(projector.engine(), "own");
    match precision {
        // The default: the backbone and the projector on the crate's own executors.
        Precision::F32 => {
            assert_eq!(backbone.engine(), "own");
            assert!(whole.iter().all(|&n| n == 0), "allocations per frame: {whole:?}");
            eprintln!("f32: allocations per frame: {whole:?}");
        }
        // f16 runs the backbone on tract, which allocates its intermediate tensors inside its
        // run: every allocation of a frame must be one of those, counted on the same frame alone.
        _ => {
            assert_eq!(backbone.engine(), "tract");
            let mut pre = edge_ad_core::preprocess::Preprocessor::new(&model.manifest, 224, 224).unwrap();
            let chw = pre.run(&frames[3]).unwrap().0.to_vec();
            let mut backbone = backbone;
            let mut features = backbone.empty_maps();
            backbone.run_into(&chw, &mut features).unwrap();
            let in_tract = allocations(|| backbone.run_into(&chw, &mut features).unwrap());
            assert!(in_tract > 0, "tract's allocations were counted");
            for (i, n) in whole.iter().enumerate() {
                assert_eq!(*n, in_tract, "frame {i}: {n} allocations, {in_tract} of them inside tract's backbone run");
            }
            eprintln!("{precision}: allocations per frame: {in_tract}, all inside tract's backbone run");
        }
    }
}
