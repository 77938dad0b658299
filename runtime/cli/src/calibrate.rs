//! `edge-ad calibrate`: K good shots (from folders, or captured from the box's source) → a site
//! calibration file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use edge_ad_core::calibrate::{self, CalibrationSettings};
use edge_ad_core::formats::ScorerKind;
use edge_ad_core::pipeline::Extractor;
use edge_ad_core::setup::Station;
use edge_ad_core::source;
use edge_ad_eval::progress;
use edge_ad_line::config::BoxConfig;

use crate::args::{image_score_name, CalibArgs, CalibrateArgs, ModelArgs};
use crate::{Error, Result};

/// The calibration settings the flags give.
pub fn settings(c: &CalibArgs, model: &ModelArgs, station: &Station) -> CalibrationSettings {
    CalibrationSettings {
        scorer: c.scorer.scorer.unwrap_or(ScorerKind::FeatureNorm),
        image_score: c.image_score,
        spread: c.spread,
        margin: c.margin,
        sensitivity: model.sensitivity.unwrap_or(1.0),
        augment: !c.no_augment,
        threads: station.threads(),
    }
}

/// The working side and the resize side the flags give for `station`'s model.
pub fn sides(station: &Station, c: &CalibArgs) -> (u32, u32) {
    let side = c.side.unwrap_or(station.manifest.input_side);
    (side, c.resize.unwrap_or(side))
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The shots from the sources (the first K images) or from the configured source, and the
/// calibration file to write.
fn gather_shots(a: &CalibrateArgs, config: Option<&BoxConfig>) -> Result<(Vec<(String, image::RgbImage)>, PathBuf)> {
    let shots = a.shots.shots;
    if let (Some(config), true) = (config, a.source.sources.is_empty()) {
        let out = a.out.clone().unwrap_or_else(|| config.model.calibration.clone());
        let mut keep = out.as_os_str().to_owned();
        keep.push(".shots");
        let taken = edge_ad_line::shots::capture_shots(config, shots, a.keys, Path::new(&keep), &|m| eprintln!("{m}"))?;
        return Ok((taken, out));
    }
    // From image files: written to --out, or with --config to the configuration's calibration.
    let out = a.out.clone().or_else(|| config.map(|c| c.model.calibration.clone()));
    let (false, Some(out)) = (a.source.sources.is_empty(), out) else {
        return Err(Error::Usage("calibrate needs --source and --out, or --config".into()));
    };
    let files = crate::run::image_files(&a.source.sources)?;
    if shots > files.len() {
        return Err(Error::Usage(format!(
            "{shots} shots asked but the sources hold {} images ({})",
            files.len(),
            a.source.sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok((source::load_named(&files[..shots])?, out))
}

/// `calibrate --config` calibrates for the model the configuration runs (its bundle, manifest
/// and projector), unless the command line names one.
fn model_of(model: &ModelArgs, config: Option<&BoxConfig>) -> ModelArgs {
    let mut m = model.clone();
    if let Some(c) = config {
        if model.manifest.is_none() && model.bundle.is_none() && model.projector.is_none() {
            m.manifest = c.model.manifest.clone();
            m.bundle = c.model.bundle.clone();
            m.projector = c.model.projector.clone();
        }
        m.threads = m.threads.or(c.model.threads);
        // Calibrate in the precision the box will score in.
        m.precision = m.precision.or(Some(c.model.precision));
    }
    m
}

/// `edge-ad calibrate`.
pub fn calibrate(model: &ModelArgs, a: CalibrateArgs) -> Result {
    if a.shots.shots < 2 {
        return Err(Error::Usage(format!(
            "--shots must be at least 2 (each shot is scored against the others), got {}",
            a.shots.shots
        )));
    }
    let config = a.config.config.as_deref().map(BoxConfig::load).transpose()?;
    let model = model_of(model, config.as_ref());
    // For the box's own configuration, the box's trust: its bundle must be signed as `serve`
    // needs it, and the calibration is signed with the box's key.
    let (setup, box_key) = match &config {
        Some(c) => (
            edge_ad_core::setup::ModelSetup { bundle_trust: c.setup()?.bundle_trust, ..model.setup() },
            Some(c.box_signing_key()?),
        ),
        None => (model.setup(), None),
    };
    let station = setup.open()?;
    let (side, resize) = sides(&station, &a.calib);
    let projector = station.projector(side)?;
    let mut extractor = Extractor::new(&station, resize, side)?;
    let (shots, out) = gather_shots(&a, config.as_ref())?;
    let started = Instant::now();
    let bar = progress::bar(2 * a.shots.shots as u64, "calibrate");
    let calib = calibrate::calibrate(
        &mut extractor,
        projector.clone(),
        station.identity(&projector),
        &shots,
        &settings(&a.calib, &model, &station),
        now_unix(),
        &|msg| {
            bar.inc(1);
            bar.set_message(msg.to_string());
        },
    )?;
    bar.finish_and_clear();
    let bytes = edge_ad_core::formats::encode(&calib).map_err(|e| edge_ad_core::Error::bad_file(&out, e))?;
    // The signature first, then the calibration: a box never sees a new calibration beside an
    // old signature (it would refuse it, safely, until the pair is complete).
    if let Some(key) = &box_key {
        edge_ad_core::trust::sign_file(key, edge_ad_core::trust::Signed::Calibration, &out, &bytes)?;
    }
    edge_ad_core::files::write_atomic(&out, &bytes)?;
    let t = &calib.threshold;
    if a.json.json {
        let summary = serde_json::json!({
            "calibration": out.display().to_string(),
            "shots": calib.shot_names.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            "scorer": calib.scorer.name(),
            "threshold": t.value,
            "image_score": image_score_name(calib.image_score),
            "spread": t.spread,
            "margin": t.margin,
            "good_scores": {"min": t.stats.min, "max": t.stats.max, "mean": t.stats.mean, "std": t.stats.std, "count": t.stats.scores.len()},
            "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{summary}");
    } else {
        println!(
            "calibrated {} on {} shots in {:.2} s: threshold {:.4} ({} good scores {:.4}..{:.4}, spread {}, margin {}, sensitivity {})",
            out.display(),
            a.shots.shots,
            started.elapsed().as_secs_f64(),
            t.value,
            t.stats.scores.len(),
            t.stats.min,
            t.stats.max,
            t.spread,
            t.margin,
            t.sensitivity
        );
    }
    Ok(ExitCode::SUCCESS)
}
