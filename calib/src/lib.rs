//! Formats shared by the edge-ad box and its host tool.
//!
//! Every file starts with a fixed 16-byte [`Header`] (magic, format version, payload kind, payload
//! length, CRC-32 of the payload) followed by a postcard payload. [`encode`] writes one, [`decode`]
//! reads one and rejects anything that is not exactly what was asked for: wrong magic, another
//! version or kind, a short or overlong file, a bad checksum, or a payload that does not parse.
//! Nothing here panics on input bytes.
//!
//! The crate is `no_std` + `alloc` so an MCU I/O board can share the types; the `defmt` feature
//! derives `defmt::Format` on them.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod bundle;
mod header;
mod manifest;
mod site;

pub use bundle::{Bundle, BundleFile, FileDigest, LevelRadius, ModelCalibration};
pub use header::{decode, encode, FormatError, Header, Payload, PayloadKind, FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use manifest::{ColourOrder, LevelSpec, ModelIdentity, ModelManifest, Name, Normalisation};
pub use site::{ImageScore, Photometry, ReferenceLevel, ScoreStats, ScorerKind, SiteCalibration, Threshold};
