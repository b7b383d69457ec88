//! The producer's decisions, without I/O: which broker each partition goes
//! to, which batches make up the next Produce request, what each answer
//! means, when to refresh metadata or get a new producer id, how long a
//! throttled broker or a failing partition waits, and when a batch's
//! delivery timeout has passed.
//!
//! [`ProducerCore`] is a plain state machine in the style of quinn-proto:
//! the runner ([`super::driver`]) feeds it [`Input`]s with
//! [`ProducerCore::handle`], carries out the [`Action`]s that
//! [`ProducerCore::poll_action`] returns (connect, send these bytes, refresh
//! metadata, hand this result to its caller) and calls
//! [`ProducerCore::handle_timeout`] once [`ProducerCore::poll_timeout`] has
//! passed. Time only comes in as `now`; nothing here spawns, sleeps or
//! touches a socket, so every rule can be driven deterministically (see
//! `sim` and the tests).
//!
//! `T` is the caller's token for one batch (the runner's reply channel and
//! window permit); it is handed back, untouched, with the batch's result.

mod assemble;
mod interface;
mod respond;
mod route;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ferry_wire::batch::{BatchHeader, RecordBatch};
use uuid::Uuid;

pub(crate) use interface::{Action, ConnectedBroker, Input};

use super::ProducerConfig;
use super::partition::{Completed, Limits, PartitionState};
use super::request::Part;
use super::sequence::ProducerIdentity;
use crate::TopicPartition;
use crate::error::ClientError;
use crate::metadata::ClusterMetadata;
use crate::retry::RetryCounts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A partition's backoff ended.
    Partition(usize),
    /// A broker's throttle or reconnect backoff ended.
    Broker(i32),
    /// Metadata may be refreshed again.
    Metadata,
}

/// A queued batch as the core keeps it.
#[derive(Debug)]
struct Pending<T> {
    id: u64,
    batch: RecordBatch,
    header: BatchHeader,
    /// The chunks last sent, and under which identity and sequence.
    rewritten: Option<(ProducerIdentity, i32, [Bytes; 2])>,
    token: T,
}

impl<T> Pending<T> {
    /// The batch re-headed for `identity` and `sequence` (cached for retries).
    fn chunks(
        &mut self,
        identity: ProducerIdentity,
        sequence: i32,
        scratch: &mut BytesMut,
    ) -> std::result::Result<[Bytes; 2], String> {
        if let Some((id, seq, chunks)) = &self.rewritten {
            if *id == identity && *seq == sequence {
                return Ok(chunks.clone());
            }
        }
        let header = BatchHeader {
            base_offset: 0,
            producer_id: identity.producer_id,
            producer_epoch: identity.epoch,
            base_sequence: sequence,
            ..self.header
        };
        let chunks = self
            .batch
            .rewrite_header(&header, scratch)
            .map_err(|e| e.to_string())?
            .into_chunks();
        self.rewritten = Some((identity, sequence, chunks.clone()));
        Ok(chunks)
    }
}

/// One target partition.
#[derive(Debug)]
struct Slot<T> {
    tp: TopicPartition,
    state: PartitionState<Pending<T>>,
    /// [`Action::StopPartition`] was issued.
    stop_issued: bool,
    /// [`Input::Restart`] came while batches were unresolved.
    restart_pending: bool,
    leader: Option<i32>,
    leader_epoch: Option<i32>,
    topic_id: Option<Uuid>,
    /// The broker and connection generation its in-flight batches went to.
    route: Option<(i32, u64)>,
    /// In its leader's ready queue.
    queued: bool,
    /// The backoff timer armed for it.
    timer_at: Option<Instant>,
}

#[derive(Debug)]
enum Conn {
    Idle,
    Connecting,
    Ready(ConnectedBroker),
    Failed { until: Instant },
}

/// One target broker.
#[derive(Debug)]
struct Broker {
    conn: Conn,
    /// Bumped whenever the connection is replaced.
    generation: u64,
    in_flight: usize,
    throttled_until: Option<Instant>,
    failures: u32,
    /// Partitions that may have a batch to send here, round robin.
    ready: VecDeque<usize>,
}

impl Broker {
    fn new() -> Self {
        Self {
            conn: Conn::Idle,
            generation: 0,
            in_flight: 0,
            throttled_until: None,
            failures: 0,
            ready: VecDeque::new(),
        }
    }
}

#[derive(Debug)]
struct InFlightRequest {
    /// For the trace log's round-trip times.
    sent: Instant,
    node: i32,
    version: i16,
    broker: String,
    parts: Vec<Part>,
}

