//! The producer's task: the runner around [`ProducerCore`]. It owns the
//! connections, the spawned tasks and the channels, moves commands, answers
//! and time into the core, and carries out the core's [`Action`]s. Every
//! decision (routing, request assembly, retries, leader hints, throttling,
//! timeouts) is the core's.
//!
//! Queues and their bounds: the command channel holds at most one message
//! per window permit (plus flush/close calls); the event channel at most one
//! per spawned task (requests are limited per broker, one connect per
//! broker, one metadata refresh and one InitProducerId at a time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use ferry_wire::produce::{MAX_PRODUCE_VERSION, MIN_PRODUCE_VERSION};
use ferry_wire::responses::produce::ProduceResponse;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::core::{Action, ConnectedBroker, Input, ProducerCore};
use super::init::init_producer_id;
use super::sequence::ProducerIdentity;
use super::writer::{Outbound, write_requests};
use super::{Ack, Command, Gate, NewBatch, ProducerConfig};
use crate::error::{ClientError, Result};
use crate::metadata::ClusterMetadata;
use crate::retry::RetryCounts;
use crate::{Client, Connection, TopicPartition};

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

/// What the core hands back with a batch's result: its caller's reply
/// channel, and the window permit released once the result is out.
#[derive(Debug)]
pub(crate) struct Delivery {
    reply: oneshot::Sender<Result<Ack>>,
    _permit: OwnedSemaphorePermit,
}

/// A broker connection in use, and its writer task's queue.
#[derive(Debug)]
struct Link {
    conn: Connection,
    writer: mpsc::UnboundedSender<Outbound>,
}

