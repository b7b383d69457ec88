//! A deterministic simulation of target brokers for [`ProducerCore`]: it
//! carries out the core's actions against in-memory partition logs
//! ([`log::PartitionLog`], the broker's idempotence rules), decodes the
//! real Produce request bytes the core built, and answers with scripted
//! fates: accept, refuse, append and lose the answer, lose the request,
//! move a leader (with or without a KIP-951 hint), throttle. Time is
//! virtual: it only moves when the test, or [`Sim::run`] with nothing else
//! to do, moves it to the core's next timeout.
//!
//! Batches are named by a number `n`: the caller's token, and the first
//! timestamp of the batch (`BASE_TIMESTAMP + n`), which is how the log
//! names what it holds.

pub(crate) mod log;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ferry_wire::batch::{BatchHeader, RecordBatch};
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::Record;
use ferry_wire::responses::produce::{ProducePartition, ProduceResponse, ProduceTopic, TopicKey};
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::protocol::Decodable;

use self::log::{Offered, PartitionLog, Written};
use super::Ack;
use super::ProducerConfig;
use super::core::{Action, ConnectedBroker, Input, ProducerCore};
use super::sequence::ProducerIdentity;
use crate::TopicPartition;
use crate::error::{ClientError, KafkaCode, Result};
use crate::metadata::{BrokerInfo, ClusterMetadata, PartitionMetadata, TopicMetadata};
use crate::retry::RetryCounts;

pub(crate) const BASE_TIMESTAMP: i64 = 1_700_000_000_000;
/// The Produce version the simulated brokers speak (names, KIP-951 hints).
const VERSION: i16 = 12;
pub(crate) const FIRST_PID: ProducerIdentity = ProducerIdentity {
    producer_id: 1000,
    epoch: 0,
};

/// What a broker does with one batch of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Apply the log's rules and answer.
    Accept,
    /// Answer with this code without appending (NOT_ENOUGH_REPLICAS, ...).
    Refuse(KafkaCode),
    /// Append (by the log's rules), then the connection drops: no answer.
    AppendThenDrop,
    /// The connection drops before the broker reads this batch's request.
    DropBeforeAppend,
    /// Answer DUPLICATE_SEQUENCE_NUMBER with offset -1 (as older brokers
    /// may), appending nothing.
    DuplicateSequence,
}

/// One simulated partition.
#[derive(Debug, Clone)]
pub(crate) struct SimPartition {
    pub leader: i32,
    pub leader_epoch: i32,
    pub log: PartitionLog,
}

/// One Produce request as the simulated broker read it.
#[derive(Debug, Clone)]
pub(crate) struct SentRequest {
    pub at: Instant,
    pub node: i32,
    pub request: u64,
    pub batches: Vec<(TopicPartition, Offered)>,
}

/// The simulation: brokers, logs, the core, and what happened.
pub(crate) struct Sim {
    pub core: ProducerCore<u64>,
    pub now: Instant,
    pub start: Instant,
    pub brokers: BTreeSet<i32>,
    pub partitions: BTreeMap<TopicPartition, SimPartition>,
    /// Nodes that refuse connections (retriably).
    pub unreachable: BTreeSet<i32>,
    /// Whether NOT_LEADER answers carry the new leader (KIP-951).
    pub hints: bool,
    /// Throttle the next answer of a node by this many milliseconds.
    pub throttle_next: HashMap<i32, i32>,
    /// Scripted fates per partition, taken one per batch that arrives;
    /// [`Fate::Accept`] once empty.
    pub script: HashMap<TopicPartition, VecDeque<Fate>>,
    /// Requests on each connection, not answered yet, in order.
    pub queues: BTreeMap<i32, VecDeque<SentRequest>>,
    connects: VecDeque<i32>,
    metadata_pending: Option<Vec<Arc<str>>>,
    producer_id_pending: bool,
    next_producer_id: i64,
    /// InitProducerId calls answered.
    pub producer_ids_issued: usize,
    /// Every request sent, in order.
    pub sent: Vec<SentRequest>,
    pub metadata_refreshes: usize,
    pub results: BTreeMap<u64, Result<Ack>>,
    pub stopped: BTreeMap<TopicPartition, ClientError>,
    pub flushed: BTreeMap<u64, Result<()>>,
}

