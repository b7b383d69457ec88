//! Real-broker tests of `ferry run` for the batches a mirror meets in real
//! clusters: data written by real independent clients (the Kafka Java
//! producer and librdkafka) in every codec, transactions with aborts, a
//! compacted topic after the cleaner ran, a LogAppendTime topic, batches over
//! the target's `max.message.bytes`, and tombstones and duplicate headers
//! through all of them.
//!
//! FERRY_KAFKA_A is the source, FERRY_KAFKA_B the target; the real binary
//! mirrors; an independent consumer (librdkafka via confluent-kafka,
//! `tests/scripts/mirror_cases.py view`) reads both sides afterwards, and the
//! raw batches are compared where ferry must forward them byte for byte.
//! Needs python3 with confluent-kafka and java (scripts/test installs both).

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::producers::{
    Produce, helper, high_watermarks, produce_real, repo, script, strings, wait_compacted,
    wait_stable,
};
use common::{
    Ferry, brokers, client, create, create_with, now_ms, read_all, records, unique, write_config,
};
use ferry_client::{Client, NewTopic, OffsetSpec, ProduceOptions};
use ferry_testkit::eventually;
use ferry_wire::batch::{RECORD_BATCH_OVERHEAD, RecordBatch, attributes};
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::{Header, Record};
use serde_json::Value;

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// What the independent consumer reads: per topic, per partition, the records
/// as testdata/gen/expected.py's `to_record` (offset, timestamp,
/// timestamp_type, key, value, headers in wire order).
type View = BTreeMap<String, Vec<Vec<Value>>>;

async fn view(bootstrap: &str, isolation: &str, topics: &[String]) -> View {
    let mut args = strings(&["view", "--bootstrap", bootstrap, "--isolation", isolation]);
    for t in topics {
        args.push("--topic".to_owned());
        args.push(t.clone());
    }
    let raw: BTreeMap<String, BTreeMap<String, Vec<Value>>> =
        serde_json::from_str(&helper(args).await).unwrap();
    raw.into_iter()
        .map(|(topic, parts)| {
            let mut by_number: Vec<(i32, Vec<Value>)> = parts
                .into_iter()
                .map(|(p, r)| (p.parse().unwrap(), r))
                .collect();
            by_number.sort_by_key(|(p, _)| *p);
            (topic, by_number.into_iter().map(|(_, r)| r).collect())
        })
        .collect()
}

/// The records without the given fields (offsets differ where ferry renumbers).
fn without(records: &[Value], fields: &[&str]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            for f in fields {
                r.as_object_mut().unwrap().remove(*f);
            }
            r
        })
        .collect()
}

fn offsets(records: &[Value]) -> Vec<i64> {
    records
        .iter()
        .map(|r| r["offset"].as_i64().unwrap())
        .collect()
}

/// The test data must contain what it claims to test: tombstones and
/// headers with duplicate names.
fn assert_has_tombstones_and_duplicate_headers(what: &str, records: &[Value]) {
    let tombstones = records.iter().filter(|r| r["value"].is_null()).count();
    let duplicate_headers = records
        .iter()
        .filter(|r| {
            let names: Vec<&Value> = r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| &h[0])
                .collect();
            names
                .iter()
                .enumerate()
                .any(|(i, n)| names[..i].contains(n))
        })
        .count();
    assert!(
        tombstones > 0 && duplicate_headers > 0,
        "{what}: {tombstones} tombstones, {duplicate_headers} records with duplicate header names"
    );
}

fn payload(b: &RecordBatch) -> &[u8] {
    &b.as_bytes()[RECORD_BATCH_OVERHEAD..]
}

fn log_tail(ferry: &Ferry) -> String {
    let log = std::fs::read_to_string(&ferry.log).unwrap_or_default();
    let mut start = log.len().saturating_sub(6000);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    log[start..].to_owned()
}

