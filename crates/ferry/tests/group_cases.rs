//! Consumer groups continue exactly on the target, whatever the data and
//! whichever real client commits: Kafka's Java console consumer and
//! librdkafka commit part-way through a source topic, ferry mirrors it and
//! syncs the group, and the same group on the target reads on from exactly
//! the next record it had not consumed (none skipped, none read twice;
//! compared by content: key, value, headers, timestamp). Cases: a plain
//! topic; aborted Java transactions read with read_committed; a compacted
//! topic after the cleaner ran; a Java commit inside a compressed batch.
//! Also `ferry offsets translate --group` against real brokers, and exact
//! translation after a restart once the target's retention (here
//! kafka-delete-records) removed a prefix of the mirrored partition.
//!
//! FERRY_KAFKA_A is the source, FERRY_KAFKA_B the target. Needs python3 with
//! confluent-kafka and java (scripts/test installs both).

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;
mod group_clients;

use ferry_testkit::eventually;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::producers::{Produce, produce_real, repo, script, wait_compacted, wait_stable};
use common::{
    Content, Ferry, brokers, client, create, create_with, read_all, read_from, unique,
    write_group_config,
};
use ferry_client::{Client, OffsetSpec};
use ferry_wire::batch::RecordBatch;
use ferry_wire::codec::Compression;
use group_clients::{Received, clients, console_take, ferry, kafka_tool};