/// A batch of `records` records named `n`.
pub(crate) fn batch(n: u64, records: usize) -> (RecordBatch, BatchHeader) {
    let ts = BASE_TIMESTAMP + i64::try_from(n).unwrap_or(0);
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            offset: i64::try_from(i).unwrap_or(0),
            timestamp: ts,
            key: None,
            value: Some(Bytes::from(format!("batch {n} record {i}"))),
            headers: Vec::new(),
        })
        .collect();
    let bytes = build_batch(&BatchSpec::producer(Compression::None), &records).expect("batch");
    let batch = RecordBatch::new(bytes).expect("valid batch");
    let header = *batch.header();
    (batch, header)
}

impl Sim {
    /// Brokers `brokers`; each partition led by the given node.
    pub fn new(
        config: ProducerConfig,
        brokers: &[i32],
        partitions: &[(TopicPartition, i32)],
    ) -> Self {
        Self::with_identity(config, FIRST_PID, brokers, partitions)
    }

    /// As [`Self::new`], for a producer that starts as `identity`.
    pub fn with_identity(
        config: ProducerConfig,
        identity: ProducerIdentity,
        brokers: &[i32],
        partitions: &[(TopicPartition, i32)],
    ) -> Self {
        let start = Instant::now();
        let brokers: BTreeSet<i32> = brokers.iter().copied().collect();
        let mut sim = Self {
            core: ProducerCore::new(
                config,
                identity,
                Arc::new(ClusterMetadata::default()),
                RetryCounts::default(),
                start,
            ),
            now: start,
            start,
            brokers,
            partitions: partitions
                .iter()
                .map(|(tp, leader)| {
                    (
                        tp.clone(),
                        SimPartition {
                            leader: *leader,
                            leader_epoch: 0,
                            log: PartitionLog::default(),
                        },
                    )
                })
                .collect(),
            unreachable: BTreeSet::new(),
            hints: true,
            throttle_next: HashMap::new(),
            script: HashMap::new(),
            queues: BTreeMap::new(),
            connects: VecDeque::new(),
            metadata_pending: None,
            producer_id_pending: false,
            next_producer_id: identity.producer_id + 1,
            producer_ids_issued: 0,
            sent: Vec::new(),
            metadata_refreshes: 0,
            results: BTreeMap::new(),
            stopped: BTreeMap::new(),
            flushed: BTreeMap::new(),
        };
        // As a client after bootstrap: the brokers, no topics yet.
        let known = sim.metadata(&[]);
        sim.core.observe_metadata(Arc::new(known));
        sim
    }

