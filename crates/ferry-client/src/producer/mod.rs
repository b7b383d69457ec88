//! The target side's idempotent producer: re-produces pre-built record
//! batches with the semantics of Kafka's Java producer under
//! `enable.idempotence=true`, without copying or recompressing them.
//!
//! # What it does
//!
//! - **Identity.** [`IdempotentProducer::start`] gets a producer id
//!   (InitProducerId, null transactional id). Each batch is re-headed with
//!   that id, an epoch and a base sequence; the CRC is patched, the payload
//!   stays the caller's `Bytes`.
//! - **Order.** Per partition, sequences are assigned in send order
//!   (`base_sequence`, advancing by the record count, wrapping at
//!   `i32::MAX` as Kafka does) and acknowledgements come back in send order.
//!   At most [`ProducerConfig::max_in_flight_per_partition`] (≤ 5, the
//!   broker's deduplication window) batches per partition are in flight,
//!   and as many more may wait queued behind them, so that a slot freed by
//!   an answer is refilled in the very next request (without that queue,
//!   the next batch arrived just after the request went, and waited a
//!   round trip). [`IdempotentProducer::send`] waits while a partition has
//!   twice `max_in_flight_per_partition` batches; that is the only queue.
//! - **Requests.** One task drives everything. Per leader broker it keeps
//!   one connection with up to `max_in_flight_per_partition` Produce
//!   requests in flight; each request carries at most one batch per
//!   partition (a broker rule) but batches of as many partitions as fit in
//!   [`ProducerConfig::max_request_bytes`].
//! - **Retries.** Leadership errors, not-enough-replicas, timeouts and lost
//!   connections are retried: metadata is refreshed (the response's
//!   `current_leader` hint is used when the broker sends one), the partition
//!   backs off (100 ms doubling to 1 s by default), and every unacknowledged
//!   batch is resent in sequence order with its original sequence, once
//!   nothing of that partition is in flight any more: the oldest alone
//!   first, the rest once the broker has acknowledged one (a broker that
//!   lost the producer's state takes any sequence, so pipelined retries
//!   could land out of order). The broker recognises
//!   the batches it already has and answers with their original offsets, so
//!   retries never duplicate. `DUPLICATE_SEQUENCE_NUMBER` counts as success
//!   (its acknowledgement may carry offset -1).
//! - **Lost producer state.** `OUT_OF_ORDER_SEQUENCE_NUMBER` on the oldest
//!   unacknowledged batch, `UNKNOWN_PRODUCER_ID` (brokers before 2.5) and
//!   `INVALID_PRODUCER_EPOCH` mean the broker's state for this producer no
//!   longer matches. The producer then bumps its epoch (client side, as the
//!   Java idempotent producer does; a new producer id once the epoch is
//!   exhausted) and renumbers that partition's unacknowledged batches from
//!   0. **Duplicate risk:** a batch the broker had written but not
//!   acknowledged before it lost the state is written again under the new
//!   epoch; and with `acks=1` a batch acknowledged by a leader that then
//!   lost it is not resent at all. Both need the broker to lose data
//!   (unclean leader election, log truncation, expired producer state) and
//!   are logged at warn level.
//! - **Refusals.** Any other error (`MESSAGE_TOO_LARGE`, `INVALID_RECORD`,
//!   `CORRUPT_MESSAGE`, `TOPIC_AUTHORIZATION_FAILED`, `INVALID_TIMESTAMP`,
//!   `UNSUPPORTED_COMPRESSION_TYPE`, …) fails that batch with a
//!   [`ClientError::Kafka`] naming the broker, topic, partition, base
//!   sequence, code and the broker's message. The partition then stops:
//!   its later batches fail with [`ClientError::NotDelivered`] and further
//!   sends to it fail at once, because its sequence is broken. Other
//!   partitions carry on. Refusals an operator can fix with a target topic
//!   setting (`INVALID_TIMESTAMP`: `message.timestamp.after.max.ms` /
//!   `message.timestamp.before.max.ms`; `MESSAGE_TOO_LARGE`:
//!   `max.message.bytes`) say so in the message and through
//!   [`ClientError::target_topic_settings`].
//! - **Timeouts.** Each request must be answered within
//!   [`ProducerConfig::request_timeout`] (also the broker's `timeout_ms`),
//!   and each batch acknowledged within
//!   [`ProducerConfig::delivery_timeout`] of its `send`; a batch past that
//!   fails (and stops its partition) as soon as it is not in flight.
//! - **Throttling.** A response's `throttle_time_ms` holds back further
//!   requests to that broker for that long.
//!
//! Dropping an [`AckFuture`] only drops the result: the batch stays in
//! order and is still delivered. Dropping every handle lets the queued
//! batches finish, then the task stops; [`IdempotentProducer::close`] waits
//! for that.

