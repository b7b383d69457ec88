//! The 61-byte RecordBatch v2 header as plain data.

use crate::codec::Compression;
use crate::{Result, WireError};

use super::RECORD_BATCH_OVERHEAD;

/// Bits of the batch `attributes` field.
pub mod attributes {
    /// Bits 0-2: compression codec id.
    pub const COMPRESSION_MASK: i16 = 0x07;
    /// Bit 3: timestamps are the broker's append time (`maxTimestamp`).
    pub const LOG_APPEND_TIME: i16 = 0x08;
    /// Bit 4: the batch belongs to a transaction.
    pub const TRANSACTIONAL: i16 = 0x10;
    /// Bit 5: the batch holds a transaction marker, not data.
    pub const CONTROL: i16 = 0x20;
    /// Bit 6: `baseTimestamp` is the log cleaner's delete horizon (KIP-534).
    pub const DELETE_HORIZON: i16 = 0x40;
}

/// How record timestamps of a batch are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer: `baseTimestamp + timestampDelta`.
    CreateTime,
    /// Set by the broker: every record's timestamp is the batch's `maxTimestamp`.
    LogAppendTime,
}

/// Every field of a v2 batch header, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after this field: the batch is `12 + batch_length` bytes long.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be<const N: usize>(b: &[u8; RECORD_BATCH_OVERHEAD], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}

impl BatchHeader {
    /// Parses the header from the first 61 bytes of a batch. Checks nothing but
    /// lengths; see [`crate::batch::RecordBatch::new`] for validation.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let b: &[u8; RECORD_BATCH_OVERHEAD] = bytes
            .get(..RECORD_BATCH_OVERHEAD)
            .and_then(|s| s.try_into().ok())
            .ok_or(WireError::truncated(
                "record batch header",
                RECORD_BATCH_OVERHEAD,
                bytes.len(),
            ))?;
        Ok(Self {
            base_offset: i64::from_be_bytes(be(b, 0)),
            batch_length: i32::from_be_bytes(be(b, 8)),
            partition_leader_epoch: i32::from_be_bytes(be(b, 12)),
            magic: i8::from_be_bytes(be(b, 16)),
            crc: u32::from_be_bytes(be(b, 17)),
            attributes: i16::from_be_bytes(be(b, 21)),
            last_offset_delta: i32::from_be_bytes(be(b, 23)),
            base_timestamp: i64::from_be_bytes(be(b, 27)),
            max_timestamp: i64::from_be_bytes(be(b, 35)),
            producer_id: i64::from_be_bytes(be(b, 43)),
            producer_epoch: i16::from_be_bytes(be(b, 51)),
            base_sequence: i32::from_be_bytes(be(b, 53)),
            record_count: i32::from_be_bytes(be(b, 57)),
        })
    }

    /// The header's 61 bytes, exactly as [`Self::parse`] reads them.
    pub fn encode(&self) -> [u8; RECORD_BATCH_OVERHEAD] {
        let mut b = [0u8; RECORD_BATCH_OVERHEAD];
        b[0..8].copy_from_slice(&self.base_offset.to_be_bytes());
        b[8..12].copy_from_slice(&self.batch_length.to_be_bytes());
        b[12..16].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        b[16..17].copy_from_slice(&self.magic.to_be_bytes());
        b[17..21].copy_from_slice(&self.crc.to_be_bytes());
        b[21..23].copy_from_slice(&self.attributes.to_be_bytes());
        b[23..27].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        b[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        b[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        b[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        b[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        b[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        b[57..61].copy_from_slice(&self.record_count.to_be_bytes());
        b
    }

    /// Offset of the last record the batch was written with (kept by compaction).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Where fetching continues after this batch: always `last_offset + 1`, even
    /// for control, empty, aborted or compacted batches.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Total size of the batch in bytes, header included.
    pub fn size_in_bytes(&self) -> Option<usize> {
        usize::try_from(self.batch_length)
            .ok()
            .and_then(|l| l.checked_add(super::LOG_OVERHEAD))
    }

    /// The payload codec.
    pub fn compression(&self) -> Result<Compression> {
        Compression::from_attributes(self.attributes)
    }

    /// How record timestamps are to be read.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & attributes::LOG_APPEND_TIME != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & attributes::TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & attributes::CONTROL != 0
    }

    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & attributes::DELETE_HORIZON != 0
    }

    /// True if the batch carries a producer id (idempotent or transactional data).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// True if offsets `base..=last` are all present: `lastOffsetDelta + 1 == recordCount`.
    /// Compaction breaks this, and brokers refuse such a batch from a producer.
    pub fn offsets_are_contiguous(&self) -> bool {
        i64::from(self.last_offset_delta) + 1 == i64::from(self.record_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_is_the_inverse_of_parse() {
        let h = BatchHeader {
            base_offset: 0x0102_0304_0506_0708,
            batch_length: 1000,
            partition_leader_epoch: 7,
            magic: 2,
            crc: 0xdead_beef,
            attributes: attributes::TRANSACTIONAL | 3,
            last_offset_delta: 9,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_123,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 100,
            record_count: 10,
        };
        assert_eq!(BatchHeader::parse(&h.encode()).unwrap(), h);
        assert_eq!(h.compression().unwrap(), Compression::Lz4);
        assert!(h.is_transactional() && !h.is_control());
        assert!(h.offsets_are_contiguous());
        assert_eq!(h.next_offset(), 0x0102_0304_0506_0708 + 10);
    }

    #[test]
    fn short_input_is_truncated_error() {
        assert!(matches!(
            BatchHeader::parse(&[0u8; 60]),
            Err(WireError::Truncated { .. })
        ));
    }
}
