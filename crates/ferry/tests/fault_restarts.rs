//! The source broker, then (in the other test) the target broker, restarted
//! (harness `restart`: SIGTERM, start on the same ports and data) or killed
//! (`kill -9`, then started again: log recovery, no controlled shutdown)
//! while ferry mirrors a growing topic: nothing lost, nothing duplicated.
//! Prints how long the restart took and how soon the mirror moved again.
//!
//! `kill -9` of a broker *process* loses nothing it acknowledged: its
//! writes are in the page cache, which outlives the process. A crash of
//! the machine could lose acknowledged records of a single-node cluster
//! that does not fsync (Kafka's default: durability comes from
//! replication); that is the broker's durability, not ferry's, and not
//! tested here. What ferry guarantees is that it resends every batch the
//! target did not acknowledge, with the same producer sequence numbers, so
//! the target keeps one copy of each.
//!
//! Each test restarts or kills a cluster of its own (`faults-restart-*`,
//! `faults-kill9-*`) and uses
//! the shared FERRY_KAFKA_A or _B for the other side.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Background, Ferry, brokers, client, compare, create, end_offsets, produce, unique,
    wait_caught_up, write_config,
};
use ferry_testkit::cluster::OwnCluster;

const PARTITIONS: i32 = 3;

#[derive(Clone, Copy, Debug)]
enum Side {
    Source,
    Target,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    /// SIGTERM (controlled shutdown), start again.
    Restart,
    /// SIGKILL, start again.
    Kill9,
}

async fn restart_mid_stream(side: Side, how: How) {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let what = match (side, how) {
        (Side::Source, How::Restart) => "restart-src",
        (Side::Target, How::Restart) => "restart-dst",
        (Side::Source, How::Kill9) => "kill9-src",
        (Side::Target, How::Kill9) => "kill9-dst",
    };
    let own = Arc::new(
        tokio::task::spawn_blocking(move || OwnCluster::start(what, &[]))
            .await
            .unwrap(),
    );
    let (src_addr, dst_addr) = match side {
        Side::Source => (own.bootstrap.clone(), b_addr),
        Side::Target => (a_addr, own.bootstrap.clone()),
    };
    let (a, b) = (client(&src_addr).await, client(&dst_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-fault-restart"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique(what);
    create(&a, &topic, PARTITIONS).await;
    for p in 0..PARTITIONS {
        produce(&a, &topic, p, 20, usize::try_from(p).unwrap() * 1000).await;
    }
    let flow = unique("flow");
    let config = write_config(&dir, &src_addr, &dst_addr, &flow, &topic);
    let target = format!("src.{topic}");
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());
    let producer = Background::start(
        client(&src_addr).await,
        topic.clone(),
        PARTITIONS,
        Duration::from_millis(20),
        1_000_000,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mirrored = |b: ferry_client::Client| {
        let target = target.clone();
        async move {
            let _ = b.refresh_metadata(Some(&[target.as_str()])).await;
            end_offsets(&b, &target, PARTITIONS)
                .await
                .iter()
                .sum::<i64>()
        }
    };
    let before = mirrored(b.clone()).await;
    let t = Instant::now();
    let cluster = Arc::clone(&own);
    tokio::task::spawn_blocking(move || match how {
        How::Restart => cluster.restart(),
        How::Kill9 => {
            cluster.kill();
            cluster.start_again();
        }
    })
    .await
    .unwrap();
    let restart = t.elapsed();
    // The mirror moves again: the target grows past where it was once the
    // broker is back.
    let back = Instant::now();
    let at_restart = mirrored(b.clone()).await.max(before);
    let recovered = loop {
        let now = mirrored(b.clone()).await;
        if now > at_restart {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(120),
            "no progress 120 s after the restart:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
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
        "{side:?} broker {how:?} took {:.1} s (stop + start); the target grew again {:.2} s after \
         it was back; caught up {:.1} s after the producer stopped; {produced} batches produced \
         around the restart",
        restart.as_secs_f64(),
        recovered.as_secs_f64(),
        caught_up.as_secs_f64()
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let c = compare(&a, &b, &topic, &target, PARTITIONS).await;
    println!("after the {side:?} broker {how:?}: {c:?}");
    assert_eq!(c.missing, 0, "records lost; ferry's log:\n{text}");
    assert_eq!(c.duplicates, 0, "records duplicated; ferry's log:\n{text}");
    assert!(!text.contains("partition stopped"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_broker_restart_mid_stream_loses_and_duplicates_nothing() {
    restart_mid_stream(Side::Source, How::Restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_broker_restart_mid_stream_loses_and_duplicates_nothing() {
    restart_mid_stream(Side::Target, How::Restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_broker_kill_9_mid_stream_loses_and_duplicates_nothing() {
    restart_mid_stream(Side::Source, How::Kill9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_broker_kill_9_mid_stream_loses_and_duplicates_nothing() {
    restart_mid_stream(Side::Target, How::Kill9).await;
}
