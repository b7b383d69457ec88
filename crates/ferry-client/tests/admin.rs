//! Admin calls against a real broker (`FERRY_KAFKA_A`; see `source_support`
//! for how tests are skipped).

mod source_support;

use std::ops::RangeInclusive;

use bytes::BytesMut;
use ferry_client::admin::OffsetSpec;
use ferry_client::{BoundedRequest, ClientError, Connection, Isolation, KafkaCode};
use ferry_wire::responses::api_versions::{
    MAX_API_VERSIONS_RESPONSE_VERSION, MIN_API_VERSIONS_RESPONSE_VERSION,
    decode_api_versions_response,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreatePartitionsRequest, CreateTopicsRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest,
    ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use source_support::{batch, broker, connect, create_topic, now_ms, produce, unique_topic};

#[tokio::test]
async fn list_offsets_earliest_latest_and_by_timestamp() {
    let Some(addr) = broker() else { return };
    let client = connect(&addr).await;
    let topic = unique_topic("offsets");
    create_topic(&client, &topic, 3, &[]).await;
    // Partition 0: batches of 5 at t0, t0+1s, t0+2s; partition 1: one
    // batch; partition 2: empty.
    let t0 = now_ms() - 60_000;
    for i in 0..3 {
        produce(&client, &topic, 0, batch("p0", 5, t0 + i * 1000, 0)).await;
    }
    produce(&client, &topic, 1, batch("p1", 2, t0, 0)).await;
    let all = [0, 1, 2];

    let earliest = client
        .list_offsets(&topic, &all, OffsetSpec::Earliest)
        .await
        .unwrap();
    assert_eq!(earliest, [(0, 0), (1, 0), (2, 0)]);
    let latest = client
        .list_offsets(&topic, &all, OffsetSpec::Latest)
        .await
        .unwrap();
    assert_eq!(latest, [(0, 15), (1, 2), (2, 0)]);
    let uncommitted = client
        .list_offsets_with(
            &topic,
            &[2, 0],
            OffsetSpec::Latest,
            Isolation::ReadUncommitted,
        )
        .await
        .unwrap();
    assert_eq!(uncommitted, [(2, 0), (0, 15)], "in the order asked");

    // The first offset at or after the timestamp ...
    let at = client
        .list_offsets(&topic, &[0], OffsetSpec::Timestamp(t0 + 1000))
        .await
        .unwrap();
    assert_eq!(at, [(0, 5)]);
    let between = client
        .list_offsets(&topic, &[0], OffsetSpec::Timestamp(t0 + 1500))
        .await
        .unwrap();
    assert_eq!(between, [(0, 10)]);
    // ... or the end of the log when no record is that recent.
    let future = client
        .list_offsets(&topic, &all, OffsetSpec::Timestamp(now_ms() + 3_600_000))
        .await
        .unwrap();
    assert_eq!(future, [(0, 15), (1, 2), (2, 0)]);

    // A partition that does not exist: an error naming topic and partition.
    let err = client
        .list_offsets(&topic, &[7], OffsetSpec::Latest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::UnknownPartition { partition: 7, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn topic_configs_show_overrides_and_can_be_altered() {
    let Some(addr) = broker() else { return };
    let client = connect(&addr).await;
    let topic = unique_topic("configs");
    create_topic(&client, &topic, 1, &[("retention.ms", "86400000")]).await;

    let configs = client.describe_topic_configs(&[&topic]).await.unwrap();
    let entries = &configs[&topic];
    let get = |entries: &[ferry_client::admin::ConfigEntry], name: &str| {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .clone()
    };
    let retention = get(entries, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("86400000"));
    assert!(!retention.is_default, "an override set at creation");
    assert!(!retention.is_sensitive);
    let cleanup = get(entries, "cleanup.policy");
    assert!(cleanup.is_default, "{cleanup:?}");
    assert_eq!(cleanup.value.as_deref(), Some("delete"));

    client
        .alter_topic_configs(
            &topic,
            &[
                ("retention.ms".to_owned(), "172800000".to_owned()),
                ("max.message.bytes".to_owned(), "2000000".to_owned()),
            ],
        )
        .await
        .unwrap();
    // The controller has committed the change when the call returns; the
    // broker answering DescribeConfigs applies it a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let configs = loop {
        let configs = client.describe_topic_configs(&[&topic]).await.unwrap();
        let applied = get(&configs[&topic], "retention.ms").value.as_deref() == Some("172800000");
        if applied || std::time::Instant::now() > deadline {
            break configs;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let entries = &configs[&topic];
    assert_eq!(
        get(entries, "retention.ms").value.as_deref(),
        Some("172800000")
    );
    let max = get(entries, "max.message.bytes");
    assert_eq!(max.value.as_deref(), Some("2000000"));
    assert!(!max.is_default);

    // A bad value: the broker's message comes through, naming the topic.
    let err = client
        .alter_topic_configs(&topic, &[("retention.ms".to_owned(), "soon".to_owned())])
        .await
        .unwrap_err();
    assert_eq!(err.kafka_code(), Some(KafkaCode::INVALID_CONFIG), "{err}");
    println!("{err}");
    assert!(err.to_string().contains(&topic), "{err}");

    // An unknown topic is an error naming it.
    let missing = unique_topic("missing");
    let err = client
        .describe_topic_configs(&[&missing])
        .await
        .unwrap_err();
    assert_eq!(
        err.kafka_code(),
        Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION),
        "{err}"
    );
    assert!(err.to_string().contains(&missing), "{err}");
}

#[tokio::test]
async fn create_partitions_grows_a_topic() {
    let Some(addr) = broker() else { return };
    let client = connect(&addr).await;
    let topic = unique_topic("grow");
    create_topic(&client, &topic, 2, &[]).await;
    client.create_partitions(&topic, 5).await.unwrap();
    let metadata = client.refresh_metadata(Some(&[&topic])).await.unwrap();
    assert_eq!(metadata.topic(&topic).unwrap().partitions.len(), 5);
    // The new partitions are usable at once.
    produce(&client, &topic, 4, batch("new", 1, now_ms(), 0)).await;

    let err = client.create_partitions(&topic, 5).await.unwrap_err();
    assert_eq!(
        err.kafka_code(),
        Some(KafkaCode::INVALID_PARTITIONS),
        "{err}"
    );
    let text = err.to_string();
    println!("{text}");
    assert!(text.contains(&topic) && text.contains('5'), "{text}");
}

#[tokio::test]
async fn list_topics_sees_every_topic_with_its_partitions() {
    let Some(addr) = broker() else { return };
    let client = connect(&addr).await;
    let topic = unique_topic("listed");
    create_topic(&client, &topic, 3, &[]).await;
    let metadata = client.list_topics().await.unwrap();
    let t = metadata.topic(&topic).expect("the new topic is listed");
    assert_eq!(t.partitions.len(), 3);
    assert!(!t.is_internal);
    assert!(t.topic_id.is_some());
    // Present once any consumer group has committed; internal if so.
    if let Some(offsets) = metadata.topic("__consumer_offsets") {
        assert!(offsets.is_internal);
    }
    // The cache now holds all topics too.
    assert!(client.metadata().topic(&topic).is_some());
}

/// The versions of `R` this broker, kafka-protocol's encoder and ferry's
/// decoder all speak.
fn shared_versions<R: BoundedRequest>(conn: &Connection) -> RangeInclusive<i16> {
    let api = ApiKey::try_from(R::KEY).expect("a known API");
    let broker = conn
        .versions()
        .broker_range(api)
        .unwrap_or_else(|| panic!("the broker offers {api:?}"));
    let lowest = broker.min.max(R::VERSIONS.min).max(R::DECODED_VERSIONS.min);
    let highest = broker.max.min(R::VERSIONS.max).min(R::DECODED_VERSIONS.max);
    println!("{api:?}: v{lowest}..=v{highest}");
    lowest..=highest
}

/// Every version both sides speak, not only the highest one the client
/// picks: a real broker's answer at each must go through ferry's bounded
/// decoders. Requests that would change something are `validate_only`.
#[tokio::test]
async fn every_shared_version_of_the_admin_apis_decodes() {
    let Some(addr) = broker() else { return };
    let client = connect(&addr).await;
    let topic = unique_topic("versions");
    create_topic(&client, &topic, 1, &[]).await;
    let leader = client.leader(&topic, 0).await.unwrap();
    let conn = client
        .broker_connection(leader.broker.node_id)
        .await
        .unwrap();
    let name = || StrBytes::from_string(topic.clone());

    for version in shared_versions::<ListOffsetsRequest>(&conn) {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(name()))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ]),
            ]);
        let response = conn.send(&request, version).await.unwrap();
        let p = &response.topics[0].partitions[0];
        assert_eq!(
            (p.partition, p.error_code, p.offset),
            (0, 0, 0),
            "v{version}"
        );
    }
    for version in shared_versions::<DescribeConfigsRequest>(&conn) {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(name())
                .with_configuration_keys(None),
        ]);
        let response = conn.send(&request, version).await.unwrap();
        let result = &response.results[0];
        assert_eq!(
            (result.error_code, result.resource_name.as_str()),
            (0, topic.as_str())
        );
        assert!(
            result.configs.iter().any(|c| c.name == "retention.ms"),
            "v{version}"
        );
    }
    for version in shared_versions::<CreateTopicsRequest>(&conn) {
        let request = CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(unique_topic("never"))))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ])
            .with_timeout_ms(30_000)
            .with_validate_only(true);
        let response = conn.send(&request, version).await.unwrap();
        assert_eq!(response.topics.len(), 1, "v{version}");
        assert_eq!(
            response.topics[0].error_code, 0,
            "v{version}: {:?}",
            response.topics[0]
        );
    }
    for version in shared_versions::<CreatePartitionsRequest>(&conn) {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(TopicName(name()))
                    .with_count(2)
                    .with_assignments(None),
            ])
            .with_timeout_ms(30_000)
            .with_validate_only(true);
        let response = conn.send(&request, version).await.unwrap();
        assert_eq!(response.results[0].name, topic);
        assert_eq!(
            response.results[0].error_code, 0,
            "v{version}: {:?}",
            response.results[0]
        );
    }
    for version in shared_versions::<IncrementalAlterConfigsRequest>(&conn) {
        let request = IncrementalAlterConfigsRequest::default()
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(name())
                    .with_configs(vec![
                        AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(StrBytes::from_static_str("3600000"))),
                    ]),
            ])
            .with_validate_only(true);
        let response = conn.send(&request, version).await.unwrap();
        assert_eq!(response.results[0].resource_name, topic);
        assert_eq!(
            response.results[0].error_code, 0,
            "v{version}: {:?}",
            response.results[0]
        );
    }
    for version in shared_versions::<InitProducerIdRequest>(&conn) {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(i32::MAX);
        let response = conn.send(&request, version).await.unwrap();
        assert_eq!(response.error_code, 0, "v{version}");
        assert!(response.producer_id >= 0, "v{version}: {response:?}");
    }
    // ApiVersions is not sent through `send` (its answer to an unknown
    // version is in the v0 format), so its decoder is driven directly.
    for version in MIN_API_VERSIONS_RESPONSE_VERSION..=MAX_API_VERSIONS_RESPONSE_VERSION {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("ferry-test"))
            .with_client_software_version(StrBytes::from_static_str("1.0"));
        let mut body = BytesMut::new();
        request.encode(&mut body, version).unwrap();
        let reply = conn
            .send_raw(ApiKey::ApiVersions, version, vec![body.freeze()])
            .await
            .unwrap();
        let response = decode_api_versions_response(reply, version).unwrap();
        assert_eq!(response.error_code, 0, "v{version}");
        assert!(
            response
                .api_keys
                .iter()
                .any(|k| k.api_key == ApiKey::Fetch as i16),
            "v{version}"
        );
    }
    assert!(conn.poisoned().is_none());
}
