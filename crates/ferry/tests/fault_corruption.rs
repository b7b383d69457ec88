//! Record-batch bytes corrupted between the source broker and ferry (a
//! [`FaultProxy`] flips the last byte of one batch in a Fetch response):
//! the CRC check stops that partition with an error naming topic, partition
//! and offset; the target holds exactly the records before the corrupt
//! batch; other partitions carry on. The source itself is intact, so a
//! restart of ferry (after an operator looked) mirrors the rest: no loss,
//! no duplicates.
//!
//! The source is this test's own cluster (`faults-corrupt-*`) behind the
//! proxy; the target is the shared FERRY_KAFKA_B.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use ferry_testkit::eventually_every;
use std::time::{Duration, Instant};

use common::{
    Ferry, brokers, client, compare, create, produce, read_all, records, unique, wait_caught_up,
    wait_mirrored, write_config,
};
use ferry_testkit::cluster::OwnCluster;
use ferry_testkit::proxy::FaultProxy;

/// The corrupt batch: partition 0's 11th batch (50 records each).
const CORRUPT_AT: i64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_source_batch_stops_its_partition_and_never_reaches_the_target() {
    let Some((_, b_addr)) = brokers() else {
        return;
    };
    let proxy = FaultProxy::start().unwrap();
    let src = tokio::task::block_in_place(|| OwnCluster::behind("corrupt-src", &proxy));
    let (a, b) = (client(&src.bootstrap).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-fault-corrupt"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("corrupt");
    create(&a, &topic, 2).await;
    produce(&a, &topic, 0, 20, 0).await; // offsets 0..1000
    produce(&a, &topic, 1, 4, 1000).await; // 0..200: never reaches CORRUPT_AT
    proxy.corrupt_batches(CORRUPT_AT, 1);
    let flow = unique("flow");
    let config = write_config(&dir, &src.bootstrap, &b_addr, &flow, &topic);
    let target = format!("src.{topic}");
    let log = dir.join("ferry.log");
    let started = Instant::now();
    let ferry = Ferry::start(&config, log.clone());

    // The partition stops, naming what and where.
    let tp = format!("{topic}-0");
    let line = eventually_every(
        Duration::from_secs(60),
        Duration::from_millis(50),
        "a partition stopped",
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            match text.lines().find(|l| l.contains("partition stopped")) {
                Some(l) => Ok(l.to_owned()),
                None => Err(format!("log:\n{text}")),
            }
        },
    )
    .await;
    let stopped_after = started.elapsed();
    println!("after {:.2} s: {line}", stopped_after.as_secs_f64());
    assert_eq!(proxy.stats().corrupted, 1);
    assert!(
        line.contains(&tp)
            && line.contains(&format!("offset {CORRUPT_AT}"))
            && line.contains("corrupt"),
        "{line}"
    );
    // The other partition is mirrored in full.
    let _ = b.refresh_metadata(Some(&[target.as_str()])).await;
    let every = Duration::from_millis(100);
    eventually_every(
        Duration::from_secs(60),
        every,
        "partition 1 mirrored",
        || async {
            let want = records(&read_all(&a, &topic, 1).await);
            let got = records(
                &common::try_read_all(&b, &target, 1)
                    .await
                    .unwrap_or_default(),
            );
            if got == want {
                Ok(())
            } else {
                Err(format!("{} of {} records", got.len(), want.len()))
            }
        },
    )
    .await;
    // Wait past a checkpoint interval: nothing more arrives for partition 0.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let src0 = records(&read_all(&a, &topic, 0).await);
    let dst0 = records(&read_all(&b, &target, 0).await);
    let before = usize::try_from(CORRUPT_AT).unwrap();
    assert_eq!(
        dst0,
        src0[..before],
        "the target holds exactly the records before the corrupt batch"
    );
    ferry.stop_allowing_failure();

    // The corruption was on the wire only: a restart mirrors the rest.
    let ferry = Ferry::start(&config, log.clone());
    wait_caught_up(&a, &b, &topic, &target, 2, Duration::from_secs(60)).await;
    wait_mirrored(&a, &b, &topic, &target, 2).await;
    ferry.stop();
    let c = compare(&a, &b, &topic, &target, 2).await;
    println!("after restarting ferry: {c:?}");
    assert_eq!((c.missing, c.duplicates), (0, 0), "{c:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