/// A scratch directory and a config with one flow mirroring `<prefix>-.*`;
/// its periodic group sync selects `groups` (a regex) every second.
fn setup(a: &str, b: &str, name: &str, groups: &str) -> (PathBuf, String, PathBuf) {
    let prefix = unique(&format!("grp3-{name}"));
    let dir = std::env::temp_dir().join(format!("ferry-{prefix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_group_config(
        &dir,
        a,
        b,
        &format!("flow-{prefix}"),
        &format!("{prefix}-.*"),
        groups,
    );
    (dir, prefix, config)
}

/// No group of this name exists: the flow's periodic sync stays out of the
/// way of a test that syncs with `ferry offsets sync`.
const NO_GROUPS: &str = "no-such-group";

fn target_of(topic: &str) -> String {
    format!("src.{topic}")
}

fn by_partition(records: Vec<Received>) -> BTreeMap<i32, Vec<Received>> {
    let mut out: BTreeMap<i32, Vec<Received>> = BTreeMap::new();
    for r in records {
        out.entry(r.partition).or_default().push(r);
    }
    out
}

/// What a read_committed librdkafka consumer reads of `topic`, by partition
/// (a fresh group that commits nothing).
fn source_view(addr: &str, topic: &str) -> BTreeMap<i32, Vec<Received>> {
    let group = unique("grp3-view");
    by_partition(clients(&["drain", addr, &group, topic]))
}

/// A one-partition `topic` written by Java's transactional producer
/// (testdata/gen's txn script: commits, aborts, markers) in `codec`, once
/// every transaction is resolved; its read_committed view.
async fn java_transactions(
    a: &Client,
    a_addr: &str,
    topic: &str,
    codec: &'static str,
) -> BTreeMap<i32, Vec<Received>> {
    create(a, topic, 1).await;
    let runs = vec![Produce {
        client: "java",
        topic: topic.to_owned(),
        codec,
    }];
    produce_real(a_addr, &repo().join("testdata/gen/scripts/txn.txt"), runs).await;
    wait_stable(a, topic).await;
    source_view(a_addr, topic)
}

/// Every record of the partition by offset (raw read, control batches left out).
fn contents(batches: &[RecordBatch]) -> BTreeMap<i64, Content> {
    batches
        .iter()
        .filter(|b| !b.header().is_control())
        .flat_map(|b| b.records(64 << 20).unwrap().map(|r| r.unwrap()))
        .map(|r| (r.offset, (r.key, r.value, r.headers, r.timestamp)))
        .collect()
}

/// The group's committed source offsets, by partition.
async fn committed(c: &Client, group: &str) -> BTreeMap<i32, i64> {
    c.fetch_group_offsets(group)
        .await
        .unwrap()
        .into_iter()
        .map(|(tp, offset, _)| (tp.partition, offset))
        .collect()
}

/// Index of the first record at or after source offset `offset`: where the
/// group continues, and (ferry renumbers from 0, without gaps) its target offset.
fn next_index(view: &[Received], offset: i64) -> usize {
    view.iter()
        .position(|r| r.offset >= offset)
        .unwrap_or(view.len())
}

/// Waits until every target partition holds as many records as the source
/// view (ferry renumbers without gaps, so that is its end offset).
async fn wait_target(b: &Client, target: &str, view: &BTreeMap<i32, Vec<Received>>, ferry: &Ferry) {
    eventually(
        Duration::from_secs(90),
        format!("{target} mirrored"),
        || async {
            let _ = b.refresh_metadata(Some(&[target])).await;
            for (p, records) in view {
                let want = i64::try_from(records.len()).unwrap();
                let got = b
                    .list_offsets(target, &[*p], OffsetSpec::Latest)
                    .await
                    .map_or(-1, |v| v[0].1);
                if got != want {
                    let log = std::fs::read_to_string(&ferry.log).unwrap_or_default();
                    return Err(format!(
                        "{target}-{p}: {got} of {want} records; ferry log:\n{log}"
                    ));
                }
            }
            Ok(())
        },
    )
    .await;
}

/// The group continued exactly: on every partition it committed, what it
/// read on the target (`resumed`) starts at the translation of its source
/// commit and is, record for record, the rest of the source partition.
async fn assert_continues(
    (a, b): (&Client, &Client),
    topic: &str,
    view: &BTreeMap<i32, Vec<Received>>,
    commits: &BTreeMap<i32, i64>,
    resumed: Vec<Received>,
) {
    let target = target_of(topic);
    let resumed = by_partition(resumed);
    for (p, offset) in commits {
        let src = &view[p];
        let k = next_index(src, *offset);
        let got = resumed.get(p).map_or(&[][..], Vec::as_slice);
        let want_offsets: Vec<i64> = (k..src.len()).map(|i| i64::try_from(i).unwrap()).collect();
        let got_offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
        assert_eq!(
            got_offsets, want_offsets,
            "{topic}-{p}: committed {offset} on the source; target offsets read"
        );
        let values = |rs: &[Received]| rs.iter().map(|r| r.value.clone()).collect::<Vec<_>>();
        assert_eq!(
            values(got),
            values(&src[k..]),
            "{topic}-{p}: values read on the target"
        );
        // Full records: key, value, headers, timestamp.
        let source_records = contents(&read_all(a, topic, *p).await);
        let target_records = contents(&read_all(b, &target, *p).await);
        println!(
            "{topic}-{p}: committed {offset} -> target {k}; {} records read on, first {:?}",
            got.len(),
            got.first().map(|r| &r.value)
        );
        for (i, r) in src.iter().enumerate().skip(k) {
            let t = i64::try_from(i).unwrap();
            assert!(source_records.contains_key(&r.offset), "{topic}-{p}: {r:?}");
            assert_eq!(
                target_records.get(&t),
                source_records.get(&r.offset),
                "{topic}-{p}: source offset {} / target offset {t}",
                r.offset
            );
        }
    }
}

/// `ferry offsets translate --group`'s rows: partition -> (source offset,
/// target offset, target group offset, status), for `topic`.
fn translate_table(config: &Path, group: &str, topic: &str) -> BTreeMap<i32, [String; 4]> {
    let out = ferry(&["offsets", "translate", "--group", group], config);
    let mut lines = out.lines().skip_while(|l| !l.starts_with("TOPIC"));
    assert!(lines.next().is_some(), "no table:\n{out}");
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0] == topic).then(|| {
                assert_eq!(f[3], target_of(topic), "{l}");
                (
                    f[1].parse().unwrap(),
                    [f[2].into(), f[4].into(), f[5].into(), f[6..].join(" ")],
                )
            })
        })
        .collect()
}

