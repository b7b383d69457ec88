//! A slow, distant link: the target behind a 2 MB/s link, the source 50 ms
//! away (25 ms each way). Ferry mirrors several times its memory budget
//! through both: it completes, loses and duplicates nothing, stays within
//! the budget (plus a fixed overhead), and the throughput is printed.
//!
//! Both clusters are this test's own (`faults-throttle-*`), each behind a
//! [`FaultProxy`] it advertises.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::time::{Duration, Instant};

use common::{
    Ferry, TestConfig, brokers, client, compare, create, end_offsets, produce, produce_noise, rss,
    unique, wait_caught_up,
};
use ferry_testkit::cluster::proxied_pair;

const MIB: usize = 1 << 20;
const PARTITIONS: i32 = 4;
/// 1 MiB batches per partition: 24 MiB, three times the budget.
const NOISE_BATCHES: usize = 6;
const BUDGET_MIB: usize = 8;
/// What a debug build of ferry holds besides fetched data (see
/// backpressure.rs), with room for the proxies' slower pace.
const OVERHEAD_MIB: usize = 64;
const TARGET_BYTES_PER_S: u64 = 2_000_000;
const SOURCE_LATENCY_EACH_WAY: Duration = Duration::from_millis(25);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_link_and_a_distant_source_lose_nothing_within_the_budget() {
    if brokers().is_none() {
        return;
    }
    let (src_proxy, dst_proxy, src, dst) = proxied_pair("throttle");
    let (a, b) = (client(&src.bootstrap).await, client(&dst.bootstrap).await);
    let dir = std::env::temp_dir().join(unique("ferry-fault-throttle"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("throttle");
    create(&a, &topic, PARTITIONS).await;
    for p in 0..PARTITIONS {
        // Compressed batches with keys and headers, then incompressible bulk.
        produce(&a, &topic, p, 10, usize::try_from(p).unwrap() * 1000).await;
        produce_noise(&a, &topic, p, NOISE_BATCHES, MIB).await;
    }
    let config = TestConfig::bare(&src.bootstrap, &dst.bootstrap, &topic, &topic)
        .tuning("memory_budget", &format!("\"{BUDGET_MIB}MiB\""))
        .tuning("fetch_max_bytes", "\"4MiB\"")
        .write(&dir);
    src_proxy.set_latency(SOURCE_LATENCY_EACH_WAY);
    dst_proxy.set_bandwidth(Some(TARGET_BYTES_PER_S));

    let started = Instant::now();
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    let pid = ferry.child.id();
    let target = format!("src.{topic}");
    let want = end_offsets(&a, &topic, PARTITIONS).await;
    loop {
        let _ = b.refresh_metadata(Some(&[target.as_str()])).await;
        if end_offsets(&b, &target, PARTITIONS).await == want {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not mirrored in 120 s: target {:?} of {want:?}",
            end_offsets(&b, &target, PARTITIONS).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    let peak = rss(pid, true).unwrap_or(0);
    let bytes = dst_proxy.stats().bytes;
    ferry.stop();
    // Reading everything back need not crawl through the throttle.
    src_proxy.heal();
    dst_proxy.heal();
    wait_caught_up(&a, &b, &topic, &target, PARTITIONS, Duration::from_secs(30)).await;
    println!(
        "mirrored {} records through a {:.1} MB/s target link and a {} ms source round trip in \
         {:.1} s: {:.2} MB/s through the target proxy ({bytes} bytes both ways); ferry's peak \
         RSS {:.1} MiB with a {BUDGET_MIB} MiB budget",
        want.iter().sum::<i64>(),
        TARGET_BYTES_PER_S as f64 / 1e6,
        2 * SOURCE_LATENCY_EACH_WAY.as_millis(),
        took.as_secs_f64(),
        bytes as f64 / 1e6 / took.as_secs_f64(),
        peak as f64 / MIB as f64,
    );
    let data = usize::try_from(PARTITIONS).unwrap() * NOISE_BATCHES * MIB;
    assert!(
        took >= Duration::from_secs_f64(data as f64 / TARGET_BYTES_PER_S as f64 * 0.8),
        "faster than the link allows ({took:?}): the throttle did not work"
    );
    assert!(
        peak < (BUDGET_MIB + OVERHEAD_MIB) * MIB,
        "peak RSS {} MiB: more than the {BUDGET_MIB} MiB budget + {OVERHEAD_MIB} MiB overhead",
        peak / MIB
    );
    let c = compare(&a, &b, &topic, &target, PARTITIONS).await;
    println!("through the slow links: {c:?}");
    assert_eq!(c.missing, 0, "records lost");
    assert_eq!(c.duplicates, 0, "records duplicated");
    let _ = std::fs::remove_dir_all(&dir);
}
