//! A slow target must slow the source, not fill ferry's memory: the source
//! holds several times `memory_budget` of data, the target throttles ferry's
//! producer with a client quota, and ferry's resident memory is sampled
//! while it mirrors everything.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Ferry, brokers, client, create, end_offsets, now_ms, unique, wait_mirrored};
use ferry_client::ProduceOptions;
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::Record;

const MIB: usize = 1 << 20;
const BUDGET_MIB: usize = 8;
const PARTITIONS: i32 = 4;
/// 1 MiB batches per partition: 96 MiB in all, 12 times the budget.
const BATCHES: usize = 24;
/// The target lets ferry's producer write this much per second.
const QUOTA_BYTES_PER_S: usize = 4 * MIB;
/// What a debug build of ferry holds besides fetched data (code, runtime,
/// metadata, the producer's request buffers): generous, far below the data.
const OVERHEAD_MIB: usize = 48;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Sets a produce quota for `client_id` on the cluster at `bootstrap`.
fn set_quota(bootstrap: &str, client_id: &str, bytes_per_s: usize) {
    let out = Command::new("python3")
        .arg(repo().join("harness/kafka_harness.py"))
        .args([
            "tool",
            "kafka.admin.ConfigCommand",
            "--bootstrap-server",
            bootstrap,
        ])
        .args([
            "--alter",
            "--entity-type",
            "clients",
            "--entity-name",
            client_id,
        ])
        .args(["--add-config", &format!("producer_byte_rate={bytes_per_s}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ConfigCommand failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Resident set size of `pid` in bytes, from /proc.
fn rss(pid: u32) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Values that do not compress (a cheap xorshift stream).
fn noise(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_target_keeps_memory_within_the_budget() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-backpressure"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("bp");
    create(&a, &topic, PARTITIONS).await;
    for p in 0..PARTITIONS {
        for i in 0..BATCHES {
            let records: Vec<Record> = (0..16)
                .map(|r| Record {
                    offset: r,
                    timestamp: now_ms(),
                    key: None,
                    value: Some(noise(
                        MIB / 16 - 64,
                        u64::try_from(p).unwrap() << 32
                            | (i as u64) << 8
                            | u64::try_from(r).unwrap(),
                    )),
                    headers: vec![],
                })
                .collect();
            let batch = build_batch(&BatchSpec::producer(Compression::None), &records).unwrap();
            a.produce_batch(&topic, p, vec![batch], &ProduceOptions::default())
                .await
                .unwrap();
        }
    }
    let client_id = unique("ferry-bp");
    set_quota(&b_addr, &client_id, QUOTA_BYTES_PER_S);
    let config = dir.join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[clusters.src]
bootstrap_servers = ["{a_addr}"]
[clusters.dst]
bootstrap_servers = ["{b_addr}"]
client_id = "{client_id}"
[[flows]]
name = "{topic}"
source = "src"
target = "dst"
topics = ["{topic}"]
[flows.tuning]
memory_budget = "{BUDGET_MIB}MiB"
fetch_max_bytes = "4MiB"
"#
        ),
    )
    .unwrap();

    let started = Instant::now();
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    let pid = ferry.child.id();
    let target = format!("src.{topic}");
    let want = end_offsets(&a, &topic, PARTITIONS).await;
    let mut peak = 0;
    loop {
        peak = peak.max(rss(pid).unwrap_or(0));
        let _ = b.refresh_metadata(Some(&[target.as_str()])).await;
        if end_offsets(&b, &target, PARTITIONS).await == want {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not mirrored in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_mirrored(&a, &b, &topic, &target, PARTITIONS).await;
    let took = started.elapsed();
    ferry.stop();

    let data = BATCHES * usize::try_from(PARTITIONS).unwrap() * MIB;
    println!(
        "mirrored {} MiB through a {} MiB/s quota in {:.1} s; ferry's peak RSS {:.1} MiB \
         with a {BUDGET_MIB} MiB budget",
        data / MIB,
        QUOTA_BYTES_PER_S / MIB,
        took.as_secs_f64(),
        peak as f64 / MIB as f64,
    );
    assert!(
        took >= Duration::from_secs(3),
        "the quota did not slow ferry down ({took:?}): the test proves nothing"
    );
    assert!(
        peak < (BUDGET_MIB + OVERHEAD_MIB) * MIB,
        "peak RSS {} MiB: more than the {BUDGET_MIB} MiB budget + {OVERHEAD_MIB} MiB overhead \
         while {} MiB waited at the source",
        peak / MIB,
        data / MIB
    );
    let _ = std::fs::remove_dir_all(&dir);
}
