//! The NG archive: NG frames (and a sample of OK frames) saved with their overlay as PNG and a
//! JSON sidecar, by a writer thread so a slow disk never delays a verdict. Offers beyond the
//! queue are dropped and counted. Writes are atomic; the folder is kept within a disk budget by
//! deleting the oldest parts first.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use image::RgbImage;

use crate::config::ArchiveConfig;
use crate::error::{Error, Result};
use edge_ad_core::files::write_atomic;

/// One part to keep.
pub struct Entry {
    /// File stem, unique and sorting by time (e.g. `20261130T101500.123Z-000042-NG`).
    pub stem: String,
    /// The overlay (or the frame).
    pub image: RgbImage,
    /// The sidecar's content.
    pub sidecar: Sidecar,
}

/// What the JSON sidecar beside an archived part says.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Sidecar {
    /// The part (handshake id).
    pub part: u32,
    /// The frame's name.
    pub frame: String,
    /// `OK` or `NG`.
    pub verdict: &'static str,
    /// The image score.
    pub score: Option<f32>,
    /// The threshold it was held against.
    pub threshold: f32,
    /// When it was kept.
    pub time_unix_ms: u64,
}

/// The archive's writer thread and its queue.
pub struct Archive {
    queue: Option<SyncSender<Entry>>,
    dropped: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Archive {
    /// Creates the folder if needed and starts the writer.
    pub fn start(config: &ArchiveConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.dir).map_err(|e| Error::io(&config.dir, e))?;
        let budget = config.budget_mib.saturating_mul(1 << 20);
        let mut kept = Kept::scan(&config.dir, budget)?;
        let (tx, rx) = sync_channel::<Entry>(config.queue);
        let written = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let thread = {
            let (written, dropped) = (written.clone(), dropped.clone());
            std::thread::Builder::new()
                .name("archive".into())
                .spawn(move || {
                    for entry in rx {
                        match kept.write(&entry) {
                            Ok(()) => {
                                written.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                // Not kept (a full disk, a part over the budget): counted as dropped.
                                dropped.fetch_add(1, Ordering::Relaxed);
                                tracing::error!("archive: {e}");
                            }
                        }
                    }
                })
                .map_err(|source| Error::Thread { name: "archive".into(), source })?
        };
        Ok(Self { queue: Some(tx), dropped, written, thread: Some(thread) })
    }

    /// Queues `entry` without waiting; `false` (and counted) when the writer is behind.
    pub fn offer(&self, entry: Entry) -> bool {
        // Full (the writer is behind) or disconnected (it stopped): dropped either way.
        let queued = self.queue.as_ref().is_some_and(|q| q.try_send(entry).is_ok());
        if !queued {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    /// The dropped-entries count, shared (to read it after the archive moved to another thread).
    pub fn dropped_handle(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// Entries dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Entries written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Writes what is queued, then stops the writer.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.queue.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Archive {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The parts on disk, oldest first, with their sizes, and the budget they must fit.
struct Kept {
    dir: PathBuf,
    budget: u64,
    parts: VecDeque<(String, u64)>,
    total: u64,
    /// How a file is written ([`write_atomic`]; tests put a full disk here).
    put: fn(&Path, &[u8]) -> Result<()>,
}

/// The names of the regular files (not links or folders) directly in `dir` that `keep` accepts,
/// sorted; none when the folder cannot be read.
pub fn file_names(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| keep(n))
                .collect()
        })
        .unwrap_or_default();
    names.sort_unstable();
    names
}

/// The newest `n` NG part images in the archive folder `dir`, newest first (stems sort by time).
pub fn newest_ng(dir: &Path, n: usize) -> Vec<String> {
    let mut names = file_names(dir, |n| n.ends_with("-NG.png"));
    names.reverse();
    names.truncate(n);
    names
}

/// Whether `e` is a full disk.
fn is_full(e: &Error) -> bool {
    matches!(e, Error::Core(edge_ad_core::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::StorageFull)
}

impl Kept {
    /// Reads what an earlier run left (PNG + JSON pairs by stem), oldest (smallest stem) first.
    fn scan(dir: &Path, budget: u64) -> Result<Self> {
        let mut sizes = std::collections::BTreeMap::<String, u64>::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let path = entry.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext != "png" && ext != "json" {
                continue;
            }
            let stem = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            *sizes.entry(stem).or_default() += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
        let total = sizes.values().sum();
        let put = |path: &Path, bytes: &[u8]| write_atomic(path, bytes).map_err(Error::from);
        Ok(Self { dir: dir.to_path_buf(), budget, parts: sizes.into_iter().collect(), total, put })
    }

    /// Deletes the oldest part; `false` when there is none.
    fn drop_oldest(&mut self) -> bool {
        let Some((stem, bytes)) = self.parts.pop_front() else { return false };
        for ext in ["png", "json"] {
            let _ = std::fs::remove_file(self.dir.join(format!("{stem}.{ext}")));
        }
        self.total = self.total.saturating_sub(bytes);
        true
    }

    /// Writes a part's PNG, then its sidecar (a PNG without a sidecar is an unfinished part,
    /// never the reverse); a failed sidecar takes its PNG with it.
    fn put_pair(&self, stem: &str, png: &[u8], json: &[u8]) -> Result<()> {
        let png_path = self.dir.join(format!("{stem}.png"));
        (self.put)(&png_path, png)?;
        (self.put)(&self.dir.join(format!("{stem}.json")), json).inspect_err(|_| {
            let _ = std::fs::remove_file(&png_path);
        })
    }

    fn write(&mut self, entry: &Entry) -> Result<()> {
        let png = crate::overlay::png(&entry.image)?;
        let json = serde_json::to_vec_pretty(&entry.sidecar)
            .map_err(|e| Error::Encode { what: "sidecar", reason: e.to_string() })?;
        let size = (png.len() + json.len()) as u64;
        // Room first, so the folder never exceeds the budget (a part larger than the budget is refused).
        if size > self.budget {
            return Err(Error::bad_file(
                &self.dir,
                format!("{}: one part ({size} bytes) exceeds the budget", entry.stem),
            ));
        }
        while self.total + size > self.budget && self.drop_oldest() {}
        // A disk smaller than the budget fills first: then the oldest parts make room too.
        loop {
            match self.put_pair(&entry.stem, &png, &json) {
                Err(e) if is_full(&e) && self.drop_oldest() => continue,
                other => other?,
            }
            break;
        }
        self.parts.push_back((entry.stem.clone(), size));
        self.total += size;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> Entry {
        // Noise so the PNG does not compress away: about 12 kB each.
        let image = RgbImage::from_fn(64, 64, |x, y| {
            let h = (x * 2654435761 + y * 40503 + i as u32 * 97).wrapping_mul(2246822519);
            image::Rgb([(h >> 24) as u8, (h >> 16) as u8, (h >> 8) as u8])
        });
        Entry {
            stem: format!("part-{i:04}"),
            image,
            sidecar: Sidecar {
                part: i as u32,
                frame: format!("{i}.png"),
                verdict: "NG",
                score: Some(1.0),
                threshold: 0.5,
                time_unix_ms: 0,
            },
        }
    }

    #[test]
    fn parts_are_written_in_pairs_and_the_oldest_go_when_the_budget_is_full() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("part-0000.png"), vec![0u8; 30_000]).unwrap();
        std::fs::write(dir.path().join("part-0000.json"), b"{}").unwrap();
        let config = ArchiveConfig { dir: dir.path().to_path_buf(), budget_mib: 1, ok_every: 0, queue: 64 };
        let mut archive = Archive::start(&config).unwrap();
        let budget = 1 << 20;
        for i in 1..=120 {
            assert!(archive.offer(entry(i)) || archive.dropped() > 0);
            if i % 30 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
        let dropped = archive.dropped();
        archive.stop();
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap()).collect();
        let total: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
        assert!(total <= budget, "{total} bytes over the budget");
        let names: std::collections::BTreeSet<String> =
            files.iter().map(|f| f.file_name().to_string_lossy().into_owned()).collect();
        assert!(!names.contains("part-0000.png"), "the oldest (from an earlier run) went first");
        assert!(names.contains("part-0120.png") && names.contains("part-0120.json"), "the newest is kept");
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "no temporaries left");
        let pngs = names.iter().filter(|n| n.ends_with(".png")).count();
        assert_eq!(pngs * 2, names.len(), "every PNG has its sidecar");
        assert_eq!(archive.written() + dropped, 120);
    }

