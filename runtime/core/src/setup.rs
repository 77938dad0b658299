//! The one place where a model choice becomes a frame path: [`ModelSetup`] says where the
//! backbone and projector come from (a bundle, a manifest, a projector folder, the embedded
//! defaults) and whether the sensitivity is overridden; [`ModelSetup::open`] loads and checks it
//! into a [`Station`], which gives the projector for a working side and an [`Inspector`] for a
//! site calibration. The command line, the service and the host tool all go through here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use edge_ad_calib::{ModelIdentity, SiteCalibration};

use crate::bundle::{self, Loaded};
use crate::calibrate;
use crate::decision;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::pipeline::Inspector;
use crate::precision::PrecisionChoice;
use crate::projector::Projector;
use crate::trust::{Signed, Trust};

/// Which projector runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ProjectorChoice {
    /// The bundle's projector with a bundle; the embedded pretrained projector with the default
    /// backbone; else the identity.
    #[default]
    Default,
    /// No projector: raw residuals (spelled `none`).
    Identity,
    /// The projector files in this folder (`<level>.onnx`).
    Folder(PathBuf),
}

impl ProjectorChoice {
    /// From the `--projector` / `model.projector` spelling: `none` is the identity, anything
    /// else a folder, nothing the default.
    pub fn from_spelling(path: Option<&Path>) -> Self {
        match path {
            None => Self::Default,
            Some(p) if p == Path::new(crate::projector::NONE) => Self::Identity,
            Some(p) => Self::Folder(p.to_path_buf()),
        }
    }
}

/// A combination of model settings that cannot run. Each front end (flags, box.toml) words it
/// with its own names.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SetupProblem {
    /// A bundle carries the backbone and projector: a manifest or projector folder beside it
    /// conflicts (`none`, raw residuals on the bundle's backbone, does not).
    BundleWithParts,
    /// The sensitivity must be in [`decision::SENSITIVITY_RANGE`].
    Sensitivity(f32),
    /// At least one thread.
    Threads,
    /// Only signed files are trusted: a manifest or projector folder (unsigned by nature) cannot run.
    Unsigned,
}

/// Where the model comes from and how it is run.
#[derive(Clone, Debug)]
pub struct ModelSetup {
    /// A bundle from `edge-ad-host bundle` (backbone, projector, model calibration).
    pub bundle: Option<PathBuf>,
    /// A backbone manifest; neither this nor a bundle: the embedded EfficientNet-Lite0.
    pub manifest: Option<PathBuf>,
    /// The projector.
    pub projector: ProjectorChoice,
    /// Overrides a calibration's sensitivity.
    pub sensitivity: Option<f32>,
    /// Threads for the nearest-neighbour search (default: all cores).
    pub threads: Option<usize>,
    /// The backbone's float precision (default: f16 where the CPU has half-precision arithmetic).
    pub precision: PrecisionChoice,
    /// Whose signature a bundle needs (default: none needed, for the engineering tools).
    pub bundle_trust: Trust,
    /// Whose signature a site calibration needs (the box's own key on the line).
    pub calibration_trust: Trust,
}

impl Default for ModelSetup {
    fn default() -> Self {
        Self {
            bundle: None,
            manifest: None,
            projector: ProjectorChoice::Default,
            sensitivity: None,
            threads: None,
            precision: PrecisionChoice::Auto,
            bundle_trust: Trust::development(),
            calibration_trust: Trust::development(),
        }
    }
}

impl ModelSetup {
    /// A setup as the flags and box.toml spell it (`projector`: a folder, or `none` for raw
    /// residuals), checking no signature.
    pub fn spelled(
        bundle: Option<&Path>,
        manifest: Option<&Path>,
        projector: Option<&Path>,
        sensitivity: Option<f32>,
        threads: Option<usize>,
    ) -> Self {
        Self {
            bundle: bundle.map(Path::to_path_buf),
            manifest: manifest.map(Path::to_path_buf),
            projector: ProjectorChoice::from_spelling(projector),
            sensitivity,
            threads,
            ..Self::default()
        }
    }

    /// This setup with the backbone's precision `precision`.
    pub fn with_precision(self, precision: PrecisionChoice) -> Self {
        Self { precision, ..self }
    }

    /// The first problem of this combination, without reading any file.
    pub fn problem(&self) -> Option<SetupProblem> {
        if self.bundle.is_some() && (self.manifest.is_some() || matches!(self.projector, ProjectorChoice::Folder(_))) {
            return Some(SetupProblem::BundleWithParts);
        }
        if let Some(s) = self.sensitivity.filter(|s| !decision::SENSITIVITY_RANGE.contains(s)) {
            return Some(SetupProblem::Sensitivity(s));
        }
        if self.threads == Some(0) {
            return Some(SetupProblem::Threads);
        }
        if !self.bundle_trust.allow_unsigned
            && (self.manifest.is_some() || matches!(self.projector, ProjectorChoice::Folder(_)))
        {
            return Some(SetupProblem::Unsigned);
        }
        None
    }

