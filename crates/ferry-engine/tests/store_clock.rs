//! Real-broker test: ferry's own records do not depend on the host clock.
//! Kafka 4 refuses CreateTime records stamped more than
//! `log.message.timestamp.after.max.ms` (1 h by default) in the future, so a
//! host clock running 2 h fast must not stop checkpoint or map writes.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::time::{SystemTime, UNIX_EPOCH};

use ferry_client::{Client, ClientConfig, TopicPartition};
use ferry_engine::checkpoint::{CheckpointKey, CheckpointStore, CheckpointValue};
use ferry_engine::offset_map::Run;
use ferry_engine::offset_store::OffsetMapStore;
use ferry_testkit::broker_a as broker;

fn two_hours_fast() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_millis()).unwrap() + 2 * 3_600_000
}

#[tokio::test]
async fn a_host_clock_two_hours_fast_does_not_stop_ferrys_own_writes() {
    let Some(addr) = broker() else { return };
    let client = Client::connect(&[addr.as_str()], ClientConfig::default())
        .await
        .unwrap();
    let flow = format!("clock-flow-{}", std::process::id());
    let skewed = two_hours_fast();

    let checkpoints = CheckpointStore::new(client.clone());
    checkpoints.ensure_topic().await.unwrap();
    let entry = (
        CheckpointKey {
            flow: flow.clone(),
            topic: "orders".into(),
            partition: 0,
        },
        CheckpointValue {
            source_offset: 10,
            target_topic: "src.orders".into(),
            target_offset: Some(10),
            time_ms: skewed,
        },
    );
    checkpoints.write(&[entry]).await.unwrap();
    let loaded = checkpoints.load(&flow).await.unwrap();
    assert_eq!(loaded[&TopicPartition::new("orders", 0)].source_offset, 10);

    let maps = OffsetMapStore::new(client.clone());
    maps.ensure_topic().await.unwrap();
    let run = Run {
        source: 0,
        target: 0,
        len: 10,
    };
    maps.write(
        &flow,
        &[(TopicPartition::new("orders", 0), vec![(0, vec![run])])],
        skewed,
    )
    .await
    .unwrap();
    let loaded = maps.load(&flow).await.unwrap();
    assert_eq!(
        loaded[&TopicPartition::new("orders", 0)].map.translate(5),
        Some(5)
    );
}
