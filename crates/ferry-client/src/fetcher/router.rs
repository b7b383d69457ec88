//! The router: looks up the leader of every partition that has none (new,
//! or sent back after a leadership error or a broker failure) and hands it
//! to that broker's loop.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::time::Instant;

use super::{Leader, Shared, State};
use crate::error::KafkaCode;
use crate::metadata::ClusterMetadata;
use crate::topic::TopicPartition;

/// Metadata answers in a row that must miss a topic (or partition) before
/// it counts as deleted: right after a change, the answering broker may lag.
const UNKNOWN_CONFIRMATIONS: u32 = 3;

pub(super) async fn run(shared: Arc<Shared>) {
    loop {
        // `notify_one` leaves a permit, so a wake-up before the await counts.
        let notified = shared.router_wake.notified();
        let (due, next) = {
            let st = shared.lock();
            if st.closed {
                return;
            }
            unrouted(&st, Instant::now())
        };
        if due.is_empty() {
            match next {
                Some(next) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(next) => {}
                    }
                }
                None => notified.await,
            }
            continue;
        }
        let topics: BTreeSet<&str> = due.iter().map(|tp| &*tp.topic).collect();
        let topics: Vec<&str> = topics.into_iter().collect();
        let fresh = shared.client.refresh_metadata(Some(&topics)).await;
        let mut st = shared.lock();
        let now = Instant::now();
        match fresh {
            Ok(metadata) => {
                for tp in &due {
                    resolve(&shared, &mut st, &metadata, tp, now);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "metadata lookup for fetch leaders failed; retrying");
                for tp in &due {
                    if let Some(part) = st.partitions.get_mut(tp) {
                        part.retry_later(now);
                    }
                }
                if !e.is_retriable() {
                    shared.set_fatal(&mut st, e);
                }
            }
        }
        drop(st);
        shared.data_ready.notify_waiters();
    }
}

/// Partitions without a leader that are due for a lookup, and when the next
/// one not yet due will be.
fn unrouted(st: &State, now: Instant) -> (Vec<TopicPartition>, Option<Instant>) {
    let mut due = Vec::new();
    let mut next: Option<Instant> = None;
    for (tp, part) in &st.partitions {
        if part.leader.is_some() || part.parked {
            continue;
        }
        match part.not_before.filter(|t| *t > now) {
            Some(t) => next = Some(next.map_or(t, |n| n.min(t))),
            None => due.push(tp.clone()),
        }
    }
    (due, next)
}

/// Routes `tp` by `metadata`, or decides it cannot be fetched.
fn resolve(
    shared: &Arc<Shared>,
    st: &mut State,
    metadata: &ClusterMetadata,
    tp: &TopicPartition,
    now: Instant,
) {
    let Some(part) = st.partitions.get_mut(tp) else {
        return; // unassigned meanwhile
    };
    if part.leader.is_some() || part.parked {
        return;
    }
    let topic = metadata.topic(&tp.topic);
    let verdict = match topic {
        None => Verdict::Unknown,
        Some(t) => match t.error {
            Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION) => Verdict::Unknown,
            Some(code) if code.is_retriable() => Verdict::Later,
            Some(code) => Verdict::Stop(code),
            None => match (part.topic_id, t.topic_id) {
                (Some(old), Some(new)) if old != new => Verdict::Stop(KafkaCode::UNKNOWN_TOPIC_ID),
                _ => match t.partitions.get(&tp.partition) {
                    None => Verdict::Unknown,
                    Some(p) => match p.leader.filter(|l| metadata.brokers.contains_key(l)) {
                        None => Verdict::Later,
                        Some(node) => Verdict::Route {
                            node,
                            epoch: p.leader_epoch.unwrap_or(-1),
                            topic_id: t.topic_id,
                        },
                    },
                },
            },
        },
    };
    match verdict {
        Verdict::Route {
            node,
            epoch,
            topic_id,
        } => {
            part.unknown = 0;
            part.not_before = None;
            part.topic_id = part.topic_id.or(topic_id);
            part.leader = Some(Leader { node, epoch });
            tracing::debug!(partition = %tp, node, epoch, "routed");
            shared.ensure_loop(st, node);
        }
        Verdict::Later => part.retry_later(now),
        Verdict::Unknown => {
            part.unknown += 1;
            if part.unknown >= UNKNOWN_CONFIRMATIONS {
                Shared::park(st, tp, KafkaCode::UNKNOWN_TOPIC_OR_PARTITION);
            } else {
                part.retry_later(now);
            }
        }
        Verdict::Stop(code) => Shared::park(st, tp, code),
    }
}

enum Verdict {
    Route {
        node: i32,
        epoch: i32,
        topic_id: Option<uuid::Uuid>,
    },
    /// Retriable: look again after a backoff.
    Later,
    /// Metadata does not know the topic or partition.
    Unknown,
    /// Hand this code to the engine.
    Stop(KafkaCode),
}
