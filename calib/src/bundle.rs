//! What the host tool hands to boxes: the model calibration (the projector's radius statistics
//! and the sha256 of every model file) and the flashing bundle (backbone, projectors, manifest
//! and model calibration in one file).

use alloc::vec::Vec;

use heapless::Vec as BoundedVec;
use serde::{Deserialize, Serialize};

use crate::header::{Payload, PayloadKind};
use crate::manifest::{ModelIdentity, ModelManifest, Name};

/// One level's radius statistics after pretraining, on a = √(‖z‖ + 1) − 1 of projected features:
/// the hypersphere radius calibrated offline, where a box's threshold can start from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LevelRadius {
    /// The backbone output the level belongs to.
    pub output: Name,
    /// The shell radius the norm loss used (official variant: adaptive; paper: fixed).
    pub r_max: f32,
    /// Mean a of normal patches.
    pub normal_mean: f32,
    /// Largest a of normal patches.
    pub normal_max: f32,
    /// Smallest a of anomalous patches (`None`: the last epoch saw none).
    pub anomalous_min: Option<f32>,
}

/// A model file and its sha256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FileDigest {
    /// File name (relative, no folders).
    pub name: Name,
    /// sha256 of its bytes.
    pub sha256: [u8; 32],
}

/// The host's model calibration for a backbone + projector pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ModelCalibration {
    /// The backbone and projector it was made for.
    pub model: ModelIdentity,
    /// The loss variant (`official` or `paper`).
    pub loss: Name,
    /// Per level, in manifest order.
    pub levels: BoundedVec<LevelRadius, 8>,
    /// Every model file: the backbone ONNX, then each level's projector ONNX.
    pub files: BoundedVec<FileDigest, 16>,
    /// Training samples, epochs and seed, for the record.
    pub samples: u32,
    /// Epochs trained.
    pub epochs: u32,
    /// The seed.
    pub seed: u64,
}

impl Payload for ModelCalibration {
    const KIND: PayloadKind = PayloadKind::ModelCalibration;
}

impl ModelCalibration {
    /// Checks the statistics are finite and non-negative and the file names unique.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.levels.is_empty() {
            return Err("no levels");
        }
        for l in &self.levels {
            let all = [l.r_max, l.normal_mean, l.normal_max, l.anomalous_min.unwrap_or(0.0)];
            if all.iter().any(|v| !v.is_finite() || *v < 0.0) {
                return Err("a radius statistic is negative or not finite");
            }
        }
        if has_duplicates(self.files.iter().map(|f| f.name.as_str())) {
            return Err("a file is listed twice");
        }
        Ok(())
    }
}

/// One file inside a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// File name (the manifest's `file` for the backbone, `<level output>.onnx` for projectors).
    pub name: Name,
    /// sha256 of `bytes`, checked by the reader.
    pub sha256: [u8; 32],
    /// The file's content.
    pub bytes: Vec<u8>,
}

/// Everything a box needs besides its site calibration, in one file for flashing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// The backbone's manifest.
    pub manifest: ModelManifest,
    /// The model calibration, when the bundle has a pretrained projector.
    pub calibration: Option<ModelCalibration>,
    /// The backbone ONNX and the projector ONNX files.
    pub files: Vec<BundleFile>,
}

impl Payload for Bundle {
    const KIND: PayloadKind = PayloadKind::Bundle;
}

impl Bundle {
    /// The file called `name`.
    pub fn file(&self, name: &str) -> Option<&BundleFile> {
        self.files.iter().find(|f| f.name.as_str() == name)
    }

    /// Checks the structure: the backbone file is there, names are unique, and the projector
    /// files are either all there (one per level) or all absent. (Digests are checked by the
    /// reader, which has sha256.)
    pub fn validate(&self) -> Result<(), &'static str> {
        self.manifest.validate()?;
        if self.file(self.manifest.file.as_str()).is_none() {
            return Err("the backbone file the manifest names is missing");
        }
        if has_duplicates(self.files.iter().map(|f| f.name.as_str())) {
            return Err("a file is in the bundle twice");
        }
        let projectors = self.files.len() - 1;
        if projectors != 0 && projectors != self.manifest.levels.len() {
            return Err("the projector files do not match the manifest's levels");
        }
        if let Some(c) = &self.calibration {
            c.validate()?;
            if c.levels.len() != self.manifest.levels.len() {
                return Err("the model calibration's levels do not match the manifest's");
            }
        }
        Ok(())
    }
}

fn has_duplicates<'a>(names: impl Iterator<Item = &'a str> + Clone) -> bool {
    names.clone().enumerate().any(|(i, a)| names.clone().skip(i + 1).any(|b| a == b))
}
