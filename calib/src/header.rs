//! The fixed file header and the checked encode/decode of a payload behind it.

use alloc::vec::Vec;
use core::fmt;
use serde::{de::DeserializeOwned, Serialize};

/// First four bytes of every edge-ad file.
pub const MAGIC: [u8; 4] = *b"EDAD";
/// Version of the header and of the payload layouts in this crate that have not changed since
/// (manifest, model calibration, bundle). A kind whose layout changes gets its own
/// [`Payload::VERSION`]; a reader refuses every other version of a kind rather than guess.
pub const FORMAT_VERSION: u16 = 1;
/// Size of [`Header`] on disk.
pub const HEADER_LEN: usize = 16;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// What a file holds, so a calibration is never read as a manifest or the other way round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum PayloadKind {
    /// A backbone's [`crate::ModelManifest`].
    ModelManifest = 1,
    /// A box's [`crate::SiteCalibration`] (K-shot bank and threshold).
    SiteCalibration = 2,
    /// The host's model calibration (projector statistics); reserved for the host tool.
    ModelCalibration = 3,
    /// A flashing bundle; reserved for the host tool.
    Bundle = 4,
}

impl PayloadKind {
    /// The kind for a header byte, if it is one this version knows.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::ModelManifest),
            2 => Some(Self::SiteCalibration),
            3 => Some(Self::ModelCalibration),
            4 => Some(Self::Bundle),
            _ => None,
        }
    }

    /// A short human name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::ModelManifest => "model manifest",
            Self::SiteCalibration => "site calibration",
            Self::ModelCalibration => "model calibration",
            Self::Bundle => "bundle",
        }
    }
}

/// A type that is stored as the payload of one kind of file.
pub trait Payload: Serialize + DeserializeOwned {
    /// The header kind of files holding this type.
    const KIND: PayloadKind;
    /// The layout version files of this kind are written and read with.
    const VERSION: u16 = FORMAT_VERSION;
}

/// The 16-byte header: magic, version (u16 LE), kind (u8), a zero byte, payload length (u32 LE),
/// CRC-32/ISO-HDLC of the payload (u32 LE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// Format version the file was written with.
    pub version: u16,
    /// Payload kind byte (see [`PayloadKind`]).
    pub kind: u8,
    /// Payload length in bytes.
    pub payload_len: u32,
    /// CRC-32 of the payload bytes.
    pub crc32: u32,
}

impl Header {
    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&self.version.to_le_bytes());
        out[6] = self.kind;
        out[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.crc32.to_le_bytes());
        out
    }

    /// Parses the first [`HEADER_LEN`] bytes; checks only the magic and the length of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() < HEADER_LEN {
            return Err(FormatError::Truncated { needed: HEADER_LEN, got: bytes.len() });
        }
        let mut magic = [0u8; 4];
        magic.copy_from_slice(&bytes[0..4]);
        if magic != MAGIC {
            return Err(FormatError::BadMagic { found: magic });
        }
        let le16 = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let le32 = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Ok(Self { version: le16(4), kind: bytes[6], payload_len: le32(8), crc32: le32(12) })
    }
}

