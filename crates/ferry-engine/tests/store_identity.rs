//! Real-broker test: checkpoints and offset-map chunks carry the ids of the
//! topics they are for, load back with them, and a re-created source topic
//! is recognised instead of resumed at the old topic's offset.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use ferry_client::{Client, ClientConfig, TopicPartition};
use ferry_engine::checkpoint::{
    CheckpointFit, CheckpointKey, CheckpointStore, CheckpointValue, TopicId, TopicIds,
    checkpoint_fit,
};
use ferry_engine::offset_map::Run;
use ferry_engine::offset_store::OffsetMapStore;
use ferry_testkit::broker_a as broker;

#[tokio::test]
async fn stored_topic_ids_tell_a_recreated_source_topic_apart() {
    let Some(addr) = broker() else { return };
    let client = Client::connect(&[addr.as_str()], ClientConfig::default())
        .await
        .unwrap();
    let flow = format!("identity-flow-{}", std::process::id());
    let tp = TopicPartition::new("orders", 0);
    let old = TopicIds {
        source: TopicId::new([7; 16]),
        target: TopicId::new([9; 16]),
    };
    let recreated = TopicId::new([8; 16]);

    let checkpoints = CheckpointStore::new(client.clone());
    checkpoints.ensure_topic().await.unwrap();
    let value = CheckpointValue {
        source_offset: 5000,
        target_topic: "src.orders".into(),
        target_offset: Some(5000),
        time_ms: 1,
    };
    let key = CheckpointKey {
        flow: flow.clone(),
        topic: "orders".into(),
        partition: 0,
    };
    checkpoints
        .write_identified(&[(key.clone(), value.clone(), old)])
        .await
        .unwrap();
    // A second store (a restart) loads it back with the ids.
    let restarted = CheckpointStore::new(client.clone());
    let loaded = restarted.load_checkpoints(&flow).await.unwrap();
    let checkpoint = &loaded[&tp];
    assert_eq!(checkpoint.ids, old);
    assert_eq!(checkpoint.value, value);
    assert_eq!(
        checkpoint_fit(checkpoint, old.source, "src.orders", old.target),
        CheckpointFit::Resume
    );
    assert!(matches!(
        checkpoint_fit(checkpoint, recreated, "src.orders", old.target),
        CheckpointFit::SourceRecreated { .. }
    ));
    assert!(matches!(
        checkpoint_fit(checkpoint, old.source, "east.orders", old.target),
        CheckpointFit::TargetRenamed { .. }
    ));
    // The restarted store's writes order after the loaded one, whatever the log says.
    let newer = CheckpointValue {
        source_offset: 6000,
        ..value
    };
    restarted
        .write_identified(&[(key, newer, old)])
        .await
        .unwrap();
    let reloaded = CheckpointStore::new(client.clone())
        .load_checkpoints(&flow)
        .await
        .unwrap();
    assert_eq!(reloaded[&tp].value.source_offset, 6000);
    assert!(reloaded[&tp].order > checkpoint.order);

    let maps = OffsetMapStore::new(client.clone());
    maps.ensure_topic().await.unwrap();
    let run = |source, target, len| Run {
        source,
        target,
        len,
    };
    maps.write_identified(
        &flow,
        &[(tp.clone(), old, vec![(0, vec![run(0, 0, 5000)])])],
    )
    .await
    .unwrap();
    let new_ids = TopicIds {
        source: recreated,
        ..old
    };
    maps.write_identified(
        &flow,
        &[(tp.clone(), new_ids, vec![(10, vec![run(10, 5000, 20)])])],
    )
    .await
    .unwrap();
    let loaded = OffsetMapStore::new(client.clone())
        .load(&flow)
        .await
        .unwrap();
    let map = &loaded[&tp];
    assert_eq!(map.ids, new_ids);
    assert_eq!(
        map.map.translate(3),
        Some(5000),
        "not the old topic's offset 3"
    );
    assert_eq!(
        map.chunks,
        vec![(0, 0), (10, 5020)],
        "the old chunk is due for deletion"
    );
    // Deleted, then written again under the same key by the same run: the
    // write is newer than the tombstone.
    maps.delete(&flow, &[(tp.clone(), vec![10])], 0)
        .await
        .unwrap();
    maps.write_identified(
        &flow,
        &[(tp.clone(), new_ids, vec![(10, vec![run(10, 6000, 5)])])],
    )
    .await
    .unwrap();
    let loaded = OffsetMapStore::new(client).load(&flow).await.unwrap();
    assert_eq!(loaded[&tp].map.translate(12), Some(6002));
}
