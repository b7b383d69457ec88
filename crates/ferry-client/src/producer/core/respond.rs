//! Answers: connections made or lost, Produce responses classified per
//! batch, leader hints (KIP-951) and throttling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_wire::responses::produce::ProduceResponse;
use kafka_protocol::messages::ApiKey;

use super::{Conn, ConnectedBroker, ProducerCore, Timer};
use crate::error::{ClientError, KafkaCode, Result};
use crate::producer::Ack;
use crate::producer::classify::{Verdict, verdict};
use crate::producer::partition::Outcome;
use crate::producer::request;
use crate::producer::sequence::backoff;

impl<T> ProducerCore<T> {
    pub(super) fn on_connected(
        &mut self,
        node: i32,
        result: Result<ConnectedBroker>,
        now: Instant,
    ) {
        let Some(broker) = self.brokers.get_mut(&node) else {
            return;
        };
        match result {
            Ok(connected) => {
                tracing::debug!(
                    node,
                    broker = connected.broker,
                    version = connected.version,
                    "producer connected"
                );
                broker.conn = Conn::Ready(connected);
                broker.generation += 1;
                broker.failures = 0;
            }
            Err(err) if !err.is_retriable() => {
                // The broker cannot take our Produce requests at all.
                tracing::warn!(node, error = %err, "cannot produce to broker");
                broker.failures = broker.failures.saturating_add(1);
                let until = now + backoff(self.config.retry_backoff, broker.failures);
                broker.conn = Conn::Failed { until };
                self.arm(until, Timer::Broker(node));
                for index in self.led_by(node) {
                    self.fail_slot(index, &err, now);
                }
            }
            Err(err) => {
                broker.failures = broker.failures.saturating_add(1);
                let wait = backoff(self.config.retry_backoff, broker.failures);
                tracing::debug!(node, error = %err, ?wait, "producer connection failed");
                broker.conn = Conn::Failed { until: now + wait };
                self.arm(now + wait, Timer::Broker(node));
                for index in self.led_by(node) {
                    if let Some(slot) = self.slots.get_mut(index) {
                        slot.state.note_error(&err);
                        let topic = Arc::clone(&slot.tp.topic);
                        self.want_metadata(&topic);
                    }
                }
            }
        }
    }

    /// The connection broke: the next request to `node` opens a new one.
    /// (Requests still queued on the old one answer with its error.)
    pub(super) fn on_connection_broken(&mut self, node: i32) {
        if let Some(broker) = self.brokers.get_mut(&node) {
            if matches!(broker.conn, Conn::Ready(_)) {
                broker.conn = Conn::Idle;
                broker.generation += 1;
            }
        }
    }

    fn led_by(&self, node: i32) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.leader == Some(node))
            .map(|(i, _)| i)
            .collect()
    }

    pub(super) fn on_response(
        &mut self,
        request: u64,
        result: Result<ProduceResponse>,
        now: Instant,
    ) {
        let Some(req) = self.requests.remove(&request) else {
            return;
        };
        if let Some(broker) = self.brokers.get_mut(&req.node) {
            broker.in_flight = broker.in_flight.saturating_sub(1);
        }
        tracing::trace!(
            node = req.node,
            batches = req.parts.len(),
            took = ?now.saturating_duration_since(req.sent),
            "produce answer"
        );
        let response = match result {
            Ok(response) => response,
            Err(err) => {
                tracing::debug!(broker = %req.broker, error = %err, batches = req.parts.len(), "produce request failed; will retry");
                self.retries.record(&err);
                for part in &req.parts {
                    self.want_metadata(&part.topic);
                }
                for part in req.parts {
                    let outcome = Outcome::Retry(err.clone());
                    self.apply(part.slot, part.entry, request, outcome, now);
                }
                return;
            }
        };
        if response.throttle_time_ms > 0 {
            let until =
                now + Duration::from_millis(u64::from(response.throttle_time_ms.unsigned_abs()));
            tracing::debug!(broker = %req.broker, ms = response.throttle_time_ms, "throttled by broker");
            if let Some(broker) = self.brokers.get_mut(&req.node) {
                broker.throttled_until = Some(until);
            }
            self.arm(until, Timer::Broker(req.node));
        }
        let answers = request::answers(req.version, &req.parts, &response);
        let mut outcomes = Vec::with_capacity(req.parts.len());
        for (part, answer) in req.parts.iter().zip(answers) {
            let Some(answer) = answer else {
                let err = ClientError::IncompleteResponse {
                    broker: req.broker.clone(),
                    api: ApiKey::Produce,
                    missing: format!(
                        "a result for topic {:?} partition {}",
                        part.topic, part.partition
                    ),
                };
                self.retries.record(&err);
                outcomes.push(Outcome::Retry(err));
                continue;
            };
            let code = KafkaCode::from_code(answer.error_code);
            let outcome = match (verdict(code), code) {
                (Verdict::Written, _) | (_, None) => Outcome::Written(Ack {
                    base_offset: answer.base_offset,
                    log_append_time_ms: answer.log_append_time_ms,
                    record_count: part.record_count,
                }),
                (verdict, Some(code)) => {
                    let err = request::partition_error(&req.broker, part, code, answer);
                    match verdict {
                        Verdict::Retry { refresh_metadata } => {
                            if refresh_metadata {
                                self.follow_leader_hint(part.slot, answer.current_leader);
                            }
                            tracing::debug!(error = %err, "retriable produce error");
                            self.retries.record(&err);
                            Outcome::Retry(err)
                        }
                        Verdict::OutOfOrder => Outcome::OutOfOrder(err),
                        Verdict::ProducerState => Outcome::ProducerState(err),
                        Verdict::Fatal | Verdict::Written => {
                            tracing::warn!(error = %err, "batch refused; the partition stops");
                            Outcome::Fatal(err)
                        }
                    }
                }
            };
            outcomes.push(outcome);
        }
        for (part, outcome) in req.parts.into_iter().zip(outcomes) {
            self.apply(part.slot, part.entry, request, outcome, now);
        }
    }

    /// Moves the partition to the leader the broker named (KIP-951), if that
    /// is news and the broker is known; otherwise asks for metadata.
    fn follow_leader_hint(&mut self, index: usize, hint: Option<(i32, i32)>) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if let Some((leader, epoch)) = hint {
            if slot.leader == Some(leader) && slot.leader_epoch == Some(epoch) {
                // An earlier answer named the same leader: already followed.
                return;
            }
            let newer = slot.leader_epoch.is_none_or(|e| epoch > e);
            if leader >= 0 && newer && self.known.brokers.contains_key(&leader) {
                tracing::debug!(tp = %slot.tp, leader, epoch, "following the broker's leader hint");
                slot.leader = Some(leader);
                slot.leader_epoch = Some(epoch);
                return;
            }
        }
        let topic = Arc::clone(&slot.tp.topic);
        self.want_metadata(&topic);
    }

    /// Applies one batch's outcome and everything that follows from it.
    pub(super) fn apply(
        &mut self,
        index: usize,
        entry: u64,
        request: u64,
        outcome: Outcome,
        now: Instant,
    ) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        slot.state
            .on_outcome(entry, request, outcome, now, &mut self.completed);
        self.after_change(index, now);
    }
}
