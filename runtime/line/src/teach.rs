//! Teaching from the operator's page: good shots taken from the box's own source between parts
//! into a folder beside the calibration (`<calibration>.teach/`), a new calibration made from
//! them off the frame path (`<calibration>.new`, signed with the box's key as `calibrate
//! --config` signs), and its promotion once the worker has loaded and checked it. The old
//! calibration scores every part until then; a candidate that fails leaves it in force.

use std::path::{Path, PathBuf};

use edge_ad_core::calibrate::{self, CalibrationSettings};
use edge_ad_core::pipeline::Extractor;
use image::RgbImage;

use crate::config::BoxConfig;
use crate::error::{Error, Result};

/// Shots a teach keeps at most (calibration cost grows with each).
pub const MAX_SHOTS: usize = 16;
/// Shots a calibration needs at least (each is scored against the others).
pub const MIN_SHOTS: usize = 2;

fn beside(calibration: &Path, suffix: &str) -> PathBuf {
    let mut p = calibration.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// The folder the page's shots go to.
pub fn folder(calibration: &Path) -> PathBuf {
    beside(calibration, ".teach")
}

/// The candidate calibration made from them.
pub fn candidate(calibration: &Path) -> PathBuf {
    beside(calibration, ".new")
}

/// The shots in `dir`, in the order they were taken (`shot-NN.png`).
pub fn shot_names(dir: &Path) -> Vec<String> {
    crate::archive::file_names(dir, |n| n.starts_with("shot-") && n.ends_with(".png"))
}

/// The name for the next shot in `dir`: one past the highest number there and past `after` (a
/// shot still being written), so a name is never reused within a teach; with its number.
pub fn next_shot(dir: &Path, after: u32) -> Result<(String, u32)> {
    let taken = shot_names(dir);
    if taken.len() >= MAX_SHOTS {
        return Err(Error::Teach(format!("{MAX_SHOTS} shots are taken already: apply them or start over")));
    }
    let highest = taken.iter().filter_map(|n| n[5..n.len() - 4].parse::<u32>().ok()).max().unwrap_or(0);
    let next = highest.max(after) + 1;
    Ok((format!("shot-{next:02}.png"), next))
}

/// Writes `image` as the shot `name` in `dir` (PNG, atomically).
pub fn write_shot(dir: &Path, name: &str, image: &RgbImage) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    edge_ad_core::files::write_atomic(&dir.join(name), &crate::overlay::png(image)?)?;
    Ok(())
}

