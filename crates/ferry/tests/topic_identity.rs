//! Issue 14 item 7: a source topic deleted and re-created while ferry is
//! stopped is never resumed at the old topic's position (its first records
//! would be skipped without a word) and never appended to the old topic's
//! mirror: the partition stops and says what to do; once the old mirror is
//! deleted, the new topic is mirrored from its beginning.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    Ferry, brokers, client, create, delete_topic, produce, read_all, records, unique,
    wait_for_line, wait_mirrored, write_config,
};

#[tokio::test]
async fn a_recreated_source_topic_is_not_resumed_at_the_old_position() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-identity"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("identity");
    let target = format!("src.{topic}");
    let config = write_config(&dir, &a_addr, &b_addr, &unique("flow"), &topic);

    // The old topic: 100 records, mirrored and checkpointed.
    create(&a, &topic, 1).await;
    produce(&a, &topic, 0, 2, 1).await;
    let ferry = Ferry::start(&config, dir.join("ferry-1.log"));
    wait_mirrored(&a, &b, &topic, &target, 1).await;
    ferry.stop();

    // Deleted and re-created with 150 new records while ferry is stopped:
    // the old checkpoint (100) would skip the new topic's first 100.
    delete_topic(&a_addr, &topic).await;
    create(&a, &topic, 1).await;
    produce(&a, &topic, 0, 3, 2).await;
    let new_records = records(&read_all(&a, &topic, 0).await);
    assert_eq!(new_records.len(), 150);

    let log = dir.join("ferry-2.log");
    let ferry = Ferry::start(&config, log.clone());
    let line = wait_for_line(
        &log,
        Duration::from_secs(60),
        "the partition stopped",
        |l| l.contains("source_topic_recreated"),
    )
    .await;
    println!("{line}");
    assert!(
        line.contains("deleted and re-created") && line.contains("Delete the target topic"),
        "{line}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = records(&read_all(&b, &target, 0).await);
    assert_eq!(
        held.len(),
        100,
        "nothing of the new topic appended to the old mirror"
    );
    ferry.stop_allowing_failure();

    // The operator deletes the old mirror: the new topic is mirrored from
    // its beginning, record for record.
    delete_topic(&b_addr, &target).await;
    let ferry = Ferry::start(&config, dir.join("ferry-3.log"));
    wait_mirrored(&a, &b, &topic, &target, 1).await;
    ferry.stop();
    assert_eq!(records(&read_all(&b, &target, 0).await), new_records);
    let _ = std::fs::remove_dir_all(&dir);
}
