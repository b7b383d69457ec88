//! Opt-in merging of runs of small forwarded batches (`[flows.batching]`).
//!
//! Works on the plans of one fetch only: it merges what is already there
//! and never waits for more, so it adds no latency. A merged run becomes
//! one [`Plan::Reencode`] (reason [`SlowPathReason::Coalesced`]) whose
//! batches list the source offset of every record, so the offset map stays
//! exact, and whose next offset is the run's last batch's: the source
//! position passes the run only once the target acknowledged all of it.

use ferry_wire::batch::RecordBatch;
use ferry_wire::coalesce::merge;
use ferry_wire::codec::Compression;
use ferry_wire::reencode::ReencodeOptions;

use crate::plan::{Plan, PlanConfig, SlowPathReason, TopicPartition};

/// When to merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coalesce {
    /// Batches smaller than this (bytes on the wire) are merged.
    pub below: usize,
    /// A run stops before its batches add up to more than this.
    pub max: usize,
}

/// A run being collected: the forwarded plans, their codec and size.
struct Run {
    plans: Vec<(i64, Plan)>,
    batches: Vec<RecordBatch>,
    codec: Option<Compression>,
    bytes: usize,
}

impl Run {
    fn new() -> Self {
        Self {
            plans: Vec::new(),
            batches: Vec::new(),
            codec: None,
            bytes: 0,
        }
    }
}

/// `plans` (one fetch's, in order) with every run of two or more
/// consecutive small, non-transactional forwarded batches in one codec
/// merged. Anything else passes through untouched, in order. A run that
/// cannot be merged (a record that does not decode) is forwarded as it was.
pub fn coalesce(
    plans: Vec<(i64, Plan)>,
    rule: &Coalesce,
    config: &PlanConfig,
    tp: &TopicPartition,
) -> Vec<(i64, Plan)> {
    let opts = ReencodeOptions {
        compression: config.reencode_compression,
        max_batch_bytes: config.max_batch_bytes,
        decompress_limit: config.decompress_limit,
        from_offset: i64::MIN,
    };
    let mut out = Vec::with_capacity(plans.len());
    let mut run = Run::new();
    for (next, plan) in plans {
        let small = match &plan {
            Plan::Forward { batch, .. } => eligible(batch, rule),
            _ => None,
        };
        let Some(codec) = small else {
            flush(&mut run, &opts, tp, &mut out);
            out.push((next, plan));
            continue;
        };
        let Plan::Forward { batch, .. } = &plan else {
            continue; // `small` is only set for forwarded batches
        };
        if run.codec.is_some_and(|c| c != codec) || run.bytes + batch.len() > rule.max {
            flush(&mut run, &opts, tp, &mut out);
        }
        run.codec = Some(codec);
        run.bytes += batch.len();
        run.batches.push(batch.clone());
        run.plans.push((next, plan));
    }
    flush(&mut run, &opts, tp, &mut out);
    out
}

/// The batch's codec if it may be merged.
fn eligible(batch: &RecordBatch, rule: &Coalesce) -> Option<Compression> {
    let h = batch.header();
    if batch.len() >= rule.below || h.is_transactional() || h.is_control() {
        return None;
    }
    h.compression().ok()
}

