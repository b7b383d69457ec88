//! Helpers shared by the real-broker tests of `ferry run` (tests/mirror.rs,
//! tests/mirror_cases.rs): the two clusters from the environment, topics,
//! raw reads of a whole partition, the `ferry` binary as a child process.

// Each test binary uses a different subset of these.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_client::{Client, ClientConfig, FetchOptions, NewTopic, OffsetSpec, ProduceOptions};
#[allow(unused_imports)] // not every test crate uses both
pub use ferry_testkit::{brokers, now_ms};
use ferry_testkit::{eventually, eventually_blocking, eventually_every};
use ferry_wire::batch::{BatchIter, FetchedBatch, RecordBatch};
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::{Header, Record};

pub mod producers;

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), now_ms() % 1_000_000)
}

pub async fn client(addr: &str) -> Client {
    Client::connect(&[addr], ClientConfig::default())
        .await
        .unwrap()
}

pub async fn create(c: &Client, topic: &str, partitions: i32) {
    create_with(c, topic, partitions, &[]).await;
}

/// Creates `topic` with these topic configs and waits until it is served.
pub async fn create_with(c: &Client, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    c.create_topic(&NewTopic {
        name: topic.into(),
        partitions,
        replication_factor: 1,
        configs: configs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
    .await
    .unwrap();
    c.wait_for_topic(topic, partitions, Duration::from_secs(30))
        .await
        .unwrap();
}

/// Like [`read_all`], but `None` while the topic cannot be read yet (e.g. not created).
pub async fn try_read_all(c: &Client, topic: &str, partition: i32) -> Option<Vec<RecordBatch>> {
    let end = c
        .list_offsets(topic, &[partition], OffsetSpec::Latest)
        .await
        .ok()?
        .first()?
        .1;
    if end == 0 {
        return Some(Vec::new());
    }
    Some(read_all(c, topic, partition).await)
}

pub async fn read_all(c: &Client, topic: &str, partition: i32) -> Vec<RecordBatch> {
    read_from(c, topic, partition, 0).await
}

/// The batches of a partition from offset `from` (e.g. its log start after
/// records were deleted) to its end.
pub async fn read_from(c: &Client, topic: &str, partition: i32, from: i64) -> Vec<RecordBatch> {
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
            out.push(b);
        }
    }
    out
}

/// Key, value, headers and timestamp: what must survive mirroring.
pub type Content = (Option<Bytes>, Option<Bytes>, Vec<Header>, i64);

pub fn records(batches: &[RecordBatch]) -> Vec<Content> {
    batches
        .iter()
        .filter(|b| !b.header().is_control())
        .flat_map(|b| b.records(64 << 20).unwrap().map(|r| r.unwrap()))
        .map(|r| (r.key, r.value, r.headers, r.timestamp))
        .collect()
}

pub async fn end_offsets(c: &Client, topic: &str, partitions: i32) -> Vec<i64> {
    let ps: Vec<i32> = (0..partitions).collect();
    match c.list_offsets(topic, &ps, OffsetSpec::Latest).await {
        Ok(v) => v.into_iter().map(|(_, o)| o).collect(),
        Err(_) => vec![-1; ps.len()],
    }
}

/// Waits until the target topic's end offsets equal the source's.
pub async fn wait_mirrored(a: &Client, b: &Client, source: &str, target: &str, partitions: i32) {
    eventually(
        Duration::from_secs(90),
        format!("{target} mirrored"),
        || async {
            let want = end_offsets(a, source, partitions).await;
            let _ = b.refresh_metadata(Some(&[target])).await;
            let got = end_offsets(b, target, partitions).await;
            if want == got {
                Ok(())
            } else {
                Err(format!("target {got:?}, source {want:?}"))
            }
        },
    )
    .await;
}

pub struct Ferry {
    pub child: Child,
    pub log: PathBuf,
}

pub fn started_count(log: &PathBuf) -> usize {
    std::fs::read_to_string(log).map_or(0, |l| l.matches("flow starting").count())
}