/// Checks the table against the commits before and after `ferry offsets
/// sync`, then syncs.
fn translate_and_sync(
    config: &Path,
    group: &str,
    topic: &str,
    view: &BTreeMap<i32, Vec<Received>>,
    commits: &BTreeMap<i32, i64>,
) {
    let expect = |target_group: Option<usize>, status: &str| -> BTreeMap<i32, [String; 4]> {
        commits
            .iter()
            .map(|(p, o)| {
                let k = next_index(&view[p], *o);
                let tg = target_group.map_or("-".to_owned(), |_| k.to_string());
                (*p, [o.to_string(), k.to_string(), tg, status.to_owned()])
            })
            .collect()
    };
    assert_eq!(
        translate_table(config, group, topic),
        expect(None, "not synced yet"),
        "{group}: before ferry offsets sync"
    );
    ferry(&["offsets", "sync", "--group", group], config);
    assert_eq!(
        translate_table(config, group, topic),
        expect(Some(0), "in sync"),
        "{group}: after ferry offsets sync"
    );
}

/// The first `n` with a gap of more than one offset (more than a
/// transaction marker) between records `n - 1` and `n`: a consumer that
/// read `n` records commits inside the gap.
fn before_gap(view: &[Received]) -> usize {
    (1..view.len())
        .find(|&n| view[n].offset - view[n - 1].offset > 2)
        .expect("the data has no gap")
}

/// (a) A plain lz4 topic in two partitions: a librdkafka group (exact
/// commit points) continues on the target with Kafka's Java console
/// consumer, a Java group continues with librdkafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_topic_groups_of_both_clients_continue_exactly() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let (dir, prefix, config) = setup(&a_addr, &b_addr, "plain", NO_GROUPS);
    let topic = format!("{prefix}-plain");
    create(&a, &topic, 2).await;
    clients(&["produce", &a_addr, &topic, "2", "300", &prefix, "lz4"]);
    let view = source_view(&a_addr, &topic);
    let (rdk, java) = (format!("{prefix}-rdk"), format!("{prefix}-java"));
    let read = by_partition(clients(&["take", &a_addr, &rdk, &topic, "0=123,1=77"]));
    for (p, n) in [(0, 123), (1, 77)] {
        assert_eq!(read[&p], view[&p][..n], "{rdk}: partition {p}");
    }
    let java_read = by_partition(console_take(&a_addr, &java, &topic, 150));
    let java_commits = committed(&a, &java).await;
    for (p, got) in &java_read {
        // The console consumer commits exactly what it printed.
        assert_eq!(*got, view[p][..got.len()], "{java}: partition {p}");
        assert_eq!(java_commits[p], i64::try_from(got.len()).unwrap());
    }

    let ferry_run = Ferry::start(&config, dir.join("ferry.log"));
    wait_target(&b, &target_of(&topic), &view, &ferry_run).await;
    ferry_run.stop();
    let rdk_commits = committed(&a, &rdk).await;
    translate_and_sync(&config, &rdk, &topic, &view, &rdk_commits);
    translate_and_sync(&config, &java, &topic, &view, &java_commits);

    let left = 600 - 200;
    let resumed = console_take(&b_addr, &rdk, &target_of(&topic), left);
    assert_continues((&a, &b), &topic, &view, &rdk_commits, resumed).await;
    let resumed = clients(&["consume", &b_addr, &java, &target_of(&topic), "all"]);
    assert_continues((&a, &b), &topic, &view, &java_commits, resumed).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// (d) Kafka's Java consumer commits in the middle of a compressed batch;
