//! Handlers for MM2's connector settings (top level or `A->B.`) and the
//! consumer/producer overrides that become a flow's tuning.

use super::draft::{FlowDraft, strings};
use super::mapping::Lookup;
use super::regex::{list, translate};
use super::report::Verdict;

const DEFAULT_POLICY: &str = "org.apache.kafka.connect.mirror.DefaultReplicationPolicy";
const IDENTITY_POLICY: &str = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy";

/// MM2's `topics.exclude` default (`__.*` is left out: ferry never mirrors
/// internal topics).
pub const MM2_TOPICS_EXCLUDE: &[&str] = &[r".*[\-\.]internal", r".*\.replica"];

/// A list of Java regexes as a ferry list field, or the first that does
/// not translate.
fn regexes(
    f: &mut crate::cmd::import::draft::Table,
    field: &'static str,
    v: &str,
    from: &str,
) -> Verdict {
    let mut out = Vec::new();
    for p in list(v) {
        match translate(&p) {
            Ok(r) => out.push(r),
            Err(e) => return Verdict::unsupported(e),
        }
    }
    f.set(field, strings(&out), from);
    Verdict::mapped(field)
}

pub fn topics(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    regexes(&mut f.main, "topics", v, "topics")
}

pub fn topics_exclude(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    regexes(&mut f.main, "exclude", v, "topics.exclude")
}

pub fn groups(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    prefixed(regexes(&mut f.groups, "include", v, "groups"), "groups.")
}

pub fn groups_exclude(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    prefixed(
        regexes(&mut f.groups, "exclude", v, "groups.exclude"),
        "groups.",
    )
}

pub fn config_exclude(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    regexes(
        &mut f.main,
        "exclude_configs",
        v,
        "config.properties.exclude",
    )
}

fn prefixed(v: Verdict, prefix: &str) -> Verdict {
    match v {
        Verdict::Mapped { to, todo } => Verdict::Mapped {
            to: format!("{prefix}{to}"),
            todo,
        },
        other => other,
    }
}

pub fn policy(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    match v.trim() {
        DEFAULT_POLICY => {
            f.main.remove("naming");
            Verdict::mapped("naming = \"prefix\" (the default)")
        }
        IDENTITY_POLICY => {
            f.main.set("naming", "identity", "replication.policy.class");
            Verdict::mapped("naming = \"identity\"")
        }
        other => Verdict::error(format!(
            "custom replication policy {other}: ferry names target topics `<source alias>.<topic>` \
             (prefix) or keeps the name (identity); choose one, or keep MM2 for this flow"
        )),
    }
}

pub fn separator(f: &mut FlowDraft, v: &str, l: &Lookup<'_>) -> Verdict {
    let identity = l.get("replication.policy.class").map(str::trim) == Some(IDENTITY_POLICY);
    if identity {
        return Verdict::ignored("identity naming adds no prefix, so no separator");
    }
    if v == "." {
        return Verdict::mapped("naming = \"prefix\" (ferry's prefix separator is \".\")");
    }
    let _ = f;
    Verdict::unsupported(format!(
        "ferry's prefix naming always uses \".\": MM2 named topics `{s}{v}orders`, ferry would \
         write `{s}.orders`. To keep existing target topics, rename them, or use identity naming \
         with topics selecting the names you need; otherwise keep MM2 for this flow",
        s = f.source
    ))
}

fn parse_bool(v: &str) -> Result<bool, Verdict> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Verdict::error(format!(
            "{v:?} is not true or false (MM2 would refuse it)"
        ))),
    }
}

fn seconds(v: &str) -> Result<u64, Verdict> {
    v.trim().parse::<u64>().map_err(|_| {
        Verdict::unsupported(format!(
            "{v:?} is not a whole number of seconds; set the ferry field by hand"
        ))
    })
}

