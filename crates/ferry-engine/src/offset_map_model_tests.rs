//! Model test: the compact map (regular stretches of runs held as one span)
//! answers exactly as a plain list of runs does, whatever the operations.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

/// The map as it was before spans: every run held on its own.
#[derive(Debug, Default, Clone)]
struct Model {
    runs: Vec<Run>,
}

impl Model {
    fn end(&self) -> Option<(i64, i64)> {
        self.runs.last().map(|r| (r.source_end(), r.target_end()))
    }

    fn append(&mut self, run: Run) -> Result<(), ()> {
        if let Some(last) = self.runs.last_mut() {
            if run.source < last.source_end() || run.target < last.target_end() {
                return Err(());
            }
            if run.len > 0 && run.source == last.source_end() && run.target == last.target_end() {
                last.len += run.len;
                return Ok(());
            }
        }
        // Keyed by source offset, as the map was: same source, replaced.
        if self
            .runs
            .last()
            .is_some_and(|last| last.source == run.source)
        {
            self.runs.pop();
        }
        self.runs.push(run);
        Ok(())
    }

    fn truncate_from(&mut self, source: i64) {
        self.runs.retain(|r| r.source < source);
        if let Some(last) = self.runs.last_mut() {
            if last.source_end() > source {
                last.len = source - last.source;
            }
        }
    }

    fn truncate_above_target(&mut self, target: i64) {
        while let Some(last) = self.runs.last_mut() {
            if last.target_end() <= target {
                return;
            }
            if last.target < target {
                last.len = target - last.target;
                return;
            }
            self.runs.pop();
        }
    }

    fn record_run(&mut self, run: Run) -> Result<(), ()> {
        if let Some(last) = self.runs.last_mut() {
            if last.source == run.source && last.target == run.target {
                last.len = run.len;
                return Ok(());
            }
        }
        if self.end().is_some_and(|(s, _)| s > run.source)
            || self.runs.iter().any(|r| r.source == run.source)
        {
            self.truncate_from(run.source);
        }
        self.append(run)
    }

    fn supersede(&mut self, run: Run) {
        if self.record_run(run).is_ok() {
            return;
        }
        self.truncate_from(run.source);
        self.truncate_above_target(run.target);
        self.append(run).unwrap();
    }

    fn truncate_below_target(&mut self, target_start: i64) {
        // Leading runs wholly below; an anchor only once the next run is too.
        while self.runs.len() > 1 {
            let (first, next) = (self.runs[0], self.runs[1]);
            let end = if first.len == 0 {
                next.target
            } else {
                first.target_end()
            };
            if end > target_start {
                return;
            }
            self.runs.remove(0);
        }
    }

    fn translate(&self, source: i64) -> Option<i64> {
        if let Some(run) = self.runs.iter().rev().find(|r| r.source <= source) {
            if source < run.source_end() {
                return Some(run.target + (source - run.source));
            }
            return Some(run.target_end());
        }
        self.runs.first().map(|r| r.target)
    }

    fn translate_back(&self, target: i64) -> Option<i64> {
        let Some(run) = self.runs.iter().rev().find(|r| r.target <= target) else {
            return self.runs.first().map(|r| r.source);
        };
        if target < run.target_end() {
            return Some(run.source + (target - run.target));
        }
        if run.len == 0 {
            return Some(run.source);
        }
        Some(run.source_end())
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: i64) -> i64 {
        i64::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }
}

fn same_answers(map: &OffsetMap, model: &Model, context: &str) {
    let runs: Vec<Run> = map.runs().collect();
    for x in -2..model.end().map_or(10, |(s, t)| s.max(t) + 5) {
        assert_eq!(
            map.translate(x),
            model.translate(x),
            "{context}: translate({x}); {runs:?} vs {model:?}"
        );
        assert_eq!(
            map.translate_back(x),
            model.translate_back(x),
            "{context}: translate_back({x}); {runs:?} vs {model:?}"
        );
    }
    assert_eq!(map.end(), model.end(), "{context}: end");
}

