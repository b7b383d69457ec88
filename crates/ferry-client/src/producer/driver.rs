//! The producer's task: owns every partition's state, routes batches to
//! leaders, builds and sends requests, applies responses, refreshes
//! metadata, and runs the timers. Network calls run in spawned tasks that
//! report back as [`Event`]s, so every state change happens here, in order.
//!
//! Queues and their bounds: the command channel holds at most one message
//! per window permit (plus flush/close calls); the event channel at most one
//! per spawned task (requests are limited per broker, one connect per
//! broker, one metadata refresh and one InitProducerId at a time).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferry_wire::batch::{BatchHeader, RecordBatch};
use ferry_wire::produce::{MAX_PRODUCE_VERSION, MIN_PRODUCE_VERSION};
use ferry_wire::produce_response::ProduceResponse;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use super::classify::{Verdict, verdict};
use super::init::init_producer_id;
use super::partition::{Completed, Limits, Outcome, PartitionState};
use super::request::{self, Part};
use super::sequence::{ProducerIdentity, backoff};
use super::writer::{Outbound, write_requests};
use super::{Ack, Command, Gate, NewBatch, ProducerConfig};
use crate::error::{ClientError, KafkaCode, Result};
use crate::metadata::ClusterMetadata;
use crate::retries::RetryCounts;
use crate::{Client, Connection, TopicPartition};

/// Bytes a partition entry adds to a request besides its batch (index,
/// length prefix, tags), rounded up; topic names are small next to batches.
const PARTITION_OVERHEAD: usize = 32;

/// Events the spawned tasks send back.
#[derive(Debug)]
pub(super) enum Event {
    Connected {
        node: i32,
        result: Result<Connection>,
    },
    Response {
        request: u64,
        result: Result<ProduceResponse>,
    },
    Metadata {
        topics: Vec<Arc<str>>,
        result: Result<Arc<ClusterMetadata>>,
    },
    ProducerId(Result<ProducerIdentity>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A partition's backoff ended.
    Partition(usize),
    /// A broker's throttle or reconnect backoff ended.
    Broker(i32),
    /// Metadata may be refreshed again.
    Metadata,
}

/// A queued batch as the driver keeps it.
#[derive(Debug)]
struct Pending {
    id: u64,
    batch: RecordBatch,
    header: BatchHeader,
    /// The chunks last sent, and under which identity and sequence.
    rewritten: Option<(ProducerIdentity, i32, [Bytes; 2])>,
    reply: oneshot::Sender<Result<Ack>>,
    /// Released when the batch resolves, letting the next `send` in.
    _permit: OwnedSemaphorePermit,
}

impl Pending {
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
struct Slot {
    tp: TopicPartition,
    state: PartitionState<Pending>,
    gate: Arc<Gate>,
    gate_stopped: bool,
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
    Ready {
        conn: Connection,
        version: i16,
        /// The connection's writer task, which queues requests in order.
        writer: mpsc::UnboundedSender<Outbound>,
    },
    Failed {
        until: Instant,
    },
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
    generation: u64,
    version: i16,
    broker: String,
    parts: Vec<Part>,
}

#[derive(Debug)]
struct FlushWaiter {
    /// Waits for every batch with a smaller id.
    upto: u64,
    first_error: Option<ClientError>,
    reply: oneshot::Sender<Result<()>>,
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

pub(crate) struct Driver {
    client: Client,
    /// Retried failures by cause, shared with the producer handle.
    retries: RetryCounts,
    config: ProducerConfig,
    limits: Limits,
    timeout_ms: i32,
    identity: ProducerIdentity,
    shared_identity: Arc<Mutex<ProducerIdentity>>,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    tasks: JoinSet<()>,
    slots: Vec<Slot>,
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
    completed: Completed<Pending>,
    tick: Duration,
    next_tick: Instant,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("identity", &self.identity)
            .field("partitions", &self.slots.len())
            .field("outstanding", &self.outstanding.len())
            .finish_non_exhaustive()
    }
}

impl Driver {
    pub(crate) fn new(
        client: Client,
        config: ProducerConfig,
        identity: ProducerIdentity,
        shared_identity: Arc<Mutex<ProducerIdentity>>,
        commands: mpsc::UnboundedReceiver<Command>,
        retries: RetryCounts,
    ) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let limits = Limits {
            max_in_flight: config.max_in_flight_per_partition,
            retry_backoff: config.retry_backoff,
            delivery_timeout: config.delivery_timeout,
        };
        // Expiry is checked on this tick: a second, or finer for short timeouts.
        let tick =
            (config.delivery_timeout / 8).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let now = Instant::now();
        Self {
            client,
            retries,
            timeout_ms: config.timeout_ms().unwrap_or(i32::MAX),
            config,
            limits,
            identity,
            shared_identity,
            commands,
            commands_open: true,
            events_tx,
            events,
            tasks: JoinSet::new(),
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
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            self.pump(Instant::now());
            if self.finished() {
                break;
            }
            let wake = self.next_wake();
            tokio::select! {
                biased;
                Some(event) = self.events.recv() => self.on_event(event),
                command = self.commands.recv(), if self.commands_open => match command {
                    Some(command) => self.on_command(command),
                    None => self.commands_open = false,
                },
                () = tokio::time::sleep_until(wake) => {}
            }
            // Take in whatever else is ready before building requests, so
            // one request carries as many partitions as possible.
            for _ in 0..4096 {
                match self.events.try_recv() {
                    Ok(event) => self.on_event(event),
                    Err(_) => break,
                }
            }
            while self.commands_open {
                match self.commands.try_recv() {
                    Ok(command) => self.on_command(command),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => self.commands_open = false,
                }
            }
            self.on_timers(Instant::now());
            while self.tasks.try_join_next().is_some() {}
        }
        self.shutdown();
    }