    /// The cluster's metadata for `topics` (all brokers).
    pub fn metadata(&self, topics: &[Arc<str>]) -> ClusterMetadata {
        let brokers = self
            .brokers
            .iter()
            .map(|&node_id| {
                (
                    node_id,
                    BrokerInfo {
                        node_id,
                        host: "sim".to_owned(),
                        port: u16::try_from(9000 + node_id).unwrap_or(9000),
                        rack: None,
                    },
                )
            })
            .collect();
        let mut topic_map: BTreeMap<String, TopicMetadata> = BTreeMap::new();
        for (tp, p) in &self.partitions {
            if !topics.contains(&tp.topic) {
                continue;
            }
            let t = topic_map
                .entry(tp.topic.to_string())
                .or_insert_with(|| TopicMetadata {
                    name: tp.topic.to_string(),
                    topic_id: None,
                    is_internal: false,
                    error: None,
                    partitions: BTreeMap::new(),
                });
            t.partitions.insert(
                tp.partition,
                PartitionMetadata {
                    partition: tp.partition,
                    leader: Some(p.leader),
                    leader_epoch: Some(p.leader_epoch),
                    replicas: self.brokers.iter().copied().collect(),
                    isr: self.brokers.iter().copied().collect(),
                    offline_replicas: Vec::new(),
                    error: None,
                },
            );
        }
        ClusterMetadata {
            source: "sim:9000".to_owned(),
            cluster_id: None,
            controller_id: None,
            brokers,
            topics: topic_map,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now.saturating_duration_since(self.start)
    }

    /// Hands batch `n` of `records` records for `tp` to the core.
    pub fn send(&mut self, tp: &TopicPartition, n: u64, records: usize) {
        let (batch, header) = batch(n, records);
        self.core.handle(
            Input::Send {
                tp: tp.clone(),
                batch,
                header,
                token: n,
            },
            self.now,
        );
    }

    /// Moves `tp`'s leadership to `node` (a newer leader epoch).
    pub fn move_leader(&mut self, tp: &TopicPartition, node: i32) {
        if let Some(p) = self.partitions.get_mut(tp) {
            p.leader = node;
            p.leader_epoch += 1;
        }
    }

    pub fn log(&self, tp: &TopicPartition) -> &[Written] {
        self.partitions.get(tp).map_or(&[], |p| p.log.batches())
    }

    /// Batch names in `tp`'s log, in log order.
    pub fn log_ids(&self, tp: &TopicPartition) -> Vec<i64> {
        self.log(tp).iter().map(|w| w.id).collect()
    }

    /// Carries out everything the core wants now.
    pub fn settle(&mut self) {
        while let Some(action) = self.core.poll_action(self.now) {
            self.perform(action);
        }
    }

    fn perform(&mut self, action: Action<u64>) {
        match action {
            Action::Connect { node } => self.connects.push_back(node),
            Action::Send { node, outbound } => {
                let bytes = outbound.chunks.iter().map(Bytes::len).sum();
                let mut body = BytesMut::with_capacity(bytes);
                for chunk in &outbound.chunks {
                    body.extend_from_slice(chunk);
                }
                let batches = decode_request(body.freeze(), outbound.version);
                let sent = SentRequest {
                    at: self.now,
                    node,
                    request: outbound.request,
                    batches,
                };
                self.sent.push(sent.clone());
                self.queues.entry(node).or_default().push_back(sent);
            }
            Action::RefreshMetadata { topics } => {
                self.metadata_refreshes += 1;
                self.metadata_pending = Some(topics);
            }
            Action::InitProducerId { .. } => self.producer_id_pending = true,
            Action::Deliver { token, result } => {
                let previous = self.results.insert(token, result);
                assert!(previous.is_none(), "batch {token} delivered twice");
            }
            Action::StopPartition { tp, error } => {
                self.stopped.entry(tp).or_insert(error);
            }
            Action::FlushDone { id, result } => {
                self.flushed.insert(id, result);
            }
        }
    }

    /// Answers the oldest pending connect.
    pub fn answer_connect(&mut self) -> bool {
        let Some(node) = self.connects.pop_front() else {
            return false;
        };
        let result = if self.unreachable.contains(&node) {
            Err(ClientError::Connect {
                broker: format!("sim:{}", 9000 + node),
                source: Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            })
        } else {
            Ok(ConnectedBroker {
                broker: format!("sim:{}", 9000 + node),
                version: VERSION,
            })
        };
        self.core
            .handle(Input::Connected { node, result }, self.now);
        true
    }

    pub fn answer_metadata(&mut self) -> bool {
        let Some(topics) = self.metadata_pending.take() else {
            return false;
        };
        let metadata = Arc::new(self.metadata(&topics));
        self.core.handle(
            Input::Metadata {
                topics,
                result: Ok(metadata),
            },
            self.now,
        );
        true
    }

    pub fn answer_producer_id(&mut self) -> bool {
        if !std::mem::take(&mut self.producer_id_pending) {
            return false;
        }
        let identity = ProducerIdentity {
            producer_id: self.next_producer_id,
            epoch: 0,
        };
        self.next_producer_id += 1;
        self.producer_ids_issued += 1;
        self.core.handle(Input::ProducerId(Ok(identity)), self.now);
        true
    }

    /// The broker `node` reads its oldest request and answers it, each
    /// batch by its scripted fate.
    pub fn answer_request(&mut self, node: i32) -> bool {
        self.answer_request_with(node, None)
    }

    /// As [`Self::answer_request`], with `fate` (if given) for every batch
    /// the node leads instead of the script.
    pub fn answer_request_with(&mut self, node: i32, fate: Option<Fate>) -> bool {
        let Some(request) = self.queues.get_mut(&node).and_then(VecDeque::pop_front) else {
            return false;
        };
        let mut answers: Vec<(TopicPartition, ProducePartition)> = Vec::new();
        let mut dropped = false;
        for (tp, offered) in &request.batches {
            let leads = self.partitions.get(tp).is_some_and(|p| p.leader == node);
            let fate = match fate {
                Some(fate) => fate,
                None if leads => self
                    .script
                    .get_mut(tp)
                    .and_then(VecDeque::pop_front)
                    .unwrap_or(Fate::Accept),
                None => Fate::Accept,
            };
            let (code, offset, hint) = match self.partitions.get_mut(tp) {
                None => (KafkaCode::UNKNOWN_TOPIC_OR_PARTITION.code(), -1, None),
                Some(p) if p.leader != node => (
                    KafkaCode::NOT_LEADER_OR_FOLLOWER.code(),
                    -1,
                    Some((p.leader, p.leader_epoch)),
                ),
                Some(p) => match fate {
                    Fate::DropBeforeAppend => {
                        dropped = true;
                        break;
                    }
                    Fate::Refuse(code) => (code.code(), -1, None),
                    Fate::DuplicateSequence => {
                        (KafkaCode::DUPLICATE_SEQUENCE_NUMBER.code(), -1, None)
                    }
                    Fate::Accept | Fate::AppendThenDrop => {
                        dropped |= fate == Fate::AppendThenDrop;
                        match p.log.append(*offered) {
                            Ok(offset) => (0, offset, None),
                            Err(code) => (code.code(), -1, None),
                        }
                    }
                },
            };
            answers.push((
                tp.clone(),
                ProducePartition {
                    partition: tp.partition,
                    error_code: code,
                    base_offset: offset,
                    log_append_time_ms: -1,
                    log_start_offset: 0,
                    record_errors: Vec::new(),
                    error_message: None,
                    current_leader: hint.filter(|_| self.hints),
                },
            ));
        }
        if dropped {
            self.drop_connection(node, request.request);
            return true;
        }
        let throttle_time_ms = self.throttle_next.remove(&node).unwrap_or(0);
        let response = ProduceResponse {
            topics: answers
                .into_iter()
                .map(|(tp, p)| ProduceTopic {
                    topic: TopicKey::Name(tp.topic.to_string()),
                    partitions: vec![p],
                })
                .collect(),
            throttle_time_ms,
            node_endpoints: Vec::new(),
        };
        self.core.handle(
            Input::Response {
                request: request.request,
                result: Ok(response),
            },
            self.now,
        );
        true
    }

    /// The connection to `node` breaks while `request` is being answered:
    /// it and everything queued behind it fail as the runner reports them.
    pub fn drop_connection(&mut self, node: i32, request: u64) {
        let mut failed = vec![request];
        failed.extend(
            self.queues
                .get_mut(&node)
                .map(|q| q.drain(..).map(|r| r.request).collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        for request in failed {
            let err = ClientError::Closed {
                broker: format!("sim:{}", 9000 + node),
                mid_frame: false,
            };
            self.core.handle(
                Input::Response {
                    request,
                    result: Err(err),
                },
                self.now,
            );
        }
        self.core.handle(Input::ConnectionBroken { node }, self.now);
    }

    /// One step with the default order: connects, metadata, producer ids,
    /// then the lowest node's oldest request; with nothing pending, time
    /// moves to the core's next timeout. False once nothing is outstanding.
    pub fn step(&mut self) -> bool {
        self.settle();
        if self.answer_connect() || self.answer_metadata() || self.answer_producer_id() {
            return true;
        }
        let node = self
            .queues
            .iter()
            .find(|(_, q)| !q.is_empty())
            .map(|(node, _)| *node);
        if let Some(node) = node {
            return self.answer_request(node);
        }
        if self.core.outstanding() == 0 {
            return false;
        }
        self.advance_to_timeout();
        true
    }

    /// Moves time to the core's next timeout and runs it.
    pub fn advance_to_timeout(&mut self) {
        let at = self.core.poll_timeout().max(self.now);
        self.now = at;
        self.core.handle_timeout(self.now);
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.core.handle_timeout(self.now);
    }

    /// Steps until nothing is outstanding; panics after `limit` of virtual time.
    pub fn run(&mut self, limit: Duration) {
        while self.step() {
            assert!(
                self.elapsed() <= limit,
                "still running after {limit:?}: {} outstanding",
                self.core.outstanding()
            );
        }
        self.settle();
    }
}

/// The batches of a Produce request body: partition and idempotence fields.
fn decode_request(body: Bytes, version: i16) -> Vec<(TopicPartition, Offered)> {
    let mut buf = body;
    let request = ProduceRequest::decode(&mut buf, version).expect("a valid Produce request");
    let mut out = Vec::new();
    for topic in &request.topic_data {
        for p in &topic.partition_data {
            let records = p.records.clone().expect("records");
            let header = BatchHeader::parse(&records).expect("a batch header");
            let batch = RecordBatch::new(records).expect("a valid batch (CRC patched)");
            assert_eq!(batch.header(), &header);
            out.push((
                TopicPartition::new(topic.name.0.as_str(), p.index),
                Offered {
                    id: header.base_timestamp - BASE_TIMESTAMP,
                    producer_id: header.producer_id,
                    epoch: header.producer_epoch,
                    base_sequence: header.base_sequence,
                    record_count: header.record_count,
                },
            ));
        }
    }
    out
}
