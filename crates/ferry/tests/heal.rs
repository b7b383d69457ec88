//! Real-broker tests of a flow that heals by itself (issue 14, part A) and
//! of what discovery starts: a topic created while a `start = "latest"`
//! flow runs is mirrored from its beginning; a partition stopped by a
//! transient cause resumes; one bad topic does not block the others.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{
    Ferry, TestConfig, brokers, client, compare, create, produce, read_all, unique, wait_caught_up,
};
use ferry_testkit::eventually;

/// Waits until `log` shows `needle` at least `n` times.
async fn wait_log(log: &std::path::Path, needle: &str, n: usize, timeout: Duration) {
    let what = format!("{n} x {needle:?} in the log");
    eventually(timeout, what, || async {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= n {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
}

/// Issue 14 item 10: `start = "latest"` applies to what exists when the
/// flow first starts; a topic created later is mirrored from offset 0,
/// even when it got records before the discovery that finds it.
#[tokio::test]
async fn a_topic_created_under_latest_is_mirrored_from_its_beginning() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-heal-latest"));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = unique("latest");
    let (old, new) = (format!("{prefix}-old"), format!("{prefix}-new"));
    create(&a, &old, 1).await;
    produce(&a, &old, 0, 2, 1).await; // before the start: not copied
    let config = TestConfig::bare(&a_addr, &b_addr, &prefix, &format!("{prefix}-.*"))
        .flow("naming", "\"identity\"")
        .flow("start", "\"latest\"")
        .flow("discovery_interval", "\"8s\"")
        .tuning("checkpoint_interval", "\"500ms\"")
        .write(&dir);
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());
    wait_log(&log, "partition started", 1, Duration::from_secs(60)).await;
    // Right after a discovery round: the next one is ~8 s away.
    create(&a, &new, 1).await;
    produce(&a, &new, 0, 10, 2).await; // 500 records before discovery sees the topic
    wait_log(&log, "partition started", 2, Duration::from_secs(60)).await;
    wait_caught_up(&a, &b, &new, &new, 1, Duration::from_secs(60)).await;
    ferry.stop();
    let c = compare(&a, &b, &new, &new, 1).await;
    assert_eq!(c.source_records, 500);
    assert_eq!((c.missing, c.duplicates), (0, 0), "{c:?}");
}

/// `ferry status` for `config`: each flow's STATE cell and LAG (first number).
fn status(config: &std::path::Path) -> Vec<(String, String, Option<i64>)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["status", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut rows = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("FLOW"));
    let header = rows.next().unwrap_or_default().to_owned();
    let column = |name: &str| header.find(&format!(" {name} ")).map_or(0, |i| i + 1);
    let (state, partitions, lag) = (column("STATE"), column("PARTITIONS"), column("LAG"));
    rows.map(|l| {
        let flow = l.split_whitespace().next().unwrap_or_default().to_owned();
        let st = l
            .get(state..partitions)
            .unwrap_or_default()
            .trim()
            .to_owned();
        let lag = l
            .get(lag..)
            .and_then(|c| c.split_whitespace().next())
            .and_then(|v| v.parse().ok());
        (flow, st, lag)
    })
    .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Issue 14 items 1 and 18 (with a refusal an operator fixes on the
/// target): the target topic's `max.message.bytes` is lowered under the
/// batches, so the target refuses them with MESSAGE_TOO_LARGE (fatal for
/// the producer). The partition is restarted with backoff, `ferry status`
/// never reads "ready, LAG 0" meanwhile, and once the setting is raised it
/// resumes by itself: no record lost, none duplicated.
#[tokio::test]
async fn a_partition_refused_by_the_target_resumes_once_the_target_is_fixed() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-heal-refused"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("refused");
    create(&a, &topic, 1).await;
    produce(&a, &topic, 0, 4, 1).await;
    let port = free_port();
    let config = TestConfig::bare(&a_addr, &b_addr, &topic, &topic)
        .flow("naming", "\"identity\"")
        .flow("discovery_interval", "\"1s\"")
        .set("[metrics]", "listen", &format!("\"127.0.0.1:{port}\""))
        .tuning("checkpoint_interval", "\"500ms\"")
        .write(&dir);
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());
    wait_caught_up(&a, &b, &topic, &topic, 1, Duration::from_secs(60)).await;
    let set = |bytes: &str| vec![("max.message.bytes".to_owned(), bytes.to_owned())];
    // Below any one record: no split can help until the limit is raised.
    b.alter_topic_configs(&topic, &set("50")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    produce(&a, &topic, 0, 6, 2).await;
    wait_log(
        &log,
        "partition stopped by a transient error",
        1,
        Duration::from_secs(60),
    )
    .await;
    // While the target refuses: retrying, lag visible, never "ready, LAG 0".
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen_retrying = false;
    while Instant::now() < deadline {
        for (flow, state, lag) in status(&config) {
            if flow == topic {
                assert!(
                    !(state == "ready" && lag == Some(0)),
                    "ready with LAG 0 while the partition cannot write"
                );
                assert!(lag.unwrap_or(0) > 0, "lag hidden: {state} {lag:?}");
                seen_retrying |=
                    state.contains("MESSAGE_TOO_LARGE") || state.contains("record_too_large");
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(seen_retrying, "status never named the cause");
    b.alter_topic_configs(&topic, &set("1048588"))
        .await
        .unwrap();
    wait_caught_up(&a, &b, &topic, &topic, 1, Duration::from_secs(90)).await;
    wait_log(
        &log,
        "partition mirroring again",
        1,
        Duration::from_secs(30),
    )
    .await;
    ferry.stop();
    let c = compare(&a, &b, &topic, &topic, 1).await;
    assert_eq!(c.source_records, 500);
    assert_eq!((c.missing, c.duplicates), (0, 0), "{c:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    // Once per cause: the broker's MESSAGE_TOO_LARGE, then (the restart
    // having read the new limit) records too large for it.
    let warnings = text
        .matches("partition stopped by a transient error")
        .count();
    assert!(
        (1..=2).contains(&warnings),
        "logged once per cause:\n{text}"
    );
}

/// Issue 14 item 14 (fourth bullet): the target topic's `max.message.bytes`
/// lowered below the size of the batches: the partition restarts, reads
/// the new limit and splits batches to it, instead of failing on the limit
/// it read when it started.
#[tokio::test]
async fn a_lowered_target_limit_is_read_again_and_batches_are_split_to_it() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-heal-limit"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("limit");
    create(&a, &topic, 1).await;
    produce(&a, &topic, 0, 2, 1).await;
    let config = TestConfig::bare(&a_addr, &b_addr, &topic, &topic)
        .flow("naming", "\"identity\"")
        .flow("discovery_interval", "\"1s\"")
        .tuning("checkpoint_interval", "\"500ms\"")
        .write(&dir);
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());
    wait_caught_up(&a, &b, &topic, &topic, 1, Duration::from_secs(60)).await;
    // Every record fits in 600 bytes; most 50-record batches do not.
    let limit = vec![("max.message.bytes".to_owned(), "600".to_owned())];
    b.alter_topic_configs(&topic, &limit).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    produce(&a, &topic, 0, 6, 2).await;
    let sizes: Vec<usize> = read_all(&a, &topic, 0)
        .await
        .iter()
        .map(|t| t.len())
        .collect();
    println!("source batch sizes: {sizes:?}");
    assert!(
        sizes.iter().any(|&n| n > 600),
        "no batch needs splitting: {sizes:?}"
    );
    wait_caught_up(&a, &b, &topic, &topic, 1, Duration::from_secs(90)).await;
    ferry.stop();
    let c = compare(&a, &b, &topic, &topic, 1).await;
    assert_eq!(c.source_records, 400);
    assert_eq!((c.missing, c.duplicates), (0, 0), "{c:?}");
    let big = read_all(&b, &topic, 0)
        .await
        .into_iter()
        .skip_while(|t| t.header().base_offset < 100)
        .filter(|t| t.len() > 600)
        .count();
    assert_eq!(big, 0, "batches over the lowered limit on the target");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 14 item 2: a topic whose target name is too long for Kafka (prefix
/// naming over a 246-character source name) is reported and retried; the
/// topic beside it is mirrored all the same.
#[tokio::test]
async fn one_topic_the_target_refuses_does_not_block_the_others() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-heal-badtopic"));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = unique("bad");
    let ok = format!("{prefix}-ok");
    let long = format!("{prefix}-{}", "x".repeat(246 - prefix.len() - 1));
    assert_eq!(long.len(), 246);
    create(&a, &ok, 1).await;
    create(&a, &long, 1).await;
    produce(&a, &ok, 0, 2, 1).await;
    produce(&a, &long, 0, 1, 2).await;
    let config = common::write_config(&dir, &a_addr, &b_addr, &prefix, &format!("{prefix}-.*"));
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());
    // Prefix naming: `src.<topic>`; 250 characters for the long one.
    let target_ok = format!("src.{ok}");
    wait_caught_up(&a, &b, &ok, &target_ok, 1, Duration::from_secs(30)).await;
    wait_log(
        &log,
        "cannot set up the target topic",
        1,
        Duration::from_secs(10),
    )
    .await;
    // Retried every round, logged once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    ferry.stop_allowing_failure();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("cannot set up the target topic").count(),
        1,
        "{text}"
    );
    let c = compare(&a, &b, &ok, &target_ok, 1).await;
    assert_eq!(
        (c.source_records, c.missing, c.duplicates),
        (100, 0, 0),
        "{c:?}"
    );
}

/// Issue 14 item 12: records behind an open (here: abandoned) transaction
/// count as lag. A Java transactional producer writes 5 records and never
/// commits; 100 plain records follow. The last stable offset stays at the
/// transaction's first record, so a lag computed from it read 0 ("ready,
/// LAG 0": the runbook would fail over and leave the 100 behind).
#[tokio::test]
async fn records_behind_an_open_transaction_keep_the_lag_above_zero() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-heal-opentxn"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("opentxn");
    create(&a, &topic, 1).await;
    let port = free_port();
    let config = TestConfig::bare(&a_addr, &b_addr, &topic, &topic)
        .flow("naming", "\"identity\"")
        .flow("discovery_interval", "\"1s\"")
        .set("[metrics]", "listen", &format!("\"127.0.0.1:{port}\""))
        .write(&dir);
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    // The transaction: begun, 5 records written, never committed (the
    // script sleeps; the producer is killed below).
    let script = dir.join("open.txt");
    let mut lines = vec!["begin T1".to_owned()];
    for i in 0..5 {
        lines.push(format!("send T1 * x6b{i:02x} x76{i:02x}"));
    }
    lines.extend(["flush T1".to_owned(), "sleep 600000".to_owned()]);
    std::fs::write(&script, lines.join("\n")).unwrap();
    let repo = common::producers::repo();
    let java = ChildTree(
        std::process::Command::new("python3")
            .arg(repo.join("crates/ferry/tests/scripts/mirror_cases.py"))
            .args([
                "produce",
                "--client",
                "java",
                "--bootstrap",
                &a_addr,
                "--topic",
                &topic,
            ])
            .arg("--script")
            .arg(&script)
            .args([
                "--t0",
                &common::now_ms().to_string(),
                "--txn-prefix",
                &topic,
            ])
            .args(["--prop", "transaction.timeout.ms=120000"])
            .current_dir(&repo)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ends = |isolation| {
        let a = a.clone();
        let topic = topic.clone();
        async move {
            a.list_offsets_with(&topic, &[0], ferry_client::OffsetSpec::Latest, isolation)
                .await
                .ok()
                .and_then(|v| v.first().map(|(_, o)| *o))
                .unwrap_or(-1)
        }
    };
    eventually(
        Duration::from_secs(120),
        "the open transaction wrote",
        || async {
            match ends(ferry_client::Isolation::ReadUncommitted).await {
                end if end >= 5 => Ok(()),
                end => Err(format!("high watermark {end}")),
            }
        },
    )
    .await;
    produce(&a, &topic, 0, 2, 3).await; // 100 committed records behind it
    let (hw, lso) = (
        ends(ferry_client::Isolation::ReadUncommitted).await,
        ends(ferry_client::Isolation::ReadCommitted).await,
    );
    println!("high watermark {hw}, last stable offset {lso}");
    assert_eq!((hw, lso), (105, 0));
    // ferry has copied everything it can read (nothing): the lag is 105.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut lags = Vec::new();
    for _ in 0..5 {
        let row = status(&config).into_iter().find(|(f, _, _)| *f == topic);
        let (_, state, lag) = row.unwrap();
        assert!(
            !(state == "ready" && lag == Some(0)),
            "ready with LAG 0 while 105 records are not mirrored"
        );
        lags.push(lag);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!("ferry status LAG: {lags:?}");
    assert!(lags.iter().all(|l| *l == Some(105)), "{lags:?}");
    drop(java);
    ferry.stop();
    drop(b);
}

/// A helper process and its children (the producer's JVM), killed by id
/// when dropped, also when the test fails midway.
struct ChildTree(std::process::Child);

impl Drop for ChildTree {
    fn drop(&mut self) {
        let children = std::process::Command::new("pgrep")
            .args(["-P", &self.0.id().to_string()])
            .output();
        if let Ok(children) = children {
            for pid in String::from_utf8_lossy(&children.stdout).split_whitespace() {
                let _ = std::process::Command::new("kill")
                    .args(["-9", pid])
                    .status();
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `POST path` to `port` and returns the status line.
fn post(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines().next().unwrap_or_default().to_owned()
}

/// Issue 14 item 1, permanent causes: a corrupt batch (flipped on the wire
/// once by a proxy) stops its partition for good, but visibly: `ferry
/// status` reads STOPPED with the partition and cause, the lag stays
/// counted, `/ready` is 503. `POST /partitions/restart` restarts it without
/// restarting ferry, and the rest is mirrored: no loss, no duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_partition_is_visible_and_restarts_on_request() {
    let Some((_, b_addr)) = brokers() else {
        return;
    };
    let proxy = ferry_testkit::proxy::FaultProxy::start().unwrap();
    let src = tokio::task::block_in_place(|| {
        ferry_testkit::cluster::OwnCluster::behind("flow-supervisor-heal", &proxy)
    });
    let (a, b) = (client(&src.bootstrap).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-heal-stopped"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("stopped");
    create(&a, &topic, 1).await;
    produce(&a, &topic, 0, 8, 0).await; // offsets 0..400
    proxy.corrupt_batches(200, 1);
    let port = free_port();
    let config = TestConfig::bare(&src.bootstrap, &b_addr, &topic, &topic)
        .flow("naming", "\"identity\"")
        .flow("discovery_interval", "\"1s\"")
        .set("[metrics]", "listen", &format!("\"127.0.0.1:{port}\""))
        .tuning("checkpoint_interval", "\"500ms\"")
        .write(&dir);
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());
    wait_log(&log, "it stays stopped", 1, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // a discovery round: ends refreshed
    let rows = status(&config);
    let (_, state, lag) = rows.iter().find(|(f, _, _)| *f == topic).unwrap();
    println!("ferry status while stopped: {state} LAG {lag:?}");
    assert!(
        state.starts_with("STOPPED (") && state.contains("-0: corrupt_batch"),
        "{state}"
    );
    assert_eq!(*lag, Some(200), "the stopped partition's lag stays counted");
    // Not ready, naming the cause.
    let ready = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(
        ready.starts_with("HTTP/1.1 503") && ready.contains("stopped: corrupt_batch"),
        "{ready}"
    );
    // The corruption was on the wire only: a restart on request heals it.
    assert!(post(port, "/partitions/restart").contains("202"));
    wait_caught_up(&a, &b, &topic, &topic, 1, Duration::from_secs(60)).await;
    ferry.stop();
    let c = compare(&a, &b, &topic, &topic, 1).await;
    assert_eq!(
        (c.source_records, c.missing, c.duplicates),
        (400, 0, 0),
        "{c:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("restarting stopped partitions on request"),
        "{text}"
    );
    drop(src);
    let _ = std::fs::remove_dir_all(&dir);
}