#[derive(Debug)]
struct FlushWaiter {
    id: u64,
    /// Waits for every batch with a smaller id.
    upto: u64,
    first_error: Option<ClientError>,
}

#[derive(Debug)]
struct MetadataState {
    wanted: BTreeSet<Arc<str>>,
    in_flight: bool,
    not_before: Instant,
    /// When the armed [`Timer::Metadata`] fires, if one is armed.
    timer_at: Option<Instant>,
    failures: u32,
}

/// The producer's decision half. See the module doc.
pub(crate) struct ProducerCore<T> {
    /// Retried failures by cause, shared with the producer handle.
    retries: RetryCounts,
    config: ProducerConfig,
    limits: Limits,
    timeout_ms: i32,
    identity: ProducerIdentity,
    /// The client's metadata cache as last seen (routes new partitions,
    /// vets leader hints).
    known: Arc<ClusterMetadata>,
    handles_open: bool,
    slots: Vec<Slot<T>>,
    index: HashMap<TopicPartition, usize>,
    brokers: HashMap<i32, Broker>,
    requests: HashMap<u64, InFlightRequest>,
    next_request: u64,
    next_entry: u64,
    outstanding: BTreeSet<u64>,
    flushes: Vec<FlushWaiter>,
    closers: Vec<FlushWaiter>,
    metadata: MetadataState,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    awaiting_identity: BTreeSet<usize>,
    producer_id_pending: bool,
    scratch: BytesMut,
    completed: Completed<Pending<T>>,
    /// Delivery timeouts are checked on this tick.
    tick: Duration,
    next_tick: Instant,
    actions: VecDeque<Action<T>>,
}

impl<T> std::fmt::Debug for ProducerCore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerCore")
            .field("identity", &self.identity)
            .field("partitions", &self.slots.len())
            .field("outstanding", &self.outstanding.len())
            .finish_non_exhaustive()
    }
}

impl<T> ProducerCore<T> {
    pub(crate) fn new(
        config: ProducerConfig,
        identity: ProducerIdentity,
        known: Arc<ClusterMetadata>,
        retries: RetryCounts,
        now: Instant,
    ) -> Self {
        let limits = Limits {
            max_in_flight: config.max_in_flight_per_partition,
            retry_backoff: config.retry_backoff,
            delivery_timeout: config.delivery_timeout,
        };
        // Expiry is checked on this tick: a second, or finer for short timeouts.
        let tick =
            (config.delivery_timeout / 8).clamp(Duration::from_millis(10), Duration::from_secs(1));
        Self {
            retries,
            timeout_ms: config.timeout_ms().unwrap_or(i32::MAX),
            config,
            limits,
            identity,
            known,
            handles_open: true,
            slots: Vec::new(),
            index: HashMap::new(),
            brokers: HashMap::new(),
            requests: HashMap::new(),
            next_request: 0,
            next_entry: 0,
            outstanding: BTreeSet::new(),
            flushes: Vec::new(),
            closers: Vec::new(),
            metadata: MetadataState {
                wanted: BTreeSet::new(),
                in_flight: false,
                not_before: now,
                timer_at: None,
                failures: 0,
            },
            timers: BinaryHeap::new(),
            awaiting_identity: BTreeSet::new(),
            producer_id_pending: false,
            scratch: BytesMut::new(),
            completed: Vec::new(),
            tick,
            next_tick: now + tick,
            actions: VecDeque::new(),
        }
    }

    /// The identity new partitions start under.
    pub(crate) fn identity(&self) -> ProducerIdentity {
        self.identity
    }

    /// Takes in the client's metadata cache (other users of the client may
    /// have refreshed it).
    pub(crate) fn observe_metadata(&mut self, known: Arc<ClusterMetadata>) {
        self.known = known;
    }

    /// Done: nobody can send any more (all handles dropped, or closed) and
    /// nothing is left to deliver. The runner then calls [`Self::shut_down`].
    pub(crate) fn finished(&self) -> bool {
        (!self.handles_open || !self.closers.is_empty()) && self.outstanding.is_empty()
    }

