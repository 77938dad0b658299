//! Every flag of `edge-ad`, declared once: groups shared by the verbs are flattened where they
//! apply.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use edge_ad_core::decision;
use edge_ad_core::formats::{ImageScore, ScorerKind};
use edge_ad_core::precision::PrecisionChoice;
use edge_ad_core::setup::{ModelSetup, Station};

/// Inline anomaly detection: calibrate from a few good parts, then OK/NG every part.
#[derive(Parser)]
#[command(name = "edge-ad", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub model: ModelArgs,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The model the verbs that score run (`serve` reads its own from box.toml).
#[derive(Args, Clone, Default)]
pub struct ModelArgs {
    /// Backbone manifest (postcard, see models/); default: the embedded EfficientNet-Lite0.
    /// (box.toml: model.manifest; `--model` is the older spelling.)
    #[arg(long, global = true, value_name = "MANIFEST", alias = "model")]
    pub manifest: Option<PathBuf>,
    /// A bundle from `edge-ad-host bundle`: backbone, projector and model calibration in one
    /// file (instead of --manifest and --projector).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "manifest")]
    pub bundle: Option<PathBuf>,
    /// Projector folder (`<level>.onnx` per backbone level), or `none` for the identity (raw
    /// residuals). Default: the bundle's projector with --bundle; the embedded default projector
    /// with the default backbone; else the identity.
    #[arg(long, global = true, value_name = "PATH|none")]
    pub projector: Option<PathBuf>,
    /// Sensitivity: the threshold is divided by it (above 1 flags more parts, below 1 fewer).
    /// Calibrating stores it (default 1); scoring overrides the calibration's.
    #[arg(long, global = true)]
    pub sensitivity: Option<f32>,
    /// Threads for each worker's nearest-neighbour search (default: all cores with one worker,
    /// 1 with several; see --workers).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// The backbone's float precision: `f16` runs its ordinary convolutions in half precision
    /// (native on Arm cores with FP16 arithmetic, emulated and slow elsewhere), `f32` everything in
    /// single precision; `auto` (the default) picks f16 where the CPU has the arithmetic.
    /// (box.toml: model.precision.)
    #[arg(long, global = true, value_name = "auto|f32|f16")]
    pub precision: Option<PrecisionChoice>,
}

impl ModelArgs {
    /// The model setup these flags name.
    pub fn setup(&self) -> ModelSetup {
        // The engineering tools check no signature; `serve` and `calibrate --config` do.
        ModelSetup::spelled(
            self.bundle.as_deref(),
            self.manifest.as_deref(),
            self.projector.as_deref(),
            self.sensitivity,
            self.threads,
        )
        .with_precision(self.precision.unwrap_or_default())
    }

