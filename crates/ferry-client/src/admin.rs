//! Admin calls: topics (create, list, grow), topic configs (describe,
//! alter) and offset lookups.
//!
//! Requests are encoded by kafka-protocol; responses are read by ferry-wire's
//! bounded decoders through [`Connection::send`] (kafka-protocol's
//! pre-allocate arrays by the counts a broker sends).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use crate::connection::Connection;
use crate::error::{ClientError, KafkaCode, Result};
use crate::fetcher::raw::Isolation;
use crate::metadata::ClusterMetadata;
use crate::retry::{Backoff, retry};
use crate::{Client, FetchOptions};

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    /// -1 uses the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Topic configs (e.g. `cleanup.policy`), applied at creation.
    pub configs: Vec<(String, String)>,
}

impl Client {
    /// Waits until every partition of a just-created `topic` is usable: its
    /// leader is in metadata *and* that leader serves it. Right after
    /// creation a broker may list itself as leader in metadata while still
    /// answering NOT_LEADER_OR_FOLLOWER or UNKNOWN_LEADER_EPOCH (seen on
    /// Kafka 4.3.1), so each partition is probed with a zero-wait fetch.
    /// Returns the last error if `timeout` passes first.
    pub async fn wait_for_topic(
        &self,
        topic: &str,
        partitions: i32,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let probe = FetchOptions {
            max_wait: Duration::ZERO,
            ..FetchOptions::default()
        };
        loop {
            let ready = self.topic_ready(topic, partitions, &probe).await;
            // A partition just added is missing from metadata until the
            // broker has caught up: that is "not yet" here, not an error.
            let not_yet = |e: &ClientError| {
                e.is_retriable() || matches!(e, ClientError::UnknownPartition { .. })
            };
            match ready {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline || !not_yet(&e) => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn topic_ready(&self, topic: &str, partitions: i32, probe: &FetchOptions) -> Result<()> {
        let metadata = self.refresh_metadata(Some(&[topic])).await?;
        for p in 0..partitions {
            metadata.leader(topic, p)?;
            let fetched = self.fetch_raw(topic, p, 0, probe).await?;
            // OFFSET_OUT_OF_RANGE cannot happen at 0 on a new topic, but it
            // would still mean the leader serves the partition.
            if let Some(code) = fetched
                .error
                .filter(|c| *c != KafkaCode::OFFSET_OUT_OF_RANGE)
            {
                return Err(ClientError::Kafka {
                    broker: metadata.source.clone(),
                    api: ApiKey::Fetch,
                    code,
                    context: format!(" for topic {topic:?} partition {p}"),
                });
            }
        }
        Ok(())
    }

    /// Creates a topic through the controller-forwarding path any broker
    /// offers. An existing topic is an error (`TOPIC_ALREADY_EXISTS`).
    pub async fn create_topic(&self, topic: &NewTopic) -> Result<()> {
        let conn = self.any_connection().await?;
        let version = conn.versions().version_for::<CreateTopicsRequest>()?;
        let request = CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                    .with_num_partitions(topic.partitions)
                    .with_replication_factor(topic.replication_factor)
                    .with_configs(
                        topic
                            .configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(StrBytes::from_string(k.clone()))
                                    .with_value(Some(StrBytes::from_string(v.clone())))
                            })
                            .collect(),
                    ),
            ])
            .with_timeout_ms(30_000);
        let response = conn.send(&request, version).await?;
        let result = response
            .topics
            .first()
            .ok_or_else(|| ClientError::IncompleteResponse {
                broker: conn.broker().to_owned(),
                api: ApiKey::CreateTopics,
                missing: format!("a result for topic {:?}", topic.name),
            })?;
        match KafkaCode::from_code(result.error_code) {
            None => Ok(()),
            Some(code) => Err(ClientError::Kafka {
                broker: conn.broker().to_owned(),
                api: ApiKey::CreateTopics,
                code,
                context: format!(
                    " for topic {:?} ({})",
                    topic.name,
                    result.error_message.as_deref().unwrap_or_default()
                ),
            }),
        }
    }
}

/// Which offset [`Client::list_offsets`] looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The end of the log: the last stable offset under read_committed,
    /// the high watermark under read_uncommitted.
    Latest,
    /// The first offset whose timestamp is at or after this one
    /// (milliseconds since the epoch; negative values count as 0), or the
    /// end of the log if there is none.
    Timestamp(i64),
}