    /// Batches accepted and not resolved yet.
    #[cfg(test)]
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    pub(crate) fn handle(&mut self, input: Input<T>, now: Instant) {
        match input {
            Input::Send {
                tp,
                batch,
                header,
                token,
            } => self.on_send(tp, batch, header, token, now),
            Input::Flush { id } => {
                if self.outstanding.is_empty() {
                    self.actions
                        .push_back(Action::FlushDone { id, result: Ok(()) });
                } else {
                    self.flushes.push(FlushWaiter {
                        id,
                        upto: self.next_entry,
                        first_error: None,
                    });
                }
            }
            Input::Close { id } => {
                if self.closers.is_empty() {
                    tracing::debug!(
                        outstanding = self.outstanding.len(),
                        "closing the idempotent producer"
                    );
                }
                self.closers.push(FlushWaiter {
                    id,
                    upto: self.next_entry,
                    first_error: None,
                });
            }
            Input::HandlesDropped => self.handles_open = false,
            Input::Restart { tp } => {
                if let Some(&index) = self.index.get(&tp) {
                    if let Some(slot) = self.slots.get_mut(index) {
                        slot.restart_pending = slot.stop_issued;
                    }
                    self.after_change(index, now);
                }
            }
            Input::Connected { node, result } => self.on_connected(node, result, now),
            Input::ConnectionBroken { node } => self.on_connection_broken(node),
            Input::Response { request, result } => self.on_response(request, result, now),
            Input::Metadata { topics, result } => self.on_metadata(topics, result, now),
            Input::ProducerId(result) => self.on_producer_id(result, now),
        }
        self.finish_completed();
    }

    /// The next thing to do: builds requests from whatever is ready first.
    pub(crate) fn poll_action(&mut self, now: Instant) -> Option<Action<T>> {
        if self.actions.is_empty() {
            self.pump(now);
        }
        self.actions.pop_front()
    }

