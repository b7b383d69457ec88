//! One source partition's task: moves fetched data, acknowledgements and
//! time into its [`PartitionMachine`] and sends what it hands out. Every
//! decision is the machine's; this loop only waits.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use ferry_client::{
    Ack, Client, ClientError, IdempotentProducer, KafkaCode, OffsetSpec, SourceFetcher,
    TopicPartition,
};
use ferry_wire::batch::{BatchHeader, RecordBatch};
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::sync::watch;
use tokio::time::Duration;

use super::machine::{Outgoing, PartitionMachine};
use super::queue::{FetchControl, QueueReceiver};
use super::{FlowSpec, FlowStats, Positions, lock};
use crate::EngineError;
use crate::inflight::EntryId;
use crate::metrics::{AckedBatch, BatchPath, PartitionMetrics};
use crate::plan::PlanConfig;

/// Resolves when the target acknowledges one batch.
pub(super) type AckFuture = Pin<Box<dyn Future<Output = Result<Ack, ClientError>> + Send>>;
/// Resolves when the producer took a batch (waiting while its window is full).
pub(super) type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AckFuture, ClientError>> + Send + 'a>>;

/// What the task needs from the target (a trait so the loop can be driven
/// by a stand-in in tests). Dropping a [`SendFuture`] before it resolves
/// must queue nothing.
pub(super) trait Target: Send + Sync + 'static {
    fn send(&self, tp: &TopicPartition, batch: RecordBatch, header: BatchHeader) -> SendFuture<'_>;
}

impl Target for IdempotentProducer {
    fn send(&self, tp: &TopicPartition, batch: RecordBatch, header: BatchHeader) -> SendFuture<'_> {
        let tp = tp.clone();
        Box::pin(async move {
            let ack = IdempotentProducer::send(self, &tp, batch, header).await?;
            Ok(Box::pin(ack) as AckFuture)
        })
    }
}

/// Where the source partition's log starts, after OFFSET_OUT_OF_RANGE.
pub(super) trait LogStart: Send + Sync + 'static {
    fn log_start<'a>(
        &'a self,
        tp: &'a TopicPartition,
    ) -> Pin<Box<dyn Future<Output = Result<Option<i64>, ClientError>> + Send + 'a>>;
}

impl LogStart for Client {
    fn log_start<'a>(
        &'a self,
        tp: &'a TopicPartition,
    ) -> Pin<Box<dyn Future<Output = Result<Option<i64>, ClientError>> + Send + 'a>> {
        Box::pin(async move {
            let found = self
                .list_offsets(&tp.topic, &[tp.partition], OffsetSpec::Earliest)
                .await?;
            Ok(found.first().map(|(_, o)| *o))
        })
    }
}

/// An acknowledgement with what it settles.
struct AckResult {
    id: EntryId,
    source_offset: i64,
    batch: AckedBatch,
    sent_at: Instant,
    result: Result<Ack, ClientError>,
}
type AckResultFuture = Pin<Box<dyn Future<Output = AckResult> + Send>>;

pub(super) struct PartitionTask<F: FetchControl = SourceFetcher, P = IdempotentProducer, C = Client>
{
    pub spec: Arc<FlowSpec>,
    /// The source cluster, to look up the log start after a fetch error.
    pub client: C,
    pub source: TopicPartition,
    pub target: TopicPartition,
    pub max_batch_bytes: usize,
    pub position: i64,
    /// The target partition's end when the task started.
    pub target_position: i64,
    pub producer: P,
    pub fetcher: Arc<F>,
    pub positions: Positions,
    /// Where this partition's offset-map runs wait to be written.
    pub journals: super::Journals,
    /// Source and target offsets from which the map is not known exactly
    /// up to `position` (a restart after a crash): recorded as an anchor.
    pub anchor: Option<(i64, i64)>,
    pub stats: Arc<FlowStats>,
    pub stop: watch::Receiver<bool>,
}

/// How long a stopping partition waits for the next acknowledgement before
/// it gives up on the rest. The position only ever advances past
/// acknowledged batches, so stopping early loses nothing: a restart sends
/// the rest again (and finds those the target did write by its tail). It
/// bounds a SIGTERM when the target cannot take data (a deleted topic
/// retries until the producer's delivery timeout, 2 minutes by default).
pub(super) const DRAIN_STALL: Duration = Duration::from_secs(5);

