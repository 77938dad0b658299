//! Where a frame's time goes at a given working side: calibrates on the first 4 images of
//! `CATEGORY/train/good` with the default model, then scores every image under `CATEGORY/test`
//! on one thread and prints the median milliseconds of each stage.
//!
//!     cargo run --release -p edge-ad-core --example stage_times -- CATEGORY [SIDE ...]
//!
//! With several sides, each is measured in turn over the same images. README, *Measured*,
//! quotes it for the working sides 224 and 336.

use std::path::{Path, PathBuf};

use edge_ad_core::calibrate::{self, CalibrationSettings};
use edge_ad_core::pipeline::{Extractor, StageTimes};
use edge_ad_core::setup::ModelSetup;

fn images(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "png" || e == "jpg") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let category = PathBuf::from(args.next().ok_or("usage: stage_times CATEGORY [SIDE ...]")?);
    let mut sides: Vec<u32> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if sides.is_empty() {
        sides.push(224);
    }
    let setup = ModelSetup { threads: Some(1), ..ModelSetup::default() };
    let station = setup.open()?;
    let shots: Vec<PathBuf> = images(&category.join("train/good")).into_iter().take(4).collect();
    let shots = edge_ad_core::source::load_named(&shots)?;
    let tests: Vec<_> =
        images(&category.join("test")).iter().map(|p| edge_ad_core::source::load_image(p)).collect::<Result<_, _>>()?;
    println!(
        "side  preprocess  backbone  residual  projector  score   frame (median ms, 1 thread, {} images)",
        tests.len()
    );
    for side in sides {
        let settings = CalibrationSettings { threads: 1, ..CalibrationSettings::default() };
        let projector = station.projector(side)?;
        let mut extractor = Extractor::new(&station.model, side, side)?;
        let identity = calibrate::identity(&station.model, &projector);
        let calib = calibrate::calibrate(&mut extractor, projector.clone(), identity, &shots, &settings, 0, &|_| {})?;
        let mut inspector = calibrate::inspector(&station.model, projector, &calib, 1)?;
        let mut times: Vec<StageTimes> = Vec::new();
        for image in &tests {
            times.push(inspector.inspect(image)?.times);
        }
        let m = |f: fn(&StageTimes) -> f64| median(times.iter().map(f).collect());
        println!(
            "{side:>4}  {:>10.2}  {:>8.2}  {:>8.2}  {:>9.2}  {:>5.2}  {:>6.2}",
            m(|t| t.preprocess_ms),
            m(|t| t.backbone_ms),
            m(|t| t.residual_ms),
            m(|t| t.projector_ms),
            m(|t| t.score_ms),
            m(|t| t.total_ms()),
        );
    }
    Ok(())
}
