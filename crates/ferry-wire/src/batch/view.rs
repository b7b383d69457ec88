//! [`RecordBatch`]: one v2 batch as a zero-copy view over [`Bytes`].

use bytes::Bytes;

use crate::codec::{self, Compression};
use crate::record::Records;
use crate::{Result, WireError};

use super::{BatchHeader, CRC_COVERED_START, LOG_OVERHEAD, MAGIC_V2, RECORD_BATCH_OVERHEAD};

/// One RecordBatch v2. Holds the batch's bytes (a slice of the fetch response,
/// typically) and its parsed header; the payload is never copied by the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
    header: BatchHeader,
}

/// The kind of a control record (the key of the only record in a control batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRecordType {
    Abort,
    Commit,
    /// KRaft and future marker types (2..): never produced by clients.
    Other(i16),
}

impl RecordBatch {
    /// Wraps exactly one batch. Checks the magic byte, that `batchLength` matches
    /// the bytes given and that the header is complete; does not check the CRC
    /// (see [`Self::verify_crc`]) so that a caller can decide when to pay for it.
    pub fn new(bytes: Bytes) -> Result<Self> {
        let header = BatchHeader::parse(&bytes)?;
        if header.magic != MAGIC_V2 {
            return Err(WireError::UnsupportedMagic {
                magic: header.magic,
                offset: header.base_offset,
            });
        }
        let size = header.size_in_bytes().ok_or(WireError::InvalidField {
            what: "batch length",
            value: i64::from(header.batch_length),
        })?;
        if size < RECORD_BATCH_OVERHEAD {
            return Err(WireError::InvalidField {
                what: "batch length (shorter than the v2 header)",
                value: i64::from(header.batch_length),
            });
        }
        if size != bytes.len() {
            return Err(WireError::malformed(
                "record batch",
                format!(
                    "batch at offset {} declares {size} bytes but {} were given",
                    header.base_offset,
                    bytes.len()
                ),
            ));
        }
        if header.last_offset_delta < 0 {
            return Err(WireError::InvalidField {
                what: "last offset delta",
                value: i64::from(header.last_offset_delta),
            });
        }
        if header.record_count < 0 {
            return Err(WireError::InvalidField {
                what: "record count",
                value: i64::from(header.record_count),
            });
        }
        Ok(Self { bytes, header })
    }

    /// The parsed header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch, header included.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Total size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true: a batch has at least its 61-byte header.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The records section (compressed or not), as a zero-copy slice.
    pub fn payload(&self) -> Bytes {
        self.bytes.slice(RECORD_BATCH_OVERHEAD..)
    }

    /// CRC-32C over attributes..end, as the producer should have computed it.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[CRC_COVERED_START..])
    }

    /// Checks the stored CRC against the contents. A mismatch means the batch was
    /// corrupted after the producer wrote it and must not be forwarded.
    pub fn verify_crc(&self) -> Result<()> {
        let computed = self.compute_crc();
        if computed == self.header.crc {
            Ok(())
        } else {
            Err(WireError::CrcMismatch {
                base_offset: self.header.base_offset,
                stored: self.header.crc,
                computed,
            })
        }
    }

    /// Decodes the records, decompressing into at most `decompress_limit` bytes.
    /// This is the slow path: forwarding never needs it.
    pub fn records(&self, decompress_limit: usize) -> Result<Records> {
        let codec = self.header.compression()?;
        let data = match codec {
            Compression::None => self.payload(),
            _ => Bytes::from(codec::decompress(
                codec,
                &self.bytes[RECORD_BATCH_OVERHEAD..],
                decompress_limit,
            )?),
        };
        Records::new(data, &self.header)
    }

    /// For a control batch, the marker type read from its first record's key.
    /// Returns `None` for data batches. Markers are written uncompressed by the
    /// broker, but a compressed one is decoded rather than misread.
    pub fn control_type(&self) -> Result<Option<ControlRecordType>> {
        if !self.header.is_control() {
            return Ok(None);
        }
        // A marker batch is tiny; bound its decompressed size accordingly.
        const CONTROL_LIMIT: usize = 64 * 1024;
        let mut records = self.records(CONTROL_LIMIT)?;
        let first = records
            .next()
            .ok_or_else(|| WireError::malformed("control batch", "no control record"))??;
        let key = first
            .key
            .ok_or_else(|| WireError::malformed("control record", "null key"))?;
        let kind = key
            .get(2..4)
            .map(|t| i16::from_be_bytes([t[0], t[1]]))
            .ok_or(WireError::truncated("control record key", 4, key.len()))?;
        Ok(Some(match kind {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Other(other),
        }))
    }

    /// Bytes before the header's `batchLength` field ends (for callers slicing raw data).
    pub const LOG_OVERHEAD: usize = LOG_OVERHEAD;
}
