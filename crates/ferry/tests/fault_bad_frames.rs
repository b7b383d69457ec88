//! Bad input from brokers: responses cut short, with a 2 GiB size prefix,
//! with a wrong correlation id, or encoded in another API version than
//! ferry asked for, on the source side (Fetch) and the target side
//! (Produce), while ferry mirrors a growing topic. For each: ferry logs a
//! warning naming the broker and what was wrong, drops the connection,
//! retries on a new one, never panics, never allocates what a size prefix
//! claims (its peak RSS stays small), and once the faults stop the target
//! holds every source record exactly once.
//!
//! Both clusters are this test's own (`faults-badframes-*`), each behind a
//! [`FaultProxy`] it advertises. Fetch responses are broken only on the
//! source side and Produce responses only on the target side: the test's
//! own producer writes to the source through its proxy too.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    Background, Ferry, brokers, client, compare, create, produce, unique, wait_caught_up,
    write_config,
};
use ferry_testkit::cluster::proxied_pair;
use ferry_testkit::proxy::{FaultProxy, Mangle};

const PARTITIONS: i32 = 2;
const PRODUCE: i16 = 0;
const FETCH: i16 = 1;
/// Ferry's `memory_budget` in `write_config`, plus what a debug build holds
/// besides data; a 2 GiB size prefix believed would be far above it.
const RSS_LIMIT_MIB: u64 = 64 + 128;

/// Peak resident memory of `pid` (`VmHWM`), in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// Log lines after byte `from` that name `broker` and contain `what`.
fn warned(log: &Path, from: usize, broker: &str, what: &str) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.get(from..)?
        .lines()
        .find(|l| l.contains("WARN") && l.contains(broker) && l.contains(what))
        .map(str::to_owned)
}

/// One fault: which proxy, which API's response, how, and what ferry's
/// warning must say.
struct Fault<'a> {
    side: &'static str,
    proxy: &'a FaultProxy,
    api: i16,
    mangle: Mangle,
    says: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_responses_drop_the_connection_with_a_warning_and_lose_nothing() {
    if brokers().is_none() {
        return;
    }
    let (src_proxy, dst_proxy, src, dst) = proxied_pair("badframes");
    let (a, b) = (client(&src.bootstrap).await, client(&dst.bootstrap).await);
    let dir = std::env::temp_dir().join(unique("ferry-fault-badframes"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("badframes");
    create(&a, &topic, PARTITIONS).await;
    for p in 0..PARTITIONS {
        produce(&a, &topic, p, 10, usize::try_from(p).unwrap() * 1000).await;
    }
    let flow = unique("flow");
    let config = write_config(&dir, &src.bootstrap, &dst.bootstrap, &flow, &topic);
    let target = format!("src.{topic}");
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());
    let producer = Background::start(
        client(&src.bootstrap).await,
        topic.clone(),
        PARTITIONS,
        Duration::from_millis(50),
        1_000_000,
    );

    let faults = [
        (
            Mangle::Truncate,
            "closed the connection in the middle of a response",
        ),
        (Mangle::Oversize, "exceeds the maximum frame size"),
        (
            Mangle::WrongCorrelationId,
            "sent a response with correlation id",
        ),
    ];
    let mut plan: Vec<Fault<'_>> = Vec::new();
    for (side, proxy, api) in [
        ("source", &src_proxy, FETCH),
        ("target", &dst_proxy, PRODUCE),
    ] {
        for (mangle, says) in faults {
            plan.push(Fault {
                side,
                proxy,
                api,
                mangle,
                says,
            });
        }
        // Fetch v11 and Produce v8: the last versions before flexible
        // encodings, so every length and array is laid out differently.
        let older = if api == FETCH { 11 } else { 8 };
        plan.push(Fault {
            side,
            proxy,
            api,
            mangle: Mangle::AnswerAsVersion(older),
            says: "could not decode the",
        });
    }

    let mut report = Vec::new();
    for f in &plan {
        let broker = f.proxy.addr().to_string();
        let from = std::fs::metadata(&log).map_or(0, |m| usize::try_from(m.len()).unwrap());
        let before = f.proxy.stats().mangled;
        let armed = Instant::now();
        f.proxy.mangle_response(f.api, f.mangle);
        while f.proxy.stats().mangled == before {
            assert!(
                armed.elapsed() < Duration::from_secs(30),
                "{} {:?}: no response to mangle in 30 s",
                f.side,
                f.mangle
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let line = loop {
            if let Some(line) = warned(&log, from, &broker, f.says) {
                break line;
            }
            assert!(
                armed.elapsed() < Duration::from_secs(30),
                "{} {:?}: no warning naming {broker} and {:?} in 30 s:\n{}",
                f.side,
                f.mangle,
                f.says,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        report.push(format!(
            "{} {:?}: warned after {:.2} s: {}",
            f.side,
            f.mangle,
            armed.elapsed().as_secs_f64(),
            line.trim()
        ));
        // Let the mirror move on a new connection before the next fault.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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
    let peak = peak_rss_mib(ferry.child.id());
    ferry.stop();
    for line in &report {
        println!("{line}");
    }
    println!(
        "{} faults, {produced} batches produced meanwhile; caught up {:.1} s after the last; \
         ferry's peak RSS {peak} MiB",
        plan.len(),
        caught_up.as_secs_f64()
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("panicked"), "ferry panicked:\n{text}");
    assert!(
        !text.contains("partition stopped") && !text.contains("it stops"),
        "a partition stopped:\n{text}"
    );
    assert!(
        peak < RSS_LIMIT_MIB,
        "peak RSS {peak} MiB, above {RSS_LIMIT_MIB} MiB"
    );
    let c = compare(&a, &b, &topic, &target, PARTITIONS).await;
    println!("after bad responses: {c:?}");
    assert_eq!(c.missing, 0, "records lost; ferry's log:\n{text}");
    assert_eq!(c.duplicates, 0, "records duplicated; ferry's log:\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
