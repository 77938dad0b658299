//! `edge-ad-host`: the companion host tool. This build writes model manifests and pretrains the
//! projector on a generated corpus; dataset layouts, export of checkpoints and bundles follow.

use edge_ad_host::manifest;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use burn::prelude::Device;
use clap::{Parser, Subcommand, ValueEnum};
use edge_ad::model::Model;
use edge_ad::pipeline::Extractor;
use edge_ad::progress::bar;
use edge_ad_host::corpus::{self, CorpusSpec};
use edge_ad_host::losses::LossVariant;
use edge_ad_host::onnx_export::export_level;
use edge_ad_host::projector::ProjectorSize;
use edge_ad_host::train::{self, TrainSettings};

/// Companion host tool for edge-ad boxes.
#[derive(Parser)]
#[command(name = "edge-ad-host", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Pretrain the per-level projectors on a generated corpus (textures kept apart from the
    /// demo's evaluation textures, with synthetic scratches, stains and holes) and write
    /// `<level>.onnx` per level into --out, ready for `edge-ad --projector DIR`.
    Pretrain {
        /// Folder to write the projector files into.
        #[arg(long)]
        out: PathBuf,
        /// Epochs.
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Images per step.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Adam learning rate.
        #[arg(long, default_value_t = 1e-4)]
        lr: f64,
        /// Training images per texture (half get a defect).
        #[arg(long, default_value_t = 64)]
        images: usize,
        /// Good reference parts per texture (the K-shot pool).
        #[arg(long, default_value_t = 8)]
        references: usize,
        /// Loss formulation.
        #[arg(long, value_enum, default_value = "official")]
        loss: LossArg,
        /// Projector sizes.
        #[arg(long, value_enum, default_value = "edge")]
        size: SizeArg,
        /// Seed (same seed, same projector).
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LossArg {
    Official,
    Paper,
}

#[derive(Clone, Copy, ValueEnum)]
enum SizeArg {
    Edge,
    Paper,
}

#[allow(clippy::too_many_arguments)]
fn pretrain(
    out: PathBuf,
    epochs: usize,
    batch: usize,
    lr: f64,
    images: usize,
    references: usize,
    loss: LossArg,
    size: SizeArg,
    seed: u64,
) -> anyhow::Result<()> {
    if epochs == 0 || batch == 0 || images < 2 || references == 0 {
        bail!("--epochs, --batch and --references must be positive and --images at least 2");
    }
    let model = Model::embedded_default()?;
    let side = model.manifest.input_side;
    let mut extractor = Extractor::new(&model, side, side)?;
    let textures = edge_ad::synth::TRAINING_TEXTURES;
    let spec = CorpusSpec { references, images, side: 256, seed };
    let started = Instant::now();
    let b = bar(((references + images) * textures.len()) as u64, "features");
    let samples = corpus::synthetic_samples(&mut extractor, &textures, &spec, 2, &|| b.inc(1))?;
    b.finish_and_clear();
    let features_s = started.elapsed().as_secs_f64();
    let sizes: Vec<ProjectorSize> = model
        .manifest
        .levels
        .iter()
        .map(|l| match size {
            SizeArg::Edge => ProjectorSize::edge(l.channels as usize),
            SizeArg::Paper => ProjectorSize::paper(l.channels as usize),
        })
        .collect();
    let settings = TrainSettings {
        epochs,
        batch,
        lr,
        variant: match loss {
            LossArg::Official => LossVariant::Official,
            LossArg::Paper => LossVariant::Paper,
        },
        seed,
        ..Default::default()
    };
    let steps = samples.len().div_ceil(batch) * epochs;
    let b = bar(steps as u64, "train");
    let started = Instant::now();
    let device = Device::flex().autodiff();
    let (projectors, report) = train::train(&samples, &sizes, &settings, &device, &|epoch, _, loss| {
        b.inc(1);
        b.set_message(format!("epoch {epoch} loss {loss:.3}"));
    });
    b.finish_and_clear();
    let train_s = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
    for (level, p) in model.manifest.levels.iter().zip(&projectors.levels) {
        let path = out.join(format!("{}.onnx", level.output));
        edge_ad::output::write_atomic(&path, &export_level(p))?;
    }
    println!(
        "pretrained on {} samples ({} textures) in {:.1} s features + {:.1} s training; loss per epoch {:?}; {} steps skipped",
        samples.len(),
        textures.len(),
        features_s,
        train_s,
        report.epoch_loss.iter().map(|l| (l * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        report.skipped
    );
    for (level, r) in model.manifest.levels.iter().zip(&report.radius) {
        println!(
            "  {}: r_max {:.3}, normal a mean {:.3} max {:.3}, anomalous a min {:.3}",
            level.output, r.r_max, r.normal_mean, r.normal_max, r.anomalous_min
        );
    }
    println!("wrote {}", out.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Manifest { spec, out } => manifest::write_manifest(&spec, &out),
        Command::Pretrain { out, epochs, batch, lr, images, references, loss, size, seed } => {
            pretrain(out, epochs, batch, lr, images, references, loss, size, seed)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge-ad-host: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
