//! Reading one partition as ferry forwards it: read_committed, aborted
//! transactions and control batches dropped, CRCs checked, each record
//! reduced to a fingerprint. Reading goes in chunks of a few MiB, forwards
//! or backwards, so memory does not grow with the partition.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferry_client::{Client, ClientError, FetchOptions, FetchedPartition, Isolation, KafkaCode};
use ferry_wire::batch::{BatchIter, FetchedBatch};
use ferry_wire::record::Record;
use ferry_wire::txn::{AbortedTxnFilter, BatchFate};

use super::align::{Rec, Stream};

/// Bytes of record batches one fetch (and one backward chunk) aims for.
const CHUNK_BYTES: usize = 4 << 20;
/// Bound on one batch's decompressed size (the engine's own default).
const DECOMPRESS_LIMIT: usize = 64 << 20;
/// Attempts of a fetch that fails with a retriable error (leader moves).
const FETCH_ATTEMPTS: u32 = 10;

/// The fingerprint of what must survive mirroring: key, value, headers in
/// order with duplicates, timestamp. Two SipHash passes with different
/// seeds give 128 bits, so a chance collision is out of the question.
pub fn fingerprint(r: &Record) -> u128 {
    let pass = |seed: u64| {
        let mut h = DefaultHasher::new();
        seed.hash(&mut h);
        r.timestamp.hash(&mut h);
        r.key.as_deref().hash(&mut h);
        r.value.as_deref().hash(&mut h);
        r.headers.len().hash(&mut h);
        for header in &r.headers {
            header.key.as_ref().hash(&mut h);
            header.value.as_deref().hash(&mut h);
        }
        h.finish()
    };
    (u128::from(pass(0x6665_7272_7930)) << 64) | u128::from(pass(0x7665_7269_6679))
}

/// One partition of one cluster.
#[derive(Debug, Clone)]
pub struct PartitionReader {
    client: Client,
    topic: String,
    partition: i32,
    options: FetchOptions,
}

/// What [`PartitionReader::read`] returns.
#[derive(Debug, Default)]
pub struct Chunk {
    /// Records in `[low, to)`, ascending.
    pub records: Vec<Rec>,
    /// The first offset of the first entry read (at most `from`): the chunk
    /// holds every record from here, so the next chunk down ends here.
    pub low: i64,
    /// Where reading stopped: the next offset to read.
    pub next: i64,
    /// Bytes of record batches read.
    pub bytes: usize,
    /// Nothing more to read below `to` (the end of the readable log).
    pub exhausted: bool,
}

impl PartitionReader {
    pub fn new(client: Client, topic: &str, partition: i32) -> Self {
        Self {
            client,
            topic: topic.to_owned(),
            partition,
            options: FetchOptions {
                isolation: Isolation::ReadCommitted,
                max_wait: Duration::ZERO,
                min_bytes: 1,
                max_bytes: u32::try_from(CHUNK_BYTES).unwrap_or(u32::MAX),
                partition_max_bytes: u32::try_from(CHUNK_BYTES).unwrap_or(u32::MAX),
            },
        }
    }

