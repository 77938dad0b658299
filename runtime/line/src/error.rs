//! The line's error type: every variant names the device, file or key at fault.

use std::path::PathBuf;

/// What went wrong on the line, and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The frame path (a model, a calibration, an image, a setting), and files: a file that
    /// cannot be read or written, or whose content (box.toml, the counters) is wrong, is the
    /// frame path's [`edge_ad_core::Error::Io`] or [`edge_ad_core::Error::BadFile`].
    #[error(transparent)]
    Core(#[from] edge_ad_core::Error),
    /// The camera cannot be opened or has stopped delivering.
    #[error("camera {}: {reason}", device.display())]
    Camera {
        /// The video device.
        device: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A GPIO chip or line cannot be requested or read.
    #[error("GPIO chip {}: {reason}", chip.display())]
    Gpio {
        /// The chip's device.
        chip: PathBuf,
        /// What failed, naming the line.
        reason: String,
    },
    /// An output line to the PLC cannot be driven.
    #[error("plc: {0}")]
    Plc(String),
    /// The trigger input ended or cannot be used.
    #[error("trigger: {0}")]
    Trigger(String),
    /// The plant network side cannot start (a Modbus port that cannot be listened on).
    #[error("{0}")]
    Plant(String),
    /// A teach from the operator's page cannot go on (too few or too many shots).
    #[error("teach: {0}")]
    Teach(String),
    /// A thread of the service cannot be started.
    #[error("cannot start thread {name}: {source}")]
    Thread {
        /// The thread's name.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record, sidecar or image cannot be encoded.
    #[error("{what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Core(edge_ad_core::Error::io(path, source))
    }

    /// A content error on `path` (the reason names the key where there is one).
    pub fn bad_file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Self::Core(edge_ad_core::Error::bad_file(path, reason))
    }

    /// A pin error while driving the PLC's lines.
    pub fn plc(e: impl std::fmt::Display) -> Self {
        Self::Plc(e.to_string())
    }
}

/// The line's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
