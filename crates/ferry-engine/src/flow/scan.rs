//! The decision half of crash resume, without I/O: given the checkpoint,
//! the target partition's end and its last batch, and the source read from
//! the checkpoint on, where does the target's tail end on the source?
//!
//! Ferry is the only writer of its target partitions and produces in
//! source order, so the `end - checkpointed target offset` records on the
//! target are exactly the next records ferry would produce from the
//! checkpointed source offset. Re-planning the source from there (same
//! filter, same plan, [`Plan::produced`]) and counting records finds the
//! source offset after them, even inside a batch. The target's last record
//! is compared with the source record it should be before the result is
//! trusted. Any doubt is a [`ResumeDoubt`]: the caller falls back to the
//! checkpoint (duplicates rather than loss).

use bytes::Bytes;
use ferry_wire::batch::{BatchIter, FetchedBatch, RecordBatch};
use ferry_wire::record::Record;
use ferry_wire::txn::AbortedTxn;

use crate::inflight::Mapping;
use crate::offset_map::{OffsetMap, OutOfOrder};
use crate::plan::{PartitionPlanner, Plan, PlanConfig, TopicPartition};

/// Stop looking after this many source bytes: far more than a checkpoint
/// interval's worth for most partitions, and bounded for all.
pub const MAX_SCAN_BYTES: usize = 256 << 20;

/// Bound on one record batch's decoded size when comparing records.
const DECODE_LIMIT: usize = 64 << 20;

/// Which cluster a read failed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

/// Why the target's tail cannot be matched with the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeDoubt {
    #[error(
        "the target partition ends at {target_end}, before the checkpointed {checkpointed} (truncated or recreated?)"
    )]
    TargetBehindCheckpoint { target_end: i64, checkpointed: i64 },
    #[error("the source has fewer records than the target's tail (the source ends at {at})")]
    SourceEnds { at: i64 },
    #[error(
        "the target's last record differs from the source record at offset {source_offset} it should be"
    )]
    LastRecordDiffers { source_offset: i64 },
    #[error(
        "the target partition ends at {target_end}, before the checkpointed {checkpointed}, and the offset map does not reach down there"
    )]
    TruncatedBelowMap { target_end: i64, checkpointed: i64 },
    #[error("the target's last batch holds no readable record")]
    NoTargetRecord,
    #[error("the target's tail spans more than {limit} source bytes")]
    TooFar { limit: usize },
    #[error("the source batch at offset {offset} cannot be read: {detail}")]
    BadSourceBatch { offset: i64, detail: String },
    #[error("the {side} cannot be read: {detail}")]
    Unreadable { side: Side, detail: String },
}

/// What the scan needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanStep {
    /// Source records from this offset on.
    NeedMore(i64),
    /// Resume at this source offset.
    Found(i64),
    Doubt(ResumeDoubt),
}

/// A scan of the source from the checkpoint over the target's tail.
#[derive(Debug)]
pub struct ResumeScan {
    planner: PartitionPlanner,
    /// Target records not yet matched with source records.
    remaining: i64,
    /// The tail's records mapped so far, and the target offset of the next.
    tail: OffsetMap,
    cursor: i64,
    scanned: usize,
    limit: usize,
    last_target: Option<Record>,
}

impl ResumeScan {
    /// The scan of `source` from the checkpoint (`source_offset`,
    /// `target_offset`) over a target partition that ends at `target_end`.
    /// `Ok(None)`: the target holds nothing after the checkpoint (or the
    /// checkpoint has no target offset), resume at the checkpoint.
    pub fn new(
        source: TopicPartition,
        checkpoint: (i64, Option<i64>),
        target_end: i64,
        config: PlanConfig,
    ) -> Result<Option<Self>, ResumeDoubt> {
        let (source_offset, target_offset) = checkpoint;
        let checkpointed = target_offset.unwrap_or(target_end);
        if target_end < checkpointed {
            return Err(ResumeDoubt::TargetBehindCheckpoint {
                target_end,
                checkpointed,
            });
        }
        if target_end == checkpointed {
            return Ok(None);
        }
        // Only record counts matter here: no CRC pass over what is only counted.
        let config = PlanConfig {
            verify_crc: false,
            ..config
        };
        Ok(Some(Self {
            planner: PartitionPlanner::new(source, source_offset, config),
            remaining: target_end - checkpointed,
            tail: OffsetMap::new(),
            cursor: checkpointed,
            scanned: 0,
            limit: MAX_SCAN_BYTES,
            last_target: None,
        }))
    }

