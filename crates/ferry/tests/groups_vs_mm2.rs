//! Ferry's consumer-group offset translation against MirrorMaker 2's, on the
//! same data: a librdkafka group commits on the source at points that are
//! not MM2 offset-sync points, ferry and MM2 (dedicated mode, offset sync
//! every second, default `offset.lag.max`) mirror the topic and the group
//! into the same target cluster under their own prefixes, and the group
//! then drains each mirrored topic on the target. Records it receives that
//! it had already consumed on the source are re-delivered; records it
//! receives on neither side are skipped. Ferry must re-deliver and skip
//! nothing; MM2's counts are printed (the README quotes them).

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;
mod group_clients;

use ferry_testkit::eventually_every;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Ferry, brokers, client, create, end_offsets, unique, wait_mirrored, write_group_config,
};
use ferry_client::Client;
use group_clients::{Received, TOPIC_COMMAND, clients, kafka_tool_output};

const PARTITIONS: i32 = 4;
const PER_PARTITION: u32 = 3000;

/// Commit points per round: records the group reads of each partition
/// (no commit point is a multiple of 100, MM2's default `offset.lag.max`).
/// Round 1 commits before the replicators start, round 2 once they have
/// mirrored everything, round 3 after `LIVE` more records per partition
/// were produced while both ran: the group ends 22 to 66 records behind.
const ROUNDS: [[u32; 4]; 3] = [
    [1237, 2501, 333, 2999],
    [150, 77, 1001, 1],
    [2150, 1000, 2200, 537],
];
const LIVE: u32 = 600;

/// MirrorMaker 2 in dedicated mode through the harness; stopped when dropped.
struct Mm2(Child);

