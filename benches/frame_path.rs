//! criterion benchmarks of the frame path at 224²: each stage, the projector at the edge and the
//! paper's sizes, the whole frame per scorer and thread count (through the default projector, and
//! once through the identity), and a 4-shot calibration. `cargo bench -p edge-ad-benches`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use edge_ad_benches::{default_projector, inspector, parts, shots};
use edge_ad_core::anomaly_map::{MapBuilder, DEFAULT_IMAGE_SCORE};
use edge_ad_core::backbone::{Backbone, FeatureMap};
use edge_ad_core::calibrate::{self, CalibrationSettings};
use edge_ad_core::formats::{ImageScore, ScorerKind};
use edge_ad_core::model::Model;
use edge_ad_core::pipeline::Extractor;
use edge_ad_core::preprocess::Preprocessor;
use edge_ad_core::projector::Projector;
use edge_ad_core::residual::{ReferenceBank, SearchScratch};
use edge_ad_core::scorer::{FeatureNorm, Scorer};

fn stages(c: &mut Criterion) {
    let (model, shot_images) = shots();
    let frame = &parts(1, 99)[0];
    let mut pre = Preprocessor::new(&model.manifest, 224, 224).unwrap();
    c.bench_function("stage/preprocess 256²→224² CHW", |b| b.iter(|| black_box(pre.run(frame).unwrap().0[0])));

    let mut backbone = Backbone::new(&model, 224).unwrap();
    let chw = pre.run(frame).unwrap().0.to_vec();
    let mut maps = backbone.empty_maps();
    c.bench_function("stage/backbone effnet-lite0 224²", |b| b.iter(|| backbone.run_into(&chw, &mut maps).unwrap()));

    let mut extractor = Extractor::new(&model, 224, 224).unwrap();
    let shot_maps: Vec<_> = shot_images.iter().map(|(_, img)| extractor.features(img).unwrap()).collect();
    let query = extractor.features(frame).unwrap();
    let banks: Vec<ReferenceBank> =
        (0..query.len()).map(|l| ReferenceBank::from_maps(shot_maps.iter().map(|s| &s[l]))).collect();
    for threads in [1, 2] {
        let mut out: Vec<_> = query.to_vec();
        let mut scratch = vec![SearchScratch::default(); query.len()];
        c.bench_function(&format!("stage/residual 4-shot bank, {threads} thread(s)"), |b| {
            b.iter(|| {
                for (l, q) in query.iter().enumerate() {
                    banks[l].residuals_into(q, threads, &mut out[l], &mut scratch[l]);
                }
            })
        });
    }

    let residuals: Vec<_> = query.iter().enumerate().map(|(l, q)| banks[l].residuals(q, 2)).collect();
    bench_projector(c, "stage/projector (default, both levels)", &default_projector(&model), &residuals);
    projector_sizes(c, &model, &residuals);

    let mut scores: Vec<Vec<f32>> = query.iter().map(|q| vec![0.0; q.patches()]).collect();
    for (name, rule) in [("max", ImageScore::Max), ("top-2% mean", DEFAULT_IMAGE_SCORE)] {
        let mut map = MapBuilder::with_rule(224, rule);
        c.bench_function(&format!("stage/featurenorm + map (upsample, mean, gaussian, {name})"), |b| {
            b.iter(|| {
                for (l, q) in query.iter().enumerate() {
                    FeatureNorm.level_scores(l, q, 1, &mut scores[l]);
                }
                let grids = query.iter().zip(&scores).map(|(q, s)| (s.as_slice(), q.height, q.width));
                black_box(map.build(grids).1)
            })
        });
    }
}

/// Times `projector` on one frame's residuals, both levels.
fn bench_projector(c: &mut Criterion, name: &str, projector: &Projector, residuals: &[FeatureMap]) {
    c.bench_function(name, |b| {
        b.iter(|| {
            for (l, r) in residuals.iter().enumerate() {
                let mut r = r.clone();
                projector.project(l, &mut r).unwrap();
                black_box(r.data[0]);
            }
        })
    });
}

/// What the projector's size costs on the box: a projector of each size (random weights cost
/// the same as trained ones) exported by the host tool and run by the box's projector stage.
fn projector_sizes(c: &mut Criterion, model: &Model, residuals: &[FeatureMap]) {
    use edge_ad_host::projector::{LevelProjector, ProjectorSize};
    let shapes: Vec<_> = residuals.iter().map(|r| (r.channels, r.height, r.width)).collect();
    let device = burn::prelude::Device::flex();
    for (name, size) in [("edge", ProjectorSize::edge as fn(usize) -> ProjectorSize), ("paper", ProjectorSize::paper)] {
        let files: Vec<_> = model
            .manifest
            .levels
            .iter()
            .zip(&shapes)
            .map(|(level, &(ch, _, _))| {
                let p = LevelProjector::new(size(ch), 1.0, &device);
                (
                    std::path::PathBuf::from(format!("{name}/{}.onnx", level.output)),
                    edge_ad_host::onnx_export::export_level(&p),
                )
            })
            .collect();
        let projector = Projector::from_bytes(&files, &shapes, std::path::Path::new(name)).unwrap();
        bench_projector(c, &format!("projector size/{name}, both levels"), &projector, residuals);
    }
}

fn whole_frame(c: &mut Criterion) {
    let frames = parts(8, 42);
    for (scorer, threads, identity) in [
        (ScorerKind::FeatureNorm, 1, false),
        (ScorerKind::FeatureNorm, 2, false),
        (ScorerKind::FeatureNorm, 2, true),
        (ScorerKind::PatchCore, 2, false),
        (ScorerKind::Padim, 2, false),
    ] {
        let settings = CalibrationSettings { scorer, threads, ..Default::default() };
        let mut insp = inspector(&settings, identity);
        let mut i = 0;
        let projector = if identity { "identity" } else { "default projector" };
        c.bench_function(&format!("frame/{} 224², {projector}, {threads} thread(s)", scorer.name()), |b| {
            b.iter(|| {
                i = (i + 1) % frames.len();
                black_box(insp.inspect(&frames[i]).unwrap().score)
            })
        });
    }
}

fn calibration(c: &mut Criterion) {
    let (model, shot_images) = shots();
    let mut extractor = Extractor::new(&model, 224, 224).unwrap();
    let projector = default_projector(&model);
    let id = calibrate::identity(&model, &projector);
    let settings = CalibrationSettings::default();
    let mut group = c.benchmark_group("calibrate");
    group.sample_size(10);
    group.bench_function("4 shots, featurenorm, leave-one-out with variations", |b| {
        b.iter(|| {
            calibrate::calibrate(&mut extractor, projector.clone(), id, &shot_images, &settings, 0, &|_| {}).unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = stages, whole_frame, calibration
}
criterion_main!(benches);
