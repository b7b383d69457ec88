//! The exact source → target offset map of one partition.
//!
//! Every produce acknowledgement tells where a batch landed on the target.
//! Offsets inside a forwarded batch keep their deltas, so a batch maps a run
//! of consecutive source offsets onto consecutive target offsets; runs that
//! continue each other merge, so a partition replicated without gaps is one
//! entry however long it is. Offsets that were never replicated (aborted
//! transactions, markers, compaction gaps) fall between runs.
//!
//! An *anchor* is a run of length 0: "from this source offset on, until the
//! next run, resume at this target offset". A restart after a crash records
//! one over the stretch it cannot map exactly (between the last checkpoint
//! and the records it found already on the target), so translations there
//! err towards re-reading a few records, never towards skipping one.

use std::collections::BTreeMap;

/// Memory of one map entry, about: key, span and the B-tree's share
/// (measured ~56 bytes per entry in a release-like build).
pub const ENTRY_BYTES: usize = 80;

/// A run: source offsets `source..source + len` landed at `target..target + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub source: i64,
    pub target: i64,
    pub len: i64,
}

impl Run {
    fn source_end(&self) -> i64 {
        self.source + self.len
    }

    fn target_end(&self) -> i64 {
        self.target + self.len
    }
}

/// Runs keyed by their first source offset, regular stretches of them held
/// as one span: a transactional stream leaves a one-offset gap (its
/// commit marker) after every transaction, so a run per transaction would
/// cost ~56 bytes each for as long as the target keeps the records; as a
/// span, any number of equal transactions costs one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetMap {
    spans: BTreeMap<i64, Span>,
}

/// `count` runs of `len` records each, evenly spaced: run `i` maps source
/// `source + i * source_stride ..` to target `target + i * target_stride ..`.
/// The last span of a map is always a single run (the one that may grow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    first: Run,
    source_stride: i64,
    target_stride: i64,
    count: i64,
}

impl Span {
    fn single(run: Run) -> Self {
        Self {
            first: run,
            source_stride: 0,
            target_stride: 0,
            count: 1,
        }
    }

    fn run(&self, i: i64) -> Run {
        Run {
            source: self.first.source + i * self.source_stride,
            target: self.first.target + i * self.target_stride,
            len: self.first.len,
        }
    }

    fn last(&self) -> Run {
        self.run(self.count - 1)
    }

    /// The run holding `source`, or the last one starting before it.
    fn at_source(&self, source: i64) -> Run {
        if self.count == 1 {
            return self.first;
        }
        self.run(((source - self.first.source) / self.source_stride).clamp(0, self.count - 1))
    }

    /// The run holding `target`, or the last one starting before it.
    fn at_target(&self, target: i64) -> Run {
        if self.count == 1 {
            return self.first;
        }
        self.run(((target - self.first.target) / self.target_stride).clamp(0, self.count - 1))
    }

    /// Adds `next` as the following run if it keeps the spacing.
    fn try_extend(&mut self, next: Run) -> bool {
        let len = self.first.len;
        if len == 0 || next.len != len {
            return false;
        }
        let last = self.last();
        let (ds, dt) = (next.source - last.source, next.target - last.target);
        let fits = if self.count == 1 {
            ds >= len && dt >= len && (ds, dt) != (len, len)
        } else {
            (ds, dt) == (self.source_stride, self.target_stride)
        };
        if fits {
            self.source_stride = ds;
            self.target_stride = dt;
            self.count += 1;
        }
        fits
    }

    /// Keeps the first `count` runs (at least one).
    fn keep(&mut self, count: i64) {
        self.count = count.clamp(1, self.count);
        if self.count == 1 {
            self.source_stride = 0;
            self.target_stride = 0;
        }
    }
}

/// Why a mapping was refused: runs must move forward on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("offset map run {new:?} does not follow the last run {last:?}")]
pub struct OutOfOrder {
    pub last: Run,
    pub new: Run,
}

/// Runs of `stride` that start before `offset - origin` (rounded up).
fn runs_before(offset: i64, origin: i64, stride: i64) -> i64 {
    if offset <= origin {
        0
    } else if stride <= 0 {
        1
    } else {
        (offset - origin + stride - 1) / stride
    }
}

