//! The frame path's error type: every variant names the file, setting or stage at fault.

use std::path::PathBuf;

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file's content is wrong (not an image, a corrupt calibration, a mismatched mask...).
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The model graph could not be loaded or run.
    #[error("model {model}: {reason}")]
    Model {
        /// The model's name or file.
        model: String,
        /// What failed.
        reason: String,
    },
    /// A setting that cannot be used (a working side the model cannot take, a sensitivity of
    /// zero, fewer than 2 shots...).
    #[error("{0}")]
    Setting(String),
    /// A site calibration that cannot be made from these shots, or does not fit this model.
    #[error("{0}")]
    Calibration(String),
    /// A frame source (a camera) stopped delivering frames.
    #[error("{name}: {reason}")]
    Source {
        /// The source, e.g. `camera /dev/video0`.
        name: String,
        /// What failed.
        reason: String,
    },
    /// A stage of the frame path failed on this input (a resize, a singular covariance...).
    #[error("{stage}: {reason}")]
    Stage {
        /// The stage.
        stage: &'static str,
        /// What failed.
        reason: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// A content error on `path`.
    pub fn bad_file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Self::BadFile { path: path.into(), reason: reason.to_string() }
    }
}

/// The frame path's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
