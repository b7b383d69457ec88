//! Builds RecordBatch v2 bytes from records: the encoding half of the slow path.

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{
    BatchHeader, CRC_COVERED_START, CRC_OFFSET, MAGIC_V2, NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, RECORD_BATCH_OVERHEAD, attributes,
};
use crate::codec::{self, Compression};
use crate::record::Record;
use crate::{Result, WireError};

/// How the builder numbers records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetDeltas {
    /// 0, 1, 2, …: what a producer writes and what a broker accepts.
    Contiguous,
    /// `record.offset - base_offset`: keeps gaps (as compaction leaves them).
    FromRecords,
}

/// Everything about a batch to build except its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpec {
    pub base_offset: i64,
    pub compression: Compression,
    pub offset_deltas: OffsetDeltas,
    pub transactional: bool,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub partition_leader_epoch: i32,
}

impl BatchSpec {
    /// A non-idempotent, non-transactional batch as a plain producer would send it.
    pub fn producer(compression: Compression) -> Self {
        Self {
            base_offset: 0,
            compression,
            offset_deltas: OffsetDeltas::Contiguous,
            transactional: false,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        }
    }
}

/// Encodes `records` into one CreateTime batch. The first record's timestamp is
/// the base timestamp (as Kafka's Java producer does).
pub fn build_batch(spec: &BatchSpec, records: &[Record]) -> Result<Bytes> {
    let first = records.first().ok_or(WireError::Encode {
        what: "record batch",
        detail: "a batch needs at least one record (brokers refuse empty batches)".into(),
    })?;
    let base_timestamp = first.timestamp;
    let mut max_timestamp = i64::MIN;
    let mut raw = BytesMut::with_capacity(
        records
            .iter()
            .map(|r| r.encoded_len(0, 0) + 16)
            .sum::<usize>(),
    );
    let mut last_delta = 0i32;
    for (i, r) in records.iter().enumerate() {
        let delta = match spec.offset_deltas {
            OffsetDeltas::Contiguous => i32::try_from(i).ok(),
            OffsetDeltas::FromRecords => r
                .offset
                .checked_sub(spec.base_offset)
                .and_then(|d| i32::try_from(d).ok())
                .filter(|d| *d >= last_delta),
        }
        .ok_or_else(|| WireError::Encode {
            what: "record batch",
            detail: format!("record offset {} cannot be expressed as a delta", r.offset),
        })?;
        last_delta = delta;
        max_timestamp = max_timestamp.max(r.timestamp);
        r.encode(&mut raw, delta, r.timestamp.wrapping_sub(base_timestamp))?;
    }
    let payload = match spec.compression {
        Compression::None => raw.freeze(),
        codec => Bytes::from(codec::compress(codec, &raw)?),
    };
    let batch_length = i32::try_from(RECORD_BATCH_OVERHEAD - 12 + payload.len()).map_err(|_| {
        WireError::Encode {
            what: "record batch",
            detail: format!(
                "{} payload bytes exceed the 2 GiB batch limit",
                payload.len()
            ),
        }
    })?;
    let mut attrs = i16::from(spec.compression.id());
    if spec.transactional {
        attrs |= attributes::TRANSACTIONAL;
    }
    let header = BatchHeader {
        base_offset: spec.base_offset,
        batch_length,
        partition_leader_epoch: spec.partition_leader_epoch,
        magic: MAGIC_V2,
        crc: 0,
        attributes: attrs,
        last_offset_delta: last_delta,
        base_timestamp,
        max_timestamp,
        producer_id: spec.producer_id,
        producer_epoch: spec.producer_epoch,
        base_sequence: spec.base_sequence,
        record_count: i32::try_from(records.len()).map_err(|_| WireError::Encode {
            what: "record batch",
            detail: "more than 2^31 records".into(),
        })?,
    };
    let mut out = BytesMut::with_capacity(RECORD_BATCH_OVERHEAD + payload.len());
    out.put_slice(&header.encode());
    out.put_slice(&payload);
    let crc = crc32c::crc32c(&out[CRC_COVERED_START..]);
    out[CRC_OFFSET..CRC_COVERED_START].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::RecordBatch;
    use crate::record::Header;
    use proptest::prelude::*;

    fn arb_bytes(max: usize) -> impl Strategy<Value = Option<Bytes>> {
        prop::option::of(prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from))
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            any::<i64>(),
            arb_bytes(64),
            arb_bytes(512),
            prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 0..16), arb_bytes(32)),
                0..4,
            ),
        )
            .prop_map(|(ts, key, value, headers)| Record {
                offset: 0,
                timestamp: ts / 4,
                key,
                value,
                headers: headers
                    .into_iter()
                    .map(|(k, value)| Header {
                        key: Bytes::from(k),
                        value,
                    })
                    .collect(),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn built_batches_decode_to_the_same_records(
            records in prop::collection::vec(arb_record(), 1..40),
            codec_id in 0u8..5,
            base_offset in 0i64..1_000_000,
        ) {
            let codec = Compression::from_id(codec_id).unwrap();
            let spec = BatchSpec { base_offset, ..BatchSpec::producer(codec) };
            let bytes = build_batch(&spec, &records).unwrap();
            let batch = RecordBatch::new(bytes).unwrap();
            batch.verify_crc().unwrap();
            prop_assert!(batch.header().offsets_are_contiguous());
            let decoded: Vec<Record> = batch.records(1 << 24).unwrap().collect::<Result<_>>().unwrap();
            let expected: Vec<Record> = records.iter().enumerate().map(|(i, r)| Record {
                offset: base_offset + i as i64, ..r.clone()
            }).collect();
            prop_assert_eq!(decoded, expected);
        }
    }

    #[test]
    fn gaps_are_kept_when_asked() {
        let recs: Vec<Record> = [3i64, 5, 9]
            .iter()
            .map(|&o| Record {
                offset: o,
                timestamp: 1000 + o,
                key: Some(Bytes::from_static(b"k")),
                value: None,
                headers: vec![],
            })
            .collect();
        let spec = BatchSpec {
            base_offset: 3,
            offset_deltas: OffsetDeltas::FromRecords,
            ..BatchSpec::producer(Compression::None)
        };
        let batch = RecordBatch::new(build_batch(&spec, &recs).unwrap()).unwrap();
        assert_eq!(batch.header().last_offset(), 9);
        assert!(!batch.header().offsets_are_contiguous());
        let offsets: Vec<i64> = batch
            .records(1 << 20)
            .unwrap()
            .map(|r| r.unwrap().offset)
            .collect();
        assert_eq!(offsets, [3, 5, 9]);
    }

    #[test]
    fn empty_batches_are_refused() {
        assert!(build_batch(&BatchSpec::producer(Compression::None), &[]).is_err());
    }
}