mod classify;
mod config;
mod core;
mod driver;
mod init;
mod partition;
mod request;
mod sequence;
#[cfg(test)]
mod sim;
pub mod single;
mod writer;

use crate::util::lock;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use ferry_wire::batch::{BatchHeader, MAGIC_V2, RecordBatch};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::Client;
use crate::TopicPartition;
use crate::error::{ClientError, Result};
use crate::retry::RetryCounts;

pub use config::{MAX_IN_FLIGHT_LIMIT, ProducerConfig};
use sequence::ProducerIdentity;

/// Where the target stored a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Offset of the batch's first record. `-1` in the rare case the broker
    /// answered `DUPLICATE_SEQUENCE_NUMBER` (it has the batch but no longer
    /// remembers where).
    pub base_offset: i64,
    /// The broker's append time for LogAppendTime topics, else -1.
    pub log_append_time_ms: i64,
    /// Records in the batch (its header's `recordCount`).
    pub record_count: i32,
}

/// An idempotent producer for one target cluster. Cheap to clone; clones
/// share the producer id, the connections and the per-partition order.
#[derive(Clone)]
pub struct IdempotentProducer {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    gates: Mutex<HashMap<TopicPartition, Arc<Gate>>>,
    identity: Arc<Mutex<ProducerIdentity>>,
    /// Batches per partition queued or in flight: [`ProducerConfig::window`].
    window: usize,
    retries: RetryCounts,
}

impl fmt::Debug for IdempotentProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (producer_id, epoch) = self.producer_id_and_epoch();
        f.debug_struct("IdempotentProducer")
            .field("producer_id", &producer_id)
            .field("epoch", &epoch)
            .finish_non_exhaustive()
    }
}

/// Per-partition admission: permits for the in-flight window, and the
/// reason the partition stopped, if it did.
#[derive(Debug)]
pub(crate) struct Gate {
    permits: Arc<Semaphore>,
    stopped: Mutex<Option<ClientError>>,
}

impl Gate {
    fn new(window: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(window)),
            stopped: Mutex::new(None),
        }
    }

    /// Refuses every later send with `err` and wakes the waiting ones.
    pub(crate) fn stop(&self, err: ClientError) {
        let mut stopped = lock(&self.stopped);
        if stopped.is_none() {
            *stopped = Some(err);
        }
        self.permits.close();
    }

    fn stopped(&self) -> Option<ClientError> {
        lock(&self.stopped).clone()
    }
}

/// What the handles ask of the driver task.
#[derive(Debug)]
pub(crate) enum Command {
    Send(Box<NewBatch>),
    Flush(oneshot::Sender<Result<()>>),
    Close(oneshot::Sender<Result<()>>),
    /// The partition has a new gate; let it take batches again.
    Restart(TopicPartition),
}

/// A batch on its way to the driver, holding its partition's window permit.
#[derive(Debug)]
pub(crate) struct NewBatch {
    tp: TopicPartition,
    batch: RecordBatch,
    header: BatchHeader,
    gate: Arc<Gate>,
    permit: OwnedSemaphorePermit,
    reply: oneshot::Sender<Result<Ack>>,
}

/// Resolves when the target acknowledged the batch (or it failed).
/// Dropping it is harmless: the batch is still delivered, in order.
#[derive(Debug)]
pub struct AckFuture {
    reply: oneshot::Receiver<Result<Ack>>,
    tp: TopicPartition,
}

impl Future for AckFuture {
    type Output = Result<Ack>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Ack>> {
        match Pin::new(&mut self.reply).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_)) => Poll::Ready(Err(stopped_error(&self.tp))),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn stopped_error(tp: &TopicPartition) -> ClientError {
    ClientError::NotDelivered {
        topic: tp.topic.to_string(),
        partition: tp.partition,
        base_sequence: None,
        reason: "the producer stopped (closed, or its runtime shut down)".to_owned(),
    }
}

