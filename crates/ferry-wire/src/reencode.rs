//! The slow path: turn a batch the target broker would refuse as-is into one
//! or more batches it accepts.
//!
//! Used for compacted batches with offset gaps, batches larger than the
//! target's `max.message.bytes` (split), legacy v0/v1 messages, LogAppendTime
//! batches (the source append time becomes each record's CreateTime), and a
//! batch that straddles the resume position (records before it are dropped).
//! Output batches look like a plain producer's: base offset 0, contiguous
//! offset deltas, no producer identity, not transactional. The caller sets its
//! own producer id/epoch/sequence with [`crate::batch::RecordBatch::rewrite_header`].

use bytes::Bytes;

use crate::batch::{FetchedBatch, RECORD_BATCH_OVERHEAD, RecordBatch};
use crate::builder::{BatchSpec, build_batch};
use crate::codec::Compression;
use crate::record::Record;
use crate::{Result, WireError};

/// How to re-encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReencodeOptions {
    /// Output codec; `None` keeps the source batch's codec.
    pub compression: Option<Compression>,
    /// Largest output batch in bytes (the target topic's `max.message.bytes`).
    pub max_batch_bytes: usize,
    /// Bound on the decompressed size of one source batch.
    pub decompress_limit: usize,
    /// Records with a lower offset are dropped (resume inside a batch).
    pub from_offset: i64,
}

impl Default for ReencodeOptions {
    fn default() -> Self {
        Self {
            compression: None,
            max_batch_bytes: 1_048_588, // Kafka's default max.message.bytes
            decompress_limit: 64 * 1024 * 1024,
            from_offset: i64::MIN,
        }
    }
}

/// One output batch and the source offsets of its records, in order (record
/// `i` of `batch` came from `source_offsets[i]`): what an offset map needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReencodedBatch {
    pub batch: RecordBatch,
    pub source_offsets: Vec<i64>,
}

/// Re-encodes one fetched entry. Returns no batches if every record lies
/// before `from_offset`. Control batches are refused: markers cannot be
/// produced by a client, so they never reach this path.
pub fn reencode(entry: &FetchedBatch, opts: &ReencodeOptions) -> Result<Vec<ReencodedBatch>> {
    let (records, source_codec) = match entry {
        FetchedBatch::V2(b) => {
            if b.header().is_control() {
                return Err(WireError::Encode {
                    what: "control batch",
                    detail: format!(
                        "batch at offset {} is a transaction marker and cannot be re-produced",
                        b.header().base_offset
                    ),
                });
            }
            let records = b
                .records(opts.decompress_limit)?
                .collect::<Result<Vec<_>>>()?;
            (records, b.header().compression()?)
        }
        FetchedBatch::Legacy(m) => (m.records(opts.decompress_limit)?, m.compression()?),
    };
    let records: Vec<Record> = records
        .into_iter()
        .filter(|r| r.offset >= opts.from_offset)
        .collect();
    let spec = BatchSpec::producer(opts.compression.unwrap_or(source_codec));
    let mut out = Vec::new();
    for chunk in chunk_by_estimate(&records, opts.max_batch_bytes) {
        build_fitting(&spec, chunk, opts.max_batch_bytes, &mut out)?;
    }
    Ok(out)
}

/// Greedy split on the uncompressed size, so that most chunks fit on the first
/// try; compression only shrinks well-behaved data, and [`build_fitting`]
/// handles the rest.
pub(crate) fn chunk_by_estimate(records: &[Record], max: usize) -> Vec<&[Record]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut size = RECORD_BATCH_OVERHEAD;
    for (i, r) in records.iter().enumerate() {
        let len = r.encoded_len(i32::try_from(i - start).unwrap_or(i32::MAX), 0);
        if i > start && size + len > max {
            chunks.push(&records[start..i]);
            start = i;
            size = RECORD_BATCH_OVERHEAD;
        }
        size += len;
    }
    if start < records.len() {
        chunks.push(&records[start..]);
    }
    chunks
}

