//! Source log divergence (KIP-320), as pure state: which leader epochs the
//! fetched records carried, and what a leader's answer about them means.
//!
//! After an unclean leader election the new leader may lack records ferry
//! already fetched, and may later write different records at the same
//! offsets. Ferry remembers where each leader epoch began in what it
//! fetched ([`EpochHistory`]) and sends the latest one as Fetch v12+
//! `last_fetched_epoch`. A leader whose log differs answers with a
//! *diverging epoch*: the largest epoch it has at or below ours, and where
//! that epoch ends in its log (OffsetForLeaderEpoch gives the same pair on
//! older brokers). [`check`] turns that pair into a verdict.

use std::collections::VecDeque;

/// Epoch starts kept per partition. A leader epoch changes only with an
/// election, so this covers many elections between two fetches; when older
/// starts are dropped, a divergence before them is reported as inexact.
pub(crate) const MAX_EPOCHS: usize = 16;

/// Where each leader epoch began in the records fetched since the last
/// assign, oldest first. The first entry's offset is only where ferry's
/// knowledge begins, not necessarily where that epoch began on the source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochHistory {
    starts: VecDeque<(i32, i64)>,
}

impl EpochHistory {
    /// No knowledge: nothing is validated until records are fetched.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Knowledge handed in by the caller: the records before `offset` were
    /// fetched in leader epoch `epoch`.
    pub(crate) fn starting_at(epoch: i32, offset: i64) -> Self {
        let mut h = Self::new();
        h.record(epoch, offset);
        h
    }

    /// A fetched batch at `base_offset` carried leader epoch `epoch`.
    /// Epochs below zero (batches written before KIP-101) and epochs lower
    /// than the latest (impossible in a consistent log) are ignored.
    pub(crate) fn record(&mut self, epoch: i32, base_offset: i64) {
        if epoch < 0 {
            return;
        }
        match self.starts.back() {
            Some(&(last, _)) if epoch <= last => {}
            _ => {
                if self.starts.len() == MAX_EPOCHS {
                    self.starts.pop_front();
                }
                self.starts.push_back((epoch, base_offset));
            }
        }
    }

    /// The epoch to send as `last_fetched_epoch`, if known.
    pub(crate) fn last(&self) -> Option<i32> {
        self.starts.back().map(|&(e, _)| e)
    }

    /// Where the fetched records of epochs up to `epoch` end: the start of
    /// the first later epoch, or `position` if there is none. The second
    /// value says whether that boundary was seen (an earlier epoch is known).
    fn end_of(&self, epoch: i32, position: i64) -> (i64, bool) {
        let mut seen_earlier = false;
        for &(e, start) in &self.starts {
            if e > epoch {
                return (start.min(position), seen_earlier);
            }
            seen_earlier = true;
        }
        (position, true)
    }
}

/// The source log no longer holds what ferry fetched: reported for a
/// partition instead of going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogDivergence {
    /// Ferry's fetch position: everything before it was fetched (and, in a
    /// replicator, possibly mirrored).
    pub position: i64,
    /// The first source offset whose fetched record may differ from the
    /// source's: records fetched from here to `position` are gone from the
    /// source (replaced by other records, or not there at all).
    pub diverged_from: i64,
    /// Whether `diverged_from` is exact. `false`: ferry did not see where
    /// its oldest known epoch began, so the divergence may start earlier.
    pub exact: bool,
    /// The leader epoch ferry last fetched records from.
    pub last_fetched_epoch: i32,
    /// The leader's answer: the largest epoch it holds at or below ferry's,
    /// and the offset where that epoch ends in its log.
    pub leader_epoch: i32,
    pub leader_end_offset: i64,
}

impl std::fmt::Display for LogDivergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the source log diverged from what was fetched (unclean leader election?): \
             records fetched at offsets {}{}..{} no longer exist on the source \
             (its leader's epoch {} ends at {}; ferry last fetched epoch {})",
            if self.exact { "" } else { "at or before " },
            self.diverged_from,
            self.position,
            self.leader_epoch,
            self.leader_end_offset,
            self.last_fetched_epoch,
        )
    }
}

/// What a leader's `(epoch, end offset)` answer means for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpochCheck {
    /// The leader's log holds everything fetched: go on.
    Consistent,
    /// It does not: stop the partition and report.
    Diverged(LogDivergence),
    /// The leader could not tell (no epoch, empty log): nothing to compare.
    Unknown,
}

