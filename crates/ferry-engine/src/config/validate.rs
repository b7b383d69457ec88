//! Ranges of every field and the checks across fields: flows name existing
//! clusters, names are unique, regexes compile, tuning fits the cluster's
//! limits, and no set of flows forms a replication loop.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::cluster::check_address;
use super::flow::anchored;
use super::units::{ByteSize, format_duration};
use super::{Config, FlowConfig, Naming, Problem};

/// Longest cluster alias: it prefixes topic names, which Kafka caps at 249.
const MAX_ALIAS_LEN: usize = 64;
/// Longest flow name.
const MAX_FLOW_NAME_LEN: usize = 200;
/// Kafka frames and Fetch size fields are int32; stay clear of the edge.
const MAX_WIRE_SIZE: ByteSize = ByteSize::mib(2047);

pub(super) fn problems(config: &Config) -> Vec<Problem> {
    let mut p = Vec::new();
    if config.clusters.is_empty() {
        p.push(Problem::new(
            "clusters",
            "at least one cluster is required ([clusters.<alias>] with bootstrap_servers)",
        ));
    }
    for (alias, cluster) in &config.clusters {
        check_cluster(alias, cluster, &mut p);
    }
    if config.flows.is_empty() {
        p.push(Problem::new(
            "flows",
            "at least one flow is required ([[flows]] with source and target)",
        ));
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, flow) in config.flows.iter().enumerate() {
        check_flow(config, i, flow, &mut p);
        if let Some(first) = names.insert(flow.name.as_str(), i) {
            // Keep the first index for later duplicates' messages.
            names.insert(flow.name.as_str(), first);
            p.push(Problem::new(
                format!("flows[{i}].name"),
                format!(
                    "{:?} is already the name of flows[{first}]; flow names must be unique \
                     (flows between the same clusters need explicit names)",
                    flow.name
                ),
            ));
        }
    }
    check_loops(config, &mut p);
    p
}

