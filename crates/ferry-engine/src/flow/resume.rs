//! Resuming a partition after a crash without re-sending what the target
//! already has.
//!
//! Checkpoints are written every few seconds, so after `kill -9` the target
//! may hold batches produced after the last checkpoint. Ferry is the only
//! writer of its target partitions and produces in source order, so the
//! `end - checkpointed target offset` records on the target are exactly the
//! next records ferry would produce from the checkpointed source offset.
//! Re-planning the source from there (same filter, same plan) and counting
//! records finds the source offset after them, even inside a batch. The
//! target's last record is compared with the source record it should be
//! before the result is trusted; any doubt (a foreign write, a mismatch)
//! falls back to the checkpoint: duplicates rather than loss.

use std::time::Duration;

use ferry_client::{Client, FetchOptions, OffsetSpec, TopicPartition};
use ferry_wire::batch::{BatchIter, FetchedBatch, RecordBatch};
use ferry_wire::record::Record;

use crate::plan::{PartitionPlanner, Plan, PlanConfig};

/// Stop looking after this many source bytes: far more than a checkpoint
/// interval's worth for most partitions, and bounded for all.
const MAX_SCAN_BYTES: usize = 256 << 20;

/// The source offset to resume `source` at, given its checkpoint
/// (`source_offset`, `target_offset`). Never errors: on any doubt it
/// returns the checkpointed offset.
pub(super) async fn resume_position(
    source_client: &Client,
    target_client: &Client,
    source: &TopicPartition,
    target: &TopicPartition,
    checkpoint: (i64, Option<i64>),
    config: PlanConfig,
) -> i64 {
    let (source_offset, target_offset) = checkpoint;
    match find_resume(
        source_client,
        target_client,
        source,
        target,
        source_offset,
        target_offset,
        config,
    )
    .await
    {
        Ok(Some(position)) if position != source_offset => {
            tracing::info!(
                partition = %source,
                checkpoint = source_offset,
                resume = position,
                "the target already holds batches produced after the last checkpoint; resuming after them"
            );
            position
        }
        Ok(_) => source_offset,
        Err(why) => {
            tracing::warn!(
                partition = %source,
                checkpoint = source_offset,
                reason = %why,
                "cannot match the target's tail with the source; resuming at the checkpoint (records after it may be duplicated)"
            );
            source_offset
        }
    }
}

