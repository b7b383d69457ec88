//! KIP-320 validation on brokers whose Fetch has no diverging epoch (below
//! v12, Kafka < 2.7): after a leader change, and before fetching on from
//! the new leader, ask it with OffsetForLeaderEpoch where ferry's last
//! fetched epoch ends in its log. Fetch v12+ does the same check inline.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::divergence::{EpochCheck, EpochHistory, check};
use super::leader::moves_leader;
use super::{Leader, Part, Shared, StopReason};
use crate::connection::Connection;
use crate::error::{ClientError, KafkaCode};
use crate::fetcher::raw::{EpochEnd, EpochQuery, epoch_end_offsets};
use crate::topic::TopicPartition;

use super::SessionPartition;

/// A partition to fetch and what its request entry holds.
type Wanted = (TopicPartition, SessionPartition);

/// What one answer means for its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The leader holds what was fetched (or cannot tell): fetch on.
    Checked,
    /// Stop and report.
    Diverged(super::LogDivergence),
    /// Leadership moved: look the leader up again, then check again.
    Reroute,
    /// A passing error: check again after a backoff.
    Later,
}

/// The question to ask for `part`, if it needs checking: records were
/// fetched in a known epoch and the leader changed since they were checked.
pub(crate) fn query(part: &Part, partition: i32) -> Option<EpochQuery> {
    let leader = part.leader?;
    let leader_epoch = part.epochs.last()?;
    (part.checked_leader != Some(leader)).then_some(EpochQuery {
        partition,
        current_leader_epoch: leader.epoch,
        leader_epoch,
    })
}

/// What `answer` means for a partition at `position` with `history`.
pub(crate) fn verdict(history: &EpochHistory, position: i64, answer: &EpochEnd) -> Verdict {
    match answer.error {
        Some(code) if moves_leader(code) => Verdict::Reroute,
        Some(code) if code.is_retriable() => Verdict::Later,
        // Not allowed or not known: fetching decides what to report.
        Some(_) => Verdict::Checked,
        None => match check(history, position, answer.leader_epoch, answer.end_offset) {
            EpochCheck::Diverged(d) => Verdict::Diverged(d),
            EpochCheck::Consistent | EpochCheck::Unknown => Verdict::Checked,
        },
    }
}