    /// Done: nobody can send any more (all handles dropped, or closed) and
    /// nothing is left to deliver.
    fn finished(&self) -> bool {
        (!self.commands_open || !self.closers.is_empty()) && self.outstanding.is_empty()
    }

    fn shutdown(&mut self) {
        for slot in &self.slots {
            slot.gate.stop(ClientError::NotDelivered {
                topic: slot.tp.topic.to_string(),
                partition: slot.tp.partition,
                base_sequence: None,
                reason: "the producer is closed".to_owned(),
            });
        }
        for waiter in self.flushes.drain(..).chain(self.closers.drain(..)) {
            let _ = waiter.reply.send(waiter.first_error.map_or(Ok(()), Err));
        }
        // Anything still running (answers nobody waits for) is aborted when
        // `tasks` drops.
        tracing::debug!(
            producer_id = self.identity.producer_id,
            "idempotent producer stopped"
        );
    }

    fn next_wake(&self) -> Instant {
        self.timers
            .peek()
            .map_or(self.next_tick, |Reverse((at, _))| (*at).min(self.next_tick))
    }

    fn arm(&mut self, at: Instant, timer: Timer) {
        self.timers.push(Reverse((at, timer)));
    }

    // ---- commands -------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Send(batch) => self.on_send(*batch),
            Command::Flush(reply) => {
                if self.outstanding.is_empty() {
                    let _ = reply.send(Ok(()));
                } else {
                    self.flushes.push(FlushWaiter {
                        upto: self.next_entry,
                        first_error: None,
                        reply,
                    });
                }
            }
            Command::Close(reply) => {
                if self.closers.is_empty() {
                    tracing::debug!(
                        outstanding = self.outstanding.len(),
                        "closing the idempotent producer"
                    );
                }
                self.closers.push(FlushWaiter {
                    upto: self.next_entry,
                    first_error: None,
                    reply,
                });
            }
        }
    }

    fn on_send(&mut self, new: NewBatch) {
        let NewBatch {
            tp,
            batch,
            header,
            gate,
            permit,
            reply,
        } = new;
        if !self.closers.is_empty() {
            let _ = reply.send(Err(ClientError::NotDelivered {
                topic: tp.topic.to_string(),
                partition: tp.partition,
                base_sequence: None,
                reason: "the producer is closing".to_owned(),
            }));
            return;
        }
        let now = Instant::now();
        let index = self.slot_for(&tp, gate);
        let id = self.next_entry;
        self.next_entry += 1;
        // Checked by `send`: last_offset_delta + 1 == record_count > 0.
        let increment = header.record_count;
        let pending = Pending {
            id,
            batch,
            header,
            rewritten: None,
            reply,
            _permit: permit,
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
                let _ = pending.reply.send(Err(err));
            }
        }
    }

    /// The slot for `tp`, created (and routed from cached metadata) on first use.
    fn slot_for(&mut self, tp: &TopicPartition, gate: Arc<Gate>) -> usize {
        if let Some(&index) = self.index.get(tp) {
            return index;
        }
        let index = self.slots.len();
        self.slots.push(Slot {
            tp: tp.clone(),
            state: PartitionState::new(tp.clone(), self.limits),
            gate,
            gate_stopped: false,
            leader: None,
            leader_epoch: None,
            topic_id: None,
            route: None,
            queued: false,
            timer_at: None,
        });
        self.index.insert(tp.clone(), index);
        let metadata = self.client.metadata();
        if metadata.topic(&tp.topic).is_some() {
            self.update_route(index, &metadata);
        } else {
            self.want_metadata(&tp.topic);
        }
        index
    }

    // ---- scheduling and sending -----------------------------------------

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

    fn pump(&mut self, now: Instant) {
        self.assign_identities(now);
        self.maybe_refresh_metadata(now);
        let nodes: Vec<i32> = self
            .brokers
            .iter()
            .filter(|(_, b)| !b.ready.is_empty())
            .map(|(node, _)| *node)
            .collect();
        for node in nodes {
            self.drain_broker(node, now);
        }
        self.finish_completed();
    }

    fn drain_broker(&mut self, node: i32, now: Instant) {
        loop {
            let Some(broker) = self.brokers.get_mut(&node) else {
                return;
            };
            if broker.ready.is_empty() {
                return;
            }
            match &broker.conn {
                Conn::Ready { conn, .. } => {
                    if conn.poisoned().is_some() {
                        broker.conn = Conn::Idle;
                        broker.generation += 1;
                        continue;
                    }
                }
                Conn::Idle => {
                    broker.conn = Conn::Connecting;
                    let client = self.client.clone();
                    let events = self.events_tx.clone();
                    self.tasks.spawn(async move {
                        let result = client.broker_connection(node).await;
                        let _ = events.send(Event::Connected { node, result });
                    });
                    return;
                }
                Conn::Connecting => return,
                Conn::Failed { until } => {
                    if now >= *until {
                        broker.conn = Conn::Idle;
                        continue;
                    }
                    return;
                }
            }
            if broker.in_flight >= self.config.max_in_flight_per_partition
                || broker.throttled_until.is_some_and(|t| now < t)
            {
                tracing::trace!(
                    node,
                    ready = broker.ready.len(),
                    "connection full or throttled; ready partitions wait"
                );
                return;
            }
            if !self.send_request(node, now) {
                return;
            }
        }
    }

    /// Builds and sends one request to `node` from its ready partitions.
    /// False if there was nothing to send.
    fn send_request(&mut self, node: i32, now: Instant) -> bool {
        let Some(broker) = self.brokers.get_mut(&node) else {
            return false;
        };
        let Conn::Ready {
            conn,
            version,
            writer,
        } = &broker.conn
        else {
            return false;
        };
        let broker_name = conn.broker().to_owned();
        let writer = writer.clone();
        let max_version = *version;
        let generation = broker.generation;
        let request_id = self.next_request;
        let mut parts: Vec<Part> = Vec::new();
        let mut chunks: Vec<[Bytes; 2]> = Vec::new();
        let mut bytes = 0usize;
        let mut again = Vec::new();
        let mut elsewhere = Vec::new();
        let mut broken = Vec::new();
        while let Some(index) = broker.ready.pop_front() {
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            slot.queued = false;
            if slot.leader != Some(node) {
                elsewhere.push(index);
                continue;
            }
            // Its in-flight batches went over another connection: wait for
            // them (their answers reschedule it).
            if slot.route.is_some_and(|r| r != (node, generation)) {
                continue;
            }
            let Some(pending) = slot.state.peek_next(now) else {
                continue;
            };
            let size = pending.batch.len().saturating_add(PARTITION_OVERHEAD);
            if !parts.is_empty() && bytes.saturating_add(size) > self.config.max_request_bytes {
                broker.ready.push_front(index);
                slot.queued = true;
                break;
            }
            let Some(out) = slot.state.next(self.identity, request_id, now) else {
                continue;
            };
            let (entry, sequence) = (out.entry, out.sequence);
            match out
                .payload
                .chunks(out.identity, sequence, &mut self.scratch)
            {
                Ok(batch) => {
                    parts.push(Part {
                        slot: index,
                        entry,
                        topic: Arc::clone(&slot.tp.topic),
                        topic_id: slot.topic_id,
                        partition: slot.tp.partition,
                        sequence,
                        record_count: out.payload.header.record_count,
                    });
                    chunks.push(batch);
                    bytes = bytes.saturating_add(size);
                    slot.route = Some((node, generation));
                    if slot.state.ready(now) {
                        again.push(index);
                    }
                }
                Err(detail) => broken.push((index, entry, sequence, detail)),
            }
        }
        for &index in &again {
            if let Some(slot) = self.slots.get_mut(index) {
                slot.queued = true;
                broker.ready.push_back(index);
            }
        }
        for (index, entry, sequence, detail) in broken {
            let err = self.not_delivered(
                index,
                Some(sequence),
                format!("its header could not be rewritten: {detail}"),
            );
            self.apply(index, entry, request_id, Outcome::Fatal(err), now);
        }
        for index in elsewhere {
            self.schedule(index);
        }
        if parts.is_empty() {
            return false;
        }
        self.next_request += 1;
        let version = request::request_version(max_version, &parts);
        let encoded =
            match request::encode(version, self.config.acks, self.timeout_ms, &parts, chunks) {
                Ok(encoded) => encoded,
                Err(e) => {
                    // Only sizes past i32::MAX or a version mix-up get here.
                    let err = ClientError::Encode {
                        broker: broker_name,
                        api: ApiKey::Produce,
                        version,
                        detail: e.to_string(),
                    };
                    for part in parts {
                        self.apply(
                            part.slot,
                            part.entry,
                            request_id,
                            Outcome::Fatal(err.clone()),
                            now,
                        );
                    }
                    return true;
                }
            };
        if let Some(broker) = self.brokers.get_mut(&node) {
            broker.in_flight += 1;
            tracing::trace!(
                node,
                in_flight = broker.in_flight,
                batches = parts.len(),
                "produce request"
            );
        }
        self.requests.insert(
            request_id,
            InFlightRequest {
                sent: now,
                node,
                generation,
                version,
                broker: broker_name.clone(),
                parts,
            },
        );
        let outbound = Outbound {
            request: request_id,
            version,
            chunks: encoded.chunks,
        };
        if writer.send(outbound).is_err() {
            // The writer task is gone (it only ends when its sender drops):
            // answer the request as a lost connection.
            let _ = self.events_tx.send(Event::Response {
                request: request_id,
                result: Err(ClientError::Closed {
                    broker: broker_name,
                    mid_frame: false,
                }),
            });
        }
        true
    }

    // ---- events ----------------------------------------------------------

    fn on_event(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Connected { node, result } => self.on_connected(node, result, now),
            Event::Response { request, result } => self.on_response(request, result, now),
            Event::Metadata { topics, result } => self.on_metadata(topics, result, now),
            Event::ProducerId(result) => self.on_producer_id(result, now),
        }
        self.finish_completed();
    }

    fn on_connected(&mut self, node: i32, result: Result<Connection>, now: Instant) {
        let ours = VersionRange {
            min: MIN_PRODUCE_VERSION,
            max: MAX_PRODUCE_VERSION,
        };
        let result = result.and_then(|conn| {
            let version = conn.versions().pick(ApiKey::Produce, ours)?;
            Ok((conn, version))
        });
        let Some(broker) = self.brokers.get_mut(&node) else {
            return;
        };
        match result {
            Ok((conn, version)) => {
                tracing::debug!(node, broker = conn.broker(), version, "producer connected");
                let (writer, outbound) = mpsc::unbounded_channel();
                self.tasks.spawn(write_requests(
                    conn.clone(),
                    outbound,
                    self.events_tx.clone(),
                    self.config.request_timeout,
                ));
                broker.conn = Conn::Ready {
                    conn,
                    version,
                    writer,
                };
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
                let led: Vec<usize> = self.led_by(node);
                for index in led {
                    self.fail_slot(index, &err);
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

    fn led_by(&self, node: i32) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.leader == Some(node))
            .map(|(i, _)| i)
            .collect()
    }

    fn on_response(&mut self, request: u64, result: Result<ProduceResponse>, now: Instant) {
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
                if let Some(broker) = self.brokers.get_mut(&req.node) {
                    if broker.generation == req.generation {
                        if let Conn::Ready { conn, .. } = &broker.conn {
                            if conn.poisoned().is_some() {
                                broker.conn = Conn::Idle;
                                broker.generation += 1;
                            }
                        }
                    }
                }
                for part in &req.parts {
                    self.want_metadata(&part.topic);
                }
                for part in req.parts {
                    self.apply(
                        part.slot,
                        part.entry,
                        request,
                        Outcome::Retry(err.clone()),
                        now,
                    );
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

    /// Moves the partition to the leader the broker named, if that is news
    /// and the broker is known; otherwise asks for metadata.
    fn follow_leader_hint(&mut self, index: usize, hint: Option<(i32, i32)>) {
        let known = self.client.metadata();
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if let Some((leader, epoch)) = hint {
            let newer = slot.leader_epoch.is_none_or(|e| epoch > e);
            if leader >= 0 && newer && known.brokers.contains_key(&leader) {
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
    fn apply(&mut self, index: usize, entry: u64, request: u64, outcome: Outcome, now: Instant) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        slot.state
            .on_outcome(entry, request, outcome, now, &mut self.completed);
        self.after_change(index, now);
    }

    /// Follow-ups after a partition's state changed: stop its gate if it
    /// stopped, note identity needs, arm its backoff timer, reschedule.
    fn after_change(&mut self, index: usize, now: Instant) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if !slot.gate_stopped {
            if let Some(refusal) = slot.state.refusal() {
                slot.gate.stop(refusal);
                slot.gate_stopped = true;
            }
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

    fn fail_slot(&mut self, index: usize, err: &ClientError) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        tracing::warn!(tp = %slot.tp, error = %err, "partition cannot be produced to; it stops");
        slot.state.fail_all(err, &mut self.completed);
        self.after_change(index, Instant::now());
    }

    fn not_delivered(
        &self,
        index: usize,
        base_sequence: Option<i32>,
        reason: String,
    ) -> ClientError {
        let (topic, partition) = self.slots.get(index).map_or((String::new(), -1), |s| {
            (s.tp.topic.to_string(), s.tp.partition)
        });
        ClientError::NotDelivered {
            topic,
            partition,
            base_sequence,
            reason,
        }
    }

    // ---- producer identity -------------------------------------------------

    /// Gives every partition that lost its broker state a newer identity:
    /// the current one if the partition is behind it, else the next epoch
    /// (a new producer id once the epoch is exhausted).
    fn assign_identities(&mut self, now: Instant) {
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
                        self.set_identity(bumped);
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
                tracing::warn!(
                    tp = %slot.tp,
                    from = %old,
                    to = %new,
                    "the broker lost this producer's state for the partition; resending its unacknowledged \
                     batches renumbered from 0 (any of them the broker had already written is written again)"
                );
                slot.state.resequence(new, now);
            }
            self.after_change(index, now);
        }
    }

    fn set_identity(&mut self, identity: ProducerIdentity) {
        self.identity = identity;
        *self
            .shared_identity
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = identity;
    }

    fn request_producer_id(&mut self, now: Instant) {
        if self.producer_id_pending {
            return;
        }
        self.producer_id_pending = true;
        tracing::info!(identity = %self.identity, "producer epoch exhausted; getting a new producer id");
        let client = self.client.clone();
        let events = self.events_tx.clone();
        let deadline = now + self.config.delivery_timeout;
        let backoff = self.config.retry_backoff;
        self.tasks.spawn(async move {
            let result = init_producer_id(&client, deadline, backoff).await;
            let _ = events.send(Event::ProducerId(result));
        });
    }

    fn on_producer_id(&mut self, result: Result<ProducerIdentity>, _now: Instant) {
        self.producer_id_pending = false;
        match result {
            Ok(identity) => self.set_identity(identity),
            Err(err) => {
                let waiting: Vec<usize> = std::mem::take(&mut self.awaiting_identity)
                    .into_iter()
                    .collect();
                for index in waiting {
                    self.fail_slot(index, &err);
                }
            }
        }
    }

    // ---- metadata ----------------------------------------------------------

    fn want_metadata(&mut self, topic: &Arc<str>) {
        if !self.metadata.wanted.contains(topic) {
            self.metadata.wanted.insert(Arc::clone(topic));
        }
    }

    fn maybe_refresh_metadata(&mut self, now: Instant) {
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
        let client = self.client.clone();
        let events = self.events_tx.clone();
        self.tasks.spawn(async move {
            let names: Vec<&str> = topics.iter().map(|t| &**t).collect();
            let result = client.refresh_metadata(Some(&names)).await;
            let _ = events.send(Event::Metadata { topics, result });
        });
    }

    fn on_metadata(
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
                for &index in &affected {
                    self.update_route(index, &metadata);
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
    fn update_route(&mut self, index: usize, metadata: &ClusterMetadata) {
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
            Err(err) => self.fail_slot(index, &err),
        }
    }

    // ---- timers and completion -------------------------------------------

    fn on_timers(&mut self, now: Instant) {
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
            // Broker and metadata timers only wake the loop; `pump` acts.
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
            self.finish_completed();
        }
    }

    /// Hands results to their callers, releases window permits, and answers
    /// flushes that have nothing left to wait for.
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
            let _ = pending.reply.send(result);
        }
        let oldest = self.outstanding.first().copied().unwrap_or(u64::MAX);
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|w| w.upto <= oldest);
        self.flushes = waiting;
        for waiter in done {
            let _ = waiter.reply.send(waiter.first_error.map_or(Ok(()), Err));
        }
    }
}
