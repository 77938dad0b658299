//! Model manifests: TOML description + ONNX file → postcard manifest with the file's sha256.

use std::path::Path;

use anyhow::{bail, Context, Result};
use edge_ad_calib::{ColourOrder, LevelSpec, ModelManifest, Name, Normalisation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    file: String,
    input_name: String,
    input_side: u32,
    colour_order: SpecColour,
    normalisation: SpecNorm,
    licence: String,
    levels: Vec<SpecLevel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum SpecColour {
    Rgb,
    Bgr,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SpecNorm {
    UnitRangeInGraph,
    MeanStd { mean: [f32; 3], std: [f32; 3] },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecLevel {
    output: String,
    stride: u32,
    channels: u32,
}

fn bounded(spec: &Path, what: &str, s: &str) -> Result<Name> {
    Name::try_from(s).map_err(|_| anyhow::anyhow!("{}: {what} {s:?} is longer than 64 bytes", spec.display()))
}

/// Reads `spec`, hashes the ONNX file it names (relative to the spec's folder) and writes the
/// manifest to `out` atomically (temporary file, then rename).
pub fn write_manifest(spec: &Path, out: &Path) -> Result<()> {
    let text = std::fs::read_to_string(spec).with_context(|| format!("{}: cannot read", spec.display()))?;
    let s: Spec =
        toml::from_str(&text).with_context(|| format!("{}: not a valid model description", spec.display()))?;
    let onnx_path = spec.parent().unwrap_or(Path::new(".")).join(&s.file);
    let onnx =
        std::fs::read(&onnx_path).with_context(|| format!("{}: cannot read the model file", onnx_path.display()))?;
    let mut levels = heapless::Vec::new();
    for l in &s.levels {
        let level = LevelSpec { output: bounded(spec, "output", &l.output)?, stride: l.stride, channels: l.channels };
        if levels.push(level).is_err() {
            bail!("{}: more than 8 levels", spec.display());
        }
    }
    let manifest = ModelManifest {
        name: bounded(spec, "name", &s.name)?,
        file: bounded(spec, "file", &s.file)?,
        sha256: Sha256::digest(&onnx).into(),
        input_name: bounded(spec, "input_name", &s.input_name)?,
        input_side: s.input_side,
        colour_order: match s.colour_order {
            SpecColour::Rgb => ColourOrder::Rgb,
            SpecColour::Bgr => ColourOrder::Bgr,
        },
        normalisation: match s.normalisation {
            SpecNorm::UnitRangeInGraph => Normalisation::UnitRangeInGraph,
            SpecNorm::MeanStd { mean, std } => Normalisation::MeanStd { mean, std },
        },
        levels,
        licence: bounded(spec, "licence", &s.licence)?,
    };
    if let Err(why) = manifest.validate() {
        bail!("{}: {why}", spec.display());
    }
    let bytes = edge_ad_calib::encode(&manifest).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    edge_ad_core::files::write_atomic(out, &bytes)?;
    Ok(())
}
