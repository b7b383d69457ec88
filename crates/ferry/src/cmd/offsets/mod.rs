//! `ferry offsets translate`: source offsets → target offsets, exactly, from
//! the offset map each flow keeps on its target (`__ferry_offset_map`), for
//! given offsets or for a consumer group's commits; `ferry offsets sync`.

mod group;
mod sync;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use ferry_client::{Client, TopicPartition};
use ferry_engine::checkpoint::{Identity, TopicId, compare_topic_id};
use ferry_engine::config::{Config, FlowConfig};
use ferry_engine::offset_store::{LoadedMap, OFFSET_MAP_TOPIC, OffsetMapStore};
use ferry_engine::topics::TopicPolicy;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print where source offsets continue on the target: the target offset
    /// of the first mirrored record at or after each. Either given offsets
    /// (--topic, --partition, --offset) or a group's committed offsets
    /// (--group, optionally --topic).
    Translate(TranslateArgs),
    /// Sync one consumer group's committed offsets to the target now (for a
    /// planned cut-over: stop the consumers, sync, start them on the target),
    /// or with --reverse back to the source (failback).
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
    /// Sync the other way, for failback: the group's offsets on the flow's
    /// target (for the topics it mirrored there), translated back and
    /// committed on the flow's source.
    #[arg(long)]
    reverse: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["offset", "group"])))]
struct TranslateArgs {
    /// The config file (TOML; see docs/configuration.md).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// The flow (default: the only flow).
    #[arg(long)]
    flow: Option<String>,
    /// The source topic (with --group: only this topic's partitions).
    #[arg(long)]
    topic: Option<String>,
    /// The source partition (with --offset).
    #[arg(long, default_value_t = 0, conflicts_with = "group",
          value_parser = clap::value_parser!(i32).range(0..))]
    partition: i32,
    /// A source offset, or a range `A..B` (B excluded).
    #[arg(long, value_parser = parse_offsets, requires = "topic")]
    offset: Option<(i64, i64)>,
    /// A consumer group: its committed offsets on the source, translated,
    /// next to the same group's offsets on the target.
    #[arg(long)]
    group: Option<String>,
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
        None => {
            let n = number(s)?;
            let end = n
                .checked_add(1)
                .ok_or_else(|| format!("{s} is past the largest offset"))?;
            Ok((n, end))
        }
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
        Command::Sync(a) if a.reverse => runtime.block_on(sync::back(&config, flow, &a.group)),
        Command::Sync(a) => runtime.block_on(sync::forward(&config, flow, &a.group)),
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

/// The flow's persisted offset map, from the target cluster.
async fn load_maps(
    flow: &FlowConfig,
    target: &Client,
) -> Result<HashMap<TopicPartition, LoadedMap>> {
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
    OffsetMapStore::new(target.clone())
        .load_exact(&flow.name)
        .await
        .with_context(|| format!("cluster {}: reading {OFFSET_MAP_TOPIC}", flow.target))
}

fn policy(config: &Config, flow: &FlowConfig) -> Result<TopicPolicy> {
    let same_cluster = config.cluster(&flow.source).map(|c| &c.bootstrap_servers)
        == config.cluster(&flow.target).map(|c| &c.bootstrap_servers);
    Ok(flow.topic_policy(same_cluster)?)
}