    /// When [`Self::handle_timeout`] should run next.
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.timers
            .peek()
            .map_or(self.next_tick, |Reverse((at, _))| (*at).min(self.next_tick))
    }

    /// Runs the timers due at `now`: backoffs that ended, delivery timeouts.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Timer::Partition(index) = timer {
                if let Some(slot) = self.slots.get_mut(index) {
                    if slot.timer_at == Some(at) {
                        slot.timer_at = None;
                    }
                }
                self.schedule(index);
            }
            // Broker and metadata timers only wake the runner; `pump` acts.
        }
        if now >= self.next_tick {
            self.next_tick = now + self.tick;
            for index in 0..self.slots.len() {
                if let Some(slot) = self.slots.get_mut(index) {
                    if slot.state.is_empty() {
                        continue;
                    }
                    slot.state.expire(now, &mut self.completed);
                    if let Some((waited, err)) = slot.state.stuck(now) {
                        let timeout = self.config.delivery_timeout;
                        tracing::warn!(tp = %slot.tp, error = %err, ?waited, "batch not acknowledged yet; retrying until the delivery timeout ({timeout:?})");
                    }
                }
                self.after_change(index, now);
            }
        }
        self.finish_completed();
    }

    /// The last actions once [`Self::finished`]: every partition refuses
    /// later sends, every flush and close is answered.
    pub(crate) fn shut_down(&mut self) -> Vec<Action<T>> {
        let mut out: Vec<Action<T>> = self.actions.drain(..).collect();
        for slot in &self.slots {
            out.push(Action::StopPartition {
                tp: slot.tp.clone(),
                error: ClientError::NotDelivered {
                    topic: slot.tp.topic.to_string(),
                    partition: slot.tp.partition,
                    base_sequence: None,
                    reason: "the producer is closed".to_owned(),
                },
            });
        }
        for waiter in self.flushes.drain(..).chain(self.closers.drain(..)) {
            out.push(Action::FlushDone {
                id: waiter.id,
                result: waiter.first_error.map_or(Ok(()), Err),
            });
        }
        tracing::debug!(
            producer_id = self.identity.producer_id,
            "idempotent producer stopped"
        );
        out
    }

    fn arm(&mut self, at: Instant, timer: Timer) {
        self.timers.push(Reverse((at, timer)));
    }

    fn on_send(
        &mut self,
        tp: TopicPartition,
        batch: RecordBatch,
        header: BatchHeader,
        token: T,
        now: Instant,
    ) {
        if !self.closers.is_empty() {
            self.actions.push_back(Action::Deliver {
                token,
                result: Err(ClientError::NotDelivered {
                    topic: tp.topic.to_string(),
                    partition: tp.partition,
                    base_sequence: None,
                    reason: "the producer is closing".to_owned(),
                }),
            });
            return;
        }
        let index = self.slot_for(&tp, now);
        let id = self.next_entry;
        self.next_entry += 1;
        // Checked by `send`: last_offset_delta + 1 == record_count > 0.
        let increment = header.record_count;
        let pending = Pending {
            id,
            batch,
            header,
            rewritten: None,
            token,
        };
        let deadline = now + self.config.delivery_timeout;
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        match slot.state.push(id, increment, deadline, pending) {
            Ok(()) => {
                self.outstanding.insert(id);
                self.schedule(index);
            }
            Err((pending, err)) => {
                self.actions.push_back(Action::Deliver {
                    token: pending.token,
                    result: Err(err),
                });
            }
        }
    }

    /// The slot for `tp`, created (and routed from cached metadata) on first use.
    fn slot_for(&mut self, tp: &TopicPartition, now: Instant) -> usize {
        if let Some(&index) = self.index.get(tp) {
            return index;
        }
        let index = self.slots.len();
        self.slots.push(Slot {
            tp: tp.clone(),
            state: PartitionState::new(tp.clone(), self.limits),
            stop_issued: false,
            restart_pending: false,
            leader: None,
            leader_epoch: None,
            topic_id: None,
            route: None,
            queued: false,
            timer_at: None,
        });
        self.index.insert(tp.clone(), index);
        let known = Arc::clone(&self.known);
        if known.topic(&tp.topic).is_some() {
            self.update_route(index, &known, now);
        } else {
            self.want_metadata(&tp.topic);
        }
        index
    }

    /// Puts the partition in its leader's ready queue if it has something queued.
    fn schedule(&mut self, index: usize) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if slot.queued || !slot.state.has_queued() {
            return;
        }
        match slot.leader {
            Some(node) => {
                self.brokers
                    .entry(node)
                    .or_insert_with(Broker::new)
                    .ready
                    .push_back(index);
                slot.queued = true;
            }
            None => {
                let topic = Arc::clone(&slot.tp.topic);
                self.want_metadata(&topic);
            }
        }
    }

    /// Everything that follows from the state now: identities, metadata,
    /// requests, results.
    fn pump(&mut self, now: Instant) {
        self.assign_identities(now);
        self.maybe_refresh_metadata(now);
        let mut nodes: Vec<i32> = self
            .brokers
            .iter()
            .filter(|(_, b)| !b.ready.is_empty())
            .map(|(node, _)| *node)
            .collect();
        // A fixed order keeps simulations reproducible.
        nodes.sort_unstable();
        for node in nodes {
            self.drain_broker(node, now);
        }
        self.finish_completed();
    }

    /// Follow-ups after a partition's state changed: stop its gate if it
    /// stopped, note identity needs, arm its backoff timer, reschedule.
    fn after_change(&mut self, index: usize, now: Instant) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if slot.restart_pending && slot.state.restart() {
            tracing::info!(tp = %slot.tp, "stopped partition restarted");
            slot.restart_pending = false;
            slot.stop_issued = false;
        }
        if !slot.stop_issued {
            if let Some(refusal) = slot.state.refusal() {
                self.actions.push_back(Action::StopPartition {
                    tp: slot.tp.clone(),
                    error: refusal,
                });
                slot.stop_issued = true;
            }
        }
        if slot.state.take_reordered() {
            tracing::error!(
                tp = %slot.tp,
                "the broker wrote a later batch while an earlier one was missing (it had lost this \
                 producer's state, e.g. expired by producer.id.expiration.ms, which Kafka measures \
                 from the record timestamps): the target log holds those batches out of order"
            );
            self.retries.record_cause("reordered");
        }
        if slot.state.in_flight() == 0 {
            slot.route = None;
        }
        if slot.state.awaiting_identity().is_some() {
            self.awaiting_identity.insert(index);
        }
        if let Some(at) = slot.state.not_before().filter(|&t| t > now) {
            if slot.timer_at != Some(at) {
                slot.timer_at = Some(at);
                self.arm(at, Timer::Partition(index));
            }
        }
        self.schedule(index);
    }

    fn fail_slot(&mut self, index: usize, err: &ClientError, now: Instant) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        tracing::warn!(tp = %slot.tp, error = %err, "partition cannot be produced to; it stops");
        slot.state.fail_all(err, &mut self.completed);
        self.after_change(index, now);
    }

    /// Hands results to their callers, and answers flushes that have
    /// nothing left to wait for.
    fn finish_completed(&mut self) {
        if self.completed.is_empty() {
            return;
        }
        for (pending, result) in self.completed.drain(..) {
            self.outstanding.remove(&pending.id);
            if let Err(err) = &result {
                for waiter in self.flushes.iter_mut().chain(self.closers.iter_mut()) {
                    if pending.id < waiter.upto && waiter.first_error.is_none() {
                        waiter.first_error = Some(err.clone());
                    }
                }
            }
            self.actions.push_back(Action::Deliver {
                token: pending.token,
                result,
            });
        }
        let oldest = self.outstanding.first().copied().unwrap_or(u64::MAX);
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|w| w.upto <= oldest);
        self.flushes = waiting;
        for waiter in done {
            self.actions.push_back(Action::FlushDone {
                id: waiter.id,
                result: waiter.first_error.map_or(Ok(()), Err),
            });
        }
    }
}
