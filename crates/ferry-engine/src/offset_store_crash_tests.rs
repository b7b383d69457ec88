//! Property test: ferry runs that crash at arbitrary points, resume anywhere
//! a restart may (the checkpoint, or further where the target's tail
//! matched), write map chunks and checkpoints at arbitrary moments (some of
//! the writes failing, some appended late by the broker): whatever the
//! history, a loaded map never translates a source offset past a record the
//! target holds, i.e. a consumer moved with it never skips a record.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

/// A small deterministic generator (xorshift64*): no dependency needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + i64::try_from(self.below(u64::try_from(hi - lo + 1).unwrap())).unwrap()
    }
}

const FLOW: &str = "f";

/// The `__ferry_offset_map` topic: every record ever appended.
#[derive(Default)]
struct MapTopic {
    log: Vec<(ChunkKey, Option<ChunkValue>, RecordMeta)>,
}

impl MapTopic {
    fn load(&self) -> LoadedMap {
        load::load_log(&self.log, FLOW)
            .remove(&TopicPartition::new("t", 0))
            .unwrap_or_default()
    }

    fn max_epoch(&self) -> u64 {
        self.log
            .iter()
            .filter_map(|(_, _, meta)| meta.epoch)
            .max()
            .unwrap_or(0)
    }
}

fn key(from: i64) -> ChunkKey {
    ChunkKey {
        flow: FLOW.into(),
        topic: "t".into(),
        partition: 0,
        from,
    }
}

/// Translations seen along the way: (source offset, target offset, when).
type Seen = Vec<(i64, i64, String)>;

fn observe(map: &OffsetMap, source_len: i64, when: &str, seen: &mut Seen) {
    for x in 0..source_len {
        if let Some(t) = map.translate(x) {
            seen.push((x, t, when.to_owned()));
        }
    }
}

/// No skip: a consumer moved to `translate(x)` at any moment eventually
/// reads every source record at or after `x` on the target: each such
/// record has a copy at or after that target offset in the final log.
fn assert_never_skipped(seen: &Seen, target_log: &[i64], source_len: i64, seed: u64) {
    let len = usize::try_from(source_len).unwrap();
    let mut last_copy: Vec<Option<usize>> = vec![None; len + 1];
    for (i, &y) in target_log.iter().enumerate() {
        last_copy[usize::try_from(y).unwrap()] = Some(i);
    }
    // For each x: the smallest last copy of any record at or after x.
    let mut bound = vec![usize::MAX; len + 1];
    for x in (0..len).rev() {
        bound[x] = bound[x + 1].min(last_copy[x].unwrap_or(usize::MAX));
    }
    for (x, t, when) in seen {
        let x = usize::try_from(*x).unwrap();
        let t = usize::try_from(*t).unwrap();
        assert!(
            t <= bound[x],
            "seed {seed}, {when}: translate({x}) = {t} skips a record: the last copy of \
             a record at or after {x} is at target {}; target log {target_log:?}",
            bound[x]
        );
    }
}

/// Where a restart resumes: the checkpoint (the tail did not match) or
/// after the last record on the target (it did). Without a checkpoint the
/// partition starts afresh from the beginning.
fn resume_position(rng: &mut Rng, checkpoint: Option<(i64, i64)>, target_log: &[i64]) -> i64 {
    let Some((checkpoint_source, _)) = checkpoint else {
        return 0;
    };
    match target_log.last() {
        Some(&last) if rng.chance(50) => (last + 1).max(checkpoint_source),
        _ => checkpoint_source,
    }
}

fn simulate(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let source_len = rng.between(30, 160);
    // Records, or gaps (markers, aborted or compacted-away offsets).
    let is_record: Vec<bool> = (0..source_len).map(|_| !rng.chance(25)).collect();
    let mut target_log: Vec<i64> = Vec::new();
    let mut topic = MapTopic::default();
    let mut checkpoint: Option<(i64, i64)> = None;
    let mut seen = Seen::new();
    let mut old_writes: Vec<(ChunkKey, Option<ChunkValue>, RecordMeta)> = Vec::new();

    for run in 0..rng.between(1, 5) {
        let loaded = topic.load();
        observe(&loaded.map, source_len, &format!("load {run}"), &mut seen);
        let position = resume_position(&mut rng, checkpoint, &target_log);
        let target_end = i64::try_from(target_log.len()).unwrap();
        let mapped_to = loaded
            .map
            .end()
            .filter(|&(s, t)| s <= position && t <= target_end)
            .or(checkpoint);
        let anchor = mapped_to.filter(|&end| end != (position, target_end));
        let mut journal = RunJournal::with_map(loaded.map, loaded.chunks);
        let clock = WriteClock::new();
        clock.observe(topic.max_epoch());
        let mut live = OffsetMap::new();
        if let Some((s, t)) = anchor {
            live.record_anchor(s, t).unwrap();
        }
        let mut next = position;
        let crash_at = rng.between(position, source_len);
        while next < crash_at {
            let batch_end = (next + rng.between(1, 6)).min(crash_at);
            let offsets: Vec<i64> = (next..batch_end)
                .filter(|&o| is_record[usize::try_from(o).unwrap()])
                .collect();
            if !offsets.is_empty() {
                let base = i64::try_from(target_log.len()).unwrap();
                live.record_offsets(&offsets, base).unwrap();
                target_log.extend(&offsets);
            }
            next = batch_end;
            journal.absorb(&mut live);
            if rng.chance(20) {
                observe(
                    journal.map(),
                    source_len,
                    &format!("run {run} at {next}"),
                    &mut seen,
                );
            }
            if rng.chance(40) {
                let pending = journal.pending();
                let stamp = clock.next();
                for (from, runs) in &pending {
                    let value = ChunkValue {
                        runs: runs.iter().map(|r| [r.source, r.target, r.len]).collect(),
                    };
                    let meta = RecordMeta::stamped(stamp, TopicIds::default());
                    topic.log.push((key(*from), Some(value.clone()), meta));
                    old_writes.push((key(*from), Some(value), meta));
                }
                journal.written(&pending);
                // The checkpoint follows the map, unless its write fails.
                if rng.chance(60) {
                    checkpoint = Some((next, i64::try_from(target_log.len()).unwrap()));
                }
            }
            // A request of an earlier write, appended late by the broker.
            if !old_writes.is_empty() && rng.chance(5) {
                let i = usize::try_from(rng.below(old_writes.len() as u64)).unwrap();
                topic.log.push(old_writes[i].clone());
            }
        }
    }
    observe(&topic.load().map, source_len, "last load", &mut seen);
    // A last run that does not crash mirrors the rest.
    let position = resume_position(&mut rng, checkpoint, &target_log);
    target_log.extend((position..source_len).filter(|&o| is_record[usize::try_from(o).unwrap()]));
    assert_never_skipped(&seen, &target_log, source_len, seed);
}

#[test]
fn no_history_of_crashes_and_restarts_makes_a_loaded_map_skip_a_record() {
    for seed in 0..3_000 {
        simulate(seed);
    }
}
