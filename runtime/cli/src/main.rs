//! `edge-ad`: the inspection box's command line. It parses ([`args`]), resolves the model
//! setup once, and dispatches to a verb; nothing here computes on images itself.

mod args;
mod calibrate;
mod evaluate;
mod line;
mod run;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// What a verb can fail with: the frame path's errors, or the line's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The frame path: models, calibrations, images, settings.
    #[error(transparent)]
    Core(#[from] edge_ad_core::Error),
    /// The box on the line: box.toml, devices, records.
    #[error(transparent)]
    Line(#[from] edge_ad_line::Error),
    /// A flag combination that cannot run.
    #[error("{0}")]
    Usage(String),
}

/// A verb's result: its exit code.
pub type Result<T = ExitCode> = std::result::Result<T, Error>;

/// A build for x86-64-v3 (`cargo box-x86-64-v3`) on a CPU without AVX2 and FMA would die on an
/// illegal instruction somewhere in the frame path; it stops here first, saying why.
fn cpu_lacks() -> Option<&'static str> {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
    if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")) {
        return Some(
            "this edge-ad was built for x86-64-v3 (AVX2 and FMA) and this CPU lacks them: install the portable build",
        );
    }
    None
}

/// Rust ignores SIGPIPE, so a verb printing into a closed pipe (`edge-ad status | head -1`) would
/// panic on its next line. Every verb but `serve` gets the default back and ends quietly, as
/// other command-line tools do; `serve` keeps it ignored, since a peer closing a socket must not
/// kill the box, and handles the write errors itself.
#[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
fn quiet_on_closed_pipe(command: &Command) {
    #[cfg(target_os = "linux")]
    if !matches!(command, Command::Serve(_)) {
        // SAFETY: called first thing in main, before any thread exists; it only resets a signal
        // disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}

fn main() -> ExitCode {
    if let Some(why) = cpu_lacks() {
        eprintln!("edge-ad: error: {why}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    quiet_on_closed_pipe(&cli.command);
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    // Colours only on a terminal: logs captured to a file or the journal stay plain text.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .init();
    let result = match cli.command {
        Command::Serve(a) if !cli.model.any() => line::serve(a),
        Command::Status(a) if !cli.model.any() => line::status(a),
        Command::Install(a) if !cli.model.any() => line::install(a),
        Command::Rollback(a) if !cli.model.any() => line::rollback(a),
        Command::HashPassword if !cli.model.any() => line::hash_password(),
        Command::Serve(_) | Command::Status(_) | Command::Install(_) | Command::Rollback(_) | Command::HashPassword => {
            Err(Error::Usage(
                "serve, status, install, rollback and hash-password take no model flags (box.toml names the model)"
                    .into(),
            ))
        }
        Command::Calibrate(a) => calibrate::calibrate(&cli.model, a),
        Command::Run(a) => run::run(&cli.model, a),
        Command::Eval(a) => evaluate::eval(&cli.model, a),
        Command::Demo(a) => evaluate::demo(&cli.model, a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edge-ad: error: {e}");
            ExitCode::FAILURE
        }
    }
}
