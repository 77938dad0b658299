//! Fixtures for the frame-path benchmarks: generated parts and a calibrated frame path at 224².

use std::sync::Arc;

use edge_ad_core::calibrate::{self, CalibrationSettings};
use edge_ad_core::model::Model;
use edge_ad_core::pipeline::{Extractor, Inspector};
use edge_ad_core::projector::Projector;
use edge_ad_eval::synth;
use image::RgbImage;
use rand::{rngs::StdRng, SeedableRng};

/// `n` good parts of the `weave` texture, 256² (resized to 224² by the frame path).
pub fn parts(n: usize, seed: u64) -> Vec<RgbImage> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| synth::good_part("weave", 256, &mut rng)).collect()
}

/// The embedded model, its 224² extractor and 4 named shots.
pub fn shots() -> (Model, Vec<(String, RgbImage)>) {
    let model = Model::embedded_default().expect("embedded model");
    let shots = parts(4, 1).into_iter().enumerate().map(|(i, p)| (format!("{i}.png"), p)).collect();
    (model, shots)
}

/// The projector a box runs by default at 224² (the embedded pretrained one).
pub fn default_projector(model: &Model) -> Arc<Projector> {
    Projector::open(None, model, 224).expect("the default projector")
}

/// A frame path calibrated on 4 shots with `settings`, through the default projector, or the
/// identity (raw residuals) when `identity` is set.
pub fn inspector(settings: &CalibrationSettings, identity: bool) -> Inspector {
    let (model, shots) = shots();
    let mut extractor = Extractor::new(&model, 224, 224).expect("extractor");
    let projector = if identity { Arc::new(Projector::Identity) } else { default_projector(&model) };
    let id = calibrate::identity(&model, &projector);
    let calib =
        calibrate::calibrate(&mut extractor, projector.clone(), id, &shots, settings, 0, &|_| {}).expect("calibration");
    calibrate::inspector(&model, projector, &calib, settings.threads).expect("inspector")
}
