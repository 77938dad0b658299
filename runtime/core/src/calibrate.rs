//! Site calibration from K good parts: the reference bank is every patch of the K shots; the
//! threshold comes from leave-one-out scores of the shots (each shot, and light photometric and
//! framing variations of it, scored against a bank of the other K−1 shots): their mean plus
//! `spread` standard deviations, never below the largest, times (1 + margin), divided by the
//! sensitivity. No defective image is ever used.

use std::sync::Arc;

use edge_ad_calib::{ImageScore, ModelIdentity, Name, Payload, ReferenceLevel, ScorerKind, SiteCalibration};
use image::RgbImage;

use crate::anomaly_map::DEFAULT_IMAGE_SCORE;
use crate::backbone::FeatureMap;
use crate::decision;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::pipeline::{Extractor, FeatureScorer, Inspector, StageTimes};
use crate::projector::Projector;
use crate::residual::ReferenceBank;
use crate::scorer;

/// How a calibration is made.
#[derive(Clone, Copy, Debug)]
pub struct CalibrationSettings {
    /// The scorer whose threshold is calibrated.
    pub scorer: ScorerKind,
    /// How the anomaly map becomes the image score (default [`DEFAULT_IMAGE_SCORE`]).
    pub image_score: ImageScore,
    /// Standard deviations of the leave-one-out good scores the threshold stands above their
    /// mean ([`decision::DEFAULT_SPREAD`]); never below the largest of them.
    pub spread: f32,
    /// Relative margin on top ([`decision::DEFAULT_MARGIN`]).
    pub margin: f32,
    /// Sensitivity: the threshold is divided by it (> 1 flags more parts).
    pub sensitivity: f32,
    /// Also score light variations of each shot (gain ±8 %, 4 % shifts) for the threshold.
    pub augment: bool,
    /// Threads for the nearest-neighbour search.
    pub threads: usize,
}

impl Default for CalibrationSettings {
    fn default() -> Self {
        Self {
            scorer: ScorerKind::FeatureNorm,
            image_score: DEFAULT_IMAGE_SCORE,
            spread: decision::DEFAULT_SPREAD,
            margin: decision::DEFAULT_MARGIN,
            sensitivity: 1.0,
            augment: true,
            threads: default_threads(),
        }
    }
}

/// Threads available to this process.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Light variations of a good part that a line sees anyway: gain ±8 % and a 4 % shift of the
/// framing towards two corners.
pub fn variations(image: &RgbImage) -> Vec<RgbImage> {
    let gain = |g: f32| {
        let mut out = image.clone();
        out.pixels_mut().for_each(|p| p.0.iter_mut().for_each(|v| *v = (*v as f32 * g).round().min(255.0) as u8));
        out
    };
    let (w, h) = image.dimensions();
    let (cw, ch) = ((w as f32 * 0.96) as u32, (h as f32 * 0.96) as u32);
    let crop = |x: u32, y: u32| image::imageops::crop_imm(image, x, y, cw, ch).to_image();
    vec![gain(0.92), gain(1.08), crop(0, 0), crop(w - cw, h - ch)]
}

/// Every item but the `skip`-th.
fn all_but<'a>(items: &[&'a [FeatureMap]], skip: usize) -> Vec<&'a [FeatureMap]> {
    items.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, s)| *s).collect()
}

/// One reference bank per level over `shots` (each one map per level).
fn banks_of(shots: &[&[FeatureMap]]) -> Vec<ReferenceBank> {
    (0..shots[0].len()).map(|l| ReferenceBank::from_maps(shots.iter().map(|s| &s[l]))).collect()
}

