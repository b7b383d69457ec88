//! Dropping aborted transactional data from a read_committed fetch without
//! decompressing any data batch.
//!
//! A read_committed Fetch response returns data up to the last stable offset
//! plus the list of aborted transactions `(producer_id, first_offset)` that
//! overlap it. Walking batches in order, a producer's transaction is "being
//! aborted" from its first offset until its ABORT marker; its transactional
//! batches in between are dropped. Everything needed is in batch headers,
//! except the marker type, read from the tiny (uncompressed) control record.

use std::collections::HashSet;

use crate::Result;
use crate::batch::{ControlRecordType, RecordBatch};

/// One entry of a Fetch response's `aborted_transactions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// What to do with one batch of read_committed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFate {
    /// Committed or non-transactional data: replicate it.
    Data,
    /// Data of an aborted transaction: drop it.
    Aborted,
    /// A transaction marker: drop it (clients may not produce markers).
    Control(ControlRecordType),
}

/// Classifies the batches of one fetched partition, in order.
#[derive(Debug, Clone, Default)]
pub struct AbortedTxnFilter {
    /// Not yet started, sorted by first offset descending so `pop` yields the earliest.
    pending: Vec<AbortedTxn>,
    aborting: HashSet<i64>,
}

impl AbortedTxnFilter {
    /// A filter for one fetch response partition.
    pub fn new(aborted: impl IntoIterator<Item = AbortedTxn>) -> Self {
        let mut pending: Vec<AbortedTxn> = aborted.into_iter().collect();
        pending.sort_by_key(|t| std::cmp::Reverse(t.first_offset));
        Self {
            pending,
            aborting: HashSet::new(),
        }
    }

    /// Decides the fate of the next batch. Batches must be passed in offset order.
    pub fn classify(&mut self, batch: &RecordBatch) -> Result<BatchFate> {
        let h = batch.header();
        while self
            .pending
            .last()
            .is_some_and(|t| t.first_offset <= h.last_offset())
        {
            if let Some(t) = self.pending.pop() {
                self.aborting.insert(t.producer_id);
            }
        }
        if let Some(kind) = batch.control_type()? {
            if kind == ControlRecordType::Abort {
                self.aborting.remove(&h.producer_id);
            }
            return Ok(BatchFate::Control(kind));
        }
        if h.is_transactional() && self.aborting.contains(&h.producer_id) {
            return Ok(BatchFate::Aborted);
        }
        Ok(BatchFate::Data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchHeader, MAGIC_V2, RECORD_BATCH_OVERHEAD, attributes};
    use crate::builder::{BatchSpec, build_batch};
    use crate::codec::Compression;
    use crate::record::Record;
    use bytes::{BufMut, Bytes, BytesMut};

    fn data(base: i64, pid: i64, txn: bool) -> RecordBatch {
        let spec = BatchSpec {
            base_offset: base,
            transactional: txn,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: 0,
            ..BatchSpec::producer(Compression::None)
        };
        let r = Record {
            offset: base,
            timestamp: 1,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: vec![],
        };
        RecordBatch::new(build_batch(&spec, &[r]).unwrap()).unwrap()
    }

    fn marker(base: i64, pid: i64, kind: i16) -> RecordBatch {
        let mut key = BytesMut::new();
        key.put_i16(0);
        key.put_i16(kind);
        let r = Record {
            offset: base,
            timestamp: 1,
            key: Some(key.freeze()),
            value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 1])),
            headers: vec![],
        };
        let spec = BatchSpec {
            base_offset: base,
            transactional: true,
            producer_id: pid,
            producer_epoch: 0,
            ..BatchSpec::producer(Compression::None)
        };
        let b = RecordBatch::new(build_batch(&spec, &[r]).unwrap()).unwrap();
        let mut h: BatchHeader = *b.header();
        h.attributes |= attributes::CONTROL;
        assert_eq!(h.magic, MAGIC_V2);
        let out = b.rewrite_header(&h, &mut BytesMut::new()).unwrap();
        assert_eq!(out.header_bytes().len(), RECORD_BATCH_OVERHEAD);
        RecordBatch::new(out.to_contiguous()).unwrap()
    }

    #[test]
    fn interleaved_transactions() {
        // pid 1 aborts (offsets 0, 2; marker 4), pid 2 commits (1, 3; marker 5),
        // pid 1 then commits a new transaction (6; marker 7), plain data at 8.
        let batches = [
            (data(0, 1, true), BatchFate::Aborted),
            (data(1, 2, true), BatchFate::Data),
            (data(2, 1, true), BatchFate::Aborted),
            (data(3, 2, true), BatchFate::Data),
            (
                marker(4, 1, 0),
                BatchFate::Control(ControlRecordType::Abort),
            ),
            (
                marker(5, 2, 1),
                BatchFate::Control(ControlRecordType::Commit),
            ),
            (data(6, 1, true), BatchFate::Data),
            (
                marker(7, 1, 1),
                BatchFate::Control(ControlRecordType::Commit),
            ),
            (data(8, -1, false), BatchFate::Data),
        ];
        let mut f = AbortedTxnFilter::new([AbortedTxn {
            producer_id: 1,
            first_offset: 0,
        }]);
        for (b, fate) in &batches {
            assert_eq!(
                f.classify(b).unwrap(),
                *fate,
                "batch at {}",
                b.header().base_offset
            );
        }
    }

    #[test]
    fn aborted_txn_starting_later_does_not_affect_earlier_batches() {
        let mut f = AbortedTxnFilter::new([AbortedTxn {
            producer_id: 1,
            first_offset: 5,
        }]);
        assert_eq!(f.classify(&data(0, 1, true)).unwrap(), BatchFate::Data);
        assert_eq!(f.classify(&data(5, 1, true)).unwrap(), BatchFate::Aborted);
        assert_eq!(f.classify(&data(6, 3, false)).unwrap(), BatchFate::Data);
    }
}
