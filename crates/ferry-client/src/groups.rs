//! Consumer-group admin calls: list and describe groups, find a group's
//! coordinator, read and write its committed offsets (as Kafka's
//! AdminClient does), so the engine can carry group offsets from a source
//! cluster to a target.
//!
//! Group requests go to the group's coordinator, found with
//! FindCoordinator. A coordinator that moved or is loading
//! (`NOT_COORDINATOR`, `COORDINATOR_LOAD_IN_PROGRESS`,
//! `COORDINATOR_NOT_AVAILABLE`), or a connection to it that broke, is
//! retried with a fresh lookup and backoff until [`COORDINATOR_DEADLINE`].
//!
//! Requests are encoded by kafka-protocol; responses are read by ferry-wire's
//! bounded decoders through [`Connection::send`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Message, StrBytes, VersionRange};
use tokio::time::Instant;

use crate::connection::Connection;
use crate::error::{ClientError, KafkaCode, Result};
use crate::retry::{Backoff, RetryState, retry};
use crate::{Client, TopicPartition};

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// `consumer` for consumer groups; empty for a group that only ever had
    /// offsets committed to it (by an admin, or by a consumer using
    /// `assign` without joining).
    pub protocol_type: String,
    /// The group state (`Empty`, `Stable`, …); `None` from brokers older
    /// than Kafka 2.6 (ListGroups below v4 does not report it).
    pub state: Option<String>,
}

/// DescribeGroups' answer for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance`, or
    /// `Dead` for a group that does not exist.
    pub state: String,
    pub protocol_type: String,
    /// How many members the group has now.
    pub members: usize,
}

/// How long a group call keeps retrying a coordinator that moved, is
/// loading, or cannot be reached.
pub const COORDINATOR_DEADLINE: Duration = Duration::from_secs(30);
/// FindCoordinator key type of a group (1 would be a transactional id).
const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator from v4 takes a list of keys (KIP-699).
const FIND_COORDINATOR_BATCHED: i16 = 4;
/// OffsetFetch from v8 takes a list of groups (KIP-709).
const OFFSET_FETCH_BATCHED: i16 = 8;
/// Tries of a ListGroups to one broker while its coordinator loads.
const LIST_GROUPS_ATTEMPTS: u32 = 5;

/// The codes that mean "ask the coordinator again, maybe a different one".
fn coordinator_moved(code: KafkaCode) -> bool {
    matches!(
        code,
        KafkaCode::NOT_COORDINATOR
            | KafkaCode::COORDINATOR_LOAD_IN_PROGRESS
            | KafkaCode::COORDINATOR_NOT_AVAILABLE
    )
}

/// Whether a failed group call is worth another coordinator lookup: the
/// coordinator moved or is loading, or the connection to it broke.
fn retry_on_coordinator(e: &ClientError) -> bool {
    match e {
        ClientError::Kafka { code, .. } => coordinator_moved(*code),
        other => other.is_retriable(),
    }
}

fn kafka_error(conn: &Connection, api: ApiKey, code: KafkaCode, context: String) -> ClientError {
    ClientError::Kafka {
        broker: conn.broker().to_owned(),
        api,
        code,
        context,
    }
}

fn group_context(group: &str, message: Option<&str>) -> String {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!(" for group {group:?} ({m})"),
        None => format!(" for group {group:?}"),
    }
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_owned()))
}

