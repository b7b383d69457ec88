//! Iteration over the `records` bytes of one fetched partition.

use bytes::Bytes;

use crate::legacy::LegacyMessage;
use crate::{Result, WireError};

use super::{LOG_OVERHEAD, MAGIC_V2, RECORD_BATCH_OVERHEAD, RecordBatch};

/// Bytes needed to read the magic byte: 12 bytes of log overhead, the 4-byte
/// leader epoch (v2) or CRC (v0/v1), then magic.
const MAGIC_END: usize = 17;

/// One entry of fetched partition data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchedBatch {
    /// A RecordBatch v2 (everything a broker ≥ 0.11 writes).
    V2(RecordBatch),
    /// A legacy v0/v1 message (possibly a compressed wrapper), found on topics
    /// written before 0.11 and still served by 2.x/3.x brokers.
    Legacy(LegacyMessage),
}

impl FetchedBatch {
    /// Offset of the entry's last record.
    pub fn last_offset(&self) -> i64 {
        match self {
            Self::V2(b) => b.header().last_offset(),
            Self::Legacy(m) => m.offset(),
        }
    }

    /// Where fetching continues after this entry.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Self::V2(b) => b.len(),
            Self::Legacy(m) => m.as_bytes().len(),
        }
    }

    /// Never true for a parsed entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Walks the batches of a partition's fetched `records` without copying them.
///
/// A broker may cut the last batch short when it hits the fetch size limit;
/// such an incomplete tail ends the iteration normally and is reported by
/// [`Self::incomplete_tail`], so the caller refetches from [`Self::next_offset`].
/// A malformed entry yields one error and then ends the iteration.
#[derive(Debug, Clone)]
pub struct BatchIter {
    data: Bytes,
    pos: usize,
    failed: bool,
    next_offset: Option<i64>,
}

impl BatchIter {
    /// Iterates over `records` as returned in a Fetch response partition.
    pub fn new(records: Bytes) -> Self {
        Self {
            data: records,
            pos: 0,
            failed: false,
            next_offset: None,
        }
    }

    /// Bytes left unparsed at the end: a partial trailing batch (or nothing).
    /// Meaningful once the iterator returned `None`.
    pub fn incomplete_tail(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Offset after the last complete entry returned so far, if any.
    pub fn next_offset(&self) -> Option<i64> {
        self.next_offset
    }

    fn fail(&mut self, e: WireError) -> Option<Result<FetchedBatch>> {
        self.failed = true;
        Some(Err(e))
    }
}

impl Iterator for BatchIter {
    type Item = Result<FetchedBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = &self.data[self.pos..];
        if rest.len() < MAGIC_END {
            return None; // incomplete tail (or end)
        }
        let base_offset = i64::from_be_bytes([
            rest[0], rest[1], rest[2], rest[3], rest[4], rest[5], rest[6], rest[7],
        ]);
        let length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let magic = i8::from_be_bytes([rest[16]]);
        let Ok(body_len) = usize::try_from(length) else {
            return self.fail(WireError::InvalidField {
                what: "batch length",
                value: i64::from(length),
            });
        };
        if body_len < MAGIC_END - LOG_OVERHEAD {
            return self.fail(WireError::InvalidField {
                what: "batch length",
                value: i64::from(length),
            });
        }
        let size = LOG_OVERHEAD + body_len;
        if magic == MAGIC_V2 && size < RECORD_BATCH_OVERHEAD {
            return self.fail(WireError::InvalidField {
                what: "batch length (shorter than the v2 header)",
                value: i64::from(length),
            });
        }
        if rest.len() < size {
            return None; // the broker cut this batch short: incomplete tail
        }
        let bytes = self.data.slice(self.pos..self.pos + size);
        let entry = match magic {
            MAGIC_V2 => RecordBatch::new(bytes).map(FetchedBatch::V2),
            0 | 1 => LegacyMessage::new(bytes).map(FetchedBatch::Legacy),
            other => Err(WireError::UnsupportedMagic {
                magic: other,
                offset: base_offset,
            }),
        };
        match entry {
            Ok(entry) => {
                self.pos += size;
                self.next_offset = Some(entry.next_offset());
                Some(Ok(entry))
            }
            Err(e) => self.fail(e),
        }
    }
}
