//! Compression codecs used inside RecordBatch v2 payloads.
//!
//! Only the slow path (re-encoding) and diagnostics use these: forwarded
//! batches keep their compressed bytes untouched.

use std::fmt;

use crate::{Result, WireError};

/// Codec id stored in bits 0-2 of a batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    /// All codecs, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec named by the low three bits of batch attributes.
    pub fn from_attributes(attributes: i16) -> Result<Self> {
        Self::from_id((attributes & 0x07) as u8)
    }

    /// The codec with Kafka's numeric id.
    pub fn from_id(id: u8) -> Result<Self> {
        match id {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            other => Err(WireError::UnknownCodec(other)),
        }
    }

    /// Kafka's numeric id.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// Kafka's name (`compression.type` value).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
