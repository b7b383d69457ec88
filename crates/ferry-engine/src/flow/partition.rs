//! One source partition's task: plan, send, commit in order.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ferry_client::{
    IdempotentProducer, KafkaCode, OffsetSpec, PartitionData, SourceFetcher, TopicPartition,
};
use ferry_wire::batch::BatchIter;
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::sync::watch;
use tokio::time::Duration;

use super::queue::QueueReceiver;
use super::{FlowSpec, FlowStats, Positions, lock};
use crate::EngineError;
use crate::coalesce::coalesce;
use crate::inflight::{EntryId, InFlight, Mapping};
use crate::metrics::{AckedBatch, BatchPath, PartitionMetrics};
use crate::offset_map::OffsetMap;
use crate::plan::{PartitionPlanner, Plan, PlanConfig, SlowPathReason};

/// An acknowledgement with what it settles.
struct AckResult {
    /// The in-flight entry.
    id: EntryId,
    /// The batch's first source offset (for errors).
    source_offset: i64,
    /// The fetched bytes it came from: holding them keeps their response
    /// frame charged to the flow's memory budget until the target has them
    /// (re-encoded batches are new memory, but no larger).
    fetched: Bytes,
    /// For the metrics (`produce_time` is filled in on arrival).
    batch: AckedBatch,
    sent_at: Instant,
    result: Result<ferry_client::Ack, ferry_client::ClientError>,
}
type AckFut = std::pin::Pin<Box<dyn std::future::Future<Output = AckResult> + Send>>;

pub(super) struct PartitionTask {
    pub spec: Arc<FlowSpec>,
    /// The source cluster, to look up offsets after a fetch error.
    pub client: ferry_client::Client,
    pub source: TopicPartition,
    pub target: TopicPartition,
    pub max_batch_bytes: usize,
    pub position: i64,
    /// The target partition's end when the task started.
    pub target_position: i64,
    pub producer: IdempotentProducer,
    pub fetcher: Arc<SourceFetcher>,
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
const DRAIN_STALL: Duration = Duration::from_secs(5);

/// Sleeps until `at`; forever when there is none.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl PartitionTask {
    /// Runs until the flow stops or the partition fails; a failed partition
    /// is no longer fetched, and its last committed position stays published
    /// so the final checkpoint keeps it.
    pub(super) async fn run(self, rx: QueueReceiver<SourceFetcher>) -> Result<(), EngineError> {
        let fetcher = Arc::clone(&self.fetcher);
        let source = self.source.clone();
        let result = self.pipeline(rx).await;
        if result.is_err() {
            fetcher.unassign(&source);
        }
        result
    }

