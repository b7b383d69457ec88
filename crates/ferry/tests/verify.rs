//! Real-broker tests of `ferry verify`: mirror with `ferry run` between two
//! harness clusters (FERRY_KAFKA_A source, FERRY_KAFKA_B target), then
//! check that verify passes, and that it names the partition and offset of
//! records written to the target behind ferry's back.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use ferry_testkit::eventually;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bytes::Bytes;
use common::{
    Ferry, brokers, client, create, now_ms, produce, read_all, records, unique, write_config,
};
use ferry_client::{Client, OffsetSpec, ProduceOptions};
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::Record;

/// One batch of `records` to `topic`/`partition`; returns its base offset.
async fn produce_records(
    c: &Client,
    topic: &str,
    partition: i32,
    codec: Compression,
    records: &[Record],
) -> i64 {
    let batch = build_batch(&BatchSpec::producer(codec), records).unwrap();
    c.produce_batch(topic, partition, vec![batch], &ProduceOptions::default())
        .await
        .unwrap()
        .base_offset
}

/// Every data record of a partition, in order.
async fn read_records(c: &Client, topic: &str, partition: i32) -> Vec<Record> {
    read_all(c, topic, partition)
        .await
        .iter()
        .filter(|b| !b.header().is_control())
        .flat_map(|b| b.records(64 << 20).unwrap().map(|r| r.unwrap()))
        .collect()
}

async fn end_offsets(c: &Client, topic: &str, partitions: i32) -> Vec<i64> {
    let ps: Vec<i32> = (0..partitions).collect();
    let _ = c.refresh_metadata(Some(&[topic])).await;
    match c.list_offsets(topic, &ps, OffsetSpec::Latest).await {
        Ok(v) => v.into_iter().map(|(_, o)| o).collect(),
        Err(_) => vec![-1; ps.len()],
    }
}

/// Waits until each target partition's end is the source's plus `extra`
/// (records written to the target by the test itself).
async fn wait_mirrored(a: &Client, b: &Client, source: &str, target: &str, extra: &[i64]) {
    let partitions = i32::try_from(extra.len()).unwrap();
    eventually(
        Duration::from_secs(90),
        format!("{target} mirrored"),
        || async {
            let want: Vec<i64> = end_offsets(a, source, partitions)
                .await
                .iter()
                .zip(extra)
                .map(|(s, e)| s + e)
                .collect();
            let got = end_offsets(b, target, partitions).await;
            if want == got {
                Ok(())
            } else {
                Err(format!("target {got:?}, want {want:?}"))
            }
        },
    )
    .await;
}

/// Runs `ferry verify`; returns its exit code and stdout.
fn verify(config: &Path, extra: &[&str]) -> (i32, String) {
    let Output { status, stdout, .. } = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["verify", "--config"])
        .arg(config)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    println!("{stdout}");
    (status.code().unwrap_or(-1), stdout)
}

/// The line `ferry verify` printed for one partition.
fn line<'a>(out: &'a str, partition: &str) -> &'a str {
    out.lines()
        .find(|l| l.trim_start().starts_with(&format!("{partition} -> ")))
        .unwrap_or_else(|| panic!("no line for {partition} in:\n{out}"))
}

struct Setup {
    a: Client,
    b: Client,
    dir: PathBuf,
    config: PathBuf,
    topic: String,
    target: String,
    prefix: String,
}

