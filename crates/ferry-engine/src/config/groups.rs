//! `[flows.groups]`: consumer-group offset sync of one flow.

use std::time::Duration;

use serde::Deserialize;

use super::units::deserialize_duration;

/// Groups whose ids match these are never synced by default: console
/// consumers, Kafka Connect's own groups, and internal groups (as MM2).
pub const DEFAULT_EXCLUDE_GROUPS: &[&str] = &["console-consumer-.*", "connect-.*", "__.*"];

/// `[flows.groups]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GroupSync {
    /// Copy committed offsets of source consumer groups to the target,
    /// translated exactly. Default `true`.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Group ids to sync: whole-id regexes. Default `[".*"]`.
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Group ids never synced (whole-id regexes). Default
    /// [`DEFAULT_EXCLUDE_GROUPS`]; setting it replaces the default list.
    #[serde(default = "default_exclude")]
    pub exclude: Vec<String>,
    /// How often offsets are synced. Default `5s`, range 1s..=1h.
    #[serde(
        default = "default_interval",
        deserialize_with = "deserialize_duration"
    )]
    pub interval: Duration,
}

fn default_enabled() -> bool {
    true
}

fn default_include() -> Vec<String> {
    vec![".*".to_owned()]
}

fn default_exclude() -> Vec<String> {
    DEFAULT_EXCLUDE_GROUPS
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}

impl Default for GroupSync {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            include: default_include(),
            exclude: default_exclude(),
            interval: default_interval(),
        }
    }
}
