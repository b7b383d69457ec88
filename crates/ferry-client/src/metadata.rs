//! Cluster metadata: which brokers exist, which topics and partitions, and
//! who leads each partition.
//!
//! This module only builds the Metadata request and turns the response into
//! plain types; [`Client`](crate::Client) decides when to ask and caches the
//! answer.

use std::collections::BTreeMap;

use ferry_wire::responses::metadata::MetadataResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::error::{ClientError, KafkaCode, Result};

/// A snapshot of what one broker said about the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    /// The broker that answered, for error messages.
    pub source: String,
    /// The cluster id (Metadata v2+).
    pub cluster_id: Option<String>,
    /// The active controller, if the broker reported one.
    pub controller_id: Option<i32>,
    /// Live brokers by node id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics by name. Only the topics asked for, unless all were.
    pub topics: BTreeMap<String, TopicMetadata>,
}

/// One broker as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, bracketing IPv6 literals.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One topic as metadata describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMetadata {
    pub name: String,
    /// The topic id, known from Metadata v10 (Kafka 2.8) on.
    pub topic_id: Option<Uuid>,
    pub is_internal: bool,
    /// A topic-level error, e.g. `UNKNOWN_TOPIC_OR_PARTITION` or
    /// `TOPIC_AUTHORIZATION_FAILED`; the partition list is then empty.
    pub error: Option<KafkaCode>,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, PartitionMetadata>,
}

/// One partition as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: i32,
    /// The leader's node id; `None` during an election.
    pub leader: Option<i32>,
    /// The leader epoch (Metadata v7+), sent with Fetch so a stale leader is fenced.
    pub leader_epoch: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    /// A partition-level error, e.g. `LEADER_NOT_AVAILABLE`.
    pub error: Option<KafkaCode>,
}

/// The partition's leader, resolved against the broker list.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderInfo {
    pub broker: BrokerInfo,
    pub topic_id: Option<Uuid>,
    pub partition: PartitionMetadata,
}

impl ClusterMetadata {
    /// Looks up a topic.
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.get(name)
    }

    /// The leader of `topic`/`partition`, or the reason there is none.
    pub fn leader(&self, topic: &str, partition: i32) -> Result<LeaderInfo> {
        let kafka = |code| ClientError::Kafka {
            broker: self.source.clone(),
            api: ApiKey::Metadata,
            code,
            context: format!(" for topic {topic:?}"),
        };
        let t = self
            .topic(topic)
            .ok_or_else(|| kafka(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION))?;
        if let Some(code) = t.error {
            return Err(kafka(code));
        }
        let p = t
            .partitions
            .get(&partition)
            .ok_or_else(|| ClientError::UnknownPartition {
                broker: self.source.clone(),
                topic: topic.to_owned(),
                partition,
                partitions: t.partitions.len(),
            })?;
        let no_leader = || ClientError::NoLeader {
            broker: self.source.clone(),
            topic: topic.to_owned(),
            partition,
        };
        let node_id = p.leader.ok_or_else(no_leader)?;
        let broker = self
            .brokers
            .get(&node_id)
            .ok_or_else(|| ClientError::UnknownBroker {
                broker: self.source.clone(),
                node_id,
            })?;
        Ok(LeaderInfo {
            broker: broker.clone(),
            topic_id: t.topic_id,
            partition: p.clone(),
        })
    }

    /// Folds a newer snapshot in: brokers, cluster id and controller are
    /// replaced; topics are replaced wholesale if `all_topics`, otherwise only
    /// the topics the newer snapshot mentions are.
    pub fn merge(&mut self, newer: ClusterMetadata, all_topics: bool) {
        self.source = newer.source;
        self.cluster_id = newer.cluster_id;
        self.controller_id = newer.controller_id;
        self.brokers = newer.brokers;
        if all_topics {
            self.topics = newer.topics;
        } else {
            self.topics.extend(newer.topics);
        }
    }
}

/// A Metadata request for `topics` (`None`: all topics; an empty slice:
/// brokers only). Never lets the broker auto-create a topic.
pub fn metadata_request(topics: Option<&[&str]>, version: i16) -> MetadataRequest {
    let topics = topics.map(|names| {
        names
            .iter()
            .map(|name| {
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string((*name).to_owned()))))
            })
            .collect()
    });
    let request = MetadataRequest::default().with_topics(topics);
    if version >= 4 {
        // A replicator must never create topics by asking about them.
        request.with_allow_auto_topic_creation(false)
    } else {
        request
    }
}

