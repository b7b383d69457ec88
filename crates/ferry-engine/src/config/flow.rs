//! `[[flows]]`: what one replication flow copies from a source cluster to a
//! target cluster, and how.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ferry_client::FetchOptions;
use regex::Regex;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::batching::Batching;
use super::groups::GroupSync;
use super::units::{ByteSize, Timestamp, deserialize_duration, format_duration};
use crate::plan::PlanConfig;
use crate::topics::{IdentityNaming, PrefixNaming, TopicNaming, TopicPolicy};

/// Topic configs not copied to the target by default (anchored regexes).
///
/// MirrorMaker 2's `DefaultConfigPropertyFilter` list (Kafka 4.3.1), for the
/// same reasons, except that MM2 names the broker configs
/// `log.message.timestamp.{before,after}.max.ms`, which match no topic
/// config; ferry names the topic configs. Plus `remote.storage.enable`.
///
/// - `follower/leader.replication.throttled.replicas`: lists of the source
///   cluster's broker ids, meaningless (or harmful) on the target.
/// - `message.timestamp.(difference|before|after).max.ms`: mirrored records
///   keep their original timestamps, which are old by design; a copied bound
///   would make the target refuse them.
/// - `message.timestamp.type`: with `LogAppendTime` on the target, the broker
///   would overwrite every mirrored timestamp (ferry turns the source's
///   append times into record timestamps instead).
/// - `unclean.leader.election.enable`, `min.insync.replicas`: durability is
///   the target operator's policy, and `min.insync.replicas` must fit the
///   target's replication factor, not the source's.
/// - `remote.storage.enable`: a target without tiered storage refuses to
///   create the topic.
pub const DEFAULT_EXCLUDE_CONFIGS: &[&str] = &[
    r"follower\.replication\.throttled\.replicas",
    r"leader\.replication\.throttled\.replicas",
    r"message\.timestamp\.difference\.max\.ms",
    r"message\.timestamp\.before\.max\.ms",
    r"message\.timestamp\.after\.max\.ms",
    r"message\.timestamp\.type",
    r"unclean\.leader\.election\.enable",
    r"min\.insync\.replicas",
    r"remote\.storage\.enable",
];

/// One replication flow: topics of the `source` cluster copied to the
/// `target` cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FlowConfig {
    /// Unique name of the flow (in logs, metrics and checkpoints); letters,
    /// digits, `.`, `_`, `-`. Default `"<source>-to-<target>"`.
    #[serde(default, deserialize_with = "deserialize_name")]
    pub name: String,
    /// Alias of the cluster to read from. Required.
    pub source: String,
    /// Alias of the cluster to write to. Required; not the source's alias.
    pub target: String,
    /// Source topics to mirror: regexes that must match the whole topic
    /// name. Default `[".*"]` (every topic). Internal topics (`__*`) are
    /// never mirrored.
    #[serde(default = "default_topics")]
    pub topics: Vec<String>,
    /// Source topics not to mirror even if `topics` selects them (whole-name
    /// regexes). Default `[]`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Target topic names. Default `prefix`.
    #[serde(default)]
    pub naming: Naming,
    /// Where a partition starts when ferry has no checkpoint for it. Default
    /// `earliest`. It applies only to the partitions that exist when the
    /// flow is first started (the flow has no checkpoint at all yet); a
    /// topic or partition that appears later, or has no checkpoint in a flow
    /// that has some, is mirrored from its beginning, so its first records
    /// are never skipped.
    #[serde(default)]
    pub start: StartPosition,
    /// How often the source is asked for new topics and partitions; a new
    /// one is mirrored within this interval. Default `30s`, range 1s..=24h.
    #[serde(
        default = "default_discovery_interval",
        deserialize_with = "deserialize_duration"
    )]
    pub discovery_interval: Duration,
    /// Topic configs not copied to the target (whole-name regexes). Default
    /// [`DEFAULT_EXCLUDE_CONFIGS`]. Setting it replaces the default list.
    #[serde(default = "default_exclude_configs")]
    pub exclude_configs: Vec<String>,
    /// Replication factor of topics ferry creates on the target; `-1` uses
    /// the target broker's `default.replication.factor`. Default `-1`;
    /// otherwise 1..=32767.
    #[serde(
        default = "default_replication_factor",
        deserialize_with = "deserialize_replication_factor"
    )]
    pub replication_factor: i16,
    /// Throughput and memory settings.
    #[serde(default)]
    pub tuning: Tuning,
    /// Consumer-group offset sync (`[flows.groups]`).
    #[serde(default)]
    pub groups: GroupSync,
    /// Merging of small batches (`[flows.batching]`; off by default).
    #[serde(default)]
    pub batching: Batching,
}

