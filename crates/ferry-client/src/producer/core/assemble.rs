//! Building requests: per broker, take the ready partitions round robin,
//! one batch each, until the request reaches `max_request_bytes`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use super::{Action, Conn, InFlightRequest, ProducerCore};
use crate::error::ClientError;
use crate::producer::partition::Outcome;
use crate::producer::request::{self, Part};
use crate::producer::writer::Outbound;

/// Bytes a partition entry adds to a request besides its batch (index,
/// length prefix, tags), rounded up; topic names are small next to batches.
pub(super) const PARTITION_OVERHEAD: usize = 32;

/// One request's worth of batches taken from a broker's ready partitions.
struct Taken {
    parts: Vec<Part>,
    chunks: Vec<[Bytes; 2]>,
    /// Partitions whose leader is elsewhere now.
    elsewhere: Vec<usize>,
    /// Batches whose header could not be rewritten.
    broken: Vec<(usize, u64, i32, String)>,
}

impl<T> ProducerCore<T> {
    /// Sends requests to `node` while it has ready partitions, a usable
    /// connection, room for another request and no throttle.
    pub(super) fn drain_broker(&mut self, node: i32, now: Instant) {
        loop {
            let Some(broker) = self.brokers.get_mut(&node) else {
                return;
            };
            if broker.ready.is_empty() {
                return;
            }
            match &broker.conn {
                Conn::Ready(_) => {}
                Conn::Idle => {
                    broker.conn = Conn::Connecting;
                    self.actions.push_back(Action::Connect { node });
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

    /// Takes batches from `node`'s ready partitions for request
    /// `request_id`, up to `max_request_bytes` (one batch always goes).
    fn take_batches(&mut self, node: i32, generation: u64, request_id: u64, now: Instant) -> Taken {
        let mut taken = Taken {
            parts: Vec::new(),
            chunks: Vec::new(),
            elsewhere: Vec::new(),
            broken: Vec::new(),
        };
        let Some(broker) = self.brokers.get_mut(&node) else {
            return taken;
        };
        let mut bytes = 0usize;
        let mut again = Vec::new();
        while let Some(index) = broker.ready.pop_front() {
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            slot.queued = false;
            if slot.leader != Some(node) {
                taken.elsewhere.push(index);
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
            if !taken.parts.is_empty() && bytes.saturating_add(size) > self.config.max_request_bytes
            {
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
                    taken.parts.push(Part {
                        slot: index,
                        entry,
                        topic: Arc::clone(&slot.tp.topic),
                        topic_id: slot.topic_id,
                        partition: slot.tp.partition,
                        sequence,
                        record_count: out.payload.header.record_count,
                        batch_bytes: out.payload.batch.len(),
                        first_timestamp: out.payload.header.base_timestamp,
                        max_timestamp: out.payload.header.max_timestamp,
                    });
                    taken.chunks.push(batch);
                    bytes = bytes.saturating_add(size);
                    slot.route = Some((node, generation));
                    if slot.state.ready(now) {
                        again.push(index);
                    }
                }
                Err(detail) => taken.broken.push((index, entry, sequence, detail)),
            }
        }
        for index in again {
            if let Some(slot) = self.slots.get_mut(index) {
                slot.queued = true;
                broker.ready.push_back(index);
            }
        }
        taken
    }

    /// Builds one request to `node` from its ready partitions and queues
    /// [`Action::Send`]. False if there was nothing to send.
    fn send_request(&mut self, node: i32, now: Instant) -> bool {
        let Some(broker) = self.brokers.get(&node) else {
            return false;
        };
        let Conn::Ready(connected) = &broker.conn else {
            return false;
        };
        let broker_name = connected.broker.clone();
        let max_version = connected.version;
        let generation = broker.generation;
        let request_id = self.next_request;
        let Taken {
            parts,
            chunks,
            elsewhere,
            broken,
        } = self.take_batches(node, generation, request_id, now);
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
                        let outcome = Outcome::Fatal(err.clone());
                        self.apply(part.slot, part.entry, request_id, outcome, now);
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
                version,
                broker: broker_name,
                parts,
            },
        );
        self.actions.push_back(Action::Send {
            node,
            outbound: Outbound {
                request: request_id,
                version,
                chunks: encoded.chunks,
            },
        });
        true
    }

    pub(super) fn not_delivered(
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
}
