//! Lining up a source partition with its target partition, record by record.
//!
//! Records are reduced to `(offset, fingerprint)`: memory per record is
//! fixed whatever its size, and the full records are fetched again only to
//! describe a difference. Two walks:
//!
//! - [`align_backward`] over the replicated part (before the checkpoint),
//!   from the newest record down, so the ends line up even when one side no
//!   longer holds (or never held) the oldest records. At a mismatch it tries,
//!   in order: a block of target records repeating source records just
//!   passed (ferry re-sent them after a crash), a few extra target records
//!   (foreign writes), a few source records absent from the target; failing
//!   all three, the pair is one differing record.
//! - [`compare_tail`] over what lies past the checkpoint, forwards: target
//!   records there must be the next source records (ferry wrote them but had
//!   not checkpointed yet); anything else is foreign.

use std::collections::VecDeque;

use anyhow::Result;

/// One record as the comparison sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rec {
    pub offset: i64,
    /// Hash of key, value, headers (in order) and timestamp.
    pub fp: u128,
}

/// A stream of records with look-ahead: the readers of a partition, or a
/// vector in tests.
pub trait Stream {
    /// The record `i` places ahead (0: the next one), reading more if
    /// needed; `None` past the end.
    async fn peek(&mut self, i: usize) -> Result<Option<Rec>>;
    /// Drops the next `n` records (already peeked).
    fn advance(&mut self, n: usize);
}

/// Limits of the search at a mismatch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Source records remembered after they are passed: the largest block
    /// of re-sent records recognized as duplicates.
    pub duplicate_window: usize,
    /// How far ahead a resynchronization is looked for (extra or missing
    /// records); beyond it, records are reported as differing.
    pub lookahead: usize,
    /// Findings per partition before the walk gives up.
    pub max_findings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // 1M records: 32 MiB; a crash re-sends at most about one
            // checkpoint interval of a partition's records.
            duplicate_window: 1_000_000,
            lookahead: 1_000,
            max_findings: 20,
        }
    }
}

/// One difference. Offset ranges are inclusive and ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Target records repeating the source records `source` in order: ferry
    /// re-sent them after a crash.
    Duplicates {
        target: (i64, i64),
        source: (i64, i64),
        count: usize,
    },
    /// Target records matching no source record there (foreign writes),
    /// right after the target's copy of source offset `after_source`.
    Extra {
        target: (i64, i64),
        count: usize,
        after_source: i64,
    },
    /// Source records absent from the target, right after target offset
    /// `after_target`.
    Missing {
        source: (i64, i64),
        count: usize,
        after_target: i64,
    },
    /// The record at `source` differs from the one at `target`.
    Differs { source: i64, target: i64 },
}

/// What [`align_backward`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alignment {
    pub matched: u64,
    pub findings: Vec<Finding>,
    /// Stopped after `max_findings`.
    pub truncated: bool,
    /// The target ran out first: source records from this offset down are
    /// not compared (before ferry's start position, or deleted on the target).
    pub source_older_from: Option<i64>,
    /// The source ran out first: target records from this offset down are
    /// not compared (deleted on the source by retention).
    pub target_older_from: Option<i64>,
}

/// Walks both streams from their ends (streams yield descending offsets).
pub async fn align_backward(
    source: &mut impl Stream,
    target: &mut impl Stream,
    limits: Limits,
) -> Result<Alignment> {
    let mut out = Alignment::default();
    // Source records passed, newest pass first (front = just passed).
    let mut passed: VecDeque<Rec> = VecDeque::new();
    let pass = |passed: &mut VecDeque<Rec>, r: Rec| {
        passed.push_front(r);
        if passed.len() > limits.duplicate_window {
            passed.pop_back();
        }
    };
    loop {
        if out.findings.len() >= limits.max_findings {
            out.truncated = source.peek(0).await?.is_some() || target.peek(0).await?.is_some();
            break;
        }
        let (s, t) = (source.peek(0).await?, target.peek(0).await?);
        let Some(t) = t else {
            out.source_older_from = s.map(|s| s.offset);
            break;
        };
        if let Some(s) = s.filter(|s| s.fp == t.fp) {
            out.matched += 1;
            pass(&mut passed, s);
            source.advance(1);
            target.advance(1);
            continue;
        }
        // A mismatch, or target records older than the source's first.
        if let Some(found) = duplicate_block(&passed, t, target).await? {
            target.advance(found.count());
            out.findings.push(found);
            continue;
        }
        let Some(s) = s else {
            out.target_older_from = Some(t.offset);
            break;
        };
        let extra = find_ahead(target, s.fp, limits.lookahead).await?;
        let missing = find_ahead(source, t.fp, limits.lookahead).await?;
        match (extra, missing) {
            (Some(k), m) if m.is_none_or(|m| k <= m) => {
                let last = target.peek(k - 1).await?.map_or(t.offset, |r| r.offset);
                out.findings.push(Finding::Extra {
                    target: (last, t.offset),
                    count: k,
                    after_source: s.offset,
                });
                target.advance(k);
            }
            (_, Some(j)) => {
                let mut last = s.offset;
                for i in 0..j {
                    if let Some(r) = source.peek(i).await? {
                        last = r.offset;
                        pass(&mut passed, r);
                    }
                }
                out.findings.push(Finding::Missing {
                    source: (last, s.offset),
                    count: j,
                    after_target: t.offset,
                });
                source.advance(j);
            }
            _ => {
                out.findings.push(Finding::Differs {
                    source: s.offset,
                    target: t.offset,
                });
                pass(&mut passed, s);
                source.advance(1);
                target.advance(1);
            }
        }
    }
    Ok(out)
}

