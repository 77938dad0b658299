//! How the box reads and writes files, in one place: every file is read with a size cap (and
//! must be a regular file, so a FIFO, a folder or `/dev/zero` named where a file belongs is an
//! error, never a hang or an unbounded read), and every file is written atomically and durably
//! (a uniquely named temporary beside it, fsync, rename, fsync of the folder), so a crash or a
//! power cut leaves the old file or the new one, never a mix or a stray temporary.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Size caps of the files the box reads.
pub mod caps {
    /// An image file (a 8192² RGB PNG of noise is about 200 MB).
    pub const IMAGE: u64 = 256 << 20;
    /// A site calibration (16 shots at a 448 working side is about 40 MB).
    pub const CALIBRATION: u64 = 128 << 20;
    /// A backbone or projector ONNX file, or a bundle holding them.
    pub const MODEL: u64 = 512 << 20;
    /// Small text and record files: box.toml, manifests, counters, model calibrations.
    pub const SMALL: u64 = 4 << 20;
}

/// Reads `path` whole if it is a regular file of at most `cap` bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::bad_file(path, "not a regular file"));
    }
    if meta.len() > cap {
        return Err(Error::bad_file(
            path,
            format!("{} bytes, more than the {cap}-byte limit for this file", meta.len()),
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow between the check and the read: never read past the cap.
    file.take(cap + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(Error::bad_file(path, format!("grew past the {cap}-byte limit while being read")));
    }
    Ok(bytes)
}

/// Reads `path` as UTF-8 text (a regular file of at most `cap` bytes).
pub fn read_text_capped(path: &Path, cap: u64) -> Result<String> {
    String::from_utf8(read_capped(path, cap)?).map_err(|_| Error::bad_file(path, "not UTF-8 text"))
}

/// Writes `bytes` to `path` atomically and durably: a temporary beside it with a name unique to
/// this process and call, fsync, rename over `path`, fsync of the folder. On failure neither a
/// half-written file nor the temporary is left, and `path` keeps its old content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}-{}.tmp", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    // The rename is durable once the folder is; a folder that cannot be opened (some
    // filesystems) leaves the file written, only its durability across a power cut unproven.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_capped_and_only_of_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.bin");
        std::fs::write(&f, vec![7u8; 100]).unwrap();
        assert_eq!(read_capped(&f, 100).unwrap().len(), 100);
        let e = read_capped(&f, 99).unwrap_err().to_string();
        assert!(e.contains("a.bin") && e.contains("limit"), "{e}");
        let e = read_capped(dir.path(), 1 << 20).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = read_capped(Path::new("/dev/zero"), 1 << 20).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("not a regular file"), "{e}");
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(read_text_capped(&f, 10).unwrap_err().to_string().contains("not UTF-8"));
    }

    #[test]
    fn atomic_writes_replace_whole_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.calib");
        write_atomic(&f, b"first").unwrap();
        write_atomic(&f, b"second").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // Into a folder that does not exist: an error naming the file, and nothing written.
        let e = write_atomic(&dir.path().join("no/such/x"), b"x").unwrap_err().to_string();
        assert!(e.contains("no/such/x"), "{e}");
    }
}