impl IdempotentProducer {
    /// Gets a producer id from the cluster and starts the producer's task.
    /// Retriable failures are retried for up to the delivery timeout.
    pub async fn start(client: Client, config: ProducerConfig) -> Result<Self> {
        config.validate()?;
        let deadline = Instant::now() + config.delivery_timeout;
        let identity = init::init_producer_id(&client, deadline, config.retry_backoff).await?;
        tracing::info!(
            producer_id = identity.producer_id,
            epoch = identity.epoch,
            "idempotent producer started"
        );
        let shared = Arc::new(Mutex::new(identity));
        let (commands, receiver) = mpsc::unbounded_channel();
        let window = config.window();
        let retries = RetryCounts::default();
        let driver = driver::Driver::new(
            client,
            config,
            identity,
            Arc::clone(&shared),
            receiver,
            retries.clone(),
        );
        tokio::spawn(driver.run());
        Ok(Self {
            inner: Arc::new(Inner {
                commands,
                gates: Mutex::new(HashMap::new()),
                identity: shared,
                window,
                retries,
            }),
        })
    }

    /// Requests and batches retried so far, by cause.
    pub fn retries(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.inner.retries.snapshot()
    }

    /// Queues one batch for `tp`, to be produced under `header` with this
    /// producer's id, epoch and the partition's next sequence (those three
    /// fields and `base_offset` are overwritten; the CRC is patched, the
    /// payload is not copied).
    ///
    /// Waits while the partition already has twice
    /// `max_in_flight_per_partition` batches queued or in flight. Sequences
    /// follow the order in which `send` calls for a partition *return*: send
    /// to one partition from one task, awaiting each call, for a defined
    /// order. Cancelling a waiting
    /// `send` queues nothing.
    ///
    /// Fails at once if the partition stopped after an earlier failure, if
    /// the producer is closed, or if the batch cannot be produced as given
    /// (a control or transactional batch, a record count that does not
    /// match its offsets, a header of another length or magic).
    pub async fn send(
        &self,
        tp: &TopicPartition,
        batch: RecordBatch,
        header: BatchHeader,
    ) -> Result<AckFuture> {
        let header = checked_header(tp, &batch, header)?;
        let gate = self.gate(tp);
        if let Some(err) = gate.stopped() {
            return Err(err);
        }
        let Ok(permit) = Arc::clone(&gate.permits).acquire_owned().await else {
            return Err(gate.stopped().unwrap_or_else(|| stopped_error(tp)));
        };
        if let Some(err) = gate.stopped() {
            return Err(err);
        }
        // No await from here on: the batch is queued or not at all.
        let (reply, receiver) = oneshot::channel();
        let batch = NewBatch {
            tp: tp.clone(),
            batch,
            header,
            gate,
            permit,
            reply,
        };
        self.inner
            .commands
            .send(Command::Send(Box::new(batch)))
            .map_err(|_| stopped_error(tp))?;
        Ok(AckFuture {
            reply: receiver,
            tp: tp.clone(),
        })
    }

    /// Waits until every batch sent before this call is acknowledged or
    /// failed. Returns the first failure among them, if any (each
    /// [`AckFuture`] still has its own result).
    pub async fn flush(&self) -> Result<()> {
        let (reply, receiver) = oneshot::channel();
        if self.inner.commands.send(Command::Flush(reply)).is_err() {
            // The task is gone, and it only stops with nothing queued.
            return Ok(());
        }
        receiver.await.unwrap_or(Ok(()))
    }

    /// Flushes, then stops the producer's task for every clone: later sends
    /// fail. Returns the first failure among the flushed batches.
    pub async fn close(self) -> Result<()> {
        let (reply, receiver) = oneshot::channel();
        if self.inner.commands.send(Command::Close(reply)).is_err() {
            return Ok(());
        }
        receiver.await.unwrap_or(Ok(()))
    }