fn flush(run: &mut Run, opts: &ReencodeOptions, tp: &TopicPartition, out: &mut Vec<(i64, Plan)>) {
    let Run { plans, batches, .. } = std::mem::replace(run, Run::new());
    let Some(&(next, _)) = plans.last() else {
        return;
    };
    if plans.len() < 2 {
        out.extend(plans);
        return;
    }
    match merge(&batches, opts) {
        Ok(merged) => out.push((
            next,
            Plan::Reencode {
                reason: SlowPathReason::Coalesced {
                    batches: plans.len(),
                },
                batches: merged,
            },
        )),
        Err(e) => {
            tracing::debug!(
                partition = %tp,
                offset = batches.first().map_or(-1, |b| b.header().base_offset),
                error = %e,
                "cannot coalesce these batches; forwarding them as they are"
            );
            out.extend(plans);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use ferry_wire::batch::FetchedBatch;
    use ferry_wire::builder::{BatchSpec, OffsetDeltas, build_batch};
    use ferry_wire::record::Record;

    use super::*;
    use crate::inflight::{InFlight, Mapping};
    use crate::offset_map::OffsetMap;
    use crate::plan::PartitionPlanner;

    fn tp() -> TopicPartition {
        TopicPartition::new("orders", 3)
    }

    fn record(o: i64) -> Record {
        Record {
            offset: o,
            timestamp: 1_000 + o,
            key: Some(Bytes::from(format!("k{o}"))),
            value: Some(Bytes::from(format!("value {o} ").repeat(10))),
            headers: vec![],
        }
    }

    /// A batch of `offsets`, `pid` making it transactional.
    fn batch(offsets: std::ops::Range<i64>, codec: Compression, pid: Option<i64>) -> RecordBatch {
        let records: Vec<Record> = offsets.map(record).collect();
        let spec = BatchSpec {
            base_offset: records[0].offset,
            offset_deltas: OffsetDeltas::FromRecords,
            transactional: pid.is_some(),
            producer_id: pid.unwrap_or(-1),
            producer_epoch: if pid.is_some() { 0 } else { -1 },
            base_sequence: if pid.is_some() { 0 } else { -1 },
            ..BatchSpec::producer(codec)
        };
        RecordBatch::new(build_batch(&spec, &records).unwrap()).unwrap()
    }

    fn plans(batches: &[RecordBatch]) -> Vec<(i64, Plan)> {
        let first = batches[0].header().base_offset;
        let mut planner = PartitionPlanner::new(tp(), first, PlanConfig::default());
        let entries: Vec<FetchedBatch> = batches.iter().cloned().map(FetchedBatch::V2).collect();
        planner.plan_fetch(entries, []).unwrap()
    }

    const RULE: Coalesce = Coalesce {
        below: 4096,
        max: 16 * 1024,
    };

    /// (next offset, "F" forwarded / "C<n>" coalesced from n / other).
    fn shape(out: &[(i64, Plan)]) -> Vec<(i64, String)> {
        out.iter()
            .map(|(next, p)| {
                let what = match p {
                    Plan::Forward { .. } => "F".to_owned(),
                    Plan::Reencode {
                        reason: SlowPathReason::Coalesced { batches },
                        ..
                    } => format!("C{batches}"),
                    other => format!("{other:?}"),
                };
                (*next, what)
            })
            .collect()
    }

    #[test]
    fn runs_of_small_batches_merge_and_others_break_them() {
        let lz4 = Compression::Lz4;
        let big = batch(30..130, Compression::None, None); // ~12 KiB: not small
        assert!(big.len() >= RULE.below);
        let batches = [
            batch(0..5, lz4, None),
            batch(5..10, lz4, None),
            batch(10..12, lz4, None),
            big,
            batch(130..140, lz4, None), // alone: stays forwarded
            batch(140..150, Compression::Zstd, None), // codec change ends a run
            batch(150..160, Compression::Zstd, None),
        ];
        let out = coalesce(plans(&batches), &RULE, &PlanConfig::default(), &tp());
        assert_eq!(
            shape(&out),
            [
                (12, "C3".to_owned()),
                (130, "F".to_owned()),
                (140, "F".to_owned()),
                (160, "C2".to_owned()),
            ]
        );
        let Plan::Reencode {
            batches: merged, ..
        } = &out[0].1
        else {
            unreachable!()
        };
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].source_offsets, (0..12).collect::<Vec<_>>());
        assert_eq!(merged[0].batch.header().compression().unwrap(), lz4);
    }

    #[test]
    fn transactional_batches_and_skips_are_left_alone() {
        let none = Compression::None;
        let batches = [
            batch(0..3, none, None),
            batch(3..6, none, Some(77)),
            batch(6..9, none, None),
        ];
        let out = coalesce(plans(&batches), &RULE, &PlanConfig::default(), &tp());
        assert_eq!(
            shape(&out),
            [
                (3, "F".to_owned()),
                (6, "F".to_owned()),
                (9, "F".to_owned())
            ]
        );
        // A plan that is not a forward (here a batch before the position,
        // skipped) ends the run too.
        let mut planner = PartitionPlanner::new(tp(), 3, PlanConfig::default());
        let entries = [
            batch(0..3, none, None),
            batch(3..6, none, None),
            batch(6..9, none, None),
        ]
        .map(FetchedBatch::V2);
        let planned = planner.plan_fetch(entries, []).unwrap();
        let out = coalesce(planned, &RULE, &PlanConfig::default(), &tp());
        assert_eq!(out.len(), 2);
        assert!(matches!(out[0].1, Plan::Skip(_)));
        assert_eq!(shape(&out)[1], (9, "C2".to_owned()));
    }

    #[test]
    fn a_run_stops_at_the_maximum() {
        let none = Compression::None;
        let batches: Vec<RecordBatch> = (0..10)
            .map(|i| batch(i * 10..i * 10 + 10, none, None))
            .collect();
        // Sizes differ by a few bytes (longer offsets in the values): four
        // of the largest fit, five of the smallest do not.
        let size = batches.iter().map(RecordBatch::len).max().unwrap();
        assert!(batches[0].len() * 5 > size * 4);
        let rule = Coalesce {
            below: 1 << 20,
            max: size * 4,
        };
        let out = coalesce(plans(&batches), &rule, &PlanConfig::default(), &tp());
        assert_eq!(
            shape(&out),
            [
                (40, "C4".to_owned()),
                (80, "C4".to_owned()),
                (100, "C2".to_owned()),
            ]
        );
    }

    /// The offset map of merged batches translates every source offset
    /// exactly, gaps between source batches included, and the position
    /// passes a merge only once it is acknowledged.
    #[test]
    fn merged_batches_translate_exactly() {
        let lz4 = Compression::Lz4;
        // 10..20 was compacted away between the first two batches.
        let batches = [
            batch(0..10, lz4, None),
            batch(20..25, lz4, None),
            batch(25..30, lz4, None),
        ];
        let mut planner = PartitionPlanner::new(tp(), 0, PlanConfig::default());
        let planned = planner
            .plan_fetch(batches.iter().cloned().map(FetchedBatch::V2), [])
            .unwrap();
        let out = coalesce(planned, &RULE, &PlanConfig::default(), &tp());
        let [
            (
                next,
                Plan::Reencode {
                    batches: merged, ..
                },
            ),
        ] = out.as_slice()
        else {
            panic!("expected one merge: {:?}", shape(&out));
        };
        let mut inflight = InFlight::starting_at(0, 500);
        let mut map = OffsetMap::new();
        let id = inflight.push_pending(*next, Mapping::Records(merged[0].source_offsets.clone()));
        assert_eq!(inflight.advance(&mut map).unwrap().source_offset, 0);
        inflight.ack(id, 500).unwrap();
        let c = inflight.advance(&mut map).unwrap();
        assert_eq!((c.source_offset, c.target_offset), (30, Some(520)));
        for (source, target) in [
            (0, 500),
            (9, 509),
            (10, 510),
            (15, 510),
            (20, 510),
            (24, 514),
            (29, 519),
        ] {
            assert_eq!(
                map.translate(source),
                Some(target),
                "source offset {source}"
            );
        }
    }
}
