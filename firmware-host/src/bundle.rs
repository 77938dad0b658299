//! What the host hands to boxes besides the ONNX files: the model calibration (radius statistics
//! and the sha256 of every model file, written by `pretrain` as `model.calib`) and the flashing
//! bundle (`edge-ad-host bundle`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use edge_ad_calib::{Bundle, BundleFile, FileDigest, LevelRadius, ModelCalibration, ModelIdentity, Name};
use edge_ad_core::model::{projector_digest, sha256, Model};
use edge_ad_core::projector::Projector;

use crate::losses::NormStats;

/// The model calibration's file name inside a projector folder.
pub const MODEL_CALIBRATION: &str = "model.calib";

fn name(s: &str) -> Result<Name> {
    Name::try_from(s).map_err(|_| anyhow::anyhow!("name {s:?} is longer than 64 bytes"))
}

/// The projector files of `dir` for `model`'s levels, as (file name, bytes), in level order.
pub fn projector_files(dir: &Path, model: &Model) -> Result<Vec<(String, Vec<u8>)>> {
    let names = model.manifest.levels.iter().map(Projector::file_name);
    names
        .zip(Projector::level_files(dir, &model.manifest))
        .map(|(file, path)| {
            let bytes =
                std::fs::read(&path).with_context(|| format!("{}: cannot read the projector", path.display()))?;
            Ok((file, bytes))
        })
        .collect()
}

/// The identity of `model` with the projector files `projector`, as calibrations record it.
fn identity(model: &Model, projector: &[(String, Vec<u8>)]) -> ModelIdentity {
    edge_ad_core::model::identity(&model.manifest, Some(projector_digest(projector.iter().map(|(_, b)| b.as_slice()))))
}

/// The model calibration of a pretrained projector.
pub fn model_calibration(
    model: &Model,
    projector: &[(String, Vec<u8>)],
    radius: &[NormStats],
    loss: &str,
    samples: usize,
    epochs: usize,
    seed: u64,
) -> Result<ModelCalibration> {
    let mut levels = heapless::Vec::new();
    for (l, r) in model.manifest.levels.iter().zip(radius) {
        let stat = |v: f32| if v.is_finite() { v.max(0.0) } else { 0.0 };
        let level = LevelRadius {
            output: l.output.clone(),
            r_max: stat(r.r_max),
            normal_mean: stat(r.normal_mean),
            normal_max: stat(r.normal_max),
            anomalous_min: r.anomalous_min.is_finite().then_some(r.anomalous_min),
        };
        levels.push(level).map_err(|_| anyhow::anyhow!("more than 8 levels"))?;
    }
    let mut files = heapless::Vec::new();
    let backbone = FileDigest { name: model.manifest.file.clone(), sha256: model.manifest.sha256 };
    files.push(backbone).map_err(|_| anyhow::anyhow!("too many files"))?;
    for (file, bytes) in projector {
        files
            .push(FileDigest { name: name(file)?, sha256: sha256(bytes) })
            .map_err(|_| anyhow::anyhow!("too many files"))?;
    }
    let calibration = ModelCalibration {
        model: identity(model, projector),
        loss: name(loss)?,
        levels,
        files,
        samples: samples as u32,
        epochs: epochs as u32,
        seed,
    };
    calibration.validate().map_err(|why| anyhow::anyhow!("model calibration: {why}"))?;
    Ok(calibration)
}

/// A bundle of `model` and, when given, the projector in `projector_dir` with its model
/// calibration (`model.calib`, which must describe exactly these files).
pub fn make_bundle(model: &Model, projector_dir: Option<&Path>) -> Result<Bundle> {
    let mut files = vec![BundleFile {
        name: model.manifest.file.clone(),
        sha256: model.manifest.sha256,
        bytes: model.onnx.to_vec(),
    }];
    let mut calibration = None;
    if let Some(dir) = projector_dir {
        let projector = projector_files(dir, model)?;
        let calib_path = dir.join(MODEL_CALIBRATION);
        if calib_path.is_file() {
            let bytes = std::fs::read(&calib_path).with_context(|| format!("{}: cannot read", calib_path.display()))?;
            let c: ModelCalibration =
                edge_ad_calib::decode(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", calib_path.display()))?;
            if c.model != identity(model, &projector) {
                bail!("{}: made for other model files than {} and this backbone", calib_path.display(), dir.display());
            }
            calibration = Some(c);
        }
        for (file, bytes) in projector {
            files.push(BundleFile { name: name(&file)?, sha256: sha256(&bytes), bytes });
        }
    }
    let bundle = Bundle { manifest: model.manifest.clone(), calibration, files };
    bundle.validate().map_err(|why| anyhow::anyhow!("bundle: {why}"))?;
    Ok(bundle)
}
