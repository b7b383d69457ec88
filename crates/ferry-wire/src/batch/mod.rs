//! RecordBatch v2: zero-copy views, iteration over fetched partition data,
//! and header rewrites with a patched CRC.
//!
//! Layout (big-endian; from Kafka's `DefaultRecordBatch`):
//!
//! ```text
//! 0  baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8
//! 17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
//! 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordCount i32
//! 61 records (raw, or one compressed stream)
//! ```

mod header;
mod iter;
mod rewrite;
mod view;

pub use header::{BatchHeader, TimestampType, attributes};
pub use iter::{BatchIter, FetchedBatch};
pub use rewrite::RewrittenBatch;
pub use view::{ControlRecordType, RecordBatch};

/// Bytes before a batch's `batchLength` field ends: baseOffset + batchLength.
/// Legacy message sets share this prefix (offset + message size).
pub const LOG_OVERHEAD: usize = 12;

/// Size of the full v2 batch header, up to and including `recordCount`.
pub const RECORD_BATCH_OVERHEAD: usize = 61;

/// Offset of the CRC field; the CRC covers everything from [`CRC_COVERED_START`] on.
pub const CRC_OFFSET: usize = 17;

/// First byte covered by the CRC (the attributes field).
pub const CRC_COVERED_START: usize = 21;

/// The magic byte of RecordBatch v2.
pub const MAGIC_V2: i8 = 2;

/// Producer id meaning "no producer" (non-idempotent data).
pub const NO_PRODUCER_ID: i64 = -1;
/// Producer epoch meaning "no producer".
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// Sequence meaning "no sequence".
pub const NO_SEQUENCE: i32 = -1;
/// Partition leader epoch meaning "unknown"; the broker assigns its own on append.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
