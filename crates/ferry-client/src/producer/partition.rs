//! One target partition's sequencing state: a plain state machine with no
//! I/O, so every rule can be tested without sockets.
//!
//! A partition holds its unresolved batches in send order. Each batch is
//! *queued* (never sent, or waiting to be resent), *in flight* (part of a
//! Produce request that has not been answered), or *done* (answered, but
//! held until every earlier batch is done, so results come out in send
//! order). The rules, from the Java producer with `enable.idempotence=true`
//! and the broker's `ProducerAppendInfo`:
//!
//! - A batch gets its base sequence when it is first sent: the partition's
//!   next sequence, which then advances by the batch's record count
//!   (wrapping at `i32::MAX`). Retries keep it.
//! - At most `max_in_flight` batches are in flight, always the oldest
//!   queued ones, in order, and none further than `max_in_flight` batches
//!   from the oldest unresolved one. More may wait queued behind them (so a
//!   partition has its next batch ready the moment a slot frees), but the
//!   broker remembers only a producer's last five batches per partition: a
//!   retry of a batch older than that would be written twice. Until the
//!   broker has acknowledged one batch under the partition's current
//!   producer epoch, only one is in flight: a broker with no state for an
//!   epoch accepts *any* sequence, so a later batch could otherwise be
//!   written before an earlier one that failed. The same holds after every
//!   retry: a broker that lost the producer's state (a new leader that
//!   dropped it as expired: Kafka ages it by the batches' record
//!   timestamps, so old data loses it fast) must see the oldest batch
//!   first, alone.
//! - After any failure nothing more is sent until every in-flight batch is
//!   answered; then all unresolved batches are resent in order after a
//!   backoff, with the same sequences (the broker drops the ones it already
//!   has and returns their original offsets).
//! - `OUT_OF_ORDER_SEQUENCE_NUMBER` for the oldest unresolved batch, and
//!   `UNKNOWN_PRODUCER_ID` / `INVALID_PRODUCER_EPOCH` for any, mean the
//!   broker's state for this producer no longer matches ours. The partition
//!   then waits for a new producer epoch and renumbers its unresolved
//!   batches from 0 under it. (An out-of-order answer for a later batch only
//!   means an earlier one is missing: a plain retry.)
//! - A fatal error, or a delivery timeout, *poisons* the partition at that
//!   batch: it fails, every later batch fails with
//!   [`ClientError::NotDelivered`], and no new batch is accepted. Earlier
//!   batches still finish.

use std::collections::VecDeque;
use std::time::Duration;

use std::time::Instant;

use super::Ack;
use super::sequence::{ProducerIdentity, backoff, increment_sequence};
use crate::TopicPartition;
use crate::error::{ClientError, Result};

/// The settings a partition's state machine needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub max_in_flight: usize,
    pub retry_backoff: Duration,
    /// Only for error messages; deadlines are given per batch.
    pub delivery_timeout: Duration,
}

