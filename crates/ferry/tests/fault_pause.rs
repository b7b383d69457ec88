//! Traffic to the target paused for longer than ferry's request timeout
//! (a network partition that heals): requests time out, the producer
//! reconnects and resends, and when the pause ends the stale requests held
//! on the old connection reach the broker late as well. The broker's
//! sequence checks must drop those: nothing lost, nothing duplicated.
//!
//! The source is the shared FERRY_KAFKA_A; the target is this test's own
//! cluster (`faults-pause-dst-*`) behind a [`FaultProxy`].

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::time::{Duration, Instant};

use common::{
    Background, Ferry, TestConfig, brokers, client, compare, create, end_offsets, produce, unique,
    wait_caught_up, wait_mirrored,
};
use ferry_testkit::cluster::OwnCluster;
use ferry_testkit::proxy::FaultProxy;

const PARTITIONS: i32 = 2;
const PAUSE: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_target_longer_than_the_request_timeout_loses_and_duplicates_nothing() {
    let Some((a_addr, _)) = brokers() else {
        return;
    };
    let proxy = FaultProxy::start().unwrap();
    let dst = tokio::task::block_in_place(|| OwnCluster::behind("pause-dst", &proxy));
    let (a, b) = (client(&a_addr).await, client(&dst.bootstrap).await);
    let dir = std::env::temp_dir().join(unique("ferry-fault-pause"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("pause");
    create(&a, &topic, PARTITIONS).await;
    for p in 0..PARTITIONS {
        produce(&a, &topic, p, 10, usize::try_from(p).unwrap() * 1000).await;
    }
    let flow = unique("flow");
    let config = TestConfig::bare(&a_addr, &dst.bootstrap, &flow, &topic)
        .target("request_timeout", "\"3s\"")
        .tuning("checkpoint_interval", "\"500ms\"")
        .write(&dir);
    let target = format!("src.{topic}");
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());
    wait_mirrored(&a, &b, &topic, &target, PARTITIONS).await;
    let producer = Background::start(
        client(&a_addr).await,
        topic.clone(),
        PARTITIONS,
        Duration::from_millis(20),
        1_000_000,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connections = proxy.stats().connections;
    proxy.pause();
    tokio::time::sleep(PAUSE).await;
    proxy.resume();
    let resumed = Instant::now();
    let before = end_offsets(&b, &target, PARTITIONS)
        .await
        .iter()
        .sum::<i64>();
    let recovered = loop {
        let _ = b.refresh_metadata(Some(&[target.as_str()])).await;
        if end_offsets(&b, &target, PARTITIONS)
            .await
            .iter()
            .sum::<i64>()
            > before
        {
            break resumed.elapsed();
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(60),
            "no progress after the pause"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let produced = producer.stop().await;
    let caught_up = wait_caught_up(
        &a,
        &b,
        &topic,
        &target,
        PARTITIONS,
        Duration::from_secs(120),
    )
    .await;
    ferry.stop();
    println!(
        "target paused {PAUSE:?} (request timeout 3 s): the target grew again {:.2} s after \
         the pause ended; {} new connections through the proxy; caught up {:.1} s after the \
         producer stopped; {produced} batches produced",
        recovered.as_secs_f64(),
        proxy.stats().connections - connections,
        caught_up.as_secs_f64()
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let c = compare(&a, &b, &topic, &target, PARTITIONS).await;
    println!("after the pause: {c:?}");
    assert_eq!(c.missing, 0, "records lost; ferry's log:\n{text}");
    assert_eq!(c.duplicates, 0, "records duplicated; ferry's log:\n{text}");
    assert!(!text.contains("partition stopped"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
