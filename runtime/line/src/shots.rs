//! The operator's set-up step (`edge-ad calibrate --config`): K good parts captured from the
//! box's own source, one per trigger (or per Enter), each kept as PNG beside the calibration.

use std::path::Path;
use std::sync::mpsc::channel;

use image::RgbImage;

use crate::config::{BoxConfig, TriggerConfig};
use crate::error::{Error, Result};
use crate::trigger::{self, Signal};

/// Captures `shots` frames from the configured source for a calibration, one per trigger (or per
/// line on standard input with `keys`), and saves each as PNG in `keep_dir`. `announce` is told
/// when the box waits for a shot and when it has one.
pub fn capture_shots(
    config: &BoxConfig,
    shots: usize,
    keys: bool,
    keep_dir: &Path,
    announce: &dyn Fn(&str),
) -> Result<Vec<(String, RgbImage)>> {
    std::fs::create_dir_all(keep_dir).map_err(|e| Error::io(keep_dir, e))?;
    let mut source = crate::sources::open_source(&config.source)?;
    let (tx, rx) = channel::<Signal>();
    let trigger = if keys { TriggerConfig::Stdin } else { config.trigger.clone() };
    let external = trigger::spawn(&trigger, tx, |s| s)?;
    let mut taken = Vec::new();
    for i in 1..=shots {
        if external {
            announce(&format!("shot {i}/{shots}: show a good part, then trigger"));
            loop {
                match rx.recv() {
                    Ok(Signal::Trigger) => break,
                    Ok(Signal::Acknowledge) => continue,
                    Ok(Signal::Closed) | Err(_) => {
                        return Err(Error::Trigger(format!("the input closed after {} of {shots} shots", i - 1)))
                    }
                }
            }
        }
        let frame = match source.next_frame() {
            Some(frame) => frame?,
            None => {
                let reason = format!("ran out after {} of {shots} shots", i - 1);
                return Err(edge_ad_core::Error::Source { name: "the frame source".into(), reason }.into());
            }
        };
        let name = format!("shot-{i:02}.png");
        let file = keep_dir.join(&name);
        edge_ad_core::files::write_atomic(&file, &crate::overlay::png(&frame.image)?)?;
        announce(&format!("shot {i}/{shots}: {} → {}", frame.name, file.display()));
        taken.push((name, frame.image));
    }
    Ok(taken)
}
