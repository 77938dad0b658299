//! Backbone models: the embedded default (EfficientNet-Lite0) or a manifest on disk, with the
//! ONNX bytes checked against the manifest's sha256.

use std::path::{Path, PathBuf};

use edge_ad_calib::{ModelIdentity, ModelManifest};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::precision::Precision;

/// The default backbone's ONNX graph, embedded so the box runs with no file beside it.
pub const DEFAULT_ONNX: &[u8] = include_bytes!("../../../models/effnet_lite0_feat.onnx");
/// The default backbone's manifest (postcard, edge-ad-calib format).
pub const DEFAULT_MANIFEST: &[u8] = include_bytes!("../../../models/effnet_lite0_feat.manifest");

/// The default projector's graphs in the default backbone's level order, as
/// `(file name, ONNX bytes)`: pretrained by `edge-ad-host pretrain` on real photographs at the
/// backbone's input side, 224 (see models/README.md). The box runs it whenever the backbone is the
/// default one, no projector is named, and the working side is nearer 224 than 336.
pub const DEFAULT_PROJECTOR: [(&str, &[u8]); 2] = [
    ("feat_s8.onnx", include_bytes!("../../../models/projector/feat_s8.onnx")),
    ("feat_s16.onnx", include_bytes!("../../../models/projector/feat_s16.onnx")),
];

/// The projector of the accurate setting (working side 336), in the same form: pretrained the
/// same way on the same corpus with the features made at 336 (models/projector-336). The box runs
/// it in place of [`DEFAULT_PROJECTOR`] when the working side is nearer 336 than 224.
pub const ACCURATE_PROJECTOR: [(&str, &[u8]); 2] = [
    ("feat_s8.onnx", include_bytes!("../../../models/projector-336/feat_s8.onnx")),
    ("feat_s16.onnx", include_bytes!("../../../models/projector-336/feat_s16.onnx")),
];

/// The working sides the two embedded projectors were pretrained at.
pub const PROJECTOR_SIDES: (u32, u32) = (224, 336);

/// The embedded projector for a working side: the one pretrained at the nearer side (a tie goes
/// to the default), with the folder it was shipped from (for messages).
pub fn embedded_projector(working_side: u32) -> (&'static [(&'static str, &'static [u8]); 2], &'static str) {
    let (default, accurate) = PROJECTOR_SIDES;
    if working_side.abs_diff(accurate) < working_side.abs_diff(default) {
        (&ACCURATE_PROJECTOR, "models/projector-336")
    } else {
        (&DEFAULT_PROJECTOR, "models/projector")
    }
}

/// A backbone ready to be compiled: its manifest and graph bytes.
#[derive(Clone)]
pub struct Model {
    /// What the graph takes and gives.
    pub manifest: ModelManifest,
    /// The ONNX bytes (sha256 already checked against the manifest).
    pub onnx: std::borrow::Cow<'static, [u8]>,
    /// Where it came from, for messages: `embedded:<name>` or the manifest's path.
    pub origin: String,
    /// The float precision its graph is compiled for (f32 unless the setup chose f16).
    pub precision: Precision,
}

/// sha256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The projector part of a model's identity: sha256 over the projector files' sha256s, in level
/// order.
pub fn projector_digest<'a>(files: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut all = Sha256::new();
    for bytes in files {
        all.update(Sha256::digest(bytes));
    }
    all.finalize().into()
}

/// The one rule for the model a calibration records and a box checks: the backbone graph's
/// sha256 and, for a pretrained projector, its [`projector_digest`] (`None`: raw residuals).
/// The runtime, the bundle reader and the host tool all build identities here.
pub fn identity(backbone: &ModelManifest, projector_digest: Option<[u8; 32]>) -> ModelIdentity {
    ModelIdentity { backbone_sha256: backbone.sha256, projector_sha256: projector_digest }
}

/// Lower-case hex of a digest, for messages and JSON.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Model {
    /// The embedded default backbone.
    pub fn embedded_default() -> Result<Self> {
        let manifest: ModelManifest = edge_ad_calib::decode(DEFAULT_MANIFEST)
            .map_err(|e| Error::Model { model: "embedded default".into(), reason: format!("manifest: {e}") })?;
        Self::checked(manifest, std::borrow::Cow::Borrowed(DEFAULT_ONNX), "embedded:effnet_lite0_feat".into())
    }

    /// Whether this is the default backbone (same graph, whatever file or bundle it came from),
    /// the one [`DEFAULT_PROJECTOR`] was pretrained for.
    pub fn is_default_backbone(&self) -> bool {
        edge_ad_calib::decode::<ModelManifest>(DEFAULT_MANIFEST).is_ok_and(|m| m.sha256 == self.manifest.sha256)
    }

    /// A backbone from a manifest file; the ONNX file it names is read from the manifest's folder.
    pub fn from_manifest(path: &Path) -> Result<Self> {
        let bytes = crate::files::read_capped(path, crate::files::caps::SMALL)?;
        let manifest: ModelManifest = edge_ad_calib::decode(&bytes).map_err(|e| Error::bad_file(path, e))?;
        // The graph lies beside the manifest: a bare file name, never a path out of its folder.
        let file = Path::new(manifest.file.as_str());
        if file.components().count() != 1 || !matches!(file.components().next(), Some(std::path::Component::Normal(_)))
        {
            return Err(Error::bad_file(
                path,
                format!("file {:?} is not a file name beside the manifest", manifest.file.as_str()),
            ));
        }
        let onnx_path: PathBuf = path.parent().unwrap_or(Path::new(".")).join(file);
        let onnx = crate::files::read_capped(&onnx_path, crate::files::caps::MODEL)?;
        Self::checked(manifest, std::borrow::Cow::Owned(onnx), path.display().to_string())
    }

    /// A backbone from a manifest and the ONNX bytes (from a bundle), checked against each other.
    pub fn from_parts(manifest: ModelManifest, onnx: Vec<u8>, origin: String) -> Result<Self> {
        Self::checked(manifest, std::borrow::Cow::Owned(onnx), origin)
    }

    /// The embedded default for `None`, else the manifest at the path.
    pub fn load(manifest: Option<&Path>) -> Result<Self> {
        match manifest {
            None => Self::embedded_default(),
            Some(p) => Self::from_manifest(p),
        }
    }

    fn checked(manifest: ModelManifest, onnx: std::borrow::Cow<'static, [u8]>, origin: String) -> Result<Self> {
        manifest.validate().map_err(|why| Error::Model { model: origin.clone(), reason: why.into() })?;
        let digest = sha256(&onnx);
        if digest != manifest.sha256 {
            return Err(Error::Model {
                model: origin,
                reason: format!(
                    "{} has sha256 {} but the manifest expects {}",
                    manifest.file,
                    hex(&digest),
                    hex(&manifest.sha256)
                ),
            });
        }
        Ok(Self { manifest, onnx, origin, precision: Precision::F32 })
    }
}
