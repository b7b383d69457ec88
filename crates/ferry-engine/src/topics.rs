//! Which source topics a flow mirrors, and what they are called on the target.
//!
//! Selection: include and exclude regex lists (anchored: a pattern must
//! match the whole name, as in MirrorMaker 2's `topics`), and never internal
//! topics (`__consumer_offsets`, `__transaction_state`, anything starting
//! with `__`, and ferry's own). Naming: `prefix` (`<source alias>.<topic>`,
//! the default) or `identity`, or a custom [`TopicNaming`] hook.
//!
//! Loops: with `prefix`, a topic that already carries the *target's* alias
//! as a prefix came from the target, and mirroring it back would start a
//! replication loop; such a topic is refused. A mapping onto the source
//! topic itself (same cluster, identity naming) is refused too.

use std::fmt;
use std::sync::Arc;

use regex::Regex;

/// Prefix of every internal topic ferry creates on a target cluster.
pub const FERRY_INTERNAL_PREFIX: &str = "__ferry";

/// Maps a source topic name to its target name.
pub trait TopicNaming: fmt::Debug + Send + Sync {
    /// The target topic for `topic` of the source cluster `source_alias`.
    fn target_topic(&self, source_alias: &str, topic: &str) -> String;

    /// If `topic` (a name on some cluster) was mirrored from a cluster, that
    /// cluster's alias. Used to refuse loops.
    fn origin_alias<'a>(&self, topic: &'a str) -> Option<&'a str>;

    /// If `topic` was mirrored, its name on the cluster it came from (which
    /// may itself be a mirror): lets loop detection walk a whole chain.
    fn upstream_topic<'a>(&self, _topic: &'a str) -> Option<&'a str> {
        None
    }
}

/// `<source alias>.<topic>` (MirrorMaker 2's default policy, with `.`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixNaming;

impl TopicNaming for PrefixNaming {
    fn target_topic(&self, source_alias: &str, topic: &str) -> String {
        format!("{source_alias}.{topic}")
    }

    fn origin_alias<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic.split_once('.').map(|(alias, _)| alias)
    }

    fn upstream_topic<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic.split_once('.').map(|(_, rest)| rest)
    }
}

/// Same name on the target. Cannot see loops by name: never run a reverse
/// flow with it (the config check refuses a flow pair that would loop).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdentityNaming;

impl TopicNaming for IdentityNaming {
    fn target_topic(&self, _source_alias: &str, topic: &str) -> String {
        topic.to_owned()
    }

    fn origin_alias<'a>(&self, _topic: &'a str) -> Option<&'a str> {
        None
    }
}

/// Why a source topic is not mirrored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Kafka's or ferry's internal topic.
    Internal,
    /// Matched no include pattern.
    NotIncluded,
    /// Matched an exclude pattern (the pattern).
    Excluded(String),
    /// Would come back to the cluster it was mirrored from (`origin` alias).
    Loop { origin: String },
    /// Would map onto itself on the same cluster.
    SelfMapping,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Internal => f.write_str("internal topic"),
            Self::NotIncluded => f.write_str("matches no include pattern"),
            Self::Excluded(p) => write!(f, "matches exclude pattern {p:?}"),
            Self::Loop { origin } => write!(
                f,
                "was mirrored from cluster {origin:?}; mirroring it back would loop"
            ),
            Self::SelfMapping => f.write_str("would be mirrored onto itself"),
        }
    }
}

/// The topic policy of one flow.
#[derive(Debug, Clone)]
pub struct TopicPolicy {
    source_alias: String,
    target_alias: String,
    same_cluster: bool,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    naming: Arc<dyn TopicNaming>,
}

impl TopicPolicy {
    /// `include`/`exclude` are anchored regexes (compiled here; an invalid one
    /// is an error naming it). `same_cluster` is true when source and target
    /// are the same cluster (only then can a mapping land on its own source).
    pub fn new(
        source_alias: &str,
        target_alias: &str,
        same_cluster: bool,
        include: &[String],
        exclude: &[String],
        naming: Arc<dyn TopicNaming>,
    ) -> Result<Self, regex::Error> {
        let compile = |p: &String| Regex::new(&format!("^(?:{p})$"));
        Ok(Self {
            source_alias: source_alias.to_owned(),
            target_alias: target_alias.to_owned(),
            same_cluster,
            include: include.iter().map(compile).collect::<Result<_, _>>()?,
            exclude: exclude.iter().map(compile).collect::<Result<_, _>>()?,
            naming,
        })
    }

