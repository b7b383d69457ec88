//! `ferry offsets sync`: one group's committed offsets, translated with the
//! flow's exact map, committed on the other cluster now: to the target for
//! a cut-over, back to the source (`--reverse`) for failback.

use ferry_client::util::unix_millis;
use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ferry_client::TopicPartition;
use ferry_engine::config::{Config, FlowConfig};
use ferry_engine::groups::GroupOutcome;
use ferry_engine::offset_store::{OFFSET_MAP_TOPIC, OffsetMapStore};

/// The group's source commits, translated, committed on the target (and
/// recorded in `__ferry_group_offsets`), as the flow's periodic sync does.
pub async fn forward(config: &Config, flow: &FlowConfig, group: &str) -> Result<ExitCode> {
    let source = crate::cmd::connect(config, &flow.source).await?;
    let target = crate::cmd::connect(config, &flow.target).await?;
    let policy = super::policy(config, flow)?;
    let maps = OffsetMapStore::new(target.clone())
        .load_exact(&flow.name)
        .await
        .with_context(|| format!("cluster {}: reading {OFFSET_MAP_TOPIC}", flow.target))?;
    ferry_engine::groups::ensure_topic(&target).await?;
    let mirrored: Vec<TopicPartition> = maps
        .keys()
        .filter_map(|tp| {
            Some(TopicPartition::new(
                policy.map(&tp.topic).ok()?,
                tp.partition,
            ))
        })
        .collect();
    let starts = super::group::log_starts(&target, &mirrored).await;
    let translate = |tp: &TopicPartition, offset: i64| {
        let target_tp = TopicPartition::new(policy.map(&tp.topic).ok()?, tp.partition);
        let translated = maps.get(tp)?.map.translate(offset)?;
        // Never below the log start: deleted records cannot be read, and
        // an offset out of range leaves the consumer to auto.offset.reset.
        let translated = starts
            .get(&target_tp)
            .map_or(translated, |s| translated.max(*s));
        Some((target_tp, translated))
    };
    let now = unix_millis();
    let outcome =
        ferry_engine::groups::sync_group(&flow.name, group, (&source, &target), translate, now)
            .await?;
    Ok(report(group, outcome, "target"))
}

/// `sync --reverse`: the group's commits on the flow's target, for the
/// topics the flow mirrored there, translated back (the exact map read the
/// other way) and committed on the flow's source. For failback: the group
/// then reads on at the source exactly the records it has not read on the
/// target. Never moves the source group backwards; refuses a group with
/// active members on the source.
pub async fn back(config: &Config, flow: &FlowConfig, group: &str) -> Result<ExitCode> {
    let source = crate::cmd::connect(config, &flow.source).await?;
    let target = crate::cmd::connect(config, &flow.target).await?;
    let policy = super::policy(config, flow)?;
    let maps = super::load_maps(flow, &target).await?;
    // Target topic -> source topic, for every source topic the map knows.
    let back: HashMap<String, String> = maps
        .keys()
        .filter_map(|tp| {
            let mirrored = policy.map(&tp.topic).ok()?;
            Some((mirrored, tp.topic.to_string()))
        })
        .collect();
    let translate = |tp: &TopicPartition, offset: i64| {
        let source_tp = TopicPartition::new(back.get(tp.topic.as_ref())?.as_str(), tp.partition);
        let translated = maps.get(&source_tp)?.map.translate_back(offset)?;
        Some((source_tp, translated))
    };
    let outcome = ferry_engine::groups::commit_translated(
        group,
        (&target, "target"),
        (&source, "source"),
        translate,
    )
    .await?;
    Ok(report(group, outcome, "source"))
}

/// Prints what a sync did; exit status 1 when the group was active there.
fn report(group: &str, outcome: GroupOutcome, synced_to: &str) -> ExitCode {
    match outcome {
        GroupOutcome::Active { members } => {
            println!(
                "group {group:?} has {members} active member(s) on the {synced_to}: not synced"
            );
            ExitCode::FAILURE
        }
        GroupOutcome::Synced(commits) if commits.is_empty() => {
            println!(
                "group {group:?}: nothing to sync (not mirrored, or the {synced_to} is already there)"
            );
            ExitCode::SUCCESS
        }
        GroupOutcome::Synced(commits) => {
            for c in commits {
                println!(
                    "{group}: {} offset {} -> {} offset {}",
                    c.source, c.source_offset, c.target, c.target_offset
                );
            }
            ExitCode::SUCCESS
        }
    }
}
