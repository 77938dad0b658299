//! `edge-ad-host`: the companion host tool. This build writes model manifests; pretraining,
//! export and bundles follow (issue 3).

use edge_ad_host::manifest;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Manifest { spec, out } => manifest::write_manifest(&spec, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge-ad-host: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