/// Checks the partitions of `wanted` that need it against `conn`'s log and
/// returns the ones to fetch now. Partitions that diverged are stopped;
/// leadership errors send partitions back to the router.
pub(super) async fn validate(
    shared: &Arc<Shared>,
    conn: &Connection,
    node: i32,
    wanted: &[Wanted],
) -> Result<Vec<Wanted>, ClientError> {
    let mut by_topic: BTreeMap<Arc<str>, Vec<EpochQuery>> = BTreeMap::new();
    {
        let st = shared.lock();
        for (tp, _) in wanted {
            if let Some(q) = st.partitions.get(tp).and_then(|p| query(p, tp.partition)) {
                by_topic.entry(Arc::clone(&tp.topic)).or_default().push(q);
            }
        }
    }
    if by_topic.is_empty() {
        return Ok(wanted.to_vec());
    }
    let mut answers: Vec<(TopicPartition, EpochEnd)> = Vec::new();
    for (topic, queries) in &by_topic {
        match epoch_end_offsets(conn, topic, queries).await {
            Ok(found) => answers.extend(
                found
                    .into_iter()
                    .map(|a| (TopicPartition::new(&**topic, a.partition), a)),
            ),
            Err(
                e @ (ClientError::ApiNotSupported { .. } | ClientError::UnsupportedVersion { .. }),
            ) => {
                tracing::warn!(node, error = %e, "the source broker cannot validate fetch positions (OffsetForLeaderEpoch); log divergence after an unclean election goes undetected");
                answers.extend(queries.iter().map(|q| {
                    let unknown = EpochEnd {
                        partition: q.partition,
                        error: None,
                        leader_epoch: -1,
                        end_offset: -1,
                    };
                    (TopicPartition::new(&**topic, q.partition), unknown)
                }));
            }
            Err(e) => return Err(e),
        }
    }
    let mut st = shared.lock();
    let now = Instant::now();
    let mut reroute = false;
    let mut stopped = false;
    for (tp, answer) in &answers {
        let Some(part) = st.partitions.get_mut(tp) else {
            continue;
        };
        let Some(leader) = part.leader.filter(|l| l.node == node) else {
            continue; // moved meanwhile
        };
        if part.parked {
            continue;
        }
        match verdict(&part.epochs, part.position, answer) {
            Verdict::Checked => part.checked_leader = Some(leader),
            Verdict::Reroute => {
                part.reroute(now);
                reroute = true;
            }
            Verdict::Later => part.retry_later(now),
            Verdict::Diverged(d) => {
                tracing::error!(partition = %tp, node, position = d.position, diverged_from = d.diverged_from, "{d}; partition stopped");
                Shared::park(&mut st, tp, KafkaCode::OFFSET_OUT_OF_RANGE);
                if let Some(part) = st.partitions.get_mut(tp) {
                    part.stopped = Some(StopReason::Diverged(d));
                }
                stopped = true;
            }
        }
    }
    let keep = wanted
        .iter()
        .filter(|(tp, _)| {
            st.partitions.get(tp).is_some_and(|p| {
                !p.parked
                    && p.leader.is_some_and(|l: Leader| l.node == node)
                    && p.not_before.is_none_or(|t| t <= now)
            })
        })
        .cloned()
        .collect();
    if reroute {
        shared.router_wake.notify_one();
    }
    drop(st);
    if stopped {
        shared.data_ready.notify_waiters();
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Backoff;

    fn answer(error: Option<KafkaCode>, leader_epoch: i32, end_offset: i64) -> EpochEnd {
        EpochEnd {
            partition: 0,
            error,
            leader_epoch,
            end_offset,
        }
    }

    #[test]
    fn only_a_known_epoch_under_a_new_leader_is_asked_about() {
        let mut p = Part::new(100, 1000, Backoff::default());
        assert_eq!(query(&p, 0), None, "no leader");
        let leader = Leader { node: 1, epoch: 7 };
        p.leader = Some(leader);
        assert_eq!(query(&p, 0), None, "nothing fetched");
        p.epochs.record(5, 40);
        assert_eq!(
            query(&p, 3),
            Some(EpochQuery {
                partition: 3,
                current_leader_epoch: 7,
                leader_epoch: 5
            })
        );
        p.checked_leader = Some(leader);
        assert_eq!(query(&p, 0), None, "checked under this leader");
        p.leader = Some(Leader { node: 2, epoch: 8 });
        assert!(query(&p, 0).is_some(), "a new leader");
    }

    #[test]
    fn answers_decide_per_partition() {
        let mut h = EpochHistory::new();
        h.record(5, 40);
        assert_eq!(verdict(&h, 100, &answer(None, 5, 120)), Verdict::Checked);
        let Verdict::Diverged(d) = verdict(&h, 100, &answer(None, 5, 70)) else {
            panic!("expected a divergence");
        };
        assert_eq!((d.diverged_from, d.position), (70, 100));
        assert_eq!(verdict(&h, 100, &answer(None, -1, -1)), Verdict::Checked);
        assert_eq!(
            verdict(
                &h,
                100,
                &answer(Some(KafkaCode::FENCED_LEADER_EPOCH), -1, -1)
            ),
            Verdict::Reroute
        );
        assert_eq!(
            verdict(&h, 100, &answer(Some(KafkaCode::REQUEST_TIMED_OUT), -1, -1)),
            Verdict::Later
        );
        assert_eq!(
            verdict(
                &h,
                100,
                &answer(Some(KafkaCode::TOPIC_AUTHORIZATION_FAILED), -1, -1)
            ),
            Verdict::Checked
        );
    }
}
