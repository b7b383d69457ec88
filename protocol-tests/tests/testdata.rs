//! Every captured batch parses, passes its CRC check, decodes to exactly what
//! independent clients read, survives the slow path unchanged, and forwards
//! through the fast path with a valid patched CRC.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet};

use bytes::BytesMut;
use ferry_engine::plan::{PartitionPlanner, Plan, PlanConfig, SlowPathReason, TopicPartition};
use ferry_protocol_tests::{Case, ExpectedRecord, cases};
use ferry_wire::batch::{BatchIter, FetchedBatch, RecordBatch, TimestampType};
use ferry_wire::codec::Compression;
use ferry_wire::record::Record;
use ferry_wire::reencode::{ReencodeOptions, reencode};
use ferry_wire::txn::{AbortedTxn, AbortedTxnFilter, BatchFate};

const LIMIT: usize = 64 << 20;

fn batches(case: &Case) -> (Vec<RecordBatch>, usize) {
    let mut iter = BatchIter::new(case.records.clone());
    let out = iter
        .by_ref()
        .map(|e| match e {
            Ok(FetchedBatch::V2(b)) => b,
            Ok(FetchedBatch::Legacy(_)) => {
                panic!("{}: legacy message from a 4.x broker", case.name)
            }
            Err(e) => panic!("{}: {e}", case.name),
        })
        .collect();
    (out, iter.incomplete_tail())
}

fn aborted(case: &Case) -> Vec<AbortedTxn> {
    case.fetch
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| AbortedTxn {
            producer_id: a.producer_id,
            first_offset: a.first_offset,
        })
        .collect()
}

fn data_records(batch: &RecordBatch) -> Vec<Record> {
    if batch.header().is_control() {
        return vec![];
    }
    batch
        .records(LIMIT)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("batch at {}: {e}", batch.header().base_offset))
}

fn assert_same(case: &str, got: &Record, want: &ExpectedRecord) {
    let at = format!("{case} offset {}", want.offset);
    assert_eq!(got.offset, want.offset, "{at}");
    assert_eq!(got.timestamp, want.timestamp, "{at}: timestamp");
    match (&got.key, &want.key) {
        (None, None) => {}
        (Some(g), Some(w)) => assert!(w.matches(g), "{at}: key differs"),
        (g, w) => panic!("{at}: key {g:?} vs expected {w:?}"),
    }
    match (&got.value, &want.value) {
        (None, None) => {}
        (Some(g), Some(w)) => assert!(w.matches(g), "{at}: value differs"),
        (g, w) => panic!(
            "{at}: value null-ness {} vs expected {}",
            g.is_some(),
            w.is_some()
        ),
    }
    assert_eq!(got.headers.len(), want.headers.len(), "{at}: header count");
    for (i, (g, (name, value))) in got.headers.iter().zip(&want.headers).enumerate() {
        assert_eq!(g.key, name.as_bytes(), "{at}: header {i} name");
        match (&g.value, value) {
            (None, None) => {}
            (Some(gv), Some(w)) => assert!(w.matches(gv), "{at}: header {i} value"),
            (gv, w) => panic!("{at}: header {i} value {gv:?} vs {w:?}"),
        }
    }
}

#[test]
fn testdata_covers_every_client_and_codec() {
    let cases = cases();
    assert!(
        !cases.is_empty(),
        "no cases under {}",
        ferry_protocol_tests::testdata_dir().display()
    );
    let mut seen = BTreeSet::new();
    let mut gaps = false;
    let mut control = false;
    let mut log_append = false;
    let mut partial_tail = false;
    let mut large = false;
    for case in &cases {
        let (bs, tail) = batches(case);
        partial_tail |= tail > 0;
        for b in &bs {
            let h = b.header();
            seen.insert((
                case.expected.producer.clone(),
                h.compression().unwrap().name(),
            ));
            gaps |= !h.offsets_are_contiguous();
            control |= h.is_control();
            log_append |= h.timestamp_type() == TimestampType::LogAppendTime;
            large |= data_records(b)
                .iter()
                .any(|r| r.value.as_ref().is_some_and(|v| v.len() >= 1 << 20));
        }
    }
    for producer in ["java", "librdkafka"] {
        for codec in Compression::ALL {
            assert!(
                seen.contains(&(producer.to_string(), codec.name())),
                "no {producer} batch with {codec} in testdata"
            );
        }
    }
    assert!(gaps, "no compacted batch with offset gaps");
    assert!(control, "no transaction marker batch");
    assert!(log_append, "no LogAppendTime batch");
    assert!(partial_tail, "no capture ending in a partial batch");
    assert!(large, "no record value of 1 MiB or more");
}

#[test]
fn every_batch_parses_and_passes_its_crc_check() {
    for case in cases() {
        let (bs, tail) = batches(&case);
        assert!(!bs.is_empty(), "{}: no complete batch", case.name);
        for b in &bs {
            b.verify_crc()
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        }
        if tail > 0 {
            assert!(
                case.fetch.partition_max_bytes < case.records.len() as i64 + 61,
                "{}: {tail} trailing bytes but the fetch was not size-limited",
                case.name
            );
        }
        // Offsets only grow, batch after batch.
        for w in bs.windows(2) {
            assert!(
                w[1].header().base_offset > w[0].header().last_offset(),
                "{}",
                case.name
            );
        }
    }
}

/// Offsets covered by the complete batches of a capture: a fetch returns the
/// batch holding the fetch offset (so it may start earlier), never crosses a
/// log segment, and may end in a partial batch, so the independent consumer,
/// which read the whole topic, is compared over this range only.
fn fetched_range(bs: &[RecordBatch]) -> std::ops::RangeInclusive<i64> {
    let first = bs.first().map_or(0, |b| b.header().base_offset);
    let last = bs.last().map_or(-1, |b| b.header().last_offset());
    first..=last
}