/// Removes the shots in `dir` (start over).
pub fn clear(dir: &Path) -> Result<()> {
    for name in shot_names(dir) {
        let p = dir.join(name);
        std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

/// Makes a calibration from the shots in the teach folder for the model `config` runs, with the
/// settings of the calibration in force (its working side, scorer, image score and threshold
/// rule; the defaults when there is none), and writes it signed as the candidate. Slow (the
/// model is compiled for it and every shot goes through the backbone): off the frame path.
pub fn make_candidate(config: &BoxConfig) -> Result<PathBuf> {
    let in_force = &config.model.calibration;
    let shots_dir = folder(in_force);
    let names = shot_names(&shots_dir);
    if names.len() < MIN_SHOTS {
        return Err(Error::Teach(format!("take at least {MIN_SHOTS} shots first ({} taken)", names.len())));
    }
    let files: Vec<PathBuf> = names.iter().map(|n| shots_dir.join(n)).collect();
    let shots = edge_ad_core::source::load_named(&files)?;
    let station = config.setup()?.open()?;
    let current = edge_ad_core::files::read_capped(in_force, edge_ad_core::files::caps::CALIBRATION)
        .ok()
        .and_then(|bytes| calibrate::decode_calibration(in_force, &bytes).ok());
    let mut settings = CalibrationSettings {
        sensitivity: config.model.sensitivity.unwrap_or(1.0),
        threads: station.threads(),
        ..CalibrationSettings::default()
    };
    let (mut side, mut resize) = (station.manifest.input_side, station.manifest.input_side);
    if let Some(c) = &current {
        settings.scorer = c.scorer;
        settings.image_score = c.image_score;
        settings.spread = c.threshold.spread;
        settings.margin = c.threshold.margin;
        (side, resize) = (c.working_side, c.resize_side);
    }
    let projector = station.projector(side)?;
    let mut extractor = Extractor::new(&station, resize, side)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let made = calibrate::calibrate(
        &mut extractor,
        projector.clone(),
        station.identity(&projector),
        &shots,
        &settings,
        now,
        &|_| {},
    )?;
    let out = candidate(in_force);
    let bytes = edge_ad_core::formats::encode(&made).map_err(|e| edge_ad_core::Error::bad_file(&out, e))?;
    edge_ad_core::trust::sign_file(&config.box_signing_key()?, edge_ad_core::trust::Signed::Calibration, &out, &bytes)?;
    edge_ad_core::files::write_atomic(&out, &bytes)?;
    Ok(out)
}

/// Puts the candidate in force on disk: its signature first, then the calibration (a box that
/// restarts in between refuses the pair, safely, as for `calibrate --config`), and the teach
/// folder becomes the calibration's kept shots (`<calibration>.shots`).
pub fn promote(calibration: &Path) -> Result<()> {
    let new = candidate(calibration);
    let rename = |from: &Path, to: &Path| std::fs::rename(from, to).map_err(|e| Error::io(from, e));
    rename(&edge_ad_core::trust::signature_path(&new), &edge_ad_core::trust::signature_path(calibration))?;
    rename(&new, calibration)?;
    let (taught, kept) = (folder(calibration), beside(calibration, ".shots"));
    if kept.is_dir() {
        std::fs::remove_dir_all(&kept).map_err(|e| Error::io(&kept, e))?;
    }
    rename(&taught, &kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shot as the worker takes one with none in flight: named, then written; its name.
    fn save_shot(dir: &Path, image: &RgbImage) -> Result<String> {
        let (name, _) = next_shot(dir, 0)?;
        write_shot(dir, &name, image)?;
        Ok(name)
    }

    #[test]
    fn shots_are_numbered_past_the_highest_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let teach = folder(&dir.path().join("site.calib"));
        assert!(shot_names(&teach).is_empty(), "no folder: no shots");
        let image = RgbImage::new(8, 8);
        assert_eq!(save_shot(&teach, &image).unwrap(), "shot-01.png");
        assert_eq!(save_shot(&teach, &image).unwrap(), "shot-02.png");
        std::fs::remove_file(teach.join("shot-01.png")).unwrap();
        std::fs::write(teach.join("notes.txt"), b"x").unwrap();
        assert_eq!(save_shot(&teach, &image).unwrap(), "shot-03.png");
        assert_eq!(shot_names(&teach), ["shot-02.png", "shot-03.png"]);
        while shot_names(&teach).len() < MAX_SHOTS {
            save_shot(&teach, &image).unwrap();
        }
        assert!(save_shot(&teach, &image).is_err(), "more than {MAX_SHOTS}");
        assert_eq!(
            next_shot(&folder(&dir.path().join("other.calib")), 7).unwrap().0,
            "shot-08.png",
            "after one in flight"
        );
        clear(&teach).unwrap();
        assert!(shot_names(&teach).is_empty());
        assert!(teach.join("notes.txt").exists(), "only shots are cleared");
    }

    #[test]
    fn promotion_moves_signature_calibration_and_shots() {
        let dir = tempfile::tempdir().unwrap();
        let calib = dir.path().join("site.calib");
        std::fs::write(&calib, b"old").unwrap();
        std::fs::write(edge_ad_core::trust::signature_path(&calib), b"old sig").unwrap();
        std::fs::create_dir(beside(&calib, ".shots")).unwrap();
        std::fs::write(beside(&calib, ".shots").join("shot-01.png"), b"old shot").unwrap();
        let new = candidate(&calib);
        std::fs::write(&new, b"new").unwrap();
        std::fs::write(edge_ad_core::trust::signature_path(&new), b"new sig").unwrap();
        save_shot(&folder(&calib), &RgbImage::new(4, 4)).unwrap();
        promote(&calib).unwrap();
        assert_eq!(std::fs::read(&calib).unwrap(), b"new");
        assert_eq!(std::fs::read(edge_ad_core::trust::signature_path(&calib)).unwrap(), b"new sig");
        assert!(!new.exists() && !folder(&calib).exists());
        assert_ne!(std::fs::read(beside(&calib, ".shots").join("shot-01.png")).unwrap(), b"old shot");
        assert!(promote(&calib).is_err(), "no candidate: an error, the calibration stays");
        assert_eq!(std::fs::read(&calib).unwrap(), b"new");
    }
}
