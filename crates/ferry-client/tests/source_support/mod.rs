//! Helpers shared by the fetcher, admin and producer broker tests.
//!
//! The bootstrap address comes from `FERRY_KAFKA_A`. Without it each test
//! prints that it was skipped, unless `FERRY_REQUIRE_BROKERS=1`, which turns
//! a missing broker into a failure (for CI).

#![allow(dead_code)] // each test crate uses a different subset

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use ferry_client::{Client, ClientConfig, NewTopic, ProduceOptions};
#[allow(unused_imports)] // not every test crate uses both
pub use ferry_testkit::{broker_a as broker, now_ms};
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::Record;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

pub async fn connect(addr: &str) -> Client {
    Client::connect(&[addr], ClientConfig::default())
        .await
        .expect("connect to the test broker")
}

/// A topic name no earlier run has used.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("ferry-src-{prefix}-{}-{nanos}", std::process::id())
}

/// Creates `topic` and waits until every partition is served.
pub async fn create_topic(client: &Client, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    client
        .create_topic(&NewTopic {
            name: topic.to_owned(),
            partitions,
            replication_factor: 1,
            configs: configs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
        .await
        .unwrap_or_else(|e| panic!("create {topic}: {e}"));
    client
        .wait_for_topic(topic, partitions, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{topic} not usable after 60 s: {e}"));
}

/// Deletes `topic` (a raw DeleteTopics request: ferry itself never deletes).
pub async fn delete_topic(client: &Client, topic: &str) {
    let conn = client.any_connection().await.expect("a connection");
    let version = conn
        .versions()
        .version_for::<DeleteTopicsRequest>()
        .expect("DeleteTopics is supported");
    let request = if version >= 6 {
        DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default()
                .with_name(Some(TopicName(StrBytes::from_string(topic.to_owned())))),
        ])
    } else {
        DeleteTopicsRequest::default()
            .with_topic_names(vec![TopicName(StrBytes::from_string(topic.to_owned()))])
    }
    .with_timeout_ms(30_000);
    let mut body = BytesMut::new();
    request
        .encode(&mut body, version)
        .expect("encode DeleteTopics");
    let mut reply = conn
        .send_raw(ApiKey::DeleteTopics, version, vec![body.freeze()])
        .await
        .expect("DeleteTopics");
    // ferry never deletes topics, so it has no bounded decoder for this
    // answer; kafka-protocol's is fine for a test talking to its own broker.
    let response =
        DeleteTopicsResponse::decode(&mut reply, version).expect("DeleteTopics response");
    for r in &response.responses {
        assert_eq!(r.error_code, 0, "delete {topic}: {:?}", r.error_message);
    }
}

/// One batch of `count` records whose values are `"{tag}-{i}"`, all with
/// timestamp `timestamp`, each with a value of at least `pad` bytes.
pub fn batch(tag: &str, count: usize, timestamp: i64, pad: usize) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let mut value = format!("{tag}-{i}").into_bytes();
            if value.len() < pad {
                value.resize(pad, b'.');
            }
            Record {
                offset: i64::try_from(i).expect("small"),
                timestamp,
                key: None,
                value: Some(Bytes::from(value)),
                headers: Vec::new(),
            }
        })
        .collect();
    build_batch(&BatchSpec::producer(Compression::None), &records).expect("build a batch")
}

/// Produces one batch; returns its base offset.
pub async fn produce(client: &Client, topic: &str, partition: i32, batch: Bytes) -> i64 {
    client
        .produce_batch(topic, partition, vec![batch], &ProduceOptions::default())
        .await
        .unwrap_or_else(|e| panic!("produce to {topic}-{partition}: {e}"))
        .base_offset
}