#[test]
fn records_decode_to_what_librdkafka_consumers_read() {
    for case in cases() {
        let (bs, _) = batches(&case);
        let range = fetched_range(&bs);
        let decoded: Vec<Record> = bs.iter().flat_map(data_records).collect();
        let expected: BTreeMap<i64, &ExpectedRecord> = case
            .expected
            .records
            .iter()
            .filter(|r| range.contains(&r.offset))
            .map(|r| (r.offset, r))
            .collect();
        let decoded_offsets: Vec<i64> = decoded.iter().map(|r| r.offset).collect();
        let expected_offsets: Vec<i64> = expected.keys().copied().collect();
        assert_eq!(
            decoded_offsets, expected_offsets,
            "{}: offsets in {range:?}",
            case.name
        );
        for r in &decoded {
            let want = expected[&r.offset];
            assert_same(&case.name, r, want);
            let lat = want.timestamp_type == "log_append";
            let batch_lat = bs
                .iter()
                .find(|b| {
                    b.header().base_offset <= r.offset && r.offset <= b.header().last_offset()
                })
                .map(|b| b.header().timestamp_type() == TimestampType::LogAppendTime);
            assert_eq!(
                batch_lat,
                Some(lat),
                "{} offset {}: timestamp type",
                case.name,
                r.offset
            );
        }
    }
}

#[test]
fn aborted_transactions_are_filtered_like_a_read_committed_consumer() {
    let mut checked = 0;
    // Only read_committed fetches carry the aborted-transactions list.
    for case in cases().into_iter().filter(|c| c.fetch.isolation_level == 1) {
        checked += 1;
        let (bs, _) = batches(&case);
        let mut filter = AbortedTxnFilter::new(aborted(&case));
        let mut visible = Vec::new();
        for b in &bs {
            if filter.classify(b).unwrap() == BatchFate::Data {
                visible.extend(data_records(b).iter().map(|r| r.offset));
            }
        }
        let range = fetched_range(&bs);
        let stable = case.fetch.last_stable_offset;
        let want: Vec<i64> = case
            .expected
            .committed_offsets
            .iter()
            .copied()
            .filter(|&o| range.contains(&o) && o < stable)
            .collect();
        visible.retain(|&o| o < stable);
        assert_eq!(visible, want, "{}: read_committed view differs", case.name);
    }
    assert!(checked >= 2, "testdata should hold read_committed captures");
}

#[test]
fn slow_path_reencodes_every_batch_to_the_same_records() {
    for case in cases() {
        let (bs, _) = batches(&case);
        for b in bs.iter().filter(|b| !b.header().is_control()) {
            let original = data_records(b);
            if original.is_empty() {
                continue;
            }
            for codec in [None, Some(Compression::Zstd), Some(Compression::None)] {
                let opts = ReencodeOptions {
                    compression: codec,
                    max_batch_bytes: 4 << 20,
                    decompress_limit: LIMIT,
                    from_offset: i64::MIN,
                };
                let out = reencode(&FetchedBatch::V2(b.clone()), &opts)
                    .unwrap_or_else(|e| panic!("{}: {e}", case.name));
                let mut again = Vec::new();
                for rb in &out {
                    rb.batch.verify_crc().unwrap();
                    assert!(rb.batch.header().offsets_are_contiguous());
                    for (rec, &src) in data_records(&rb.batch).into_iter().zip(&rb.source_offsets) {
                        again.push(Record { offset: src, ..rec });
                    }
                }
                assert_eq!(
                    again,
                    original,
                    "{}: batch at {} via {codec:?}",
                    case.name,
                    b.header().base_offset
                );
            }
        }
    }
}

#[test]
fn fast_path_forwards_payload_bytes_unchanged_with_a_valid_crc() {
    let mut fast = 0;
    let mut slow = BTreeMap::<String, usize>::new();
    for case in cases() {
        let (bs, _) = batches(&case);
        let tp = TopicPartition {
            topic: case.fetch.topic.as_str().into(),
            partition: case.fetch.partition,
        };
        // As the engine will: the target topic gets the source's max.message.bytes,
        // which for the large-value cases is above Kafka's 1 MiB default.
        let config = PlanConfig {
            max_batch_bytes: 8 << 20,
            ..PlanConfig::default()
        };
        let mut planner = PartitionPlanner::new(tp, case.fetch.fetch_offset, config);
        let plans = planner
            .plan_fetch(bs.iter().cloned().map(FetchedBatch::V2), aborted(&case))
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let mut scratch = BytesMut::new();
        for (_, plan) in plans {
            match plan {
                Plan::Forward { batch, mut header } => {
                    header.producer_id = 1000;
                    header.producer_epoch = 0;
                    header.base_sequence = fast;
                    let out = batch.rewrite_header(&header, &mut scratch).unwrap();
                    assert_eq!(
                        out.payload().as_ptr(),
                        batch.payload().as_ptr(),
                        "payload copied"
                    );
                    let sent = RecordBatch::new(out.to_contiguous()).unwrap();
                    sent.verify_crc().unwrap();
                    assert_eq!(sent.header().base_offset, 0);
                    assert!(!sent.header().is_transactional());
                    fast += 1;
                }
                Plan::Reencode { reason, .. } => {
                    *slow.entry(format!("{reason:?}")).or_default() += 1;
                    if case.name.contains("logappend") {
                        assert_eq!(reason, SlowPathReason::LogAppendTime);
                    }
                }
                Plan::Skip(_) => {}
            }
        }
    }
    println!("fast path: {fast} batches; slow path: {slow:?}");
    assert!(fast > 0);
    assert!(
        slow.contains_key("OffsetGaps"),
        "the compacted case should need re-encoding"
    );
}