/// The answer to one in-flight batch.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Written (or found to be a duplicate of a written batch).
    Written(Ack),
    /// Resend with the same sequence.
    Retry(ClientError),
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`.
    OutOfOrder(ClientError),
    /// `UNKNOWN_PRODUCER_ID` or `INVALID_PRODUCER_EPOCH`.
    ProducerState(ClientError),
    /// The broker refused the batch for good.
    Fatal(ClientError),
}

/// A batch taken for sending: its identity and sequence for the header.
#[derive(Debug)]
pub(crate) struct Outgoing<'a, T> {
    pub entry: u64,
    pub identity: ProducerIdentity,
    pub sequence: i32,
    pub payload: &'a mut T,
}

/// Results in send order, ready to hand to the caller.
pub(crate) type Completed<T> = Vec<(T, Result<Ack>)>;

#[derive(Debug)]
pub(crate) struct PartitionState<T> {
    tp: TopicPartition,
    limits: Limits,
    /// The producer id and epoch the sequences below belong to; adopted from
    /// the producer's current identity at the first send.
    identity: Option<ProducerIdentity>,
    next_sequence: i32,
    entries: VecDeque<Entry<T>>,
    in_flight: usize,
    /// The broker acknowledged a batch under `identity` since the last
    /// failure.
    confirmed: bool,
    /// The broker wrote a later batch while the oldest one was missing,
    /// which only a broker without this producer's state does: the log
    /// holds them out of order. Taken by [`Self::take_reordered`].
    reordered: bool,
    /// What to do once nothing is in flight any more.
    recovery: Option<Recovery>,
    /// Waiting for [`Self::resequence`].
    awaiting_identity: bool,
    /// Backoff: nothing is sent before this.
    not_before: Option<Instant>,
    /// Failures since the last success, for the backoff.
    failures: u32,
    /// Why the partition stopped accepting batches.
    poisoned: Option<ClientError>,
    /// When [`Self::stuck`] last reported the partition.
    warned_at: Option<Instant>,
}

/// How long the oldest batch may go unacknowledged, failing, before
/// [`PartitionState::stuck`] reports it, and how often after that: an
/// operator hears of a deleted topic or a refusing broker in seconds, not
/// at the delivery timeout.
const STUCK_AFTER: Duration = Duration::from_secs(5);
const STUCK_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Recovery {
    Retry,
    Resequence,
}

#[derive(Debug)]
struct Entry<T> {
    id: u64,
    /// Sequence numbers the batch takes: `lastOffsetDelta + 1`.
    increment: i32,
    deadline: Instant,
    sequence: Option<i32>,
    /// Times sent.
    attempts: u32,
    status: Status,
    last_error: Option<ClientError>,
    payload: T,
}

#[derive(Debug)]
enum Status {
    Queued,
    InFlight { request: u64 },
    Done(Result<Ack>),
}

impl<T> PartitionState<T> {
    pub fn new(tp: TopicPartition, limits: Limits) -> Self {
        Self {
            tp,
            limits,
            identity: None,
            next_sequence: 0,
            entries: VecDeque::with_capacity(limits.max_in_flight),
            in_flight: 0,
            confirmed: false,
            reordered: false,
            recovery: None,
            awaiting_identity: false,
            not_before: None,
            failures: 0,
            poisoned: None,
            warned_at: None,
        }
    }

    /// Why the partition stopped, if it did.
    #[cfg(test)]
    pub fn poisoned(&self) -> Option<&ClientError> {
        self.poisoned.as_ref()
    }

    /// No unresolved batch.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The producer identity of the partition's sequences, once it has one.
    #[cfg(test)]
    pub fn identity(&self) -> Option<ProducerIdentity> {
        self.identity
    }

    /// When the current backoff ends, if one is running.
    pub fn not_before(&self) -> Option<Instant> {
        self.not_before
    }

    /// The partition's identity, when it is waiting for a newer one.
    pub fn awaiting_identity(&self) -> Option<ProducerIdentity> {
        self.identity.filter(|_| self.awaiting_identity)
    }

    /// Lets a stopped partition with nothing unresolved take batches again,
    /// under a newer producer epoch from sequence 0 (its last sequences are
    /// unknown: abandoned batches may or may not have been written). False
    /// if it is not stopped, or still has unresolved batches.
    pub fn restart(&mut self) -> bool {
        if self.poisoned.is_none() || !self.entries.is_empty() {
            return false;
        }
        self.poisoned = None;
        self.recovery = None;
        self.failures = 0;
        self.not_before = None;
        self.warned_at = None;
        self.confirmed = false;
        // A partition that never sent anything starts under the current
        // identity anyway.
        self.awaiting_identity = self.identity.is_some();
        true
    }

    /// The error a batch gets when it is handed to a stopped partition.
    pub fn refusal(&self) -> Option<ClientError> {
        self.poisoned
            .as_ref()
            .map(|cause| ClientError::NotDelivered {
                topic: self.tp.topic.to_string(),
                partition: self.tp.partition,
                base_sequence: None,
                reason: format!("the partition stopped after an earlier batch failed: {cause}"),
            })
    }

    /// Queues a batch taking `increment` sequence numbers. A stopped
    /// partition hands the payload back with the reason.
    pub fn push(
        &mut self,
        id: u64,
        increment: i32,
        deadline: Instant,
        payload: T,
    ) -> std::result::Result<(), (T, ClientError)> {
        if let Some(err) = self.refusal() {
            return Err((payload, err));
        }
        self.entries.push_back(Entry {
            id,
            increment,
            deadline,
            sequence: None,
            attempts: 0,
            status: Status::Queued,
            last_error: None,
            payload,
        });
        Ok(())
    }

    fn first_queued(&self) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| matches!(e.status, Status::Queued))
    }

    /// Remembers why queued batches are not going out (no leader, no
    /// connection), for the message if their delivery timeout passes.
    pub fn note_error(&mut self, err: &ClientError) {
        for e in &mut self.entries {
            if matches!(e.status, Status::Queued) {
                e.last_error = Some(err.clone());
            }
        }
    }

    /// Whether a batch may be sent now.
    pub fn ready(&self, now: Instant) -> bool {
        self.recovery.is_none()
            && !self.awaiting_identity
            && self.not_before.is_none_or(|t| now >= t)
            && self.in_flight < self.limits.max_in_flight
            && (self.confirmed || self.in_flight == 0)
            // The front entry is the oldest unresolved one (done ones at
            // the front are handed out at once).
            && self
                .first_queued()
                .is_some_and(|i| i < self.limits.max_in_flight)
    }

    /// Something is queued, whether or not it may go now.
    pub fn has_queued(&self) -> bool {
        self.first_queued().is_some()
    }

    /// The batch [`Self::next`] would send, to size a request before taking it.
    pub fn peek_next(&self, now: Instant) -> Option<&T> {
        if !self.ready(now) {
            return None;
        }
        self.first_queued()
            .and_then(|i| self.entries.get(i))
            .map(|e| &e.payload)
    }

    /// Takes the next batch for request `request`, giving it a sequence
    /// under the partition's identity (`current` if it has none yet).
    pub fn next(
        &mut self,
        current: ProducerIdentity,
        request: u64,
        now: Instant,
    ) -> Option<Outgoing<'_, T>> {
        if !self.ready(now) {
            return None;
        }
        let index = self.first_queued()?;
        let identity = *self.identity.get_or_insert(current);
        let entry = self.entries.get_mut(index)?;
        let sequence = match entry.sequence {
            Some(sequence) => sequence,
            None => {
                let sequence = self.next_sequence;
                self.next_sequence = increment_sequence(sequence, entry.increment);
                entry.sequence = Some(sequence);
                sequence
            }
        };
        entry.status = Status::InFlight { request };
        entry.attempts = entry.attempts.saturating_add(1);
        self.in_flight += 1;
        Some(Outgoing {
            entry: entry.id,
            identity,
            sequence,
            payload: &mut entry.payload,
        })
    }

    /// Applies the answer for batch `entry` sent in `request`. Answers for
    /// anything not in flight in that request (a batch already failed, a
    /// late answer) are ignored.
    pub fn on_outcome(
        &mut self,
        entry: u64,
        request: u64,
        outcome: Outcome,
        now: Instant,
        out: &mut Completed<T>,
    ) {
        let Some(index) = self.entries.iter().position(|e| {
            e.id == entry && matches!(e.status, Status::InFlight { request: r } if r == request)
        }) else {
            return;
        };
        self.in_flight -= 1;
        let is_head = self
            .entries
            .iter()
            .take(index)
            .all(|e| matches!(e.status, Status::Done(_)));
        match outcome {
            Outcome::Written(ack) => {
                if let Some(e) = self.entries.get_mut(index) {
                    e.status = Status::Done(Ok(ack));
                }
                self.confirmed = true;
                self.failures = 0;
            }
            Outcome::Retry(err) => self.requeue(index, err, Recovery::Retry),
            Outcome::OutOfOrder(err) => {
                let recovery = if is_head {
                    Recovery::Resequence
                } else {
                    Recovery::Retry
                };
                if is_head && self.acknowledged_after(index) {
                    self.reordered = true;
                }
                self.requeue(index, err, recovery);
            }
            Outcome::ProducerState(err) => self.requeue(index, err, Recovery::Resequence),
            Outcome::Fatal(err) => self.poison_at(index, err),
        }
        if self.in_flight == 0 {
            self.recover(now);
        }
        self.pop_done(out);
    }

    fn requeue(&mut self, index: usize, err: ClientError, recovery: Recovery) {
        if let Some(e) = self.entries.get_mut(index) {
            e.status = Status::Queued;
            e.last_error = Some(err);
        }
        self.recovery = self.recovery.max(Some(recovery));
    }

    /// Runs the pending recovery once nothing is in flight.
    fn recover(&mut self, now: Instant) {
        let Some(recovery) = self.recovery.take() else {
            return;
        };
        if !self.has_queued() {
            return;
        }
        self.failures = self.failures.saturating_add(1);
        // One batch at a time until the broker acknowledges one again.
        self.confirmed = false;
        match recovery {
            Recovery::Retry => {
                self.not_before = Some(now + backoff(self.limits.retry_backoff, self.failures));
            }
            Recovery::Resequence => self.awaiting_identity = true,
        }
    }

    /// A batch after `index` was acknowledged under the current identity.
    fn acknowledged_after(&self, index: usize) -> bool {
        self.entries
            .iter()
            .skip(index + 1)
            .any(|e| matches!(e.status, Status::Done(Ok(_))))
    }

    /// Whether a reorder was noticed since the last call (see `reordered`).
    pub fn take_reordered(&mut self) -> bool {
        std::mem::take(&mut self.reordered)
    }

    /// Renumbers the unresolved batches from 0 under `identity` (a newer
    /// epoch, or a new producer id) and resends them after a backoff.
    pub fn resequence(&mut self, identity: ProducerIdentity, now: Instant) {
        let mut sequence = 0;
        for e in &mut self.entries {
            if matches!(e.status, Status::Done(_)) || e.sequence.is_none() {
                continue;
            }
            e.sequence = Some(sequence);
            sequence = increment_sequence(sequence, e.increment);
        }
        self.identity = Some(identity);
        self.next_sequence = sequence;
        self.confirmed = false;
        self.awaiting_identity = false;
        self.not_before = Some(now + backoff(self.limits.retry_backoff, self.failures));
    }

    /// Fails the oldest unresolved batch if its delivery deadline passed
    /// while it was not in flight (an in-flight batch waits for its answer,
    /// which the request timeout bounds). That poisons the partition.
    pub fn expire(&mut self, now: Instant, out: &mut Completed<T>) {
        let Some(index) = self
            .entries
            .iter()
            .position(|e| !matches!(e.status, Status::Done(_)))
        else {
            return;
        };
        let Some(e) = self.entries.get(index) else {
            return;
        };
        if matches!(e.status, Status::InFlight { .. }) || e.deadline > now {
            return;
        }
        let written = if e.attempts > 0 {
            "; it may have been written by an earlier attempt"
        } else {
            "; it was never sent"
        };
        let last = e
            .last_error
            .as_ref()
            .map_or_else(String::new, |err| format!("; last error: {err}"));
        let err = ClientError::NotDelivered {
            topic: self.tp.topic.to_string(),
            partition: self.tp.partition,
            base_sequence: e.sequence,
            reason: format!(
                "not acknowledged within the delivery timeout ({:?}){written}{last}",
                self.limits.delivery_timeout
            ),
        };
        self.poison_at(index, err);
        self.recovery = None;
        self.awaiting_identity = false;
        self.pop_done(out);
    }

    /// How long the oldest unresolved batch has waited and the error it is
    /// retrying on, when that is worth a warning: it failed at least once
    /// and has waited [`STUCK_AFTER`]; at most once per [`STUCK_EVERY`].
    pub fn stuck(&mut self, now: Instant) -> Option<(Duration, ClientError)> {
        let e = self
            .entries
            .iter()
            .find(|e| !matches!(e.status, Status::Done(_)))?;
        let err = e.last_error.clone()?;
        let queued_at = e.deadline.checked_sub(self.limits.delivery_timeout)?;
        let waited = now.saturating_duration_since(queued_at);
        let quiet = self
            .warned_at
            .is_none_or(|at| now.saturating_duration_since(at) >= STUCK_EVERY);
        if waited < STUCK_AFTER || !quiet {
            return None;
        }
        self.warned_at = Some(now);
        Some((waited, err))
    }

    /// Fails every unresolved batch with `err` and stops the partition: the
    /// topic became unusable, or the producer is stopping.
    pub fn fail_all(&mut self, err: &ClientError, out: &mut Completed<T>) {
        for e in &mut self.entries {
            if !matches!(e.status, Status::Done(_)) {
                e.status = Status::Done(Err(err.clone()));
            }
        }
        self.in_flight = 0;
        self.recovery = None;
        self.awaiting_identity = false;
        if self.poisoned.is_none() {
            self.poisoned = Some(err.clone());
        }
        self.pop_done(out);
    }

    /// Fails batch `index` with `err`, abandons every later batch, and stops
    /// the partition. Earlier batches go on.
    fn poison_at(&mut self, index: usize, err: ClientError) {
        let mut abandoned = 0;
        for e in self.entries.iter_mut().skip(index + 1) {
            let was_sent = match e.status {
                Status::Done(_) => continue,
                Status::InFlight { .. } => {
                    abandoned += 1;
                    true
                }
                Status::Queued => e.attempts > 0,
            };
            let reason = format!(
                "an earlier batch of the partition failed, so this one was abandoned{}: {err}",
                if was_sent {
                    " (it may have been written)"
                } else {
                    ""
                }
            );
            e.status = Status::Done(Err(ClientError::NotDelivered {
                topic: self.tp.topic.to_string(),
                partition: self.tp.partition,
                base_sequence: e.sequence,
                reason,
            }));
        }
        self.in_flight -= abandoned;
        if self.poisoned.is_none() {
            self.poisoned = Some(err.clone());
        }
        if let Some(e) = self.entries.get_mut(index) {
            e.status = Status::Done(Err(err));
        }
    }

    fn pop_done(&mut self, out: &mut Completed<T>) {
        while self
            .entries
            .front()
            .is_some_and(|e| matches!(e.status, Status::Done(_)))
        {
            if let Some(e) = self.entries.pop_front() {
                if let Status::Done(result) = e.status {
                    out.push((e.payload, result));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;

    use super::*;
    use crate::error::KafkaCode;

    const PID: ProducerIdentity = ProducerIdentity {
        producer_id: 1000,
        epoch: 0,
    };

    fn limits() -> Limits {
        Limits {
            max_in_flight: 5,
            retry_backoff: Duration::from_millis(100),
            delivery_timeout: Duration::from_secs(120),
        }
    }

    fn state() -> PartitionState<&'static str> {
        PartitionState::new(TopicPartition::new("t", 3), limits())
    }

    fn ack(base_offset: i64) -> Outcome {
        Outcome::Written(Ack {
            base_offset,
            log_append_time_ms: -1,
            record_count: 1,
        })
    }

    fn kafka(code: KafkaCode) -> ClientError {
        ClientError::Kafka {
            broker: "b:9092".into(),
            api: ApiKey::Produce,
            code,
            context: " for topic \"t\" partition 3".into(),
        }
    }

    /// Pushes batches named `names`, each taking `increment` sequences.
    fn push_all(s: &mut PartitionState<&'static str>, now: Instant, names: &[(&'static str, i32)]) {
        for (i, (name, increment)) in names.iter().enumerate() {
            let id = u64::try_from(i).unwrap() + 100 * u64::from(name.as_bytes()[0]);
            s.push(id, *increment, now + Duration::from_secs(120), name)
                .unwrap();
        }
    }

    /// Takes everything sendable now into request `request`:
    /// `(entry, name, sequence, epoch)`.
    fn take_all(
        s: &mut PartitionState<&'static str>,
        request: u64,
        now: Instant,
    ) -> Vec<(u64, &'static str, i32, i16)> {
        let mut taken = Vec::new();
        while let Some(o) = s.next(PID, request, now) {
            taken.push((o.entry, *o.payload, o.sequence, o.identity.epoch));
        }
        taken
    }

    fn names(out: &Completed<&'static str>) -> Vec<(&'static str, bool)> {
        out.iter().map(|(n, r)| (*n, r.is_ok())).collect()
    }

    #[test]
    fn sequences_follow_send_order_and_record_counts() {
        let now = Instant::now();
        let mut s = state();
        push_all(&mut s, now, &[("a", 3), ("b", 1), ("c", 10)]);
        // Unconfirmed: one batch at a time.
        let first = take_all(&mut s, 1, now);
        assert_eq!(
            first.iter().map(|t| (t.1, t.2)).collect::<Vec<_>>(),
            [("a", 0)]
        );
        let mut out = Vec::new();
        s.on_outcome(first[0].0, 1, ack(0), now, &mut out);
        assert_eq!(names(&out), [("a", true)]);
        // Confirmed: the rest pipelines.
        let rest = take_all(&mut s, 2, now);
        assert_eq!(
            rest.iter().map(|t| (t.1, t.2)).collect::<Vec<_>>(),
            [("b", 3), ("c", 4)]
        );
        assert_eq!(s.in_flight(), 2);
        out.clear();
        s.on_outcome(rest[0].0, 2, ack(3), now, &mut out);
        s.on_outcome(rest[1].0, 2, ack(4), now, &mut out);
        assert_eq!(names(&out), [("b", true), ("c", true)]);
        assert!(s.is_empty());
        push_all(&mut s, now, &[("d", 1)]);
        assert_eq!(take_all(&mut s, 3, now)[0].2, 14);
    }

    #[test]
    fn at_most_max_in_flight() {
        let now = Instant::now();
        let mut s = PartitionState::new(
            TopicPartition::new("t", 0),
            Limits {
                max_in_flight: 2,
                ..limits()
            },
        );
        push_all(&mut s, now, &[("a", 1), ("b", 1), ("c", 1), ("d", 1)]);
        let a = take_all(&mut s, 1, now);
        let mut out = Vec::new();
        s.on_outcome(a[0].0, 1, ack(0), now, &mut out);
        let taken = take_all(&mut s, 2, now);
        assert_eq!(taken.len(), 2);
        assert!(!s.ready(now));
        s.on_outcome(taken[0].0, 2, ack(1), now, &mut out);
        assert_eq!(take_all(&mut s, 3, now).len(), 1);
    }

    /// Queued batches wait behind the window: a later batch's answer does
    /// not let a batch further than `max_in_flight` from the oldest
    /// unresolved one go out, only the oldest's answer does.
    #[test]
    fn queued_batches_stay_within_the_window_of_the_oldest() {
        let now = Instant::now();
        let mut s = state();
        push_all(&mut s, now, &[("a", 1)]);
        let a = take_all(&mut s, 1, now);
        let mut out = Vec::new();
        s.on_outcome(a[0].0, 1, ack(0), now, &mut out);
        let queued: Vec<(&'static str, i32)> =
            ["b", "c", "d", "e", "f", "g", "h"].map(|n| (n, 1)).to_vec();
        push_all(&mut s, now, &queued);
        let sent: Vec<(u64, &str)> = (2..9)
            .filter_map(|r| s.next(PID, r, now).map(|o| (o.entry, *o.payload)))
            .collect();
        assert_eq!(
            sent.iter().map(|t| t.1).collect::<Vec<_>>(),
            ["b", "c", "d", "e", "f"]
        );
        assert!(s.has_queued() && !s.ready(now));
        // c..f answered: held behind b, and g still may not go (b would
        // fall out of the broker's five-batch memory).
        for (i, (entry, _)) in sent.iter().enumerate().skip(1) {
            s.on_outcome(*entry, 2 + u64::try_from(i).unwrap(), ack(2), now, &mut out);
        }
        assert_eq!(s.in_flight(), 1);
        assert!(
            !s.ready(now),
            "g sent while b, five batches back, is unanswered"
        );
        s.on_outcome(sent[0].0, 2, ack(1), now, &mut out);
        assert_eq!(out.len(), 6);
        assert_eq!(
            take_all(&mut s, 20, now)
                .iter()
                .map(|t| (t.1, t.2))
                .collect::<Vec<_>>(),
            [("g", 6), ("h", 7)]
        );
    }

    #[test]
    fn acks_come_out_in_send_order() {
        let now = Instant::now();
        let mut s = state();
        push_all(&mut s, now, &[("a", 1)]);
        let a = take_all(&mut s, 1, now);
        let mut out = Vec::new();
        s.on_outcome(a[0].0, 1, ack(0), now, &mut out);
        push_all(&mut s, now, &[("b", 1), ("c", 1), ("d", 1)]);
        let t = take_all(&mut s, 2, now);
        out.clear();
        // c answered before b (e.g. b failed NOT_ENOUGH_REPLICAS_AFTER_APPEND
        // while c went through): c is held until b is done.
        s.on_outcome(t[1].0, 2, ack(2), now, &mut out);
        assert!(out.is_empty());
        s.on_outcome(
            t[0].0,
            2,
            Outcome::Retry(kafka(KafkaCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND)),
            now,
            &mut out,
        );
        assert!(out.is_empty());
        s.on_outcome(t[2].0, 2, ack(3), now, &mut out);
        assert!(out.is_empty());
        // The retry resends only b, with its sequence, after the backoff.
        assert!(!s.ready(now));
        let later = now + Duration::from_millis(100);
        let retried = take_all(&mut s, 3, later);
        assert_eq!(
            retried.iter().map(|t| (t.1, t.2)).collect::<Vec<_>>(),
            [("b", 1)]
        );
        s.on_outcome(retried[0].0, 3, ack(1), later, &mut out);
        assert_eq!(names(&out), [("b", true), ("c", true), ("d", true)]);
        let offsets: Vec<i64> = out
            .iter()
            .map(|(_, r)| r.as_ref().unwrap().base_offset)
            .collect();
        assert_eq!(offsets, [1, 2, 3]);
    }

    #[test]
    fn retry_waits_for_in_flight_and_keeps_sequences() {
        let now = Instant::now();
        let mut s = state();
        push_all(&mut s, now, &[("a", 2)]);
        let a = take_all(&mut s, 1, now);
        let mut out = Vec::new();
        s.on_outcome(a[0].0, 1, ack(0), now, &mut out);
        assert_eq!(names(&out), [("a", true)]);
        out.clear();
        push_all(&mut s, now, &[("b", 2), ("c", 2), ("d", 2)]);
        let t = take_all(&mut s, 2, now);
        assert_eq!(
            t.iter().map(|t| t.2).collect::<Vec<_>>(),
            [2, 4, 6],
            "pipelined"
        );
        let nl = || Outcome::Retry(kafka(KafkaCode::NOT_LEADER_OR_FOLLOWER));
        s.on_outcome(t[0].0, 2, nl(), now, &mut out);
        // c and d are still in flight: nothing may go, even after the backoff.
        let later = now + Duration::from_secs(5);
        assert!(!s.ready(later));
        s.on_outcome(
            t[1].0,
            2,
            Outcome::OutOfOrder(kafka(KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER)),
            now,
            &mut out,
        );
        s.on_outcome(t[2].0, 2, nl(), now, &mut out);
        assert!(out.is_empty());
        // Out-of-order behind a missing batch is a plain retry: same epoch, same sequences.
        assert_eq!(s.awaiting_identity(), None);
        assert!(!s.ready(now + Duration::from_millis(99)));
        let first_retry = now + Duration::from_millis(100);
        // The oldest goes alone: a broker that lost the producer's state
        // would take the later ones first.
        let t2 = take_all(&mut s, 3, first_retry);
        assert_eq!(
            t2.iter().map(|t| (t.1, t.2, t.3)).collect::<Vec<_>>(),
            [("b", 2, 0)]
        );
        // A second failure backs off twice as long.
        s.on_outcome(t2[0].0, 3, nl(), first_retry, &mut out);
        assert!(!s.ready(first_retry + Duration::from_millis(199)));
        let second_retry = first_retry + Duration::from_millis(200);
        let t3 = take_all(&mut s, 4, second_retry);
        assert_eq!(t3.len(), 1);
        // Once it is acknowledged the rest pipeline again, same sequences.
        s.on_outcome(t3[0].0, 4, ack(2), second_retry, &mut out);
        let t4 = take_all(&mut s, 5, second_retry);
        assert_eq!(
            t4.iter().map(|t| (t.1, t.2, t.3)).collect::<Vec<_>>(),
            [("c", 4, 0), ("d", 6, 0)]
        );
    }

    #[test]
    fn out_of_order_at_the_head_resequences_under_a_new_epoch() {
        let now = Instant::now();
        let mut s = state();
        push_all(&mut s, now, &[("a", 5)]);
        let a = take_all(&mut s, 1, now);
        let mut out = Vec::new();
        s.on_outcome(a[0].0, 1, ack(0), now, &mut out);
        push_all(&mut s, now, &[("b", 5), ("c", 5)]);
        let t = take_all(&mut s, 2, now);
        assert_eq!(t.iter().map(|t| t.2).collect::<Vec<_>>(), [5, 10]);
        let oos = || Outcome::OutOfOrder(kafka(KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER));
        s.on_outcome(t[0].0, 2, oos(), now, &mut out);
        s.on_outcome(t[1].0, 2, oos(), now, &mut out);
        assert_eq!(s.awaiting_identity(), Some(PID));
        assert!(!s.ready(now + Duration::from_secs(10)));
        let bumped = PID.bumped().unwrap();
        s.resequence(bumped, now);
        let later = now + Duration::from_millis(100);
        // Unconfirmed under the new epoch: one at a time, from 0.
        let t2 = take_all(&mut s, 3, later);
        assert_eq!(
            t2.iter().map(|t| (t.1, t.2, t.3)).collect::<Vec<_>>(),
            [("b", 0, 1)]
        );
        s.on_outcome(t2[0].0, 3, ack(5), later, &mut out);
        let t3 = take_all(&mut s, 4, later);
        assert_eq!(
            t3.iter().map(|t| (t.1, t.2, t.3)).collect::<Vec<_>>(),
            [("c", 5, 1)]
        );
        s.on_outcome(t3[0].0, 4, ack(10), later, &mut out);
        assert_eq!(names(&out), [("a", true), ("b", true), ("c", true)]);
        // New batches continue the new numbering.
        push_all(&mut s, later, &[("d", 1)]);
        assert_eq!(take_all(&mut s, 5, later)[0].2, 10);
    }

    #[test]
    fn unknown_producer_and_stale_epoch_resequence() {
        for code in [
            KafkaCode::UNKNOWN_PRODUCER_ID,
            KafkaCode::INVALID_PRODUCER_EPOCH,
        ] {
            let now = Instant::now();
            let mut s = state();
            push_all(&mut s, now, &[("a", 2)]);
            let a = take_all(&mut s, 1, now);
            let mut out = Vec::new();
            s.on_outcome(
                a[0].0,
                1,
                Outcome::ProducerState(kafka(code)),
                now,
                &mut out,
            );
            assert_eq!(s.awaiting_identity(), Some(PID));
            let new_pid = ProducerIdentity {
                producer_id: 2000,
                epoch: 0,
            };
            s.resequence(new_pid, now);
            let t = take_all(&mut s, 2, now + Duration::from_secs(1));
            assert_eq!((t[0].2, t[0].3), (0, 0));
            assert_eq!(s.identity(), Some(new_pid));
        }
    }

    #[test]
    fn fatal_error_poisons_the_partition_but_earlier_batches_finish() {
        let now = Instant::now();
        let mut s = state();
        push_all(&mut s, now, &[("a", 1)]);
        let a = take_all(&mut s, 1, now);
        let mut out = Vec::new();
        s.on_outcome(a[0].0, 1, ack(0), now, &mut out);
        push_all(&mut s, now, &[("b", 1), ("c", 1), ("d", 1)]);
        out.clear();
        let t = take_all(&mut s, 2, now);
        s.on_outcome(
            t[1].0,
            2,
            Outcome::Fatal(kafka(KafkaCode::MESSAGE_TOO_LARGE)),
            now,
            &mut out,
        );
        // b is still in flight, so nothing comes out yet; d was abandoned.
        assert!(out.is_empty());
        assert_eq!(s.in_flight(), 1);
        // New batches are refused at once.
        let (_, refused) = s
            .push(999, 1, now + Duration::from_secs(1), "e")
            .unwrap_err();
        let text = refused.to_string();
        assert!(
            text.contains("\"t\" partition 3") && text.contains("MESSAGE_TOO_LARGE"),
            "{text}"
        );
        // A late answer for the abandoned batch is ignored.
        s.on_outcome(t[2].0, 2, ack(3), now, &mut out);
        assert!(out.is_empty());
        s.on_outcome(t[0].0, 2, ack(1), now, &mut out);
        assert_eq!(names(&out), [("b", true), ("c", false), ("d", false)]);
        assert_eq!(
            out[1].1.as_ref().unwrap_err().kafka_code(),
            Some(KafkaCode::MESSAGE_TOO_LARGE)
        );
        let d = out[2].1.as_ref().unwrap_err().to_string();
        assert!(
            d.contains("base sequence 3") && d.contains("abandoned"),
            "{d}"
        );
        assert!(s.is_empty());
        assert!(s.poisoned().is_some());
    }

    #[test]
    fn delivery_timeout_fails_and_poisons() {
        let now = Instant::now();
        let mut s = state();
        push_all(&mut s, now, &[("a", 1), ("b", 1)]);
        let a = take_all(&mut s, 1, now);
        let mut out = Vec::new();
        // In flight: never expired, however late.
        s.expire(now + Duration::from_secs(500), &mut out);
        assert!(out.is_empty());
        s.on_outcome(
            a[0].0,
            1,
            Outcome::Retry(kafka(KafkaCode::NOT_LEADER_OR_FOLLOWER)),
            now,
            &mut out,
        );
        s.expire(now + Duration::from_secs(119), &mut out);
        assert!(out.is_empty());
        s.expire(now + Duration::from_secs(120), &mut out);
        assert_eq!(names(&out), [("a", false), ("b", false)]);
        let e = out[0].1.as_ref().unwrap_err().to_string();
        assert!(
            e.contains("delivery timeout")
                && e.contains("base sequence 0")
                && e.contains("NOT_LEADER_OR_FOLLOWER"),
            "{e}"
        );
        assert!(s.push(5, 1, now, "c").is_err());
    }

    #[test]
    fn a_failing_batch_is_reported_after_a_while_and_not_too_often() {
        let mut s = state();
        let t0 = Instant::now();
        push_all(&mut s, t0, &[("a", 1)]);
        assert!(
            s.stuck(t0 + Duration::from_secs(60)).is_none(),
            "no error yet"
        );
        s.note_error(&kafka(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION));
        assert!(s.stuck(t0 + Duration::from_secs(1)).is_none(), "too early");
        let (waited, err) = s.stuck(t0 + STUCK_AFTER).unwrap();
        assert_eq!(waited, STUCK_AFTER);
        assert!(
            err.to_string().contains("UNKNOWN_TOPIC_OR_PARTITION"),
            "{err}"
        );
        assert!(s.stuck(t0 + STUCK_AFTER + Duration::from_secs(1)).is_none());
        assert!(s.stuck(t0 + STUCK_AFTER + STUCK_EVERY).is_some());
    }

    #[test]
    fn fail_all_resolves_everything() {
        let now = Instant::now();
        let mut s = state();
        push_all(&mut s, now, &[("a", 1), ("b", 1)]);
        take_all(&mut s, 1, now);
        let mut out = Vec::new();
        s.fail_all(&kafka(KafkaCode::TOPIC_AUTHORIZATION_FAILED), &mut out);
        assert_eq!(names(&out), [("a", false), ("b", false)]);
        assert_eq!(s.in_flight(), 0);
        assert!(s.is_empty());
    }

    #[test]
    fn answers_from_another_request_are_ignored() {
        let now = Instant::now();
        let mut s = state();
        push_all(&mut s, now, &[("a", 1)]);
        let a = take_all(&mut s, 7, now);
        let mut out = Vec::new();
        s.on_outcome(a[0].0, 6, ack(0), now, &mut out);
        assert!(out.is_empty());
        assert_eq!(s.in_flight(), 1);
        s.on_outcome(a[0].0, 7, ack(0), now, &mut out);
        assert_eq!(names(&out), [("a", true)]);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let now = Instant::now();
        let mut s = state();
        s.next_sequence = i32::MAX - 1;
        push_all(&mut s, now, &[("a", 2), ("b", 3)]);
        let a = take_all(&mut s, 1, now);
        assert_eq!(a[0].2, i32::MAX - 1);
        let mut out = Vec::new();
        s.on_outcome(a[0].0, 1, ack(0), now, &mut out);
        assert_eq!(take_all(&mut s, 2, now)[0].2, 0);
    }
}
