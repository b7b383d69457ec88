//! Consumer-group admin calls against real brokers (`FERRY_KAFKA_A`, and
//! `FERRY_KAFKA_B` as a target; see `source_support` for how tests are
//! skipped). Groups with committed offsets and live members are made by a
//! real consumer: `groups_support/consumer.py`, with confluent_kafka.

mod source_support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use ferry_client::{ClientError, KafkaCode, TopicPartition};
use kafka_protocol::messages::ApiKey;
use source_support::{batch, broker, connect, create_topic, now_ms, produce, unique_topic};

fn consumer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/groups_support/consumer.py")
}

/// Runs a consumer in `group` that reads `count` records of `topic`,
/// commits and leaves; returns the (partition, offset) pairs it committed.
async fn consume_and_commit(addr: &str, topic: &str, group: &str, count: usize) -> Vec<(i32, i64)> {
    let args = [
        "consume".to_owned(),
        addr.to_owned(),
        topic.to_owned(),
        group.to_owned(),
        count.to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(consumer_script())
            .args(&args)
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("consumer thread");
    assert!(
        out.status.success(),
        "consumer.py consume failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (p, o) = l.split_once(' ').expect("partition offset");
            (p.parse().expect("partition"), o.parse().expect("offset"))
        })
        .collect()
}

/// A live member of `group`, subscribed to `topic` and polling; it leaves
/// the group when dropped (stdin closed, then killed if it lingers).
struct LiveConsumer(Child);

impl LiveConsumer {
    async fn start(addr: &str, topic: &str, group: &str) -> Self {
        let mut child = Command::new("python3")
            .arg(consumer_script())
            .args(["hold", addr, topic, group])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().expect("stdout piped");
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await
        .expect("reader thread")
        .expect("read consumer.py output");
        assert_eq!(
            line.trim(),
            "ready",
            "consumer.py hold did not get an assignment"
        );
        Self(child)
    }
}

impl Drop for LiveConsumer {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn groups_listed_described_and_offsets_read_and_written() {
    let Some((addr, addr_b)) = ferry_testkit::brokers() else {
        return;
    };
    let client = connect(&addr).await;
    let topic = unique_topic("groups");
    create_topic(&client, &topic, 2, &[]).await;
    produce(&client, &topic, 0, batch("p0", 5, now_ms(), 0)).await;
    produce(&client, &topic, 1, batch("p1", 3, now_ms(), 0)).await;
    let group = ferry_testkit::unique("ferry-group");

    // A real consumer reads all 8 records and commits 5 and 3, then leaves.
    let committed = consume_and_commit(&addr, &topic, &group, 8).await;
    assert_eq!(committed, [(0, 5), (1, 3)]);

    let coordinator = client.group_coordinator(&group).await.unwrap();
    assert!(client.metadata().brokers.contains_key(&coordinator));

    let listed = client.list_groups().await.unwrap();
    assert!(
        listed.windows(2).all(|w| w[0].group_id < w[1].group_id),
        "sorted and deduplicated"
    );
    let ours = listed
        .iter()
        .find(|g| g.group_id == group)
        .unwrap_or_else(|| panic!("{group} not in {listed:?}"));
    assert_eq!(ours.protocol_type, "consumer");
    assert_eq!(ours.state.as_deref(), Some("Empty"));

    let described = client.describe_group(&group).await.unwrap();
    assert_eq!(described.group_id, group);
    assert_eq!(described.state, "Empty");
    assert_eq!(described.protocol_type, "consumer");
    assert_eq!(described.members, 0);

    let offsets = client.fetch_group_offsets(&group).await.unwrap();
    // confluent_kafka 2.16.1 sends the metadata string with its C string
    // terminator ("m0\0"): that is what the broker stored, and what we read.
    let read: Vec<(TopicPartition, i64, Option<&str>)> = offsets
        .iter()
        .map(|(tp, o, m)| {
            (
                tp.clone(),
                *o,
                m.as_deref().map(|m| m.trim_end_matches('\0')),
            )
        })
        .collect();
    assert_eq!(
        read,
        [
            (TopicPartition::new(topic.as_str(), 0), 5, Some("m0")),
            (TopicPartition::new(topic.as_str(), 1), 3, Some("m1")),
        ]
    );

    // Carry them to cluster B, to a new group there, as the engine will.
    let target = connect(&addr_b).await;
    create_topic(&target, &topic, 2, &[]).await;
    let target_group = ferry_testkit::unique("ferry-group-target");
    let to_commit: Vec<(TopicPartition, i64)> =
        offsets.iter().map(|(tp, o, _)| (tp.clone(), *o)).collect();
    target
        .commit_group_offsets(&target_group, &to_commit)
        .await
        .unwrap();
    let read_back = target.fetch_group_offsets(&target_group).await.unwrap();
    let read_back: Vec<(TopicPartition, i64)> =
        read_back.into_iter().map(|(tp, o, _)| (tp, o)).collect();
    assert_eq!(read_back, to_commit);
    // The admin-committed group exists on B with no members.
    let on_b = target.describe_group(&target_group).await.unwrap();
    assert_eq!((on_b.state.as_str(), on_b.members), ("Empty", 0));
    // Committing again (e.g. the next sync round) moves the offsets.
    let moved = [(TopicPartition::new(topic.as_str(), 0), 4)];
    target
        .commit_group_offsets(&target_group, &moved)
        .await
        .unwrap();
    let again = target.fetch_group_offsets(&target_group).await.unwrap();
    assert_eq!(again[0].1, 4);
    assert_eq!(again[1].1, 3);
}

#[tokio::test]
async fn commit_is_refused_while_the_group_has_members() {
    let Some(addr) = broker() else {
        return;
    };
    let client = connect(&addr).await;
    let topic = unique_topic("groups-live");
    create_topic(&client, &topic, 2, &[]).await;
    produce(&client, &topic, 0, batch("p0", 2, now_ms(), 0)).await;
    let group = ferry_testkit::unique("ferry-group-live");

    let live = LiveConsumer::start(&addr, &topic, &group).await;
    let described = client.describe_group(&group).await.unwrap();
    assert_eq!(described.members, 1, "{described:?}");
    assert_eq!(described.state, "Stable");

    let err = client
        .commit_group_offsets(&group, &[(TopicPartition::new(topic.as_str(), 0), 1)])
        .await
        .unwrap_err();
    // Kafka 4.3.1 answers UNKNOWN_MEMBER_ID (25) to an admin commit
    // (generation -1, no member id) on a classic group with a live member.
    match &err {
        ClientError::Kafka {
            api, code, context, ..
        } => {
            assert_eq!(*api, ApiKey::OffsetCommit);
            assert_eq!(*code, KafkaCode::UNKNOWN_MEMBER_ID, "{err}");
            assert!(
                context.contains(&topic) && context.contains("partition 0"),
                "{err}"
            );
        }
        other => panic!("expected a Kafka error, got {other}"),
    }
    drop(live);
}

#[tokio::test]
async fn a_group_that_does_not_exist() {
    let Some(addr) = broker() else {
        return;
    };
    let client = connect(&addr).await;
    let group = ferry_testkit::unique("ferry-group-none");
    let described = client.describe_group(&group).await.unwrap();
    assert_eq!(described.state, "Dead");
    assert_eq!(described.members, 0);
    assert!(client.fetch_group_offsets(&group).await.unwrap().is_empty());
    assert!(
        client
            .list_groups()
            .await
            .unwrap()
            .iter()
            .all(|g| g.group_id != group)
    );
}