impl Ferry {
    /// Starts `ferry run` and waits until its flow is running (so signals
    /// find their handlers installed).
    pub fn start(config: &PathBuf, log: PathBuf) -> Self {
        let before = started_count(&log);
        let ferry = Self::spawn(config, log);
        eventually_blocking(
            Duration::from_secs(30),
            Duration::from_millis(20),
            "ferry started",
            || match started_count(&ferry.log) {
                n if n > before => Ok(()),
                _ => Err("no \"flow starting\" line in its log"),
            },
        );
        ferry
    }

    pub fn spawn(config: &PathBuf, log: PathBuf) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["run", "--config"])
            .arg(config)
            // FERRY_TEST_LOG=info,ferry_client::producer=trace shows each
            // Produce request and its round trip, for a test under study.
            .env(
                "RUST_LOG",
                std::env::var("FERRY_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM and wait: a clean shutdown exits 0.
    pub fn stop(mut self) {
        self.signal("-TERM");
        let status = self.child.wait().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "ferry exited with {status}:\n{log}");
    }

    /// SIGTERM and wait, whatever the exit status (a flow that failed
    /// makes `ferry run` exit 1 after a clean shutdown of the others).
    pub fn stop_allowing_failure(mut self) {
        self.signal("-TERM");
        let _ = self.child.wait();
    }

    pub fn kill(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

/// A test that fails midway leaves no ferry running behind it.
impl Drop for Ferry {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `ferry run` config for a test: clusters `src` and `dst` and one flow
/// between them. [`TestConfig::new`] sets what most tests want (discovery
/// every second, checkpoints every 500 ms, a 64 MiB budget); each test sets
/// or removes keys on top. Values are TOML (strings quoted).
#[derive(Debug, Clone)]
pub struct TestConfig {
    name: String,
    /// `(table header, its key = value lines)` in file order.
    tables: Vec<(String, Vec<(String, String)>)>,
}

impl TestConfig {
    pub fn new(a: &str, b: &str, flow: &str, pattern: &str) -> Self {
        Self::bare(a, b, flow, pattern)
            .flow("discovery_interval", "\"1s\"")
            .tuning("checkpoint_interval", "\"500ms\"")
            .tuning("memory_budget", "\"64MiB\"")
    }

    /// Only the clusters and the flow's name, source, target and topics:
    /// everything else at ferry's defaults.
    pub fn bare(a: &str, b: &str, flow: &str, pattern: &str) -> Self {
        let quoted = |v: &str| format!("{v:?}");
        Self {
            name: flow.to_owned(),
            tables: vec![
                (
                    "[clusters.src]".into(),
                    vec![("bootstrap_servers".into(), format!("[{}]", quoted(a)))],
                ),
                (
                    "[clusters.dst]".into(),
                    vec![("bootstrap_servers".into(), format!("[{}]", quoted(b)))],
                ),
                (
                    "[[flows]]".into(),
                    vec![
                        ("name".into(), quoted(flow)),
                        ("source".into(), quoted("src")),
                        ("target".into(), quoted("dst")),
                        ("topics".into(), format!("[{}]", quoted(pattern))),
                    ],
                ),
            ],
        }
    }

    /// Sets `key = value` in `table` (e.g. `"[flows.groups]"`), adding the
    /// table (after the flow) if it is not there yet.
    pub fn set(mut self, table: &str, key: &str, value: &str) -> Self {
        let at = match self.tables.iter().position(|(t, _)| t == table) {
            Some(at) => at,
            None => {
                self.tables.push((table.to_owned(), Vec::new()));
                self.tables.len() - 1
            }
        };
        let entries = &mut self.tables[at].1;
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_owned(),
            None => entries.push((key.to_owned(), value.to_owned())),
        }
        self
    }

    /// Removes `key` from `table`, if set.
    pub fn unset(mut self, table: &str, key: &str) -> Self {
        for (t, entries) in &mut self.tables {
            if t == table {
                entries.retain(|(k, _)| k != key);
            }
        }
        self
    }

    pub fn flow(self, key: &str, value: &str) -> Self {
        self.set("[[flows]]", key, value)
    }

    pub fn tuning(self, key: &str, value: &str) -> Self {
        self.set("[flows.tuning]", key, value)
    }

    pub fn target(self, key: &str, value: &str) -> Self {
        self.set("[clusters.dst]", key, value)
    }

    /// The TOML text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (table, entries) in &self.tables {
            out.push_str(table);
            out.push('\n');
            for (k, v) in entries {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        out
    }

    /// Writes `<flow>.toml` into `dir` and returns its path.
    pub fn write(&self, dir: &std::path::Path) -> PathBuf {
        let path = dir.join(format!("{}.toml", self.name));
        std::fs::write(&path, self.text()).unwrap();
        path
    }
}

pub fn write_config(dir: &std::path::Path, a: &str, b: &str, flow: &str, pattern: &str) -> PathBuf {
    TestConfig::new(a, b, flow, pattern).write(dir)
}

/// [`write_config`] whose flow also syncs the consumer groups matching
/// `groups` (a regex) every second.
pub fn write_group_config(
    dir: &std::path::Path,
    a: &str,
    b: &str,
    flow: &str,
    pattern: &str,
    groups: &str,
) -> PathBuf {
    TestConfig::new(a, b, flow, pattern)
        .set("[flows.groups]", "include", &format!("[{groups:?}]"))
        .set("[flows.groups]", "interval", "\"1s\"")
        .write(dir)
}

/// `batches` batches of 50 records each, cycling through every codec, with
/// keys, null values, headers (duplicate names) and current timestamps.
pub async fn produce(c: &Client, topic: &str, partition: i32, batches: usize, seed: usize) {
    for b in 0..batches {
        c.produce_batch(
            topic,
            partition,
            vec![sample_batch(b, seed)],
            &ProduceOptions::default(),
        )
        .await
        .unwrap();
    }
}

/// `ferry offsets translate` for source offsets `0..end` of `partition`:
/// the target offset of each.
pub fn translate(config: &std::path::Path, topic: &str, partition: i32, end: i64) -> Vec<i64> {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["offsets", "translate", "--config"])
        .arg(config)
        .args(["--topic", topic, "--partition", &partition.to_string()])
        .args(["--offset", &format!("0..{end}")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect()
}

/// ACL resource types, pattern types and operations (Kafka's codes).
pub mod acl {
    pub const TOPIC: i8 = 2;
    pub const CLUSTER: i8 = 4;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const IDEMPOTENT_WRITE: i8 = 12;
}

/// Allows `principal` each of `operations` on one resource, through a
/// super-user connection.
pub async fn grant(admin: &Client, principal: &str, resource: (i8, &str, i8), operations: &[i8]) {
    use kafka_protocol::messages::CreateAclsRequest;
    use kafka_protocol::messages::create_acls_request::AclCreation;
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    let (resource_type, name, pattern) = resource;
    let creations = operations
        .iter()
        .map(|&operation| {
            AclCreation::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name.to_owned()))
                .with_resource_pattern_type(pattern)
                .with_principal(StrBytes::from_string(principal.to_owned()))
                .with_host(StrBytes::from_static_str("*"))
                .with_operation(operation)
                .with_permission_type(3) // ALLOW
        })
        .collect();
    let conn = admin.any_connection().await.unwrap();
    let version = conn.versions().version_for::<CreateAclsRequest>().unwrap();
    let mut body = bytes::BytesMut::new();
    CreateAclsRequest::default()
        .with_creations(creations)
        .encode(&mut body, version)
        .unwrap();
    let mut reply = conn
        .send_raw(
            kafka_protocol::messages::ApiKey::CreateAcls,
            version,
            vec![body.freeze()],
        )
        .await
        .unwrap();
    // ferry never creates ACLs, so it has no bounded decoder for this
    // answer; kafka-protocol's is fine for a test talking to its own broker.
    let response =
        kafka_protocol::messages::CreateAclsResponse::decode(&mut reply, version).unwrap();
    for r in &response.results {
        assert_eq!(r.error_code, 0, "CreateAcls: {:?}", r.error_message);
    }
}
/// Batch `b` of [`produce`]: 50 records whose content depends on `b` and `seed`.
pub fn sample_batch(b: usize, seed: usize) -> Bytes {
    let codec = Compression::ALL[(b + seed) % Compression::ALL.len()];
    let records: Vec<Record> = (0..50)
        .map(|i| Record {
            offset: i,
            timestamp: now_ms(),
            key: (i % 7 != 3).then(|| Bytes::from(format!("key-{seed}-{b}-{i}"))),
            value: (i % 10 != 4).then(|| Bytes::from(format!("value {seed} {b} {i} ").repeat(5))),
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
    build_batch(&BatchSpec::producer(codec), &records).unwrap()
}

/// Produces one [`sample_batch`], retrying through faults (connection
/// resets, a restarting broker) for up to a minute. A retry after a lost
/// acknowledgement may write the batch twice on the source: the checks
/// compare the target with whatever the source holds.
pub async fn produce_retrying(c: &Client, topic: &str, partition: i32, seed: usize) {
    let batch = sample_batch(0, seed);
    let what = format!("a batch produced to {topic}-{partition}");
    eventually_every(
        Duration::from_secs(60),
        Duration::from_millis(100),
        what,
        || async {
            let options = ProduceOptions::default();
            match c
                .produce_batch(topic, partition, vec![batch.clone()], &options)
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => {
                    let _ = c.refresh_metadata(Some(&[topic])).await;
                    Err(e)
                }
            }
        },
    )
    .await;
}

/// Keeps producing to every partition of `topic` (one batch per partition
/// every `every`) until stopped; for mirroring under faults.
pub struct Background {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<usize>,
}

impl Background {
    pub fn start(c: Client, topic: String, partitions: i32, every: Duration, seed: usize) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut n = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for p in 0..partitions {
                    produce_retrying(&c, &topic, p, seed + n).await;
                    n += 1;
                }
                tokio::time::sleep(every).await;
            }
            n
        });
        Self { stop, task }
    }

    /// Stops and returns how many batches were produced.
    pub async fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// What the target holds compared with the source, over all partitions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    pub source_records: usize,
    pub target_records: usize,
    /// Source records not found on the target in source order.
    pub missing: usize,
    /// Target records beyond one copy of each source record.
    pub duplicates: usize,
}

