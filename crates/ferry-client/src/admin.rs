//! Admin calls: only what ferry needs so far (creating topics).

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::{Client, FetchOptions};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{ClientError, KafkaCode, Result};
use kafka_protocol::messages::ApiKey;

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
            match ready {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline || !e.is_retriable() => return Err(e),
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
                    result
                        .error_message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default()
                ),
            }),
        }
    }
}
