//! Merging consecutive small batches of one partition into one (the opt-in
//! `[flows.batching]` coalescing): a target broker validates and appends
//! per batch, so thousands of 3 KiB batches cost it far more than a few
//! hundred KiB-sized ones holding the same records.
//!
//! The records are decoded and built into new batches in the codec of the
//! sources (or the one asked for), keeping every record's key, value,
//! headers and timestamp and their order. Uncompressed batches go the same
//! way: their records' offset and timestamp deltas are relative to each
//! source batch and must be re-based anyway, and without a codec that is
//! little more than a copy.

use crate::batch::RecordBatch;
use crate::builder::BatchSpec;
use crate::record::Record;
use crate::reencode::{ReencodeOptions, ReencodedBatch, build_fitting, chunk_by_estimate};
use crate::{Result, WireError};

/// Merges `batches` (consecutive data batches of one partition, in offset
/// order, all in the same codec) into as few batches as fit
/// `opts.max_batch_bytes`, usually one. Each output batch lists the source
/// offset of each of its records. `opts.from_offset` is ignored: every
/// record of every batch is kept.
pub fn merge(batches: &[RecordBatch], opts: &ReencodeOptions) -> Result<Vec<ReencodedBatch>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let codec = first.header().compression()?;
    let mut records: Vec<Record> = Vec::new();
    for b in batches {
        let h = b.header();
        if h.is_control() || h.compression()? != codec {
            return Err(WireError::Encode {
                what: "coalesced batch",
                detail: format!(
                    "batch at offset {} is a control batch or in another codec than the batch at {}",
                    h.base_offset,
                    first.header().base_offset
                ),
            });
        }
        for r in b.records(opts.decompress_limit)? {
            records.push(r?);
        }
    }
    let spec = BatchSpec::producer(opts.compression.unwrap_or(codec));
    let mut out = Vec::new();
    for chunk in chunk_by_estimate(&records, opts.max_batch_bytes) {
        build_fitting(&spec, chunk, opts.max_batch_bytes, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::batch::attributes;
    use crate::builder::{OffsetDeltas, build_batch};
    use crate::codec::Compression;
    use crate::record::Header;

    fn rec(offset: i64) -> Record {
        Record {
            offset,
            timestamp: 1_700_000_000_000 + offset * 7,
            key: (offset % 3 != 0).then(|| Bytes::from(format!("k{offset}"))),
            value: (offset % 5 != 0).then(|| Bytes::from(format!("value {offset} ").repeat(20))),
            headers: if offset % 2 == 0 {
                vec![Header {
                    key: Bytes::from_static(b"h"),
                    value: Some(Bytes::from(offset.to_string())),
                }]
            } else {
                Vec::new()
            },
        }
    }

    fn batch(offsets: std::ops::Range<i64>, codec: Compression) -> RecordBatch {
        let records: Vec<Record> = offsets.map(rec).collect();
        let spec = BatchSpec {
            base_offset: records[0].offset,
            offset_deltas: OffsetDeltas::FromRecords,
            producer_id: 4,
            producer_epoch: 0,
            base_sequence: 0,
            ..BatchSpec::producer(codec)
        };
        RecordBatch::new(build_batch(&spec, &records).unwrap()).unwrap()
    }

    /// Key, value, headers, timestamp.
    type Content = (Option<Bytes>, Option<Bytes>, Vec<Header>, i64);

    fn content(out: &[ReencodedBatch]) -> Vec<Content> {
        out.iter()
            .flat_map(|b| b.batch.records(1 << 24).unwrap().map(|r| r.unwrap()))
            .map(|r| (r.key, r.value, r.headers, r.timestamp))
            .collect()
    }

    #[test]
    fn every_record_survives_in_order_in_each_codec() {
        for codec in Compression::ALL {
            // A gap (20..25 compacted away) between the second and third batch.
            let sources = [
                batch(10..14, codec),
                batch(14..20, codec),
                batch(25..27, codec),
            ];
            let out = merge(&sources, &ReencodeOptions::default()).unwrap();
            assert_eq!(out.len(), 1, "{codec:?}");
            let h = out[0].batch.header();
            assert_eq!(h.compression().unwrap(), codec);
            assert_eq!(h.record_count, 12);
            assert!(h.offsets_are_contiguous());
            assert_eq!(h.producer_id, -1);
            assert_eq!(h.attributes & attributes::TRANSACTIONAL, 0);
            let want: Vec<i64> = (10..20).chain(25..27).collect();
            assert_eq!(out[0].source_offsets, want);
            let expected: Vec<_> = want
                .iter()
                .map(|&o| {
                    let r = rec(o);
                    (r.key, r.value, r.headers, r.timestamp)
                })
                .collect();
            assert_eq!(content(&out), expected, "{codec:?}");
            assert_eq!(h.max_timestamp, rec(26).timestamp);
        }
    }

    #[test]
    fn the_merge_is_split_to_fit_the_target() {
        let sources: Vec<RecordBatch> = (0..8)
            .map(|i| batch(i * 10..i * 10 + 10, Compression::None))
            .collect();
        let opts = ReencodeOptions {
            max_batch_bytes: 4096,
            ..ReencodeOptions::default()
        };
        let out = merge(&sources, &opts).unwrap();
        assert!(out.len() > 1);
        assert!(out.iter().all(|b| b.batch.len() <= 4096));
        let offsets: Vec<i64> = out.iter().flat_map(|b| b.source_offsets.clone()).collect();
        assert_eq!(offsets, (0..80).collect::<Vec<_>>());
    }

    #[test]
    fn mixed_codecs_are_refused() {
        let sources = [
            batch(0..2, Compression::Lz4),
            batch(2..4, Compression::Zstd),
        ];
        assert!(matches!(
            merge(&sources, &ReencodeOptions::default()),
            Err(WireError::Encode { .. })
        ));
        assert!(merge(&[], &ReencodeOptions::default()).unwrap().is_empty());
    }
}
