//! `kill -9` of ferry, again and again at random points, while it mirrors
//! over 100,000 records on several partitions and the source keeps growing:
//! nothing is lost, and the duplicates are counted (ferry resumes after
//! what the target already holds, so none are expected).
//!
//! Uses the shared FERRY_KAFKA_A and _B. CI kills 8 times;
//! `FERRY_FAULT_KILLS=50 cargo test -p ferry --test fault_kill -- --nocapture`
//! kills more often.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::time::{Duration, Instant};

use common::{
    Background, Ferry, brokers, client, compare, create, end_offsets, produce, unique,
    wait_caught_up, write_config,
};

const PARTITIONS: i32 = 4;
/// 4 x 520 batches of 50 records: 104,000 records before the producer starts.
const BATCHES: usize = 520;

fn kills() -> usize {
    std::env::var("FERRY_FAULT_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
}

/// A pseudo-random number of milliseconds in `min..max` (xorshift).
fn pick(state: &mut u64, min: u64, max: u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    min + *state % (max - min)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kill_9_loses_nothing_and_duplicates_nothing() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-fault-kill"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("kill");
    create(&a, &topic, PARTITIONS).await;
    for p in 0..PARTITIONS {
        produce(&a, &topic, p, BATCHES, usize::try_from(p).unwrap() * 10_000).await;
    }
    let flow = unique("flow");
    let config = write_config(&dir, &a_addr, &b_addr, &flow, &topic);
    let target = format!("src.{topic}");
    let log = dir.join("ferry.log");
    let producer = Background::start(
        client(&a_addr).await,
        topic.clone(),
        PARTITIONS,
        Duration::from_millis(20),
        1_000_000,
    );
    let mut rng = u64::from(std::process::id()) << 16 | 0x9E37;
    let mut at_kill = Vec::new();
    let started = Instant::now();
    for _ in 0..kills() {
        let ferry = Ferry::start(&config, log.clone());
        tokio::time::sleep(Duration::from_millis(pick(&mut rng, 300, 2500))).await;
        ferry.kill();
        let _ = b.refresh_metadata(Some(&[target.as_str()])).await;
        at_kill.push(
            end_offsets(&b, &target, PARTITIONS)
                .await
                .iter()
                .sum::<i64>(),
        );
    }
    let produced = producer.stop().await;
    let ferry = Ferry::start(&config, log.clone());
    let caught_up = wait_caught_up(
        &a,
        &b,
        &topic,
        &target,
        PARTITIONS,
        Duration::from_secs(180),
    )
    .await;
    ferry.stop();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    println!(
        "{} kill -9 in {:.1} s; target records at each kill: {at_kill:?}; {produced} batches \
         produced meanwhile; caught up {:.1} s after the last restart; {} partition resumes \
         matched the target's tail past the checkpoint",
        kills(),
        started.elapsed().as_secs_f64(),
        caught_up.as_secs_f64(),
        text.matches("resuming after them").count()
    );
    let c = compare(&a, &b, &topic, &target, PARTITIONS).await;
    println!("after repeated kill -9: {c:?}");
    assert!(c.source_records >= 100_000, "{c:?}");
    assert_eq!(c.missing, 0, "records lost; ferry's log:\n{text}");
    assert_eq!(
        c.duplicates, 0,
        "records duplicated after kill -9 (see the counts above)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