/// Why a file could not be read (or a value not written).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FormatError {
    /// The file does not start with [`MAGIC`]: it is not an edge-ad file.
    BadMagic { found: [u8; 4] },
    /// Written by another format version.
    UnsupportedVersion { found: u16, supported: u16 },
    /// The kind byte names no known kind.
    UnknownKind { found: u8 },
    /// The header's reserved byte (7) is not zero: not a file this version wrote.
    ReservedByte { found: u8 },
    /// A file of another kind (e.g. a manifest where a calibration was expected).
    WrongKind { expected: PayloadKind, found: PayloadKind },
    /// Fewer bytes than the header says.
    Truncated { needed: usize, got: usize },
    /// More bytes than the header says.
    TrailingBytes { expected: usize, got: usize },
    /// The payload's CRC-32 differs from the header's.
    ChecksumMismatch { stored: u32, computed: u32 },
    /// The payload passed the checksum but does not parse as the expected type.
    Payload,
    /// The payload parsed but did not use all its bytes.
    PayloadTrailing { unused: usize },
    /// The value is larger than a u32 length can say.
    TooLarge,
    /// postcard could not serialise the value.
    Serialize,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic { found } => {
                write!(f, "not an edge-ad file (magic {:02x?}, expected {:02x?} \"EDAD\")", found, MAGIC)
            }
            Self::UnsupportedVersion { found, supported } => {
                write!(f, "format version {found} is not supported (this build reads version {supported})")
            }
            Self::UnknownKind { found } => write!(f, "unknown payload kind {found}"),
            Self::WrongKind { expected, found } => {
                write!(f, "holds a {} where a {} was expected", found.name(), expected.name())
            }
            Self::Truncated { needed, got } => {
                write!(f, "truncated: {got} bytes where the header says {needed}")
            }
            Self::TrailingBytes { expected, got } => {
                write!(f, "{got} bytes where the header says {expected}: extra data at the end")
            }
            Self::ChecksumMismatch { stored, computed } => {
                write!(f, "checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is corrupt")
            }
            Self::Payload => write!(f, "payload does not parse (corrupt, or written by an incompatible build)"),
            Self::PayloadTrailing { unused } => write!(f, "payload has {unused} unused bytes"),
            Self::ReservedByte { found } => write!(f, "reserved header byte is {found}, not 0"),
            Self::TooLarge => write!(f, "payload larger than 4 GiB"),
            Self::Serialize => write!(f, "value could not be serialised"),
        }
    }
}

impl core::error::Error for FormatError {}

/// Serialises `value` behind a header of its kind.
pub fn encode<T: Payload>(value: &T) -> Result<Vec<u8>, FormatError> {
    let payload = postcard::to_allocvec(value).map_err(|_| FormatError::Serialize)?;
    let payload_len = u32::try_from(payload.len()).map_err(|_| FormatError::TooLarge)?;
    let header = Header { version: T::VERSION, kind: T::KIND as u8, payload_len, crc32: CRC32.checksum(&payload) };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Reads a whole file's bytes as a `T`, checking every header field and the checksum first.
pub fn decode<T: Payload>(bytes: &[u8]) -> Result<T, FormatError> {
    let header = Header::parse(bytes)?;
    // The kind first: each kind has its own version, and "a manifest where a calibration was
    // expected" says more than the manifest's version would.
    let kind = PayloadKind::from_byte(header.kind).ok_or(FormatError::UnknownKind { found: header.kind })?;
    if kind != T::KIND {
        return Err(FormatError::WrongKind { expected: T::KIND, found: kind });
    }
    // Every header byte is checked: a flip of the reserved one is an altered file too.
    if bytes[7] != 0 {
        return Err(FormatError::ReservedByte { found: bytes[7] });
    }
    if header.version != T::VERSION {
        return Err(FormatError::UnsupportedVersion { found: header.version, supported: T::VERSION });
    }
    let expected = HEADER_LEN + header.payload_len as usize;
    if bytes.len() < expected {
        return Err(FormatError::Truncated { needed: expected, got: bytes.len() });
    }
    if bytes.len() > expected {
        return Err(FormatError::TrailingBytes { expected, got: bytes.len() });
    }
    let payload = &bytes[HEADER_LEN..];
    let computed = CRC32.checksum(payload);
    if computed != header.crc32 {
        return Err(FormatError::ChecksumMismatch { stored: header.crc32, computed });
    }
    // take_from_bytes, not from_bytes: postcard's from_bytes silently ignores trailing bytes.
    let (value, rest) = postcard::take_from_bytes::<T>(payload).map_err(|_| FormatError::Payload)?;
    if !rest.is_empty() {
        return Err(FormatError::PayloadTrailing { unused: rest.len() });
    }
    Ok(value)
}