impl OffsetSpec {
    /// The ListOffsets timestamp: -2 and -1 are Kafka's earliest/latest markers.
    fn wire(self) -> i64 {
        match self {
            Self::Earliest => -2,
            Self::Latest => -1,
            Self::Timestamp(ts) => ts.max(0),
        }
    }
}

/// One topic config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for sensitive values and for configs without a value.
    pub value: Option<String>,
    /// Not set on the topic itself: the value comes from the broker's
    /// defaults or its (static or dynamic) config. Only `false` entries are
    /// topic overrides.
    pub is_default: bool,
    pub is_sensitive: bool,
    pub read_only: bool,
}

/// DescribeConfigs/IncrementalAlterConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;
/// DescribeConfigs config source of a topic override (`TOPIC_CONFIG`); every
/// other source is a default as far as the topic is concerned.
const SOURCE_TOPIC_CONFIG: i8 = 1;
/// IncrementalAlterConfigs operation `SET`.
const OP_SET: i8 = 0;
/// Broker-side timeout for admin requests that wait for the controller.
const ADMIN_TIMEOUT_MS: i32 = 30_000;
/// Tries per admin call that is retried after leadership or controller moves.
const ADMIN_ATTEMPTS: u32 = 5;

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// `" for topic "t" (message)"` (or without the message), for error contexts.
fn context(topic: &str, message: Option<&str>) -> String {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!(" for topic {topic:?} ({m})"),
        None => format!(" for topic {topic:?}"),
    }
}

impl Client {
    /// Metadata for every topic in the cluster (internal ones included,
    /// flagged [`is_internal`](crate::TopicMetadata::is_internal)), which
    /// also replaces the cached topic list.
    pub async fn list_topics(&self) -> Result<Arc<ClusterMetadata>> {
        self.refresh_metadata(None).await
    }