/// Record-level check: every source record must be on the target, in
/// order per partition; extra target records are counted as duplicates.
/// Prints one line per partition.
pub async fn compare(
    a: &Client,
    b: &Client,
    source: &str,
    target: &str,
    partitions: i32,
) -> Comparison {
    let _ = b.refresh_metadata(Some(&[target])).await;
    let mut total = Comparison::default();
    for p in 0..partitions {
        let src = records(&read_all(a, source, p).await);
        let dst = records(&read_all(b, target, p).await);
        let mut missing = 0;
        let mut at = 0;
        for r in &src {
            match dst[at..].iter().position(|d| d == r) {
                Some(k) => at += k + 1,
                None => missing += 1,
            }
        }
        let duplicates = dst.len().saturating_sub(src.len() - missing);
        println!(
            "  {source}-{p} -> {target}-{p}: {} source records, {} target records, \
             {missing} missing, {duplicates} duplicates",
            src.len(),
            dst.len()
        );
        total.source_records += src.len();
        total.target_records += dst.len();
        total.missing += missing;
        total.duplicates += duplicates;
    }
    total
}

/// Waits until every target partition ends with its source partition's last
/// record (end offsets alone could be fooled by duplicates); returns how long.
pub async fn wait_caught_up(
    a: &Client,
    b: &Client,
    source: &str,
    target: &str,
    partitions: i32,
    timeout: Duration,
) -> Duration {
    let start = Instant::now();
    let what = format!("{target} caught up with {source}");
    eventually(timeout, what, || async {
        let _ = b.refresh_metadata(Some(&[target])).await;
        let want = end_offsets(a, source, partitions).await;
        let got = end_offsets(b, target, partitions).await;
        if want.iter().zip(&got).any(|(w, g)| g < w) {
            return Err(format!("target {got:?}, source {want:?}"));
        }
        for p in 0..partitions {
            if last_record(a, source, p).await != last_record(b, target, p).await {
                return Err(format!(
                    "partition {p} ends with another record than the source's"
                ));
            }
        }
        Ok(())
    })
    .await;
    start.elapsed()
}

