//! The frame source a configuration names: the camera, or a folder or list of files replayed
//! (for commissioning and tests).

use edge_ad_core::source::{self, FileSource, FrameSource};

use crate::config::SourceConfig;
use crate::error::{Error, Result};

/// Opens the frame source `config` names.
pub fn open_source(config: &SourceConfig) -> Result<Box<dyn FrameSource + Send>> {
    match config {
        #[cfg(target_os = "linux")]
        SourceConfig::Camera(c) => Ok(Box::new(crate::linux::camera::Camera::open(c)?)),
        #[cfg(not(target_os = "linux"))]
        SourceConfig::Camera(c) => {
            Err(Error::Camera { device: c.device.clone(), reason: "a V4L2 camera needs Linux".into() })
        }
        SourceConfig::Folder { path, repeat } => {
            let files = source::image_files(path)?;
            Ok(Box::new(FileSource::from_files(files).repeating(*repeat)))
        }
        SourceConfig::Files { paths, repeat } => {
            // A missing file is refused at start, not at its trigger.
            if let Some(p) = paths.iter().find(|p| !p.is_file()) {
                return Err(Error::bad_file(p, "source.paths names a file that does not exist"));
            }
            Ok(Box::new(FileSource::from_files(paths.clone()).repeating(*repeat)))
        }
    }
}