    /// Whether any model flag was given.
    pub fn any(&self) -> bool {
        self.manifest.is_some()
            || self.bundle.is_some()
            || self.projector.is_some()
            || self.sensitivity.is_some()
            || self.threads.is_some()
            || self.precision.is_some()
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Make a site calibration from the first K good images (file-name order), or from K frames
    /// of the box's own source with --config.
    Calibrate(CalibrateArgs),
    /// Score images with a calibration: one record per image (file, score, verdict, threshold, latency).
    Run(RunArgs),
    /// Evaluate on an MVTec AD layout: calibrate on the first K train/good images, score the test set.
    Eval(EvalArgs),
    /// Generate a small dataset of textured parts with painted defects, calibrate on 4 good ones,
    /// score the rest and print verdicts and metrics.
    Demo(DemoArgs),
    /// Run the box on the line as box.toml says: camera, triggers, PLC lines, archive, counters.
    Serve(ServeArgs),
    /// Print the box's counters (triggers, OK, NG, missed, late, errors, latency).
    Status(StatusArgs),
    /// Install a bundle into the model slot the box is not running, check it there (signature,
    /// digests, a reference frame through the model), then switch to it.
    Install(InstallArgs),
    /// Switch back to the model slot the box ran before the last install.
    Rollback(RollbackArgs),
    /// Read a password from standard input (one line) and print its Argon2id hash, for box.toml's
    /// `web.users`.
    HashPassword,
}

/// `--json`.
#[derive(Args, Clone, Copy)]
pub struct JsonArg {
    /// Machine-readable output: JSON (one object per line).
    #[arg(long)]
    pub json: bool,
}

/// `--workers`.
#[derive(Args, Clone, Copy)]
pub struct WorkersArg {
    /// Images scored at once, one per worker thread over the same compiled model (default: one
    /// per core). Output keeps the input order. With several workers each one's
    /// nearest-neighbour search runs on one thread unless --threads says otherwise.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
}

impl WorkersArg {
    /// The worker count, and the search threads of each worker.
    pub fn resolve(&self, model: &ModelArgs, station: &Station) -> (usize, usize) {
        let workers = self.workers.map_or_else(edge_ad_core::workers::default_workers, usize::from);
        let threads = match model.threads {
            None if workers > 1 => 1,
            _ => station.threads(),
        };
        (workers, threads)
    }
}

/// `--shots`.
#[derive(Args, Clone, Copy)]
pub struct ShotsArg {
    /// Good shots K: the first K images in file-name order (train/good for a dataset), or K
    /// frames from the box's source.
    #[arg(long, default_value_t = 4)]
    pub shots: usize,
}

/// `--source`.
#[derive(Args, Clone)]
pub struct SourceArg {
    /// A folder of images (taken in file-name order) or one image; repeatable.
    #[arg(long = "source", value_name = "PATH")]
    pub sources: Vec<PathBuf>,
}

/// `--config` (required by `serve` and `status`, see [`ConfigArg::path`]).
#[derive(Args, Clone)]
pub struct ConfigArg {
    /// The box's configuration (box.toml).
    #[arg(long, value_name = "BOX_TOML")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// The configuration's path, for the verbs where clap requires it.
    pub fn path(&self) -> crate::Result<&std::path::Path> {
        self.config.as_deref().ok_or_else(|| crate::Error::Usage("--config is required".into()))
    }
}

/// `--scorer`.
#[derive(Args, Clone, Copy)]
pub struct ScorerArg {
    /// Scorer: featurenorm (the default when calibrating), patchcore or padim. `run` checks it
    /// against the calibration's.
    #[arg(long, value_parser = parse_scorer)]
    pub scorer: Option<ScorerKind>,
}

/// How a calibration is made (calibrate, eval, demo).
#[derive(Args, Clone)]
pub struct CalibArgs {
    #[command(flatten)]
    pub scorer: ScorerArg,
    /// Standard deviations of the leave-one-out good scores that the threshold stands above
    /// their mean (never below the largest of them).
    #[arg(long, default_value_t = decision::DEFAULT_SPREAD)]
    pub spread: f32,
    /// Relative margin on top of the spread rule.
    #[arg(long, default_value_t = decision::DEFAULT_MARGIN)]
    pub margin: f32,
    /// Score only the shots themselves for the threshold (no gain/shift variations).
    #[arg(long)]
    pub no_augment: bool,
    /// How the anomaly map becomes the image score: `max`, or `top:F`, the mean of the map's
    /// highest share F (0 < F ≤ 1) of pixels.
    #[arg(long, default_value = "top:0.02", value_parser = parse_image_score)]
    pub image_score: ImageScore,
    /// Working side in pixels (default: the model's input side).
    #[arg(long)]
    pub side: Option<u32>,
    /// Shorter image side after resizing, before the centre crop (default: the working side).
    #[arg(long)]
    pub resize: Option<u32>,
}

#[derive(Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub shots: ShotsArg,
    /// Good parts (the first K images over the sources, in order).
    #[command(flatten)]
    pub source: SourceArg,
    /// The box's configuration: capture the shots from its source, one per trigger (or take them
    /// from --source), and write the calibration it names, signed with the box's key (the
    /// operator's set-up step).
    #[command(flatten)]
    pub config: ConfigArg,
    /// With --config: take each shot on Enter (a line on standard input) instead of a trigger.
    #[arg(long, requires = "config")]
    pub keys: bool,
    /// Calibration file to write (default with --config: the configuration's model.calibration).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub calib: CalibArgs,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Args)]
pub struct RunArgs {
    /// Site calibration file (from `edge-ad calibrate`).
    #[arg(long)]
    pub calibration: PathBuf,
    /// Images to score.
    #[command(flatten)]
    pub source: SourceArg,
    #[command(flatten)]
    pub scorer: ScorerArg,
    /// Write each anomaly map as `<image stem>.npy` (float32, 2-D, the image's resolution) here.
    #[arg(long, value_name = "DIR")]
    pub maps: Option<PathBuf>,
    #[command(flatten)]
    pub workers: WorkersArg,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Dataset root in the MVTec AD layout (or one category folder).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Categories to evaluate (default: all).
    #[arg(long = "category", value_name = "NAME")]
    pub categories: Vec<String>,
    #[command(flatten)]
    pub shots: ShotsArg,
    /// Write the evaluation report here: DIR/index.html (per category: the figures, the
    /// calibration, a strip plot of every part's score against the thresholds of sensitivity
    /// 0.8 / calibrated / 1.25, image and pixel ROC with the operating point, the PRO curve, the
    /// worst escapes and false rejects as heatmaps), its images in DIR/img. `--plots` is the
    /// older spelling.
    #[arg(long, value_name = "DIR", alias = "plots")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub workers: WorkersArg,
    #[command(flatten)]
    pub calib: CalibArgs,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Keep the generated dataset in this folder (default: a temporary folder, removed
    /// afterwards). `--out` is the older spelling.
    #[arg(long, value_name = "DIR", alias = "out")]
    pub keep: Option<PathBuf>,
    /// Seed of the generated dataset.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Good test parts per texture.
    #[arg(long, default_value_t = 12)]
    pub test_good: usize,
    /// Defective test parts per defect kind and texture.
    #[arg(long, default_value_t = 4)]
    pub per_defect: usize,
    #[command(flatten)]
    pub shots: ShotsArg,
    /// Generate the pretraining corpus's textures (knit, speckle, brushed) instead of the
    /// evaluation ones (weave, grain, mesh): a validation set for choosing settings such as the
    /// margin without looking at the evaluation parts.
    #[arg(long)]
    pub training_textures: bool,
    #[command(flatten)]
    pub workers: WorkersArg,
    #[command(flatten)]
    pub calib: CalibArgs,
}

#[derive(Args)]
#[command(mut_arg("config", |a| a.required(true)))]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Args)]
#[command(mut_arg("config", |a| a.required(true)))]
pub struct StatusArgs {
    /// The counters file the configuration names is read.
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Args)]
#[command(mut_arg("config", |a| a.required(true)))]
pub struct InstallArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The bundle (from `edge-ad-host bundle --key`; its `.sig` beside it).
    pub bundle: PathBuf,
}