impl OffsetMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn last_run(&self) -> Option<Run> {
        self.spans.values().next_back().map(Span::last)
    }

    /// Inserts `run` as a new last span, after folding the previous last run
    /// (complete now) into the span before it when it keeps its spacing.
    fn push_span(&mut self, run: Run) {
        let mut tail = self.spans.iter().rev().take(2).map(|(k, s)| (*k, *s));
        if let (Some((last_key, last)), Some((before_key, mut before))) = (tail.next(), tail.next())
        {
            if last.count == 1 && before.try_extend(last.first) {
                self.spans.insert(before_key, before);
                self.spans.remove(&last_key);
            }
        }
        self.spans.insert(run.source, Span::single(run));
    }

    /// Makes the last span a single run again (the one that may grow).
    fn open_last(&mut self) {
        let Some(mut entry) = self.spans.last_entry() else {
            return;
        };
        let span = entry.get_mut();
        if span.count > 1 {
            let last = span.last();
            span.keep(span.count - 1);
            self.spans.insert(last.source, Span::single(last));
        }
    }

    /// Records that source offsets `source..source+len` landed at `target..`.
    /// Runs must arrive in order (acknowledgements are applied in order).
    pub fn record(&mut self, source: i64, target: i64, len: i64) -> Result<(), OutOfOrder> {
        if len <= 0 {
            return Ok(());
        }
        let new = Run {
            source,
            target,
            len,
        };
        self.open_last();
        if let Some(mut entry) = self.spans.last_entry() {
            let last = entry.get().last();
            if source < last.source_end() || target < last.target_end() {
                return Err(OutOfOrder { last, new });
            }
            let span = entry.get_mut();
            if source == last.source_end() && target == last.target_end() && span.count == 1 {
                span.first.len += len;
                return Ok(());
            }
        }
        self.push_span(new);
        Ok(())
    }

    /// Records an anchor (see the module docs): source offsets from `source`
    /// up to the next run translate to `target`.
    pub fn record_anchor(&mut self, source: i64, target: i64) -> Result<(), OutOfOrder> {
        let new = Run {
            source,
            target,
            len: 0,
        };
        if let Some(last) = self.last_run() {
            if source < last.source_end() || target < last.target_end() {
                return Err(OutOfOrder { last, new });
            }
        }
        self.push_span(new);
        Ok(())
    }
    /// Records a re-encoded batch: record `i` of a batch landing at `target`
    /// came from `source_offsets[i]` (increasing, possibly with gaps).
    pub fn record_offsets(
        &mut self,
        source_offsets: &[i64],
        target: i64,
    ) -> Result<(), OutOfOrder> {
        let mut i = 0;
        while i < source_offsets.len() {
            let start = i;
            while i + 1 < source_offsets.len() && source_offsets[i + 1] == source_offsets[i] + 1 {
                i += 1;
            }
            i += 1;
            let len = i64::try_from(i - start).unwrap_or(i64::MAX);
            let t = target + i64::try_from(start).unwrap_or(i64::MAX);
            self.record(source_offsets[start], t, len)?;
        }
        Ok(())
    }

    /// The target offset of the first replicated record at or after source
    /// offset `source`: where a consumer that would read `source` next on the
    /// source continues on the target.
    ///
    /// Inside a run: exact. In a gap after a run (aborted or compacted
    /// records, markers) or past the last run: the target offset after that
    /// run, where the next replicated record landed or will land (ferry is
    /// the target partition's only writer). After an anchor: the anchor's
    /// target. Before every run: the first run's target. `None` for an
    /// empty map.
    pub fn translate(&self, source: i64) -> Option<i64> {
        if let Some((_, span)) = self.spans.range(..=source).next_back() {
            let run = span.at_source(source);
            if source < run.source_end() {
                return Some(run.target + (source - run.source));
            }
            return Some(run.target_end());
        }
        self.spans.values().next().map(|span| span.first.target)
    }

    /// The other way round (failback): for a consumer whose next target
    /// offset is `target`, the source offset it continues at, so that it
    /// reads on the source exactly the records it has not read on the
    /// target.
    ///
    /// Inside a run: exact. Between runs or past the last one: the next
    /// run's first source offset, or the source offset after the last run
    /// (what lies between was never mirrored: aborted, compacted away or
    /// markers). In an anchor's stretch (not known exactly): the anchor's
    /// source offset, so records are re-read, never skipped. Before every
    /// run: the first run's source. `None` for an empty map.
    pub fn translate_back(&self, target: i64) -> Option<i64> {
        // Runs ascend on both sides: the last one starting at or before
        // `target` holds it or ends before it.
        let Some(span) = self.spans.values().rev().find(|s| s.first.target <= target) else {
            return self.spans.values().next().map(|span| span.first.source);
        };
        let run = span.at_target(target);
        if target < run.target_end() {
            return Some(run.source + (target - run.target));
        }
        if run.len == 0 {
            return Some(run.source);
        }
        Some(run.source_end())
    }

    /// Records `run` (an anchor if its length is 0) as the authoritative
    /// map from its source offset on: whatever it overlaps is dropped first
    /// (a longer version of the last run, or runs persisted ahead of a
    /// checkpoint that a restart re-mapped).
    pub fn record_run(&mut self, run: Run) -> Result<(), OutOfOrder> {
        // The common case, once per acknowledgement: the last run, grown.
        // Updated in place: truncating and re-inserting would allocate.
        self.open_last();
        if let Some(mut entry) = self.spans.last_entry() {
            let span = entry.get_mut();
            if span.count == 1 && span.first.source == run.source && span.first.target == run.target
            {
                span.first.len = run.len;
                return Ok(());
            }
        }
        if self.end().is_some_and(|(source, _)| source > run.source)
            || self.spans.contains_key(&run.source)
        {
            self.truncate_from(run.source);
        }
        if run.len == 0 {
            self.record_anchor(run.source, run.target)
        } else {
            self.record(run.source, run.target, run.len)
        }
    }

    /// Records `run` as newer knowledge than every run held (a later write
    /// of the map): it replaces what it overlaps and every run after it
    /// (they belong to an earlier run of ferry that the newer one re-mirrored
    /// from `run.source`), and cuts runs before it that end past its target
    /// offset (a target that was reset). Runs consistent with it stay: a
    /// newer write never discards exact knowledge it does not contradict.
    pub fn supersede(&mut self, run: Run) {
        if self.record_run(run).is_ok() {
            return;
        }
        self.truncate_from(run.source);
        self.truncate_above_target(run.target);
        let recorded = if run.len == 0 {
            self.record_anchor(run.source, run.target)
        } else {
            self.record(run.source, run.target, run.len)
        };
        debug_assert!(recorded.is_ok(), "nothing left after {run:?}");
    }

    /// Forgets every target offset at or after `target` (a run that crosses
    /// it is cut there).
    pub fn truncate_above_target(&mut self, target: i64) {
        while let Some(mut entry) = self.spans.last_entry() {
            let span = entry.get_mut();
            if span.last().target_end() <= target {
                break;
            }
            let keep = runs_before(target, span.first.target, span.target_stride);
            if keep == 0 {
                entry.remove();
                continue;
            }
            span.keep(keep);
            self.open_last();
            if let Some(mut last) = self.spans.last_entry() {
                let run = &mut last.get_mut().first;
                run.len = run.len.min(target - run.target);
            }
            break;
        }
        self.open_last();
    }

    /// Forgets everything at or after source offset `source` (a run that
    /// crosses it is cut there): a later record of the map replaces it.
    pub fn truncate_from(&mut self, source: i64) {
        let _ = self.spans.split_off(&source);
        if let Some(mut entry) = self.spans.last_entry() {
            let span = entry.get_mut();
            span.keep(runs_before(source, span.first.source, span.source_stride));
        }
        self.open_last();
        if let Some(mut entry) = self.spans.last_entry() {
            let run = &mut entry.get_mut().first;
            if run.source_end() > source {
                run.len = source - run.source;
            }
        }
    }

    /// Keeps only the last run (the one later runs may extend): for a map
    /// whose earlier runs were handed to a [`crate::offset_store::RunJournal`].
    pub fn keep_last_run(&mut self) {
        self.open_last();
        while self.spans.len() > 1 {
            self.spans.pop_first();
        }
    }

    /// Source offset after the last replicated record, and the target offset
    /// after it.
    pub fn end(&self) -> Option<(i64, i64)> {
        self.last_run().map(|r| (r.source_end(), r.target_end()))
    }

    /// Drops runs that end at or before target offset `target_start` (the
    /// target's log start: nothing below it can be read any more).
    /// The last run always stays: offsets after it still translate to where
    /// the next record lands. An anchor stays while the stretch it covers
    /// (up to the next run's target) reaches past `target_start`: its
    /// records may still be there, and dropping it would translate its
    /// source offsets past them.
    pub fn truncate_below_target(&mut self, target_start: i64) {
        // Targets ascend: only leading spans can be wholly or partly below.
        while self.spans.len() > 1 {
            let mut leading = self.spans.values();
            let (Some(span), Some(next)) = (leading.next().copied(), leading.next()) else {
                return;
            };
            if span.first.len == 0 && next.first.target > target_start {
                return;
            }
            let Some(entry) = self.spans.first_entry() else {
                return;
            };
            // Runs i with target_i + len <= target_start are gone.
            let gone = runs_before(
                target_start - span.first.len + 1,
                span.first.target,
                span.target_stride,
            );
            if gone == 0 {
                return;
            }
            if gone >= span.count {
                entry.remove();
                continue;
            }
            entry.remove();
            let rest = Span {
                first: span.run(gone),
                count: span.count - gone,
                ..span
            };
            self.spans.insert(rest.first.source, rest);
            return;
        }
    }

    /// Holds at most `max_entries` entries (at least 2) by replacing the
    /// oldest ones with one anchor at the first of them: translations there
    /// become conservative (a consumer moved with them re-reads records,
    /// never skips one), the recent ones stay exact. Returns whether
    /// anything was merged.
    pub fn coarsen_to(&mut self, max_entries: usize) -> bool {
        let max_entries = max_entries.max(2);
        if self.spans.len() <= max_entries {
            return false;
        }
        let merged = self.spans.len() - max_entries + 1;
        let mut first = None;
        for _ in 0..merged {
            let Some((_, span)) = self.spans.pop_first() else {
                break;
            };
            first.get_or_insert(span.first);
        }
        if let Some(first) = first {
            self.spans
                .insert(first.source, Span::single(Run { len: 0, ..first }));
        }
        true
    }

    /// Number of entries held (a regular stretch of runs is one entry):
    /// what the map costs in memory, about [`ENTRY_BYTES`] each.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The runs, in order (regular stretches expanded).
    pub fn runs(&self) -> impl Iterator<Item = Run> + '_ {
        self.spans
            .values()
            .flat_map(|span| (0..span.count).map(move |i| span.run(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_batches_merge_into_one_run() {
        let mut m = OffsetMap::new();
        m.record(0, 100, 10).unwrap();
        m.record(10, 110, 5).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m.translate(0), Some(100));
        assert_eq!(m.translate(14), Some(114));
        assert_eq!(
            m.translate(15),
            Some(115),
            "past the end: where the next record lands"
        );
        assert_eq!(OffsetMap::new().translate(3), None);
        assert_eq!(m.end(), Some((15, 115)));
    }

    #[test]
    fn gaps_translate_to_the_next_replicated_record() {
        let mut m = OffsetMap::new();
        m.record(0, 0, 5).unwrap(); // 0..5
        // 5..8 aborted; 8 is a marker; 9..12 committed
        m.record(9, 5, 3).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.translate(4), Some(4));
        assert_eq!(
            m.translate(5),
            Some(5),
            "inside the aborted range: next replicated"
        );
        assert_eq!(m.translate(8), Some(5));
        assert_eq!(m.translate(10), Some(6));
    }

    #[test]
    fn reencoded_batches_map_each_record() {
        let mut m = OffsetMap::new();
        m.record_offsets(&[3, 5, 6, 9], 40).unwrap();
        assert_eq!(m.translate(3), Some(40));
        assert_eq!(m.translate(4), Some(41));
        assert_eq!(m.translate(6), Some(42));
        assert_eq!(m.translate(7), Some(43));
        assert_eq!(m.translate(9), Some(43));
        assert_eq!(m.end(), Some((10, 44)));
    }

    #[test]
    fn an_anchor_covers_an_unknown_stretch_conservatively() {
        let mut m = OffsetMap::new();
        m.record(0, 0, 10).unwrap();
        // Restart: source 10..14 went somewhere in target 10..13, not known exactly.
        m.record_anchor(10, 10).unwrap();
        m.record(14, 13, 5).unwrap();
        assert_eq!(m.translate(9), Some(9));
        assert_eq!(m.translate(10), Some(10));
        assert_eq!(m.translate(13), Some(10), "re-read, never skip");
        assert_eq!(m.translate(14), Some(13));
        // A run that continues the anchor exactly merges into it.
        let mut m = OffsetMap::new();
        m.record_anchor(5, 7).unwrap();
        m.record(5, 7, 3).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m.translate(6), Some(8));
    }

    #[test]
    fn truncation_from_a_source_offset_cuts_the_crossing_run() {
        let mut m = OffsetMap::new();
        m.record(0, 0, 10).unwrap();
        m.record(12, 10, 5).unwrap();
        m.truncate_from(5);
        assert_eq!(m.end(), Some((5, 5)));
        m.record_anchor(5, 5).unwrap();
        assert_eq!(m.translate(7), Some(5));
    }

    #[test]
    fn record_run_replaces_what_it_overlaps() {
        let mut m = OffsetMap::new();
        m.record(0, 0, 10).unwrap();
        m.record_run(Run {
            source: 0,
            target: 0,
            len: 15,
        })
        .unwrap();
        assert_eq!(m.end(), Some((15, 15)));
        m.record_run(Run {
            source: 12,
            target: 12,
            len: 0,
        })
        .unwrap();
        assert_eq!(m.translate(13), Some(12));
        assert!(
            m.record_run(Run {
                source: 20,
                target: 5,
                len: 1
            })
            .is_err(),
            "target going back"
        );
    }

    #[test]
    fn target_offsets_translate_back_to_the_next_unread_source_record() {
        let mut m = OffsetMap::new();
        assert_eq!(m.translate_back(0), None);
        m.record(3, 0, 5).unwrap(); // source 3..8 -> target 0..5
        m.record(12, 5, 3).unwrap(); // 8..12 aborted + marker; 12..15 -> 5..8
        m.record_anchor(15, 8).unwrap(); // 15..20 somewhere in 8..10
        m.record(20, 10, 2).unwrap();
        assert_eq!(m.translate_back(0), Some(3));
        assert_eq!(m.translate_back(4), Some(7));
        assert_eq!(m.translate_back(5), Some(12), "past the gap: next record");
        assert_eq!(m.translate_back(7), Some(14));
        assert_eq!(m.translate_back(8), Some(15), "anchor: re-read");
        assert_eq!(m.translate_back(9), Some(15));
        assert_eq!(m.translate_back(10), Some(20));
        assert_eq!(m.translate_back(12), Some(22), "the end");
        assert_eq!(m.translate_back(30), Some(22));
        // Every target offset inside a run round-trips.
        for t in (0..8).chain(10..12) {
            assert_eq!(m.translate(m.translate_back(t).unwrap()), Some(t));
        }
        // A map that starts later on the target (records before it are not ferry's).
        let mut m = OffsetMap::new();
        m.record(0, 40, 10).unwrap();
        assert_eq!(m.translate_back(5), Some(0));
    }

    #[test]
    fn out_of_order_runs_are_refused() {
        let mut m = OffsetMap::new();
        m.record(10, 10, 5).unwrap();
        assert!(m.record(12, 20, 1).is_err());
        assert!(m.record(20, 12, 1).is_err());
    }

    #[test]
    fn truncation_drops_unreadable_runs() {
        let mut m = OffsetMap::new();
        m.record(0, 0, 5).unwrap();
        m.record(10, 5, 5).unwrap();
        m.truncate_below_target(5);
        assert_eq!(m.len(), 1);
        assert_eq!(m.translate(0), Some(5));
    }
}

#[cfg(test)]
#[path = "offset_map_model_tests.rs"]
mod model_tests;
