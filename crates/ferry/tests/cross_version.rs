//! `ferry run` between Kafka releases: each older cluster listed in
//! `FERRY_KAFKA_OLD` (`VERSION=HOST:PORT,...`, started by `scripts/test` with
//! the harness's `--kafka-version`) is mirrored to the current-release target
//! (FERRY_KAFKA_B) and back from the current-release source (FERRY_KAFKA_A).
//! Record-identical and payload-identical both ways: the client negotiates
//! every API down to what the old broker speaks.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use common::{
    Ferry, brokers, client, create, produce, read_all, records, unique, wait_mirrored, write_config,
};
use ferry_wire::batch::RECORD_BATCH_OVERHEAD;

/// `(version, address)` of every older cluster, or `None` (test skipped).
fn old_clusters() -> Option<Vec<(String, String)>> {
    let list = std::env::var("FERRY_KAFKA_OLD").unwrap_or_default();
    let parsed: Vec<(String, String)> = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let (v, a) = s.trim().split_once('=').unwrap_or_else(|| {
                panic!("FERRY_KAFKA_OLD wants VERSION=HOST:PORT entries, got {s:?}")
            });
            (v.to_owned(), a.to_owned())
        })
        .collect();
    if parsed.is_empty() {
        assert!(
            std::env::var("FERRY_REQUIRE_BROKERS").as_deref() != Ok("1"),
            "FERRY_REQUIRE_BROKERS=1 but FERRY_KAFKA_OLD is not set (scripts/test sets it)"
        );
        println!("skipped: FERRY_KAFKA_OLD is not set");
        return None;
    }
    Some(parsed)
}

/// Mirrors a 2-partition topic from `src` to `dst` and compares both sides.
async fn mirror_and_compare(src_addr: &str, dst_addr: &str, label: &str) {
    let (src, dst) = (client(src_addr).await, client(dst_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-xver"));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = unique("xver");
    let topic = format!("{prefix}-t");
    create(&src, &topic, 2).await;
    for p in 0..2 {
        // every codec, keys, null values, duplicate header names
        produce(&src, &topic, p, 10, usize::try_from(p).unwrap()).await;
    }
    let config = write_config(
        &dir,
        src_addr,
        dst_addr,
        &unique("flow"),
        &format!("{prefix}-.*"),
    );
    let target = format!("src.{topic}");
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    wait_mirrored(&src, &dst, &topic, &target, 2).await;
    ferry.stop();
    for p in 0..2 {
        let s = read_all(&src, &topic, p).await;
        let d = read_all(&dst, &target, p).await;
        assert_eq!(records(&s), records(&d), "{label}: partition {p}");
        assert_eq!(s.len(), d.len(), "{label}: batch for batch");
        for (s, d) in s.iter().zip(&d) {
            assert_eq!(
                s.as_bytes()[RECORD_BATCH_OVERHEAD..],
                d.as_bytes()[RECORD_BATCH_OVERHEAD..],
                "{label}: payload bytes"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_to_and_from_older_releases() {
    let Some(old) = old_clusters() else {
        return;
    };
    let Some((current_source, current_target)) = brokers() else {
        return;
    };
    for (version, addr) in &old {
        mirror_and_compare(addr, &current_target, &format!("{version} -> current")).await;
        mirror_and_compare(&current_source, addr, &format!("current -> {version}")).await;
        println!("Kafka {version}: mirrored both ways, record- and payload-identical");
    }
}