    /// The same policy with another naming (the embedding hook).
    pub fn with_naming(mut self, naming: Arc<dyn TopicNaming>) -> Self {
        self.naming = naming;
        self
    }

    /// The target name of `topic`, or why it is not mirrored.
    pub fn map(&self, topic: &str) -> Result<String, Refusal> {
        if topic.starts_with("__") || topic.starts_with(FERRY_INTERNAL_PREFIX) {
            return Err(Refusal::Internal);
        }
        if !self.include.iter().any(|r| r.is_match(topic)) {
            return Err(Refusal::NotIncluded);
        }
        if let Some(r) = self.exclude.iter().find(|r| r.is_match(topic)) {
            let pattern = r.as_str();
            let inner = pattern
                .strip_prefix("^(?:")
                .and_then(|p| p.strip_suffix(")$"))
                .unwrap_or(pattern);
            return Err(Refusal::Excluded(inner.to_owned()));
        }
        // Walk the whole chain (`west.north.orders` came from north via west):
        // any hop through the target means the topic would come back to it.
        let mut hop = Some(topic);
        while let Some(name) = hop {
            let Some(origin) = self.naming.origin_alias(name) else {
                break;
            };
            if origin == self.target_alias {
                return Err(Refusal::Loop {
                    origin: origin.to_owned(),
                });
            }
            hop = self.naming.upstream_topic(name);
        }
        let target = self.naming.target_topic(&self.source_alias, topic);
        if self.same_cluster && target == topic {
            return Err(Refusal::SelfMapping);
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(include: &[&str], exclude: &[&str], naming: Arc<dyn TopicNaming>) -> TopicPolicy {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        TopicPolicy::new("east", "west", false, &s(include), &s(exclude), naming).unwrap()
    }

    #[test]
    fn prefix_naming_and_selection() {
        let p = policy(
            &["orders.*", "payments"],
            &["orders-tmp.*"],
            Arc::new(PrefixNaming),
        );
        assert_eq!(p.map("orders").unwrap(), "east.orders");
        assert_eq!(p.map("payments").unwrap(), "east.payments");
        assert_eq!(
            p.map("payments-v2"),
            Err(Refusal::NotIncluded),
            "patterns are anchored"
        );
        assert_eq!(
            p.map("orders-tmp-1"),
            Err(Refusal::Excluded("orders-tmp.*".into()))
        );
        assert_eq!(p.map("__consumer_offsets"), Err(Refusal::Internal));
        assert_eq!(p.map("__transaction_state"), Err(Refusal::Internal));
        assert_eq!(p.map("__ferry_checkpoints"), Err(Refusal::Internal));
    }

    #[test]
    fn topics_from_the_target_are_refused_as_loops() {
        let p = policy(&[".*"], &[], Arc::new(PrefixNaming));
        assert_eq!(
            p.map("west.orders"),
            Err(Refusal::Loop {
                origin: "west".into()
            })
        );
        // From a third cluster: allowed, and prefixed again.
        assert_eq!(p.map("north.orders").unwrap(), "east.north.orders");
        // Through the target further up the chain: a loop all the same.
        assert_eq!(
            p.map("north.west.orders"),
            Err(Refusal::Loop {
                origin: "west".into()
            })
        );
    }

    #[test]
    fn identity_onto_the_same_cluster_is_refused() {
        let p = TopicPolicy::new(
            "a",
            "a2",
            true,
            &[".*".into()],
            &[],
            Arc::new(IdentityNaming),
        )
        .unwrap();
        assert_eq!(p.map("orders"), Err(Refusal::SelfMapping));
        let other = policy(&[".*"], &[], Arc::new(IdentityNaming));
        assert_eq!(other.map("orders").unwrap(), "orders");
    }

    #[test]
    fn invalid_patterns_are_errors() {
        assert!(
            TopicPolicy::new("a", "b", false, &["(".into()], &[], Arc::new(PrefixNaming)).is_err()
        );
    }
}
