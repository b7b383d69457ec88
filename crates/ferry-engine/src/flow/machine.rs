//! One source partition's decisions, without I/O: what to send for each
//! fetch, and which position may be checkpointed as acknowledgements come
//! back.
//!
//! The partition task (`partition.rs`) moves fetched data, acknowledgements
//! and time into a [`PartitionMachine`] and sends the batches it hands out;
//! everything that decides lives here, so it is tested without brokers
//! (unit tests below, simulations in `tests/sim_*.rs`).
//!
//! Order is the invariant: batches are handed out in source order, and the
//! committed position passes a source offset only once everything before it
//! is acknowledged or needs nothing produced ([`crate::inflight`]).

use std::collections::VecDeque;

use bytes::Bytes;
use ferry_client::{KafkaCode, PartitionData};
use ferry_wire::batch::{BatchHeader, BatchIter, RecordBatch};

use crate::EngineError;
use crate::coalesce::{Coalesce, coalesce};
use crate::inflight::{Committed, EntryId, InFlight};
use crate::metrics::{AckedBatch, BatchPath};
use crate::offset_map::OffsetMap;
use crate::offset_store::RunJournal;
use crate::plan::{PartitionPlanner, Plan, PlanConfig, SlowPathReason, TopicPartition};

/// A batch to produce, in order.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Acknowledge it with this id.
    pub id: EntryId,
    pub batch: RecordBatch,
    pub header: BatchHeader,
    /// The first source offset of its records (for errors).
    pub source_offset: i64,
    /// For the metrics (`produce_time` is filled in on acknowledgement).
    pub stats: AckedBatch,
    /// The fetched bytes it came from: holding them keeps their response
    /// frame charged to the flow's memory budget until the target has the
    /// batch (re-encoded batches are new memory, but no larger).
    pub fetched: Bytes,
}

/// What one fetch did.
#[derive(Debug, Default)]
pub struct FetchOutcome {
    /// Fetched before a seek (the position moved since): ignored.
    pub stale: bool,
    /// Batches handed out to send.
    pub batches: usize,
    /// Entries that need nothing produced (markers, aborted data, empties).
    pub skipped: usize,
    /// A bad source batch: what came before it is still sent, then the
    /// partition stops with this error.
    pub failure: Option<EngineError>,
}

/// Where a retention gap left the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Offsets deleted at the source before they were mirrored.
    pub lost: i64,
    /// Where fetching continues.
    pub resume_at: i64,
}

/// The I/O-free core of one partition.
#[derive(Debug)]
pub struct PartitionMachine {
    tp: TopicPartition,
    planner: PartitionPlanner,
    inflight: InFlight,
    map: OffsetMap,
    coalesce: Option<Coalesce>,
    outbox: VecDeque<Outgoing>,
}

impl PartitionMachine {
    /// A machine for `tp` whose next source offset is `position` and whose
    /// target partition ends at `target_end` (where the next batch lands).
    /// `anchor`: source and target offsets from which the map is not known
    /// exactly up to `position` (a restart after a crash). An anchor past
    /// the start on either side is stale (the target lost records since
    /// it was written, see [`super::scan::after_target_truncation`]) and
    /// is dropped: the runs from here on replace what the map held.
    pub fn new(
        tp: TopicPartition,
        position: i64,
        target_end: i64,
        config: PlanConfig,
        coalesce: Option<Coalesce>,
        anchor: Option<(i64, i64)>,
    ) -> Result<Self, EngineError> {
        let mut map = OffsetMap::new();
        let anchor = anchor.filter(|&(source, target)| source <= position && target <= target_end);
        if let Some((source, target)) = anchor {
            map.record_anchor(source, target)
                .map_err(|e| EngineError::Internal {
                    tp: tp.clone(),
                    detail: e.to_string(),
                })?;
        }
        Ok(Self {
            planner: PartitionPlanner::new(tp.clone(), position, config),
            inflight: InFlight::starting_at(position, target_end),
            map,
            coalesce,
            outbox: VecDeque::new(),
            tp,
        })
    }

    /// Records where the records before the start landed when a restart
    /// knows it exactly (the resume scan's tail map): it replaces the
    /// anchor over the same stretch, so the map stays exact across a crash.
    pub fn with_known_tail(mut self, tail: &OffsetMap) -> Result<Self, EngineError> {
        for run in tail.runs() {
            self.map.record_run(run).map_err(|e| self.internal(&e))?;
        }
        Ok(self)
    }

    /// The position that may be checkpointed.
    pub fn committed(&self) -> Committed {
        self.inflight.committed()
    }

