//! The backbone manifest: what the box must know to feed a model and read its feature levels.

use heapless::Vec as BoundedVec;
use serde::{Deserialize, Serialize};

use crate::header::{Payload, PayloadKind};

/// A bounded name (model, file or tensor name) that fits on an MCU too.
pub type Name = heapless::String<64>;

/// Channel order the graph expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ColourOrder {
    /// Red, green, blue planes.
    Rgb,
    /// Blue, green, red planes.
    Bgr,
}

/// How pixel values are scaled before they enter the graph.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Normalisation {
    /// The graph takes values in [0, 1] and normalises inside itself.
    UnitRangeInGraph,
    /// The box computes (x/255 − mean) / std per channel.
    MeanStd {
        /// Per-channel mean, in the graph's colour order.
        mean: [f32; 3],
        /// Per-channel standard deviation, in the graph's colour order.
        std: [f32; 3],
    },
}

/// One feature level the backbone outputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LevelSpec {
    /// ONNX output name, e.g. `feat_s8`.
    pub output: Name,
    /// Pixels of input per feature cell.
    pub stride: u32,
    /// Feature channels.
    pub channels: u32,
}

/// Everything the box needs to run a backbone: one per ONNX file in `models/`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ModelManifest {
    /// Model name, e.g. `effnet_lite0_feat`.
    pub name: Name,
    /// File name of the ONNX graph, relative to the manifest's folder.
    pub file: Name,
    /// sha256 of that file.
    pub sha256: [u8; 32],
    /// Name of the graph's single image input.
    pub input_name: Name,
    /// Default square input side in pixels (a multiple of every level's stride).
    pub input_side: u32,
    /// Channel order of the input.
    pub colour_order: ColourOrder,
    /// Scaling of the input.
    pub normalisation: Normalisation,
    /// Feature levels, finest first.
    pub levels: BoundedVec<LevelSpec, 8>,
    /// Licence of the weights (SPDX id).
    pub licence: Name,
}

impl Payload for ModelManifest {
    const KIND: PayloadKind = PayloadKind::ModelManifest;
}

impl ModelManifest {
    /// Checks that the manifest is usable: at least one level, positive sizes, an input side
    /// divisible by every stride, finite non-zero std. Returns what is wrong.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.levels.is_empty() {
            return Err("manifest lists no feature level");
        }
        if self.input_side == 0 {
            return Err("input side is 0");
        }
        for level in &self.levels {
            if level.stride == 0 || level.channels == 0 {
                return Err("a level has stride or channels 0");
            }
            if !self.input_side.is_multiple_of(level.stride) {
                return Err("input side is not a multiple of a level's stride");
            }
        }
        if let Normalisation::MeanStd { mean, std } = self.normalisation {
            if mean.iter().chain(std.iter()).any(|v| !v.is_finite()) || std.contains(&0.0) {
                return Err("normalisation mean/std not finite or std is 0");
            }
        }
        Ok(())
    }
}

/// Which model files a calibration was made with: a box refuses a calibration whose identity
/// differs from the model it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ModelIdentity {
    /// sha256 of the backbone ONNX.
    pub backbone_sha256: [u8; 32],
    /// sha256 over the projector ONNX files' sha256s in level order; `None` = identity projector.
    pub projector_sha256: Option<[u8; 32]>,
}
