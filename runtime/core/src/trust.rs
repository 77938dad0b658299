//! Who may decide the box's verdicts: Ed25519 signatures on the files that do.
//!
//! A bundle is signed by the host tool's key (`edge-ad-host keygen`, `bundle --key`); a box trusts
//! the public keys in its keys folder. A site calibration is signed by the box's own key, made at
//! its first calibration or start and kept readable by its user only (0600). Each signature is a
//! detached file beside the one it signs, `<file>.sig`: `EDSG`, a version byte, the signer's
//! public key (32 bytes) and the signature (64 bytes) over a context string and the whole file.
//! CRCs and sha256 digests inside the formats catch corruption; only a signature catches an
//! edit, since anyone can recompute a digest.

use std::io::Read;
use std::path::{Path, PathBuf};

use ed25519_dalek::Signer;
pub use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"EDSG";
const VERSION: u8 = 1;
const SIG_LEN: usize = 4 + 1 + 32 + 64;

/// What a signature vouches for: a signature made for one kind is never valid for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signed {
    /// A flashing bundle from the host tool.
    Bundle,
    /// A site calibration made on the box.
    Calibration,
}

impl Signed {
    fn context(self) -> &'static [u8] {
        match self {
            Self::Bundle => b"edge-ad bundle v1\0",
            Self::Calibration => b"edge-ad site calibration v1\0",
        }
    }
}

/// The signature file of `path`: `<path>.sig`.
pub fn signature_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".sig");
    PathBuf::from(p)
}

/// The detached signature of `bytes` (a file of kind `what`) by `key`.
pub fn sign(key: &SigningKey, what: Signed, bytes: &[u8]) -> Vec<u8> {
    let signature = key.sign(&[what.context(), bytes].concat());
    [&MAGIC[..], &[VERSION], key.verifying_key().as_bytes(), &signature.to_bytes()].concat()
}

/// Signs the file written at `path` with `key` and writes `<path>.sig` (atomically).
pub fn sign_file(key: &SigningKey, what: Signed, path: &Path, bytes: &[u8]) -> Result<()> {
    crate::files::write_atomic(&signature_path(path), &sign(key, what, bytes))
}

/// Which signatures a reader accepts.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// Public keys whose signatures are accepted.
    pub keys: Vec<VerifyingKey>,
    /// Accept a file without a signature (development). A file that has one must still verify.
    pub allow_unsigned: bool,
}

impl Trust {
    /// Accepts unsigned files and checks no key: for the engineering tools (`run`, `eval`), never
    /// for the box on the line.
    pub fn development() -> Self {
        Self { keys: Vec::new(), allow_unsigned: true }
    }

    /// Checks `bytes`, read from `path`, against `<path>.sig`. Errors name the file.
    pub fn check(&self, what: Signed, path: &Path, bytes: &[u8]) -> Result<()> {
        let sig_path = signature_path(path);
        let sig = match std::fs::symlink_metadata(&sig_path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.allow_unsigned {
                    return Ok(());
                }
                return Err(Error::bad_file(
                    path,
                    format!("unsigned: no {} beside it, and this box accepts only signed files", sig_path.display()),
                ));
            }
            _ => crate::files::read_capped(&sig_path, 4096)?,
        };
        if self.allow_unsigned && self.keys.is_empty() {
            return Ok(());
        }
        let bad = |why: &str| Error::bad_file(path, format!("signature {}: {why}", sig_path.display()));
        if sig.len() != SIG_LEN || &sig[..4] != MAGIC || sig[4] != VERSION {
            return Err(bad("not an edge-ad signature"));
        }
        let key_bytes: [u8; 32] = sig[5..37].try_into().map_err(|_| bad("truncated"))?;
        let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| bad("not a public key"))?;
        if !self.keys.contains(&key) {
            return Err(bad(&format!("made by key {}, which this box does not trust", crate::model::hex(&key_bytes))));
        }
        let signature = ed25519_dalek::Signature::from_slice(&sig[37..]).map_err(|_| bad("malformed"))?;
        key.verify_strict(&[what.context(), bytes].concat(), &signature)
            .map_err(|_| bad("does not match the file: it was altered after signing"))
    }
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    if t.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A public key's text form, as `.pub` files hold it (64 hex digits).
pub fn public_key_text(key: &VerifyingKey) -> String {
    format!("{}\n", crate::model::hex(key.as_bytes()))
}

