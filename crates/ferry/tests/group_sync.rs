//! Consumer groups follow the data: a real librdkafka consumer group
//! commits on the source, ferry syncs the translated offsets to the same
//! group on the target, and the target's next record is exactly the one
//! the group had not consumed yet.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use ferry_testkit::eventually;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{
    Ferry, brokers, client, create, produce, read_all, records, unique, wait_mirrored,
    write_group_config,
};

fn consumer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ferry-client/tests/groups_support/consumer.py")
}

/// A librdkafka consumer in `group` reads `count` records of `topic`,
/// commits and leaves.
fn consume_and_commit(addr: &str, topic: &str, group: &str, count: usize) {
    let out = Command::new("python3")
        .arg(consumer_script())
        .args(["consume", addr, topic, group, &count.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "consumer.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A librdkafka consumer that is a live member of a group until dropped
/// (`consumer.py hold`).
struct LiveMember(std::process::Child);

impl LiveMember {
    fn join(addr: &str, topic: &str, group: &str) -> Self {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .arg(consumer_script())
            .args(["hold", addr, topic, group])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "consumer.py hold got no assignment");
        Self(child)
    }
}

impl Drop for LiveMember {
    fn drop(&mut self) {
        drop(self.0.stdin.take()); // consumer.py leaves the group on EOF
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_continue_exactly_on_the_target() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-groups"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("groups");
    create(&a, &topic, 2).await;
    for p in 0..2 {
        produce(&a, &topic, p, 4, usize::try_from(p).unwrap()).await;
    }
    let group = unique("billing");
    // Mid-batch commits: 50-record batches, 130 records read in all.
    consume_and_commit(&a_addr, &topic, &group, 130);
    let committed = a.fetch_group_offsets(&group).await.unwrap();
    assert!(!committed.is_empty());

    let config = write_group_config(&dir, &a_addr, &b_addr, &topic, &topic, &group);
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    let target = format!("src.{topic}");
    wait_mirrored(&a, &b, &topic, &target, 2).await;

    // The target group gets every committed partition, translated.
    let on_target = eventually(Duration::from_secs(60), "target group synced", || async {
        let got = b.fetch_group_offsets(&group).await.unwrap_or_default();
        if got.len() == committed.len() {
            Ok(got)
        } else {
            Err(format!("target group has {got:?}, source {committed:?}"))
        }
    })
    .await;
    ferry.stop();
    for (tp, offset, _) in &committed {
        let (_, t, _) = on_target
            .iter()
            .find(|(t, _, _)| t.partition == tp.partition)
            .unwrap();
        // The record the group reads next is the same on both sides.
        let src = records(&read_all(&a, &topic, tp.partition).await);
        let dst = records(&read_all(&b, &target, tp.partition).await);
        let next = |rs: &[common::Content], at: i64| rs.get(usize::try_from(at).unwrap()).cloned();
        assert_eq!(
            next(&dst, *t),
            next(&src, *offset),
            "{tp}: next record after offset {offset} (target {t})"
        );
    }
    // A planned cut-over: the group reads on at the source, ferry is
    // stopped, `ferry offsets sync` moves the target group exactly there.
    consume_and_commit(&a_addr, &topic, &group, 40);
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["offsets", "sync", "--config"])
        .arg(&config)
        .args(["--group", &group])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let committed = a.fetch_group_offsets(&group).await.unwrap();
    let on_target = b.fetch_group_offsets(&group).await.unwrap();
    for (tp, offset, _) in &committed {
        let (_, t, _) = on_target
            .iter()
            .find(|(t, _, _)| t.partition == tp.partition)
            .unwrap();
        assert_eq!(
            t, offset,
            "{tp}: no gaps, so the same offset after ferry offsets sync"
        );
    }
    // A group with a live member on the target is not touched.
    let active = unique("active");
    consume_and_commit(&a_addr, &topic, &active, 30);
    {
        let _member = LiveMember::join(&b_addr, &target, &active);
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["offsets", "sync", "--config"])
            .arg(&config)
            .args(["--group", &active])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains("active member"), "{stdout}");
        assert!(
            b.fetch_group_offsets(&active).await.unwrap().is_empty(),
            "an active target group's offsets were changed"
        );
    }
    // Every target group partition is the mirrored topic's.
    assert!(
        on_target
            .iter()
            .all(|(t, _, _)| t.topic.as_ref() == target.as_str()),
        "{on_target:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