/// the flow's periodic group sync (not `ferry offsets sync`) moves the
/// group, and the Java consumer continues on the target inside the same
/// batch, forwarded as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_commit_inside_a_compressed_batch_continues_exactly() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let (dir, prefix, config) = setup(&a_addr, &b_addr, "midbatch", "grp3-midbatch-.*-java");
    let topic = format!("{prefix}-gzip");
    create(&a, &topic, 1).await;
    clients(&["produce", &a_addr, &topic, "1", "200", &prefix, "gzip"]);
    let view = source_view(&a_addr, &topic);
    let batches = read_all(&a, &topic, 0).await;
    let batch = batches
        .iter()
        .map(RecordBatch::header)
        .find(|h| h.record_count >= 3 && h.compression().unwrap() != Compression::None)
        .expect("a compressed batch of 3 records or more");
    let n = batch.base_offset + i64::from(batch.record_count / 2);
    let group = format!("{prefix}-java");
    let read = console_take(&a_addr, &group, &topic, usize::try_from(n).unwrap());
    assert_eq!(read, view[&0][..read.len()]);
    let commits = committed(&a, &group).await;
    assert_eq!(commits[&0], n, "committed inside batch {batch:?}");
    println!(
        "{topic}: committed {n} inside the batch {}..{}",
        batch.base_offset,
        batch.next_offset()
    );

    let ferry_run = Ferry::start(&config, dir.join("ferry.log"));
    let target = target_of(&topic);
    wait_target(&b, &target, &view, &ferry_run).await;
    eventually(
        Duration::from_secs(30),
        format!("{group} synced"),
        || async {
            match committed(&b, &group).await.get(&0) {
                Some(c) if *c == n => Ok(()),
                other => Err(format!("target group at {other:?}, want {n}")),
            }
        },
    )
    .await;
    ferry_run.stop();
    assert_eq!(translate_table(&config, &group, &topic)[&0][3], "in sync");
    // The target offset is inside a compressed batch there too.
    let inside = read_all(&b, &target, 0).await.into_iter().any(|t| {
        let h = t.header();
        h.base_offset < n && n < h.next_offset() && h.compression().unwrap() == Compression::Gzip
    });
    assert!(inside, "{target}: offset {n} is not inside a gzip batch");
    let resumed = console_take(&b_addr, &group, &target, 200 - read.len());
    assert_continues((&a, &b), &topic, &view, &commits, resumed).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// (b) Java transactions with aborts and markers (testdata/gen's txn
/// script, lz4), read with read_committed by librdkafka, which commits just
/// before an aborted transaction: on the target the group continues at the
/// next committed record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_group_continues_exactly_after_aborted_transactions() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let (dir, prefix, config) = setup(&a_addr, &b_addr, "txn", NO_GROUPS);
    let topic = format!("{prefix}-txn");
    let view = java_transactions(&a, &a_addr, &topic, "lz4").await;
    let n = before_gap(&view[&0]);
    let group = format!("{prefix}-rdk");
    let read = clients(&["take", &a_addr, &group, &topic, &format!("0={n}")]);
    assert_eq!(read, view[&0][..n]);
    let commits = committed(&a, &group).await;
    assert!(
        commits[&0] < view[&0][n].offset,
        "{group}: commit {commits:?} is not in the aborted stretch"
    );

    let ferry_run = Ferry::start(&config, dir.join("ferry.log"));
    wait_target(&b, &target_of(&topic), &view, &ferry_run).await;
    ferry_run.stop();
    translate_and_sync(&config, &group, &topic, &view, &commits);
    let resumed = clients(&["consume", &b_addr, &group, &target_of(&topic), "all"]);
    assert_continues((&a, &b), &topic, &view, &commits, resumed).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// (c) A compacted topic after the cleaner ran (offset gaps inside and