    async fn pipeline(mut self, mut rx: QueueReceiver<SourceFetcher>) -> Result<(), EngineError> {
        let config = PlanConfig {
            verify_crc: self.spec.tuning.verify_crc,
            max_batch_bytes: self.max_batch_bytes,
            reencode_compression: self.spec.tuning.reencode_compression,
            ..PlanConfig::default()
        };
        let mut planner = PartitionPlanner::new(self.source.clone(), self.position, config);
        let mut inflight = InFlight::starting_at(self.position, self.target_position);
        let mut map = OffsetMap::new();
        if let Some((source, target)) = self.anchor {
            map.record_anchor(source, target)
                .map_err(|e| self.internal(e.to_string()))?;
            self.journal(&mut map);
        }
        let mut acks: FuturesOrdered<AckFut> = FuturesOrdered::new();
        let mut metrics = self.spec.metrics.partition(&self.source);
        // The start position counts as mirrored up to here: otherwise the
        // lag shows 0 until the first acknowledgement, and "wait for lag 0"
        // (the failover runbook) could pass before anything was copied.
        metrics.mirrored(self.position, now_ms());
        let mut stopping = false;
        // Once the flow stops: when the drain gives up unless an ack comes
        // first. (A partition stopping on its own error waits for its acks.)
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        // A bad source batch: what came before it is still acknowledged
        // (and checkpointed) before the partition stops with this error.
        let mut failed: Option<EngineError> = None;
        self.publish(&inflight);
        loop {
            if stopping && acks.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                Some(done) = acks.next(), if !acks.is_empty() => {
                    let done: AckResult = done;
                    let ack = match done.result {
                        Ok(ack) => ack,
                        Err(e) => {
                            metrics.failed();
                            self.spec.metrics.error("produce", e.kafka_code().and_then(KafkaCode::name));
                            return Err(EngineError::Produce {
                                source_tp: self.source.clone(),
                                target_tp: self.target.clone(),
                                offset: done.source_offset,
                                error: Box::new(e),
                            });
                        }
                    };
                    drop::<Bytes>(done.fetched); // its budget goes back once no batch holds it
                    let now = now_ms();
                    metrics.acknowledged(
                        &AckedBatch { produce_time: done.sent_at.elapsed(), ..done.batch },
                        now,
                    );
                    if drain_deadline.is_some() {
                        drain_deadline = Some(tokio::time::Instant::now() + DRAIN_STALL);
                    }
                    inflight
                        .ack(done.id, ack.base_offset)
                        .map_err(|e| self.internal(e.to_string()))?;
                    inflight.advance(&mut map).map_err(|e| self.internal(e.to_string()))?;
                    self.journal(&mut map);
                    metrics.mirrored(inflight.committed().source_offset, now);
                    self.publish(&inflight);
                }
                () = sleep_until(drain_deadline), if drain_deadline.is_some() => {
                    tracing::warn!(
                        partition = %self.source,
                        target = %self.target,
                        unacknowledged = acks.len(),
                        position = inflight.committed().source_offset,
                        "no acknowledgement from the target for {DRAIN_STALL:?} while stopping; \
                         stopping without the rest (the position stays at the last acknowledged batch)"
                    );
                    break;
                }
                // Also while stopping on an error: the shutdown bounds that wait too.
                _ = self.stop.changed(), if drain_deadline.is_none() => {
                    stopping = true;
                    drain_deadline = Some(tokio::time::Instant::now() + DRAIN_STALL);
                    self.fetcher.unassign(&self.source);
                }
                data = rx.recv(), if !stopping => {
                    match data {
                        None => stopping = true,
                        Some(data) => {
                            match self.process(data, &mut planner, &mut inflight, &mut map, &mut acks, &mut metrics).await {
                                Ok(()) => {}
                                Err(e @ (EngineError::CorruptBatch { .. } | EngineError::BadBatch { .. })) => {
                                    failed = Some(e);
                                    stopping = true;
                                    self.fetcher.unassign(&self.source);
                                }
                                Err(e) => return Err(e),
                            }
                        }
                    }
                }
            }
        }
        inflight
            .advance(&mut map)
            .map_err(|e| self.internal(e.to_string()))?;
        self.journal(&mut map);
        self.publish(&inflight);
        failed.map_or(Ok(()), Err)
    }

    /// Hands the map's finished runs to the checkpointer (before the
    /// position they lead to is published).
    fn journal(&self, map: &mut OffsetMap) {
        let mut journals = lock(&self.journals);
        match journals.get_mut(&self.source) {
            Some(journal) => journal.absorb(map),
            // The flow inserts each partition's journal before starting it.
            None => journals.entry(self.source.clone()).or_default().absorb(map),
        }
    }

    fn internal(&self, detail: String) -> EngineError {
        EngineError::Internal {
            tp: self.source.clone(),
            detail,
        }
    }

    fn publish(&self, inflight: &InFlight) {
        lock(&self.positions).insert(
            self.source.clone(),
            (self.target.topic.to_string(), inflight.committed()),
        );
    }

    async fn process(
        &mut self,
        data: PartitionData,
        planner: &mut PartitionPlanner,
        inflight: &mut InFlight,
        map: &mut OffsetMap,
        acks: &mut FuturesOrdered<AckFut>,
        metrics: &mut PartitionMetrics,
    ) -> Result<(), EngineError> {
        if let Some(code) = data.error {
            self.spec.metrics.error("partition", code.name());
            return self
                .partition_error(code, planner, inflight, map, metrics)
                .await;
        }
        if data.fetch_offset != planner.position() {
            return Ok(()); // fetched before a seek: stale
        }
        metrics.fetched(data.high_watermark, data.last_stable_offset, now_ms());
        let mut entries = Vec::new();
        let mut bad = None;
        for entry in BatchIter::new(data.records.clone()) {
            match entry {
                Ok(entry) => entries.push(entry),
                Err(source) => {
                    bad = Some(EngineError::BadBatch {
                        tp: self.source.clone(),
                        offset: entries
                            .last()
                            .map_or(planner.position(), |e| e.next_offset()),
                        source,
                    });
                    break;
                }
            }
        }
        // Batches before a bad one are forwarded; the error comes after them.
        let (plans, corrupt) =
            planner.plan_fetch_until_error(entries, data.aborted_transactions.iter().copied());
        let failure = corrupt.or(bad);
        let plans = match &self.spec.tuning.coalesce {
            Some(rule) => coalesce(plans, rule, planner.config(), &self.source),
            None => plans,
        };
        for (next_offset, plan) in plans {
            match plan {
                Plan::Forward { batch, header } => {
                    let source_base = batch.header().base_offset;
                    let count = i64::from(batch.header().last_offset_delta) + 1;
                    self.stats.forwarded(batch.len(), count);
                    let acked = AckedBatch {
                        path: BatchPath::Forwarded,
                        bytes: batch.len(),
                        records: count,
                        max_timestamp: batch.header().max_timestamp,
                        produce_time: std::time::Duration::ZERO,
                    };
                    let ack = self
                        .producer
                        .send(&self.target, batch, header)
                        .await
                        .map_err(|e| self.produce_error(source_base, e))?;
                    let id = inflight
                        .push_pending(next_offset, Mapping::Contiguous { source_base, count });
                    metrics.sent();
                    acks.push_back(awaiting(id, source_base, data.records.clone(), acked, ack));
                }
                Plan::Reencode { reason, batches } => {
                    let last = batches.len().saturating_sub(1);
                    for (i, b) in batches.into_iter().enumerate() {
                        let first = b.source_offsets.first().copied().unwrap_or(next_offset);
                        let next = if i == last {
                            next_offset
                        } else {
                            b.source_offsets.last().map_or(next_offset, |o| o + 1)
                        };
                        let records = i64::try_from(b.source_offsets.len()).unwrap_or(i64::MAX);
                        let path = match reason {
                            SlowPathReason::Coalesced { batches } => {
                                let sources = if i == last { batches } else { 0 };
                                self.stats.coalesced(sources, b.batch.len(), records);
                                BatchPath::Coalesced(sources)
                            }
                            _ => {
                                self.stats.reencoded(b.batch.len(), records);
                                BatchPath::Reencoded
                            }
                        };
                        let header = *b.batch.header();
                        let acked = AckedBatch {
                            path,
                            bytes: b.batch.len(),
                            records,
                            max_timestamp: header.max_timestamp,
                            produce_time: std::time::Duration::ZERO,
                        };
                        let ack = self
                            .producer
                            .send(&self.target, b.batch, header)
                            .await
                            .map_err(|e| self.produce_error(first, e))?;
                        let id = inflight.push_pending(next, Mapping::Records(b.source_offsets));
                        metrics.sent();
                        acks.push_back(awaiting(id, first, data.records.clone(), acked, ack));
                    }
                }
                Plan::Skip(_) => {
                    self.stats.skipped();
                    metrics.skipped();
                    inflight.push_skip(next_offset);
                }
            }
        }
        inflight
            .advance(map)
            .map_err(|e| self.internal(e.to_string()))?;
        self.journal(map);
        self.publish(inflight);
        failure.map_or(Ok(()), Err)
    }

    fn produce_error(&self, offset: i64, e: ferry_client::ClientError) -> EngineError {
        EngineError::Produce {
            source_tp: self.source.clone(),
            target_tp: self.target.clone(),
            offset,
            error: Box::new(e),
        }
    }

    /// Partition-level fetch errors: a retention gap is reported and skipped
    /// (the records are gone at the source); anything else stops the partition.
    async fn partition_error(
        &self,
        code: KafkaCode,
        planner: &mut PartitionPlanner,
        inflight: &mut InFlight,
        map: &mut OffsetMap,
        metrics: &mut PartitionMetrics,
    ) -> Result<(), EngineError> {
        let position = planner.position();
        let stop = EngineError::SourcePartition {
            tp: self.source.clone(),
            offset: position,
            code,
        };
        if code != KafkaCode::OFFSET_OUT_OF_RANGE {
            return Err(stop);
        }
        let earliest = self
            .client
            .list_offsets(
                &self.source.topic,
                &[self.source.partition],
                OffsetSpec::Earliest,
            )
            .await
            .map_err(|e| EngineError::Cluster {
                flow: self.spec.name.clone(),
                cluster: self.spec.source_alias.clone(),
                source: Box::new(e),
            })?
            .first()
            .map_or(position, |(_, o)| *o);
        if position >= earliest {
            // Past the end: the source log was truncated under ferry's
            // position (unclean leader election). Do not guess: stop.
            return Err(stop);
        }
        let lost = earliest - position;
        tracing::warn!(
            flow = %self.spec.name,
            partition = %self.source,
            position,
            log_start = earliest,
            lost,
            "source retention deleted records before they were replicated; continuing at the log start"
        );
        self.stats.lost(lost);
        metrics.lost(lost);
        *planner = PartitionPlanner::new(self.source.clone(), earliest, *planner.config());
        inflight.push_skip(earliest);
        inflight
            .advance(map)
            .map_err(|e| self.internal(e.to_string()))?;
        self.journal(map);
        self.publish(inflight);
        self.fetcher.assign(self.source.clone(), earliest);
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The future that completes when the target acknowledges one sent batch.
fn awaiting(
    id: EntryId,
    source_offset: i64,
    fetched: Bytes,
    batch: AckedBatch,
    ack: ferry_client::AckFuture,
) -> AckFut {
    let sent_at = Instant::now();
    Box::pin(async move {
        AckResult {
            id,
            source_offset,
            fetched,
            batch,
            sent_at,
            result: ack.await,
        }
    })
}