pub(crate) struct Driver {
    client: Client,
    config: ProducerConfig,
    core: ProducerCore<Delivery>,
    shared_identity: Arc<Mutex<ProducerIdentity>>,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    tasks: JoinSet<()>,
    links: HashMap<i32, Link>,
    gates: HashMap<TopicPartition, Arc<Gate>>,
    /// Flush and close calls waiting for [`Action::FlushDone`].
    waiters: HashMap<u64, oneshot::Sender<Result<()>>>,
    next_waiter: u64,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("core", &self.core)
            .field("links", &self.links.len())
            .finish_non_exhaustive()
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
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
        let core = ProducerCore::new(config.clone(), identity, client.metadata(), retries, now());
        Self {
            client,
            config,
            core,
            shared_identity,
            commands,
            commands_open: true,
            events_tx,
            events,
            tasks: JoinSet::new(),
            links: HashMap::new(),
            gates: HashMap::new(),
            waiters: HashMap::new(),
            next_waiter: 0,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            self.step(now());
            if self.core.finished() {
                break;
            }
            let wake = Instant::from_std(self.core.poll_timeout());
            tokio::select! {
                biased;
                Some(event) = self.events.recv() => self.on_event(event),
                command = self.commands.recv(), if self.commands_open => match command {
                    Some(command) => self.on_command(command),
                    None => self.handles_dropped(),
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
                    Err(mpsc::error::TryRecvError::Disconnected) => self.handles_dropped(),
                }
            }
            self.core.handle_timeout(now());
            while self.tasks.try_join_next().is_some() {}
        }
        for action in self.core.shut_down() {
            self.perform(action);
        }
        // Anything still running (answers nobody waits for) is aborted when
        // `tasks` drops.
    }

    /// Tells the core about broken connections and the client's metadata,
    /// then carries out everything it decides.
    fn step(&mut self, now: std::time::Instant) {
        let broken: Vec<i32> = self
            .links
            .iter()
            .filter(|(_, link)| link.conn.poisoned().is_some())
            .map(|(node, _)| *node)
            .collect();
        for node in broken {
            // Dropping the writer's queue lets it answer what it holds and end.
            self.links.remove(&node);
            self.core.handle(Input::ConnectionBroken { node }, now);
        }
        self.core.observe_metadata(self.client.metadata());
        while let Some(action) = self.core.poll_action(now) {
            self.perform(action);
        }
        let identity = self.core.identity();
        let mut shared = self
            .shared_identity
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *shared = identity;
    }

    fn handles_dropped(&mut self) {
        self.commands_open = false;
        self.core.handle(Input::HandlesDropped, now());
    }

    fn on_command(&mut self, command: Command) {
        let input = match command {
            Command::Send(batch) => {
                let NewBatch {
                    tp,
                    batch,
                    header,
                    gate,
                    permit,
                    reply,
                } = *batch;
                if !self.gates.contains_key(&tp) {
                    // A partition new to the core is routed from the cache:
                    // take in what other users of the client refreshed.
                    self.core.observe_metadata(self.client.metadata());
                    self.gates.insert(tp.clone(), gate);
                }
                Input::Send {
                    tp,
                    batch,
                    header,
                    token: Delivery {
                        reply,
                        _permit: permit,
                    },
                }
            }
            Command::Flush(reply) => Input::Flush {
                id: self.waiter(reply),
            },
            Command::Close(reply) => Input::Close {
                id: self.waiter(reply),
            },
            Command::Restart(tp) => {
                // Its next send brings the handle's new gate.
                self.gates.remove(&tp);
                Input::Restart { tp }
            }
        };
        self.core.handle(input, now());
    }

    fn waiter(&mut self, reply: oneshot::Sender<Result<()>>) -> u64 {
        let id = self.next_waiter;
        self.next_waiter += 1;
        self.waiters.insert(id, reply);
        id
    }

    fn on_event(&mut self, event: Event) {
        let input = match event {
            Event::Connected { node, result } => Input::Connected {
                node,
                result: self.connected(node, result),
            },
            Event::Response { request, result } => Input::Response { request, result },
            Event::Metadata { topics, result } => Input::Metadata { topics, result },
            Event::ProducerId(result) => Input::ProducerId(result),
        };
        self.core.handle(input, now());
    }

    /// Picks the Produce version and starts the connection's writer.
    fn connected(&mut self, node: i32, result: Result<Connection>) -> Result<ConnectedBroker> {
        let ours = VersionRange {
            min: MIN_PRODUCE_VERSION,
            max: MAX_PRODUCE_VERSION,
        };
        let conn = result?;
        let version = conn.versions().pick(ApiKey::Produce, ours)?;
        let (writer, outbound) = mpsc::unbounded_channel();
        self.tasks.spawn(write_requests(
            conn.clone(),
            outbound,
            self.events_tx.clone(),
            self.config.request_timeout,
        ));
        let broker = conn.broker().to_owned();
        self.links.insert(node, Link { conn, writer });
        Ok(ConnectedBroker { broker, version })
    }

    fn perform(&mut self, action: Action<Delivery>) {
        match action {
            Action::Connect { node } => {
                let client = self.client.clone();
                let events = self.events_tx.clone();
                self.tasks.spawn(async move {
                    let result = client.broker_connection(node).await;
                    let _ = events.send(Event::Connected { node, result });
                });
            }
            Action::Send { node, outbound } => self.send(node, outbound),
            Action::RefreshMetadata { topics } => {
                let client = self.client.clone();
                let events = self.events_tx.clone();
                self.tasks.spawn(async move {
                    let names: Vec<&str> = topics.iter().map(|t| &**t).collect();
                    let result = client.refresh_metadata(Some(&names)).await;
                    let _ = events.send(Event::Metadata { topics, result });
                });
            }
            Action::InitProducerId { deadline } => {
                let client = self.client.clone();
                let events = self.events_tx.clone();
                let deadline = Instant::from_std(deadline);
                let backoff = self.config.retry_backoff;
                self.tasks.spawn(async move {
                    let result = init_producer_id(&client, deadline, backoff).await;
                    let _ = events.send(Event::ProducerId(result));
                });
            }
            Action::Deliver { token, result } => {
                let _ = token.reply.send(result);
            }
            Action::StopPartition { tp, error } => {
                if let Some(gate) = self.gates.get(&tp) {
                    gate.stop(error);
                }
            }
            Action::FlushDone { id, result } => {
                if let Some(reply) = self.waiters.remove(&id) {
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// Queues a request on `node`'s writer; a writer that is gone answers
    /// it as a lost connection.
    fn send(&mut self, node: i32, outbound: Outbound) {
        let request = outbound.request;
        let broker = match self.links.get(&node) {
            Some(link) => match link.writer.send(outbound) {
                Ok(()) => return,
                // The writer task is gone (it only ends when its sender drops).
                Err(_) => link.conn.broker().to_owned(),
            },
            None => format!("node {node}"),
        };
        let _ = self.events_tx.send(Event::Response {
            request,
            result: Err(ClientError::Closed {
                broker,
                mid_frame: false,
            }),
        });
    }
}