    /// Loads and checks the backbone (and the bundle) this setup names.
    pub fn open(&self) -> Result<Station> {
        if let Some(p) = self.problem() {
            return Err(Error::Setting(match p {
                SetupProblem::BundleWithParts => {
                    "a manifest or projector folder with a bundle: the bundle carries the projector and the backbone"
                        .into()
                }
                SetupProblem::Sensitivity(s) => {
                    decision::check_setting("sensitivity", s, &decision::SENSITIVITY_RANGE).err().unwrap_or_default()
                }
                SetupProblem::Threads => "threads must be at least 1".into(),
                SetupProblem::Unsigned => {
                    "only signed files are trusted here: run the embedded model or a signed bundle".into()
                }
            }));
        }
        let (mut model, bundle) =
            bundle::open_model(self.bundle.as_deref(), self.manifest.as_deref(), &self.bundle_trust)?;
        model.precision = self.precision.resolve();
        tracing::info!("backbone {} in {} ({} asked)", model.origin, model.precision, self.precision);
        Ok(Station {
            model,
            bundle,
            calibration_trust: self.calibration_trust.clone(),
            projector: self.projector.clone(),
            sensitivity: self.sensitivity,
            threads: self.threads.unwrap_or_else(calibrate::default_threads).max(1),
        })
    }
}

/// A loaded model, ready to build frame paths: the backbone (with the precision it runs in), the
/// bundle it came from, the projector choice, the sensitivity override and the thread count.
pub struct Station {
    /// The backbone.
    pub model: Model,
    /// The bundle, when the model came from one.
    pub bundle: Option<Loaded>,
    calibration_trust: Trust,
    projector: ProjectorChoice,
    sensitivity: Option<f32>,
    threads: usize,
}

/// A frame path ready for a site calibration, and what it decides against.
pub struct Ready {
    /// The frame path.
    pub inspector: Inspector,
    /// The calibration it was built from.
    pub calibration: SiteCalibration,
    /// The threshold in force (the calibration's, or with the sensitivity override).
    pub threshold: f32,
}

impl Station {
    /// Threads for the nearest-neighbour search.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The projector for `working_side`, as the setup chose it.
    pub fn projector(&self, working_side: u32) -> Result<Arc<Projector>> {
        match (&self.projector, &self.bundle) {
            (ProjectorChoice::Identity, _) => Ok(Arc::new(Projector::Identity)),
            (ProjectorChoice::Default, Some(b)) => b.projector(working_side),
            (ProjectorChoice::Default, None) => Projector::open(None, &self.model, working_side),
            (ProjectorChoice::Folder(dir), _) => Projector::open(Some(dir), &self.model, working_side),
        }
    }

    /// The identity a calibration made with `projector` records.
    pub fn identity(&self, projector: &Projector) -> ModelIdentity {
        calibrate::identity(&self.model, projector)
    }

    /// The threshold in force for `calibration`: its own, or with the sensitivity override.
    pub fn threshold(&self, calibration: &SiteCalibration) -> f32 {
        match self.sensitivity {
            Some(s) => decision::with_sensitivity(&calibration.threshold, s).value,
            None => calibration.threshold.value,
        }
    }

    /// The frame path for the site calibration in `path`: read, checked against this model and
    /// projector, and rebuilt. Every error names the file.
    pub fn inspector(&self, path: &Path) -> Result<Ready> {
        let bytes = crate::files::read_capped(path, crate::files::caps::CALIBRATION)?;
        self.calibration_trust.check(Signed::Calibration, path, &bytes)?;
        let calibration = calibrate::decode_calibration(path, &bytes)?;
        self.inspector_for(calibration, path)
    }

    /// The frame path for an already read `calibration` (from `path`, for messages).
    pub fn inspector_for(&self, calibration: SiteCalibration, path: &Path) -> Result<Ready> {
        let projector = self.projector(calibration.working_side)?;
        let inspector =
            calibrate::inspector(&self.model, projector, &calibration, self.threads).map_err(|e| match e {
                Error::Calibration(why) | Error::Setting(why) => Error::bad_file(path, why),
                e => e,
            })?;
        let threshold = self.threshold(&calibration);
        Ok(Ready { inspector, calibration, threshold })
    }
}

impl std::ops::Deref for Station {
    type Target = Model;
    fn deref(&self) -> &Model {
        &self.model
    }
}