/// Sleeps until `at`; forever when there is none.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves with the send of `next`; never when there is nothing to send.
async fn send_next<P: Target>(
    producer: &P,
    tp: &TopicPartition,
    next: Option<(RecordBatch, BatchHeader)>,
) -> Result<AckFuture, ClientError> {
    match next {
        Some((batch, header)) => producer.send(tp, batch, header).await,
        None => std::future::pending().await,
    }
}

impl<F: FetchControl + 'static, P: Target, C: LogStart> PartitionTask<F, P, C> {
    /// Runs until the flow stops or the partition fails; a failed partition
    /// is no longer fetched, and its last committed position stays published
    /// so the final checkpoint keeps it.
    pub(super) async fn run(self, rx: QueueReceiver<F>) -> Result<(), EngineError> {
        let fetcher = Arc::clone(&self.fetcher);
        let source = self.source.clone();
        let result = self.pipeline(rx).await;
        if result.is_err() {
            fetcher.unassign(&source);
        }
        result
    }

    #[allow(clippy::too_many_lines)] // one select loop: each arm only moves data
    async fn pipeline(mut self, mut rx: QueueReceiver<F>) -> Result<(), EngineError> {
        let config = PlanConfig {
            verify_crc: self.spec.tuning.verify_crc,
            max_batch_bytes: self.max_batch_bytes,
            reencode_compression: self.spec.tuning.reencode_compression,
            ..PlanConfig::default()
        };
        let mut machine = PartitionMachine::new(
            self.source.clone(),
            self.position,
            self.target_position,
            config,
            self.spec.tuning.coalesce,
            self.anchor,
        )?;
        self.journal(&mut machine);
        let mut acks: FuturesOrdered<AckResultFuture> = FuturesOrdered::new();
        let mut metrics = self.spec.metrics.partition(&self.source);
        // The start position counts as mirrored up to here: otherwise the
        // lag shows 0 until the first acknowledgement, and "wait for lag 0"
        // (the failover runbook) could pass before anything was copied.
        metrics.mirrored(self.position, now_ms());
        // No more data is taken (the flow stops, or the partition failed).
        let mut stopping = false;
        // Once the flow stops: when the drain gives up unless an ack comes
        // first. Unsent batches are dropped then. (A partition stopping on
        // its own error still sends what came before the error.)
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        let mut failed: Option<EngineError> = None;
        self.publish(&machine);
        loop {
            let draining = drain_deadline.is_some();
            if stopping && acks.is_empty() && (draining || machine.next_send().is_none()) {
                break;
            }
            // The send is an arm of its own, so a full producer window never
            // keeps the acknowledgement, stop and drain arms from running.
            // A send dropped before it resolves queues nothing; the batch
            // stays first in line.
            let next = match machine.next_send() {
                Some(o) if !draining => Some((o.batch.clone(), o.header)),
                _ => None,
            };
            let sending = next.is_some();
            tokio::select! {
                biased;
                Some(done) = acks.next(), if !acks.is_empty() => {
                    let done: AckResult = done;
                    let ack = match done.result {
                        Ok(ack) => ack,
                        Err(e) => {
                            metrics.failed();
                            self.spec.metrics.error("produce", e.kafka_code().and_then(KafkaCode::name));
                            return Err(self.produce_error(done.source_offset, e));
                        }
                    };
                    let now = now_ms();
                    metrics.acknowledged(
                        &AckedBatch { produce_time: done.sent_at.elapsed(), ..done.batch },
                        now,
                    );
                    if draining {
                        drain_deadline = Some(tokio::time::Instant::now() + DRAIN_STALL);
                    }
                    let committed = machine.on_ack(done.id, ack.base_offset)?;
                    self.journal(&mut machine);
                    metrics.mirrored(committed.source_offset, now);
                    self.publish(&machine);
                }
                () = sleep_until(drain_deadline), if draining => {
                    tracing::warn!(
                        partition = %self.source,
                        target = %self.target,
                        unacknowledged = acks.len(),
                        unsent = machine.unsent(),
                        position = machine.committed().source_offset,
                        "no acknowledgement from the target for {DRAIN_STALL:?} while stopping; \
                         stopping without the rest (the position stays at the last acknowledged batch)"
                    );
                    break;
                }
                // Also while stopping on an error: the shutdown bounds that wait too.
                _ = self.stop.changed(), if !draining => {
                    stopping = true;
                    drain_deadline = Some(tokio::time::Instant::now() + DRAIN_STALL);
                    machine.abandon_unsent();
                    self.fetcher.unassign(&self.source);
                }
                sent = send_next(&self.producer, &self.target, next), if sending => {
                    let Some(out) = machine.sent() else { continue };
                    let ack = sent.map_err(|e| self.produce_error(out.source_offset, e))?;
                    self.count(&out);
                    metrics.sent();
                    acks.push_back(awaiting(out, ack));
                }
                data = rx.recv(), if !stopping && !sending => {
                    let Some(data) = data else {
                        stopping = true;
                        continue;
                    };
                    let outcome = match machine.on_fetched(&data) {
                        Ok(Some(outcome)) => outcome,
                        Ok(None) => {
                            self.spec.metrics.error("partition", KafkaCode::OFFSET_OUT_OF_RANGE.name());
                            self.retention_gap(&mut machine, &mut metrics).await?;
                            continue;
                        }
                        Err(e) => {
                            if let Some(code) = data.error {
                                self.spec.metrics.error("partition", code.name());
                            }
                            return Err(e);
                        }
                    };
                    if outcome.stale {
                        continue;
                    }
                    metrics.fetched(data.high_watermark, data.last_stable_offset, now_ms());
                    for _ in 0..outcome.skipped {
                        self.stats.skipped();
                        metrics.skipped();
                    }
                    self.journal(&mut machine);
                    self.publish(&machine);
                    if let Some(e) = outcome.failure {
                        failed = Some(e);
                        stopping = true;
                        self.fetcher.unassign(&self.source);
                    }
                }
            }
        }
        self.journal(&mut machine);
        self.publish(&machine);
        failed.map_or(Ok(()), Err)
    }

    /// Flow counters for one batch handed to the producer.
    fn count(&self, out: &Outgoing) {
        let (bytes, records) = (out.stats.bytes, out.stats.records);
        match out.stats.path {
            BatchPath::Forwarded => self.stats.forwarded(bytes, records),
            BatchPath::Reencoded => self.stats.reencoded(bytes, records),
            BatchPath::Coalesced(sources) => self.stats.coalesced(sources, bytes, records),
        }
    }

    /// Hands the map's finished runs to the checkpointer (before the
    /// position they lead to is published).
    fn journal(&self, machine: &mut PartitionMachine) {
        let mut journals = lock(&self.journals);
        // The flow inserts each partition's journal before starting it.
        machine.journal_into(journals.entry(self.source.clone()).or_default());
    }

    fn publish(&self, machine: &PartitionMachine) {
        lock(&self.positions).insert(
            self.source.clone(),
            (self.target.topic.to_string(), machine.committed()),
        );
    }

    fn produce_error(&self, offset: i64, e: ClientError) -> EngineError {
        EngineError::Produce {
            source_tp: self.source.clone(),
            target_tp: self.target.clone(),
            offset,
            error: Box::new(e),
        }
    }

    /// OFFSET_OUT_OF_RANGE: a retention gap is reported and skipped (the
    /// records are gone at the source); a truncation stops the partition.
    async fn retention_gap(
        &self,
        machine: &mut PartitionMachine,
        metrics: &mut PartitionMetrics,
    ) -> Result<(), EngineError> {
        let position = machine.fetch_position();
        let log_start = self
            .client
            .log_start(&self.source)
            .await
            .map_err(|e| EngineError::Cluster {
                flow: self.spec.name.clone(),
                cluster: self.spec.source_alias.clone(),
                source: Box::new(e),
            })?
            .unwrap_or(position);
        let gap = machine.on_log_start(log_start)?;
        tracing::warn!(
            flow = %self.spec.name,
            partition = %self.source,
            position,
            log_start,
            lost = gap.lost,
            "source retention deleted records before they were replicated; continuing at the log start"
        );
        self.stats.lost(gap.lost);
        metrics.lost(gap.lost);
        self.journal(machine);
        self.publish(machine);
        self.fetcher.assign(self.source.clone(), gap.resume_at);
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The future that completes when the target acknowledges one sent batch.
/// It holds the fetched bytes until then (their budget goes back once no
/// batch holds them).
fn awaiting(out: Outgoing, ack: AckFuture) -> AckResultFuture {
    let sent_at = Instant::now();
    let Outgoing {
        id,
        source_offset,
        stats,
        fetched,
        ..
    } = out;
    Box::pin(async move {
        let result = ack.await;
        drop(fetched);
        AckResult {
            id,
            source_offset,
            batch: stats,
            sent_at,
            result,
        }
    })
}
