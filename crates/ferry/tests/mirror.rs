//! Real-broker tests of `ferry run`: two clusters from the harness
//! (FERRY_KAFKA_A as source, FERRY_KAFKA_B as target), the real binary, and
//! a record-by-record comparison of both sides afterwards.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ferry_client::{Client, ClientConfig, FetchOptions, NewTopic, OffsetSpec, ProduceOptions};
use ferry_wire::batch::{BatchIter, FetchedBatch, RECORD_BATCH_OVERHEAD, RecordBatch};
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::{Header, Record};

fn brokers() -> Option<(String, String)> {
    match (
        std::env::var("FERRY_KAFKA_A"),
        std::env::var("FERRY_KAFKA_B"),
    ) {
        (Ok(a), Ok(b)) if !a.trim().is_empty() && !b.trim().is_empty() => Some((a, b)),
        _ if std::env::var("FERRY_REQUIRE_BROKERS").as_deref() == Ok("1") => panic!(
            "FERRY_REQUIRE_BROKERS=1 but FERRY_KAFKA_A/FERRY_KAFKA_B are not both set: run scripts/test"
        ),
        _ => {
            println!(
                "skipped: FERRY_KAFKA_A and FERRY_KAFKA_B are not set (scripts/test starts brokers)"
            );
            None
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), now_ms() % 1_000_000)
}

async fn client(addr: &str) -> Client {
    Client::connect(&[addr], ClientConfig::default())
        .await
        .unwrap()
}

async fn create(c: &Client, topic: &str, partitions: i32) {
    c.create_topic(&NewTopic {
        name: topic.into(),
        partitions,
        replication_factor: 1,
        configs: vec![],
    })
    .await
    .unwrap();
    c.wait_for_topic(topic, partitions, Duration::from_secs(30))
        .await
        .unwrap();
}

/// `batches` batches of 50 records each, cycling through every codec, with
/// keys, null values, headers (duplicate names) and current timestamps.
async fn produce(c: &Client, topic: &str, partition: i32, batches: usize, seed: usize) {
    for b in 0..batches {
        let codec = Compression::ALL[(b + seed) % Compression::ALL.len()];
        let records: Vec<Record> = (0..50)
            .map(|i| Record {
                offset: i,
                timestamp: now_ms(),
                key: (i % 7 != 3).then(|| Bytes::from(format!("key-{seed}-{b}-{i}"))),
                value: (i % 10 != 4)
                    .then(|| Bytes::from(format!("value {seed} {b} {i} ").repeat(5))),
                headers: if i % 3 == 0 {
                    vec![
                        Header {
                            key: Bytes::from_static(b"h"),
                            value: Some(Bytes::from_static(b"1")),
                        },
                        Header {
                            key: Bytes::from_static(b"h"),
                            value: None,
                        },
                    ]
                } else {
                    vec![]
                },
            })
            .collect();
        let batch = build_batch(&BatchSpec::producer(codec), &records).unwrap();
        c.produce_batch(topic, partition, vec![batch], &ProduceOptions::default())
            .await
            .unwrap();
    }
}

async fn read_all(c: &Client, topic: &str, partition: i32) -> Vec<RecordBatch> {
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
    let mut offset = 0;
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
            out.push(b);
        }
    }
    out
}

/// Key, value, headers and timestamp: what must survive mirroring.
type Content = (Option<Bytes>, Option<Bytes>, Vec<Header>, i64);

fn records(batches: &[RecordBatch]) -> Vec<Content> {
    batches
        .iter()
        .filter(|b| !b.header().is_control())
        .flat_map(|b| b.records(64 << 20).unwrap().map(|r| r.unwrap()))
        .map(|r| (r.key, r.value, r.headers, r.timestamp))
        .collect()
}

async fn end_offsets(c: &Client, topic: &str, partitions: i32) -> Vec<i64> {
    let ps: Vec<i32> = (0..partitions).collect();
    match c.list_offsets(topic, &ps, OffsetSpec::Latest).await {
        Ok(v) => v.into_iter().map(|(_, o)| o).collect(),
        Err(_) => vec![-1; ps.len()],
    }
}

/// Waits until the target topic's end offsets equal the source's.
async fn wait_mirrored(a: &Client, b: &Client, source: &str, target: &str, partitions: i32) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let want = end_offsets(a, source, partitions).await;
        let _ = b.refresh_metadata(Some(&[target])).await;
        let got = end_offsets(b, target, partitions).await;
        if want == got {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{target}: target {got:?}, source {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Ferry {
    child: Child,
    log: PathBuf,
}

fn started_count(log: &PathBuf) -> usize {
    std::fs::read_to_string(log).map_or(0, |l| l.matches("flow starting").count())
}

impl Ferry {
    /// Starts `ferry run` and waits until its flow is running (so signals
    /// find their handlers installed).
    fn start(config: &PathBuf, log: PathBuf) -> Self {
        let before = started_count(&log);
        let ferry = Self::spawn(config, log);
        let deadline = Instant::now() + Duration::from_secs(30);
        while started_count(&ferry.log) <= before {
            assert!(Instant::now() < deadline, "ferry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        ferry
    }

    fn spawn(config: &PathBuf, log: PathBuf) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM and wait: a clean shutdown exits 0.
    fn stop(mut self) {
        self.signal("-TERM");
        let status = self.child.wait().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "ferry exited with {status}:\n{log}");
    }

    fn kill(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

fn write_config(dir: &std::path::Path, a: &str, b: &str, flow: &str, pattern: &str) -> PathBuf {
    let path = dir.join(format!("{flow}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[clusters.src]
bootstrap_servers = ["{a}"]
[clusters.dst]
bootstrap_servers = ["{b}"]
[[flows]]
name = "{flow}"
source = "src"
target = "dst"
topics = ["{pattern}"]
discovery_interval = "1s"
[flows.tuning]
checkpoint_interval = "500ms"
memory_budget = "64MiB"
"#
        ),
    )
    .unwrap();
    path
}

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

    // 1. Mirror, and pick up a topic created while running.
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    wait_mirrored(&a, &b, &topic, &target, 3).await;
    let late = format!("{prefix}-late");
    create(&a, &late, 2).await;
    produce(&a, &late, 1, 3, 9).await;
    wait_mirrored(&a, &b, &late, &format!("src.{late}"), 2).await;
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

    // 3. kill -9 mid-stream, restart: nothing lost; duplicates counted.
    for p in 0..3 {
        produce(&a, &topic, p, 40, 30).await;
    }
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ferry.kill();
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let src = end_offsets(&a, &topic, 3).await;
        let dst = end_offsets(&b, &target, 3).await;
        if dst.iter().zip(&src).all(|(d, s)| d >= s) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "target {dst:?} never reached source {src:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ferry.stop();
    let mut duplicates = 0;
    for p in 0..3 {
        let src = records(&read_all(&a, &topic, p).await);
        let dst = records(&read_all(&b, &target, p).await);
        // Every source record is on the target, in order; extra records are
        // re-sends of batches that were in flight at the kill.
        let mut it = dst.iter();
        for r in &src {
            assert!(
                it.any(|d| d == r),
                "partition {p}: a source record is missing on the target"
            );
        }
        duplicates += dst.len() - src.len();
    }
    println!("records duplicated after kill -9: {duplicates}");
    let _ = std::fs::remove_dir_all(&dir);
}