/// Turns a Metadata response from `broker` into a [`ClusterMetadata`].
pub fn parse_metadata(response: MetadataResponse, broker: &str) -> Result<ClusterMetadata> {
    if let Some(code) = KafkaCode::from_code(response.error_code) {
        return Err(ClientError::Kafka {
            broker: broker.to_owned(),
            api: ApiKey::Metadata,
            code,
            context: String::new(),
        });
    }
    let mut brokers = BTreeMap::new();
    for b in response.brokers {
        let port = u16::try_from(b.port).map_err(|_| ClientError::IncompleteResponse {
            broker: broker.to_owned(),
            api: ApiKey::Metadata,
            missing: format!("a valid port for node {} (got {})", b.node_id, b.port),
        })?;
        let info = BrokerInfo {
            node_id: b.node_id,
            host: b.host,
            port,
            rack: b.rack,
        };
        brokers.insert(info.node_id, info);
    }
    let mut topics = BTreeMap::new();
    for t in response.topics {
        // Names are only null in a v12+ response to a by-id request, which we never send.
        let Some(name) = t.name else { continue };
        let partitions = t
            .partitions
            .into_iter()
            .map(|p| {
                let meta = PartitionMetadata {
                    partition: p.partition,
                    leader: (p.leader_id >= 0).then_some(p.leader_id),
                    leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                    replicas: p.replicas,
                    isr: p.isr,
                    offline_replicas: p.offline_replicas,
                    error: KafkaCode::from_code(p.error_code),
                };
                (meta.partition, meta)
            })
            .collect();
        let topic = TopicMetadata {
            name,
            topic_id: t.topic_id.map(Uuid::from_bytes),
            is_internal: t.is_internal,
            error: KafkaCode::from_code(t.error_code),
            partitions,
        };
        topics.insert(topic.name.clone(), topic);
    }
    Ok(ClusterMetadata {
        source: broker.to_owned(),
        cluster_id: response.cluster_id,
        controller_id: (response.controller_id >= 0).then_some(response.controller_id),
        brokers,
        topics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> ClusterMetadata {
        let mut m = ClusterMetadata {
            source: "b:1".into(),
            ..Default::default()
        };
        m.brokers.insert(
            1,
            BrokerInfo {
                node_id: 1,
                host: "h1".into(),
                port: 9092,
                rack: None,
            },
        );
        let partition = |partition, leader| PartitionMetadata {
            partition,
            leader,
            leader_epoch: Some(3),
            replicas: vec![1],
            isr: vec![1],
            offline_replicas: vec![],
            error: None,
        };
        m.topics.insert(
            "t".into(),
            TopicMetadata {
                name: "t".into(),
                topic_id: None,
                is_internal: false,
                error: None,
                partitions: [
                    (0, partition(0, Some(1))),
                    (1, partition(1, None)),
                    (2, partition(2, Some(7))),
                ]
                .into_iter()
                .collect(),
            },
        );
        m
    }

    #[test]
    fn leader_lookup_explains_every_failure() {
        let m = cluster();
        let l = m.leader("t", 0).unwrap();
        assert_eq!(l.broker.address(), "h1:9092");
        assert_eq!(l.partition.leader_epoch, Some(3));
        assert!(matches!(
            m.leader("t", 1),
            Err(ClientError::NoLeader { partition: 1, .. })
        ));
        assert!(matches!(
            m.leader("t", 2),
            Err(ClientError::UnknownBroker { node_id: 7, .. })
        ));
        assert!(matches!(
            m.leader("t", 9),
            Err(ClientError::UnknownPartition { partitions: 3, .. })
        ));
        assert_eq!(
            m.leader("nope", 0).unwrap_err().kafka_code(),
            Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION)
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let b = BrokerInfo {
            node_id: 1,
            host: "::1".into(),
            port: 9092,
            rack: None,
        };
        assert_eq!(b.address(), "[::1]:9092");
    }

    #[test]
    fn auto_creation_is_always_off() {
        let r = metadata_request(Some(&["a"]), 12);
        assert!(!r.allow_auto_topic_creation);
        assert_eq!(r.topics.as_ref().map(Vec::len), Some(1));
        assert!(metadata_request(None, 12).topics.is_none());
    }
}
