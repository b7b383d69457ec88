//! Where a partition starts: pure decisions over what the flow knows, so the
//! I/O around them (list offsets, the resume scan) stays thin.
//!
//! - [`start_from`]: a partition with a checkpoint (or, when restarted in
//!   the same process, a committed position) resumes there; one without
//!   looks its offset up with the configured `start`, **but only if it
//!   existed when the flow was first started** ([`FirstStart`]); anything
//!   discovered later is mirrored from its beginning (earliest), so the
//!   first records of a new topic are never skipped.
//! - [`anchor`]: where the offset map is not known exactly up to the start
//!   position (a restart after a crash), the partition records an anchor so
//!   translations there stay conservative.

use std::collections::HashSet;

use ferry_client::TopicPartition;

use crate::config::StartPosition;

/// Where a partition's first source offset comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StartFrom {
    /// Resume after a known position: (source offset, target offset after
    /// it, if known). The resume scan may move it past batches the target
    /// already holds.
    Resume {
        source_offset: i64,
        target_offset: Option<i64>,
    },
    /// No position known: look the offset up at the source.
    Lookup(StartPosition),
}

/// Which partitions the configured `start` applies to: those that exist
/// when the flow is first started.
///
/// "First started" across restarts: a flow that has no checkpoint at all
/// has never started, so the partitions its first discovery finds (and
/// those of topics it could not set up yet in that round) take `start`.
/// A flow that already has checkpoints started before: a partition without
/// a checkpoint is new since, and starts at its beginning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FirstStart {
    initial: Initial,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Initial {
    /// The first discovery has not run yet.
    Pending,
    /// The partitions present at the first start.
    Known(HashSet<TopicPartition>),
    /// The flow started in an earlier run: nothing new takes `start`.
    Earlier,
}

impl FirstStart {
    /// For a flow whose checkpoint topic holds `checkpoints` entries.
    pub(super) fn new(checkpoints: usize) -> Self {
        Self {
            initial: if checkpoints == 0 {
                Initial::Pending
            } else {
                Initial::Earlier
            },
        }
    }

    /// The partitions the first (successful) discovery found; later rounds
    /// change nothing.
    pub(super) fn discovered(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        if self.initial == Initial::Pending {
            self.initial = Initial::Known(partitions.into_iter().collect());
        }
    }

    /// Whether the configured `start` applies to `tp` (otherwise: earliest).
    pub(super) fn applies_to(&self, tp: &TopicPartition) -> bool {
        match &self.initial {
            Initial::Pending => true,
            Initial::Known(initial) => initial.contains(tp),
            Initial::Earlier => false,
        }
    }
}

/// Where a partition starts, given its known position (a checkpoint, or
/// the committed position of an earlier task in this process) and whether
/// the configured `start` applies to it.
pub(super) fn start_from(
    known: Option<(i64, Option<i64>)>,
    start: StartPosition,
    start_applies: bool,
) -> StartFrom {
    match known {
        Some((source_offset, target_offset)) => StartFrom::Resume {
            source_offset,
            target_offset,
        },
        None if start_applies => StartFrom::Lookup(start),
        None => StartFrom::Lookup(StartPosition::Earliest),
    }
}

/// The anchor a partition starting at `position` (with the target
/// partition ending at `target_end`) records, if any: where the offset map
/// is known to end (`map_end`, when it lies at or before both), else the
/// known position's (source, target) pair; none when that is exactly the
/// start.
pub(super) fn anchor(
    map_end: Option<(i64, i64)>,
    known: Option<(i64, Option<i64>)>,
    position: i64,
    target_end: i64,
) -> Option<(i64, i64)> {
    map_end
        .filter(|&(s, t)| s <= position && t <= target_end)
        .or_else(|| known.and_then(|(s, t)| t.map(|t| (s, t))))
        .filter(|&end| end != (position, target_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, p: i32) -> TopicPartition {
        TopicPartition::new(topic, p)
    }

    #[test]
    fn a_checkpoint_wins_over_the_configured_start() {
        assert_eq!(
            start_from(Some((40, Some(12))), StartPosition::Latest, true),
            StartFrom::Resume {
                source_offset: 40,
                target_offset: Some(12)
            }
        );
    }

    #[test]
    fn latest_applies_only_to_partitions_present_at_the_first_start() {
        let mut first = FirstStart::new(0);
        first.discovered([tp("a", 0), tp("a", 1)]);
        // A later round does not widen the initial set.
        first.discovered([tp("a", 0), tp("a", 1), tp("b", 0)]);
        assert!(first.applies_to(&tp("a", 1)));
        assert!(!first.applies_to(&tp("b", 0)), "a topic created later");
        assert!(!first.applies_to(&tp("a", 2)), "a partition added later");
        let start = |t| start_from(None, StartPosition::Latest, first.applies_to(&t));
        assert_eq!(start(tp("a", 0)), StartFrom::Lookup(StartPosition::Latest));
        assert_eq!(
            start(tp("b", 0)),
            StartFrom::Lookup(StartPosition::Earliest)
        );
    }

    #[test]
    fn a_flow_with_checkpoints_started_before_so_new_partitions_start_at_the_beginning() {
        let mut first = FirstStart::new(3);
        first.discovered([tp("a", 0), tp("new", 0)]);
        assert!(!first.applies_to(&tp("new", 0)));
        assert!(!first.applies_to(&tp("a", 0)));
    }

    #[test]
    fn anchor_is_the_map_end_when_it_lies_behind_the_start() {
        // Map persisted up to (90, 30); resumed at (100, 40): anchor there.
        assert_eq!(
            anchor(Some((90, 30)), Some((80, Some(20))), 100, 40),
            Some((90, 30))
        );
        // The map ends exactly at the start: nothing to anchor.
        assert_eq!(anchor(Some((100, 40)), Some((80, Some(20))), 100, 40), None);
    }

    #[test]
    fn a_map_end_past_the_start_falls_back_to_the_checkpoint() {
        // A map written ahead of a checkpoint that a target reset passed.
        assert_eq!(
            anchor(Some((120, 50)), Some((80, Some(20))), 100, 40),
            Some((80, 20))
        );
        // No target offset in the checkpoint, no usable map: no anchor.
        assert_eq!(anchor(Some((120, 50)), Some((80, None)), 100, 40), None);
        assert_eq!(anchor(None, None, 0, 0), None);
    }
}