fn default_topics() -> Vec<String> {
    vec![".*".to_owned()]
}

fn default_discovery_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_exclude_configs() -> Vec<String> {
    DEFAULT_EXCLUDE_CONFIGS
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

fn default_replication_factor() -> i16 {
    -1
}

/// The default name of a flow from `source` to `target`.
pub fn default_flow_name(source: &str, target: &str) -> String {
    format!("{source}-to-{target}")
}

fn deserialize_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    if name.is_empty() {
        return Err(de::Error::custom(
            "must not be empty (leave it out for the default \"<source>-to-<target>\")",
        ));
    }
    Ok(name)
}

fn deserialize_replication_factor<'de, D: Deserializer<'de>>(d: D) -> Result<i16, D::Error> {
    let n = i64::deserialize(d)?;
    match i16::try_from(n) {
        Ok(rf) if rf == -1 || rf >= 1 => Ok(rf),
        _ => Err(de::Error::custom(format!(
            "must be -1 (the target broker's default) or between 1 and 32767, got {n}"
        ))),
    }
}

impl FlowConfig {
    /// A flow of every topic from `source` to `target`, every other setting
    /// at its default.
    pub fn new(source: impl Into<String>, target: impl Into<String>) -> Self {
        let (source, target) = (source.into(), target.into());
        Self {
            name: default_flow_name(&source, &target),
            source,
            target,
            topics: default_topics(),
            exclude: Vec::new(),
            naming: Naming::default(),
            start: StartPosition::default(),
            discovery_interval: default_discovery_interval(),
            exclude_configs: default_exclude_configs(),
            replication_factor: default_replication_factor(),
            tuning: Tuning::default(),
            groups: GroupSync::default(),
            batching: Batching::default(),
        }
    }

    /// The flow's topic selection and naming. `same_cluster`: source and
    /// target are the same cluster under two aliases (compare cluster ids).
    /// Cannot fail for a validated config.
    pub fn topic_policy(&self, same_cluster: bool) -> Result<TopicPolicy, regex::Error> {
        TopicPolicy::new(
            &self.source,
            &self.target,
            same_cluster,
            &self.topics,
            &self.exclude,
            self.naming.topic_naming(),
        )
    }

    /// Which topic configs are copied. Cannot fail for a validated config.
    pub fn config_filter(&self) -> Result<ConfigFilter, regex::Error> {
        Ok(ConfigFilter {
            exclude: self
                .exclude_configs
                .iter()
                .map(|p| anchored(p))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A whole-name regex, anchored the way [`TopicPolicy`] anchors patterns.
pub(crate) fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// The compiled `exclude_configs` of a flow.
#[derive(Debug, Clone)]
pub struct ConfigFilter {
    exclude: Vec<Regex>,
}

impl ConfigFilter {
    /// Whether the topic config `name` is copied to the target.
    pub fn copies(&self, name: &str) -> bool {
        !self.exclude.iter().any(|r| r.is_match(name))
    }
}

/// How target topics are named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Naming {
    /// `<source alias>.<topic>` (MirrorMaker 2's default): topics from
    /// different sources never collide, and a topic that came from the
    /// target is recognized and not mirrored back.
    #[default]
    Prefix,
    /// The source topic's name. For migrations and one-way aggregation; a
    /// flow pair that could send topics back is refused.
    Identity,
}

impl Naming {
    /// The naming policy of the topic layer.
    pub fn topic_naming(self) -> Arc<dyn TopicNaming> {
        match self {
            Self::Prefix => Arc::new(PrefixNaming),
            Self::Identity => Arc::new(IdentityNaming),
        }
    }
}

impl fmt::Display for Naming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Prefix => "prefix",
            Self::Identity => "identity",
        })
    }
}

