//! Tests against a real Kafka broker.
//!
//! The bootstrap address comes from `FERRY_KAFKA_A`. Without it each test
//! prints that it was skipped, unless `FERRY_REQUIRE_BROKERS=1`, which turns
//! a missing broker into a failure (for CI).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use ferry_client::fetcher::raw::{FetchTarget, fetch_request, fetch_version, parse_fetch_response};
use ferry_client::{
    Client, ClientConfig, Connection, ConnectionConfig, FetchOptions, Isolation, KafkaCode,
};
use ferry_testkit::{broker_a as broker, now_ms};
use ferry_wire::batch::{BatchIter, FetchedBatch};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest,
    TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A topic name no earlier run has used.
fn unique_topic(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("ferry-client-{prefix}-{}-{nanos}", std::process::id())
}

async fn create_topic(client: &Client, topic: &str, partitions: i32) {
    let conn = client
        .any_connection()
        .await
        .expect("a connection for CreateTopics");
    let version = conn
        .versions()
        .version_for::<CreateTopicsRequest>()
        .expect("the broker supports CreateTopics");
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(30_000);
    let response = conn
        .send(&request, version)
        .await
        .expect("CreateTopics round trip");
    let result = &response.topics[0];
    assert_eq!(
        KafkaCode::from_code(result.error_code),
        None,
        "CreateTopics failed: {:?}",
        result.error_message
    );
}

/// Waits until metadata shows a leader for every partition of `topic`
/// (a new topic's leaders are elected asynchronously).
async fn wait_for_leaders(client: &Client, topic: &str, partitions: i32) {
    client
        .wait_for_topic(topic, partitions, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{topic} not usable after 30 s: {e}"));
}

/// Produces `values` to one partition as a single batch, using
/// kafka-protocol's own encoder.
async fn produce(client: &Client, topic: &str, partition: i32, values: &[&str]) {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let i = i64::try_from(i).expect("small index");
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                // kafka-protocol starts a new batch whenever offset - sequence
                // changes, so sequence = offset keeps the records in one batch
                // (a v3+ Produce takes exactly one batch per partition).
                sequence: i32::try_from(i).expect("small index"),
                // Now, not a fixed date: retention would delete old records mid-test.
                timestamp: now_ms() + i,
                key: None,
                value: Some(bytes::Bytes::copy_from_slice(v.as_bytes())),
                headers: IndexMap::new(),
            }
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("kafka-protocol encodes the batch");

    let leader = client
        .leader(topic, partition)
        .await
        .expect("partition leader");
    let conn = client
        .broker_connection(leader.broker.node_id)
        .await
        .expect("leader connection");
    let version = conn
        .versions()
        .version_for::<ProduceRequest>()
        .expect("the broker supports Produce");
    let topic_data = TopicProduceData::default().with_partition_data(vec![
        PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(batch.freeze())),
    ]);
    // Produce v13 (Kafka 4.1+) names topics by id.
    let topic_data = if version >= 13 {
        topic_data.with_topic_id(leader.topic_id.expect("Produce v13 implies topic ids"))
    } else {
        topic_data.with_name(TopicName(StrBytes::from_string(topic.to_owned())))
    };
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![topic_data]);
    let response = conn
        .send(&request, version)
        .await
        .expect("Produce round trip");
    let p = &response.topics[0].partitions[0];
    assert_eq!(
        KafkaCode::from_code(p.error_code),
        None,
        "produce failed: {:?}",
        p.error_message
    );
}

#[tokio::test]
async fn negotiated_versions_are_sane() {
    let Some(addr) = broker() else { return };
    let conn = Connection::connect(&addr, &ConnectionConfig::default())
        .await
        .unwrap();
    let v = conn.versions();
    println!("{addr}: {v:?}");

    let api_versions = v.broker_range(ApiKey::ApiVersions).unwrap();
    assert!(api_versions.max >= 3, "a 4.x broker speaks ApiVersions v3+");
    // Kafka 4.x: Produce up to 12/13, Fetch up to 17/18, Metadata 12/13.
    let produce = v.version_for::<ProduceRequest>().unwrap();
    let fetch = v.version_for::<FetchRequest>().unwrap();
    let metadata = v.version_for::<MetadataRequest>().unwrap();
    assert!((12..=13).contains(&produce), "Produce v{produce}");
    assert!((17..=18).contains(&fetch), "Fetch v{fetch}");
    assert!((12..=13).contains(&metadata), "Metadata v{metadata}");
    // Whatever the broker advertises as its minimum, we never pick below our floor.
    for api in [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::Metadata,
        ApiKey::ListOffsets,
    ] {
        let range = v.broker_range(api).unwrap();
        assert!(
            range.max >= ferry_client::versions::floor(api),
            "{api:?} {range:?}"
        );
    }
    assert!(v.version_for::<ApiVersionsRequest>().unwrap() >= 3);
    assert!(conn.poisoned().is_none());
}

