//! Where a frame's time goes at a given working side: calibrates on the first 4 images of
//! `CATEGORY/train/good` with the default model, then scores every image under `CATEGORY/test`
//! on one thread and prints the median milliseconds of each stage.
//!
//!     cargo run --release -p edge-ad-core --example stage_times -- CATEGORY [SIDE ...]
//!
//! With several sides, each is measured in turn over the same images. README, *Measured*,
//! quotes it for the working sides 224 and 336.

use std::path::PathBuf;

use edge_ad_core::calibrate::{self, CalibrationSettings};
use edge_ad_core::pipeline::{Extractor, StageTimes};
use edge_ad_core::setup::ModelSetup;
use edge_ad_core::source::{image_files, load_image};

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
    // The first 4 good parts are the shots; every image of every test/<kind> folder is scored.
    let shots: Vec<PathBuf> = image_files(&category.join("train/good"))?.into_iter().take(4).collect();
    let shots = edge_ad_core::source::load_named(&shots)?;
    let mut tests = Vec::new();
    for kind in std::fs::read_dir(category.join("test"))? {
        for path in image_files(&kind?.path())? {
            tests.push(load_image(&path)?);
        }
    }
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
