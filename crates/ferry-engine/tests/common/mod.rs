//! In-memory partition logs for the simulation tests: a source log built
//! from real record batches (plain, transactional with markers and aborts,
//! compacted with offset gaps, LogAppendTime, oversize), and a target log
//! that appends what the partition machine sends.

#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use bytes::{Bytes, BytesMut};
use ferry_client::{PartitionData, TopicPartition};
use ferry_wire::batch::{RecordBatch, attributes};
use ferry_wire::builder::{BatchSpec, OffsetDeltas, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::Record;
use ferry_wire::txn::AbortedTxn;

pub fn tp() -> TopicPartition {
    TopicPartition::new("sim", 0)
}

/// What a consumer of the target must see for one source record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<ferry_wire::record::Header>,
    pub timestamp: i64,
}

impl From<&Record> for Seen {
    fn from(r: &Record) -> Self {
        Self {
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
            timestamp: r.timestamp,
        }
    }
}

/// One transaction's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Commit,
    Abort,
}

/// A source partition log.
#[derive(Debug, Default, Clone)]
pub struct SourceLog {
    /// Batches in offset order.
    pub batches: Vec<Bytes>,
    /// Next offset to assign.
    pub end: i64,
    /// The committed records a mirror must hold, by source offset.
    pub expected: Vec<(i64, Seen)>,
    /// Aborted transactions with the offset of their abort marker.
    pub aborted: Vec<(AbortedTxn, i64)>,
}

pub fn record(offset: i64, value_len: usize) -> Record {
    Record {
        offset,
        timestamp: 1_700_000_000_000 + offset * 3,
        key: Some(Bytes::from(format!("key-{offset}"))),
        value: Some(Bytes::from(
            format!("value {offset} ")
                .repeat(value_len / 8 + 1)
                .into_bytes(),
        )),
        headers: if offset % 3 == 0 {
            vec![ferry_wire::record::Header {
                key: Bytes::from_static(b"h"),
                value: Some(Bytes::from(format!("{offset}"))),
            }]
        } else {
            vec![]
        },
    }
}