    /// A disk of 60 kB: a write that would take the folder past it fails with ENOSPC.
    fn small_disk(path: &Path, bytes: &[u8]) -> Result<()> {
        let used: u64 =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
        if used + bytes.len() as u64 > 60_000 {
            return Err(Error::io(path, std::io::Error::from(std::io::ErrorKind::StorageFull)));
        }
        write_atomic(path, bytes).map_err(Error::from)
    }

    #[test]
    fn a_disk_smaller_than_the_budget_makes_room_by_deleting_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let mut kept = Kept::scan(dir.path(), 1 << 30).unwrap();
        kept.put = small_disk;
        for i in 0..12 {
            kept.write(&entry(i)).unwrap_or_else(|e| panic!("part {i}: {e}"));
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"part-0011.png".to_string()) && !names.contains(&"part-0000.png".to_string()));
        assert_eq!(names.len() % 2, 0, "PNG and sidecar in pairs: {names:?}");
        // A part that cannot fit even in an empty folder is an error (and counted as dropped).
        let huge = Entry {
            image: RgbImage::from_fn(256, 256, |x, y| {
                image::Rgb([((x * 31) ^ (y * 17)) as u8, (x * y) as u8, (x + y) as u8])
            }),
            ..entry(99)
        };
        assert!(kept.write(&huge).is_err_and(|e| is_full(&e)));
        assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("0099")));
    }

    #[test]
    fn a_full_queue_drops_instead_of_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let config = ArchiveConfig { dir: dir.path().to_path_buf(), budget_mib: 64, ok_every: 0, queue: 1 };
        let archive = Archive::start(&config).unwrap();
        let accepted = (0..50).filter(|&i| archive.offer(entry(i))).count();
        assert_eq!(accepted as u64 + archive.dropped(), 50);
        assert!(archive.dropped() > 0, "a blocking offer would have dropped nothing");
    }

    #[test]
    fn only_plain_ng_names_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["0001-00000001-NG.png", "0002-00000002-NG.png", "0003-00000003-OK.png", "0002-00000002-NG.json"] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("0009-dir-NG.png")).unwrap();
        let listed = newest_ng(dir.path(), 12);
        assert_eq!(listed, ["0002-00000002-NG.png", "0001-00000001-NG.png"]);
        assert_eq!(newest_ng(dir.path(), 1), ["0002-00000002-NG.png"]);
    }
}