async fn find_resume(
    source_client: &Client,
    target_client: &Client,
    source: &TopicPartition,
    target: &TopicPartition,
    source_offset: i64,
    target_offset: Option<i64>,
    config: PlanConfig,
) -> Result<Option<i64>, String> {
    let target_end = target_client
        .list_offsets(&target.topic, &[target.partition], OffsetSpec::Latest)
        .await
        .map_err(|e| e.to_string())?
        .first()
        .map(|(_, o)| *o)
        .ok_or("no end offset for the target partition")?;
    let target_start = target_offset.unwrap_or(target_end);
    if target_end < target_start {
        return Err(format!(
            "the target partition ends at {target_end}, before the checkpointed {target_start} (truncated or recreated?)"
        ));
    }
    let mut extra = target_end - target_start;
    if extra == 0 {
        return Ok(None);
    }
    // The target's last batch, to confirm the match at the end.
    let last_target = last_batch(target_client, target, target_end).await?;

    // Only record counts matter here: no CRC pass over what is only counted.
    let config = PlanConfig {
        verify_crc: false,
        ..config
    };
    let mut planner = PartitionPlanner::new(source.clone(), source_offset, config);
    let options = FetchOptions {
        max_wait: Duration::ZERO,
        max_bytes: 32 << 20,
        partition_max_bytes: 16 << 20,
        ..FetchOptions::default()
    };
    let mut scanned = 0usize;
    while extra > 0 {
        let fetched = source_client
            .fetch_raw(
                &source.topic,
                source.partition,
                planner.position(),
                &options,
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Some(code) = fetched.error {
            return Err(format!("source fetch at {}: {code}", planner.position()));
        }
        let entries: Vec<FetchedBatch> = BatchIter::new(fetched.records.clone())
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        if entries.is_empty() {
            return Err("the source has fewer records than the target's tail".into());
        }
        scanned += fetched.records.len();
        let plans = planner
            .plan_fetch(entries, fetched.aborted_transactions.iter().copied())
            .map_err(|e| e.to_string())?;
        for (_, plan) in plans {
            // Each batch ferry would produce, with the source offsets of its records.
            let produced: Vec<(RecordBatch, SourceOffsets)> = match plan {
                Plan::Forward { batch, .. } => {
                    let base = batch.header().base_offset;
                    vec![(batch, SourceOffsets::Contiguous(base))]
                }
                Plan::Reencode { batches, .. } => batches
                    .into_iter()
                    .map(|b| (b.batch, SourceOffsets::Listed(b.source_offsets)))
                    .collect(),
                Plan::Skip(_) => Vec::new(),
            };
            for (batch, offsets) in produced {
                let count = i64::from(batch.header().last_offset_delta) + 1;
                if extra > count {
                    extra -= count;
                    continue;
                }
                // The target's tail ends in this batch, after its `extra`-th
                // record. (A crash mid-way through splitting a batch, or a
                // resume inside one, can leave a tail that ends inside what
                // this re-planning produces as one batch.)
                let k = usize::try_from(extra).map_err(|_| "negative record count")?;
                let last = offsets.nth(k - 1).ok_or("source offsets out of step")?;
                let source_record = nth_record(&batch, k - 1);
                let target_record = last_target.as_ref().and_then(last_record);
                return match (source_record, target_record) {
                    (Some(s), Some(t)) if same_record(&s, &t) => Ok(Some(last + 1)),
                    _ => Err(
                        "the target's last record differs from the source record it should be"
                            .into(),
                    ),
                };
            }
        }
        if scanned > MAX_SCAN_BYTES {
            return Err(format!(
                "the target's tail spans more than {MAX_SCAN_BYTES} source bytes"
            ));
        }
    }
    Ok(None)
}

/// The batch holding the target partition's last offset (`end - 1`): a
/// fetch there returns that batch whole, whatever its size.
async fn last_batch(
    client: &Client,
    tp: &TopicPartition,
    end: i64,
) -> Result<Option<RecordBatch>, String> {
    let options = FetchOptions {
        max_wait: Duration::ZERO,
        ..FetchOptions::default()
    };
    let fetched = client
        .fetch_raw(&tp.topic, tp.partition, end - 1, &options)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(code) = fetched.error {
        return Err(format!("target fetch at {}: {code}", end - 1));
    }
    let mut last = None;
    for e in BatchIter::new(fetched.records.clone()) {
        if let FetchedBatch::V2(b) = e.map_err(|e| e.to_string())? {
            if b.header().base_offset < end {
                last = Some(b);
            }
        }
    }
    Ok(last)
}

/// Where the records of a batch came from on the source.
enum SourceOffsets {
    /// Offsets `base, base + 1, …` (a forwarded batch).
    Contiguous(i64),
    /// One offset per record (a re-encoded batch).
    Listed(Vec<i64>),
}

impl SourceOffsets {
    fn nth(&self, i: usize) -> Option<i64> {
        match self {
            Self::Contiguous(base) => i64::try_from(i).ok().map(|i| base + i),
            Self::Listed(v) => v.get(i).copied(),
        }
    }
}

fn nth_record(batch: &RecordBatch, i: usize) -> Option<Record> {
    batch.records(64 << 20).ok()?.nth(i)?.ok()
}

fn last_record(batch: &RecordBatch) -> Option<Record> {
    batch.records(64 << 20).ok()?.last()?.ok()
}

/// Offsets differ between the clusters; nothing else may.
fn same_record(a: &Record, b: &Record) -> bool {
    a.key == b.key && a.value == b.value && a.headers == b.headers && a.timestamp == b.timestamp
}
