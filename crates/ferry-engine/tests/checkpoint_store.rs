//! Real-broker test: checkpoints written to the target's compacted topic
//! load back, per flow, with the latest value winning.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use ferry_client::{Client, ClientConfig, TopicPartition};
use ferry_engine::checkpoint::{CheckpointKey, CheckpointStore, CheckpointValue};
use ferry_testkit::broker_a as broker;

fn entry(flow: &str, topic: &str, p: i32, off: i64) -> (CheckpointKey, CheckpointValue) {
    (
        CheckpointKey {
            flow: flow.into(),
            topic: topic.into(),
            partition: p,
        },
        CheckpointValue {
            source_offset: off,
            target_topic: format!("src.{topic}"),
            target_offset: Some(off),
            time_ms: 1,
        },
    )
}

#[tokio::test]
async fn checkpoints_round_trip_through_the_target() {
    let Some(addr) = broker() else { return };
    let client = Client::connect(&[addr.as_str()], ClientConfig::default())
        .await
        .unwrap();
    let store = CheckpointStore::new(client);
    store.ensure_topic().await.unwrap();
    store.ensure_topic().await.unwrap(); // idempotent
    let flow = format!("test-flow-{}", std::process::id());
    let other = format!("other-flow-{}", std::process::id());
    store
        .write(&[
            entry(&flow, "orders", 0, 10),
            entry(&flow, "orders", 1, 5),
            entry(&other, "orders", 0, 99),
        ])
        .await
        .unwrap();
    store.write(&[entry(&flow, "orders", 0, 42)]).await.unwrap();
    let loaded = store.load(&flow).await.unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[&TopicPartition::new("orders", 0)].source_offset, 42);
    assert_eq!(loaded[&TopicPartition::new("orders", 1)].source_offset, 5);
    assert_eq!(store.load(&other).await.unwrap().len(), 1);
}
