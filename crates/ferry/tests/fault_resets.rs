//! Connections reset at random, between ferry and both clusters, while
//! ferry mirrors a topic that keeps growing: nothing lost, nothing
//! duplicated, and the mirror keeps making progress through the faults.
//!
//! Both clusters are this test's own (harness `faults-resets-*`), each
//! behind a [`FaultProxy`] it advertises, so every connection — ferry's and
//! the test's — goes through a proxy. CI runs the faults for 20 s;
//! `FERRY_FAULT_SECONDS=300 cargo test -p ferry --test fault_resets -- --nocapture`
//! runs them longer.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::time::{Duration, Instant};

use common::{
    Background, Ferry, brokers, client, compare, create, end_offsets, produce, unique,
    wait_caught_up, write_config,
};
use ferry_testkit::cluster::proxied_pair;

const PARTITIONS: i32 = 4;

fn fault_seconds() -> u64 {
    std::env::var("FERRY_FAULT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_connection_resets_lose_and_duplicate_nothing() {
    // Needs the harness as much as the shared brokers do.
    if brokers().is_none() {
        return;
    }
    let (src_proxy, dst_proxy, src, dst) = proxied_pair("resets");
    let (a, b) = (client(&src.bootstrap).await, client(&dst.bootstrap).await);
    let dir = std::env::temp_dir().join(unique("ferry-fault-resets"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("resets");
    create(&a, &topic, PARTITIONS).await;
    for p in 0..PARTITIONS {
        produce(&a, &topic, p, 20, usize::try_from(p).unwrap() * 1000).await;
    }
    let flow = unique("flow");
    let config = write_config(&dir, &src.bootstrap, &dst.bootstrap, &flow, &topic);
    let target = format!("src.{topic}");
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());

    // Faults on both sides while the source keeps growing.
    let seconds = fault_seconds();
    let every = (Duration::from_millis(200), Duration::from_millis(1000));
    src_proxy.reset_randomly(Some(every));
    dst_proxy.reset_randomly(Some(every));
    let producer = Background::start(
        client(&src.bootstrap).await,
        topic.clone(),
        PARTITIONS,
        Duration::from_millis(50),
        1_000_000,
    );
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let _ = b.refresh_metadata(Some(&[target.as_str()])).await;
        let mirrored: i64 = end_offsets(&b, &target, PARTITIONS).await.iter().sum();
        samples.push((started.elapsed().as_secs(), mirrored));
    }
    src_proxy.reset_randomly(None);
    dst_proxy.reset_randomly(None);
    let produced = producer.stop().await;
    let resets = (src_proxy.stats().resets, dst_proxy.stats().resets);
    println!(
        "{seconds} s of random resets: {} on the source side, {} on the target side; \
         {produced} batches produced meanwhile; target records over time (s, records): {samples:?}",
        resets.0, resets.1
    );
    let caught_up = wait_caught_up(
        &a,
        &b,
        &topic,
        &target,
        PARTITIONS,
        Duration::from_secs(120),
    )
    .await;
    println!(
        "caught up {:.1} s after the faults stopped",
        caught_up.as_secs_f64()
    );
    ferry.stop();

    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        resets.0 >= seconds / 2 && resets.1 >= seconds / 2,
        "too few resets to prove anything: {resets:?}"
    );
    // Progress under faults: the target grew between samples, not only at the end.
    let grew = samples.windows(2).filter(|w| w[1].1 > w[0].1).count();
    assert!(
        grew + 1 >= samples.len() / 2,
        "the mirror stalled under resets: {samples:?}\n{text}"
    );
    let c = compare(&a, &b, &topic, &target, PARTITIONS).await;
    println!("after random resets: {c:?}");
    assert_eq!(c.missing, 0, "records lost; ferry's log:\n{text}");
    assert_eq!(c.duplicates, 0, "records duplicated; ferry's log:\n{text}");
    assert!(
        !text.contains("partition stopped"),
        "a partition stopped:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