impl Mm2 {
    fn start(
        dir: &Path,
        source: &str,
        target: &str,
        aliases: (&str, &str),
        names: (&str, &str),
    ) -> Self {
        let (s, d) = aliases;
        let (topic, group) = names;
        let props = dir.join("mm2.properties");
        std::fs::write(
            &props,
            format!(
                "clusters = {s}, {d}\n\
                 {s}.bootstrap.servers = {source}\n\
                 {d}.bootstrap.servers = {target}\n\
                 {s}->{d}.enabled = true\n\
                 {s}->{d}.topics = {topic}\n\
                 {s}->{d}.groups = {group}\n\
                 {s}->{d}.emit.heartbeats.enabled = false\n\
                 {d}->{s}.enabled = false\n\
                 {d}->{s}.emit.heartbeats.enabled = false\n\
                 offset-syncs.topic.location = target\n\
                 sync.group.offsets.enabled = true\n\
                 emit.checkpoints.interval.seconds = 1\n\
                 sync.group.offsets.interval.seconds = 1\n\
                 refresh.groups.interval.seconds = 1\n\
                 refresh.topics.interval.seconds = 1\n\
                 sync.topic.acls.enabled = false\n\
                 replication.factor = 1\n\
                 offset-syncs.topic.replication.factor = 1\n\
                 checkpoints.topic.replication.factor = 1\n\
                 heartbeats.topic.replication.factor = 1\n\
                 offset.storage.replication.factor = 1\n\
                 config.storage.replication.factor = 1\n\
                 status.storage.replication.factor = 1\n\
                 offset.storage.partitions = 2\n\
                 status.storage.partitions = 1\n\
                 tasks.max = 1\n\
                 plugin.discovery = service_load\n\
                 {d}.plugin.discovery = service_load\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("mm2.out")).unwrap();
        let child = Command::new("python3")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../harness/kafka_harness.py"))
            .arg("mm2")
            .arg(&props)
            .args(["--clusters", d])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for Mm2 {
    fn drop(&mut self) {
        // The harness execs java, so this pid is MirrorMaker's JVM.
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        for _ in 0..300 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The group's committed offsets on `c` for `topic`, by partition.
async fn group_offsets(c: &Client, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    c.fetch_group_offsets(group)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|(tp, _, _)| tp.topic.as_ref() == topic)
        .map(|(tp, o, _)| (tp.partition, o))
        .collect()
}

/// Waits until the group's offsets for `topic` on the target cover every
/// partition and have not changed for `quiet` (MM2 syncs every second);
/// returns them, or what there is after `timeout`.
async fn wait_translated(
    b: &Client,
    group: &str,
    topic: &str,
    quiet: Duration,
    timeout: Duration,
) -> BTreeMap<i32, i64> {
    let deadline = Instant::now() + timeout;
    let mut last = BTreeMap::new();
    let mut since = Instant::now();
    loop {
        let now = group_offsets(b, group, topic).await;
        if now != last {
            last = now;
            since = Instant::now();
        } else if last.len() == PARTITIONS as usize && since.elapsed() >= quiet {
            return last;
        }
        if Instant::now() > deadline {
            println!("  {topic}: the group has only {last:?} after {timeout:?}");
            return last;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What one replicator's target gave the group.
#[derive(Debug, Default)]
struct Count {
    redelivered: usize,
    skipped: usize,
    received: usize,
}

/// Drains `topic` on the target as the group (committing nothing) and
/// counts against what the group consumed on the source.
fn count(
    target: &str,
    group: &str,
    topic: &str,
    produced: &BTreeSet<String>,
    consumed: &BTreeSet<String>,
) -> Count {
    let got: Vec<Received> = clients(&["drain", target, group, topic]);
    let received: BTreeSet<&str> = got.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(
        received.len(),
        got.len(),
        "{topic}: the target itself has duplicates"
    );
    Count {
        redelivered: got.iter().filter(|r| consumed.contains(&r.value)).count(),
        skipped: produced
            .iter()
            .filter(|v| !consumed.contains(*v) && !received.contains(v.as_str()))
            .count(),
        received: got.len(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_redelivers_nothing_where_mm2_redelivers() {
    let Some((source, target)) = brokers() else {
        return;
    };
    let started = Instant::now();
    let (a, b) = (client(&source).await, client(&target).await);
    let dir = std::env::temp_dir().join(unique("ferry-vs-mm2"));
    std::fs::create_dir_all(&dir).unwrap();
    let id = unique("runbook-mm2");
    let (topic, group) = (format!("{id}-orders"), format!("{id}-billing"));
    // Both prefixes name this run only, so MM2's internal topics do too.
    let suffix: String = id.chars().filter(char::is_ascii_digit).collect();
    let (mm2_alias, mm2_target_alias) = (format!("mm{suffix}"), format!("mmdst{suffix}"));
    let ferry_topic = format!("src.{topic}");
    let mm2_topic = format!("{mm2_alias}.{topic}");

    create(&a, &topic, PARTITIONS).await;
    clients(&[
        "produce",
        &source,
        &topic,
        &PARTITIONS.to_string(),
        &PER_PARTITION.to_string(),
        "r",
        "lz4",
    ]);
    let mut produced: BTreeSet<String> = (0..PER_PARTITION)
        .flat_map(|i| (0..PARTITIONS).map(move |p| format!("r-{p}-{i}")))
        .collect();
    let take = |round: &[u32; 4]| {
        let spec: Vec<String> = round
            .iter()
            .enumerate()
            .map(|(p, n)| format!("{p}={n}"))
            .collect();
        clients(&["take", &source, &group, &topic, &spec.join(",")])
    };
    let mut consumed: BTreeSet<String> = take(&ROUNDS[0]).into_iter().map(|r| r.value).collect();

    let config = write_group_config(&dir, &source, &target, &id, &topic, &group);
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    let mm2 = Mm2::start(
        &dir,
        &source,
        &target,
        (&mm2_alias, &mm2_target_alias),
        (&regex_escape(&topic), &regex_escape(&group)),
    );
    wait_mirrored(&a, &b, &topic, &ferry_topic, PARTITIONS).await;
    wait_mirrored_long(&a, &b, &topic, &mm2_topic).await;
    println!("mirrored by both after {:.0?}", started.elapsed());

    let mut results = Vec::new();
    for (round, points) in ROUNDS.iter().enumerate() {
        if round == 2 {
            clients(&[
                "produce",
                &source,
                &topic,
                &PARTITIONS.to_string(),
                &LIVE.to_string(),
                "s",
                "lz4",
            ]);
            produced
                .extend((0..LIVE).flat_map(|i| (0..PARTITIONS).map(move |p| format!("s-{p}-{i}"))));
            wait_mirrored(&a, &b, &topic, &ferry_topic, PARTITIONS).await;
            wait_mirrored_long(&a, &b, &topic, &mm2_topic).await;
        }
        if round > 0 {
            consumed.extend(take(points).into_iter().map(|r| r.value));
        }
        let on_source = group_offsets(&a, &group, &topic).await;
        let quiet = Duration::from_secs(5);
        let by_ferry =
            wait_translated(&b, &group, &ferry_topic, quiet, Duration::from_secs(60)).await;
        let by_mm2 = wait_translated(&b, &group, &mm2_topic, quiet, Duration::from_secs(90)).await;
        let ferry_count = count(&target, &group, &ferry_topic, &produced, &consumed);
        let mm2_count = count(&target, &group, &mm2_topic, &produced, &consumed);
        println!(
            "round {}: {} records consumed on the source",
            round + 1,
            consumed.len()
        );
        println!("  partition  committed on source  ferry on target  MM2 on target");
        for p in 0..PARTITIONS {
            let show = |m: &BTreeMap<i32, i64>| m.get(&p).map_or("-".to_owned(), i64::to_string);
            println!(
                "  {p:>9}  {:>19}  {:>15}  {:>13}",
                show(&on_source),
                show(&by_ferry),
                show(&by_mm2)
            );
        }
        println!("  ferry: {ferry_count:?}\n  MM2:   {mm2_count:?}");
        assert_eq!(
            by_ferry, on_source,
            "no gaps: ferry's offsets are the source's"
        );
        assert_eq!(
            (ferry_count.redelivered, ferry_count.skipped),
            (0, 0),
            "ferry"
        );
        assert_eq!(mm2_count.skipped, 0, "MM2 never skips");
        assert!(mm2_count.received <= produced.len());
        results.push((ferry_count, mm2_count));
    }
    drop(mm2);
    ferry.stop();
    println!(
        "ferry vs MM2: {PARTITIONS} partitions x {PER_PARTITION} records (lz4), commit points {ROUNDS:?}: \
         re-delivered ferry {:?}, MM2 {:?} (in {:.0?})",
        results.iter().map(|r| r.0.redelivered).collect::<Vec<_>>(),
        results.iter().map(|r| r.1.redelivered).collect::<Vec<_>>(),
        started.elapsed()
    );
    // MM2's internal topics carry this run's aliases: remove them.
    let _ = kafka_tool_output(
        TOPIC_COMMAND,
        &[
            "--bootstrap-server",
            &target,
            "--delete",
            "--topic",
            &format!(
                "mm2-.*\\.({mm2_alias}|{mm2_target_alias})\\.internal|{mm2_alias}\\.checkpoints\\.internal"
            ),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `wait_mirrored` with room for MM2's start-up (a JVM, Connect, topic
/// discovery).
async fn wait_mirrored_long(a: &Client, b: &Client, source: &str, target: &str) {
    let what = format!("MM2 mirrored {source} to {target}");
    eventually_every(
        Duration::from_secs(120),
        Duration::from_millis(500),
        what,
        || async {
            let want = end_offsets(a, source, PARTITIONS).await;
            let _ = b.refresh_metadata(Some(&[target])).await;
            match end_offsets(b, target, PARTITIONS).await {
                got if got == want => Ok(()),
                got => Err(format!("target {got:?}, source {want:?}")),
            }
        },
    )
    .await;
}

/// A topic or group name as a Java regex matching just that name.
fn regex_escape(name: &str) -> String {
    // `\\.` in the properties file: Java's properties reader turns `\.`
    // into `.`, which would match any character.
    name.replace('.', "\\\\.")
}