/// A 3-partition topic of 600 records per partition, mirrored, ferry stopped.
async fn mirrored(a_addr: &str, b_addr: &str, name: &str) -> Setup {
    let (a, b) = (client(a_addr).await, client(b_addr).await);
    let dir = std::env::temp_dir().join(unique(&format!("ferry-{name}-test")));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = unique(name);
    let topic = format!("{prefix}-orders");
    create(&a, &topic, 3).await;
    for p in 0..3 {
        produce(&a, &topic, p, 12, usize::try_from(p).unwrap()).await;
    }
    let flow = unique("flow");
    let config = write_config(&dir, a_addr, b_addr, &flow, &format!("{prefix}-.*"));
    let target = format!("src.{topic}");
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    wait_mirrored(&a, &b, &topic, &target, &[0, 0, 0]).await;
    ferry.stop();
    Setup {
        a,
        b,
        dir,
        config,
        topic,
        target,
        prefix,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_after_mirroring_and_names_foreign_writes() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let s = mirrored(&a_addr, &b_addr, "verify").await;
    let (a, b, topic, target) = (&s.a, &s.b, &s.topic, &s.target);

    // 1. A faithful mirror verifies; a topic ferry has not seen yet is
    //    "not started", which is not a failure.
    let late = format!("{}-late", s.prefix);
    create(a, &late, 1).await;
    let (code, out) = verify(&s.config, &[]);
    assert_eq!(code, 0, "{out}");
    for p in 0..3 {
        let l = line(&out, &format!("{topic}-{p}"));
        assert!(l.ends_with(": 600 records match"), "{l}");
        assert!(l.contains(&format!("-> {target}-{p}:")), "{l}");
    }
    assert!(line(&out, &format!("{late}-0")).ends_with("not started (no checkpoint)"));

    // 2. A record written straight into the target, past the checkpoint.
    let foreign = Record {
        offset: 0,
        timestamp: now_ms(),
        key: Some(Bytes::from_static(b"foreign")),
        value: Some(Bytes::from_static(b"not from the source")),
        headers: vec![],
    };
    let at = produce_records(b, target, 1, Compression::None, &[foreign]).await;
    let (code, out) = verify(&s.config, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "target offset {at} (past the checkpoint): not on the source"
        )),
        "{out}"
    );
    assert!(line(&out, &format!("{topic}-1")).ends_with(": 600 records match, 1 difference"));
    assert!(line(&out, &format!("{topic}-0")).ends_with(": 600 records match"));

    // 3. Ferry runs again: the foreign record is now between mirrored ones.
    for p in 0..3 {
        produce(a, topic, p, 2, 40).await;
    }
    let ferry = Ferry::start(&s.config, s.dir.join("ferry.log"));
    wait_mirrored(a, b, topic, target, &[0, 1, 0]).await;
    ferry.stop();
    let (code, out) = verify(&s.config, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "target offset {at}: 1 record not on the source (written by something else?), \
             after the copy of source offset 599"
        )),
        "{out}"
    );
    assert!(line(&out, &format!("{topic}-1")).ends_with(": 700 records match, 1 difference"));
    assert!(line(&out, &format!("{topic}-2")).ends_with(": 700 records match"));
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_resent_records_and_changed_fields() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let s = mirrored(&a_addr, &b_addr, "verify-dup").await;
    let (a, b, topic, target) = (&s.a, &s.b, &s.topic, &s.target);

    // What a crash between checkpoints leaves: the last 30 records of
    // partition 0 written again (ferry resumes at its last checkpoint), and
    // on partition 2 a copy of the next source record with another value.
    let source0 = read_records(a, topic, 0).await;
    let dup_at = produce_records(b, target, 0, Compression::Lz4, &source0[570..]).await;
    assert_eq!(dup_at, 600);
    for p in 0..3 {
        produce(a, topic, p, 1, 50).await;
    }
    let next2 = read_records(a, topic, 2).await[600].clone();
    let changed = Record {
        value: Some(Bytes::from_static(b"changed")),
        ..next2
    };
    let changed_at = produce_records(b, target, 2, Compression::None, &[changed]).await;

    // Not yet followed by ferry's own copies: past the checkpoint.
    let (code, out) = verify(&s.config, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "target offset {changed_at} (past the checkpoint): differs from the next source \
             record, offset 600: value differs (65 bytes vs 7 bytes); 1 target record from there"
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "target offset 600 (past the checkpoint): differs from the next source record, \
             offset 600: key differs"
        ),
        "{out}"
    );

    // Ferry resumes: the re-sent block is now followed by new records.
    let ferry = Ferry::start(&s.config, s.dir.join("ferry.log"));
    wait_mirrored(a, b, topic, target, &[30, 0, 1]).await;
    ferry.stop();
    let (code, out) = verify(&s.config, &[]);
    assert_eq!(code, 1, "{out}");
    // Walking back from the end, the re-sent copy lines up first, so the
    // earlier copy is the one reported.
    assert!(
        out.contains(
            "target offsets 570..=599: repeated by the next 30 target records \
             (source offsets 570..=599 written twice: re-sent after a crash)"
        ),
        "{out}"
    );
    assert!(line(&out, &format!("{topic}-0")).ends_with(": 650 records match, 1 difference"));
    // On partition 2 the changed record is now extra (ferry's own copy follows).
    assert!(
        out.contains(&format!(
            "target offset {changed_at}: 1 record not on the source"
        )),
        "{out}"
    );
    assert!(line(&out, &format!("{topic}-1")).ends_with(": 650 records match"));

    // Duplicates alone can be accepted; the changed record still fails.
    let (code, out) = verify(&s.config, &["--allow-duplicates"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("verify: 2 of 3 partitions match, 1 differs"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&s.dir);
}

/// Produces testdata/gen/scripts/txn.txt with the Kafka Java producer:
/// committed and aborted transactions, interleaved with each other and with
/// plain writes (54 records, 36 committed).
fn produce_transactions(bootstrap: &str, topic: &str) {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .arg(repo.join("crates/ferry/tests/scripts/mirror_cases.py"))
        .args(["produce", "--client", "java", "--bootstrap", bootstrap])
        .args(["--topic", topic, "--txn-prefix", topic, "--script"])
        .arg(repo.join("testdata/gen/scripts/txn.txt"))
        .args([
            "--t0",
            &now_ms().to_string(),
            "--prop",
            "compression.type=lz4",
        ])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "producing transactions failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The source side is read as ferry forwards it: aborted transactions and
/// markers are not expected on the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reads_the_source_as_committed_data() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-verify-txn-test"));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = unique("verify-txn");
    let topic = format!("{prefix}-payments");
    create(&a, &topic, 1).await;
    let (addr, t) = (a_addr.clone(), topic.clone());
    tokio::task::spawn_blocking(move || produce_transactions(&addr, &t))
        .await
        .unwrap();
    let config = write_config(
        &dir,
        &a_addr,
        &b_addr,
        &unique("flow"),
        &format!("{prefix}-.*"),
    );
    let target = format!("src.{topic}");
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    let what = format!("{target} holds the 36 committed records");
    eventually(Duration::from_secs(90), what, || async {
        match end_offsets(&b, &target, 1).await {
            ends if ends == [36] => Ok(()),
            ends => Err(format!("ends at {ends:?}")),
        }
    })
    .await;
    ferry.stop();
    assert_eq!(records(&read_all(&b, &target, 0).await).len(), 36);
    let (code, out) = verify(&config, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        line(&out, &format!("{topic}-0")).ends_with(": 36 records match"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_invalid_config_exits_64() {
    let dir = std::env::temp_dir().join(unique("ferry-verify-config"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[clusters.a]\nbootstrap_servers = []\n").unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["verify", "--config"])
        .arg(&path)
        .output()
        .unwrap()
        .status;
    assert_eq!(status.code(), Some(64));
    let _ = std::fs::remove_dir_all(&dir);
}