#[tokio::test]
async fn metadata_lists_a_created_topic() {
    let Some(addr) = broker() else { return };
    let client = Client::connect(&[addr.as_str()], ClientConfig::default())
        .await
        .unwrap();
    assert!(
        !client.metadata().brokers.is_empty(),
        "bootstrap loads the broker list"
    );

    let topic = unique_topic("meta");
    create_topic(&client, &topic, 3).await;
    wait_for_leaders(&client, &topic, 3).await;

    let metadata = client.metadata();
    let t = metadata.topic(&topic).unwrap();
    assert_eq!(t.partitions.len(), 3);
    assert!(t.topic_id.is_some(), "Metadata v10+ carries topic ids");
    assert!(!t.is_internal);
    assert_eq!(t.error, None);
    for p in t.partitions.values() {
        let leader = p.leader.unwrap();
        assert!(metadata.brokers.contains_key(&leader));
        assert!(p.leader_epoch.is_some());
        assert_eq!(p.replicas, vec![leader]);
    }

    // Asking about a topic that does not exist must not create it.
    let missing = unique_topic("missing");
    let metadata = client
        .refresh_metadata(Some(&[missing.as_str()]))
        .await
        .unwrap();
    assert_eq!(
        metadata.topic(&missing).unwrap().error,
        Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION)
    );
    let again = client
        .refresh_metadata(Some(&[missing.as_str()]))
        .await
        .unwrap();
    assert_eq!(
        again.topic(&missing).unwrap().error,
        Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION),
        "metadata requests never auto-create topics"
    );
}

#[tokio::test]
async fn fetch_raw_returns_produced_batches_zero_copy() {
    let Some(addr) = broker() else { return };
    let client = Client::connect(&[addr.as_str()], ClientConfig::default())
        .await
        .unwrap();
    let topic = unique_topic("fetch");
    create_topic(&client, &topic, 1).await;
    wait_for_leaders(&client, &topic, 1).await;
    produce(&client, &topic, 0, &["one", "two", "three"]).await;

    for isolation in [Isolation::ReadCommitted, Isolation::ReadUncommitted] {
        let options = FetchOptions {
            isolation,
            ..FetchOptions::default()
        };
        let fetched = client.fetch_raw(&topic, 0, 0, &options).await.unwrap();
        assert_eq!(fetched.error, None);
        assert_eq!(fetched.high_watermark, 3);
        assert_eq!(fetched.last_stable_offset, 3);
        assert_eq!(fetched.log_start_offset, 0);
        assert!(fetched.aborted_transactions.is_empty());

        let batches: Vec<_> = BatchIter::new(fetched.records.clone())
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            batches.len(),
            1,
            "one produced batch comes back as one batch"
        );
        let FetchedBatch::V2(batch) = &batches[0] else {
            panic!("expected a v2 batch")
        };
        let h = batch.header();
        assert_eq!(
            (h.base_offset, h.last_offset_delta, h.record_count),
            (0, 2, 3)
        );
        assert_eq!(h.producer_id, -1);
        batch.verify_crc().unwrap();
    }

    // From the middle: the broker still returns the whole batch.
    let fetched = client
        .fetch_raw(&topic, 0, 1, &FetchOptions::default())
        .await
        .unwrap();
    assert_eq!(fetched.error, None);
    assert!(!fetched.records.is_empty());

    // Past the end: an error code as data, not an Err.
    let fetched = client
        .fetch_raw(&topic, 0, 100, &FetchOptions::default())
        .await
        .unwrap();
    assert_eq!(fetched.error, Some(KafkaCode::OFFSET_OUT_OF_RANGE));
    assert!(fetched.records.is_empty());

    // Unknown partition: an Err that names the broker.
    let err = client
        .fetch_raw(&topic, 5, 0, &FetchOptions::default())
        .await
        .unwrap_err();
    assert!(err.broker().is_some(), "{err}");

    // The same fetch through send_raw, to see the frame: the decoded records
    // must point inside the response bytes, not at a copy.
    let leader = client.leader(&topic, 0).await.unwrap();
    let conn = client
        .broker_connection(leader.broker.node_id)
        .await
        .unwrap();
    let target = FetchTarget {
        topic: topic.clone(),
        topic_id: leader.topic_id,
        partition: 0,
        current_leader_epoch: leader.partition.leader_epoch,
    };
    let version = fetch_version(conn.versions(), &target).unwrap();
    assert!(version >= 13, "topic ids allow Fetch v13+ (got v{version})");
    let request = fetch_request(&target, 0, &FetchOptions::default(), version);
    let mut body = BytesMut::new();
    request.encode(&mut body, version).unwrap();
    let frame = conn
        .send_raw(ApiKey::Fetch, version, vec![body.freeze()])
        .await
        .unwrap();
    let fetched = parse_fetch_response(frame.clone(), &target, version, conn.broker()).unwrap();
    assert!(!fetched.records.is_empty());
    assert!(
        frame.as_ptr_range().contains(&fetched.records.as_ptr()),
        "records were copied out of the response frame"
    );
}

#[tokio::test]
async fn empty_partition_fetch_waits_and_returns_nothing() {
    let Some(addr) = broker() else { return };
    let client = Client::connect(&[addr.as_str()], ClientConfig::default())
        .await
        .unwrap();
    let topic = unique_topic("empty");
    create_topic(&client, &topic, 1).await;
    wait_for_leaders(&client, &topic, 1).await;
    let options = FetchOptions {
        max_wait: Duration::from_millis(200),
        ..FetchOptions::default()
    };
    let fetched = client.fetch_raw(&topic, 0, 0, &options).await.unwrap();
    assert_eq!(fetched.error, None);
    assert_eq!(fetched.high_watermark, 0);
    assert!(fetched.records.is_empty());
}