/// Reads the trusted public keys: a `.pub` file, or every `*.pub` in a folder.
pub fn read_public_keys(path: &Path) -> Result<Vec<VerifyingKey>> {
    let files = if path.is_dir() {
        let mut f: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pub"))
            .collect();
        f.sort();
        f
    } else {
        vec![path.to_path_buf()]
    };
    files
        .iter()
        .map(|f| {
            let text = crate::files::read_text_capped(f, 1024)?;
            let bytes = unhex(&text).ok_or_else(|| Error::bad_file(f, "not a public key (64 hex digits)"))?;
            VerifyingKey::from_bytes(&bytes).map_err(|_| Error::bad_file(f, "not an Ed25519 public key"))
        })
        .collect()
}

/// Reads a signing key (64 hex digits). It must be readable by its owner only.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::bad_file(
            path,
            format!("a signing key must be private (mode 0600), it is {:o}", mode & 0o777),
        ));
    }
    let text = crate::files::read_text_capped(path, 1024)?;
    let bytes = unhex(&text).ok_or_else(|| Error::bad_file(path, "not a signing key (64 hex digits)"))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// A new signing key at `path` (mode 0600, never replacing one), from the OS's random source.
pub fn create_signing_key(path: &Path) -> Result<SigningKey> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut r| r.read_exact(&mut seed))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    let key = SigningKey::from_bytes(&seed);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(crate::model::hex(&seed).as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(path, e))?;
    Ok(key)
}

/// The signing key at `path`, made there first if there is none.
pub fn signing_key(path: &Path) -> Result<SigningKey> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_signing_key(path),
        _ => read_signing_key(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_file_verifies_and_any_edit_or_other_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = signing_key(&dir.path().join("keys/box.key")).unwrap();
        let again = signing_key(&dir.path().join("keys/box.key")).unwrap();
        assert_eq!(key.to_bytes(), again.to_bytes(), "made once, then read");
        let file = dir.path().join("site.calib");
        std::fs::write(&file, b"calibration bytes").unwrap();
        sign_file(&key, Signed::Calibration, &file, b"calibration bytes").unwrap();
        let trust = Trust { keys: vec![key.verifying_key()], allow_unsigned: false };
        trust.check(Signed::Calibration, &file, b"calibration bytes").unwrap();
        let e = trust.check(Signed::Calibration, &file, b"calibration bytez").unwrap_err().to_string();
        assert!(e.contains("site.calib") && e.contains("altered"), "{e}");
        let e = trust.check(Signed::Bundle, &file, b"calibration bytes").unwrap_err().to_string();
        assert!(e.contains("altered"), "a calibration's signature is no bundle's: {e}");
        let stranger = create_signing_key(&dir.path().join("other.key")).unwrap();
        sign_file(&stranger, Signed::Calibration, &file, b"calibration bytes").unwrap();
        let e = trust.check(Signed::Calibration, &file, b"calibration bytes").unwrap_err().to_string();
        assert!(e.contains("does not trust"), "{e}");
        std::fs::remove_file(signature_path(&file)).unwrap();
        let e = trust.check(Signed::Calibration, &file, b"calibration bytes").unwrap_err().to_string();
        assert!(e.contains("unsigned"), "{e}");
        Trust::development().check(Signed::Calibration, &file, b"calibration bytes").unwrap();
    }

    #[test]
    fn keys_are_private_and_public_keys_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.key");
        let key = create_signing_key(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(create_signing_key(&path).is_err(), "never replaces a key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_signing_key(&path).unwrap_err().to_string().contains("private"));
        let keys = dir.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(keys.join("host.pub"), public_key_text(&key.verifying_key())).unwrap();
        std::fs::write(keys.join("notes.txt"), "skipped").unwrap();
        assert_eq!(read_public_keys(&keys).unwrap(), vec![key.verifying_key()]);
        std::fs::write(keys.join("bad.pub"), "xyz").unwrap();
        assert!(read_public_keys(&keys).unwrap_err().to_string().contains("bad.pub"));
    }
}
