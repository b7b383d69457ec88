//! What to do with each fetched batch of one source partition.
//!
//! The fast path forwards the source's bytes (compressed payload untouched)
//! under a rewritten header. The broker refuses some batches as-is, and only
//! those take the slow path (decode + re-encode): offset gaps left by
//! compaction, batches over the target's `max.message.bytes`, legacy v0/v1
//! messages, LogAppendTime batches (the append time becomes the record
//! timestamp) and a batch that straddles the resume position.

use ferry_wire::batch::ControlRecordType;
use ferry_wire::batch::{
    BatchHeader, FetchedBatch, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
    NO_SEQUENCE, RecordBatch, attributes,
};
use ferry_wire::codec::Compression;
use ferry_wire::reencode::{ReencodeOptions, ReencodedBatch, reencode};
use ferry_wire::txn::{AbortedTxn, AbortedTxnFilter, BatchFate};

use crate::EngineError;
pub use crate::error::TopicPartition;
use crate::inflight::Mapping;

/// Settings of the per-batch decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanConfig {
    /// Check each source batch's CRC before forwarding (default true).
    pub verify_crc: bool,
    /// The target topic's `max.message.bytes` (Kafka's default 1048588).
    pub max_batch_bytes: usize,
    /// Bound on one batch's decompressed size on the slow path (default 64 MiB).
    pub decompress_limit: usize,
    /// Codec for re-encoded batches; `None` keeps the source batch's codec.
    pub reencode_compression: Option<Compression>,
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            verify_crc: true,
            max_batch_bytes: 1_048_588,
            decompress_limit: 64 * 1024 * 1024,
            reencode_compression: None,
        }
    }
}

/// Why a batch is not replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A transaction marker.
    Control(ControlRecordType),
    /// Data of an aborted transaction.
    Aborted,
    /// No records left (compaction keeps empty batches for producer state).
    Empty,
    /// Entirely before the partition's position (already replicated).
    BeforePosition,
}

/// Why a batch takes the slow path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowPathReason {
    OffsetGaps,
    TooLarge,
    Legacy,
    LogAppendTime,
    StraddlesPosition,
    /// Small batches merged on request (`[flows.batching]`): this many
    /// source batches (see [`crate::coalesce`]).
    Coalesced {
        batches: usize,
    },
}

/// The decision for one fetched entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Fast path: produce `batch`'s bytes under `header` (base offset 0, no
    /// transactional or delete-horizon bit, no producer identity yet: the
    /// producer stamps its own id/epoch/sequence and patches the CRC once).
    Forward {
        batch: RecordBatch,
        header: BatchHeader,
    },
    /// Slow path: these batches replace the source batch.
    Reencode {
        reason: SlowPathReason,
        batches: Vec<ReencodedBatch>,
    },
    /// Nothing to produce.
    Skip(SkipReason),
}

/// One batch a plan produces, with where its records came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    pub batch: RecordBatch,
    /// The header to produce it under.
    pub header: BatchHeader,
    /// The source offsets of its records.
    pub mapping: Mapping,
    /// The source offset after this batch: the plan's next offset for its
    /// last batch, the offset after its last record for the others (a
    /// split batch commits piece by piece).
    pub next_offset: i64,
}

impl Plan {
    /// The batches this plan produces, in order (none for a skip, and none
    /// for a re-encoded batch whose records all lie before the position).
    /// `next_offset` is the source offset after the planned entry. The one
    /// place where a plan becomes batches: the partition machine sends
    /// them, the resume scanner counts them.
    pub fn produced(self, next_offset: i64) -> ProducedBatches {
        match self {
            Plan::Forward { batch, header } => {
                let h = batch.header();
                let mapping = Mapping::Contiguous {
                    source_base: h.base_offset,
                    count: i64::from(h.last_offset_delta) + 1,
                };
                // The fast path: one batch, no allocation for it.
                ProducedBatches::One(Some(Produced {
                    batch,
                    header,
                    mapping,
                    next_offset,
                }))
            }
            Plan::Reencode { batches, .. } => {
                let last = batches.len().saturating_sub(1);
                batches
                    .into_iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let next = if i == last {
                            next_offset
                        } else {
                            b.source_offsets.last().map_or(next_offset, |o| o + 1)
                        };
                        Produced {
                            header: *b.batch.header(),
                            batch: b.batch,
                            mapping: Mapping::Records(b.source_offsets),
                            next_offset: next,
                        }
                    })
                    .collect::<Vec<_>>()
                    .into()
            }
            Plan::Skip(_) => ProducedBatches::One(None),
        }
    }
}