    /// The next source offset to fetch.
    pub fn fetch_position(&self) -> i64 {
        self.planner.position()
    }

    /// The next batch to send, if any (still held until [`Self::sent`]).
    pub fn next_send(&self) -> Option<&Outgoing> {
        self.outbox.front()
    }

    /// The batch [`Self::next_send`] returned was handed to the producer.
    pub fn sent(&mut self) -> Option<Outgoing> {
        self.outbox.pop_front()
    }

    /// Batches planned but not handed to the producer.
    pub fn unsent(&self) -> usize {
        self.outbox.len()
    }

    /// Batches sent or to be sent, not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.inflight.pending()
    }

    /// Forgets the batches not yet sent (a stop: the position stays before
    /// them, so a restart sends them).
    pub fn abandon_unsent(&mut self) {
        self.outbox.clear();
    }

    /// Hands the map's finished runs to `journal` (before the position they
    /// lead to is published).
    pub fn journal_into(&mut self, journal: &mut RunJournal) {
        journal.absorb(&mut self.map);
    }

    /// The offset map not yet handed to a journal (for tests).
    pub fn map(&self) -> &OffsetMap {
        &self.map
    }

    /// Plans one fetch of the partition. A fetch error comes back as is,
    /// except `OFFSET_OUT_OF_RANGE` (`Ok(None)`): the caller looks up the
    /// source's log start and calls [`Self::on_log_start`].
    pub fn on_fetched(
        &mut self,
        data: &PartitionData,
    ) -> Result<Option<FetchOutcome>, EngineError> {
        if let Some(code) = data.error {
            if code == KafkaCode::OFFSET_OUT_OF_RANGE {
                return Ok(None);
            }
            return Err(self.stopped_at(code));
        }
        if data.fetch_offset != self.planner.position() {
            return Ok(Some(FetchOutcome {
                stale: true,
                ..FetchOutcome::default()
            }));
        }
        let mut entries = Vec::new();
        let mut bad = None;
        for entry in BatchIter::new(data.records.clone()) {
            match entry {
                Ok(entry) => entries.push(entry),
                Err(source) => {
                    bad = Some(EngineError::BadBatch {
                        tp: self.tp.clone(),
                        offset: entries
                            .last()
                            .map_or(self.planner.position(), |e| e.next_offset()),
                        source,
                    });
                    break;
                }
            }
        }
        // Batches before a bad one are sent; the error comes after them.
        let (plans, corrupt) = self
            .planner
            .plan_fetch_until_error(entries, data.aborted_transactions.iter().copied());
        let plans = match &self.coalesce {
            Some(rule) => coalesce(plans, rule, self.planner.config(), &self.tp),
            None => plans,
        };
        let mut outcome = FetchOutcome {
            failure: corrupt.or(bad),
            ..FetchOutcome::default()
        };
        for (next_offset, plan) in plans {
            let batches = self.push_plan(next_offset, plan, &data.records);
            outcome.batches += batches;
            outcome.skipped += usize::from(batches == 0);
        }
        self.advance()?;
        Ok(Some(outcome))
    }

    /// Queues what one plan produces; a plan that produces nothing (a skip,
    /// or a batch straddling the position whose records all lie before it)
    /// only moves the position. Returns the batches queued.
    fn push_plan(&mut self, next_offset: i64, plan: Plan, fetched: &Bytes) -> usize {
        let coalesced = match &plan {
            Plan::Forward { .. } => None,
            Plan::Reencode {
                reason: SlowPathReason::Coalesced { batches },
                ..
            } => Some(*batches),
            Plan::Reencode { .. } => Some(0),
            Plan::Skip(_) => None,
        };
        let produced = plan.produced(next_offset);
        if produced.len() == 0 {
            self.inflight.push_skip(next_offset);
            return 0;
        }
        let last = produced.len() - 1;
        let n = produced.len();
        for (i, p) in produced.enumerate() {
            let path = match coalesced {
                None => BatchPath::Forwarded,
                Some(0) => BatchPath::Reencoded,
                Some(sources) => BatchPath::Coalesced(if i == last { sources } else { 0 }),
            };
            let stats = AckedBatch {
                path,
                bytes: p.batch.len(),
                records: p.mapping.records(),
                max_timestamp: p.batch.header().max_timestamp,
                produce_time: std::time::Duration::ZERO,
            };
            let source_offset = p.mapping.first().unwrap_or(p.next_offset);
            let id = self.inflight.push_pending(p.next_offset, p.mapping);
            self.outbox.push_back(Outgoing {
                id,
                batch: p.batch,
                header: p.header,
                source_offset,
                stats,
                fetched: fetched.clone(),
            });
        }
        n
    }

    /// The target acknowledged batch `id` at `target_base` (-1: a
    /// DUPLICATE_SEQUENCE_NUMBER answer without the offset). Returns the
    /// committed position.
    pub fn on_ack(&mut self, id: EntryId, target_base: i64) -> Result<Committed, EngineError> {
        self.inflight
            .ack(id, target_base)
            .map_err(|e| self.internal(&e))?;
        self.advance()
    }

    /// The source answered OFFSET_OUT_OF_RANGE and its log starts at
    /// `log_start`: below it, retention deleted records before they were
    /// mirrored; they are skipped (reported by the caller). At or above
    /// the position the source log was truncated under ferry (unclean
    /// leader election): no guessing, the partition stops.
    pub fn on_log_start(&mut self, log_start: i64) -> Result<Gap, EngineError> {
        let position = self.planner.position();
        if position >= log_start {
            return Err(self.stopped_at(KafkaCode::OFFSET_OUT_OF_RANGE));
        }
        self.planner = PartitionPlanner::new(self.tp.clone(), log_start, *self.planner.config());
        self.inflight.push_skip(log_start);
        self.advance()?;
        Ok(Gap {
            lost: log_start - position,
            resume_at: log_start,
        })
    }

    fn advance(&mut self) -> Result<Committed, EngineError> {
        self.inflight.advance(&mut self.map).map_err(|e| {
            // The source side moved on but the target acknowledged below
            // where acknowledged records ended: the target lost them
            // (unclean election, disk loss). Not a bug of ours: the
            // partition restarts, and the resume scan finds the first lost
            // record through the exact map and mirrors again from there.
            if e.new.source >= e.last.source + e.last.len
                && e.new.target < e.last.target + e.last.len
            {
                EngineError::TargetTruncated {
                    tp: self.tp.clone(),
                    acknowledged_at: e.new.target,
                    expected: e.last.target + e.last.len,
                }
            } else {
                EngineError::Internal {
                    tp: self.tp.clone(),
                    detail: e.to_string(),
                }
            }
        })
    }

    fn stopped_at(&self, code: KafkaCode) -> EngineError {
        EngineError::SourcePartition {
            tp: self.tp.clone(),
            offset: self.planner.position(),
            code,
        }
    }

    fn internal(&self, e: &dyn std::fmt::Display) -> EngineError {
        EngineError::Internal {
            tp: self.tp.clone(),
            detail: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::{Bytes, BytesMut};
    use ferry_wire::builder::{BatchSpec, OffsetDeltas, build_batch};
    use ferry_wire::codec::Compression;
    use ferry_wire::record::Record;

    use super::*;

    fn tp() -> TopicPartition {
        TopicPartition::new("orders", 0)
    }

    fn record(o: i64) -> Record {
        Record {
            offset: o,
            timestamp: 1_000 + o,
            key: Some(Bytes::from(format!("k{o}"))),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![],
        }
    }

    /// A batch holding `offsets` (gaps kept) whose last offset is `last`.
    fn batch(offsets: &[i64], last: i64) -> Bytes {
        let records: Vec<Record> = offsets.iter().map(|&o| record(o)).collect();
        let spec = BatchSpec {
            base_offset: offsets[0],
            offset_deltas: OffsetDeltas::FromRecords,
            ..BatchSpec::producer(Compression::None)
        };
        let mut bytes = BytesMut::from(&build_batch(&spec, &records).unwrap()[..]);
        let delta = i32::try_from(last - offsets[0]).unwrap();
        bytes[23..27].copy_from_slice(&delta.to_be_bytes()); // lastOffsetDelta
        let crc = RecordBatch::new(bytes.clone().freeze())
            .unwrap()
            .compute_crc();
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        bytes.freeze()
    }

    fn fetch(at: i64, batches: &[Bytes]) -> PartitionData {
        PartitionData {
            tp: tp(),
            fetch_offset: at,
            records: batches.concat().into(),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: Vec::new(),
            error: None,
        }
    }

    fn machine(position: i64, target_end: i64) -> PartitionMachine {
        PartitionMachine::new(
            tp(),
            position,
            target_end,
            PlanConfig::default(),
            None,
            None,
        )
        .unwrap()
    }

    /// Issue 14 item 14, first bullet (engine review 16): a resume inside
    /// a compacted batch whose surviving records all lie before the
    /// position plans no batch at all. The committed position must still
    /// pass it, or an idle partition's position and lag stay behind.
    #[test]
    fn a_straddling_batch_that_produces_nothing_still_moves_the_position() {
        let mut m = machine(106, 50);
        let out = m
            .on_fetched(&fetch(106, &[batch(&[100, 105], 120)]))
            .unwrap()
            .unwrap();
        assert_eq!((out.batches, out.skipped), (0, 1));
        assert_eq!(m.committed().source_offset, 121);
        assert_eq!(m.committed().target_offset, Some(50));
    }

    #[test]
    fn batches_go_out_in_order_and_commit_in_order() {
        let mut m = machine(0, 500);
        let out = m
            .on_fetched(&fetch(0, &[batch(&[0, 1, 2], 2), batch(&[3, 5], 5)]))
            .unwrap()
            .unwrap();
        assert_eq!(out.batches, 2);
        let a = m.sent().unwrap();
        let b = m.sent().unwrap();
        assert!(m.next_send().is_none());
        assert_eq!((a.source_offset, b.source_offset), (0, 3));
        assert_eq!(b.stats.path, BatchPath::Reencoded, "offset gap");
        assert_eq!(m.on_ack(b.id, 503).unwrap().source_offset, 0);
        let c = m.on_ack(a.id, 500).unwrap();
        assert_eq!((c.source_offset, c.target_offset), (6, Some(505)));
        assert_eq!(m.map().translate(4), Some(504));
        assert!(m.on_ack(a.id, 500).is_err(), "acknowledged twice");
        assert_eq!(m.fetch_position(), 6);
        // A fetch from before a seek is ignored.
        assert!(m.on_fetched(&fetch(3, &[])).unwrap().unwrap().stale);
    }

    #[test]
    fn a_retention_gap_is_skipped_and_a_truncation_stops() {
        let mut m = machine(10, 0);
        let mut gone = fetch(10, &[]);
        gone.error = Some(KafkaCode::OFFSET_OUT_OF_RANGE);
        assert!(
            m.on_fetched(&gone).unwrap().is_none(),
            "ask for the log start"
        );
        let gap = m.on_log_start(25).unwrap();
        assert_eq!((gap.lost, gap.resume_at), (15, 25));
        assert_eq!(m.committed().source_offset, 25);
        assert!(matches!(
            m.on_log_start(20),
            Err(EngineError::SourcePartition { offset: 25, .. })
        ));
        let mut other = fetch(25, &[]);
        other.error = Some(KafkaCode::UNKNOWN_SERVER_ERROR);
        assert!(m.on_fetched(&other).is_err());
    }

    #[test]
    fn a_bad_batch_stops_after_the_batches_before_it() {
        let good = batch(&[0, 1], 1);
        let mut bad = BytesMut::from(&batch(&[2, 3], 3)[..]);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let mut m = machine(0, 0);
        let out = m
            .on_fetched(&fetch(0, &[good, bad.freeze()]))
            .unwrap()
            .unwrap();
        assert_eq!(out.batches, 1);
        assert!(matches!(
            out.failure,
            Some(EngineError::CorruptBatch { offset: 2, .. })
        ));
        let a = m.sent().unwrap();
        assert_eq!(m.on_ack(a.id, 0).unwrap().source_offset, 2);
    }

    #[test]
    fn unsent_batches_are_abandoned_on_stop_and_the_position_stays_before_them() {
        let mut m = machine(0, 0);
        m.on_fetched(&fetch(0, &[batch(&[0], 0), batch(&[1], 1)]))
            .unwrap()
            .unwrap();
        let a = m.sent().unwrap();
        m.abandon_unsent();
        assert_eq!(m.unsent(), 0);
        assert_eq!(m.on_ack(a.id, 0).unwrap().source_offset, 1);
    }

    /// Issue 14 item 9 while running: an acknowledgement below the target
    /// offsets acknowledged before means the target lost records. That is
    /// a restart (transient), not an internal error that stops for good.
    #[test]
    fn an_acknowledgement_below_acknowledged_records_is_a_target_truncation() {
        let mut m = machine(0, 500);
        m.on_fetched(&fetch(0, &[batch(&[0, 1, 2], 2), batch(&[3, 4], 4)]))
            .unwrap()
            .unwrap();
        let first = m.sent().unwrap();
        let second = m.sent().unwrap();
        m.on_ack(first.id, 500).unwrap();
        let error = m.on_ack(second.id, 490).unwrap_err();
        assert!(
            matches!(
                error,
                EngineError::TargetTruncated {
                    acknowledged_at: 490,
                    expected: 503,
                    ..
                }
            ),
            "{error}"
        );
    }
}
