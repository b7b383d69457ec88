//! A partition the target refused for a topic setting, restarted after the
//! operator changed the setting, against a real broker (`FERRY_KAFKA_A`;
//! skipped without it unless `FERRY_REQUIRE_BROKERS=1`).

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod source_support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_client::{
    ClientError, FetchOptions, IdempotentProducer, KafkaCode, ProducerConfig, TopicPartition,
};
use ferry_wire::batch::{BatchIter, FetchedBatch, RecordBatch};
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::Record;
use source_support::{broker, connect, create_topic, now_ms, unique_topic};

fn batch(value_bytes: usize) -> RecordBatch {
    let record = Record {
        offset: 0,
        timestamp: now_ms(),
        key: None,
        value: Some(Bytes::from(vec![b'v'; value_bytes])),
        headers: Vec::new(),
    };
    RecordBatch::new(build_batch(&BatchSpec::producer(Compression::None), &[record]).unwrap())
        .unwrap()
}

async fn send(
    producer: &IdempotentProducer,
    tp: &TopicPartition,
    batch: RecordBatch,
) -> Result<ferry_client::Ack, ClientError> {
    let header = *batch.header();
    producer.send(tp, batch, header).await?.await
}

/// MESSAGE_TOO_LARGE names `max.message.bytes`; the partition stops; once
/// the setting is raised, `restart_partition` lets the same batch through,
/// under a new epoch from sequence 0, which the broker accepts although it
/// still remembers the old epoch's sequences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_refused_for_a_topic_setting_restarts_once_it_is_changed() {
    let Some(addr) = broker() else { return };
    let client = connect(&addr).await;
    let topic = unique_topic("restart");
    create_topic(&client, &topic, 1, &[("max.message.bytes", "20000")]).await;
    let producer = IdempotentProducer::start(client.clone(), ProducerConfig::default())
        .await
        .unwrap();
    let tp = TopicPartition::new(topic.as_str(), 0);

    send(&producer, &tp, batch(100)).await.unwrap();
    let refused = send(&producer, &tp, batch(60_000)).await.unwrap_err();
    assert_eq!(refused.kafka_code(), Some(KafkaCode::MESSAGE_TOO_LARGE));
    assert_eq!(
        refused.target_topic_settings(),
        Some(&["max.message.bytes"][..])
    );
    assert!(
        refused.to_string().contains("max.message.bytes"),
        "{refused}"
    );
    let stopped = send(&producer, &tp, batch(100)).await.unwrap_err();
    assert!(
        matches!(stopped, ClientError::NotDelivered { .. }),
        "{stopped}"
    );

    client
        .alter_topic_configs(&topic, &[("max.message.bytes".into(), "200000".into())])
        .await
        .unwrap();
    // The broker applies the change shortly after answering: retry, as a
    // caller does, with a backoff.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        producer.restart_partition(&tp);
        match send(&producer, &tp, batch(60_000)).await {
            Ok(_) => break,
            Err(e) if e.target_topic_settings().is_some() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("after raising max.message.bytes: {e}"),
        }
    }
    send(&producer, &tp, batch(100)).await.unwrap();

    let fetched = client
        .fetch_raw(&topic, 0, 0, &FetchOptions::default())
        .await
        .unwrap();
    let headers: Vec<(i16, i32)> = BatchIter::new(fetched.records)
        .map(|b| {
            let FetchedBatch::V2(b) = b.unwrap() else {
                panic!("legacy batch")
            };
            (b.header().producer_epoch, b.header().base_sequence)
        })
        .collect();
    let first_epoch = headers[0].0;
    assert_eq!(
        headers,
        [(first_epoch, 0), (first_epoch + 1, 0), (first_epoch + 1, 1)],
        "the small batch, then the big one and the next under a new epoch"
    );
    producer.close().await.unwrap();
}
