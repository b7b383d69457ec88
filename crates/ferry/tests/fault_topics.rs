//! What happens to the data itself: the source deletes records before ferry
//! read them (retention), and the target topic is deleted while ferry
//! mirrors into it. Neither may stall silently.
//!
//! Uses the shared FERRY_KAFKA_A and _B.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Content, Ferry, brokers, client, create, metrics_address, produce, read_all, records, unique,
    wait_for_line, wait_mirrored,
};
use ferry_client::{Client, FetchOptions, OffsetSpec};
use ferry_testkit::eventually;
use ferry_wire::batch::{BatchIter, FetchedBatch};

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Kafka command-line tool through the harness.
fn tool(class: &str, args: &[&str]) {
    let out = Command::new("python3")
        .arg(repo().join("harness/kafka_harness.py"))
        .args(["tool", class])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{class} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The records of a partition from `from` to its end.
async fn read_from(c: &Client, topic: &str, partition: i32, from: i64) -> Vec<Content> {
    let end = c
        .list_offsets(topic, &[partition], OffsetSpec::Latest)
        .await
        .unwrap()[0]
        .1;
    let options = FetchOptions {
        max_wait: Duration::from_millis(10),
        ..FetchOptions::default()
    };
    let mut out = Vec::new();
    let mut offset = from;
    while offset < end {
        let fetched = c
            .fetch_raw(topic, partition, offset, &options)
            .await
            .unwrap();
        assert_eq!(fetched.error, None, "{topic}-{partition} at {offset}");
        for e in BatchIter::new(fetched.records.clone()) {
            let FetchedBatch::V2(b) = e.unwrap() else {
                panic!("legacy batch")
            };
            offset = b.header().next_offset();
            out.extend(records(std::slice::from_ref(&b)));
        }
    }
    out
}

/// A plain HTTP/1.1 GET of `/metrics`.
fn metrics(addr: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Sum of the samples of `family` whose labels contain every one of `labels`.
fn sum(text: &str, family: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(family) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn config(dir: &Path, a: &str, b: &str, flow: &str, topic: &str) -> std::path::PathBuf {
    let path = dir.join("ferry.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[metrics]
listen = "127.0.0.1:0"
[clusters.src]
bootstrap_servers = ["{a}"]
[clusters.dst]
bootstrap_servers = ["{b}"]
[[flows]]
name = "{flow}"
source = "src"
target = "dst"
topics = ["{topic}"]
discovery_interval = "1s"
[flows.tuning]
checkpoint_interval = "500ms"
"#
        ),
    )
    .unwrap();
    path
}

/// Records deleted at the source (DeleteRecords moves the log start, as
/// retention does) while ferry was stopped: on restart ferry's position is
/// out of range; it logs the gap, counts it in
/// `ferry_source_offsets_lost_total`, and continues at the log start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_deleted_before_ferry_read_them_are_reported_and_skipped() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-fault-retention"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("retention");
    create(&a, &topic, 1).await;
    produce(&a, &topic, 0, 10, 0).await; // 0..500
    let flow = unique("flow");
    let config = config(&dir, &a_addr, &b_addr, &flow, &topic);
    let target = format!("src.{topic}");
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());
    wait_mirrored(&a, &b, &topic, &target, 1).await;
    ferry.stop();

    produce(&a, &topic, 0, 10, 100).await; // 500..1000
    let before = records(&read_all(&a, &topic, 0).await);
    let json = dir.join("delete.json");
    std::fs::write(
        &json,
        format!(
            r#"{{"partitions":[{{"topic":"{topic}","partition":0,"offset":800}}],"version":1}}"#
        ),
    )
    .unwrap();
    let (json_arg, bootstrap) = (json.to_string_lossy().into_owned(), a_addr.clone());
    tokio::task::spawn_blocking(move || {
        tool(
            "org.apache.kafka.tools.DeleteRecordsCommand",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--offset-json-file",
                &json_arg,
            ],
        );
    })
    .await
    .unwrap();
    produce(&a, &topic, 0, 4, 200).await; // 1000..1200

    let log = dir.join("ferry-after-delete.log");
    let ferry = Ferry::start(&config, log.clone());
    let addr = metrics_address(&log);
    // Target offsets no longer match the source's: wait for the last record.
    eventually(
        Duration::from_secs(60),
        "caught up after the gap",
        || async {
            if common::last_record(&b, &target, 0).await == common::last_record(&a, &topic, 0).await
            {
                Ok(())
            } else {
                Err(std::fs::read_to_string(&log).unwrap_or_default())
            }
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let lost = loop {
        let lost = sum(
            &metrics(&addr),
            "ferry_source_offsets_lost_total",
            &[&format!("flow=\"{flow}\"")],
        );
        if lost > 0.0 || Instant::now() > deadline {
            break lost;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ferry.stop();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let line = text
        .lines()
        .find(|l| l.contains("source retention deleted records"))
        .unwrap_or_else(|| panic!("no gap logged:\n{text}"));
    println!("{line}\nferry_source_offsets_lost_total = {lost}");
    assert!(line.contains("lost") && line.contains("300"), "{line}");
    assert!(
        (lost - 300.0).abs() < 0.5,
        "ferry_source_offsets_lost_total = {lost}"
    );
    // The target: what was mirrored before, then everything from the new log start.
    let mut want = before[..500].to_vec();
    want.extend(read_from(&a, &topic, 0, 800).await);
    assert_eq!(want.len(), 900);
    assert_eq!(records(&read_all(&b, &target, 0).await), want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The target topic deleted while ferry mirrors into it. Ferry does not
/// recreate it while running: the producer retries (`ferry_retries_total{during="produce",
/// cause="UNKNOWN_TOPIC_ID"}` counts it within seconds), warns within
/// seconds naming the target partition and the error, and keeps retrying
/// until the delivery timeout (120 s); then the partition stops with an
/// error naming the source partition, the offset and the missing topic; the
/// other partitions and flows carry on. A SIGTERM meanwhile exits within
/// seconds (the drain gives up after 5 s without an acknowledgement), and
/// a restart creates the target topic again, like any missing target
/// topic, and mirrors from the checkpoint: the records produced after the
/// delete arrive, the ones deleted with the topic are not copied again.
/// CI checks all that; `FERRY_FAULT_LONG=1 cargo test -p ferry --test
/// fault_topics -- --nocapture` waits for the stop instead (about 2 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_topic_deleted_while_mirroring_is_reported() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-fault-deleted"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("deleted");
    create(&a, &topic, 1).await;
    produce(&a, &topic, 0, 4, 0).await;
    let flow = unique("flow");
    let config = config(&dir, &a_addr, &b_addr, &flow, &topic);
    let target = format!("src.{topic}");
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());
    let addr = metrics_address(&log);
    wait_mirrored(&a, &b, &topic, &target, 1).await;

    let (bootstrap, name) = (b_addr.clone(), target.clone());
    tokio::task::spawn_blocking(move || {
        tool(
            "org.apache.kafka.tools.TopicCommand",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--delete",
                "--topic",
                &name,
            ],
        );
    })
    .await
    .unwrap();
    let deleted = Instant::now();
    produce(&a, &topic, 0, 4, 10).await;
    let retries = [
        &*format!("flow=\"{flow}\""),
        "during=\"produce\"",
        // UNKNOWN_TOPIC_ID (Produce v13 names topics by id) or _OR_PARTITION
        "cause=\"UNKNOWN_TOPIC_",
    ];
    let what = "produce retries for the deleted target topic";
    let n = eventually(Duration::from_secs(30), what, || async {
        match sum(&metrics(&addr), "ferry_retries_total", &retries) {
            n if n > 0.0 => Ok(n),
            _ => Err(metrics(&addr)),
        }
    })
    .await;
    println!(
        "{:.1} s after the delete: {n} produce retries for an unknown topic",
        deleted.elapsed().as_secs_f64()
    );
    let partition = format!("{target}-0");
    let warning = wait_for_line(
        &log,
        Duration::from_secs(40),
        "a warning naming the partition",
        |l| {
            l.contains("WARN")
                && l.contains("not acknowledged yet")
                && l.contains(&partition)
                && l.contains("UNKNOWN_TOPIC_")
        },
    )
    .await;
    println!(
        "{:.1} s after the delete: {}",
        deleted.elapsed().as_secs_f64(),
        warning.trim()
    );
    let _ = b.refresh_metadata(Some(&[target.as_str()])).await;
    assert!(
        common::try_read_all(&b, &target, 0).await.is_none(),
        "ferry recreated the target topic"
    );

    if std::env::var("FERRY_FAULT_LONG").as_deref() == Ok("1") {
        // A transient cause: the partition is restarted with backoff.
        let line = wait_for_line(
            &log,
            Duration::from_secs(180),
            "the partition retried",
            |l| l.contains("partition stopped by a transient error"),
        )
        .await;
        println!(
            "{:.1} s after the delete: {line}",
            deleted.elapsed().as_secs_f64()
        );
        assert!(
            line.contains(&format!("{topic}-0")) && line.contains("UNKNOWN_TOPIC_"),
            "{line}"
        );
        let stopped = sum(
            &metrics(&addr),
            "ferry_partitions",
            &[&format!("flow=\"{flow}\""), "state=\"retrying\""],
        );
        assert!(
            (stopped - 1.0).abs() < 0.5,
            "ferry_partitions{{state=retrying}} = {stopped}"
        );
        ferry.stop_allowing_failure();
    } else {
        // The drain gives up on the undeliverable batches: a bounded stop.
        let asked = Instant::now();
        ferry.signal("-TERM");
        let mut child = ferry;
        let status = loop {
            if let Some(status) = child.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                asked.elapsed() < Duration::from_secs(15),
                "SIGTERM took more than 15 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        println!(
            "SIGTERM with the target topic gone: exited ({status}) in {:.1} s",
            asked.elapsed().as_secs_f64()
        );
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let shutdown = text.find("shutdown requested").unwrap_or(0);
        for l in text[shutdown..].lines().filter(|l| l.contains("WARN")) {
            println!("  {}", l.trim());
        }
        // A restart creates the target topic again and mirrors from the
        // checkpoint (after the 4 batches acknowledged before the delete).
        let ferry = Ferry::start(&config, log.clone());
        let want = read_from(&a, &topic, 0, 200).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let _ = b.refresh_metadata(Some(&[target.as_str()])).await;
            if let Some(got) = common::try_read_all(&b, &target, 0).await {
                if records(&got).len() >= want.len() {
                    assert_eq!(
                        records(&got),
                        want,
                        "the recreated target holds the source from the checkpoint on"
                    );
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "not mirrored again in 60 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!(
            "after a restart: target recreated with the {} records from the checkpoint on",
            want.len()
        );
        ferry.stop();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