/// `n` seconds as a ferry duration within `min..=max` seconds; a value out
/// of range is clamped and said so.
fn duration(
    table: &mut crate::cmd::import::draft::Table,
    field: &'static str,
    v: &str,
    from: &str,
    (min, max): (u64, u64),
    shown: &str,
) -> Verdict {
    let n = match seconds(v) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let clamped = n.clamp(min, max);
    table.set(field, format!("{clamped}s"), from);
    if clamped == n {
        Verdict::mapped(shown)
    } else {
        Verdict::mapped_todo(
            shown,
            format!("{n}s is outside ferry's range {min}s..={max}s: set to {clamped}s"),
        )
    }
}

pub fn sync_groups(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    match parse_bool(v) {
        Ok(true) => {
            f.groups.remove("enabled");
            Verdict::mapped("groups.enabled = true (the default; exact translation)")
        }
        Ok(false) => {
            f.groups.set("enabled", false, "sync.group.offsets.enabled");
            Verdict::mapped("groups.enabled = false")
        }
        Err(e) => e,
    }
}

pub fn sync_groups_interval(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    let from = "sync.group.offsets.interval.seconds";
    duration(
        &mut f.groups,
        "interval",
        v,
        from,
        (1, 3600),
        "groups.interval",
    )
}

pub fn refresh_topics_interval(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    let from = "refresh.topics.interval.seconds";
    duration(
        &mut f.main,
        "discovery_interval",
        v,
        from,
        (1, 86_400),
        "discovery_interval",
    )
}

pub fn refresh_topics_enabled(_: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    match parse_bool(v) {
        Ok(true) => Verdict::ignored("ferry always looks for new topics (discovery_interval)"),
        Ok(false) => Verdict::unsupported(
            "ferry always looks for new topics and partitions; to pin the set, list the topics \
             by name in topics (a long discovery_interval, up to 24h, only delays it)",
        ),
        Err(e) => e,
    }
}

pub fn sync_configs(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    match parse_bool(v) {
        Ok(true) => Verdict::mapped_todo(
            "(default: configs are copied)",
            "ferry copies topic configs when it creates a target topic; later changes on the \
             source are not synced (MM2 re-syncs them periodically): apply them on both clusters",
        ),
        Ok(false) => {
            f.main.set(
                "exclude_configs",
                strings(&[".*".to_owned()]),
                "sync.topic.configs.enabled = false",
            );
            Verdict::mapped("exclude_configs = [\".*\"] (copy no topic configs)")
        }
        Err(e) => e,
    }
}

pub fn sync_acls(_: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    match parse_bool(v) {
        Ok(false) => Verdict::ignored("same as ferry: no ACLs are copied"),
        Ok(true) => Verdict::unsupported(
            "ferry copies no ACLs (MM2 copied literal topic ACLs, ALL downgraded to READ): \
             create the target's ACLs for your consumers yourself",
        ),
        Err(e) => e,
    }
}

/// Settings of a feature that is off when its `*.enabled` is false.
fn unless_disabled(v: &str, l: &Lookup<'_>, enabled_key: &str, unsupported: &str) -> Verdict {
    let enabled = if v.trim().eq_ignore_ascii_case("false") && l.key.ends_with(".enabled") {
        false
    } else {
        l.get(enabled_key)
            .is_none_or(|e| !e.trim().eq_ignore_ascii_case("false"))
    };
    if enabled {
        Verdict::unsupported(unsupported)
    } else {
        Verdict::ignored("the feature is off in MM2 too")
    }
}

pub fn checkpoints(_: &mut FlowDraft, v: &str, l: &Lookup<'_>) -> Verdict {
    unless_disabled(
        v,
        l,
        "emit.checkpoints.enabled",
        "ferry does not write MM2's <source>.checkpoints.internal yet (coming with \
         MM2-compatible outputs); its exact offset map answers `ferry offsets translate`, and \
         group sync commits translated offsets on the target",
    )
}

pub fn heartbeats(_: &mut FlowDraft, v: &str, l: &Lookup<'_>) -> Verdict {
    unless_disabled(
        v,
        l,
        "emit.heartbeats.enabled",
        "ferry does not write MM2's heartbeats topic yet (coming with MM2-compatible outputs); \
         watch replication with ferry's lag metrics and `ferry status` meanwhile",
    )
}

