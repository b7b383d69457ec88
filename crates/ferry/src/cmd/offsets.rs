//! `ferry offsets translate`: source offsets → target offsets, exactly, from
//! the offset map each flow keeps on its target (`__ferry_offset_map`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use ferry_client::{Client, TopicPartition};
use ferry_engine::config::{Config, FlowConfig};
use ferry_engine::groups::GroupOutcome;
use ferry_engine::offset_store::{OFFSET_MAP_TOPIC, OffsetMapStore};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print where source offsets continue on the target: the target offset
    /// of the first mirrored record at or after each.
    Translate(TranslateArgs),
    /// Sync one consumer group's committed offsets to the target now (for a
    /// planned cut-over: stop the consumers, sync, start them on the target).
    Sync(SyncArgs),
}

#[derive(Debug, clap::Args)]
struct SyncArgs {
    /// The config file (TOML; see docs/configuration.md).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// The flow (default: the only flow).
    #[arg(long)]
    flow: Option<String>,
    /// The consumer group.
    #[arg(long)]
    group: String,
}

#[derive(Debug, clap::Args)]
struct TranslateArgs {
    /// The config file (TOML; see docs/configuration.md).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// The flow (default: the only flow whose source has the topic).
    #[arg(long)]
    flow: Option<String>,
    /// The source topic.
    #[arg(long)]
    topic: String,
    /// The source partition.
    #[arg(long, default_value_t = 0)]
    partition: i32,
    /// A source offset, or a range `A..B` (B excluded).
    #[arg(long, value_parser = parse_offsets)]
    offset: (i64, i64),
}

fn parse_offsets(s: &str) -> Result<(i64, i64), String> {
    let number = |t: &str| {
        t.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("{t:?} is not an offset (a whole number >= 0)"))
    };
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (number(a)?, number(b)?);
            if b <= a || b - a > 1_000_000 {
                return Err(format!(
                    "{s}: want A..B with A < B and at most 1000000 offsets"
                ));
            }
            Ok((a, b))
        }
        None => number(s).map(|n| (n, n + 1)),
    }
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let (config_path, flow_name) = match &args.command {
        Command::Translate(a) => (&a.config, a.flow.as_deref()),
        Command::Sync(a) => (&a.config, a.flow.as_deref()),
    };
    let config = match super::load_config(config_path) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let flow = pick_flow(&config, flow_name)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match &args.command {
        Command::Translate(a) => runtime.block_on(translate(&config, flow, a)),
        Command::Sync(a) => runtime.block_on(sync(&config, flow, &a.group)),
    }
}

async fn sync(config: &Config, flow: &FlowConfig, group: &str) -> Result<ExitCode> {
    let source = super::connect(config, &flow.source).await?;
    let target = super::connect(config, &flow.target).await?;
    let same_cluster = config.cluster(&flow.source).map(|c| &c.bootstrap_servers)
        == config.cluster(&flow.target).map(|c| &c.bootstrap_servers);
    let policy = flow.topic_policy(same_cluster)?;
    let maps = OffsetMapStore::new(target.clone())
        .load(&flow.name)
        .await
        .with_context(|| format!("cluster {}: reading {OFFSET_MAP_TOPIC}", flow.target))?;
    ferry_engine::groups::ensure_topic(&target).await?;
    let translate = |tp: &TopicPartition, offset: i64| {
        let target_topic = policy.map(&tp.topic).ok()?;
        let translated = maps.get(tp)?.map.translate(offset)?;
        Some((TopicPartition::new(target_topic, tp.partition), translated))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let outcome =
        ferry_engine::groups::sync_group(&flow.name, group, (&source, &target), translate, now)
            .await?;
    match outcome {
        GroupOutcome::Active { members } => {
            println!("group {group:?} has {members} active member(s) on the target: not synced");
            Ok(ExitCode::FAILURE)
        }
        GroupOutcome::Synced(commits) if commits.is_empty() => {
            println!(
                "group {group:?}: nothing to sync (not mirrored, or the target is already there)"
            );
            Ok(ExitCode::SUCCESS)
        }
        GroupOutcome::Synced(commits) => {
            for c in commits {
                println!(
                    "{group}: {} offset {} -> {} offset {}",
                    c.source, c.source_offset, c.target, c.target_offset
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn pick_flow<'a>(config: &'a Config, name: Option<&str>) -> Result<&'a FlowConfig> {
    match name {
        Some(name) => config
            .flows
            .iter()
            .find(|f| f.name == name)
            .with_context(|| format!("no flow named {name:?} in the config")),
        None => match config.flows.as_slice() {
            [only] => Ok(only),
            _ => bail!("the config has several flows: name one with --flow"),
        },
    }
}

async fn translate(config: &Config, flow: &FlowConfig, args: &TranslateArgs) -> Result<ExitCode> {
    let cluster = config
        .cluster(&flow.target)
        .with_context(|| format!("cluster {} is not configured", flow.target))?;
    let target = Client::connect(&cluster.bootstrap_servers, cluster.client_config())
        .await
        .with_context(|| format!("cluster {}", flow.target))?;
    let same_cluster = config.cluster(&flow.source).map(|c| &c.bootstrap_servers)
        == Some(&cluster.bootstrap_servers);
    let target_topic = flow
        .topic_policy(same_cluster)?
        .map(&args.topic)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.topic))?;
    let topics = target
        .list_topics()
        .await
        .with_context(|| format!("cluster {}: listing topics", flow.target))?;
    if !topics.topics.contains_key(OFFSET_MAP_TOPIC) {
        bail!(
            "cluster {} has no {OFFSET_MAP_TOPIC}: ferry has not mirrored anything there yet",
            flow.target
        );
    }
    let maps = OffsetMapStore::new(target)
        .load(&flow.name)
        .await
        .with_context(|| format!("cluster {}: reading {OFFSET_MAP_TOPIC}", flow.target))?;
    let tp = TopicPartition::new(args.topic.as_str(), args.partition);
    let Some(loaded) = maps.get(&tp) else {
        bail!("flow {} has mirrored nothing of {tp} yet", flow.name);
    };
    let (from, to) = args.offset;
    for source in from..to {
        match loaded.map.translate(source) {
            Some(t) => println!(
                "{tp} offset {source} -> {target_topic}-{} offset {t}",
                args.partition
            ),
            None => println!("{tp} offset {source} -> (nothing mirrored yet)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_one_number_or_a_range() {
        assert_eq!(parse_offsets("7"), Ok((7, 8)));
        assert_eq!(parse_offsets("3..6"), Ok((3, 6)));
        assert!(parse_offsets("-1").is_err());
        assert!(parse_offsets("6..3").is_err());
        assert!(parse_offsets("x").is_err());
    }
}