fn check_cluster(alias: &str, c: &super::ClusterConfig, p: &mut Vec<Problem>) {
    let at = |field: &str| format!("clusters.{alias}.{field}");
    if !is_name(alias, false) || alias.len() > MAX_ALIAS_LEN {
        p.push(Problem::new(
            format!("clusters.{alias}"),
            format!(
                "invalid cluster alias {alias:?}: use 1 to {MAX_ALIAS_LEN} letters, digits, '_' \
                 and '-' (the alias becomes a topic prefix followed by '.')"
            ),
        ));
    }
    if c.bootstrap_servers.is_empty() {
        p.push(Problem::new(
            at("bootstrap_servers"),
            "must list at least one \"host:port\"",
        ));
    }
    for (i, address) in c.bootstrap_servers.iter().enumerate() {
        if let Err(message) = check_address(address) {
            p.push(Problem::new(
                at(&format!("bootstrap_servers[{i}]")),
                message,
            ));
        }
    }
    if c.client_id.is_empty() || c.client_id.len() > 255 {
        p.push(Problem::new(
            at("client_id"),
            "must be 1 to 255 characters long",
        ));
    } else if c.client_id.chars().any(char::is_control) {
        p.push(Problem::new(
            at("client_id"),
            "must not contain control characters",
        ));
    }
    duration_range(
        p,
        at("request_timeout"),
        c.request_timeout,
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    duration_range(
        p,
        at("connect_timeout"),
        c.connect_timeout,
        Duration::from_millis(100),
        Duration::from_secs(600),
    );
    size_range(
        p,
        at("max_frame_size"),
        c.max_frame_size,
        ByteSize::mib(1),
        MAX_WIRE_SIZE,
    );
    super::security::check(
        alias,
        c.security_protocol,
        c.tls.as_ref(),
        c.sasl.as_ref(),
        p,
    );
}

fn check_flow(config: &Config, i: usize, f: &FlowConfig, p: &mut Vec<Problem>) {
    let at = |field: &str| format!("flows[{i}].{field}");
    if !is_name(&f.name, true) || f.name.len() > MAX_FLOW_NAME_LEN {
        p.push(Problem::new(
            at("name"),
            format!(
                "invalid flow name {:?}: use 1 to {MAX_FLOW_NAME_LEN} letters, digits, '.', '_' \
                 and '-'",
                f.name
            ),
        ));
    }
    let known = || {
        config
            .clusters
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (field, alias) in [("source", &f.source), ("target", &f.target)] {
        if !config.clusters.contains_key(alias) {
            p.push(Problem::new(
                at(field),
                format!("unknown cluster {alias:?} (clusters defined: {})", known()),
            ));
        }
    }
    if f.source == f.target {
        p.push(Problem::new(
            at("target"),
            format!(
                "must differ from source ({:?}): a flow copies between two clusters",
                f.source
            ),
        ));
    }
    if f.topics.is_empty() {
        p.push(Problem::new(
            at("topics"),
            "must list at least one pattern (\".*\" selects every topic)",
        ));
    }
    for (field, patterns) in [
        ("topics", &f.topics),
        ("exclude", &f.exclude),
        ("exclude_configs", &f.exclude_configs),
        ("groups.include", &f.groups.include),
        ("groups.exclude", &f.groups.exclude),
    ] {
        for (j, pattern) in patterns.iter().enumerate() {
            if let Err(e) = anchored(pattern) {
                p.push(Problem::new(
                    at(&format!("{field}[{j}]")),
                    format!(
                        "invalid regex {pattern:?} in flow {:?}: {}",
                        f.name,
                        regex_error(&e)
                    ),
                ));
            }
        }
    }
    duration_range(
        p,
        at("groups.interval"),
        f.groups.interval,
        Duration::from_secs(1),
        Duration::from_secs(3_600),
    );
    duration_range(
        p,
        at("discovery_interval"),
        f.discovery_interval,
        Duration::from_secs(1),
        Duration::from_secs(86_400),
    );
    if f.replication_factor == 0 || f.replication_factor < -1 {
        p.push(Problem::new(
            at("replication_factor"),
            format!(
                "must be -1 (the target broker's default) or between 1 and 32767, got {}",
                f.replication_factor
            ),
        ));
    }

    let b = &f.batching;
    size_range(
        p,
        format!("flows[{i}].batching.coalesce_max"),
        b.coalesce_max,
        ByteSize::kib(1),
        ByteSize::mib(16),
    );
    if let Some(below) = b.coalesce_below {
        size_range(
            p,
            format!("flows[{i}].batching.coalesce_below"),
            below,
            ByteSize(1),
            b.coalesce_max,
        );
    }

    let t = &f.tuning;
    let at = |field: &str| format!("flows[{i}].tuning.{field}");
    size_range(
        p,
        at("memory_budget"),
        t.memory_budget,
        ByteSize::mib(1),
        ByteSize::mib(1 << 20),
    );
    size_range(
        p,
        at("fetch_max_bytes"),
        t.fetch_max_bytes,
        ByteSize::kib(1),
        MAX_WIRE_SIZE,
    );
    size_range(
        p,
        at("partition_fetch_max_bytes"),
        t.partition_fetch_max_bytes,
        ByteSize::kib(1),
        MAX_WIRE_SIZE,
    );
    if t.partition_fetch_max_bytes > t.fetch_max_bytes {
        p.push(Problem::new(
            at("partition_fetch_max_bytes"),
            format!(
                "must not exceed fetch_max_bytes ({}), got {}",
                t.fetch_max_bytes, t.partition_fetch_max_bytes
            ),
        ));
    }
    if t.memory_budget < t.fetch_max_bytes {
        p.push(Problem::new(
            at("memory_budget"),
            format!(
                "must be at least fetch_max_bytes ({}) so one fetch response fits, got {}",
                t.fetch_max_bytes, t.memory_budget
            ),
        ));
    }
    duration_range(
        p,
        at("fetch_max_wait"),
        t.fetch_max_wait,
        Duration::ZERO,
        Duration::from_secs(300),
    );
    if !(1..=5).contains(&t.max_in_flight_per_partition) {
        p.push(Problem::new(
            at("max_in_flight_per_partition"),
            format!(
                "must be between 1 and 5, got {} (the idempotent producer keeps order only \
                 up to 5 requests in flight)",
                t.max_in_flight_per_partition
            ),
        ));
    }
    duration_range(
        p,
        at("checkpoint_interval"),
        t.checkpoint_interval,
        Duration::from_millis(100),
        Duration::from_secs(3600),
    );
    // Limits of the cluster the flow fetches from.
    if let Some(source) = config.clusters.get(&f.source) {
        if t.fetch_max_wait >= source.request_timeout {
            p.push(Problem::new(
                at("fetch_max_wait"),
                format!(
                    "must be shorter than clusters.{}.request_timeout ({}), got {}: \
                     a broker may hold a fetch that long",
                    f.source,
                    format_duration(source.request_timeout),
                    format_duration(t.fetch_max_wait)
                ),
            ));
        }
        if t.fetch_max_bytes >= source.max_frame_size {
            p.push(Problem::new(
                at("fetch_max_bytes"),
                format!(
                    "must be smaller than clusters.{}.max_frame_size ({}), got {}: \
                     the response carries headers besides the records",
                    f.source, source.max_frame_size, t.fetch_max_bytes
                ),
            ));
        }
    }
}

/// Refuses sets of flows that can carry a topic around a cycle forever:
///
/// - any cycle with an identity-named flow: the name does not change on the
///   way, so nothing can tell a topic came back (A→B identity, B→A any);
/// - a cycle through three or more clusters even with prefix naming: the
///   topic policy recognizes only a topic that comes straight back from the
///   target (`b.orders` is not sent back to `b`), so `orders` would travel
///   the ring as `a.orders`, `c.b.a.orders`, … without end.
fn check_loops(config: &Config, p: &mut Vec<Problem>) {
    let edges: Vec<(usize, &str, &str)> = config
        .flows
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.source != f.target
                && config.clusters.contains_key(&f.source)
                && config.clusters.contains_key(&f.target)
        })
        .map(|(i, f)| (i, f.source.as_str(), f.target.as_str()))
        .collect();
    let mut reported: BTreeSet<Vec<usize>> = BTreeSet::new();
    for &(i, source, target) in &edges {
        let flow = &config.flows[i];
        let min_len = if flow.naming == Naming::Identity {
            2
        } else {
            3
        };
        // Any other identity flow on the cycle is caught when its own edge is tried.
        let Some(back) = path_back(&edges, i, target, source, min_len - 1) else {
            continue;
        };
        let mut cycle: Vec<usize> = std::iter::once(i).chain(back.iter().copied()).collect();
        let description = cycle
            .iter()
            .map(|&j| {
                let f = &config.flows[j];
                format!(
                    "flows[{j}] {:?} ({} -> {}, {} naming)",
                    f.name, f.source, f.target, f.naming
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        cycle.sort_unstable();
        if !reported.insert(cycle) {
            continue;
        }
        let why = if flow.naming == Naming::Identity {
            "with identity naming a mirrored topic keeps its name, so it would be copied back \
             and forth forever; use prefix naming or drop one direction"
        } else {
            "prefix naming stops a topic only from going straight back to the cluster it came \
             from, so around a ring of three or more clusters it would be copied forever under a \
             growing prefix; drop one flow of the ring"
        };
        p.push(Problem::new(
            format!("flows[{i}]"),
            format!("replication loop: {description}: {why}"),
        ));
    }
}

/// A simple path of at least `min_edges` flows from `from` back to `to`
/// that does not reuse flow `skip`, as flow indexes. Configs have a handful
/// of clusters, so a depth-first search over simple paths is cheap.
fn path_back<'a>(
    edges: &[(usize, &'a str, &'a str)],
    skip: usize,
    from: &'a str,
    to: &'a str,
    min_edges: usize,
) -> Option<Vec<usize>> {
    fn dfs<'a>(
        edges: &[(usize, &'a str, &'a str)],
        skip: usize,
        at: &'a str,
        to: &str,
        min_edges: usize,
        visited: &mut Vec<&'a str>,
        path: &mut Vec<usize>,
    ) -> bool {
        for &(j, source, target) in edges {
            if j == skip || source != at {
                continue;
            }
            path.push(j);
            if target == to && path.len() >= min_edges {
                return true;
            }
            if target != to && !visited.contains(&target) {
                visited.push(target);
                if dfs(edges, skip, target, to, min_edges, visited, path) {
                    return true;
                }
                visited.pop();
            }
            path.pop();
        }
        false
    }
    let mut visited = vec![to, from];
    let mut path = Vec::new();
    dfs(edges, skip, from, to, min_edges, &mut visited, &mut path).then_some(path)
}

pub(super) fn warnings(config: &Config) -> Vec<Problem> {
    let mut w = Vec::new();
    for (alias, c) in &config.clusters {
        super::security::warnings(
            alias,
            c.security_protocol,
            c.tls.as_ref(),
            c.sasl.as_ref(),
            &mut w,
        );
    }
    let flows = &config.flows;
    for (i, a) in flows.iter().enumerate() {
        for (j, b) in flows.iter().enumerate().skip(i + 1) {
            if a.target != b.target {
                continue;
            }
            let both_identity = a.naming == Naming::Identity && b.naming == Naming::Identity;
            let same_names = a.source == b.source && a.naming == b.naming;
            if both_identity || same_names {
                w.push(Problem::new(
                    format!("flows[{i}], flows[{j}]"),
                    format!(
                        "flows {:?} and {:?} both write into cluster {:?} and name topics the \
                         same way: a topic both select would get records from two flows. \
                         Make their topic patterns disjoint; `ferry check` lists actual \
                         collisions",
                        a.name, b.name, a.target
                    ),
                ));
            }
        }
        if let (Some(s), Some(t)) = (config.cluster(&a.source), config.cluster(&a.target)) {
            if let Some(shared) = s
                .bootstrap_servers
                .iter()
                .find(|addr| t.bootstrap_servers.contains(addr))
            {
                w.push(Problem::new(
                    format!("flows[{i}]"),
                    format!(
                        "source {:?} and target {:?} share the bootstrap address {shared:?}: \
                         if they are one cluster, the flow reads its own output again \
                         (with prefix naming: {src}.orders, {src}.{src}.orders, …)",
                        a.source,
                        a.target,
                        src = a.source
                    ),
                ));
            }
        }
    }
    w
}

/// Letters, digits, `_`, `-`, and `.` if `dots`; not empty.
fn is_name(s: &str, dots: bool) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || (dots && c == '.'))
}

fn duration_range(p: &mut Vec<Problem>, path: String, v: Duration, min: Duration, max: Duration) {
    if v < min || v > max {
        p.push(Problem::new(
            path,
            format!(
                "must be between {} and {}, got {}",
                format_duration(min),
                format_duration(max),
                format_duration(v)
            ),
        ));
    }
}

fn size_range(p: &mut Vec<Problem>, path: String, v: ByteSize, min: ByteSize, max: ByteSize) {
    if v < min || v > max {
        p.push(Problem::new(
            path,
            format!("must be between {min} and {max}, got {v}"),
        ));
    }
}

/// The last line of a regex error ("unclosed group"), without the pattern
/// echo and caret lines above it.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(&text);
    last.trim().trim_start_matches("error: ").to_owned()
}