impl Client {
    /// Every group on every broker of the cluster (ListGroups to each
    /// broker, deduplicated, sorted by id). A broker whose coordinator is
    /// still loading is retried a few times; then its error is returned.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let metadata = self.refresh_metadata(Some(&[])).await?;
        let mut groups: BTreeMap<String, GroupListing> = BTreeMap::new();
        for &node in metadata.brokers.keys() {
            let listed = retry(Backoff::default(), LIST_GROUPS_ATTEMPTS, |_| {
                self.list_groups_on(node)
            })
            .await?;
            for g in listed {
                groups.entry(g.group_id.clone()).or_insert(g);
            }
        }
        Ok(groups.into_values().collect())
    }

    async fn list_groups_on(&self, node: i32) -> Result<Vec<GroupListing>> {
        let conn = self.broker_connection(node).await?;
        let version = conn.versions().version_for::<ListGroupsRequest>()?;
        // No state or type filter: every group.
        let response = conn.send(&ListGroupsRequest::default(), version).await?;
        if let Some(code) = KafkaCode::from_code(response.error_code) {
            return Err(kafka_error(&conn, ApiKey::ListGroups, code, String::new()));
        }
        Ok(response
            .groups
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.group_id,
                protocol_type: g.protocol_type,
                state: g.group_state,
            })
            .collect())
    }

    /// The broker coordinating `group` (FindCoordinator, key type 0),
    /// retried while `COORDINATOR_NOT_AVAILABLE` /
    /// `COORDINATOR_LOAD_IN_PROGRESS` / `NOT_COORDINATOR` (or while the
    /// connection fails) with backoff, up to [`COORDINATOR_DEADLINE`].
    /// Returns the coordinator's node id.
    pub async fn group_coordinator(&self, group: &str) -> Result<i32> {
        let deadline = Instant::now() + COORDINATOR_DEADLINE;
        let mut backoff = RetryState::new(Backoff::default());
        loop {
            match self.find_coordinator_once(group).await {
                Ok(node) => return Ok(node),
                Err(e) if retry_on_coordinator(&e) && Instant::now() < deadline => {
                    let delay = backoff.failed();
                    tracing::debug!(group, ?delay, error = %e, "coordinator lookup retried");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn find_coordinator_once(&self, group: &str) -> Result<i32> {
        let conn = self.any_connection().await?;
        let version = conn.versions().version_for::<FindCoordinatorRequest>()?;
        let key = StrBytes::from_string(group.to_owned());
        let request = if version >= FIND_COORDINATOR_BATCHED {
            FindCoordinatorRequest::default()
                .with_key_type(KEY_TYPE_GROUP)
                .with_coordinator_keys(vec![key])
        } else {
            // v0 has no key type field; a group is its only kind there.
            let request = FindCoordinatorRequest::default().with_key(key);
            if version >= 1 {
                request.with_key_type(KEY_TYPE_GROUP)
            } else {
                request
            }
        };
        let response = conn.send(&request, version).await?;
        // Below v4 the one entry answers for our key; from v4 match by key.
        let coordinator = response
            .coordinators
            .into_iter()
            .find(|c| version < FIND_COORDINATOR_BATCHED || c.key == group)
            .ok_or_else(|| ClientError::IncompleteResponse {
                broker: conn.broker().to_owned(),
                api: ApiKey::FindCoordinator,
                missing: format!("a coordinator for group {group:?}"),
            })?;
        if let Some(code) = KafkaCode::from_code(coordinator.error_code) {
            return Err(kafka_error(
                &conn,
                ApiKey::FindCoordinator,
                code,
                group_context(group, coordinator.error_message.as_deref()),
            ));
        }
        Ok(coordinator.node_id)
    }

    /// A connection to `group`'s coordinator. A coordinator missing from
    /// the cached broker list (a broker that joined since) is looked up
    /// after a metadata refresh.
    async fn coordinator_connection(&self, group: &str) -> Result<Connection> {
        let node = self.group_coordinator(group).await?;
        match self.broker_connection(node).await {
            Err(ClientError::UnknownBroker { .. }) => {
                self.refresh_metadata(Some(&[])).await?;
                self.broker_connection(node).await
            }
            other => other,
        }
    }

    /// Runs `op` on `group`'s coordinator, looking the coordinator up again
    /// (with backoff) each time `op` fails because it moved, is loading, or
    /// could not be reached, until [`COORDINATOR_DEADLINE`].
    async fn on_coordinator<T, F, Fut>(&self, group: &str, mut op: F) -> Result<T>
    where
        F: FnMut(Connection) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + COORDINATOR_DEADLINE;
        let mut backoff = RetryState::new(Backoff::default());
        loop {
            let attempt = match self.coordinator_connection(group).await {
                Ok(conn) => op(conn).await,
                Err(e) => Err(e),
            };
            match attempt {
                Ok(v) => return Ok(v),
                Err(e) if retry_on_coordinator(&e) && Instant::now() < deadline => {
                    let delay = backoff.failed();
                    tracing::debug!(group, ?delay, error = %e, "group call retried");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// DescribeGroups on the coordinator. A group that does not exist comes
    /// back with state `Dead` and 0 members (Kafka's answer), not an error:
    /// brokers before Kafka 4 answer so with no error; from DescribeGroups v6
    /// (KIP-1043) the answer also carries `GROUP_ID_NOT_FOUND` (69; seen from
    /// Kafka 4.3.1), which is mapped to the same description.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        self.on_coordinator(group, |conn| async move {
            let version = conn.versions().version_for::<DescribeGroupsRequest>()?;
            let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
            let response = conn.send(&request, version).await?;
            let described = response
                .groups
                .into_iter()
                .find(|g| g.group_id == group)
                .ok_or_else(|| ClientError::IncompleteResponse {
                    broker: conn.broker().to_owned(),
                    api: ApiKey::DescribeGroups,
                    missing: format!("a description of group {group:?}"),
                })?;
            match KafkaCode::from_code(described.error_code) {
                None => Ok(GroupDescription {
                    group_id: described.group_id,
                    state: described.group_state,
                    protocol_type: described.protocol_type,
                    members: described.members.len(),
                }),
                Some(KafkaCode::GROUP_ID_NOT_FOUND) => Ok(GroupDescription {
                    group_id: described.group_id,
                    state: "Dead".to_owned(),
                    protocol_type: String::new(),
                    members: 0,
                }),
                Some(code) => Err(kafka_error(
                    &conn,
                    ApiKey::DescribeGroups,
                    code,
                    group_context(group, described.error_message.as_deref()),
                )),
            }
        })
        .await
    }

    /// Every committed offset of `group` (OffsetFetch on the coordinator,
    /// all topics), as (partition, committed offset, metadata), sorted by
    /// partition; partitions with offset -1 (nothing committed) are left
    /// out. A group with no offsets (or that does not exist) gives an empty
    /// list. A per-partition error code is an error naming the topic and
    /// partition.
    pub async fn fetch_group_offsets(
        &self,
        group: &str,
    ) -> Result<Vec<(TopicPartition, i64, Option<String>)>> {
        self.on_coordinator(group, |conn| async move {
            // v1 cannot ask for all topics (null topics came with v2).
            let ours = VersionRange {
                min: 2,
                max: OffsetFetchRequest::VERSIONS.max,
            };
            let version = conn.versions().pick(ApiKey::OffsetFetch, ours)?;
            let request = if version >= OFFSET_FETCH_BATCHED {
                OffsetFetchRequest::default().with_groups(vec![
                    OffsetFetchRequestGroup::default()
                        .with_group_id(group_id(group))
                        .with_topics(None),
                ])
            } else {
                OffsetFetchRequest::default()
                    .with_group_id(group_id(group))
                    .with_topics(None)
            };
            let response = conn.send(&request, version).await?;
            let answer = response
                .groups
                .into_iter()
                .find(|g| g.group_id.as_deref().is_none_or(|id| id == group))
                .ok_or_else(|| ClientError::IncompleteResponse {
                    broker: conn.broker().to_owned(),
                    api: ApiKey::OffsetFetch,
                    missing: format!("offsets of group {group:?}"),
                })?;
            if let Some(code) = KafkaCode::from_code(answer.error_code) {
                return Err(kafka_error(
                    &conn,
                    ApiKey::OffsetFetch,
                    code,
                    group_context(group, None),
                ));
            }
            let mut offsets = Vec::new();
            for topic in answer.topics {
                let name: Arc<str> = Arc::from(topic.name);
                for p in topic.partitions {
                    if let Some(code) = KafkaCode::from_code(p.error_code) {
                        return Err(kafka_error(
                            &conn,
                            ApiKey::OffsetFetch,
                            code,
                            format!(
                                " for group {group:?} topic {name:?} partition {}",
                                p.partition
                            ),
                        ));
                    }
                    if p.committed_offset >= 0 {
                        offsets.push((
                            TopicPartition::new(Arc::clone(&name), p.partition),
                            p.committed_offset,
                            p.metadata,
                        ));
                    }
                }
            }
            offsets.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(offsets)
        })
        .await
    }

    /// Commits `offsets` for `group` as an admin does (OffsetCommit on the
    /// coordinator with generation -1 and an empty member id, like Kafka's
    /// `AdminClient.alterConsumerGroupOffsets`), with empty metadata and no
    /// leader epoch.
    ///
    /// The broker refuses it while the group has active members: Kafka
    /// 4.3.1 answers `UNKNOWN_MEMBER_ID` (25) on every partition for a
    /// classic group with a live consumer (checked in `tests/groups.rs`;
    /// other broker versions and KIP-848 `consumer` groups are not tested
    /// and may use another code). Any per-partition error code is returned
    /// as [`ClientError::Kafka`] naming the topic and partition. Coordinator moves are retried with a fresh
    /// lookup until [`COORDINATOR_DEADLINE`]; committing the same offsets
    /// twice is harmless.
    pub async fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for (tp, offset) in offsets {
            by_topic
                .entry(&tp.topic)
                .or_default()
                .push((tp.partition, *offset));
        }
        let by_topic = &by_topic;
        self.on_coordinator(group, |conn| async move {
            let version = conn.versions().version_for::<OffsetCommitRequest>()?;
            let topics = by_topic
                .iter()
                .map(|(topic, parts)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string((*topic).to_owned())))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|&(p, offset)| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(-1)
                                        .with_committed_metadata(Some(StrBytes::default()))
                                })
                                .collect(),
                        )
                })
                .collect();
            let request = OffsetCommitRequest::default()
                .with_group_id(group_id(group))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(StrBytes::default())
                .with_retention_time_ms(-1)
                .with_topics(topics);
            let response = conn.send(&request, version).await?;
            // Group-level errors come back on every partition; a moved
            // coordinator is reported first so the whole commit is retried.
            let mut first_error = None;
            let mut answered = 0usize;
            for topic in &response.topics {
                for p in &topic.partitions {
                    answered = answered.saturating_add(1);
                    let Some(code) = KafkaCode::from_code(p.error_code) else {
                        continue;
                    };
                    let error = kafka_error(
                        &conn,
                        ApiKey::OffsetCommit,
                        code,
                        format!(
                            " for group {group:?} topic {:?} partition {}",
                            topic.name, p.partition
                        ),
                    );
                    if coordinator_moved(code) {
                        return Err(error);
                    }
                    first_error.get_or_insert(error);
                }
            }
            if let Some(error) = first_error {
                return Err(error);
            }
            let asked: usize = by_topic.values().map(Vec::len).sum();
            if answered < asked {
                return Err(ClientError::IncompleteResponse {
                    broker: conn.broker().to_owned(),
                    api: ApiKey::OffsetCommit,
                    missing: format!("results for all {asked} partitions of group {group:?}"),
                });
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_moves_are_retried_other_codes_are_not() {
        let kafka = |code| ClientError::Kafka {
            broker: "b:1".into(),
            api: ApiKey::OffsetCommit,
            code,
            context: String::new(),
        };
        for code in [
            KafkaCode::NOT_COORDINATOR,
            KafkaCode::COORDINATOR_LOAD_IN_PROGRESS,
            KafkaCode::COORDINATOR_NOT_AVAILABLE,
        ] {
            assert!(retry_on_coordinator(&kafka(code)));
        }
        for code in [
            KafkaCode::UNKNOWN_MEMBER_ID,
            KafkaCode::ILLEGAL_GENERATION,
            KafkaCode::GROUP_AUTHORIZATION_FAILED,
            // Retriable in Kafka's table, but not a coordinator move: the
            // same commit would fail the same way.
            KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
        ] {
            assert!(!retry_on_coordinator(&kafka(code)));
        }
        assert!(retry_on_coordinator(&ClientError::Closed {
            broker: "b:1".into(),
            mid_frame: false,
        }));
    }
}