    /// One fetch at `offset`, retrying leader moves; an offset below the
    /// log start (retention ran meanwhile) moves to the log start.
    async fn fetch(&self, mut offset: i64) -> Result<(i64, FetchedPartition)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .fetch_raw(&self.topic, self.partition, offset, &self.options)
                .await;
            let retry = match result {
                Ok(f) => match f.error {
                    None => return Ok((offset, f)),
                    Some(KafkaCode::OFFSET_OUT_OF_RANGE) if offset < f.log_start_offset => {
                        offset = f.log_start_offset;
                        continue;
                    }
                    Some(code) if code.is_retriable() && attempt < FETCH_ATTEMPTS => {
                        code.to_string()
                    }
                    Some(code) => bail!(
                        "{}-{}: fetch at offset {offset} failed: {code}",
                        self.topic,
                        self.partition
                    ),
                },
                Err(e) if e.is_retriable() && attempt < FETCH_ATTEMPTS => e.to_string(),
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "{}-{}: fetch at offset {offset}",
                            self.topic, self.partition
                        )
                    });
                }
            };
            tracing::debug!(topic = %self.topic, partition = self.partition, %retry, "fetch retried");
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            let _ = self.client.refresh_metadata(Some(&[&self.topic])).await;
        }
    }

    /// Reads forwards from `from`, keeping records in `[low, to)` (see
    /// [`Chunk::low`]) until `to` or about `budget` bytes.
    pub async fn read(&self, from: i64, to: i64, budget: usize) -> Result<Chunk> {
        let mut chunk = Chunk {
            low: from,
            next: from,
            ..Chunk::default()
        };
        let mut first = true;
        while chunk.next < to && chunk.bytes < budget {
            let (offset, fetched) = self.fetch(chunk.next).await?;
            if first && offset > from {
                chunk.low = offset; // retention moved the log start past `from`
            }
            let mut filter = AbortedTxnFilter::new(fetched.aborted_transactions.iter().copied());
            let before = offset;
            chunk.next = offset;
            for entry in BatchIter::new(fetched.records.clone()) {
                let entry = entry.with_context(|| self.at(chunk.next))?;
                let (first_offset, records) = match &entry {
                    FetchedBatch::V2(b) => {
                        let h = b.header();
                        if h.base_offset >= to {
                            chunk.next = to;
                            break;
                        }
                        b.verify_crc().with_context(|| self.at(h.base_offset))?;
                        let keep =
                            match filter.classify(b).with_context(|| self.at(h.base_offset))? {
                                BatchFate::Data => h.record_count > 0,
                                BatchFate::Aborted | BatchFate::Control(_) => false,
                            };
                        let records = if keep {
                            b.records(DECOMPRESS_LIMIT)
                                .and_then(|rs| rs.collect::<Result<Vec<_>, _>>())
                                .with_context(|| self.at(h.base_offset))?
                        } else {
                            Vec::new()
                        };
                        (h.base_offset, records)
                    }
                    FetchedBatch::Legacy(m) => {
                        m.verify_crc().with_context(|| self.at(m.offset()))?;
                        let records = m
                            .records(DECOMPRESS_LIMIT)
                            .with_context(|| self.at(m.offset()))?;
                        let first = records.first().map_or(m.offset(), |r| r.offset);
                        (first, records)
                    }
                };
                if first {
                    chunk.low = chunk.low.min(first_offset);
                    first = false;
                }
                for r in &records {
                    if r.offset >= chunk.low && r.offset < to {
                        chunk.records.push(Rec {
                            offset: r.offset,
                            fp: fingerprint(r),
                        });
                    }
                }
                chunk.bytes += entry.len();
                chunk.next = entry.next_offset();
                if chunk.next >= to {
                    break;
                }
            }
            if chunk.next == before {
                // No complete batch: the end of what read_committed may see.
                chunk.exhausted = true;
                break;
            }
        }
        Ok(chunk)
    }

    /// The record at `offset`, read again to describe a difference.
    pub async fn record_at(&self, offset: i64) -> Result<Option<Record>> {
        let (_, fetched) = self.fetch(offset).await?;
        for entry in BatchIter::new(fetched.records.clone()) {
            let records = match entry.with_context(|| self.at(offset))? {
                FetchedBatch::V2(b) if b.header().is_control() => continue,
                FetchedBatch::V2(b) => b
                    .records(DECOMPRESS_LIMIT)
                    .and_then(|rs| rs.collect::<Result<Vec<_>, _>>())?,
                FetchedBatch::Legacy(m) => m.records(DECOMPRESS_LIMIT)?,
            };
            if let Some(r) = records.into_iter().find(|r| r.offset == offset) {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    fn at(&self, offset: i64) -> String {
        format!("{}-{} at offset {offset}", self.topic, self.partition)
    }
}

/// Log start and end (last stable offset) of `partitions` of `topic`.
pub async fn log_bounds(
    client: &Client,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i64, i64)>, ClientError> {
    use ferry_client::OffsetSpec;
    let starts = client
        .list_offsets(topic, partitions, OffsetSpec::Earliest)
        .await?;
    let ends = client
        .list_offsets(topic, partitions, OffsetSpec::Latest)
        .await?;
    Ok(starts
        .iter()
        .zip(&ends)
        .map(|((_, s), (_, e))| (*s, *e))
        .collect())
}

/// A partition's records in `[low, end)`, newest first, read in chunks
/// going down; chunk boundaries fall on batch boundaries, so no batch is
/// decompressed twice.
#[derive(Debug)]
pub struct Backward {
    reader: PartitionReader,
    low: i64,
    /// Everything from here up has been read.
    end: i64,
    /// Offsets per chunk, adapted to the record size.
    step: i64,
    buf: VecDeque<Rec>,
}

impl Backward {
    pub fn new(reader: PartitionReader, low: i64, end: i64) -> Self {
        Self {
            reader,
            low,
            end,
            step: 1024,
            buf: VecDeque::new(),
        }
    }

    async fn load(&mut self) -> Result<bool> {
        if self.end <= self.low {
            return Ok(false);
        }
        let from = self.end.saturating_sub(self.step).max(self.low);
        let chunk = self.reader.read(from, self.end, usize::MAX).await?;
        let covered = (self.end - chunk.low).max(1);
        if chunk.bytes > 0 {
            // Aim the next chunk at CHUNK_BYTES from this one's density.
            let per_offset = (i64::try_from(chunk.bytes).unwrap_or(i64::MAX) / covered).max(1);
            let chunk_bytes = i64::try_from(CHUNK_BYTES).unwrap_or(i64::MAX);
            self.step = (chunk_bytes / per_offset).clamp(16, 1 << 20);
        } else {
            // Nothing there (compacted away, or only skipped batches): widen.
            self.step = self.step.saturating_mul(4).min(1 << 24);
        }
        self.end = chunk.low.min(from);
        self.buf.extend(chunk.records.into_iter().rev());
        Ok(true)
    }
}

impl Stream for Backward {
    async fn peek(&mut self, i: usize) -> Result<Option<Rec>> {
        while self.buf.len() <= i {
            if !self.load().await? {
                return Ok(None);
            }
        }
        Ok(self.buf.get(i).copied())
    }

    fn advance(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }
}

/// A partition's records from `next` to `end`, oldest first.
#[derive(Debug)]
pub struct Forward {
    reader: PartitionReader,
    next: i64,
    end: i64,
    done: bool,
    buf: VecDeque<Rec>,
}

impl Forward {
    pub fn new(reader: PartitionReader, from: i64, end: i64) -> Self {
        Self {
            reader,
            next: from,
            end,
            done: false,
            buf: VecDeque::new(),
        }
    }
}

impl Stream for Forward {
    async fn peek(&mut self, i: usize) -> Result<Option<Rec>> {
        while self.buf.len() <= i && !self.done {
            if self.next >= self.end {
                self.done = true;
                break;
            }
            let chunk = self.reader.read(self.next, self.end, CHUNK_BYTES).await?;
            // Records below `next` were taken with the previous chunk.
            let next = self.next;
            self.buf
                .extend(chunk.records.into_iter().filter(|r| r.offset >= next));
            self.next = chunk.next;
            self.done = chunk.exhausted;
        }
        Ok(self.buf.get(i).copied())
    }

    fn advance(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }
}