/// Where a source partition starts when ferry has no checkpoint for it.
/// Written `"earliest"`, `"latest"` or `{ timestamp = "2026-11-20T10:00:00Z" }`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record still in the partition.
    #[default]
    Earliest,
    /// Only records produced after ferry starts.
    Latest,
    /// The first record with a timestamp at or after this one (as Kafka's
    /// ListOffsets finds it); the end of the partition if there is none.
    Timestamp(Timestamp),
}

impl fmt::Display for StartPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Earliest => f.write_str("earliest"),
            Self::Latest => f.write_str("latest"),
            Self::Timestamp(t) => write!(f, "timestamp {t}"),
        }
    }
}

impl<'de> Deserialize<'de> for StartPosition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const EXPECTED: &str =
            "\"earliest\", \"latest\" or { timestamp = \"2026-11-20T10:00:00Z\" }";
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StartPosition;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StartPosition, E> {
                match v {
                    "earliest" => Ok(StartPosition::Earliest),
                    "latest" => Ok(StartPosition::Latest),
                    _ => Err(E::custom(format!("expected {EXPECTED}, got {v:?}"))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StartPosition, A::Error> {
                let mut timestamp = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "timestamp" {
                        return Err(de::Error::custom(format!(
                            "unknown field `{key}`, expected `timestamp`"
                        )));
                    }
                    if timestamp.is_some() {
                        return Err(de::Error::custom("duplicate field `timestamp`"));
                    }
                    // A string, or a bare TOML datetime (`timestamp = 2026-11-20T10:00:00Z`).
                    let t = match map.next_value::<toml::Value>()? {
                        toml::Value::String(s) => s.parse().map_err(de::Error::custom)?,
                        toml::Value::Datetime(dt) => {
                            Timestamp::from_toml(&dt, &dt.to_string()).map_err(de::Error::custom)?
                        }
                        other => {
                            return Err(de::Error::custom(format!(
                                "timestamp: expected an RFC 3339 string such as \
                                 \"2026-11-20T10:00:00Z\", got a {}",
                                other.type_str()
                            )));
                        }
                    };
                    timestamp = Some(t);
                }
                timestamp
                    .map(StartPosition::Timestamp)
                    .ok_or_else(|| de::Error::custom("missing field `timestamp`"))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[flows.tuning]`: throughput and memory settings of one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Tuning {
    /// Most fetched-but-not-yet-acknowledged bytes the flow holds: each
    /// Fetch response is charged from before it is requested until the
    /// target acknowledged its last batch; fetching waits when it is spent.
    /// Default `64MiB`, range 1MiB..=1TiB; at least `fetch_max_bytes`, so a
    /// full-size fetch fits.
    #[serde(default = "default_memory_budget")]
    pub memory_budget: ByteSize,
    /// Upper bound of one Fetch response (Kafka's `fetch.max.bytes`).
    /// Default `50MiB`, range 1KiB..=2GiB-1; below the source cluster's
    /// `max_frame_size`.
    #[serde(default = "default_fetch_max_bytes")]
    pub fetch_max_bytes: ByteSize,
    /// Upper bound of one partition's data in a Fetch response (Kafka's
    /// `max.partition.fetch.bytes`). Default `1MiB`, range 1KiB..=`fetch_max_bytes`.
    #[serde(default = "default_partition_fetch_max_bytes")]
    pub partition_fetch_max_bytes: ByteSize,
    /// How long a broker may hold a Fetch while waiting for data (Kafka's
    /// `fetch.max.wait.ms`). Default `500ms`, range 0s..=5m; shorter than the
    /// source cluster's `request_timeout`.
    #[serde(
        default = "default_fetch_max_wait",
        deserialize_with = "deserialize_duration"
    )]
    pub fetch_max_wait: Duration,
    /// Produce requests in flight per target partition. Default 5, range
    /// 1..=5: the idempotent producer keeps order only up to 5.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight_per_partition: u32,
    /// Check every source batch's CRC-32C before forwarding it. Default
    /// `true`; a corrupt batch stops its partition either way, since the
    /// patched CRC stays wrong and the target broker refuses it.
    #[serde(default = "default_verify_crc")]
    pub verify_crc: bool,
    /// How often positions are checkpointed to the target. Default `5s`,
    /// range 100ms..=1h. After a crash, at most this much is copied again.
    #[serde(
        default = "default_checkpoint_interval",
        deserialize_with = "deserialize_duration"
    )]
    pub checkpoint_interval: Duration,
}

fn default_memory_budget() -> ByteSize {
    ByteSize::mib(64)
}

fn default_fetch_max_bytes() -> ByteSize {
    ByteSize::mib(50)
}

fn default_partition_fetch_max_bytes() -> ByteSize {
    ByteSize::mib(1)
}

fn default_fetch_max_wait() -> Duration {
    Duration::from_millis(500)
}

fn default_max_in_flight() -> u32 {
    5
}

fn default_verify_crc() -> bool {
    true
}

fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(5)
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            memory_budget: default_memory_budget(),
            fetch_max_bytes: default_fetch_max_bytes(),
            partition_fetch_max_bytes: default_partition_fetch_max_bytes(),
            fetch_max_wait: default_fetch_max_wait(),
            max_in_flight_per_partition: default_max_in_flight(),
            verify_crc: default_verify_crc(),
            checkpoint_interval: default_checkpoint_interval(),
        }
    }
}

impl Tuning {
    /// Fetch settings for the flow's source partitions (read_committed,
    /// Kafka's `fetch.min.bytes` default of 1).
    pub fn fetch_options(&self) -> FetchOptions {
        // Validated sizes fit an i32, so they fit a u32.
        let to_u32 = |b: ByteSize| u32::try_from(b.bytes()).unwrap_or(u32::MAX);
        FetchOptions {
            max_wait: self.fetch_max_wait,
            max_bytes: to_u32(self.fetch_max_bytes),
            partition_max_bytes: to_u32(self.partition_fetch_max_bytes),
            ..FetchOptions::default()
        }
    }

    /// The per-batch plan settings this tuning implies; the target topic's
    /// `max.message.bytes` is the caller's to fill in.
    pub fn plan_config(&self) -> PlanConfig {
        PlanConfig {
            verify_crc: self.verify_crc,
            ..PlanConfig::default()
        }
    }
}

impl fmt::Display for Tuning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memory budget {}, fetch {} ({} per partition, wait {}), {} in flight per partition, \
             CRC {}, checkpoint every {}",
            self.memory_budget,
            self.fetch_max_bytes,
            self.partition_fetch_max_bytes,
            format_duration(self.fetch_max_wait),
            self.max_in_flight_per_partition,
            if self.verify_crc {
                "verified"
            } else {
                "not verified"
            },
            format_duration(self.checkpoint_interval)
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn default_config_filter_matches_mirrormaker_and_more() {
        let f = FlowConfig::new("a", "b").config_filter().unwrap();
        for excluded in [
            "follower.replication.throttled.replicas",
            "leader.replication.throttled.replicas",
            "message.timestamp.difference.max.ms",
            "message.timestamp.before.max.ms",
            "message.timestamp.type",
            "min.insync.replicas",
            "unclean.leader.election.enable",
            "remote.storage.enable",
        ] {
            assert!(!f.copies(excluded), "{excluded}");
        }
        for copied in [
            "cleanup.policy",
            "retention.ms",
            "max.message.bytes",
            "compression.type",
            // anchored: a pattern does not match inside a longer name
            "min.insync.replicas.extra",
        ] {
            assert!(f.copies(copied), "{copied}");
        }
    }

    #[test]
    fn derived_client_settings() {
        let t = Tuning {
            fetch_max_wait: Duration::from_millis(100),
            verify_crc: false,
            ..Tuning::default()
        };
        let o = t.fetch_options();
        assert_eq!(o.max_wait, Duration::from_millis(100));
        assert_eq!(o.max_bytes, 50 << 20);
        assert_eq!(o.partition_max_bytes, 1 << 20);
        assert!(!t.plan_config().verify_crc);
        let flow = FlowConfig::new("east", "west");
        assert_eq!(flow.name, "east-to-west");
        let p = flow.topic_policy(false).unwrap();
        assert_eq!(p.map("orders").unwrap(), "east.orders");
    }
}
