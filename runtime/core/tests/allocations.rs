//! The design's rule: a frame allocates nothing in steady state. Counted with a counting global
//! allocator on the default model and projector (FeatureNorm, one search thread, as each worker
//! runs). Three libraries allocate inside their own calls: tract in its runs (intermediate
//! tensors: the projector, and the backbone in f16), the gemm crate in the backbone's own executor
//! (packing buffers) and fast_image_resize in its resize (filter coefficients). Those are counted
//! on their own, by calling them alone on the same inputs, and every allocation of a whole frame
//! must be one of theirs: the frame path's own code (photometry, the layout, the search, the
//! subtraction, the projector's input and output, the scorer, the map, the image score) adds none.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use edge_ad_core::backbone::Backbone;
use edge_ad_core::calibrate::{self, CalibrationSettings};
use edge_ad_core::model::Model;
use edge_ad_core::pipeline::Extractor;
use edge_ad_core::precision::Precision;
use edge_ad_core::projector::Projector;
use edge_ad_core::residual::{ReferenceBank, SearchScratch};
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
fn a_frame_allocates_nothing_beyond_what_tract_allocates_inside_its_runs() {
    frame_allocations(Precision::F32);
}

/// The f16 backbone (emulated off Arm) converts its input through a buffer kept between frames.
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

    // tract's own: the backbone graph and the projector graphs, alone, on the same frame's data.
    let mut pre = edge_ad_core::preprocess::Preprocessor::new(&model.manifest, 224, 224).unwrap();
    let chw = pre.run(&frames[3]).unwrap().0.to_vec();
    let mut backbone = Backbone::new(&model, 224).unwrap();
    let mut features = backbone.empty_maps();
    let mut run = projector.run().unwrap();
    let banks: Vec<ReferenceBank> =
        calib.levels.iter().map(|l| ReferenceBank::new(l.channels as usize, l.features.clone())).collect();
    let mut residuals = backbone.empty_maps();
    let mut scratch = vec![SearchScratch::default(); banks.len()];
    // The libraries' own, each alone on the same frame's data: tract's backbone and projector
    // runs (intermediate tensors), and fast_image_resize's resize (it rebuilds its filter
    // coefficients on every call and has no way to keep them).
    let mut libraries = || {
        let resize = allocations(|| {
            pre.run(&frames[3]).unwrap();
        });
        let b = allocations(|| backbone.run_into(&chw, &mut features).unwrap());
        for (l, bank) in banks.iter().enumerate() {
            bank.residuals_into(&features[l], 1, &mut residuals[l], &mut scratch[l]);
        }
        let p = allocations(|| {
            for (l, r) in residuals.iter_mut().enumerate() {
                run.project(l, r).unwrap();
            }
        });
        (resize, b, p)
    };
    libraries();
    let (resize, in_backbone, in_projector) = libraries();
    // The backbone's own executor (f32) allocates only inside the gemm crate's calls (its packing
    // buffers, one block of output rows per call): far fewer than tract's run of the same graph.
    match precision {
        Precision::F32 => {
            assert_eq!(backbone.engine(), "own");
            let mut on_tract = Backbone::on_tract(&model, 224).unwrap();
            on_tract.run_into(&chw, &mut features).unwrap();
            let tract_backbone = allocations(|| on_tract.run_into(&chw, &mut features).unwrap());
            eprintln!("the backbone on tract: {tract_backbone} allocations per frame");
            assert!(in_backbone * 4 < tract_backbone, "own executor {in_backbone}, tract {tract_backbone}");
        }
        _ => assert_eq!(backbone.engine(), "tract"),
    }
    assert!(in_projector > 0 && resize > 0, "the libraries' allocations were counted");
    for (i, n) in whole.iter().enumerate() {
        assert_eq!(
            *n,
            in_backbone + in_projector + resize,
            "frame {i}: {n} allocations, of them {in_backbone} inside the backbone's run, {in_projector} inside tract's \
             projector runs and {resize} inside the resize"
        );
    }
    // And the stages of ours between the libraries' calls, alone: none.
    let ours = allocations(|| {
        for (l, bank) in banks.iter().enumerate() {
            bank.residuals_into(&features[l], 1, &mut residuals[l], &mut scratch[l]);
        }
    });
    assert_eq!(ours, 0, "the nearest-neighbour search and subtraction allocate nothing");
    eprintln!(
        "{precision}: allocations per frame: {in_backbone} inside the backbone's run ({}), {in_projector} inside \
         tract's projector runs, {resize} inside the resize, none of ours",
        if backbone.engine() == "own" { "the own executor: the gemm crate's calls" } else { "tract" }
    );
}
