//! Routes and identities: metadata refreshes (batched, backed off) and
//! the producer epoch or id a partition needs after the broker lost its
//! state.

use std::sync::Arc;
use std::time::Instant;

use super::{Action, ProducerCore, Timer};
use crate::error::{ClientError, Result};
use crate::metadata::ClusterMetadata;
use crate::producer::sequence::{ProducerIdentity, backoff};

impl<T> ProducerCore<T> {
    /// Gives every partition that lost its broker state a newer identity:
    /// the current one if the partition is behind it, else the next epoch
    /// (a new producer id once the epoch is exhausted).
    pub(super) fn assign_identities(&mut self, now: Instant) {
        if self.awaiting_identity.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.awaiting_identity);
        for index in waiting {
            let Some(old) = self
                .slots
                .get(index)
                .and_then(|s| s.state.awaiting_identity())
            else {
                continue;
            };
            let new = if old == self.identity {
                match self.identity.bumped() {
                    Some(bumped) => {
                        self.identity = bumped;
                        bumped
                    }
                    None => {
                        self.request_producer_id(now);
                        self.awaiting_identity.insert(index);
                        continue;
                    }
                }
            } else {
                self.identity
            };
            if let Some(slot) = self.slots.get_mut(index) {
                if slot.state.is_empty() {
                    tracing::debug!(tp = %slot.tp, from = %old, to = %new, "partition continues under a new epoch");
                } else {
                    tracing::warn!(
                        tp = %slot.tp,
                        from = %old,
                        to = %new,
                        "the broker lost this producer's state for the partition; resending its unacknowledged \
                         batches renumbered from 0 (any of them the broker had already written is written again)"
                    );
                }
                slot.state.resequence(new, now);
            }
            self.after_change(index, now);
        }
    }

    fn request_producer_id(&mut self, now: Instant) {
        if self.producer_id_pending {
            return;
        }
        self.producer_id_pending = true;
        tracing::info!(identity = %self.identity, "producer epoch exhausted; getting a new producer id");
        self.actions.push_back(Action::InitProducerId {
            deadline: now + self.config.delivery_timeout,
        });
    }

    pub(super) fn on_producer_id(&mut self, result: Result<ProducerIdentity>, now: Instant) {
        self.producer_id_pending = false;
        match result {
            Ok(identity) => self.identity = identity,
            Err(err) => {
                let waiting: Vec<usize> = std::mem::take(&mut self.awaiting_identity)
                    .into_iter()
                    .collect();
                for index in waiting {
                    self.fail_slot(index, &err, now);
                }
            }
        }
    }

    pub(super) fn want_metadata(&mut self, topic: &Arc<str>) {
        if !self.metadata.wanted.contains(topic) {
            self.metadata.wanted.insert(Arc::clone(topic));
        }
    }

    pub(super) fn maybe_refresh_metadata(&mut self, now: Instant) {
        if self.metadata.in_flight || self.metadata.wanted.is_empty() {
            return;
        }
        if now < self.metadata.not_before {
            let at = self.metadata.not_before;
            if self.metadata.timer_at != Some(at) {
                self.metadata.timer_at = Some(at);
                self.arm(at, Timer::Metadata);
            }
            return;
        }
        let topics: Vec<Arc<str>> = std::mem::take(&mut self.metadata.wanted)
            .into_iter()
            .collect();
        self.metadata.in_flight = true;
        self.actions.push_back(Action::RefreshMetadata { topics });
    }

    pub(super) fn on_metadata(
        &mut self,
        topics: Vec<Arc<str>>,
        result: Result<Arc<ClusterMetadata>>,
        now: Instant,
    ) {
        self.metadata.in_flight = false;
        let affected: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| topics.contains(&s.tp.topic))
            .map(|(i, _)| i)
            .collect();
        match result {
            Ok(metadata) => {
                self.known = Arc::clone(&metadata);
                for &index in &affected {
                    self.update_route(index, &metadata, now);
                }
                // Partitions still without a leader ask again, backing off.
                if self.metadata.wanted.is_empty() {
                    self.metadata.failures = 0;
                } else {
                    self.metadata.failures = self.metadata.failures.saturating_add(1);
                }
                self.metadata.not_before =
                    now + backoff(self.config.retry_backoff, self.metadata.failures.max(1));
            }
            Err(err) => {
                tracing::debug!(error = %err, "metadata refresh for the producer failed");
                self.metadata.failures = self.metadata.failures.saturating_add(1);
                self.metadata.not_before =
                    now + backoff(self.config.retry_backoff, self.metadata.failures);
                for topic in &topics {
                    self.want_metadata(topic);
                }
                for &index in &affected {
                    if let Some(slot) = self.slots.get_mut(index) {
                        slot.state.note_error(&err);
                    }
                }
            }
        }
    }

    /// Routes a partition by `metadata`: its leader, or why it has none.
    pub(super) fn update_route(&mut self, index: usize, metadata: &ClusterMetadata, now: Instant) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        match metadata.leader(&slot.tp.topic, slot.tp.partition) {
            Ok(info) => {
                let node = info.broker.node_id;
                let epoch = info.partition.leader_epoch;
                if let (Some(new), Some(known)) = (epoch, slot.leader_epoch) {
                    if new < known && slot.leader.is_some() && slot.topic_id == info.topic_id {
                        // Older than a leader hint we already follow (a
                        // recreated topic, with a new id, starts over).
                        self.schedule(index);
                        return;
                    }
                }
                if slot.leader != Some(node) {
                    tracing::debug!(tp = %slot.tp, node, "partition leader");
                }
                slot.leader = Some(node);
                slot.leader_epoch = epoch;
                slot.topic_id = info.topic_id;
                self.schedule(index);
            }
            Err(err)
                if err.is_retriable() || matches!(err, ClientError::UnknownPartition { .. }) =>
            {
                // No leader yet, a topic being created, partitions being added:
                // ask again until the delivery timeout says otherwise.
                slot.leader = None;
                slot.state.note_error(&err);
                let topic = Arc::clone(&slot.tp.topic);
                self.want_metadata(&topic);
            }
            Err(err) => self.fail_slot(index, &err, now),
        }
    }
}