/// Scoring against a bank of `shots` (each one map per level), with the scorer fitted on the
/// shots' leave-one-out projected residuals.
pub fn fit_scoring(
    shots: &[&[FeatureMap]],
    projector: Arc<Projector>,
    kind: ScorerKind,
    map: (usize, ImageScore),
    threads: usize,
) -> Result<FeatureScorer> {
    let banks = banks_of(shots);
    let shapes: Vec<(usize, usize, usize)> = shots[0].iter().map(|m| (m.channels, m.height, m.width)).collect();
    let samples = if kind == ScorerKind::FeatureNorm || shots.len() < 2 {
        Vec::new()
    } else {
        (0..shots.len())
            .map(|j| {
                let mut loo = FeatureScorer::new(
                    banks_of(&all_but(shots, j)),
                    projector.clone(),
                    Box::new(scorer::FeatureNorm),
                    &shapes,
                    map,
                    threads,
                )?;
                loo.projected_residuals(shots[j])
            })
            .collect::<Result<Vec<_>>>()?
    };
    let fitted = if samples.is_empty() {
        Box::new(scorer::FeatureNorm) as Box<dyn scorer::Scorer>
    } else {
        scorer::fit(kind, &samples)?
    };
    FeatureScorer::new(banks, projector, fitted, &shapes, map, threads)
}

/// Makes a site calibration from `shots` (name, image), at least 2.
#[allow(clippy::too_many_arguments)]
pub fn calibrate(
    extractor: &mut Extractor,
    projector: Arc<Projector>,
    model: ModelIdentity,
    shots: &[(String, RgbImage)],
    settings: &CalibrationSettings,
    created_unix_s: u64,
    progress: &dyn Fn(&str),
) -> Result<SiteCalibration> {
    if shots.len() < 2 {
        return Err(Error::Setting(format!(
            "calibration needs at least 2 good shots (got {}): the threshold comes from scoring each shot against the others",
            shots.len()
        )));
    }
    decision::check_setting("sensitivity", settings.sensitivity, &decision::SENSITIVITY_RANGE)
        .map_err(Error::Setting)?;
    if !settings.image_score.is_valid() {
        return Err(Error::Setting(format!(
            "image score share must be above 0 and at most 1, got {:?}",
            settings.image_score
        )));
    }
    decision::check_setting("spread", settings.spread, &decision::SPREAD_RANGE).map_err(Error::Setting)?;
    decision::check_setting("margin", settings.margin, &decision::MARGIN_RANGE).map_err(Error::Setting)?;
    let working_side = extractor.working_side();
    let resize_side = extractor.preprocessor().resize_side();
    let mut originals = Vec::with_capacity(shots.len());
    let mut variants: Vec<Vec<Vec<FeatureMap>>> = Vec::with_capacity(shots.len());
    for (name, image) in shots {
        progress(name);
        let f = extractor.features(image)?;
        let mut v = vec![f.clone()];
        if settings.augment {
            for aug in variations(image) {
                v.push(extractor.features(&aug)?);
            }
        }
        originals.push(f);
        variants.push(v);
    }
    let mut scores = Vec::new();
    let all: Vec<&[FeatureMap]> = originals.iter().map(|s| s.as_slice()).collect();
    for i in 0..shots.len() {
        progress(&format!("leave-one-out {}", shots[i].0));
        let mut scoring = fit_scoring(
            &all_but(&all, i),
            projector.clone(),
            settings.scorer,
            (working_side as usize, settings.image_score),
            settings.threads,
        )?;
        for v in &variants[i] {
            let s = scoring.score(v, &mut StageTimes::default())?;
            if !s.is_finite() {
                return Err(Error::Calibration(format!(
                    "shot {} scores {s}: the model output is not usable",
                    shots[i].0
                )));
            }
            scores.push(s);
        }
    }
    let levels = (0..originals[0].len())
        .map(|l| {
            let first = &originals[0][l];
            ReferenceLevel {
                output: bounded_name(&extractor.level_names()[l]),
                channels: first.channels as u32,
                height: first.height as u32,
                width: first.width as u32,
                shots: shots.len() as u32,
                features: originals.iter().flat_map(|s| s[l].data.iter().copied()).collect(),
            }
        })
        .collect();
    let threshold = decision::threshold(scores, settings.spread, settings.margin, settings.sensitivity);
    if !(threshold.value.is_finite() && threshold.value > 0.0) {
        return Err(Error::Calibration(format!(
            "the threshold from these shots is {} (good scores {}..{}, spread {}): not usable",
            threshold.value, threshold.stats.min, threshold.stats.max, settings.spread
        )));
    }
    let shot_names = shots.iter().map(|(n, _)| bounded_name(n)).collect();
    Ok(SiteCalibration {
        model,
        scorer: settings.scorer,
        image_score: settings.image_score,
        resize_side,
        working_side,
        shot_names,
        levels,
        threshold,
        photometry: crate::photometry::of_shots(shots.iter().map(|(_, image)| image)),
        created_unix_s,
    })
}