    /// Lets a partition that stopped after a failure (a refused batch, a
    /// delivery timeout) take batches again, e.g. once an operator changed
    /// the target topic setting that [`ClientError::target_topic_settings`]
    /// named. Await the partition's earlier [`AckFuture`]s first: sends
    /// made before they are resolved still fail. The partition continues
    /// under a newer producer epoch from sequence 0, because which of its
    /// abandoned batches the broker wrote is unknown: the caller resends
    /// from its own last acknowledged position, and a batch that was
    /// abandoned after being written is then written twice. Does nothing
    /// for a partition that is not stopped.
    pub fn restart_partition(&self, tp: &TopicPartition) {
        {
            let mut gates = lock(&self.inner.gates);
            if gates.get(tp).is_none_or(|g| g.stopped().is_none()) {
                return;
            }
            gates.insert(tp.clone(), Arc::new(Gate::new(self.inner.window)));
        }
        let _ = self.inner.commands.send(Command::Restart(tp.clone()));
    }

    /// The producer id and the epoch new partitions start under. (A partition
    /// whose broker state was reset may run under a newer epoch than others
    /// until they need one too.)
    pub fn producer_id_and_epoch(&self) -> (i64, i16) {
        let identity = *lock(&self.inner.identity);
        (identity.producer_id, identity.epoch)
    }

    fn gate(&self, tp: &TopicPartition) -> Arc<Gate> {
        let mut gates = lock(&self.inner.gates);
        if let Some(gate) = gates.get(tp) {
            return Arc::clone(gate);
        }
        let gate = Arc::new(Gate::new(self.inner.window));
        gates.insert(tp.clone(), Arc::clone(&gate));
        gate
    }
}

/// The header to produce `batch` under, or why it cannot be produced.
fn checked_header(
    tp: &TopicPartition,
    batch: &RecordBatch,
    header: BatchHeader,
) -> Result<BatchHeader> {
    let refuse = |reason: String| {
        Err(ClientError::NotDelivered {
            topic: tp.topic.to_string(),
            partition: tp.partition,
            base_sequence: None,
            reason: format!("the producer refuses it: {reason}"),
        })
    };
    let original = batch.header();
    if header.magic != MAGIC_V2 || header.batch_length != original.batch_length {
        return refuse(format!(
            "the header (magic {}, length {}) does not fit the batch (magic {}, length {})",
            header.magic, header.batch_length, original.magic, original.batch_length
        ));
    }
    if header.is_control() {
        return refuse(
            "it is a control batch (transaction marker); brokers refuse those from clients".into(),
        );
    }
    if header.is_transactional() {
        return refuse(
            "its transactional bit is set; without a transactional id the broker would refuse the whole request"
                .into(),
        );
    }
    if header.record_count <= 0 || !header.offsets_are_contiguous() {
        return refuse(format!(
            "record count {} with last offset delta {}: a producer batch needs 1 or more records numbered 0..count",
            header.record_count, header.last_offset_delta
        ));
    }
    Ok(BatchHeader {
        base_offset: 0,
        ..header
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use ferry_wire::batch::attributes;
    use ferry_wire::builder::{BatchSpec, build_batch};
    use ferry_wire::codec::Compression;
    use ferry_wire::record::Record;

    use super::*;

    fn batch(records: usize) -> RecordBatch {
        let records: Vec<Record> = (0..records)
            .map(|i| Record {
                offset: i64::try_from(i).unwrap(),
                timestamp: 1_700_000_000_000,
                key: None,
                value: Some(Bytes::from(format!("v{i}"))),
                headers: Vec::new(),
            })
            .collect();
        RecordBatch::new(build_batch(&BatchSpec::producer(Compression::None), &records).unwrap())
            .unwrap()
    }

    #[test]
    fn headers_are_checked_before_queueing() {
        let tp = TopicPartition::new("t", 1);
        let b = batch(3);
        let ok = checked_header(
            &tp,
            &b,
            BatchHeader {
                base_offset: 42,
                ..*b.header()
            },
        )
        .unwrap();
        assert_eq!(ok.base_offset, 0);
        let refused = [
            BatchHeader {
                attributes: attributes::CONTROL,
                ..*b.header()
            },
            BatchHeader {
                attributes: attributes::TRANSACTIONAL,
                ..*b.header()
            },
            BatchHeader {
                record_count: 2,
                ..*b.header()
            },
            BatchHeader {
                batch_length: 5,
                ..*b.header()
            },
        ];
        for h in refused {
            let e = checked_header(&tp, &b, h).unwrap_err().to_string();
            assert!(
                e.contains("\"t\" partition 1") && e.contains("refuses"),
                "{e}"
            );
        }
    }
}