    /// A smaller scan limit (tests).
    #[must_use]
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The target partition's last record, from a fetch at its last offset
    /// (`target_end - 1`; the fetch returns that batch whole).
    pub fn target_tail(&mut self, records: &Bytes, target_end: i64) -> Result<(), ResumeDoubt> {
        let mut last = None;
        for entry in BatchIter::new(records.clone()) {
            let entry = entry.map_err(|e| ResumeDoubt::Unreadable {
                side: Side::Target,
                detail: e.to_string(),
            })?;
            if let FetchedBatch::V2(b) = entry {
                if b.header().base_offset < target_end {
                    last = Some(b);
                }
            }
        }
        self.last_target = last.and_then(|b| b.records(DECODE_LIMIT).ok()?.last()?.ok());
        match self.last_target {
            Some(_) => Ok(()),
            None => Err(ResumeDoubt::NoTargetRecord),
        }
    }

    /// The first source offset the scan needs.
    pub fn first_step(&self) -> ScanStep {
        ScanStep::NeedMore(self.planner.position())
    }

    /// Source records fetched at the offset the last step asked for.
    pub fn feed(
        &mut self,
        records: &Bytes,
        aborted: impl IntoIterator<Item = AbortedTxn>,
    ) -> ScanStep {
        let at = self.planner.position();
        let mut entries = Vec::new();
        for entry in BatchIter::new(records.clone()) {
            match entry {
                Ok(e) => entries.push(e),
                Err(e) => {
                    return ScanStep::Doubt(ResumeDoubt::BadSourceBatch {
                        offset: entries.last().map_or(at, FetchedBatch::next_offset),
                        detail: e.to_string(),
                    });
                }
            }
        }
        if entries.is_empty() {
            return ScanStep::Doubt(ResumeDoubt::SourceEnds { at });
        }
        self.scanned += records.len();
        let plans = match self.planner.plan_fetch(entries, aborted) {
            Ok(plans) => plans,
            Err(e) => {
                return ScanStep::Doubt(ResumeDoubt::BadSourceBatch {
                    offset: at,
                    detail: e.to_string(),
                });
            }
        };
        for (next_offset, plan) in plans {
            if let Some(step) = self.count(next_offset, plan) {
                return step;
            }
        }
        if self.scanned > self.limit {
            return ScanStep::Doubt(ResumeDoubt::TooFar { limit: self.limit });
        }
        ScanStep::NeedMore(self.planner.position())
    }

    /// Counts one plan's batches off the tail; the step once the tail ends
    /// in one of them.
    fn count(&mut self, next_offset: i64, plan: Plan) -> Option<ScanStep> {
        for produced in plan.produced(next_offset) {
            let count = produced.mapping.records();
            let mapped = count.min(self.remaining);
            if self.map_tail(&produced.mapping, mapped).is_err() {
                return Some(ScanStep::Doubt(ResumeDoubt::BadSourceBatch {
                    offset: produced.next_offset,
                    detail: "its records do not follow the ones before".into(),
                }));
            }
            if self.remaining > count {
                self.remaining -= count;
                continue;
            }
            // The tail ends in this batch, after its `remaining`-th record.
            // (A crash mid-way through a split batch, or a resume inside
            // one, can leave a tail that ends inside what this re-planning
            // produces as one batch.)
            let k = usize::try_from(self.remaining - 1).ok()?;
            let Some(last) = produced.mapping.source_offset(k) else {
                return Some(ScanStep::Doubt(ResumeDoubt::BadSourceBatch {
                    offset: produced.next_offset,
                    detail: "fewer records than its header counts".into(),
                }));
            };
            let source_record = nth_record(&produced.batch, k);
            let same = match (&source_record, &self.last_target) {
                (Some(s), Some(t)) => same_record(s, t),
                _ => false,
            };
            return Some(if same {
                ScanStep::Found(last + 1)
            } else {
                ScanStep::Doubt(ResumeDoubt::LastRecordDiffers {
                    source_offset: last,
                })
            });
        }
        None
    }

