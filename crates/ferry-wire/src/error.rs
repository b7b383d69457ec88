//! The wire layer's one error type. Every variant says what was wrong with
//! the bytes, so a caller one layer up can add topic/partition/broker context.

use crate::codec::Compression;

/// Everything that can be wrong with bytes read off the wire or handed to an encoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A frame announced more bytes than the configured maximum.
    #[error("frame of {size} bytes exceeds the maximum frame size of {max} bytes")]
    FrameTooLarge { size: usize, max: usize },

    /// A frame's size prefix was negative.
    #[error("frame size prefix is negative ({0})")]
    NegativeFrameSize(i32),

    /// Fewer bytes were present than a field or structure needs.
    #[error("truncated {what}: need {needed} bytes, only {available} present")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },

    /// A field held a value that the format does not allow.
    #[error("invalid {what}: {value}")]
    InvalidField { what: &'static str, value: i64 },

    /// A record batch's stored CRC-32C does not match its contents.
    #[error(
        "record batch at offset {base_offset} is corrupt: stored CRC {stored:#010x}, computed {computed:#010x}"
    )]
    CrcMismatch {
        base_offset: i64,
        stored: u32,
        computed: u32,
    },

    /// A legacy (v0/v1) message's CRC-32 does not match its contents.
    #[error(
        "legacy message at offset {offset} is corrupt: stored CRC {stored:#010x}, computed {computed:#010x}"
    )]
    LegacyCrcMismatch {
        offset: i64,
        stored: u32,
        computed: u32,
    },

    /// A batch or message used a magic byte this layer cannot read.
    #[error("unsupported record format (magic byte {magic}) at offset {offset}")]
    UnsupportedMagic { magic: i8, offset: i64 },

    /// The attributes named a compression codec id that does not exist.
    #[error("unknown compression codec id {0}")]
    UnknownCodec(u8),

    /// Decompressed output would exceed the caller's bound (a decompression bomb,
    /// or a batch larger than the configured limit).
    #[error("{codec} data decompresses to more than the limit of {limit} bytes")]
    DecompressedTooLarge { codec: Compression, limit: usize },

    /// The codec library rejected the input (or failed to encode).
    #[error("{codec} codec failed: {reason}")]
    Codec { codec: Compression, reason: String },

    /// A single record is larger than the largest batch the target accepts,
    /// so no re-encoding can make it fit.
    #[error(
        "record at offset {offset} needs a {size}-byte batch, larger than the limit of {max} bytes"
    )]
    RecordTooLarge {
        offset: i64,
        size: usize,
        max: usize,
    },

    /// A structure was internally inconsistent (counts, lengths, offsets).
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },

    /// A request could not be encoded (a value out of range for the chosen version).
    #[error("cannot encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },
}

impl WireError {
    pub(crate) fn truncated(what: &'static str, needed: usize, available: usize) -> Self {
        Self::Truncated {
            what,
            needed,
            available,
        }
    }

    pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        Self::Malformed {
            what,
            detail: detail.into(),
        }
    }
}