/// between batches): a librdkafka group that commits in a gap continues on
/// the target at the next surviving record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_continues_exactly_across_compaction_gaps() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let (dir, prefix, config) = setup(&a_addr, &b_addr, "compact", NO_GROUPS);
    let topic = format!("{prefix}-compact");
    // As tests/mirror_cases.rs: a segment per round, cleaned at once.
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.ms", "1000"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("min.compaction.lag.ms", "0"),
        ("delete.retention.ms", "86400000"),
    ];
    create_with(&a, &topic, 1, &configs).await;
    let keys = 40;
    let script = script(
        &dir,
        "compact",
        &["--keys", &keys.to_string(), "--round-ms", "1300"],
    )
    .await;
    let runs = vec![Produce {
        client: "java",
        topic: topic.clone(),
        codec: "zstd",
    }];
    produce_real(&a_addr, &script, runs).await;
    wait_compacted(&a, &topic, keys + 1).await;
    let view = source_view(&a_addr, &topic);
    assert_eq!(view[&0].len(), keys + 1);
    let n = before_gap(&view[&0]);
    let group = format!("{prefix}-rdk");
    let read = clients(&["take", &a_addr, &group, &topic, &format!("0={n}")]);
    assert_eq!(read, view[&0][..n]);
    let commits = committed(&a, &group).await;
    assert!(
        commits[&0] < view[&0][n].offset,
        "{commits:?}: not in a gap"
    );

    let ferry_run = Ferry::start(&config, dir.join("ferry.log"));
    wait_target(&b, &target_of(&topic), &view, &ferry_run).await;
    ferry_run.stop();
    translate_and_sync(&config, &group, &topic, &view, &commits);
    let resumed = clients(&["consume", &b_addr, &group, &target_of(&topic), "all"]);
    assert_continues((&a, &b), &topic, &view, &commits, resumed).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Target records this far into the partition are deleted.
const DELETED: i64 = 20;