/// Compares the leader's answer `(leader_epoch, leader_end_offset)` for
/// ferry's last fetched epoch with what ferry fetched before `position`.
///
/// The fetched records diverge from the leader's log at the smaller of the
/// leader's end of that epoch and ferry's own end of it (where ferry saw a
/// later epoch begin): the same rule a follower truncates by (KIP-101/279).
pub(crate) fn check(
    history: &EpochHistory,
    position: i64,
    leader_epoch: i32,
    leader_end_offset: i64,
) -> EpochCheck {
    let Some(last_fetched_epoch) = history.last() else {
        return EpochCheck::Unknown;
    };
    if leader_epoch < 0 || leader_end_offset < 0 {
        return EpochCheck::Unknown;
    }
    let (ours, boundary_seen) = history.end_of(leader_epoch, position);
    let diverged_from = leader_end_offset.min(ours);
    if diverged_from >= position {
        return EpochCheck::Consistent;
    }
    // The first entry's offset is where ferry's knowledge begins, not where
    // that epoch began: ending there is a bound, not the point itself.
    let exact = boundary_seen;
    EpochCheck::Diverged(LogDivergence {
        position,
        diverged_from,
        exact,
        last_fetched_epoch,
        leader_epoch,
        leader_end_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(starts: &[(i32, i64)]) -> EpochHistory {
        let mut h = EpochHistory::new();
        for &(e, o) in starts {
            h.record(e, o);
        }
        h
    }

    #[test]
    fn history_keeps_epoch_changes_only() {
        let h = history(&[(3, 0), (3, 10), (-1, 12), (2, 15), (5, 20), (5, 30)]);
        assert_eq!(h.starts, [(3, 0), (5, 20)]);
        assert_eq!(h.last(), Some(5));
        assert_eq!(EpochHistory::new().last(), None);
    }

    #[test]
    fn history_is_bounded() {
        let mut h = EpochHistory::new();
        for e in 0..100 {
            h.record(e, i64::from(e) * 10);
        }
        assert_eq!(h.starts.len(), MAX_EPOCHS);
        assert_eq!(h.last(), Some(99));
    }

    #[test]
    fn same_epoch_and_end_past_the_position_is_consistent() {
        let h = history(&[(4, 0)]);
        assert_eq!(check(&h, 100, 4, 100), EpochCheck::Consistent);
        assert_eq!(check(&h, 100, 4, 250), EpochCheck::Consistent);
    }

    /// The engine review's scenario: ferry read epoch 4 up to 100 from the
    /// old leader; the new leader's epoch 4 ended at 60, and it wrote epoch
    /// 5 from there (past 100 by now). Records 60..100 are gone.
    #[test]
    fn the_leader_ends_our_epoch_before_the_position() {
        let h = history(&[(4, 0)]);
        let EpochCheck::Diverged(d) = check(&h, 100, 4, 60) else {
            panic!("expected a divergence");
        };
        assert_eq!(
            d,
            LogDivergence {
                position: 100,
                diverged_from: 60,
                exact: true,
                last_fetched_epoch: 4,
                leader_epoch: 4,
                leader_end_offset: 60,
            }
        );
        let text = d.to_string();
        assert!(text.contains("offsets 60..100"), "{text}");
    }

    /// The leader never had ferry's epoch 6 (a leader that was cut off wrote
    /// it): it answers with its epoch 4, ending at 150. Ferry saw epoch 6
    /// begin at 80, so the records from 80 are not the leader's.
    #[test]
    fn an_epoch_the_leader_never_had_diverges_where_we_saw_it_begin() {
        let h = history(&[(4, 0), (6, 80)]);
        let EpochCheck::Diverged(d) = check(&h, 100, 4, 150) else {
            panic!("expected a divergence");
        };
        assert_eq!((d.diverged_from, d.exact, d.position), (80, true, 100));
        // The leader's end comes first when it is earlier.
        let EpochCheck::Diverged(d) = check(&h, 100, 4, 50) else {
            panic!("expected a divergence");
        };
        assert_eq!((d.diverged_from, d.exact), (50, true));
    }

    /// Ferry's knowledge starts mid-epoch (after an assign): a divergence
    /// at the start of that knowledge may have begun earlier.
    #[test]
    fn a_boundary_not_seen_is_inexact() {
        let h = EpochHistory::starting_at(6, 80);
        let EpochCheck::Diverged(d) = check(&h, 100, 4, 150) else {
            panic!("expected a divergence");
        };
        assert_eq!((d.diverged_from, d.exact), (80, false));
        assert!(d.to_string().contains("at or before 80"), "{d}");
        assert_eq!(check(&h, 100, 6, 120), EpochCheck::Consistent);
    }

    #[test]
    fn undefined_answers_and_no_history_cannot_be_checked() {
        assert_eq!(check(&EpochHistory::new(), 10, 4, 5), EpochCheck::Unknown);
        let h = history(&[(4, 0)]);
        assert_eq!(check(&h, 10, -1, -1), EpochCheck::Unknown);
        assert_eq!(check(&h, 10, 4, -1), EpochCheck::Unknown);
    }
}