#[derive(Args)]
#[command(mut_arg("config", |a| a.required(true)))]
pub struct RollbackArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

/// A scorer by its name.
fn parse_scorer(s: &str) -> Result<ScorerKind, String> {
    ScorerKind::from_name(s).ok_or_else(|| {
        let names: Vec<_> = ScorerKind::ALL.iter().map(|k| k.name()).collect();
        format!("{s:?}: expected one of {}", names.join(", "))
    })
}

/// The `--image-score` spelling of a rule.
pub fn image_score_name(rule: ImageScore) -> String {
    match rule {
        ImageScore::Max => "max".into(),
        ImageScore::TopMean { fraction } => format!("top:{fraction}"),
    }
}

/// `max` or `top:F` (0 < F ≤ 1), as `--image-score` takes it.
fn parse_image_score(s: &str) -> Result<ImageScore, String> {
    if s == "max" {
        return Ok(ImageScore::Max);
    }
    let fraction = s
        .strip_prefix("top:")
        .and_then(|f| f.parse::<f32>().ok())
        .ok_or_else(|| format!("{s:?}: expected `max` or `top:F` with a share F, e.g. top:0.02"))?;
    let rule = ImageScore::TopMean { fraction };
    if !rule.is_valid() {
        return Err(format!("{s:?}: the share must be above 0 and at most 1"));
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn image_score_and_scorer_spellings_round_trip() {
        for rule in [ImageScore::Max, ImageScore::TopMean { fraction: 0.02 }] {
            assert_eq!(parse_image_score(&image_score_name(rule)), Ok(rule));
        }
        assert!(parse_image_score("top:0").is_err() && parse_image_score("top:1.5").is_err());
        for kind in ScorerKind::ALL {
            assert_eq!(parse_scorer(kind.name()), Ok(kind));
        }
        assert!(parse_scorer("knn").is_err());
    }
}