/// A name cut to the 64 bytes a calibration holds (on a character boundary).
pub fn bounded_name(s: &str) -> Name {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Name::try_from(&s[..end]).unwrap_or_default()
}

/// The identity of a model + projector pair, as calibrations record it ([`crate::model::identity`]).
pub fn identity(model: &Model, projector: &Projector) -> ModelIdentity {
    crate::model::identity(&model.manifest, projector.digest())
}

/// Decodes a site calibration read from `path` (see [`crate::setup::Station::inspector`], which
/// reads it with its size cap and checks its signature first); errors name the file.
pub fn decode_calibration(path: &std::path::Path, bytes: &[u8]) -> Result<SiteCalibration> {
    edge_ad_calib::decode(bytes).map_err(|e| match e {
        edge_ad_calib::FormatError::UnsupportedVersion { found, .. } if found < SiteCalibration::VERSION => {
            Error::bad_file(
                path,
                format!("{e}: made by an older build (another image score, threshold rule or brightness record); calibrate again"),
            )
        }
        e => Error::bad_file(path, e),
    })
}

/// Rebuilds the frame path a calibration describes. Refuses a calibration made with another
/// model or projector, or whose banks do not fit the model's levels.
pub fn inspector(
    model: &Model,
    projector: Arc<Projector>,
    calib: &SiteCalibration,
    threads: usize,
) -> Result<Inspector> {
    let bad = Error::Calibration;
    calib.validate().map_err(|why| bad(format!("calibration is inconsistent: {why}")))?;
    decision::check_threshold(&calib.threshold).map_err(bad)?;
    let expected = identity(model, &projector);
    if calib.model.backbone_sha256 != expected.backbone_sha256 {
        return Err(bad(format!(
            "calibration was made for backbone {} but this box runs {} ({}); calibrate again",
            crate::model::hex(&calib.model.backbone_sha256),
            crate::model::hex(&expected.backbone_sha256),
            model.origin
        )));
    }
    if calib.model.projector_sha256 != expected.projector_sha256 {
        let show = |p: Option<[u8; 32]>| p.map_or("none (identity)".to_string(), |d| crate::model::hex(&d));
        return Err(bad(format!(
            "calibration was made with projector {} but this box runs projector {}; calibrate again",
            show(calib.model.projector_sha256),
            show(expected.projector_sha256)
        )));
    }
    // Shapes first, from the manifest alone: a calibration's sizes are checked before any buffer
    // is sized from them.
    let shapes = crate::backbone::expected_shapes(&model.manifest, calib.working_side);
    if shapes.len() != calib.levels.len() {
        return Err(bad(format!("calibration has {} levels, the model {}", calib.levels.len(), shapes.len())));
    }
    for (l, (level, &(c, h, w))) in calib.levels.iter().zip(&shapes).enumerate() {
        if (level.channels as usize, level.height as usize, level.width as usize) != (c, h, w) {
            return Err(bad(format!(
                "calibration level {l} is {}×{}×{}, the model gives {c}×{h}×{w}",
                level.channels, level.height, level.width
            )));
        }
    }
    let extractor = Extractor::new(model, calib.resize_side, calib.working_side)?;
    let shots: Vec<Vec<FeatureMap>> = (0..calib.shot_names.len())
        .map(|k| {
            calib
                .levels
                .iter()
                .map(|level| {
                    let n = level.patches_per_shot() * level.channels as usize;
                    FeatureMap {
                        channels: level.channels as usize,
                        height: level.height as usize,
                        width: level.width as usize,
                        data: level.features[k * n..(k + 1) * n].to_vec(),
                    }
                })
                .collect()
        })
        .collect();
    let refs: Vec<&[FeatureMap]> = shots.iter().map(|s| s.as_slice()).collect();
    let scoring =
        fit_scoring(&refs, projector, calib.scorer, (calib.working_side as usize, calib.image_score), threads)?;
    Ok(Inspector::new(extractor, scoring).with_photometry(calib.photometry))
}
