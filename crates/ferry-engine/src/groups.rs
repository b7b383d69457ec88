//! Consumer groups follow the data: committed offsets of source groups are
//! translated with the exact offset map and committed to the same groups on
//! the target, so consumers that move over continue exactly where they
//! stopped.
//!
//! Rules (per flow, every `[flows.groups] interval`):
//! - groups are selected by id (`include` / `exclude` regexes); only their
//!   offsets for partitions this flow mirrors are synced;
//! - a group with active members on the target is left alone (its
//!   consumers own their offsets there);
//! - a target offset never moves backwards: a translation behind what the
//!   target group already committed is skipped;
//! - each synced offset is also recorded in the compacted topic
//!   `__ferry_group_offsets` on the target (the equivalent of MM2's
//!   `<alias>.checkpoints.internal`), JSON so any tool can read it:
//!
//! ```text
//! key   {"flow":"east-to-west","group":"billing","topic":"orders","partition":3}
//! value {"source_offset":1200,"target_topic":"east.orders","target_offset":1187,"time_ms":1764170000000}
//! ```

use std::collections::HashMap;

use ferry_client::{Client, ClientError, TopicPartition};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::compacted::{self, StoreError};
use crate::config::GroupSync;

/// The group-offset checkpoint topic on every target cluster.
pub const GROUP_OFFSETS_TOPIC: &str = "__ferry_group_offsets";

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupOffsetKey {
    pub flow: String,
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupOffsetValue {
    pub source_offset: i64,
    pub target_topic: String,
    pub target_offset: i64,
    pub time_ms: i64,
}

/// One offset to commit: `source` is where it was read (the flow's target
/// when syncing back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCommit {
    pub source: TopicPartition,
    pub source_offset: i64,
    pub target: TopicPartition,
    pub target_offset: i64,
}