pub fn replication_factor(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    match v.trim().parse::<i64>() {
        Ok(n) if n == -1 || (1..=32767).contains(&n) => {
            f.main.set("replication_factor", n, "replication.factor");
            Verdict::mapped("replication_factor")
        }
        _ => Verdict::error(format!("{v:?}: expected -1 or 1..=32767")),
    }
}

pub fn exactly_once(_: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    if v.trim().eq_ignore_ascii_case("disabled") {
        return Verdict::ignored("off in MM2 too");
    }
    Verdict::unsupported(
        "ferry has no transactional mode: after a clean stop nothing is copied twice, after a \
         crash at most the records since the last checkpoint (docs/guarantees.md); consumers \
         that must not see a duplicate need to deduplicate",
    )
}

pub fn filter_class(_: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    if v.trim()
        .starts_with("org.apache.kafka.connect.mirror.Default")
    {
        Verdict::ignored("MM2's default filter: ferry's topics/exclude lists do the same")
    } else {
        Verdict::unsupported(format!(
            "custom filter {v}: express it as ferry's topic/group/config regex lists"
        ))
    }
}

// ---- consumer overrides (reading from a flow's source) ----

fn bytes(f: &mut FlowDraft, field: &'static str, v: &str, from: &str) -> Verdict {
    match v.trim().parse::<i64>() {
        Ok(n) if n >= 1024 => {
            f.tuning.set(field, n, from);
            Verdict::mapped(format!("tuning.{field}"))
        }
        _ => Verdict::unsupported(format!(
            "{v:?}: ferry needs at least 1024 bytes; set tuning.{field} by hand"
        )),
    }
}

pub fn fetch_max_bytes(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    bytes(f, "fetch_max_bytes", v, "consumer.fetch.max.bytes")
}

pub fn partition_fetch_bytes(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    bytes(
        f,
        "partition_fetch_max_bytes",
        v,
        "consumer.max.partition.fetch.bytes",
    )
}

pub fn fetch_max_wait(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    match v.trim().parse::<u64>() {
        Ok(ms) if ms <= 300_000 => {
            f.tuning.set(
                "fetch_max_wait",
                format!("{ms}ms"),
                "consumer.fetch.max.wait.ms",
            );
            Verdict::mapped("tuning.fetch_max_wait")
        }
        _ => Verdict::unsupported(format!("{v:?}: ferry accepts 0..=300000 ms")),
    }
}

pub fn isolation(_: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    if v.trim().eq_ignore_ascii_case("read_committed") {
        Verdict::ignored("ferry always reads committed data and drops aborted transactions")
    } else {
        Verdict::unsupported(
            "ferry always reads read_committed: aborted records are not copied (MM2 with \
             read_uncommitted copied them)",
        )
    }
}

pub fn offset_reset(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    match v.trim().to_ascii_lowercase().as_str() {
        "earliest" => Verdict::mapped("start = \"earliest\" (the default)"),
        "latest" => {
            f.main.set("start", "latest", "consumer.auto.offset.reset");
            Verdict::mapped("start = \"latest\"")
        }
        other => Verdict::unsupported(format!(
            "{other:?}: ferry starts at earliest, latest or a timestamp"
        )),
    }
}

// ---- producer overrides (writing to a flow's target) ----

pub fn in_flight(f: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    match v.trim().parse::<i64>() {
        Ok(n) if (1..=5).contains(&n) => {
            f.tuning.set(
                "max_in_flight_per_partition",
                n,
                "producer.max.in.flight.requests.per.connection",
            );
            Verdict::mapped("tuning.max_in_flight_per_partition")
        }
        _ => Verdict::ignored(
            "ferry keeps 1..=5 produce requests in flight per partition (default 5) to stay idempotent",
        ),
    }
}

pub fn compression(_: &mut FlowDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    Verdict::unsupported(format!(
        "ferry forwards batches in the source's codec without recompressing; to store {v} on \
         the target, set compression.type = {v} on the target topics (the broker then \
         recompresses)"
    ))
}
