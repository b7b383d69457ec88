//! Resuming a partition after a crash without re-sending what the target
//! already has: the reads around [`ResumeScan`] (see `scan.rs` for the
//! reasoning). Never fails: on any doubt it resumes at the checkpoint
//! (duplicates rather than loss).

use std::time::Duration;

use ferry_client::{Client, FetchOptions, OffsetSpec, TopicPartition};

use super::scan::{ResumeDoubt, ResumeScan, ScanStep, Side, after_target_truncation};
use crate::offset_map::OffsetMap;
use crate::plan::PlanConfig;
use ferry_wire::budget::MemoryBudget;

/// The source offset to resume `source` at, given its checkpoint
/// (`source_offset`, `target_offset`) and its persisted offset map (to
/// find where a target that lost acknowledged records ends on the source).
/// With the position comes, when the target's tail was matched, where each
/// of its records came from (see [`ResumeScan::tail_map`]).
///
/// Every read of the scan is leased from the flow's memory `budget` first:
/// after a crash many partitions resume at once, and their scans must not
/// add up to more memory than the flow may use (issue 14 item 16).
pub(super) async fn resume_position(
    (source_client, target_client): (&Client, &Client),
    (source, target): (&TopicPartition, &TopicPartition),
    checkpoint: (i64, Option<i64>),
    map: Option<&OffsetMap>,
    config: PlanConfig,
    budget: &MemoryBudget,
) -> (i64, Option<OffsetMap>) {
    let source_offset = checkpoint.0;
    let found = find_resume(
        (source_client, target_client),
        (source, target),
        checkpoint,
        map,
        config,
        budget,
    );
    match found.await {
        Ok((position, tail)) if position < source_offset => {
            tracing::warn!(
                partition = %source,
                target = %target,
                checkpoint = source_offset,
                resume = position,
                "the target lost acknowledged records (truncated under ferry); mirroring them again from the first one lost"
            );
            (position, tail)
        }
        Ok((position, tail)) if position != source_offset => {
            tracing::info!(
                partition = %source,
                checkpoint = source_offset,
                resume = position,
                "the target already holds batches produced after the last checkpoint; resuming after them"
            );
            (position, tail)
        }
        Ok(_) => (source_offset, None),
        Err(why) => {
            tracing::warn!(
                partition = %source,
                checkpoint = source_offset,
                reason = %why,
                "cannot match the target's tail with the source; resuming at the checkpoint (records after it may be duplicated)"
            );
            (source_offset, None)
        }
    }
}

/// The bytes one read of the scan asks for at most: 16 MiB, or a quarter of
/// the budget if that is less (so a small budget still lets a few
/// partitions scan at once), never under 1 MiB.
fn scan_read_bytes(budget: &MemoryBudget) -> u32 {
    let bytes = (budget.capacity() / 4).clamp(1 << 20, 16 << 20);
    u32::try_from(bytes).unwrap_or(16 << 20)
}

async fn find_resume(
    (source_client, target_client): (&Client, &Client),
    (source, target): (&TopicPartition, &TopicPartition),
    checkpoint: (i64, Option<i64>),
    map: Option<&OffsetMap>,
    config: PlanConfig,
    budget: &MemoryBudget,
) -> Result<(i64, Option<OffsetMap>), ResumeDoubt> {
    let unreadable = |side| {
        move |e: ferry_client::ClientError| ResumeDoubt::Unreadable {
            side,
            detail: e.to_string(),
        }
    };
    let target_end = target_client
        .list_offsets(&target.topic, &[target.partition], OffsetSpec::Latest)
        .await
        .map_err(unreadable(Side::Target))?
        .first()
        .map(|(_, o)| *o)
        .ok_or(ResumeDoubt::Unreadable {
            side: Side::Target,
            detail: "no end offset for the partition".into(),
        })?;
    let scan = ResumeScan::new(source.clone(), checkpoint, target_end, config);
    if let (Err(ResumeDoubt::TargetBehindCheckpoint { checkpointed, .. }), Some(map)) = (&scan, map)
    {
        return after_target_truncation(map, target_end, (checkpoint.0, *checkpointed))
            .map(|position| (position, None));
    }
    let Some(mut scan) = scan? else {
        return Ok((checkpoint.0, None));
    };
    // The target's last batch, to confirm the match at the end: a fetch at
    // the last offset returns that batch whole, whatever its size.
    let options = FetchOptions {
        max_wait: Duration::ZERO,
        ..FetchOptions::default()
    };
    // Held until the scan ends: the tail stays in use to the last step.
    let _tail_lease = budget
        .acquire(usize::try_from(options.partition_max_bytes).unwrap_or(usize::MAX))
        .await;
    let tail = fetch(
        target_client,
        target,
        target_end - 1,
        &options,
        Side::Target,
    )
    .await?;
    scan.target_tail(&tail.records, target_end)?;
    let read = scan_read_bytes(budget);
    let options = FetchOptions {
        max_wait: Duration::ZERO,
        max_bytes: read,
        partition_max_bytes: read,
        ..FetchOptions::default()
    };
    let mut step = scan.first_step();
    loop {
        match step {
            ScanStep::NeedMore(at) => {
                let lease = budget.acquire(read as usize).await;
                let fetched = fetch(source_client, source, at, &options, Side::Source).await?;
                step = scan.feed(
                    &fetched.records,
                    fetched.aborted_transactions.iter().copied(),
                );
                drop((fetched, lease));
            }
            ScanStep::Found(position) => return Ok((position, Some(scan.tail_map().clone()))),
            ScanStep::Doubt(why) => return Err(why),
        }
    }
}

async fn fetch(
    client: &Client,
    tp: &TopicPartition,
    offset: i64,
    options: &FetchOptions,
    side: Side,
) -> Result<ferry_client::FetchedPartition, ResumeDoubt> {
    let fetched = client
        .fetch_raw(&tp.topic, tp.partition, offset, options)
        .await
        .map_err(|e| ResumeDoubt::Unreadable {
            side,
            detail: e.to_string(),
        })?;
    match fetched.error {
        Some(code) => Err(ResumeDoubt::Unreadable {
            side,
            detail: format!("fetch at {offset}: {code}"),
        }),
        None => Ok(fetched),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scan reads are sized to the budget they lease from (issue 14 item
    /// 16): 32 partitions resuming at once wait for each other instead of
    /// fetching 32 × 16 MiB outside the budget.
    #[test]
    fn scan_reads_fit_the_budget() {
        let mib = 1 << 20;
        assert_eq!(scan_read_bytes(&MemoryBudget::new(8 * mib)), 2 << 20);
        assert_eq!(scan_read_bytes(&MemoryBudget::new(64 * mib)), 16 << 20);
        assert_eq!(scan_read_bytes(&MemoryBudget::new(mib)), 1 << 20);
        assert_eq!(scan_read_bytes(&MemoryBudget::new(1 << 30)), 16 << 20);
    }
}