/// Waits until the target topic's high watermarks reach `want`; fails early
/// if ferry reports a stopped partition or a failed flow.
async fn wait_target(b: &Client, target: &str, want: &[i64], ferry: &Ferry) {
    let partitions = i32::try_from(want.len()).unwrap();
    eventually(
        Duration::from_secs(120),
        format!("{target} mirrored"),
        || async {
            let got = high_watermarks(b, target, partitions).await;
            if got == want {
                return Ok(());
            }
            let log = std::fs::read_to_string(&ferry.log).unwrap_or_default();
            assert!(
                !log.contains("partition stopped") && !log.contains("flow failed"),
                "{target}: ferry stopped mirroring (target {got:?}, want {want:?}):\n{}",
                log_tail(ferry)
            );
            assert!(
                got.iter().zip(want).all(|(g, w)| g <= w),
                "{target}: target {got:?} went past {want:?} (duplicates?)"
            );
            Err(format!(
                "target {got:?}, want {want:?}; log:\n{}",
                log_tail(ferry)
            ))
        },
    )
    .await;
}

/// Per-test scratch directory, flow name and ferry config matching `prefix-.*`.
fn setup(a: &str, b: &str, name: &str) -> (PathBuf, String, PathBuf) {
    let prefix = unique(name);
    let dir = std::env::temp_dir().join(format!("ferry-{prefix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_config(
        &dir,
        a,
        b,
        &format!("flow-{prefix}"),
        &format!("{prefix}-.*"),
    );
    (dir, prefix, config)
}

fn target_of(topic: &str) -> String {
    format!("src.{topic}")
}

/// Ferry's own account of the run: the "stopped: ... batches: N forwarded,
/// M re-encoded, K skipped" line of each flow, for the test output.
fn ferry_summary(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("ferry.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once("stopped:"))
        // Up to the colored `flow=` field.
        .map(|(_, s)| s.split(" \x1b").next().unwrap_or(s).trim().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

fn elapsed(t: Instant) -> String {
    format!("{:.1}s", t.elapsed().as_secs_f64())
}

/// 1 + 6. Java producer and librdkafka data in every codec: the target reads
/// exactly like the source to an independent consumer (keys, values, headers
/// with duplicates, tombstones, timestamps, offsets), and every batch's
/// compressed payload is forwarded byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_client_batches_in_every_codec_are_forwarded_byte_identical() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let t = Instant::now();
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let (dir, prefix, config) = setup(&a_addr, &b_addr, "codecs");
    let mut runs = Vec::new();
    for codec in CODECS {
        for (client, short) in [("java", "java"), ("librdkafka", "rdk")] {
            runs.push(Produce {
                client,
                topic: format!("{prefix}-{short}-{codec}"),
                codec,
            });
        }
    }
    let topics: Vec<String> = runs.iter().map(|r| r.topic.clone()).collect();
    for topic in &topics {
        create(&a, topic, 1).await;
    }
    // 200 records in batches of 50 per topic.
    let script = script(&dir, "standard", &["--records", "200", "--per-batch", "50"]).await;
    let codec_of: BTreeMap<String, &str> =
        runs.iter().map(|r| (r.topic.clone(), r.codec)).collect();
    produce_real(&a_addr, &script, runs).await;
    let produced = elapsed(t);

    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    for topic in &topics {
        let want = high_watermarks(&a, topic, 1).await;
        wait_target(&b, &target_of(topic), &want, &ferry).await;
    }
    ferry.stop();
    let mirrored = elapsed(t);

    let source = view(&a_addr, "read_committed", &topics).await;
    let targets: Vec<String> = topics.iter().map(|t| target_of(t)).collect();
    let target = view(&b_addr, "read_committed", &targets).await;
    for topic in &topics {
        let (src, dst) = (&source[topic][0], &target[&target_of(topic)][0]);
        assert_eq!(src.len(), 200, "{topic}: the producer's records");
        assert_has_tombstones_and_duplicate_headers(topic, src);
        assert_eq!(
            src, dst,
            "{topic}: the consumer's view of source and target"
        );

        let codec = Compression::ALL
            .into_iter()
            .find(|c| c.name() == codec_of[topic])
            .unwrap();
        let src = read_all(&a, topic, 0).await;
        let dst = read_all(&b, &target_of(topic), 0).await;
        // One batch per flush (linger.ms=1000); a batch leaving early on a
        // very slow machine would still have to be forwarded as it is.
        assert!(src.len() >= 4, "{topic}: {} batches", src.len());
        assert_eq!(src.len(), dst.len(), "{topic}: batch for batch");
        for (s, d) in src.iter().zip(&dst) {
            assert_eq!(
                s.header().compression().unwrap(),
                codec,
                "{topic}: source codec"
            );
            assert_eq!(
                d.header().compression().unwrap(),
                codec,
                "{topic}: target codec"
            );
            assert!(
                payload(s) == payload(d),
                "{topic}: payload of the batch at {} is not byte-identical",
                s.header().base_offset
            );
            assert_eq!(s.header().record_count, d.header().record_count);
            assert_eq!(s.header().base_timestamp, d.header().base_timestamp);
            assert_eq!(s.header().max_timestamp, d.header().max_timestamp);
        }
    }
    println!(
        "codecs: {} topics x 200 records; produced at {produced}, mirrored at {mirrored}, checked at {}; ferry: {}",
        topics.len(),
        elapsed(t),
        ferry_summary(&dir)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// 2. Java transactions (committed, aborted, interleaved with plain writes
/// and with each other), produced while ferry runs: only committed records
/// reach the target, in log order, and the target has no transaction open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_mirror_only_committed_records() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let t = Instant::now();
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let (dir, prefix, config) = setup(&a_addr, &b_addr, "txn");
    let runs: Vec<Produce> = ["none", "lz4"]
        .into_iter()
        .map(|codec| Produce {
            client: "java",
            topic: format!("{prefix}-{codec}"),
            codec,
        })
        .collect();
    let topics: Vec<String> = runs.iter().map(|r| r.topic.clone()).collect();
    for topic in &topics {
        create(&a, topic, 1).await;
    }
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    // Plain prefix, T1 committed (2 batches), T1 aborted (2 batches), T1
    // committed interleaved with T2 aborted and plain writes, T2 committed,
    // T1 committed, plain suffix (testdata/gen/recordset.py txn_script).
    let script = repo().join("testdata/gen/scripts/txn.txt");
    produce_real(&a_addr, &script, runs).await;
    let produced = elapsed(t);

    // Transaction markers are written after commit/abort returns (TV2).
    for topic in &topics {
        wait_stable(&a, topic).await;
    }
    let committed = view(&a_addr, "read_committed", &topics).await;
    let everything = view(&a_addr, "read_uncommitted", &topics).await;
    for topic in &topics {
        let want = i64::try_from(committed[topic][0].len()).unwrap();
        wait_target(&b, &target_of(topic), &[want], &ferry).await;
    }
    ferry.stop();
    let mirrored = elapsed(t);

    let targets: Vec<String> = topics.iter().map(|t| target_of(t)).collect();
    let target_committed = view(&b_addr, "read_committed", &targets).await;
    let target_all = view(&b_addr, "read_uncommitted", &targets).await;
    for topic in &topics {
        let target = target_of(topic);
        let (com, all) = (&committed[topic][0], &everything[topic][0]);
        assert_eq!(
            (all.len(), com.len()),
            (54, 36),
            "{topic}: the script's records"
        );
        let dst = &target_all[&target][0];
        // Exactly the committed records, in order, renumbered from 0.
        assert_eq!(
            without(dst, &["offset"]),
            without(com, &["offset"]),
            "{topic}: the target must hold exactly the committed records"
        );
        assert_eq!(
            offsets(dst),
            (0..i64::try_from(dst.len()).unwrap()).collect::<Vec<_>>()
        );
        let aborted: Vec<Value> = without(all, &["offset"])
            .into_iter()
            .filter(|r| !without(com, &["offset"]).contains(r))
            .collect();
        assert_eq!(aborted.len(), 18, "{topic}: aborted records in the source");
        // Exact translation of every source offset, across aborted records
        // and markers: the target offset of the first committed record at
        // or after it (the committed records are renumbered from 0).
        let committed_at = offsets(com);
        let end = offsets(all).last().copied().unwrap_or(0) + 2; // past the last marker
        let translated = common::translate(&config, topic, 0, end);
        for s in 0..end {
            let want = committed_at
                .iter()
                .position(|&o| o >= s)
                .unwrap_or(committed_at.len());
            assert_eq!(
                translated[usize::try_from(s).unwrap()],
                i64::try_from(want).unwrap(),
                "{topic}: source offset {s}"
            );
        }
        assert!(
            without(dst, &["offset"])
                .iter()
                .all(|r| !aborted.contains(r)),
            "{topic}: an aborted record reached the target"
        );
        // No open transaction: read_committed reads everything (the view
        // reached its end of partition) and the LSO is the high watermark.
        assert_eq!(
            &target_committed[&target][0], dst,
            "{topic}: read_committed"
        );
        let hw = high_watermarks(&b, &target, 1).await;
        let lso: Vec<i64> = b
            .list_offsets(&target, &[0], OffsetSpec::Latest)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        assert_eq!(
            lso, hw,
            "{target}: last stable offset below the high watermark"
        );
        // Raw: no control batch, no transactional batch; the committed data
        // batches forwarded byte for byte, in source order.
        let src = read_all(&a, topic, 0).await;
        let dst = read_all(&b, &target, 0).await;
        assert!(
            dst.iter()
                .all(|d| !d.header().is_control() && !d.header().is_transactional()),
            "{target}: control or transactional batch on the target"
        );
        let mut source_payloads = src.iter().map(payload);
        for d in &dst {
            assert!(
                source_payloads.any(|s| s == payload(d)),
                "{target}: batch at {} is not a source batch forwarded in order",
                d.header().base_offset
            );
        }
    }
    println!(
        "transactions: produced at {produced}, mirrored at {mirrored}, checked at {}; ferry: {}",
        elapsed(t),
        ferry_summary(&dir)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// 3 + 6. A compacted topic after the cleaner ran (sparse batches, gaps
/// between batches, an empty batch kept for producer state, tombstones and
/// duplicate headers still there): the target holds exactly the surviving
/// records, renumbered without gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topics_mirror_the_surviving_records() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let t = Instant::now();
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let (dir, prefix, config) = setup(&a_addr, &b_addr, "compact");
    let runs = vec![
        Produce {
            client: "java",
            topic: format!("{prefix}-java-none"),
            codec: "none",
        },
        Produce {
            client: "librdkafka",
            topic: format!("{prefix}-rdk-zstd"),
            codec: "zstd",
        },
    ];
    let topics: Vec<String> = runs.iter().map(|r| r.topic.clone()).collect();
    // As testdata/gen's java-compacted: a segment per round, cleaned at once.
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.ms", "1000"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("min.compaction.lag.ms", "0"),
        ("delete.retention.ms", "86400000"),
    ];
    for topic in &topics {
        create_with(&a, topic, 1, &configs).await;
    }
    let keys = 40;
    let script = script(
        &dir,
        "compact",
        &["--keys", &keys.to_string(), "--round-ms", "1300"],
    )
    .await;
    produce_real(&a_addr, &script, runs).await;
    let produced = elapsed(t);
    let mut source_batches = BTreeMap::new();
    for topic in &topics {
        // user-0 .. user-39 and the roll record.
        source_batches.insert(topic.clone(), wait_compacted(&a, topic, keys + 1).await);
    }
    let compacted = elapsed(t);

    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    for topic in &topics {
        let want = i64::try_from(keys + 1).unwrap();
        wait_target(&b, &target_of(topic), &[want], &ferry).await;
    }
    ferry.stop();
    let mirrored = elapsed(t);

    let source = view(&a_addr, "read_committed", &topics).await;
    let targets: Vec<String> = topics.iter().map(|t| target_of(t)).collect();
    let target = view(&b_addr, "read_committed", &targets).await;
    for topic in &topics {
        let (src, dst) = (&source[topic][0], &target[&target_of(topic)][0]);
        assert_eq!(src.len(), keys + 1, "{topic}: one record per key");
        assert_has_tombstones_and_duplicate_headers(topic, src);
        assert_eq!(
            without(dst, &["offset"]),
            without(src, &["offset"]),
            "{topic}: the surviving records, in order"
        );
        assert_eq!(
            offsets(dst),
            (0..i64::try_from(dst.len()).unwrap()).collect::<Vec<_>>(),
            "{topic}: target offsets without gaps"
        );
        // Exact translation across the compaction gaps (re-encoded batches).
        let survivors = offsets(src);
        let end = survivors.last().copied().unwrap_or(0) + 1;
        let translated = common::translate(&config, topic, 0, end);
        for s in 0..end {
            let want = survivors
                .iter()
                .position(|&o| o >= s)
                .unwrap_or(survivors.len());
            assert_eq!(
                translated[usize::try_from(s).unwrap()],
                i64::try_from(want).unwrap(),
                "{topic}: source offset {s}"
            );
        }
        let empty = source_batches[topic]
            .iter()
            .filter(|b| b.header().record_count == 0)
            .count();
        if topic.contains("-java-") {
            // The Java producer is idempotent: the cleaner keeps its last,
            // wholly overwritten batch as an empty batch (skipped by ferry).
            assert!(empty > 0, "{topic}: no empty batch left by the cleaner");
        }
        // The source still looks as compacted as when ferry read it.
        let now = read_all(&a, topic, 0).await;
        assert_eq!(records(&now), records(&source_batches[topic]));
        let dst = read_all(&b, &target_of(topic), 0).await;
        assert!(dst.iter().all(|d| d.header().offsets_are_contiguous()));
    }
    println!(
        "compaction: produced at {produced}, compacted at {compacted}, mirrored at {mirrored}, checked at {}; ferry: {}",
        elapsed(t),
        ferry_summary(&dir)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// 4. A LogAppendTime topic: the target records carry the source's append
/// time as their (create) timestamp; everything else as on the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_becomes_the_record_timestamp() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let t = Instant::now();
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let (dir, prefix, config) = setup(&a_addr, &b_addr, "lat");
    let runs = vec![
        Produce {
            client: "java",
            topic: format!("{prefix}-java-lz4"),
            codec: "lz4",
        },
        Produce {
            client: "librdkafka",
            topic: format!("{prefix}-rdk-none"),
            codec: "none",
        },
    ];
    let topics: Vec<String> = runs.iter().map(|r| r.topic.clone()).collect();
    for topic in &topics {
        create_with(&a, topic, 1, &[("message.timestamp.type", "LogAppendTime")]).await;
    }
    let script = script(&dir, "standard", &["--records", "150", "--per-batch", "50"]).await;
    produce_real(&a_addr, &script, runs).await;

    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    for topic in &topics {
        let want = high_watermarks(&a, topic, 1).await;
        wait_target(&b, &target_of(topic), &want, &ferry).await;
    }
    ferry.stop();

    let source = view(&a_addr, "read_committed", &topics).await;
    let targets: Vec<String> = topics.iter().map(|t| target_of(t)).collect();
    let target = view(&b_addr, "read_committed", &targets).await;
    for topic in &topics {
        let (src, dst) = (&source[topic][0], &target[&target_of(topic)][0]);
        assert_eq!(src.len(), 150);
        assert!(
            src.iter().all(|r| r["timestamp_type"] == "log_append"),
            "{topic}: the source broker stamps append times"
        );
        assert!(
            dst.iter().all(|r| r["timestamp_type"] == "create"),
            "{topic}: the target keeps the mirrored timestamps as create times"
        );
        assert_eq!(
            without(dst, &["timestamp_type"]),
            without(src, &["timestamp_type"]),
            "{topic}: same records, and each timestamp is the source's append time"
        );
        let target_topic = target_of(topic);
        let configs = b.describe_topic_configs(&[&target_topic]).await.unwrap();
        let ts_type = configs[&target_topic]
            .iter()
            .find(|c| c.name == "message.timestamp.type")
            .and_then(|c| c.value.clone());
        assert_eq!(ts_type.as_deref(), Some("CreateTime"), "not copied");
        let src = read_all(&a, topic, 0).await;
        let dst = read_all(&b, &target_topic, 0).await;
        assert!(
            src.iter()
                .all(|s| s.header().attributes & attributes::LOG_APPEND_TIME != 0)
        );
        for d in &dst {
            assert_eq!(d.header().attributes & attributes::LOG_APPEND_TIME, 0);
            assert_eq!(
                d.header().compression().unwrap(),
                src[0].header().compression().unwrap(),
                "re-encoded in the source's codec"
            );
        }
    }
    println!(
        "log append time: done in {}; ferry: {}",
        elapsed(t),
        ferry_summary(&dir)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Incompressible bytes (xorshift), so that compressed batches stay large.
fn noise(seed: u64, len: usize) -> Bytes {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s.to_le_bytes()[0]
        })
        .collect::<Vec<u8>>()
        .into()
}

/// 5 + 6. Source batches over the target topic's max.message.bytes (the
/// target topic exists beforehand, so ferry takes it as it is): ferry splits
/// them, every batch fits, every record arrives in order; small batches
/// still go through byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_over_the_target_limit_are_split() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let t = Instant::now();
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let (dir, prefix, config) = setup(&a_addr, &b_addr, "split");
    let topic = format!("{prefix}-big");
    let target = target_of(&topic);
    const LIMIT: usize = 8192;
    create(&a, &topic, 2).await;
    b.create_topic(&NewTopic {
        name: target.clone(),
        partitions: 2,
        replication_factor: 1,
        configs: vec![("max.message.bytes".into(), LIMIT.to_string())],
    })
    .await
    .unwrap();
    b.wait_for_topic(&target, 2, Duration::from_secs(30))
        .await
        .unwrap();

    for p in 0..2 {
        // One ~40 KB batch per codec, then a small batch that fits.
        for (i, codec) in Compression::ALL
            .into_iter()
            .chain([Compression::Lz4])
            .enumerate()
        {
            let n: u64 = if i == Compression::ALL.len() { 3 } else { 40 };
            let records: Vec<Record> = (0..n)
                .map(|r| {
                    let seed =
                        u64::try_from(p).unwrap() * 1000 + u64::try_from(i).unwrap() * 100 + r;
                    Record {
                        offset: i64::try_from(r).unwrap(),
                        timestamp: now_ms() - 1000 + i64::try_from(r).unwrap(),
                        key: (r % 7 != 3).then(|| Bytes::from(format!("key-{p}-{i}-{r}"))),
                        value: (r % 10 != 4).then(|| noise(seed, 1000)),
                        headers: if r % 3 == 0 {
                            vec![
                                Header {
                                    key: Bytes::from_static(b"dup"),
                                    value: Some(Bytes::from_static(b"1")),
                                },
                                Header {
                                    key: Bytes::from_static(b"dup"),
                                    value: None,
                                },
                                Header {
                                    key: Bytes::from_static(b"dup"),
                                    value: Some(Bytes::new()),
                                },
                            ]
                        } else {
                            vec![]
                        },
                    }
                })
                .collect();
            let batch = build_batch(&BatchSpec::producer(codec), &records).unwrap();
            a.produce_batch(&topic, p, vec![batch], &ProduceOptions::default())
                .await
                .unwrap();
        }
    }

    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    let want = high_watermarks(&a, &topic, 2).await;
    wait_target(&b, &target, &want, &ferry).await;
    ferry.stop();
    let mirrored = elapsed(t);

    let source = view(&a_addr, "read_committed", std::slice::from_ref(&topic)).await;
    let dst_view = view(&b_addr, "read_committed", std::slice::from_ref(&target)).await;
    for p in 0..2 {
        let pi = usize::try_from(p).unwrap();
        let (sv, dv) = (&source[&topic][pi], &dst_view[&target][pi]);
        assert_eq!(sv.len(), 5 * 40 + 3);
        assert_has_tombstones_and_duplicate_headers(&topic, sv);
        assert_eq!(
            sv, dv,
            "partition {p}: the consumer's view of source and target"
        );

        let src = read_all(&a, &topic, p).await;
        let dst = read_all(&b, &target, p).await;
        assert_eq!(records(&src), records(&dst), "partition {p}");
        assert!(
            src[..5].iter().all(|s| s.len() > LIMIT),
            "source batches too small"
        );
        assert!(
            dst.iter().all(|d| d.len() <= LIMIT),
            "partition {p}: a target batch over max.message.bytes"
        );
        assert!(
            dst.len() > 5 * 5,
            "partition {p}: {} target batches",
            dst.len()
        );
        // Every split batch keeps its source batch's codec.
        for d in &dst {
            let first = d.header().base_offset;
            let s = src
                .iter()
                .find(|s| s.header().base_offset <= first && first < s.header().next_offset())
                .unwrap();
            assert_eq!(
                d.header().compression().unwrap(),
                s.header().compression().unwrap()
            );
        }
        // The small last batch took the fast path.
        assert!(payload(src.last().unwrap()) == payload(dst.last().unwrap()));
    }
    println!(
        "split: mirrored at {mirrored}, checked at {}; ferry: {}",
        elapsed(t),
        ferry_summary(&dir)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