async fn translate(config: &Config, flow: &FlowConfig, args: &TranslateArgs) -> Result<ExitCode> {
    let target = super::connect(config, &flow.target).await?;
    if let Some(group) = &args.group {
        return translate_group(config, flow, (group, args.topic.as_deref()), &target).await;
    }
    let (Some(topic), Some((from, to))) = (&args.topic, args.offset) else {
        bail!("give --offset with --topic, or --group");
    };
    let target_topic = policy(config, flow)?
        .map(topic)
        .map_err(|e| anyhow::anyhow!("{topic}: {e}"))?;
    let maps = load_maps(flow, &target).await?;
    let tp = TopicPartition::new(topic.as_str(), args.partition);
    let Some(loaded) = maps.get(&tp) else {
        bail!("flow {} has mirrored nothing of {tp} yet", flow.name);
    };
    let target_tp = TopicPartition::new(target_topic.as_str(), args.partition);
    let current_id = target
        .metadata()
        .topic(&target_topic)
        .and_then(|t| t.topic_id)
        .and_then(|id| TopicId::new(*id.as_bytes()));
    if let Identity::Recreated { stored, current } = compare_topic_id(loaded.ids.target, current_id)
    {
        eprintln!(
            "warning: the map was written for topic {target_topic} with id {stored}; the topic \
             now has id {current} (deleted and re-created?): these translations point into \
             the old topic"
        );
    }
    let log_start = group::log_starts(&target, std::slice::from_ref(&target_tp))
        .await
        .get(&target_tp)
        .copied();
    for source in from..to {
        match group::translate(Some(&loaded.map), source, log_start) {
            group::Translation::At(t) => println!("{tp} offset {source} -> {target_tp} offset {t}"),
            group::Translation::Deleted { offset, log_start } => println!(
                "{tp} offset {source} -> {target_tp}: deleted on the target \
                 (it was at offset {offset}; the log starts at {log_start})"
            ),
            _ => println!("{tp} offset {source} -> (nothing mirrored yet)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `translate --group`: the group's committed source offsets (only
/// `topic`'s if given), translated, next to the target group's offsets.
async fn translate_group(
    config: &Config,
    flow: &FlowConfig,
    (group, topic): (&str, Option<&str>),
    target: &Client,
) -> Result<ExitCode> {
    let source = super::connect(config, &flow.source).await?;
    let policy = policy(config, flow)?;
    let maps = load_maps(flow, target).await?;
    let committed: Vec<(TopicPartition, i64)> = {
        let mut c: Vec<_> = group::committed(&source, &flow.source, group)
            .await?
            .into_iter()
            .filter(|(tp, _)| topic.is_none_or(|t| tp.topic.as_ref() == t))
            .collect();
        c.sort_by(|a, b| {
            (a.0.topic.as_ref(), a.0.partition).cmp(&(b.0.topic.as_ref(), b.0.partition))
        });
        c
    };
    if committed.is_empty() {
        let what = topic.map_or(String::new(), |t| format!(" for topic {t}"));
        println!(
            "group {group:?} has no committed offsets{what} on cluster {}",
            flow.source
        );
        return Ok(ExitCode::SUCCESS);
    }
    let on_target = group::committed(target, &flow.target, group).await?;
    let targets: Vec<(TopicPartition, Result<TopicPartition, String>)> = committed
        .iter()
        .map(|(tp, _)| {
            let mapped = policy
                .map(&tp.topic)
                .map(|t| TopicPartition::new(t, tp.partition))
                .map_err(|e| e.to_string());
            (tp.clone(), mapped)
        })
        .collect();
    let mirrored: Vec<TopicPartition> = targets
        .iter()
        .filter_map(|(_, t)| t.as_ref().ok().cloned())
        .collect();
    let starts = group::log_starts(target, &mirrored).await;
    let rows: Vec<group::Row> = committed
        .iter()
        .zip(targets)
        .map(|((tp, offset), (_, mapped))| match mapped {
            Err(why) => group::Row {
                source: tp.clone(),
                committed: *offset,
                target_topic: None,
                translation: group::Translation::NotMirrored(why),
                target_committed: None,
            },
            Ok(ttp) => group::Row {
                source: tp.clone(),
                committed: *offset,
                target_topic: Some(ttp.topic.to_string()),
                translation: group::translate(
                    maps.get(tp).map(|l| &l.map),
                    *offset,
                    starts.get(&ttp).copied(),
                ),
                target_committed: on_target.get(&ttp).copied(),
            },
        })
        .collect();
    println!(
        "group {group:?}: {} -> {} (flow {})",
        flow.source, flow.target, flow.name
    );
    print!("{}", group::render(&rows));
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
        assert!(parse_offsets("9223372036854775807").is_err());
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(args: &[&str]) -> Result<Args, String> {
        use clap::Parser;
        let argv = ["offsets", "translate", "-c", "f.toml"].iter().chain(args);
        Cli::try_parse_from(argv)
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn translate_takes_offsets_or_a_group_never_both_nor_neither() {
        let ok = parse(&["--topic", "t", "--partition", "2", "--offset", "3..5"]).unwrap();
        let Command::Translate(a) = ok.command else {
            panic!("{ok:?}")
        };
        assert_eq!((a.partition, a.offset, a.group), (2, Some((3, 5)), None));
        let ok = parse(&["--group", "g", "--topic", "t"]).unwrap();
        let Command::Translate(a) = ok.command else {
            panic!("{ok:?}")
        };
        assert_eq!(
            (a.group.as_deref(), a.topic.as_deref()),
            (Some("g"), Some("t"))
        );
        let neither = parse(&["--topic", "t"]).unwrap_err();
        assert!(
            neither.contains("--offset") && neither.contains("--group"),
            "{neither}"
        );
        let both = parse(&["--topic", "t", "--offset", "3", "--group", "g"]).unwrap_err();
        assert!(both.contains("cannot be used with"), "{both}");
        let partition = parse(&["--group", "g", "--partition", "1"]).unwrap_err();
        assert!(partition.contains("cannot be used with"), "{partition}");
        let no_topic = parse(&["--offset", "3"]).unwrap_err();
        assert!(no_topic.contains("--topic"), "{no_topic}");
    }
}