/// The last record of a partition (reads its last batches only).
pub async fn last_record(c: &Client, topic: &str, partition: i32) -> Option<Content> {
    let end = c
        .list_offsets(topic, &[partition], OffsetSpec::Latest)
        .await
        .ok()?
        .first()?
        .1;
    if end == 0 {
        return None;
    }
    let options = FetchOptions {
        max_wait: Duration::from_millis(10),
        ..FetchOptions::default()
    };
    // Batches here hold at most 50 records.
    let mut offset = (end - 200).max(0);
    let mut last = None;
    while offset < end {
        let fetched = c.fetch_raw(topic, partition, offset, &options).await.ok()?;
        let mut any = false;
        for e in BatchIter::new(fetched.records.clone()) {
            let Ok(FetchedBatch::V2(b)) = e else {
                return None;
            };
            offset = b.header().next_offset();
            any = true;
            if let Some(r) = records(std::slice::from_ref(&b)).pop() {
                last = Some(r);
            }
        }
        if !any {
            return None;
        }
    }
    last
}

/// Resident set size of `pid` in bytes (`VmRSS`), or its peak so far
/// (`peak`: `VmHWM`), from /proc.
pub fn rss(pid: u32, peak: bool) -> Option<usize> {
    let field = if peak { "VmHWM:" } else { "VmRSS:" };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Values that do not compress (a cheap xorshift stream).
pub fn noise(len: usize, seed: u64) -> Bytes {
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

/// Produces `batches` uncompressed batches of 16 records of incompressible
/// values, `batch_bytes` in all each, to `partition`.
pub async fn produce_noise(
    c: &Client,
    topic: &str,
    partition: i32,
    batches: usize,
    batch_bytes: usize,
) {
    for i in 0..batches {
        let records: Vec<Record> = (0..16)
            .map(|r| Record {
                offset: r,
                timestamp: now_ms(),
                key: None,
                value: Some(noise(
                    batch_bytes / 16 - 64,
                    u64::try_from(partition).unwrap_or(0) << 40
                        | (i as u64) << 8
                        | u64::try_from(r).unwrap_or(0),
                )),
                headers: vec![],
            })
            .collect();
        let batch = build_batch(&BatchSpec::producer(Compression::None), &records).unwrap();
        c.produce_batch(topic, partition, vec![batch], &ProduceOptions::default())
            .await
            .unwrap();
    }
}

/// Deletes `topic` on the cluster at `bootstrap` with Kafka's own
/// TopicCommand (through the harness), and waits until it is gone.
pub async fn delete_topic(bootstrap: &str, topic: &str) {
    let c = client(bootstrap).await;
    let args: Vec<String> = [
        "--bootstrap-server",
        bootstrap,
        "--delete",
        "--topic",
        topic,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    tokio::task::spawn_blocking(move || {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new("python3")
            .arg(repo.join("harness/kafka_harness.py"))
            .args(["tool", "org.apache.kafka.tools.TopicCommand"])
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await
    .unwrap();
    eventually(
        Duration::from_secs(30),
        format!("{topic} deleted"),
        || async {
            let _ = c.refresh_metadata(Some(&[topic])).await;
            match c.list_topics().await {
                Ok(m) if !m.topics.contains_key(topic) => Ok(()),
                Ok(_) => Err("still listed".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
}

/// The first line of ferry's `log` for which `matches` holds, waiting up to
/// `timeout` (fails with the log as it was).
pub async fn wait_for_line(
    log: &std::path::Path,
    timeout: Duration,
    what: &str,
    matches: impl Fn(&str) -> bool,
) -> String {
    let every = Duration::from_millis(50);
    eventually_every(timeout, every, what, || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let found = text.lines().find(|l| matches(l)).map(str::to_owned);
        async move { found.ok_or_else(|| format!("log:\n{text}")) }
    })
    .await
}

/// The address ferry serves its metrics at, from its start-up log line
/// (blocking: some callers are not async).
pub fn metrics_address(log: &std::path::Path) -> String {
    let every = Duration::from_millis(50);
    eventually_blocking(
        Duration::from_secs(30),
        every,
        "metrics address logged",
        || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            text.lines()
                .find_map(|l| l.split_once("serving /metrics").map(|_| l.to_owned()))
                .and_then(|l| {
                    let at = l.find("address=")? + "address=".len();
                    l[at..].split_whitespace().next().map(str::to_owned)
                })
                .ok_or_else(|| format!("log:\n{text}"))
        },
    )
}