/// Which group ids a flow syncs.
#[derive(Debug, Clone)]
pub struct GroupFilter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl GroupFilter {
    /// Whole-id regexes from the config (validated already).
    pub fn new(config: &GroupSync) -> Result<Self, regex::Error> {
        let anchored = |p: &String| Regex::new(&format!("^(?:{p})$"));
        Ok(Self {
            include: config
                .include
                .iter()
                .map(anchored)
                .collect::<Result<_, _>>()?,
            exclude: config
                .exclude
                .iter()
                .map(anchored)
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn matches(&self, group: &str) -> bool {
        self.include.iter().any(|r| r.is_match(group))
            && !self.exclude.iter().any(|r| r.is_match(group))
    }
}

/// What to commit for one group: each source offset translated, skipping
/// partitions the flow does not map and offsets that would move the target
/// group backwards.
pub fn plan_group(
    source_offsets: &[(TopicPartition, i64)],
    translate: impl Fn(&TopicPartition, i64) -> Option<(TopicPartition, i64)>,
    target_committed: &HashMap<TopicPartition, i64>,
) -> Vec<GroupCommit> {
    source_offsets
        .iter()
        .filter_map(|(source, offset)| {
            let (target, target_offset) = translate(source, *offset)?;
            let behind = target_committed
                .get(&target)
                .is_some_and(|committed| *committed >= target_offset);
            (!behind).then(|| GroupCommit {
                source: source.clone(),
                source_offset: *offset,
                target,
                target_offset,
            })
        })
        .collect()
}

/// Why a group was not synced, or what was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOutcome {
    /// Offsets committed on the target (possibly none: nothing new).
    Synced(Vec<GroupCommit>),
    /// The group has active members on the target.
    Active { members: usize },
}

/// Syncs one group now: reads its committed offsets on `source`, plans with
/// `translate`, commits on `target` and records the checkpoints.
pub async fn sync_group(
    flow: &str,
    group: &str,
    (source, target): (&Client, &Client),
    translate: impl Fn(&TopicPartition, i64) -> Option<(TopicPartition, i64)>,
    time_ms: i64,
) -> Result<GroupOutcome, GroupSyncError> {
    let outcome =
        commit_translated(group, (source, "source"), (target, "target"), translate).await?;
    let GroupOutcome::Synced(commits) = &outcome else {
        return Ok(outcome);
    };
    if commits.is_empty() {
        return Ok(outcome);
    }
    let records: Vec<(GroupOffsetKey, Option<GroupOffsetValue>)> = commits
        .iter()
        .map(|c| {
            (
                GroupOffsetKey {
                    flow: flow.to_owned(),
                    group: group.to_owned(),
                    topic: c.source.topic.to_string(),
                    partition: c.source.partition,
                },
                Some(GroupOffsetValue {
                    source_offset: c.source_offset,
                    target_topic: c.target.topic.to_string(),
                    target_offset: c.target_offset,
                    time_ms,
                }),
            )
        })
        .collect();
    let batches = compacted::encode(GROUP_OFFSETS_TOPIC, &records)?;
    compacted::write(target, GROUP_OFFSETS_TOPIC, batches).await?;
    Ok(outcome)
}

/// Reads `group`'s committed offsets on `from`, plans with `translate` and
/// commits on `to` (each named "source" or "target" in errors), unless the
/// group has active members on `to`. Used both ways: source → target
/// ([`sync_group`]) and, at failback, target → source.
pub async fn commit_translated(
    group: &str,
    (from, from_name): (&Client, &'static str),
    (to, to_name): (&Client, &'static str),
    translate: impl Fn(&TopicPartition, i64) -> Option<(TopicPartition, i64)>,
) -> Result<GroupOutcome, GroupSyncError> {
    let err = |cluster: &'static str| {
        let group = group.to_owned();
        move |source: ClientError| GroupSyncError::Client {
            group: group.clone(),
            cluster,
            source,
        }
    };
    let described = to.describe_group(group).await.map_err(err(to_name))?;
    if described.members > 0 {
        return Ok(GroupOutcome::Active {
            members: described.members,
        });
    }
    let committed: Vec<(TopicPartition, i64)> = from
        .fetch_group_offsets(group)
        .await
        .map_err(err(from_name))?
        .into_iter()
        .map(|(tp, offset, _)| (tp, offset))
        .collect();
    let on_target: HashMap<TopicPartition, i64> = to
        .fetch_group_offsets(group)
        .await
        .map_err(err(to_name))?
        .into_iter()
        .map(|(tp, offset, _)| (tp, offset))
        .collect();
    let commits = plan_group(&committed, translate, &on_target);
    if commits.is_empty() {
        return Ok(GroupOutcome::Synced(commits));
    }
    let offsets: Vec<(TopicPartition, i64)> = commits
        .iter()
        .map(|c| (c.target.clone(), c.target_offset))
        .collect();
    to.commit_group_offsets(group, &offsets)
        .await
        .map_err(err(to_name))?;
    Ok(GroupOutcome::Synced(commits))
}

/// Creates the group-offset checkpoint topic if it does not exist.
pub async fn ensure_topic(target: &Client) -> Result<(), StoreError> {
    compacted::ensure(target, GROUP_OFFSETS_TOPIC).await
}

/// Groups on `source` that `filter` selects (consumer groups only).
pub async fn selected_groups(
    source: &Client,
    filter: &GroupFilter,
) -> Result<Vec<String>, GroupSyncError> {
    let groups = source
        .list_groups()
        .await
        .map_err(|source| GroupSyncError::Client {
            group: "(listing groups)".into(),
            cluster: "source",
            source,
        })?;
    Ok(groups
        .into_iter()
        .filter(|g| g.protocol_type == "consumer" || g.protocol_type.is_empty())
        .map(|g| g.group_id)
        .filter(|id| filter.matches(id))
        .collect())
}

/// Failures of a group sync.
#[derive(Debug, thiserror::Error)]
pub enum GroupSyncError {
    #[error("group {group:?} on the {cluster} cluster: {source}")]
    Client {
        group: String,
        cluster: &'static str,
        source: ClientError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::offset_map::OffsetMap;

    #[test]
    fn offsets_translate_exactly_and_never_move_backwards() {
        let mut map = OffsetMap::new();
        map.record(0, 0, 5).unwrap();
        map.record(9, 5, 10).unwrap(); // 5..9 aborted + marker
        let translate = |tp: &TopicPartition, s: i64| {
            if tp.topic.as_ref() != "orders" {
                return None;
            }
            Some((
                TopicPartition::new("east.orders", tp.partition),
                map.translate(s)?,
            ))
        };
        let source = vec![
            (TopicPartition::new("orders", 0), 7), // inside the aborted range
            (TopicPartition::new("orders", 1), 12), // exact inside a run
            (TopicPartition::new("payments", 0), 3), // not mirrored by this flow
        ];
        let mut on_target = HashMap::new();
        on_target.insert(TopicPartition::new("east.orders", 1), 20); // ahead already
        let commits = plan_group(&source, translate, &on_target);
        assert_eq!(
            commits,
            vec![GroupCommit {
                source: TopicPartition::new("orders", 0),
                source_offset: 7,
                target: TopicPartition::new("east.orders", 0),
                target_offset: 5,
            }]
        );
    }

    #[test]
    fn filter_defaults_skip_console_connect_and_internal_groups() {
        let f = GroupFilter::new(&GroupSync::default()).unwrap();
        assert!(f.matches("billing"));
        assert!(!f.matches("console-consumer-4711"));
        assert!(!f.matches("connect-mirror"));
        assert!(!f.matches("__ferry"));
    }
}