impl Finding {
    /// Target records the finding covers.
    fn count(&self) -> usize {
        match self {
            Self::Duplicates { count, .. } | Self::Extra { count, .. } => *count,
            Self::Missing { .. } => 0,
            Self::Differs { .. } => 1,
        }
    }
}

/// If the target records from `t` on repeat the source records just passed
/// (`passed[k-1]`, …, `passed[0]`, i.e. ascending they are the `k` records
/// after the current source position), a [`Finding::Duplicates`] for them.
/// After a crash ferry resumes from its last checkpoint, so the re-sent
/// block always ends right where the matched records continue.
async fn duplicate_block(
    passed: &VecDeque<Rec>,
    t: Rec,
    target: &mut impl Stream,
) -> Result<Option<Finding>> {
    'candidates: for (i, p) in passed.iter().enumerate() {
        if p.fp != t.fp {
            continue;
        }
        let k = i + 1;
        for j in 1..k {
            match target.peek(j).await? {
                Some(r) if r.fp == passed[k - 1 - j].fp => {}
                _ => continue 'candidates,
            }
        }
        let last = target.peek(k - 1).await?.map_or(t.offset, |r| r.offset);
        return Ok(Some(Finding::Duplicates {
            target: (last, t.offset),
            source: (passed[0].offset, p.offset),
            count: k,
        }));
    }
    Ok(None)
}

/// The smallest `k` in `1..=limit` with `stream.peek(k)` having `fp`.
async fn find_ahead(stream: &mut impl Stream, fp: u128, limit: usize) -> Result<Option<usize>> {
    for k in 1..=limit {
        match stream.peek(k).await? {
            None => return Ok(None),
            Some(r) if r.fp == fp => return Ok(Some(k)),
            Some(_) => {}
        }
    }
    Ok(None)
}

/// What [`compare_tail`] found past the checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tail {
    /// Target records past the checkpoint equal to the next source records.
    pub matched: u64,
    /// The first target record that is not the next source record:
    /// `(source offset if there is one, target offset)`.
    pub differs: Option<(Option<i64>, i64)>,
    /// Target records counted from the first differing one to the end.
    pub unexplained: u64,
}