#[test]
fn spans_answer_exactly_as_plain_runs() {
    for seed in 1..150u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut map = OffsetMap::new();
        let mut model = Model::default();
        // Regular transactions most of the time, so spans form.
        let len = 1 + rng.below(3);
        let gap = 1 + rng.below(2);
        let (mut source, mut target) = (0i64, 0i64);
        for step in 0..120 {
            let context = format!("seed {seed} step {step}");
            match rng.below(20) {
                0 => {
                    let at = rng.below(source + 1);
                    map.truncate_from(at);
                    model.truncate_from(at);
                }
                1 => {
                    let at = rng.below(target + 1);
                    map.truncate_above_target(at);
                    model.truncate_above_target(at);
                }
                2 => {
                    let at = rng.below(target + 1);
                    map.truncate_below_target(at);
                    model.truncate_below_target(at);
                }
                3 => {
                    // A later write: somewhere back, on a target further on.
                    let run = Run {
                        source: rng.below(source + 1),
                        target: target + rng.below(3),
                        len: rng.below(4),
                    };
                    map.supersede(run);
                    model.supersede(run);
                }
                4 => {
                    let (s, t) = (source + rng.below(2), target + rng.below(2));
                    assert_eq!(
                        map.record_anchor(s, t).is_ok(),
                        model
                            .append(Run {
                                source: s,
                                target: t,
                                len: 0
                            })
                            .is_ok(),
                        "{context}"
                    );
                }
                5 => {
                    // The last run grows (an acknowledgement extending it).
                    if let Some(mut last) = model.runs.last().copied() {
                        last.len += 1 + rng.below(2);
                        assert_eq!(
                            map.record_run(last).is_ok(),
                            model.record_run(last).is_ok(),
                            "{context}"
                        );
                    }
                }
                _ => {
                    let odd = rng.below(6) == 0;
                    let l = if odd { 1 + rng.below(4) } else { len };
                    let g = if odd { rng.below(3) } else { gap };
                    let run = Run {
                        source: source + g,
                        target,
                        len: l,
                    };
                    assert_eq!(
                        map.record(run.source, run.target, run.len).is_ok(),
                        model.append(run).is_ok(),
                        "{context}"
                    );
                }
            }
            if let Some((s, t)) = model.end() {
                source = s;
                target = t;
            }
            same_answers(&map, &model, &context);
        }
    }
}

/// Merged into an anchor beyond the limit, then the target's retention
/// passes the anchor's first offset: the stretch it covers still reaches
/// past the log start, so the anchor stays (dropping it skipped records).
#[test]
fn a_coarse_anchor_outlives_the_start_of_its_stretch() {
    let mut map = OffsetMap::new();
    for i in 0..100 {
        map.record(i * 3 + i % 2, i, 1).unwrap(); // irregular gaps
    }
    assert!(map.coarsen_to(10));
    assert_eq!(map.len(), 10);
    let exact_91 = 91; // source 91*3+1 landed at target 91
    map.truncate_below_target(50);
    let t = map.translate(60 * 3).unwrap();
    assert!(t <= 60, "source 180 landed at target 60; translated to {t}");
    assert!(map.translate(91 * 3 + 1).unwrap() <= exact_91);
}

#[test]
fn regular_transactions_are_one_entry() {
    let mut map = OffsetMap::new();
    for i in 0..10_000 {
        map.record(i * 10, i * 9, 9).unwrap(); // 9 records, then a marker
    }
    assert_eq!(map.len(), 2, "one span and the open last run");
    assert_eq!(map.translate(45_678), Some(4567 * 9 + 8));
    assert_eq!(map.translate(45_679), Some(4568 * 9), "the marker");
    assert_eq!(map.translate_back(4568 * 9), Some(45_680));
    map.truncate_below_target(9 * 5_000);
    assert_eq!(map.len(), 2);
    assert_eq!(
        map.translate(0),
        Some(45_000),
        "before every run: the first"
    );
    map.truncate_from(77_775);
    assert_eq!(map.end(), Some((77_775, 7777 * 9 + 5)));
}
