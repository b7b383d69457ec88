//! Real-broker tests of `ferry run`: two clusters from the harness
//! (FERRY_KAFKA_A as source, FERRY_KAFKA_B as target), the real binary, and
//! a record-by-record comparison of both sides afterwards.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::time::{Duration, Instant};

use common::{
    Ferry, brokers, client, create, produce, read_all, records, unique, wait_mirrored, write_config,
};
use ferry_wire::batch::RECORD_BATCH_OVERHEAD;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_record_identically_and_resumes_without_duplicates() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-mirror-test"));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = unique("mirror");
    let topic = format!("{prefix}-orders");
    create(&a, &topic, 3).await;
    for p in 0..3 {
        produce(&a, &topic, p, 12, usize::try_from(p).unwrap()).await;
    }
    let flow = unique("flow");
    let config = write_config(&dir, &a_addr, &b_addr, &flow, &format!("{prefix}-.*"));
    let target = format!("src.{topic}");

    // 1. Mirror, and pick up a topic created while running...
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    wait_mirrored(&a, &b, &topic, &target, 3).await;
    let late = format!("{prefix}-late");
    create(&a, &late, 2).await;
    produce(&a, &late, 1, 3, 9).await;
    wait_mirrored(&a, &b, &late, &format!("src.{late}"), 2).await;
    // ...and a partition added to a mirrored topic while running.
    a.create_partitions(&late, 3).await.unwrap();
    produce(&a, &late, 2, 2, 11).await;
    wait_mirrored(&a, &b, &late, &format!("src.{late}"), 3).await;
    ferry.stop();

    // Record-identical, and payloads byte-identical (the fast path).
    for p in 0..3 {
        let src = read_all(&a, &topic, p).await;
        let dst = read_all(&b, &target, p).await;
        assert_eq!(records(&src), records(&dst), "partition {p}");
        assert_eq!(src.len(), dst.len(), "batch for batch");
        for (s, d) in src.iter().zip(&dst) {
            assert_eq!(
                s.as_bytes()[RECORD_BATCH_OVERHEAD..],
                d.as_bytes()[RECORD_BATCH_OVERHEAD..]
            );
            assert_eq!(
                s.header().compression().unwrap(),
                d.header().compression().unwrap()
            );
        }
    }

    // 2. Restart after SIGTERM: new data only, nothing duplicated.
    for p in 0..3 {
        produce(&a, &topic, p, 4, 20).await;
    }
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    wait_mirrored(&a, &b, &topic, &target, 3).await;
    ferry.stop();
    for p in 0..3 {
        assert_eq!(
            records(&read_all(&a, &topic, p).await),
            records(&read_all(&b, &target, p).await),
            "partition {p} after restart"
        );
    }

    // 3. kill -9 mid-stream, restart: nothing lost, and nothing duplicated:
    //    the restart matches the target's tail past the last checkpoint.
    for p in 0..3 {
        produce(&a, &topic, p, 150, 30).await;
    }
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    ferry.kill();
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    // Done when every partition's target ends with the source's last record
    // (an end-offset comparison could be fooled by re-sent records).
    let deadline = Instant::now() + Duration::from_secs(120);
    'wait: loop {
        for p in 0..3 {
            let src = records(&read_all(&a, &topic, p).await);
            let dst = records(&read_all(&b, &target, p).await);
            if dst.last() != src.last() {
                assert!(Instant::now() < deadline, "partition {p} never caught up");
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue 'wait;
            }
        }
        break;
    }
    ferry.stop();
    let mut duplicates = 0;
    for p in 0..3 {
        let src = records(&read_all(&a, &topic, p).await);
        let dst = records(&read_all(&b, &target, p).await);
        // Every source record is on the target, in order.
        let mut it = dst.iter();
        for r in &src {
            assert!(
                it.any(|d| d == r),
                "partition {p}: a source record is missing on the target"
            );
        }
        duplicates += dst.len() - src.len();
    }
    let log = std::fs::read_to_string(dir.join("ferry.log")).unwrap_or_default();
    assert_eq!(
        duplicates, 0,
        "records duplicated after kill -9; ferry's log:\n{log}"
    );
    println!(
        "after kill -9: {} partition(s) resumed past the checkpoint by matching the target's tail",
        log.matches("resuming after them").count()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
