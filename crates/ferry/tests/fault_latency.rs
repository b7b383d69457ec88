//! 50 ms round trip between ferry and the target: how many batches per
//! second each partition gets. Without pipelining a partition would manage
//! one batch per round trip (20/s); ferry keeps up to
//! `max_in_flight_per_partition` (5) batches in flight per partition, so
//! 4 partitions may have 20 batches per round trip in flight. The numbers
//! are printed; the test asserts more than one batch per round trip per
//! partition, and a floor over all partitions.
//!
//! The source is the shared FERRY_KAFKA_A; the target is this test's own
//! cluster (harness `faults-latency-*`) behind a [`FaultProxy`] adding
//! 25 ms each way.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::time::{Duration, Instant};

use common::{
    Ferry, brokers, client, compare, create, end_offsets, produce, unique, wait_caught_up,
    write_config,
};
use ferry_testkit::cluster::OwnCluster;
use ferry_testkit::proxy::FaultProxy;

const PARTITIONS: i32 = 4;
const BATCHES: usize = 150;
const RTT: Duration = Duration::from_millis(50);
/// Kafka's idempotence limit, ferry's default `max_in_flight_per_partition`.
const MAX_IN_FLIGHT: usize = 5;
/// The floor the test asserts, over all partitions (see the end of the test).
const MIN_PER_ROUND_TRIP: f64 = 10.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_keeps_throughput_far_above_one_batch_per_round_trip() {
    let Some((a_addr, _)) = brokers() else {
        return;
    };
    let proxy = FaultProxy::start().unwrap();
    let dst = tokio::task::block_in_place(|| OwnCluster::behind("latency-dst", &proxy));
    let (a, b) = (client(&a_addr).await, client(&dst.bootstrap).await);
    let dir = std::env::temp_dir().join(unique("ferry-fault-latency"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("latency");
    create(&a, &topic, PARTITIONS).await;
    for p in 0..PARTITIONS {
        produce(&a, &topic, p, BATCHES, usize::try_from(p).unwrap() * 1000).await;
    }
    let want = end_offsets(&a, &topic, PARTITIONS).await;
    proxy.set_latency(RTT / 2);
    let flow = unique("flow");
    let config = write_config(&dir, &a_addr, &dst.bootstrap, &flow, &topic);
    let target = format!("src.{topic}");
    let ferry = Ferry::start(&config, dir.join("ferry.log"));

    // When each partition got its first records, and all of them.
    let mut first = vec![None; want.len()];
    let mut done = vec![None; want.len()];
    let deadline = Instant::now() + Duration::from_secs(180);
    while done.iter().any(Option::is_none) {
        assert!(Instant::now() < deadline, "not mirrored: {done:?}");
        let _ = b.refresh_metadata(Some(&[target.as_str()])).await;
        let got = end_offsets(&b, &target, PARTITIONS).await;
        let now = Instant::now();
        for (p, g) in got.iter().enumerate() {
            if *g > 0 && first[p].is_none() {
                first[p] = Some(now);
            }
            if *g >= want[p] && done[p].is_none() {
                done[p] = Some(now);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_caught_up(&a, &b, &topic, &target, PARTITIONS, Duration::from_secs(60)).await;
    ferry.stop();

    let produce_requests = proxy.requests_of(0);
    let start = first.iter().flatten().min().copied().unwrap();
    let per_rtt = 1.0 / RTT.as_secs_f64();
    println!(
        "50 ms RTT to the target, {BATCHES} batches of 50 records per partition \
         (one batch per round trip would be {per_rtt:.0} batches/s):"
    );
    let mut slowest = f64::MAX;
    let mut last = start;
    for (p, d) in done.iter().enumerate() {
        let d = d.unwrap();
        last = last.max(d);
        let took = d.duration_since(start).as_secs_f64().max(0.001);
        #[allow(clippy::cast_precision_loss)]
        let rate = BATCHES as f64 / took;
        slowest = slowest.min(rate);
        println!(
            "  partition {p}: {BATCHES} batches in {took:.2} s = {rate:.0} batches/s = {:.0} records/s \
             ({:.1}x one batch per round trip)",
            rate * 50.0,
            rate / per_rtt
        );
    }
    let total = BATCHES * want.len();
    #[allow(clippy::cast_precision_loss)]
    let (per_request, per_round_trip) = (
        total as f64 / produce_requests.max(1) as f64,
        total as f64 / (last.duration_since(start).as_secs_f64().max(0.001) * per_rtt),
    );
    println!(
        "  all partitions: {total} batches, {per_round_trip:.1} batches per round trip \
         (Kafka's limit of {MAX_IN_FLIGHT} in flight per partition allows {})",
        MAX_IN_FLIGHT * want.len()
    );
    println!(
        "  {produce_requests} Produce requests (checkpoints included) for {total} batches: \
         {per_request:.2} batches per request"
    );
    let c = compare(&a, &b, &topic, &target, PARTITIONS).await;
    assert_eq!((c.missing, c.duplicates), (0, 0), "{c:?}");
    assert!(
        slowest > per_rtt,
        "a partition got {slowest:.1} batches/s: no better than one batch per round trip"
    );
    // Before the producer queued each partition's next batch behind its
    // in-flight ones, requests left with 1-3 batches and 5 requests per
    // connection held 7-11 batches per round trip; now ~15 (answers take
    // ~60 ms, 20 in flight). The floor leaves room for a loaded machine.
    assert!(
        per_round_trip >= MIN_PER_ROUND_TRIP,
        "{per_round_trip:.1} batches per round trip over all partitions, \
         expected at least {MIN_PER_ROUND_TRIP}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
