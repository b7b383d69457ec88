//! Opt-in coalescing (`[flows.batching]`) against real brokers: a real
//! client (librdkafka with `linger.ms=0`, `batch.size=4096`, the shape of
//! benchmark data set d) writes many small batches; ferry merges them on
//! the way. Every record must arrive identical and in order, the target
//! must hold far fewer batches, and `ferry offsets translate` must be
//! exact for every source offset.
//!
//! FERRY_KAFKA_A is the source, FERRY_KAFKA_B the target. Needs python3
//! with confluent-kafka (scripts/test installs it).

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{
    Ferry, TestConfig, brokers, client, compare, create, end_offsets, read_all, translate, unique,
    wait_mirrored,
};

/// One codec per partition: lz4 (merged through decompression) and none.
const CODECS: [&str; 2] = ["lz4", "none"];
const RECORDS: usize = 6000;

/// Produces `RECORDS` records to `partition` in small batches.
async fn produce_small_batches(bootstrap: &str, topic: &str, partition: usize, codec: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/small_batches.py");
    let args: Vec<String> = [
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--partition",
        &partition.to_string(),
        "--records",
        &RECORDS.to_string(),
        "--codec",
        codec,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "small_batches.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_batches_are_merged_with_records_and_offsets_exact() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-coalesce"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("coalesce");
    let partitions = i32::try_from(CODECS.len()).unwrap();
    create(&a, &topic, partitions).await;
    for (p, codec) in CODECS.iter().enumerate() {
        produce_small_batches(&a_addr, &topic, p, codec).await;
    }
    let flow = unique("coalesce-flow");
    let config = TestConfig::new(&a_addr, &b_addr, &flow, &topic)
        .set("[flows.batching]", "coalesce_below", "\"16KiB\"")
        .set("[flows.batching]", "coalesce_max", "\"256KiB\"")
        .write(&dir);
    let target = format!("src.{topic}");
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    wait_mirrored(&a, &b, &topic, &target, partitions).await;
    ferry.stop();

    let c = compare(&a, &b, &topic, &target, partitions).await;
    assert_eq!((c.missing, c.duplicates), (0, 0), "{c:?}");
    assert_eq!(c.source_records, RECORDS * CODECS.len());
    let ends = end_offsets(&a, &topic, partitions).await;
    for (p, codec) in CODECS.iter().enumerate() {
        let partition = i32::try_from(p).unwrap();
        let source = read_all(&a, &topic, partition).await;
        let mirrored = read_all(&b, &target, partition).await;
        let bytes = |v: &[ferry_wire::batch::RecordBatch]| v.iter().map(|b| b.len()).sum::<usize>();
        println!(
            "  partition {p} ({codec}): {} source batches ({} bytes) -> {} target batches ({} bytes)",
            source.len(),
            bytes(&source),
            mirrored.len(),
            bytes(&mirrored)
        );
        assert!(
            source.len() >= 100,
            "the client wrote only {} batches: not the small batches this test needs",
            source.len()
        );
        assert!(
            mirrored.len() * 10 <= source.len(),
            "{codec}: {} source batches became {} on the target",
            source.len(),
            mirrored.len()
        );
        // Identical offsets (nothing skipped on a fresh target): the map
        // must say so for every source offset.
        let end = ends[p];
        let translated = translate(&config, &topic, partition, end);
        let expected: Vec<i64> = (0..end).collect();
        assert_eq!(translated, expected, "partition {p}: translation");
    }
    let log = std::fs::read_to_string(dir.join("ferry.log")).unwrap();
    let summary = log
        .lines()
        .find(|l| l.contains("stopped:"))
        .unwrap_or_default()
        .to_owned();
    println!(
        "  {}",
        summary.rsplit("stopped: ").next().unwrap_or_default()
    );
    assert!(summary.contains(" coalesced into "), "{summary}");
    assert!(!summary.contains(" 0 coalesced into "), "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}