/// The batches a [`Plan`] produces, in order ([`Plan::produced`]).
#[derive(Debug)]
pub enum ProducedBatches {
    /// A forwarded batch (or none, for a skip).
    One(Option<Produced>),
    /// The batches of a re-encoded plan.
    Many(std::vec::IntoIter<Produced>),
}

impl From<Vec<Produced>> for ProducedBatches {
    fn from(batches: Vec<Produced>) -> Self {
        Self::Many(batches.into_iter())
    }
}

impl Iterator for ProducedBatches {
    type Item = Produced;

    fn next(&mut self) -> Option<Produced> {
        match self {
            Self::One(one) => one.take(),
            Self::Many(many) => many.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match self {
            Self::One(one) => usize::from(one.is_some()),
            Self::Many(many) => many.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for ProducedBatches {}

/// Plans the batches of one source partition, in order, across fetches.
#[derive(Debug)]
pub struct PartitionPlanner {
    tp: TopicPartition,
    config: PlanConfig,
    position: i64,
}

impl PartitionPlanner {
    /// A planner for `tp` whose next offset to replicate is `position`.
    pub fn new(tp: TopicPartition, position: i64, config: PlanConfig) -> Self {
        Self {
            tp,
            config,
            position,
        }
    }

    /// The settings this planner uses.
    pub fn config(&self) -> &PlanConfig {
        &self.config
    }

    /// The next source offset to replicate.
    pub fn position(&self) -> i64 {
        self.position
    }

    /// Plans every complete entry of one fetch response partition. The
    /// position advances past every entry, skipped ones included.
    pub fn plan_fetch(
        &mut self,
        entries: impl IntoIterator<Item = FetchedBatch>,
        aborted: impl IntoIterator<Item = AbortedTxn>,
    ) -> Result<Vec<(i64, Plan)>, EngineError> {
        match self.plan_fetch_until_error(entries, aborted) {
            (plans, None) => Ok(plans),
            (_, Some(e)) => Err(e),
        }
    }

    /// Like [`plan_fetch`](Self::plan_fetch), but keeps the plans of the
    /// batches before the first one that fails (a corrupt batch), so they
    /// can still be forwarded: the partition then stops exactly at the
    /// batch the error names.
    pub fn plan_fetch_until_error(
        &mut self,
        entries: impl IntoIterator<Item = FetchedBatch>,
        aborted: impl IntoIterator<Item = AbortedTxn>,
    ) -> (Vec<(i64, Plan)>, Option<EngineError>) {
        let mut filter = AbortedTxnFilter::new(aborted);
        let mut out = Vec::new();
        for entry in entries {
            match self.plan(&entry, &mut filter) {
                Ok(plan) => out.push((entry.next_offset(), plan)),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    fn plan(
        &mut self,
        entry: &FetchedBatch,
        filter: &mut AbortedTxnFilter,
    ) -> Result<Plan, EngineError> {
        let offset = entry.last_offset();
        let bad = |source| EngineError::BadBatch {
            tp: self.tp.clone(),
            offset,
            source,
        };
        if entry.last_offset() < self.position {
            return Ok(Plan::Skip(SkipReason::BeforePosition));
        }
        let batch = match entry {
            FetchedBatch::Legacy(m) => {
                if self.config.verify_crc {
                    m.verify_crc()
                        .map_err(|source| self.corrupt(m.offset(), source))?;
                }
                let plan = self.reencode(entry, SlowPathReason::Legacy).map_err(bad)?;
                self.position = entry.next_offset();
                return Ok(plan);
            }
            FetchedBatch::V2(b) => b,
        };
        let h = *batch.header();
        if self.config.verify_crc {
            batch
                .verify_crc()
                .map_err(|source| self.corrupt(h.base_offset, source))?;
        }
        let plan = match filter.classify(batch).map_err(bad)? {
            BatchFate::Control(kind) => Plan::Skip(SkipReason::Control(kind)),
            BatchFate::Aborted => Plan::Skip(SkipReason::Aborted),
            BatchFate::Data if h.record_count == 0 => Plan::Skip(SkipReason::Empty),
            BatchFate::Data => match self.slow_path_reason(batch) {
                Some(reason) => self.reencode(entry, reason).map_err(bad)?,
                None => Plan::Forward {
                    batch: batch.clone(),
                    header: forward_header(&h),
                },
            },
        };
        self.position = entry.next_offset();
        Ok(plan)
    }

    fn slow_path_reason(&self, batch: &RecordBatch) -> Option<SlowPathReason> {
        let h = batch.header();
        if h.base_offset < self.position {
            Some(SlowPathReason::StraddlesPosition)
        } else if !h.offsets_are_contiguous() {
            Some(SlowPathReason::OffsetGaps)
        } else if h.attributes & attributes::LOG_APPEND_TIME != 0 {
            Some(SlowPathReason::LogAppendTime)
        } else if batch.len() > self.config.max_batch_bytes {
            Some(SlowPathReason::TooLarge)
        } else {
            None
        }
    }

    fn reencode(
        &self,
        entry: &FetchedBatch,
        reason: SlowPathReason,
    ) -> Result<Plan, ferry_wire::WireError> {
        let opts = ReencodeOptions {
            compression: self.config.reencode_compression,
            max_batch_bytes: self.config.max_batch_bytes,
            decompress_limit: self.config.decompress_limit,
            from_offset: self.position,
        };
        Ok(Plan::Reencode {
            reason,
            batches: reencode(entry, &opts)?,
        })
    }

    fn corrupt(&self, offset: i64, source: ferry_wire::WireError) -> EngineError {
        EngineError::CorruptBatch {
            tp: self.tp.clone(),
            offset,
            source,
        }
    }
}

/// The header a forwarded batch is produced under, before the producer stamps
/// its identity: base offset 0 (brokers require it), leader epoch unknown, no
/// transactional bit (ferry forwards committed data only) and no delete
/// horizon (the target's cleaner must not inherit the source's).
pub fn forward_header(source: &BatchHeader) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        attributes: source.attributes & !(attributes::TRANSACTIONAL | attributes::DELETE_HORIZON),
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        base_sequence: NO_SEQUENCE,
        ..*source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use ferry_wire::builder::{BatchSpec, OffsetDeltas, build_batch};
    use ferry_wire::record::Record;

    fn tp() -> TopicPartition {
        TopicPartition {
            topic: "orders".into(),
            partition: 3,
        }
    }

    fn batch(offsets: &[i64], codec: Compression, txn_pid: Option<i64>) -> RecordBatch {
        let records: Vec<Record> = offsets
            .iter()
            .map(|&o| Record {
                offset: o,
                timestamp: 1_000 + o,
                key: Some(Bytes::from(format!("k{o}"))),
                value: Some(Bytes::from(vec![b'v'; 100])),
                headers: vec![],
            })
            .collect();
        let spec = BatchSpec {
            base_offset: offsets[0],
            offset_deltas: OffsetDeltas::FromRecords,
            transactional: txn_pid.is_some(),
            producer_id: txn_pid.unwrap_or(-1),
            producer_epoch: if txn_pid.is_some() { 0 } else { -1 },
            base_sequence: if txn_pid.is_some() { 0 } else { -1 },
            ..BatchSpec::producer(codec)
        };
        RecordBatch::new(build_batch(&spec, &records).unwrap()).unwrap()
    }

    fn plan_one(planner: &mut PartitionPlanner, b: RecordBatch) -> Result<Plan, EngineError> {
        planner
            .plan_fetch([FetchedBatch::V2(b)], [])
            .map(|mut v| v.remove(0).1)
    }

    #[test]
    fn plain_batches_take_the_fast_path_with_a_clean_header() {
        let mut p = PartitionPlanner::new(tp(), 0, PlanConfig::default());
        let b = batch(&[0, 1, 2], Compression::Lz4, Some(42));
        match plan_one(&mut p, b.clone()).unwrap() {
            Plan::Forward { batch, header } => {
                assert_eq!(batch, b);
                assert_eq!(header.base_offset, 0);
                assert_eq!(header.producer_id, NO_PRODUCER_ID);
                assert!(!header.is_transactional());
                assert_eq!(header.compression().unwrap(), Compression::Lz4);
                // The forwarded header patches cleanly.
                let out = batch.rewrite_header(&header, &mut BytesMut::new()).unwrap();
                RecordBatch::new(out.to_contiguous())
                    .unwrap()
                    .verify_crc()
                    .unwrap();
            }
            other => panic!("expected forward, got {other:?}"),
        }
        assert_eq!(p.position(), 3);
    }

    #[test]
    fn slow_path_reasons() {
        let cases = [
            (
                batch(&[0, 2, 5], Compression::None, None),
                0,
                SlowPathReason::OffsetGaps,
            ),
            (
                batch(&[10, 11, 12], Compression::Gzip, None),
                11,
                SlowPathReason::StraddlesPosition,
            ),
        ];
        for (b, position, want) in cases {
            let mut p = PartitionPlanner::new(tp(), position, PlanConfig::default());
            match plan_one(&mut p, b).unwrap() {
                Plan::Reencode { reason, batches } => {
                    assert_eq!(reason, want);
                    assert!(
                        batches
                            .iter()
                            .all(|b| b.batch.header().offsets_are_contiguous())
                    );
                    assert!(batches.iter().all(|b| b.source_offsets[0] >= position));
                }
                other => panic!("expected re-encode, got {other:?}"),
            }
        }
        let big = PlanConfig {
            max_batch_bytes: 200,
            ..PlanConfig::default()
        };
        let mut p = PartitionPlanner::new(tp(), 0, big);
        assert!(matches!(
            plan_one(&mut p, batch(&[0, 1, 2], Compression::None, None)).unwrap(),
            Plan::Reencode { reason: SlowPathReason::TooLarge, ref batches } if batches.len() == 3
        ));
    }

    #[test]
    fn batches_before_the_position_are_skipped() {
        let mut p = PartitionPlanner::new(tp(), 100, PlanConfig::default());
        assert_eq!(
            plan_one(&mut p, batch(&[5, 6], Compression::None, None)).unwrap(),
            Plan::Skip(SkipReason::BeforePosition)
        );
        assert_eq!(p.position(), 100, "never moves backwards");
    }

    #[test]
    fn aborted_transactions_are_skipped() {
        let mut p = PartitionPlanner::new(tp(), 0, PlanConfig::default());
        let plans = p
            .plan_fetch(
                [FetchedBatch::V2(batch(&[0, 1], Compression::Zstd, Some(7)))],
                [AbortedTxn {
                    producer_id: 7,
                    first_offset: 0,
                }],
            )
            .unwrap();
        assert_eq!(plans, vec![(2, Plan::Skip(SkipReason::Aborted))]);
    }

    #[test]
    fn corrupt_batches_stop_the_partition_with_a_named_error() {
        let good = batch(&[0, 1], Compression::None, None);
        let mut bytes = good.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let bad = RecordBatch::new(Bytes::from(bytes)).unwrap();
        let mut p = PartitionPlanner::new(tp(), 0, PlanConfig::default());
        let err = plan_one(&mut p, bad).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("orders-3") && msg.contains("offset 0") && msg.contains("corrupt"),
            "{msg}"
        );
        assert_eq!(p.position(), 0, "position does not pass a corrupt batch");
    }

    #[test]
    fn batches_before_a_corrupt_one_are_still_planned() {
        let first = batch(&[0, 1], Compression::None, None);
        let mut bytes = batch(&[2, 3], Compression::Zstd, None).as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let bad = RecordBatch::new(Bytes::from(bytes)).unwrap();
        let after = batch(&[4, 5], Compression::None, None);
        let mut p = PartitionPlanner::new(tp(), 0, PlanConfig::default());
        let (plans, err) = p.plan_fetch_until_error([first, bad, after].map(FetchedBatch::V2), []);
        assert_eq!(plans.len(), 1, "only the batch before the corrupt one");
        assert_eq!(plans[0].0, 2);
        let msg = err.unwrap().to_string();
        assert!(msg.contains("offset 2") && msg.contains("corrupt"), "{msg}");
        assert_eq!(p.position(), 2, "stops at the corrupt batch");
    }
}