/// Rewrites header fields of an encoded batch and fixes its CRC.
fn patch(bytes: Bytes, f: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut b = BytesMut::from(&bytes[..]);
    f(&mut b);
    let crc = RecordBatch::new(b.clone().freeze()).unwrap().compute_crc();
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

fn add_attributes(b: &mut BytesMut, bits: i16) {
    let a = i16::from_be_bytes([b[21], b[22]]) | bits;
    b[21..23].copy_from_slice(&a.to_be_bytes());
}

impl SourceLog {
    fn push(&mut self, spec: &BatchSpec, records: &[Record], last: i64) -> Bytes {
        let bytes = build_batch(spec, records).unwrap();
        let first = spec.base_offset;
        let bytes = if last != records.last().unwrap().offset {
            // Compaction removed the batch's tail records: the header keeps
            // its last offset delta.
            let delta = i32::try_from(last - first).unwrap();
            patch(bytes, |b| b[23..27].copy_from_slice(&delta.to_be_bytes()))
        } else {
            bytes
        };
        self.batches.push(bytes.clone());
        self.end = last + 1;
        bytes
    }

    /// A plain batch of `n` records, `value_len` bytes each.
    pub fn plain(&mut self, n: usize, value_len: usize, codec: Compression) {
        let records: Vec<Record> = (0..n as i64)
            .map(|i| record(self.end + i, value_len))
            .collect();
        let spec = BatchSpec {
            base_offset: self.end,
            ..BatchSpec::producer(codec)
        };
        let last = records.last().unwrap().offset;
        self.expected
            .extend(records.iter().map(|r| (r.offset, Seen::from(r))));
        self.push(&spec, &records, last);
    }

    /// A LogAppendTime batch: consumers see the broker's append time.
    pub fn log_append_time(&mut self, n: usize, codec: Compression) {
        let records: Vec<Record> = (0..n as i64).map(|i| record(self.end + i, 20)).collect();
        let spec = BatchSpec {
            base_offset: self.end,
            ..BatchSpec::producer(codec)
        };
        let append_time = 1_800_000_000_000 + self.end;
        let bytes = build_batch(&spec, &records).unwrap();
        let bytes = patch(bytes, |b| {
            add_attributes(b, attributes::LOG_APPEND_TIME);
            b[35..43].copy_from_slice(&append_time.to_be_bytes());
        });
        self.expected.extend(records.iter().map(|r| {
            (
                r.offset,
                Seen {
                    timestamp: append_time,
                    ..Seen::from(r)
                },
            )
        }));
        self.batches.push(bytes);
        self.end += n as i64;
    }

    /// A compacted batch written as `n` offsets of which those with `keep`
    /// set survive (the last offset stays in the header even if removed).
    /// Offsets `skip_before` are missing before it (whole batches removed).
    pub fn compacted(&mut self, skip_before: i64, keep: &[bool], codec: Compression) {
        self.end += skip_before;
        let first = self.end;
        let last = first + keep.len() as i64 - 1;
        let records: Vec<Record> = keep
            .iter()
            .enumerate()
            .filter(|(_, k)| **k)
            .map(|(i, _)| record(first + i as i64, 12))
            .collect();
        if records.is_empty() {
            self.end = last + 1; // the cleaner dropped the whole batch
            return;
        }
        let spec = BatchSpec {
            base_offset: records[0].offset,
            offset_deltas: OffsetDeltas::FromRecords,
            ..BatchSpec::producer(codec)
        };
        self.expected
            .extend(records.iter().map(|r| (r.offset, Seen::from(r))));
        self.push(&spec, &records, last);
    }

    /// Transactions of producers `pids`, their data batches interleaved
    /// (`batches` each, `per_batch` records), then their markers in order.
    pub fn transactions(&mut self, fates: &[Fate], batches: usize, per_batch: usize) {
        let mut first: Vec<Option<i64>> = vec![None; fates.len()];
        let mut data: Vec<Vec<(i64, Seen)>> = vec![Vec::new(); fates.len()];
        for round in 0..batches {
            for (p, _) in fates.iter().enumerate() {
                let pid = 1_000 + p as i64;
                let records: Vec<Record> = (0..per_batch as i64)
                    .map(|i| record(self.end + i, 16))
                    .collect();
                let spec = BatchSpec {
                    base_offset: self.end,
                    transactional: true,
                    producer_id: pid,
                    producer_epoch: 0,
                    base_sequence: i32::try_from(round * per_batch).unwrap(),
                    ..BatchSpec::producer(Compression::None)
                };
                first[p].get_or_insert(self.end);
                data[p].extend(records.iter().map(|r| (r.offset, Seen::from(r))));
                let last = records.last().unwrap().offset;
                self.push(&spec, &records, last);
            }
        }
        let mut committed = Vec::new();
        for (p, fate) in fates.iter().enumerate() {
            let pid = 1_000 + p as i64;
            let marker = self.end;
            let kind: i16 = match fate {
                Fate::Abort => 0,
                Fate::Commit => 1,
            };
            let mut key = Vec::new();
            key.extend_from_slice(&0i16.to_be_bytes());
            key.extend_from_slice(&kind.to_be_bytes());
            let mut value = Vec::new();
            value.extend_from_slice(&0i16.to_be_bytes());
            value.extend_from_slice(&0i32.to_be_bytes());
            let r = Record {
                offset: marker,
                timestamp: 1_700_000_000_000,
                key: Some(Bytes::from(key)),
                value: Some(Bytes::from(value)),
                headers: vec![],
            };
            let spec = BatchSpec {
                base_offset: marker,
                transactional: true,
                producer_id: pid,
                producer_epoch: 0,
                ..BatchSpec::producer(Compression::None)
            };
            let bytes = build_batch(&spec, &[r]).unwrap();
            self.batches
                .push(patch(bytes, |b| add_attributes(b, attributes::CONTROL)));
            self.end = marker + 1;
            match fate {
                Fate::Commit => committed.append(&mut data[p]),
                Fate::Abort => self.aborted.push((
                    AbortedTxn {
                        producer_id: pid,
                        first_offset: first[p].unwrap(),
                    },
                    marker,
                )),
            }
        }
        committed.sort_by_key(|(o, _)| *o);
        self.expected.extend(committed);
    }

    /// A read_committed fetch at `offset` of at most `max_batches` batches
    /// (the batch holding `offset` first, as brokers answer).
    pub fn fetch(&self, offset: i64, max_batches: usize) -> PartitionData {
        let batches: Vec<&Bytes> = self
            .batches
            .iter()
            .filter(|b| last_offset(b) >= offset)
            .take(max_batches.max(1))
            .collect();
        let fetched_end = batches.last().map_or(offset, |b| last_offset(b));
        let aborted = self
            .aborted
            .iter()
            .filter(|(a, marker)| a.first_offset <= fetched_end && *marker >= offset)
            .map(|(a, _)| *a)
            .collect();
        let records: Vec<u8> = batches.iter().flat_map(|b| b.iter().copied()).collect();
        PartitionData {
            tp: tp(),
            fetch_offset: offset,
            records: Bytes::from(records),
            high_watermark: self.end,
            last_stable_offset: self.end,
            log_start_offset: 0,
            aborted_transactions: aborted,
            error: None,
        }
    }
}

pub fn last_offset(batch: &Bytes) -> i64 {
    RecordBatch::new(batch.clone())
        .unwrap()
        .header()
        .last_offset()
}

/// A target partition: the batches ferry produced, as the broker stores them.
#[derive(Debug, Default, Clone)]
pub struct TargetLog {
    pub records: Vec<Seen>,
    /// Each stored batch, re-based at its target offset.
    pub batches: Vec<Bytes>,
}

impl TargetLog {
    pub fn end(&self) -> i64 {
        self.records.len() as i64
    }

    /// Appends one produced batch; returns its base offset.
    pub fn append(&mut self, batch: &RecordBatch) -> i64 {
        let base = self.end();
        let mut records: Vec<Record> = batch
            .records(64 << 20)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        for (i, r) in records.iter_mut().enumerate() {
            r.offset = base + i as i64;
        }
        self.records.extend(records.iter().map(Seen::from));
        let spec = BatchSpec {
            base_offset: base,
            ..BatchSpec::producer(Compression::None)
        };
        self.batches.push(build_batch(&spec, &records).unwrap());
        base
    }

    /// The target loses its last `batches` batches (an unclean leader
    /// election: logs are truncated at batch boundaries).
    pub fn truncate_batches(&mut self, batches: usize) {
        for _ in 0..batches.min(self.batches.len()) {
            let last = self.batches.pop().unwrap();
            let count = RecordBatch::new(last).unwrap().header().record_count;
            let keep = self.records.len() - usize::try_from(count).unwrap();
            self.records.truncate(keep);
        }
    }

    /// What a fetch at the last offset returns: the last batch.
    pub fn tail(&self) -> Bytes {
        self.batches.last().cloned().unwrap_or_default()
    }
}
