//! Finding the topics a flow mirrors and preparing their target topics.

use crate::checkpoint::{TopicId, TopicIds};
use crate::metrics::Stage;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ferry_client::{Client, ClientError, KafkaCode, NewTopic, TopicPartition};

use super::FlowSpec;
use crate::EngineError;
use crate::topics::Refusal;

/// Kafka's default `max.message.bytes`, for a target topic that does not say.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// One source partition ready to be mirrored.
#[derive(Debug, Clone)]
pub(super) struct Assignment {
    pub source: TopicPartition,
    pub target: TopicPartition,
    /// The target topic's `max.message.bytes`.
    pub max_batch_bytes: usize,
    /// The source and target topic ids (`None` where the broker gives none,
    /// or the target topic was created in this round).
    pub ids: TopicIds,
}

/// What one discovery round found.
#[derive(Debug, Default)]
pub(super) struct Round {
    /// Every partition to mirror (already running ones included).
    pub assignments: Vec<Assignment>,
    /// Source topics to mirror whose target could not be set up this
    /// round: retried at the next one, while every other topic goes on.
    pub failed: Vec<TopicFailure>,
}

/// A source topic whose target topic could not be prepared.
#[derive(Debug)]
pub(super) struct TopicFailure {
    pub topic: String,
    pub partitions: usize,
    pub error: EngineError,
}

impl Round {
    /// Every source partition this round found to mirror, set up or not.
    pub(super) fn partitions(&self) -> impl Iterator<Item = TopicPartition> + '_ {
        self.assignments
            .iter()
            .map(|a| a.source.clone())
            .chain(self.failed.iter().flat_map(|f| {
                (0..f.partitions).map(|p| {
                    TopicPartition::new(f.topic.as_str(), i32::try_from(p).unwrap_or(i32::MAX))
                })
            }))
    }
}

#[derive(Debug, Clone)]
struct Known {
    target: String,
    partitions: usize,
    max_batch_bytes: usize,
}

pub(super) struct Discovery {
    spec: Arc<FlowSpec>,
    source: Client,
    target: Client,
    known: HashMap<String, Known>,
    refusals_logged: HashSet<String>,
    /// Topics whose target could not be set up, with the error last logged
    /// (a warning once per change, not every round).
    failing: HashMap<String, String>,
}

impl Discovery {
    pub(super) fn new(spec: Arc<FlowSpec>, source: Client, target: Client) -> Self {
        Self {
            spec,
            source,
            target,
            known: HashMap::new(),
            refusals_logged: HashSet::new(),
            failing: HashMap::new(),
        }
    }