    /// Looks up one offset per partition of `topic` on each partition's
    /// leader, under read_committed (so [`OffsetSpec::Latest`] is the last
    /// stable offset). Returns `(partition, offset)` in the order asked.
    /// Leadership moves are retried after a metadata refresh.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<Vec<(i32, i64)>> {
        self.list_offsets_with(topic, partitions, spec, Isolation::ReadCommitted)
            .await
    }

    /// [`list_offsets`](Self::list_offsets) with a chosen isolation level
    /// (read_uncommitted makes [`OffsetSpec::Latest`] the high watermark).
    pub async fn list_offsets_with(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
        isolation: Isolation,
    ) -> Result<Vec<(i32, i64)>> {
        let found = retry(Backoff::default(), ADMIN_ATTEMPTS, |attempt| async move {
            if attempt > 0 {
                self.refresh_metadata(Some(&[topic])).await?;
            }
            self.list_offsets_once(topic, partitions, spec.wire(), isolation)
                .await
        })
        .await?;
        let missing: Vec<i32> = found
            .iter()
            .filter(|(_, offset)| *offset < 0)
            .map(|(p, _)| *p)
            .collect();
        if missing.is_empty() || !matches!(spec, OffsetSpec::Timestamp(_)) {
            return Ok(found);
        }
        // No record at or after the timestamp: the answer is the log end.
        let ends: HashMap<i32, i64> =
            Box::pin(self.list_offsets_with(topic, &missing, OffsetSpec::Latest, isolation))
                .await?
                .into_iter()
                .collect();
        Ok(found
            .into_iter()
            .map(|(p, offset)| (p, ends.get(&p).copied().unwrap_or(offset)))
            .collect())
    }

    async fn list_offsets_once(
        &self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
        isolation: Isolation,
    ) -> Result<Vec<(i32, i64)>> {
        let mut metadata = self.metadata();
        if metadata.topic(topic).is_none() {
            metadata = self.refresh_metadata(Some(&[topic])).await?;
        }
        // Partitions by leader: one request per broker.
        let mut by_leader: BTreeMap<i32, Vec<(i32, i32)>> = BTreeMap::new();
        for &p in partitions {
            let leader = metadata.leader(topic, p)?;
            by_leader
                .entry(leader.broker.node_id)
                .or_default()
                .push((p, leader.partition.leader_epoch.unwrap_or(-1)));
        }
        let mut offsets: HashMap<i32, i64> = HashMap::new();
        for (node, parts) in by_leader {
            let conn = self.broker_connection(node).await?;
            let version = conn.versions().version_for::<ListOffsetsRequest>()?;
            let request = ListOffsetsRequest::default()
                // -1: an ordinary client. kafka-protocol defaults to 0, a
                // broker id, which brokers treat as a replica.
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(match isolation {
                    Isolation::ReadUncommitted => 0,
                    Isolation::ReadCommitted => 1,
                })
                .with_timeout_ms(ADMIN_TIMEOUT_MS)
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|&(p, epoch)| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(p)
                                        .with_current_leader_epoch(epoch)
                                        .with_timestamp(timestamp)
                                })
                                .collect(),
                        ),
                ]);
            let response = conn.send(&request, version).await?;
            let results = response
                .topics
                .into_iter()
                .filter(|t| t.name == topic)
                .flat_map(|t| t.partitions);
            for r in results {
                if let Some(code) = KafkaCode::from_code(r.error_code) {
                    return Err(ClientError::Kafka {
                        broker: conn.broker().to_owned(),
                        api: ApiKey::ListOffsets,
                        code,
                        context: format!(" for topic {topic:?} partition {}", r.partition),
                    });
                }
                offsets.insert(r.partition, r.offset);
            }
            if let Some(&(p, _)) = parts.iter().find(|(p, _)| !offsets.contains_key(p)) {
                return Err(ClientError::IncompleteResponse {
                    broker: conn.broker().to_owned(),
                    api: ApiKey::ListOffsets,
                    missing: format!("an offset for topic {topic:?} partition {p}"),
                });
            }
        }
        Ok(partitions
            .iter()
            .map(|p| (*p, offsets.get(p).copied().unwrap_or(-1)))
            .collect())
    }

    /// Every config of each topic in `topics`, by topic name.
    pub async fn describe_topic_configs(
        &self,
        topics: &[&str],
    ) -> Result<BTreeMap<String, Vec<ConfigEntry>>> {
        let conn = self.any_connection().await?;
        let version = conn.versions().version_for::<DescribeConfigsRequest>()?;
        let request = DescribeConfigsRequest::default().with_resources(
            topics
                .iter()
                .map(|t| {
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(StrBytes::from_string((*t).to_owned()))
                        // None: all configs (kafka-protocol's default is an
                        // empty list; Kafka 4.3 treats both alike, older
                        // brokers are only documented for null).
                        .with_configuration_keys(None)
                })
                .collect(),
        );
        let response = conn.send(&request, version).await?;
        let mut out = BTreeMap::new();
        for result in response.results {
            let topic = result.resource_name;
            if let Some(code) = KafkaCode::from_code(result.error_code) {
                return Err(ClientError::Kafka {
                    broker: conn.broker().to_owned(),
                    api: ApiKey::DescribeConfigs,
                    code,
                    context: context(&topic, result.error_message.as_deref()),
                });
            }
            let entries = result
                .configs
                .into_iter()
                .map(|c| ConfigEntry {
                    name: c.name,
                    value: c.value,
                    is_default: c.config_source != SOURCE_TOPIC_CONFIG,
                    is_sensitive: c.is_sensitive,
                    read_only: c.read_only,
                })
                .collect();
            out.insert(topic, entries);
        }
        if let Some(t) = topics.iter().find(|t| !out.contains_key(**t)) {
            return Err(ClientError::IncompleteResponse {
                broker: conn.broker().to_owned(),
                api: ApiKey::DescribeConfigs,
                missing: format!("the configs of topic {t:?}"),
            });
        }
        Ok(out)
    }

    /// Grows `topic` to `total` partitions and waits (up to 30 s) until every
    /// partition has a leader that serves it. Asking for no more partitions
    /// than the topic has is an error (`INVALID_PARTITIONS`).
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(topic_name(topic))
                    .with_count(total)
                    .with_assignments(None),
            ])
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
            .with_validate_only(false);
        let (conn, response) = self
            .to_controller(|conn| {
                let request = request.clone();
                async move {
                    let version = conn.versions().version_for::<CreatePartitionsRequest>()?;
                    let response = conn.send(&request, version).await?;
                    let code = response
                        .results
                        .iter()
                        .find(|r| r.name == topic)
                        .and_then(|r| KafkaCode::from_code(r.error_code));
                    Ok((response, code))
                }
            })
            .await?;
        let result = response
            .results
            .iter()
            .find(|r| r.name == topic)
            .ok_or_else(|| ClientError::IncompleteResponse {
                broker: conn.broker().to_owned(),
                api: ApiKey::CreatePartitions,
                missing: format!("a result for topic {topic:?}"),
            })?;
        if let Some(code) = KafkaCode::from_code(result.error_code) {
            return Err(ClientError::Kafka {
                broker: conn.broker().to_owned(),
                api: ApiKey::CreatePartitions,
                code,
                context: context(topic, result.error_message.as_deref()),
            });
        }
        self.wait_for_topic(topic, total, Duration::from_secs(30))
            .await
    }

    /// Sets configs on `topic` (IncrementalAlterConfigs `SET`; other
    /// configs keep their values). Needs Kafka 2.3 or newer.
    pub async fn alter_topic_configs(&self, topic: &str, set: &[(String, String)]) -> Result<()> {
        let request = IncrementalAlterConfigsRequest::default()
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(StrBytes::from_string(topic.to_owned()))
                    .with_configs(
                        set.iter()
                            .map(|(name, value)| {
                                AlterableConfig::default()
                                    .with_name(StrBytes::from_string(name.clone()))
                                    .with_config_operation(OP_SET)
                                    .with_value(Some(StrBytes::from_string(value.clone())))
                            })
                            .collect(),
                    ),
            ])
            .with_validate_only(false);
        let (conn, response) = self
            .to_controller(|conn| {
                let request = request.clone();
                async move {
                    let version = conn
                        .versions()
                        .version_for::<IncrementalAlterConfigsRequest>()?;
                    let response = conn.send(&request, version).await?;
                    let code = response
                        .results
                        .iter()
                        .find_map(|r| KafkaCode::from_code(r.error_code));
                    Ok((response, code))
                }
            })
            .await?;
        if response.results.is_empty() {
            return Err(ClientError::IncompleteResponse {
                broker: conn.broker().to_owned(),
                api: ApiKey::IncrementalAlterConfigs,
                missing: format!("a result for topic {topic:?}"),
            });
        }
        for r in &response.results {
            if let Some(code) = KafkaCode::from_code(r.error_code) {
                return Err(ClientError::Kafka {
                    broker: conn.broker().to_owned(),
                    api: ApiKey::IncrementalAlterConfigs,
                    code,
                    context: context(topic, r.error_message.as_deref()),
                });
            }
        }
        Ok(())
    }

    /// Runs `call` on the controller (Kafka 2.x wants CreatePartitions there;
    /// KRaft brokers forward, and report any broker as the controller), and
    /// again after a metadata refresh while the answer is `NOT_CONTROLLER`.
    /// `call` returns the response and its first error code.
    async fn to_controller<T, F, Fut>(&self, mut call: F) -> Result<(Connection, T)>
    where
        F: FnMut(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<(T, Option<KafkaCode>)>>,
    {
        let backoff = Backoff::default();
        let mut attempt = 0;
        loop {
            let conn = match self.metadata().controller_id {
                Some(id) => self.broker_connection(id).await?,
                None => self.any_connection().await?,
            };
            let (response, code) = call(conn.clone()).await?;
            attempt += 1;
            if code != Some(KafkaCode::NOT_CONTROLLER) || attempt >= ADMIN_ATTEMPTS {
                return Ok((conn, response));
            }
            // Nothing was changed; ask the new controller.
            tokio::time::sleep(backoff.delay(attempt)).await;
            self.refresh_metadata(Some(&[])).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_specs_use_kafkas_markers() {
        assert_eq!(OffsetSpec::Earliest.wire(), -2);
        assert_eq!(OffsetSpec::Latest.wire(), -1);
        assert_eq!(
            OffsetSpec::Timestamp(1_700_000_000_000).wire(),
            1_700_000_000_000
        );
        // A negative timestamp must not turn into a marker.
        assert_eq!(OffsetSpec::Timestamp(-2).wire(), 0);
    }

    #[test]
    fn error_context_names_topic_and_message() {
        assert_eq!(
            context("t", Some("Topic already has 3 partitions.")),
            " for topic \"t\" (Topic already has 3 partitions.)"
        );
        assert_eq!(context("t", None), " for topic \"t\"");
    }
}
