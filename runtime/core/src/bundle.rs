//! Flashing bundles from the host tool (`edge-ad-host bundle`): the backbone, its manifest, the
//! projector files and the model calibration in one file. Every inner file's sha256 is checked
//! before anything is compiled from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use edge_ad_calib::{Bundle, ModelCalibration};

use crate::error::{Error, Result};
use crate::model::{hex, sha256, Model};
use crate::projector::Projector;
use crate::trust::{Signed, Trust};

/// A bundle read from disk: the backbone, and the projector when the bundle has one.
pub struct Loaded {
    /// The backbone (its ONNX checked against the manifest's sha256).
    pub model: Model,
    /// The projector files in level order, as (bundle path/inner name, bytes); empty: none.
    projector_files: Vec<(PathBuf, Vec<u8>)>,
    /// The model calibration, when the bundle has one.
    pub calibration: Option<ModelCalibration>,
    path: PathBuf,
}

impl Loaded {
    /// Whether the bundle carries a pretrained projector.
    pub fn has_projector(&self) -> bool {
        !self.projector_files.is_empty()
    }

    /// The bundle's projector compiled for `working_side` (the identity when it has none).
    pub fn projector(&self, working_side: u32) -> Result<Arc<Projector>> {
        if self.projector_files.is_empty() {
            return Ok(Arc::new(Projector::Identity));
        }
        let shapes = crate::backbone::expected_shapes(&self.model.manifest, working_side);
        Ok(Arc::new(Projector::from_bytes(&self.projector_files, &shapes, &self.path)?))
    }
}

/// The backbone from a bundle (with the bundle, for its projector) when `bundle` is given and
/// its signature satisfies `trust`, else from the manifest at `manifest` (the embedded default
/// for `None`).
pub fn open_model(bundle: Option<&Path>, manifest: Option<&Path>, trust: &Trust) -> Result<(Model, Option<Loaded>)> {
    match bundle {
        Some(path) => load(path, trust).map(|b| (b.model.clone(), Some(b))),
        None => Model::load(manifest).map(|m| (m, None)),
    }
}

/// Reads and checks the bundle at `path`: its signature against `trust`, header, checksum,
/// structure, and every file's sha256;
/// the model calibration must name the backbone and projector the bundle holds.
pub fn load(path: &Path, trust: &Trust) -> Result<Loaded> {
    let bytes = crate::files::read_capped(path, crate::files::caps::MODEL)?;
    trust.check(Signed::Bundle, path, &bytes)?;
    let bundle: Bundle = edge_ad_calib::decode(&bytes).map_err(|e| Error::bad_file(path, e))?;
    bundle.validate().map_err(|why| Error::bad_file(path, why))?;
    for f in &bundle.files {
        let digest = sha256(&f.bytes);
        if digest != f.sha256 {
            return Err(Error::bad_file(
                path,
                format!("{}: sha256 {} does not match the recorded {}", f.name, hex(&digest), hex(&f.sha256)),
            ));
        }
    }
    let backbone = bundle.file(bundle.manifest.file.as_str()).map(|f| f.bytes.clone()).unwrap_or_default();
    let origin = format!("{} ({})", path.display(), bundle.manifest.name);
    let model = Model::from_parts(bundle.manifest.clone(), backbone, origin)?;
    let mut projector_files = Vec::new();
    if bundle.files.len() > 1 {
        for level in &bundle.manifest.levels {
            let name = Projector::file_name(level);
            let f = bundle
                .file(&name)
                .ok_or_else(|| Error::bad_file(path, format!("no projector file {name} for level {}", level.output)))?;
            projector_files.push((path.join(&name), f.bytes.clone()));
        }
    }
    let loaded = Loaded { model, projector_files, calibration: bundle.calibration, path: path.to_path_buf() };
    if let Some(c) = &loaded.calibration {
        let projector = (!loaded.projector_files.is_empty())
            .then(|| crate::model::projector_digest(loaded.projector_files.iter().map(|(_, b)| b.as_slice())));
        let expected = crate::model::identity(&loaded.model.manifest, projector);
        if c.model != expected {
            return Err(Error::bad_file(path, "the model calibration was made for other model files"));
        }
    }
    Ok(loaded)
}