/// 3. After a restart and once a prefix of the target partition is gone
/// (kafka-delete-records), `ferry offsets translate` still gives exactly
/// where each source record sits on the target, and says "deleted" for
/// those whose target record is gone, never an offset that cannot be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translation_after_restart_and_target_retention() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let (dir, prefix, config) = setup(&a_addr, &b_addr, "retention", NO_GROUPS);
    let topic = format!("{prefix}-txn");
    let target = target_of(&topic);
    let view = java_transactions(&a, &a_addr, &topic, "none").await;
    let committed_at: Vec<i64> = view[&0].iter().map(|r| r.offset).collect();
    // Two groups: one whose target record will be gone, one still there.
    let (early, late) = (format!("{prefix}-early"), format!("{prefix}-late"));
    clients(&["take", &a_addr, &early, &topic, "0=5"]);
    clients(&["take", &a_addr, &late, &topic, "0=30"]);

    let ferry_run = Ferry::start(&config, dir.join("ferry.log"));
    wait_target(&b, &target, &view, &ferry_run).await;
    ferry_run.stop();
    let offsets_file = dir.join("delete.json");
    std::fs::write(
        &offsets_file,
        format!(
            r#"{{"version":1,"partitions":[{{"topic":"{target}","partition":0,"offset":{DELETED}}}]}}"#
        ),
    )
    .unwrap();
    kafka_tool(
        "org.apache.kafka.tools.DeleteRecordsCommand",
        &[
            "--bootstrap-server",
            &b_addr,
            "--offset-json-file",
            offsets_file.to_str().unwrap(),
        ],
    );
    let start = b
        .list_offsets(&target, &[0], OffsetSpec::Earliest)
        .await
        .unwrap();
    assert_eq!(
        start[0].1, DELETED,
        "{target}: log start after delete-records"
    );
    // Restart: ferry resumes, expires map runs below the log start, and
    // mirrors nothing again.
    let ferry_run = Ferry::start(&config, dir.join("ferry.log"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_target(&b, &target, &view, &ferry_run).await;
    ferry_run.stop();

    let end = committed_at.last().unwrap() + 2; // past the last record
    let out = ferry(
        &[
            "offsets",
            "translate",
            "--topic",
            &topic,
            "--offset",
            &format!("0..{end}"),
        ],
        &config,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), usize::try_from(end).unwrap(), "{out}");
    let source_records = contents(&read_all(&a, &topic, 0).await);
    let target_records = contents(&read_from(&b, &target, 0, DELETED).await);
    let (mut exact, mut deleted) = (0, 0);
    for (s, line) in (0..end).zip(&lines) {
        let k = i64::try_from(next_index(&view[&0], s)).unwrap();
        if k < DELETED {
            assert!(
                line.contains("deleted on the target"),
                "source offset {s}: {line}"
            );
            deleted += 1;
            continue;
        }
        assert!(
            line.ends_with(&format!(" offset {k}")),
            "source offset {s}: {line}"
        );
        if let Some(at) = committed_at.get(usize::try_from(k).unwrap()) {
            assert!(target_records.contains_key(&k), "target offset {k}");
            assert_eq!(
                target_records.get(&k),
                source_records.get(at),
                "source offset {s} -> target offset {k}"
            );
            exact += 1;
        }
    }
    assert!(
        deleted > 0 && exact > 10,
        "{deleted} deleted, {exact} checked"
    );
    println!(
        "{topic}: of {end} source offsets {deleted} translate to deleted target records, {exact} exactly"
    );

    // The group table says so too; a sync moves a group whose next
    // record is gone to the target's log start (the next one there), not
    // below it.
    let early_row = &translate_table(&config, &early, &topic)[&0];
    assert!(early_row[3].contains("deleted"), "{early_row:?}");
    assert_eq!(early_row[1], "-");
    ferry(&["offsets", "sync", "--group", &early], &config);
    assert_eq!(
        committed(&b, &early).await[&0],
        DELETED,
        "{early} on the target"
    );
    let late_commit = committed(&a, &late).await[&0];
    let late_row = &translate_table(&config, &late, &topic)[&0];
    assert_eq!(
        late_row[1],
        next_index(&view[&0], late_commit).to_string(),
        "{late_row:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Failback, exactly: a group that moved to the target and read on there
/// goes back to the source with `ferry offsets sync --reverse`, and reads
/// on at the source from exactly the next record it had not read on the
/// target (here across an aborted transaction); a group that read
/// everything on the target reads nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_sync_returns_the_group_exactly_where_it_left_the_target() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let (dir, prefix, config) = setup(&a_addr, &b_addr, "back", NO_GROUPS);
    let topic = format!("{prefix}-txn");
    let target = target_of(&topic);
    let view = java_transactions(&a, &a_addr, &topic, "lz4").await;
    let records = &view[&0];
    let (group, done) = (format!("{prefix}-billing"), format!("{prefix}-done"));
    clients(&["take", &a_addr, &group, &topic, "0=5"]);
    clients(&["take", &a_addr, &done, &topic, "0=3"]);

    let ferry_run = Ferry::start(&config, dir.join("ferry.log"));
    wait_target(&b, &target, &view, &ferry_run).await;
    ferry_run.stop();
    // Failover: both groups move to the target and read on there, `group`
    // up to just before an aborted transaction, `done` to the end.
    for g in [&group, &done] {
        ferry(&["offsets", "sync", "--group", g], &config);
    }
    let n = before_gap(records);
    let read = clients(&["take", &b_addr, &group, &target, &format!("0={}", n - 5)]);
    assert_eq!(
        read.first().map(|r| r.offset),
        Some(5),
        "{group} on the target"
    );
    clients(&["consume", &b_addr, &done, &target, "all"]);

    // Failback.
    for g in [&group, &done] {
        let out = ferry(&["offsets", "sync", "--reverse", "--group", g], &config);
        println!("{}", out.trim());
    }
    let on_source = committed(&a, &group).await[&0];
    assert_eq!(
        on_source, records[n].offset,
        "{group}: back on the source at the next committed record"
    );
    let resumed = clients(&["consume", &a_addr, &group, &topic, "all"]);
    assert_eq!(
        resumed,
        records[n..],
        "{group}: read on the source after failback"
    );
    let end = records.last().unwrap().offset + 1;
    assert_eq!(committed(&a, &done).await[&0], end, "{done}");
    let resumed = clients(&["consume", &a_addr, &done, &topic, "all"]);
    assert!(resumed.is_empty(), "{done} read again: {resumed:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