pub(crate) fn build_fitting(
    spec: &BatchSpec,
    records: &[Record],
    max: usize,
    out: &mut Vec<ReencodedBatch>,
) -> Result<()> {
    let bytes: Bytes = build_batch(spec, records)?;
    if bytes.len() <= max {
        out.push(ReencodedBatch {
            batch: RecordBatch::new(bytes)?,
            source_offsets: records.iter().map(|r| r.offset).collect(),
        });
        return Ok(());
    }
    if let [only] = records {
        return Err(WireError::RecordTooLarge {
            offset: only.offset,
            size: bytes.len(),
            max,
        });
    }
    let (a, b) = records.split_at(records.len() / 2);
    build_fitting(spec, a, max, out)?;
    build_fitting(spec, b, max, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::attributes;
    use crate::builder::OffsetDeltas;
    use crate::legacy::LegacyMessage;
    use crate::legacy::encode_message;

    fn rec(offset: i64, value_len: usize) -> Record {
        Record {
            offset,
            timestamp: 1_000 + offset,
            key: Some(Bytes::from(format!("key-{offset}"))),
            value: Some(Bytes::from(vec![b'x'; value_len])),
            headers: vec![],
        }
    }

    fn source(records: &[Record], codec: Compression) -> FetchedBatch {
        let spec = BatchSpec {
            base_offset: records[0].offset,
            offset_deltas: OffsetDeltas::FromRecords,
            producer_id: 9,
            producer_epoch: 1,
            base_sequence: 0,
            ..BatchSpec::producer(codec)
        };
        FetchedBatch::V2(RecordBatch::new(build_batch(&spec, records).unwrap()).unwrap())
    }

    fn decoded(out: &[ReencodedBatch]) -> Vec<Record> {
        out.iter()
            .flat_map(|b| b.batch.records(1 << 24).unwrap().map(|r| r.unwrap()))
            .collect()
    }

    #[test]
    fn compacted_gaps_become_contiguous_batches() {
        let recs = vec![rec(10, 5), rec(13, 5), rec(20, 5)];
        let out = reencode(
            &source(&recs, Compression::Lz4),
            &ReencodeOptions::default(),
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        let h = out[0].batch.header();
        assert!(h.offsets_are_contiguous());
        assert_eq!(
            (h.base_offset, h.producer_id, h.compression().unwrap()),
            (0, -1, Compression::Lz4)
        );
        assert_eq!(out[0].source_offsets, [10, 13, 20]);
        let values: Vec<_> = decoded(&out).into_iter().map(|r| r.value).collect();
        assert_eq!(
            values,
            recs.iter().map(|r| r.value.clone()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn oversized_batches_are_split_under_the_limit() {
        let recs: Vec<Record> = (0..50).map(|o| rec(o, 1000)).collect();
        let opts = ReencodeOptions {
            max_batch_bytes: 8 * 1024,
            compression: Some(Compression::None),
            ..ReencodeOptions::default()
        };
        let out = reencode(&source(&recs, Compression::None), &opts).unwrap();
        assert!(out.len() >= 7);
        assert!(out.iter().all(|b| b.batch.len() <= 8 * 1024));
        let offsets: Vec<i64> = out.iter().flat_map(|b| b.source_offsets.clone()).collect();
        assert_eq!(offsets, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn a_record_larger_than_the_limit_is_a_clear_error() {
        let recs = vec![rec(0, 10), rec(1, 5000)];
        let opts = ReencodeOptions {
            max_batch_bytes: 1024,
            ..ReencodeOptions::default()
        };
        assert!(matches!(
            reencode(&source(&recs, Compression::None), &opts),
            Err(WireError::RecordTooLarge { offset: 1, .. })
        ));
    }

    #[test]
    fn records_before_the_resume_offset_are_dropped() {
        let recs: Vec<Record> = (100..110).map(|o| rec(o, 3)).collect();
        let opts = ReencodeOptions {
            from_offset: 105,
            ..ReencodeOptions::default()
        };
        let out = reencode(&source(&recs, Compression::Zstd), &opts).unwrap();
        assert_eq!(out[0].source_offsets, (105..110).collect::<Vec<_>>());
        let past = ReencodeOptions {
            from_offset: 200,
            ..ReencodeOptions::default()
        };
        assert!(
            reencode(&source(&recs, Compression::Zstd), &past)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn log_append_time_becomes_create_time_with_the_append_time() {
        let recs = vec![rec(0, 1), rec(1, 1)];
        let FetchedBatch::V2(b) = source(&recs, Compression::None) else {
            unreachable!()
        };
        // Flip the batch to LogAppendTime with a broker-set maxTimestamp.
        let mut h = *b.header();
        h.attributes |= attributes::LOG_APPEND_TIME;
        h.max_timestamp = 777_777;
        let flipped = b.rewrite_header(&h, &mut bytes::BytesMut::new()).unwrap();
        let lat = FetchedBatch::V2(RecordBatch::new(flipped.to_contiguous()).unwrap());
        let out = reencode(&lat, &ReencodeOptions::default()).unwrap();
        assert_eq!(
            out[0].batch.header().attributes & attributes::LOG_APPEND_TIME,
            0
        );
        assert!(decoded(&out).iter().all(|r| r.timestamp == 777_777));
    }

    #[test]
    fn legacy_messages_become_v2() {
        let m = LegacyMessage::new(Bytes::from(encode_message(
            7,
            1,
            0,
            55,
            Some(b"k"),
            Some(b"v"),
        )))
        .unwrap();
        let out = reencode(&FetchedBatch::Legacy(m), &ReencodeOptions::default()).unwrap();
        assert_eq!(out[0].source_offsets, [7]);
        let r = &decoded(&out)[0];
        assert_eq!((r.timestamp, r.value.as_deref()), (55, Some(&b"v"[..])));
    }
}