    fn cluster_error(&self, alias: &str) -> impl Fn(ClientError) -> EngineError + '_ {
        let alias = alias.to_owned();
        move |e| EngineError::Cluster {
            flow: self.spec.name.clone(),
            cluster: alias.clone(),
            source: Box::new(e),
        }
    }

    /// Lists source topics, creates or grows target topics, and returns every
    /// partition to mirror (already running ones included). Fails only when
    /// a cluster cannot be listed; one topic whose target cannot be set up
    /// is reported in the round and does not hold up the others.
    pub(super) async fn run(&mut self) -> Result<Round, EngineError> {
        let source_meta = self
            .source
            .list_topics()
            .await
            .map_err(self.cluster_error(&self.spec.source_alias))?;
        let target_meta = self
            .target
            .list_topics()
            .await
            .map_err(self.cluster_error(&self.spec.target_alias))?;
        let mut out = Vec::new();
        let mut failed = Vec::new();
        for (name, topic) in &source_meta.topics {
            if topic.is_internal || topic.partitions.is_empty() {
                continue;
            }
            let target_name = match self.spec.policy.map(name) {
                Ok(t) => t,
                Err(why) => {
                    if self.refusals_logged.insert(name.clone()) {
                        // Not matching the include list is the normal case:
                        // only refusals an operator may not expect are info.
                        if why == Refusal::NotIncluded {
                            tracing::debug!(flow = %self.spec.name, topic = %name, "topic not mirrored: not included");
                        } else {
                            tracing::info!(flow = %self.spec.name, topic = %name, reason = %why, "topic not mirrored");
                        }
                    }
                    continue;
                }
            };
            let partitions = topic.partitions.len();
            let known = self.known.get(name).cloned();
            let needs_setup = known.as_ref().is_none_or(|k| k.partitions < partitions);
            let known = if needs_setup {
                let existing = target_meta
                    .topics
                    .get(&target_name)
                    .map(|t| t.partitions.len());
                match self
                    .prepare_target(name, &target_name, partitions, existing)
                    .await
                {
                    Ok(known) => {
                        if self.failing.remove(name).is_some() {
                            tracing::info!(flow = %self.spec.name, topic = %name, target = %target_name, "target topic set up after earlier failures; mirroring it");
                        }
                        known
                    }
                    Err(error) => {
                        self.spec
                            .metrics
                            .error(Stage::Discovery, discovery_code(&error));
                        let text = error.to_string();
                        if self.failing.get(name) != Some(&text) {
                            tracing::warn!(flow = %self.spec.name, topic = %name, target = %target_name, error = %text, "cannot set up the target topic; not mirroring it, retrying every discovery interval (other topics go on)");
                            self.failing.insert(name.clone(), text);
                        }
                        failed.push(TopicFailure {
                            topic: name.clone(),
                            partitions,
                            error,
                        });
                        continue;
                    }
                }
            } else {
                known.unwrap_or(Known {
                    target: target_name,
                    partitions,
                    max_batch_bytes: DEFAULT_MAX_MESSAGE_BYTES,
                })
            };
            let ids = TopicIds {
                source: topic.topic_id.and_then(|u| TopicId::new(*u.as_bytes())),
                target: target_meta
                    .topics
                    .get(&known.target)
                    .and_then(|t| t.topic_id)
                    .and_then(|u| TopicId::new(*u.as_bytes())),
            };
            for p in 0..partitions {
                let p = i32::try_from(p).unwrap_or(i32::MAX);
                out.push(Assignment {
                    source: TopicPartition::new(name.as_str(), p),
                    target: TopicPartition::new(known.target.as_str(), p),
                    max_batch_bytes: known.max_batch_bytes,
                    ids,
                });
            }
            self.known.insert(name.clone(), known);
        }
        // A topic gone from the source is no longer failing.
        self.failing
            .retain(|topic, _| source_meta.topics.contains_key(topic));
        Ok(Round {
            assignments: out,
            failed,
        })
    }

    async fn prepare_target(
        &self,
        source_topic: &str,
        target_topic: &str,
        partitions: usize,
        existing: Option<usize>,
    ) -> Result<Known, EngineError> {
        let count = i32::try_from(partitions).unwrap_or(i32::MAX);
        let target_err = self.cluster_error(&self.spec.target_alias);
        match existing {
            None => {
                let configs = self.copied_configs(source_topic).await?;
                let topic = NewTopic {
                    name: target_topic.to_owned(),
                    partitions: count,
                    replication_factor: self.spec.replication_factor,
                    configs,
                };
                match self.target.create_topic(&topic).await {
                    Ok(()) => tracing::info!(
                        flow = %self.spec.name,
                        topic = %target_topic,
                        partitions,
                        "target topic created"
                    ),
                    Err(e) if e.kafka_code() == Some(KafkaCode::TOPIC_ALREADY_EXISTS) => {}
                    Err(e) => return Err(target_err(e)),
                }
            }
            Some(have) if have < partitions => {
                self.target
                    .create_partitions(target_topic, count)
                    .await
                    .map_err(&target_err)?;
                tracing::info!(
                    flow = %self.spec.name,
                    topic = %target_topic,
                    from = have,
                    to = partitions,
                    "target topic grown to the source's partition count"
                );
            }
            Some(have) => {
                if have > partitions {
                    tracing::warn!(
                        flow = %self.spec.name,
                        topic = %target_topic,
                        target_partitions = have,
                        source_partitions = partitions,
                        "target topic has more partitions than the source; extra ones stay empty"
                    );
                }
            }
        }
        self.target
            .wait_for_topic(target_topic, count, Duration::from_secs(60))
            .await
            .map_err(&target_err)?;
        let max_batch_bytes = self.max_message_bytes(target_topic).await?;
        Ok(Known {
            target: target_topic.to_owned(),
            partitions,
            max_batch_bytes,
        })
    }

    /// The source topic's own (non-default) configs, minus the excluded ones.
    async fn copied_configs(
        &self,
        source_topic: &str,
    ) -> Result<Vec<(String, String)>, EngineError> {
        let configs = self
            .source
            .describe_topic_configs(&[source_topic])
            .await
            .map_err(self.cluster_error(&self.spec.source_alias))?;
        Ok(configs
            .get(source_topic)
            .into_iter()
            .flatten()
            .filter(|c| !c.is_default && !c.is_sensitive && !c.read_only)
            .filter(|c| self.spec.configs.copies(&c.name))
            .filter_map(|c| c.value.clone().map(|v| (c.name.clone(), v)))
            .collect())
    }

    async fn max_message_bytes(&self, target_topic: &str) -> Result<usize, EngineError> {
        target_max_message_bytes(&self.target, target_topic)
            .await
            .map_err(self.cluster_error(&self.spec.target_alias))
    }
}

/// The target topic's `max.message.bytes` (Kafka's default if it does not
/// say): batches larger than it are split before they are sent.
pub(super) async fn target_max_message_bytes(
    target: &Client,
    topic: &str,
) -> Result<usize, ClientError> {
    let configs = target.describe_topic_configs(&[topic]).await?;
    Ok(configs
        .get(topic)
        .into_iter()
        .flatten()
        .find(|c| c.name == "max.message.bytes")
        .and_then(|c| c.value.as_deref())
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES))
}

/// The Kafka error name of a discovery error, for the metric.
fn discovery_code(error: &EngineError) -> Option<&'static str> {
    match error {
        EngineError::Cluster { source, .. } => source.kafka_code().and_then(KafkaCode::name),
        _ => None,
    }
}