/// Walks forwards from the checkpoint (streams yield ascending offsets).
pub async fn compare_tail(source: &mut impl Stream, target: &mut impl Stream) -> Result<Tail> {
    let mut out = Tail::default();
    while let Some(t) = target.peek(0).await? {
        let s = source.peek(0).await?;
        if s.is_some_and(|s| s.fp == t.fp) {
            out.matched += 1;
            source.advance(1);
            target.advance(1);
            continue;
        }
        // Past a mismatch nothing lines up any more: count what is left.
        out.differs = Some((s.map(|s| s.offset), t.offset));
        while target.peek(0).await?.is_some() {
            out.unexplained += 1;
            target.advance(1);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Records given as contents (small numbers); offsets are positions.
    struct Vector {
        recs: Vec<Rec>,
        pos: usize,
    }

    impl Vector {
        /// Ascending contents; `backward` yields them from the end.
        fn new(contents: &[u128], first_offset: i64, backward: bool) -> Self {
            let mut recs: Vec<Rec> = contents
                .iter()
                .zip(first_offset..)
                .map(|(&fp, offset)| Rec { offset, fp })
                .collect();
            if backward {
                recs.reverse();
            }
            Self { recs, pos: 0 }
        }
    }

    impl Stream for Vector {
        async fn peek(&mut self, i: usize) -> Result<Option<Rec>> {
            Ok(self.recs.get(self.pos + i).copied())
        }
        fn advance(&mut self, n: usize) {
            self.pos += n;
        }
    }

    async fn align(source: &[u128], s0: i64, target: &[u128], t0: i64) -> Alignment {
        let mut s = Vector::new(source, s0, true);
        let mut t = Vector::new(target, t0, true);
        align_backward(&mut s, &mut t, Limits::default())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn identical_partitions_match() {
        let a = align(&[1, 2, 3, 4], 10, &[1, 2, 3, 4], 0).await;
        assert_eq!(a.matched, 4);
        assert!(a.findings.is_empty());
        assert_eq!((a.source_older_from, a.target_older_from), (None, None));
    }

    #[tokio::test]
    async fn missing_beginnings_are_not_differences() {
        // The target started later (start = latest): source 10, 11 uncompared.
        let a = align(&[1, 2, 3, 4], 10, &[3, 4], 0).await;
        assert_eq!((a.matched, a.source_older_from), (2, Some(11)));
        // The source deleted its oldest records: target 0 uncompared.
        let a = align(&[2, 3], 10, &[1, 2, 3], 0).await;
        assert_eq!((a.matched, a.target_older_from), (2, Some(0)));
        assert!(a.findings.is_empty());
    }

    #[tokio::test]
    async fn a_block_resent_after_a_crash_is_duplicates() {
        // Checkpoint after 2; ferry wrote 3, 4, 5, crashed, resumed at 3.
        let a = align(&[1, 2, 3, 4, 5, 6], 0, &[1, 2, 3, 4, 5, 3, 4, 5, 6], 100).await;
        assert_eq!(a.matched, 6);
        assert_eq!(
            a.findings,
            vec![Finding::Duplicates {
                target: (102, 104),
                source: (2, 4),
                count: 3
            }]
        );
    }

    #[tokio::test]
    async fn duplicates_before_the_first_checkpoint() {
        // Crashed before any checkpoint: the re-sent block is at the start.
        let a = align(&[1, 2, 3], 0, &[1, 2, 1, 2, 3], 0).await;
        assert_eq!(a.matched, 3);
        assert_eq!(
            a.findings,
            vec![Finding::Duplicates {
                target: (0, 1),
                source: (0, 1),
                count: 2
            }]
        );
        assert_eq!(a.target_older_from, None);
    }

    #[tokio::test]
    async fn foreign_missing_and_changed_records() {
        let a = align(&[1, 2, 3, 4, 5, 6], 0, &[1, 2, 99, 98, 3, 5, 7], 0).await;
        assert_eq!(
            a.findings,
            vec![
                Finding::Differs {
                    source: 5,
                    target: 6
                },
                Finding::Missing {
                    source: (3, 3),
                    count: 1,
                    after_target: 4
                },
                Finding::Extra {
                    target: (2, 3),
                    count: 2,
                    after_source: 1
                },
            ]
        );
        assert_eq!(a.matched, 4);
    }

    #[tokio::test]
    async fn findings_are_capped() {
        let source: Vec<u128> = (0..100).collect();
        let target: Vec<u128> = (1000..1100).collect();
        let a = align(&source, 0, &target, 0).await;
        assert_eq!(a.findings.len(), Limits::default().max_findings);
        assert!(a.truncated);
    }

    async fn tail(source: &[u128], target: &[u128]) -> Tail {
        let mut s = Vector::new(source, 50, false);
        let mut t = Vector::new(target, 40, false);
        compare_tail(&mut s, &mut t).await.unwrap()
    }

    #[tokio::test]
    async fn tail_past_the_checkpoint() {
        assert_eq!(tail(&[1, 2], &[]).await, Tail::default());
        let t = tail(&[1, 2, 3], &[1, 2]).await;
        assert_eq!((t.matched, t.differs), (2, None));
        // A foreign write after everything was replicated.
        let t = tail(&[], &[9]).await;
        assert_eq!((t.differs, t.unexplained), (Some((None, 40)), 1));
        let t = tail(&[1, 2], &[1, 9, 2]).await;
        assert_eq!(
            (t.matched, t.differs, t.unexplained),
            (1, Some((Some(51), 41)), 2)
        );
    }
}
