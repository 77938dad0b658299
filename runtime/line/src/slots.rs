//! A/B model slots: `edge-ad install` puts a new bundle into the slot the box is not running,
//! checks it there, and switches a symlink; `edge-ad rollback` switches back. A power cut at any
//! point leaves `current` on a slot with a whole, checked bundle.
//!
//! Layout (box.toml: `model.bundle = "<root>/current/model.bundle"`):
//!
//! ```text
//! <root>/a/model.bundle (+ .sig)    one slot
//! <root>/b/model.bundle (+ .sig)    the other
//! <root>/current -> a               what the box runs (a relative symlink)
//! <root>/previous -> b              what `rollback` returns to
//! ```
//!
//! Every step is atomic on its own: files go through [`write_atomic`] (temporary, fsync, rename,
//! folder fsync), links are made under a temporary name and renamed over the old one, and the
//! folder is fsync'd after each rename. The inactive slot is the only thing written before the
//! switch, so a cut before it leaves the old slot current, and a cut after it the new one.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use edge_ad_core::files::write_atomic;

use crate::config::BoxConfig;
use crate::error::{Error, Result};

/// The two slots' names.
const SLOTS: [&str; 2] = ["a", "b"];

/// The steps of an install, in order (a test cuts the install after any of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The inactive slot was emptied.
    Cleared,
    /// The bundle (and its signature) are in the inactive slot.
    Copied,
    /// The copy in the slot was checked.
    Checked,
    /// `previous` names the slot being left.
    Remembered,
    /// `current` names the new slot.
    Switched,
}

/// A box's model slots, from its configuration.
pub struct Slots {
    root: PathBuf,
    file: std::ffi::OsString,
}

impl Slots {
    /// The slots `config`'s `model.bundle` lives in (`<root>/current/<file>`).
    pub fn of(config: &BoxConfig, config_path: &Path) -> Result<Self> {
        let bundle = config.model.bundle.as_deref().ok_or_else(|| {
            Error::bad_file(config_path, "model.bundle is not set: installs go to <root>/current/model.bundle")
        })?;
        let (Some(link), Some(file)) = (bundle.parent(), bundle.file_name()) else {
            return Err(Error::bad_file(config_path, "model.bundle must be <root>/current/<file>"));
        };
        if link.file_name().is_none_or(|n| n != "current") {
            return Err(Error::bad_file(
                config_path,
                format!(
                    "model.bundle {} is not in a slot link named current (<root>/current/<file>)",
                    bundle.display()
                ),
            ));
        }
        if let Ok(meta) = std::fs::symlink_metadata(link) {
            if !meta.file_type().is_symlink() {
                return Err(Error::bad_file(
                    link,
                    "is not a symlink to a slot: move the bundle into <root>/a and link current to a",
                ));
            }
        }
        let root = link.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok(Self { root, file: file.to_os_string() })
    }

    fn link(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The slot a link names (`None`: no link yet, or not one of ours).
    fn target(&self, name: &str) -> Option<&'static str> {
        let t = std::fs::read_link(self.link(name)).ok()?;
        SLOTS.into_iter().find(|s| t == Path::new(s))
    }

    /// The slot the box runs.
    pub fn current(&self) -> Option<&'static str> {
        self.target("current")
    }

    /// The slot `rollback` returns to.
    pub fn previous(&self) -> Option<&'static str> {
        self.target("previous")
    }

    /// The bundle path inside `slot`.
    pub fn bundle_in(&self, slot: &str) -> PathBuf {
        self.root.join(slot).join(&self.file)
    }

    /// Points link `name` at `slot`: a temporary link renamed over it, then a folder fsync.
    fn point(&self, name: &str, slot: &str) -> Result<()> {
        let tmp = self.link(&format!(".{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(slot, &tmp).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, self.link(name)).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(self.link(name), e)
        })?;
        std::fs::File::open(&self.root).and_then(|d| d.sync_all()).map_err(|e| Error::io(&self.root, e))
    }

    /// Installs the bundle at `source` (with `<source>.sig` when there is one) into the slot the
    /// box is not running and switches to it. `check` is run on the copy in the slot before the
    /// switch (signature, digests, that the model runs); `after` hears each step done and may
    /// stop the install there. Returns the slot switched to.
    pub fn install(
        &self,
        source: &Path,
        check: &dyn Fn(&Path) -> Result<()>,
        after: &mut dyn FnMut(Step) -> ControlFlow<()>,
    ) -> Result<Option<&'static str>> {
        let active = self.current();
        let slot = if active == Some("a") { "b" } else { "a" };
        let dir = self.root.join(slot);
        std::fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))?;
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&dir, e)),
            _ => {}
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        if after(Step::Cleared).is_break() {
            return Ok(None);
        }
        let bytes = edge_ad_core::files::read_capped(source, edge_ad_core::files::caps::MODEL)?;
        let sig = edge_ad_core::trust::signature_path(source);
        let target = self.bundle_in(slot);
        if sig.exists() {
            let sig_bytes = edge_ad_core::files::read_capped(&sig, 4096)?;
            write_atomic(&edge_ad_core::trust::signature_path(&target), &sig_bytes)?;
        }
        write_atomic(&target, &bytes)?;
        if after(Step::Copied).is_break() {
            return Ok(None);
        }
        check(&target)?;
        if after(Step::Checked).is_break() {
            return Ok(None);
        }
        if let Some(old) = active {
            self.point("previous", old)?;
        }
        if after(Step::Remembered).is_break() {
            return Ok(None);
        }
        self.point("current", slot)?;
        let _ = after(Step::Switched);
        Ok(Some(slot))
    }

    /// Switches `current` back to `previous` (and `previous` to the slot left). Returns the slot
    /// now current.
    pub fn rollback(&self) -> Result<&'static str> {
        let (Some(back), current) = (self.previous(), self.current()) else {
            return Err(Error::bad_file(self.link("previous"), "no previous slot to roll back to"));
        };
        if !self.bundle_in(back).is_file() {
            return Err(Error::bad_file(self.bundle_in(back), "the previous slot holds no bundle"));
        }
        self.point("current", back)?;
        if let Some(left) = current {
            self.point("previous", left)?;
        }
        Ok(back)
    }
}

/// What `install` checks on the copy in the slot before switching: the signature (by a key the
/// box trusts, unless `trust.allow_unsigned`), every file's digest, and that the model compiles
/// and runs: the backbone and projector on a reference frame (a fixed colour gradient) give
/// finite features at every level.
pub fn check_bundle(config: &BoxConfig, bundle: &Path) -> Result<()> {
    use edge_ad_core::setup::{ModelSetup, ProjectorChoice};
    let setup = ModelSetup {
        bundle: Some(bundle.to_path_buf()),
        manifest: None,
        projector: ProjectorChoice::Default,
        ..config.setup()?
    };
    let station = setup.open()?;
    let side = station.manifest.input_side;
    let projector = station.projector(side)?;
    let mut extractor = edge_ad_core::pipeline::Extractor::new(&station, side, side)?;
    let frame = image::RgbImage::from_fn(side, side, |x, y| {
        image::Rgb([(x * 255 / side) as u8, (y * 255 / side) as u8, ((x + y) * 127 / side) as u8])
    });
    let mut maps = extractor.features(&frame)?;
    for (level, map) in maps.iter_mut().enumerate() {
        projector.project(level, map)?;
        if map.data.is_empty() || map.data.iter().any(|v| !v.is_finite()) {
            return Err(Error::bad_file(
                bundle,
                format!("level {level} gives non-finite features on the reference frame"),
            ));
        }
    }
    Ok(())
}