    /// Records that the first `n` records of a counted batch landed at the
    /// cursor.
    fn map_tail(&mut self, mapping: &Mapping, n: i64) -> Result<(), OutOfOrder> {
        match mapping {
            Mapping::Contiguous { source_base, .. } => {
                self.tail.record(*source_base, self.cursor, n)?;
            }
            Mapping::Records(offsets) => {
                let n = usize::try_from(n).unwrap_or(0).min(offsets.len());
                self.tail.record_offsets(&offsets[..n], self.cursor)?;
            }
            Mapping::None => {}
        }
        self.cursor += n;
        Ok(())
    }

    /// Where each record of the target's tail came from, exactly (complete
    /// once the scan found its answer): recorded instead of an anchor, the
    /// offset map stays exact across a crash.
    pub fn tail_map(&self) -> &OffsetMap {
        &self.tail
    }
}

/// The target lost acknowledged records: it ends at `target_end`, below
/// the checkpointed target offset (an unclean leader election or a disk
/// lost on the target). The exact offset map says which source record
/// landed at `target_end`: mirroring resumes there, so the lost records are
/// written again and nothing after them twice. Where the map only holds an
/// anchor there, resuming at the anchor's source re-sends a few records
/// (duplicates rather than loss), as it does past the map's last run (the
/// map is written before the checkpoint, so it reaches the checkpoint at
/// least by an anchor). A map that does not reach down to `target_end`
/// cannot say: the caller falls back to the checkpoint.
///
/// An empty target partition is taken as a target topic deleted and
/// created again on purpose (docs/guarantees.md, "target topic deleted"):
/// what was deleted with it is not copied again, mirroring goes on from
/// the checkpoint.
pub fn after_target_truncation(
    map: &OffsetMap,
    target_end: i64,
    checkpoint: (i64, i64),
) -> Result<i64, ResumeDoubt> {
    let (source_offset, checkpointed) = checkpoint;
    if target_end == 0 {
        return Err(ResumeDoubt::TargetBehindCheckpoint {
            target_end,
            checkpointed,
        });
    }
    let doubt = ResumeDoubt::TruncatedBelowMap {
        target_end,
        checkpointed,
    };
    if map
        .runs()
        .next()
        .is_none_or(|first| first.target > target_end)
    {
        return Err(doubt);
    }
    map.translate_back(target_end)
        .filter(|&s| s <= source_offset)
        .ok_or(doubt)
}

fn nth_record(batch: &RecordBatch, i: usize) -> Option<Record> {
    batch.records(DECODE_LIMIT).ok()?.nth(i)?.ok()
}

/// Offsets differ between the clusters; nothing else may.
fn same_record(a: &Record, b: &Record) -> bool {
    a.key == b.key && a.value == b.value && a.headers == b.headers && a.timestamp == b.timestamp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_target_resumes_at_the_first_lost_record() {
        let mut map = OffsetMap::new();
        map.record(0, 0, 10).unwrap(); // source 0..10 -> target 0..10
        map.record(12, 10, 5).unwrap(); // 10, 11: an aborted record and its marker
        map.record_anchor(20, 15).unwrap(); // 17..20 gone somewhere in 15..
        map.record(25, 18, 5).unwrap();
        let resume = |end| after_target_truncation(&map, end, (30, 23));
        assert_eq!(resume(4), Ok(4), "inside a run: exact");
        assert_eq!(resume(10), Ok(12), "after a gap: the next mirrored record");
        assert_eq!(
            resume(16),
            Ok(20),
            "in an anchor's stretch: re-send from it"
        );
        assert_eq!(resume(20), Ok(27));
        assert_eq!(resume(1), Ok(1));
        assert!(
            matches!(resume(0), Err(ResumeDoubt::TargetBehindCheckpoint { .. })),
            "an empty target: deleted and created again on purpose"
        );
        // A map that starts above the truncation point cannot say.
        let mut late = OffsetMap::new();
        late.record(100, 50, 10).unwrap();
        assert_eq!(
            after_target_truncation(&late, 40, (110, 60)),
            Err(ResumeDoubt::TruncatedBelowMap {
                target_end: 40,
                checkpointed: 60
            })
        );
        assert!(after_target_truncation(&OffsetMap::new(), 2, (5, 5)).is_err());
    }
}
