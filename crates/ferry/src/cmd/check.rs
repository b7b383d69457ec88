//! `ferry check`: validate the config, reach every cluster and broker, and
//! show what each flow would mirror, without copying anything.
//!
//! Exit status: 0 all good; 64 invalid config; 66 unreadable config file;
//! 1 a cluster or broker unreachable, a broker too old, or two flows
//! writing the same target topic. The config is never echoed, so values
//! taken from the environment stay out of terminals and logs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use ferry_client::versions::floor;
use ferry_client::{BrokerVersions, Client, ClusterMetadata};
use ferry_engine::config::{ClusterConfig, Config, FlowConfig, format_duration};
use kafka_protocol::messages::ApiKey;

/// The APIs ferry depends on: reading, writing, discovery, start positions,
/// creating target topics and copying their configs.
const APIS: [ApiKey; 6] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::Metadata,
    ApiKey::ListOffsets,
    ApiKey::CreateTopics,
    ApiKey::DescribeConfigs,
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file (TOML; see docs/configuration.md).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let shown = args.config.display();
    let config = match super::load_config(&args.config) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    println!(
        "config {shown}: valid ({}, {})",
        plural(config.clusters.len(), "cluster"),
        plural(config.flows.len(), "flow")
    );
    for w in config.warnings() {
        println!("warning: {w}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let problems = runtime.block_on(check(&config));
    println!();
    if problems.is_empty() {
        println!("check: OK");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("check: {}:", plural(problems.len(), "problem"));
        for p in &problems {
            println!("  {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// A cluster ferry reached, with its full topic metadata.
struct Reached {
    metadata: Arc<ClusterMetadata>,
}

/// Checks every cluster, then every flow; returns the problems found.
async fn check(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let mut reached: BTreeMap<&str, Reached> = BTreeMap::new();
    for (alias, cluster) in &config.clusters {
        println!();
        match check_cluster(alias, cluster, &mut problems).await {
            Ok(r) => {
                reached.insert(alias.as_str(), r);
            }
            Err(e) => {
                let message = format!(
                    "cluster {alias}: cannot connect: {}",
                    crate::error_chain(&e)
                );
                println!("{message}");
                problems.push(message);
            }
        }
    }
    // Target topic -> the flows and source topics that would write it.
    let mut writers: BTreeMap<(&str, String), Vec<(&str, String)>> = BTreeMap::new();
    for flow in &config.flows {
        println!();
        check_flow(config, flow, &reached, &mut writers, &mut problems);
    }
    for ((cluster, topic), sources) in &writers {
        if sources.len() > 1 {
            let from = sources
                .iter()
                .map(|(flow, source)| format!("flow {flow:?} (from {source})"))
                .collect::<Vec<_>>()
                .join(" and ");
            problems.push(format!(
                "collision: {topic} on cluster {cluster} would be written by {from}"
            ));
        }
    }
    problems
}

/// How ferry reached a cluster, e.g. `sasl_ssl (SCRAM-SHA-512 as "ferry")`.
/// Names the user, never the password.
fn security(cluster: &ClusterConfig) -> String {
    let mut out = cluster.security_protocol.name().to_owned();
    let tls = cluster.tls.as_ref();
    if cluster.security_protocol.tls() && tls.is_some_and(|t| t.cert_file.is_some()) {
        out.push_str(" with a client certificate");
    }
    if cluster.security_protocol.tls() && tls.is_some_and(|t| t.insecure_skip_verify) {
        out.push_str(", CERTIFICATES NOT VERIFIED");
    }
    if let Some(sasl) = cluster
        .sasl
        .as_ref()
        .filter(|_| cluster.security_protocol.sasl())
    {
        use ferry_engine::config::Mechanism;
        let mechanism = match sasl.mechanism {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::AwsMskIam => "AWS_MSK_IAM",
        };
        match (&sasl.mechanism, &sasl.token_endpoint) {
            (Mechanism::OAuthBearer, Some(endpoint)) => out.push_str(&format!(
                " ({mechanism} as client {:?}, tokens from {endpoint})",
                sasl.client_id.as_deref().unwrap_or_default()
            )),
            (Mechanism::OAuthBearer, None) => {
                let from = match (&sasl.token_file, &sasl.token_env) {
                    (Some(file), _) => format!("token file {}", file.display()),
                    (None, Some(var)) => format!("token variable {var}"),
                    (None, None) => "no token source".to_owned(),
                };
                out.push_str(&format!(" ({mechanism} with the {from})"));
            }
            (Mechanism::AwsMskIam, _) => out.push_str(&format!(
                " ({mechanism} with the AWS credentials from the environment, web identity or profile{})",
                sasl.aws_region
                    .as_deref()
                    .map_or_else(String::new, |r| format!(", region {r}"))
            )),
            _ => out.push_str(&format!(" ({mechanism} as {:?})", sasl.username)),
        }
    }
    out
}

async fn check_cluster(
    alias: &str,
    cluster: &ClusterConfig,
    problems: &mut Vec<String>,
) -> Result<Reached> {
    // The client's error names the bootstrap brokers and says what to check.
    let client = Client::connect(&cluster.bootstrap_servers, cluster.client_config()).await?;
    let metadata = client
        .refresh_metadata(None)
        .await
        .context("listing topics")?;
    let brokers = metadata
        .brokers
        .values()
        .map(|b| format!("{} at {}", b.node_id, b.address()))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "cluster {alias}: cluster id {}, {} ({brokers}), {}, {}",
        metadata.cluster_id.as_deref().unwrap_or("unknown"),
        plural(metadata.brokers.len(), "broker"),
        plural(metadata.topics.len(), "topic"),
        security(cluster)
    );
    // Who the broker saw: for OAUTHBEARER the token's subject, for
    // AWS_MSK_IAM the access key and where it came from.
    if let Some(who) = client
        .any_connection()
        .await
        .ok()
        .and_then(|c| c.authenticated_as())
    {
        println!("  authenticated as {who}");
    }
    // Every broker, not only the bootstrap one: an advertised listener that
    // cannot be reached would otherwise only show once a flow needs it.
    let mut by_versions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (node_id, broker) in &metadata.brokers {
        match client.broker_connection(*node_id).await {
            Ok(conn) => {
                let (line, too_old) = versions_line(conn.versions());
                for api in too_old {
                    problems.push(format!(
                        "cluster {alias}: broker {node_id} at {} does not support the {api:?} \
                         versions ferry needs (v{} or later)",
                        broker.address(),
                        floor(api)
                    ));
                }
                by_versions.entry(line).or_default().push(*node_id);
            }
            Err(e) => {
                let message = format!(
                    "cluster {alias}: broker {node_id} at {} (from metadata) cannot be reached: {e}",
                    broker.address()
                );
                println!("  {message}");
                problems.push(message);
            }
        }
    }
    for (line, nodes) in &by_versions {
        let nodes = nodes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let label = if nodes.contains(',') {
            "brokers"
        } else {
            "broker"
        };
        println!("  {label} {nodes}: {line}");
    }
    Ok(Reached { metadata })
}

/// The broker's version ranges of the APIs ferry uses, and those whose
/// range ends below ferry's floor.
fn versions_line(versions: &BrokerVersions) -> (String, Vec<ApiKey>) {
    let mut too_old = Vec::new();
    let parts: Vec<String> = APIS
        .iter()
        .map(|&api| match versions.broker_range(api) {
            Some(r) if r.max >= floor(api) => format!("{api:?} v{}-v{}", r.min, r.max),
            Some(r) => {
                too_old.push(api);
                format!("{api:?} v{}-v{} (too old)", r.min, r.max)
            }
            None => {
                too_old.push(api);
                format!("{api:?} unsupported")
            }
        })
        .collect();
    (parts.join(", "), too_old)
}

fn check_flow<'a>(
    config: &Config,
    flow: &'a FlowConfig,
    reached: &BTreeMap<&str, Reached>,
    writers: &mut BTreeMap<(&'a str, String), Vec<(&'a str, String)>>,
    problems: &mut Vec<String>,
) {
    println!(
        "flow {}: {} -> {}, {} naming, start {}, discovery every {}",
        flow.name,
        flow.source,
        flow.target,
        flow.naming,
        flow.start,
        format_duration(flow.discovery_interval)
    );
    let Some(source) = reached.get(flow.source.as_str()) else {
        println!(
            "  skipped: source cluster {} could not be reached",
            flow.source
        );
        return;
    };
    // An unreachable target still lets the flow's selection be shown.
    let target = reached.get(flow.target.as_str());
    let same_cluster = match (
        &source.metadata.cluster_id,
        target.and_then(|t| t.metadata.cluster_id.as_ref()),
    ) {
        (Some(s), Some(t)) => s == t,
        // No ids (very old brokers): the same bootstrap list is the best guess.
        _ => same_addresses(config, &flow.source, &flow.target),
    };
    if same_cluster {
        println!(
            "  warning: {} and {} are the same cluster: the flow would read its own output again",
            flow.source, flow.target
        );
    }
    let policy = match flow.topic_policy(same_cluster) {
        Ok(p) => p,
        Err(e) => {
            // Validation compiled these patterns already; kept for safety.
            problems.push(format!("flow {}: {e}", flow.name));
            return;
        }
    };
    let (mut mirrored, mut partitions) = (0usize, 0usize);
    for (name, topic) in &source.metadata.topics {
        let count = topic.partitions.len();
        let size = plural(count, "partition");
        match policy.map(name) {
            Err(why) => println!("  {name}: {size}, not mirrored: {why}"),
            Ok(_) if topic.error.is_some() => {
                let code = topic.error.map(|c| c.to_string()).unwrap_or_default();
                let message = format!(
                    "flow {}: source topic {name} cannot be described: {code}",
                    flow.name
                );
                println!("  {name}: metadata error {code}");
                problems.push(message);
            }
            Ok(target_name) => {
                mirrored += 1;
                partitions += count;
                writers
                    .entry((flow.target.as_str(), target_name.clone()))
                    .or_default()
                    .push((flow.name.as_str(), name.clone()));
                let Some(target) = target else {
                    println!(
                        "  {name}: {size} -> {target_name} ({} unreachable)",
                        flow.target
                    );
                    continue;
                };
                let state = match target.metadata.topic(&target_name) {
                    None => format!("not on {} yet, ferry creates it", flow.target),
                    Some(t) => match t.error {
                        Some(code) => format!("on {}: metadata error {code}", flow.target),
                        None if t.partitions.len() < count => format!(
                            "exists on {} with {}, fewer than the source",
                            flow.target,
                            plural(t.partitions.len(), "partition")
                        ),
                        None => format!(
                            "exists on {} with {}",
                            flow.target,
                            plural(t.partitions.len(), "partition")
                        ),
                    },
                };
                println!("  {name}: {size} -> {target_name} ({state})");
            }
        }
    }
    println!(
        "  {mirrored} of {} mirrored, {}",
        plural(source.metadata.topics.len(), "topic"),
        plural(partitions, "partition")
    );
}

fn same_addresses(config: &Config, a: &str, b: &str) -> bool {
    let sorted = |alias: &str| {
        let mut v = config
            .cluster(alias)
            .map(|c| c.bootstrap_servers.clone())
            .unwrap_or_default();
        v.sort();
        v
    };
    sorted(a) == sorted(b)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
