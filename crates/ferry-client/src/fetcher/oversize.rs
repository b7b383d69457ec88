//! Finding the partition whose next batch does not fit in a response frame,
//! as pure state for one leader loop.
//!
//! A broker returns the first batch of the first partition with data whole,
//! whatever the size limits (KIP-74). When that batch is larger than the
//! connection's `max_frame_size`, the whole response is refused before any
//! partition in it is read, and the same request fails again forever, for
//! every partition that broker leads. Which partition it was is not known.
//!
//! So after a refused response every partition of that request becomes a
//! *suspect* and is fetched alone (a *probe*: sessionless, answered at once)
//! in request order (the batch belongs to the first partition with data, so
//! the empty ones before it are quick to clear). A probe that is answered
//! clears its partition (its data is delivered as usual). A partition
//! refused alone [`PROBE_FAILURES`] times in a row is the one: it is stopped
//! with a report naming the setting to raise, and every other partition
//! goes back to normal fetching. Probing costs at most one quick request
//! per partition of the refused request.

use std::collections::VecDeque;

use crate::topic::TopicPartition;

/// Refusals of a partition fetched alone before it is stopped. Two, so
/// that one garbled frame (a faulty proxy, a bit flip in a size prefix)
/// cannot stop a partition.
pub(crate) const PROBE_FAILURES: u32 = 2;

/// Partitions of a refused request not yet cleared by a probe, in request
/// order, with how often each was refused alone.
#[derive(Debug, Default)]
pub(crate) struct OversizeSearch {
    suspects: VecDeque<(TopicPartition, u32)>,
}

/// What a refused (too large) response frame leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameVerdict {
    /// Go on probing suspects.
    Probe,
    /// This partition's next batch does not fit: stop it.
    Oversized(TopicPartition),
}

impl OversizeSearch {
    /// The partition to fetch alone next, if any suspect is among `wanted`
    /// (the partitions due now). Suspects no longer wanted (unassigned,
    /// paused, moved to another leader) are dropped: if they hold the batch,
    /// a later refusal finds them again.
    pub(crate) fn probe<'a>(
        &mut self,
        wanted: impl IntoIterator<Item = &'a TopicPartition> + Clone,
    ) -> Option<TopicPartition> {
        self.suspects
            .retain(|(tp, _)| wanted.clone().into_iter().any(|w| w == tp));
        self.suspects.front().map(|(tp, _)| tp.clone())
    }

    /// A response came back (for a probe of `probe`, or a normal request).
    pub(crate) fn answered(&mut self, probe: Option<&TopicPartition>) {
        if let Some(tp) = probe {
            self.suspects.retain(|(s, _)| s != tp);
        }
    }

    /// The response to a request for `sent` (a probe of `probe`) was larger
    /// than the frame limit.
    pub(crate) fn refused<'a>(
        &mut self,
        sent: impl IntoIterator<Item = &'a TopicPartition>,
        probe: Option<&TopicPartition>,
    ) -> FrameVerdict {
        if let Some(tp) = probe {
            if let Some(i) = self.suspects.iter().position(|(s, _)| s == tp) {
                let refusals = self.suspects.get_mut(i).map_or(PROBE_FAILURES, |(_, n)| {
                    *n += 1;
                    *n
                });
                if refusals >= PROBE_FAILURES {
                    // It explains the refusal: the rest go back to normal
                    // fetching (another such batch is found the same way).
                    self.suspects.clear();
                    return FrameVerdict::Oversized(tp.clone());
                }
                return FrameVerdict::Probe;
            }
        }
        for tp in sent {
            if !self.suspects.iter().any(|(s, _)| s == tp) {
                self.suspects.push_back((tp.clone(), 0));
            }
        }
        FrameVerdict::Probe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tps(names: &[i32]) -> Vec<TopicPartition> {
        names.iter().map(|&p| TopicPartition::new("t", p)).collect()
    }

    #[test]
    fn nothing_to_probe_until_a_response_is_refused() {
        let mut iso = OversizeSearch::default();
        let all = tps(&[0, 1, 2]);
        assert_eq!(iso.probe(&all), None);
        iso.answered(None);
        assert_eq!(iso.probe(&all), None);
    }

    /// Partition 1 holds the batch: one refused request, then each
    /// partition alone; 0 and 2 are answered, 1 is refused twice.
    #[test]
    fn the_partition_refused_alone_twice_is_the_one() {
        let mut iso = OversizeSearch::default();
        let all = tps(&[0, 1, 2]);
        assert_eq!(iso.refused(&all, None), FrameVerdict::Probe);

        assert_eq!(iso.probe(&all), Some(all[0].clone()));
        iso.answered(Some(&all[0]));
        assert_eq!(iso.probe(&all), Some(all[1].clone()));
        assert_eq!(iso.refused(&all[1..2], Some(&all[1])), FrameVerdict::Probe);
        // One garbled frame is not enough: asked again.
        assert_eq!(iso.probe(&all), Some(all[1].clone()));
        assert_eq!(
            iso.refused(&all[1..2], Some(&all[1])),
            FrameVerdict::Oversized(all[1].clone())
        );
        assert_eq!(iso.probe(&all), None, "everyone else goes back to normal");
    }

    #[test]
    fn a_probe_answered_after_one_refusal_clears_the_partition() {
        let mut iso = OversizeSearch::default();
        let all = tps(&[0]);
        iso.refused(&all, None);
        assert_eq!(iso.refused(&all, Some(&all[0])), FrameVerdict::Probe);
        iso.answered(Some(&all[0]));
        assert_eq!(iso.probe(&all), None);
    }

    #[test]
    fn suspects_no_longer_wanted_are_dropped() {
        let mut iso = OversizeSearch::default();
        let all = tps(&[0, 1, 2]);
        iso.refused(&all, None);
        assert_eq!(iso.probe(&all[1..]), Some(all[1].clone()));
        iso.answered(Some(&all[1]));
        assert_eq!(iso.probe(&all), Some(all[2].clone()), "0 was dropped");
    }

    #[test]
    fn a_second_refusal_adds_new_suspects_once() {
        let mut iso = OversizeSearch::default();
        let all = tps(&[0, 1, 2]);
        iso.refused(&all[..2], None);
        iso.refused(&all, None);
        assert_eq!(iso.suspects.len(), 3);
    }
}
