//! `edge-ad-host`: the companion host tool. It writes model manifests, pretrains the projector on
//! a generated corpus or a dataset (with checkpoints and resume), exports it, and packs bundles.

use edge_ad_host::{bundle, manifest};

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use burn::prelude::Device;
use clap::{Parser, Subcommand, ValueEnum};
use edge_ad_core::model::Model;
use edge_ad_core::pipeline::Extractor;
use edge_ad_eval::progress::bar;
use edge_ad_host::corpus::{self, CorpusSpec, DataSpec};
use edge_ad_host::datasets::{self, Layout};
use edge_ad_host::losses::LossVariant;
use edge_ad_host::onnx_export::export_level;
use edge_ad_host::projector::{ProjectorSize, SizeRule};
use edge_ad_host::train::{self, TrainSettings};

/// Companion host tool for edge-ad boxes.
#[derive(Parser)]
#[command(name = "edge-ad-host", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--manifest`, as `edge-ad` and box.toml (`model.manifest`) name it.
#[derive(clap::Args)]
struct ManifestArg {
    /// Backbone manifest (default: the embedded EfficientNet-Lite0); `--backbone` is the older
    /// spelling.
    #[arg(long = "manifest", value_name = "MANIFEST", alias = "backbone")]
    manifest: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Write a backbone manifest (postcard) from its TOML description and the ONNX file beside it.
    Manifest {
        /// TOML description of the model (see models/effnet_lite0_feat.toml).
        #[arg(long)]
        spec: PathBuf,
        /// Manifest file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Export a checkpoint (from `pretrain --checkpoint`) as `<level>.onnx` per level and
    /// `model.calib`, as pretrain writes them.
    Export {
        /// The checkpoint folder.
        #[arg(long, value_name = "DIR")]
        checkpoint: PathBuf,
        /// The backbone the checkpoint was trained on.
        #[command(flatten)]
        backbone: ManifestArg,
        /// Folder to write into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Pack a backbone and, optionally, a pretrained projector folder (with its model.calib) into
    /// one bundle for flashing boxes: `edge-ad --bundle FILE`, or `model.bundle` in box.toml.
    Bundle {
        #[command(flatten)]
        backbone: ManifestArg,
        /// Projector folder from `pretrain` (`<level>.onnx` per level, `model.calib`).
        #[arg(long, value_name = "DIR")]
        projector: Option<PathBuf>,
        /// Bundle file to write.
        #[arg(long)]
        out: PathBuf,
        /// Sign the bundle with this key (from `keygen`): writes `<out>.sig`, which boxes that
        /// trust the key's `.pub` require.
        #[arg(long, value_name = "KEY")]
        key: Option<PathBuf>,
    },
    /// Make a signing key (mode 0600) and its public half `<out>.pub`, for boxes' `trust.keys`.
    Keygen {
        /// The key file to write (never replaces one).
        #[arg(long)]
        out: PathBuf,
    },
    /// Pretrain the per-level projectors and write `<level>.onnx` per level into --out, ready for
    /// `edge-ad --projector DIR`. The data: a dataset (--data, --layout), or by default a generated
    /// corpus (textures kept apart from the demo's evaluation textures, with painted defects).
    Pretrain(PretrainArgs),
}

#[derive(clap::Args)]
struct PretrainArgs {
    /// Folder to write the projector files into.
    #[arg(long)]
    out: PathBuf,
    /// Dataset root (default: the generated corpus).
    #[arg(long, requires = "layout")]
    data: Option<PathBuf>,
    /// The dataset's layout.
    #[arg(long, value_enum, requires = "data")]
    layout: Option<Layout>,
    /// Train on the dataset's normal images only, half of them with a synthetic anomaly
    /// (cut-paste, noise-shaped foreign-texture blend, scratch); no defect image is read.
    #[arg(long, requires = "data")]
    synthetic_anomalies: bool,
    #[command(flatten)]
    backbone: ManifestArg,
    /// Keep the residual features here, so a second run on the same data and settings does not
    /// rerun the backbone.
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Where to train.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// Write a checkpoint (safetensors weights + checkpoint.json) here after every epoch.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint in --checkpoint up to --epochs.
    #[arg(long, requires = "checkpoint")]
    resume: bool,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Adam learning rate (the official code's: 1e-4).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Training images per texture of the generated corpus (half get a defect), or at most this
    /// many per class of a dataset.
    #[arg(long, default_value_t = 256)]
    images: usize,
    /// Good reference parts per texture of the generated corpus (the K-shot pool).
    #[arg(long, default_value_t = 8)]
    references: usize,
    /// The bank sizes K each training sample's references are drawn with, one picked at random
    /// per sample (ADPretrain's 1, 4 and 8 by default; the box calibrates with 4).
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_BANK_SIZES)]
    bank_sizes: Vec<usize>,
    /// Loss formulation.
    #[arg(long, value_enum, default_value = "official")]
    loss: LossVariant,
    /// λ, the angle-oriented contrastive loss's weight against the norm loss (1 in the paper and
    /// the official code; 0, the default, trains with the norm loss alone, which measured better
    /// here: see the README's ablation).
    #[arg(long, default_value_t = 0.0)]
    angle_weight: f32,
    /// Projector sizes.
    #[arg(long, value_enum, default_value = "edge")]
    size: SizeRule,
    /// Feed the raw residuals to the projector, unscaled (by default each level's inputs are
    /// scaled so the median normal residual has norm 1, the losses' scale).
    #[arg(long)]
    raw_inputs: bool,
    /// Initialise every layer at random, as the official code (by default the projector starts
    /// as the identity on its scaled inputs).
    #[arg(long)]
    random_start: bool,
    /// How patches are labelled: `margin` leaves out cells that touch a defect without being
    /// anomalous; `official` is the released code's rules.
    #[arg(long, value_enum, default_value = "margin")]
    labels: train::LabelRule,
    /// Seed (same seed, same projector).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Working side the features are made at (default: the backbone's input side, 224 for the
    /// default). The box's accurate setting runs at 336 (README, *The working side*).
    #[arg(long)]
    side: Option<u32>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum DeviceArg {
    Cpu,
    Cuda,
}

fn device(d: DeviceArg) -> anyhow::Result<Device> {
    match d {
        DeviceArg::Cpu => Ok(edge_ad_host::device::cpu()),
        DeviceArg::Cuda => edge_ad_host::device::cuda(),
    }
}

/// `--bank-sizes`' default: a cache key leaves it out, so caches made before the flag stay valid.
const DEFAULT_BANK_SIZES: [usize; 3] = [1, 4, 8];

/// The cache key of a run's samples: everything they depend on.
fn cache_key(model: &Model, a: &PretrainArgs, classes: &[datasets::Class]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"edge-ad-host samples v2");
    h.update(model.manifest.sha256);
    h.update(format!("{:?}|{}|{}|{}|{}", a.data, a.synthetic_anomalies, a.images, a.references, a.seed));
    // A side other than the backbone's own changes every feature (older caches stay valid).
    if let Some(side) = a.side.filter(|s| *s != model.manifest.input_side) {
        h.update(format!("|side {side}"));
    }
    if a.bank_sizes != DEFAULT_BANK_SIZES {
        h.update(format!("|banks {:?}", a.bank_sizes));
    }
    for c in classes {
        h.update(c.name.as_bytes());
        for item in &c.items {
            h.update(item.image.to_string_lossy().as_bytes());
            h.update(std::fs::metadata(&item.image).map(|m| m.len()).unwrap_or(0).to_le_bytes());
        }
    }
    h.finalize().into()
}

fn pretrain(a: PretrainArgs) -> anyhow::Result<()> {
    let PretrainArgs { epochs, batch, lr, images, references, loss, size, seed, .. } = a;
    if epochs == 0 || batch == 0 || images < 2 || references == 0 {
        bail!("--epochs, --batch and --references must be positive and --images at least 2");
    }
    if a.bank_sizes.is_empty() || a.bank_sizes.iter().any(|k| !(1..=64).contains(k)) {
        bail!("--bank-sizes must list bank sizes from 1 to 64, such as 1,4,8");
    }
    if !a.angle_weight.is_finite() || a.angle_weight < 0.0 || !(lr.is_finite() && lr > 0.0) {
        bail!("--angle-weight must be 0 or more and --lr positive");
    }
    let device = device(a.device)?;
    let model = Model::load(a.backbone.manifest.as_deref())?;
    let side = a.side.unwrap_or(model.manifest.input_side);
    let mut extractor = Extractor::new(&model, side, side)?;
    let classes = match (&a.data, a.layout) {
        (Some(root), Some(layout)) => datasets::load(root, layout)?,
        _ => Vec::new(),
    };
    let key = cache_key(&model, &a, &classes);
    let cache_file = a.cache.as_ref().map(|d| d.join(format!("samples-{}.bin", edge_ad_core::model::hex(&key[..8]))));
    let started = Instant::now();
    let cached = cache_file.as_deref().and_then(|f| corpus::read_cache(f, &key));
    let from_cache = cached.is_some();
    let (samples, source) = match cached {
        Some(s) => (s, "cache".to_string()),
        None if classes.is_empty() => {
            let textures = edge_ad_eval::synth::TRAINING_TEXTURES;
            let spec = CorpusSpec { references, images, side: 256, bank_sizes: &a.bank_sizes, seed };
            let b = bar(((references + images) * textures.len()) as u64, "features");
            let s = corpus::synthetic_samples(&mut extractor, &textures, &spec, 2, &|| b.inc(1))?;
            b.finish_and_clear();
            (s, format!("{} generated textures", textures.len()))
        }
        None => {
            let spec =
                DataSpec { per_class: images, synthetic: a.synthetic_anomalies, bank_sizes: &a.bank_sizes, seed };
            let total: usize = classes.iter().map(|c| c.items.len().min(images)).sum();
            let b = bar(total as u64, "features");
            let s = corpus::dataset_samples(&mut extractor, &classes, &spec, 2, &|| b.inc(1))?;
            b.finish_and_clear();
            (s, format!("{} classes", classes.len()))
        }
    };
    if let (Some(file), false) = (&cache_file, from_cache) {
        corpus::write_cache(file, &key, &samples)?;
    }
    let features_s = started.elapsed().as_secs_f64();
    let out = a.out;
    let sizes: Vec<ProjectorSize> =
        model.manifest.levels.iter().map(|l| size.for_channels(l.channels as usize)).collect();
    let settings = TrainSettings {
        epochs,
        batch,
        lr,
        variant: loss,
        scale_inputs: !a.raw_inputs,
        identity_start: !a.random_start,
        angle_weight: a.angle_weight,
        labels: a.labels,
        seed,
        ..Default::default()
    };
    let steps = samples.len().div_ceil(batch) * epochs;
    let b = bar(steps as u64, "train");
    let started = Instant::now();
    let resume = match (&a.checkpoint, a.resume) {
        (Some(dir), true) => {
            let (projectors, state) = train::checkpoint::load(dir, &device)?;
            if state.backbone != edge_ad_core::model::hex(&model.manifest.sha256) || state.sizes != sizes {
                bail!("{}: the checkpoint was made for another backbone or projector size", dir.display());
            }
            if state.epochs_done >= epochs {
                bail!("{}: already {} epochs; ask for more with --epochs", dir.display(), state.epochs_done);
            }
            b.inc((samples.len().div_ceil(batch) * state.epochs_done) as u64);
            Some(train::Resume { projectors, epochs_done: state.epochs_done, report: state.report })
        }
        _ => None,
    };
    let state = |epochs_done: usize, p: &train::Projectors, report: &train::TrainReport| train::checkpoint::State {
        epochs_done,
        input_scales: p.levels.iter().map(|l| l.input_scale).collect(),
        sizes: sizes.clone(),
        variant: settings.variant,
        samples: samples.len(),
        seed,
        backbone: edge_ad_core::model::hex(&model.manifest.sha256),
        report: report.clone(),
    };
    let mut save_checkpoint = |done: usize, p: &train::Projectors, r: &train::TrainReport| match &a.checkpoint {
        Some(dir) => train::checkpoint::save(dir, p, &state(done, p, r)),
        None => Ok(()),
    };
    let (projectors, report) =
        train::train(&samples, &sizes, &settings, &device, resume, &mut save_checkpoint, &|epoch, _, loss| {
            b.inc(1);
            b.set_message(format!("epoch {epoch} loss {loss:.3}"));
        })?;
    b.finish_and_clear();
    let train_s = started.elapsed().as_secs_f64();
    let loss_name = loss.name();
    write_projector(&out, &model, &projectors, &report, loss_name, samples.len(), epochs, seed)?;
    println!(
        "pretrained on {} samples ({source}) in {:.1} s features{} + {:.1} s training; loss per epoch {:?}; {} steps skipped",
        samples.len(),
        features_s,
        if from_cache { " (from the cache)" } else { "" },
        train_s,
        report.epoch_loss.iter().map(|l| (l * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        report.skipped
    );
    for (l, (level, r)) in model.manifest.levels.iter().zip(&report.radius).enumerate() {
        let separation = match report.separation.get(l).copied().flatten() {
            Some(s) => format!("; training patch AUROC of the norm {:.4} raw → {:.4} projected", s.raw, s.projected),
            None => String::new(),
        };
        println!(
            "  {}: r_max {:.3}, normal a mean {:.3} max {:.3}, anomalous a min {:.3}{separation}",
            level.output, r.r_max, r.normal_mean, r.normal_max, r.anomalous_min
        );
    }
    println!("wrote {}", out.display());
    Ok(())
}

/// Writes `<level>.onnx` per level and `model.calib` into `out`.
#[allow(clippy::too_many_arguments)]
fn write_projector(
    out: &Path,
    model: &Model,
    projectors: &train::Projectors,
    report: &train::TrainReport,
    loss: &str,
    samples: usize,
    epochs: usize,
    seed: u64,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let mut files = Vec::new();
    for (level, p) in model.manifest.levels.iter().zip(&projectors.levels) {
        let file = edge_ad_core::projector::Projector::file_name(level);
        let bytes = export_level(p);
        edge_ad_core::files::write_atomic(&out.join(&file), &bytes)?;
        files.push((file, bytes));
    }
    let calibration = bundle::model_calibration(model, &files, &report.radius, loss, samples, epochs, seed)?;
    let calib_path = out.join(bundle::MODEL_CALIBRATION);
    let bytes = edge_ad_calib::encode(&calibration).map_err(|e| anyhow::anyhow!("{}: {e}", calib_path.display()))?;
    edge_ad_core::files::write_atomic(&calib_path, &bytes)?;
    Ok(())
}

fn export(checkpoint: PathBuf, backbone: Option<PathBuf>, out: PathBuf) -> anyhow::Result<()> {
    let model = Model::load(backbone.as_deref())?;
    let device = Device::flex();
    let (projectors, state) = train::checkpoint::load(&checkpoint, &device)?;
    if state.backbone != edge_ad_core::model::hex(&model.manifest.sha256) {
        bail!("{}: trained on another backbone than {}", checkpoint.display(), model.origin);
    }
    if state.sizes.len() != model.manifest.levels.len() {
        bail!(
            "{}: {} levels, the backbone has {}",
            checkpoint.display(),
            state.sizes.len(),
            model.manifest.levels.len()
        );
    }
    let loss = match state.variant {
        LossVariant::Official => "official",
        LossVariant::Paper => "paper",
    };
    write_projector(&out, &model, &projectors, &state.report, loss, state.samples, state.epochs_done, state.seed)?;
    println!("exported {} ({} epochs) to {}", checkpoint.display(), state.epochs_done, out.display());
    Ok(())
}

fn write_bundle(
    backbone: Option<PathBuf>,
    projector: Option<PathBuf>,
    out: PathBuf,
    key: Option<PathBuf>,
) -> anyhow::Result<()> {
    let model = Model::load(backbone.as_deref())?;
    let key = key.map(|k| edge_ad_core::trust::read_signing_key(&k)).transpose()?;
    let bundle = bundle::make_bundle(&model, projector.as_deref())?;
    let bytes = edge_ad_calib::encode(&bundle).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    if let Some(key) = &key {
        edge_ad_core::trust::sign_file(key, edge_ad_core::trust::Signed::Bundle, &out, &bytes)?;
    }
    edge_ad_core::files::write_atomic(&out, &bytes)?;
    println!(
        "wrote {} ({} files, {:.1} MB, {})",
        out.display(),
        bundle.files.len(),
        bytes.len() as f64 / 1e6,
        if bundle.calibration.is_some() { "with the model calibration" } else { "no model calibration" }
    );
    if key.is_some() {
        println!("signed: {}", edge_ad_core::trust::signature_path(&out).display());
    }
    Ok(())
}

fn keygen(out: PathBuf) -> anyhow::Result<()> {
    let key = edge_ad_core::trust::create_signing_key(&out)?;
    let mut public = out.as_os_str().to_owned();
    public.push(".pub");
    let public = PathBuf::from(public);
    edge_ad_core::files::write_atomic(&public, edge_ad_core::trust::public_key_text(&key.verifying_key()).as_bytes())?;
    println!("wrote {} (keep it private) and {} (copy it into each box's trust.keys)", out.display(), public.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Manifest { spec, out } => manifest::write_manifest(&spec, &out),
        Command::Pretrain(a) => pretrain(a),
        Command::Bundle { backbone, projector, out, key } => write_bundle(backbone.manifest, projector, out, key),
        Command::Keygen { out } => keygen(out),
        Command::Export { checkpoint, backbone, out } => export(checkpoint, backbone.manifest, out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge-ad-host: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
