//! One source partition's task: moves fetched data, acknowledgements and
//! time into its [`PartitionMachine`] and sends what it hands out. Every
//! decision is the machine's; this loop only waits.

use crate::metrics::Stage;
use ferry_client::util::unix_millis;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use ferry_client::{
    Ack, Client, ClientError, IdempotentProducer, KafkaCode, OffsetSpec, PartitionData,
    SourceFetcher, StopReason, TopicPartition,
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
use crate::offset_map::OffsetMap;
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
    /// Where the records the resume found on the target came from, exactly
    /// (recorded over the anchor's stretch).
    pub tail: Option<OffsetMap>,
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

    async fn pipeline(mut self, mut rx: QueueReceiver<F>) -> Result<(), EngineError> {
        let mut machine = self.machine()?;
        self.journal(&mut machine);
        let mut acks: FuturesOrdered<AckResultFuture> = FuturesOrdered::new();
        let mut metrics = self.spec.metrics.partition(&self.source);
        // The start position counts as mirrored up to here: otherwise the
        // lag shows 0 until the first acknowledgement, and "wait for lag 0"
        // (the failover runbook) could pass before anything was copied.
        metrics.mirrored(self.position, unix_millis());
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
                    self.acknowledged(done, &mut machine, &mut metrics)?;
                    if draining {
                        drain_deadline = Some(tokio::time::Instant::now() + DRAIN_STALL);
                    }
                }
                () = sleep_until(drain_deadline), if draining => {
                    tracing::warn!(
                        partition = %self.source,
                        target = %self.target,
                        unacknowledged = acks.len(),
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
                    if let Some(e) = self.fetched(&data, &mut machine, &mut metrics).await? {
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

    fn machine(&self) -> Result<PartitionMachine, EngineError> {
        let config = PlanConfig {
            verify_crc: self.spec.tuning.verify_crc,
            max_batch_bytes: self.max_batch_bytes,
            reencode_compression: self.spec.tuning.reencode_compression,
            ..PlanConfig::default()
        };
        let machine = PartitionMachine::new(
            self.source.clone(),
            self.position,
            self.target_position,
            config,
            self.spec.tuning.coalesce,
            self.anchor,
        )?;
        match &self.tail {
            Some(tail) => machine.with_known_tail(tail),
            None => Ok(machine),
        }
    }

    /// Settles one acknowledgement: the position moves on, or (the target
    /// refused the batch for good) the partition stops.
    fn acknowledged(
        &self,
        done: AckResult,
        machine: &mut PartitionMachine,
        metrics: &mut PartitionMetrics,
    ) -> Result<(), EngineError> {
        let ack = match done.result {
            Ok(ack) => ack,
            Err(e) => {
                metrics.failed();
                let code = e.kafka_code().and_then(KafkaCode::name);
                self.spec.metrics.error(Stage::Produce, code);
                return Err(self.produce_error(done.source_offset, e));
            }
        };
        let now = unix_millis();
        let produce_time = done.sent_at.elapsed();
        metrics.acknowledged(
            &AckedBatch {
                produce_time,
                ..done.batch
            },
            now,
        );
        let committed = machine.on_ack(done.id, ack.base_offset)?;
        self.journal(machine);
        metrics.mirrored(committed.source_offset, now);
        self.publish(machine);
        Ok(())
    }

    /// Plans one fetch into the machine. `Ok(Some(error))`: a bad source
    /// batch; the batches before it are still sent, then the partition stops.
    async fn fetched(
        &self,
        data: &PartitionData,
        machine: &mut PartitionMachine,
        metrics: &mut PartitionMetrics,
    ) -> Result<Option<EngineError>, EngineError> {
        if let Some(code) = data.error {
            self.spec.metrics.error(Stage::Partition, code.name());
            // Checked before the retention path: a diverged log whose new
            // leader starts past the position would look like retention.
            if let Some(reason) = self.fetcher.stop_reason(&self.source) {
                return Err(self.source_stopped(reason, machine));
            }
        }
        let Some(outcome) = machine.on_fetched(data)? else {
            self.retention_gap(machine, metrics).await?;
            return Ok(None);
        };
        if outcome.stale {
            return Ok(None);
        }
        metrics.fetched(data.high_watermark, data.last_stable_offset, unix_millis());
        for _ in 0..outcome.skipped {
            self.stats.skipped();
            metrics.skipped();
        }
        self.journal(machine);
        self.publish(machine);
        Ok(outcome.failure)
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
        match journals.get_mut(&self.source) {
            Some(journal) => machine.journal_into(journal),
            // The flow inserts each partition's journal before starting it.
            None => machine.journal_into(journals.entry(self.source.clone()).or_default()),
        }
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

    /// The fetcher stopped the partition; for a diverged source log, names
    /// where the target holds records mirrored from the lost stretch.
    fn source_stopped(&self, reason: StopReason, machine: &PartitionMachine) -> EngineError {
        let target_from = match reason {
            StopReason::Diverged(d) if d.diverged_from < machine.committed().source_offset => {
                lock(&self.journals)
                    .get(&self.source)
                    .and_then(|j| j.map().translate(d.diverged_from))
            }
            _ => None,
        };
        EngineError::SourceStopped {
            tp: self.source.clone(),
            reason,
            target_from,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use ferry_client::PartitionData;
    use ferry_wire::builder::{BatchSpec, build_batch};
    use ferry_wire::codec::Compression;
    use ferry_wire::record::Record;

    use super::*;
    use crate::config::Config;
    use crate::flow::queue::{Pausable, partition_queue};

    /// A target whose producer window holds `window` batches and that never
    /// acknowledges any: the next send waits for ever (a deleted target
    /// topic until the delivery timeout).
    struct StuckTarget {
        window: usize,
        sent: AtomicUsize,
    }

    impl Target for StuckTarget {
        fn send(&self, _: &TopicPartition, _: RecordBatch, _: BatchHeader) -> SendFuture<'_> {
            if self.sent.load(Ordering::SeqCst) < self.window {
                self.sent.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Ok(Box::pin(std::future::pending()) as AckFuture) })
            } else {
                Box::pin(std::future::pending())
            }
        }
    }

    /// Records assigns and unassigns; `.1` is what it says on stop_reason.
    #[derive(Default)]
    struct Fetcher(Mutex<Vec<String>>, Mutex<Option<StopReason>>);

    impl Pausable for Fetcher {
        fn pause(&self, _: &TopicPartition) {}
        fn resume(&self, _: &TopicPartition) {}
    }

    impl FetchControl for Fetcher {
        fn assign(&self, _: TopicPartition, offset: i64) {
            self.0.lock().unwrap().push(format!("assign {offset}"));
        }
        fn unassign(&self, _: &TopicPartition) {
            self.0.lock().unwrap().push("unassign".into());
        }
        fn stop_reason(&self, _: &TopicPartition) -> Option<StopReason> {
            *self.1.lock().unwrap()
        }
    }

    struct NoSource;

    impl LogStart for NoSource {
        fn log_start<'a>(
            &'a self,
            _: &'a TopicPartition,
        ) -> Pin<Box<dyn Future<Output = Result<Option<i64>, ClientError>> + Send + 'a>> {
            Box::pin(async { Ok(Some(0)) })
        }
    }

    fn spec() -> FlowSpec {
        let text = "[clusters.a]\nbootstrap_servers = [\"a:9092\"]\n\
                    [clusters.b]\nbootstrap_servers = [\"b:9092\"]\n\
                    [[flows]]\nsource = \"a\"\ntarget = \"b\"\n";
        let config = Config::from_toml_str(text, |_| None).unwrap();
        FlowSpec::from_config(&config, &config.flows[0], None).unwrap()
    }

    /// `n` one-record batches from offset 0.
    fn fetched(n: i64) -> PartitionData {
        let mut records = Vec::new();
        for o in 0..n {
            let r = Record {
                offset: o,
                timestamp: 1_000,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: vec![],
            };
            let spec = BatchSpec {
                base_offset: o,
                ..BatchSpec::producer(Compression::None)
            };
            records.extend_from_slice(&build_batch(&spec, &[r]).unwrap());
        }
        PartitionData {
            tp: TopicPartition::new("t", 0),
            fetch_offset: 0,
            records: Bytes::from(records),
            high_watermark: n,
            last_stable_offset: n,
            log_start_offset: 0,
            aborted_transactions: Vec::new(),
            error: None,
        }
    }

    /// A target that acknowledges each batch `delay` after it was sent,
    /// at consecutive offsets.
    struct SlowTarget {
        delay: Duration,
        next: AtomicUsize,
    }

    impl Target for SlowTarget {
        fn send(&self, _: &TopicPartition, _: RecordBatch, _: BatchHeader) -> SendFuture<'_> {
            let base = i64::try_from(self.next.fetch_add(1, Ordering::SeqCst)).unwrap();
            let delay = self.delay;
            Box::pin(async move {
                let ack: AckFuture = Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    Ok(Ack {
                        base_offset: base,
                        log_append_time_ms: -1,
                        record_count: 1,
                    })
                });
                Ok(ack)
            })
        }
    }

    fn task<P: Target>(
        producer: P,
        fetcher: &Arc<Fetcher>,
        positions: &Positions,
        stop: watch::Receiver<bool>,
    ) -> PartitionTask<Fetcher, P, NoSource> {
        PartitionTask {
            spec: Arc::new(spec()),
            client: NoSource,
            source: TopicPartition::new("t", 0),
            target: TopicPartition::new("t-copy", 0),
            max_batch_bytes: 1 << 20,
            position: 0,
            target_position: 0,
            producer,
            fetcher: Arc::clone(fetcher),
            positions: Arc::clone(positions),
            journals: super::super::Journals::default(),
            anchor: None,
            tail: None,
            stats: Arc::new(FlowStats::default()),
            stop,
        }
    }

    /// A stop drains what was sent while acknowledgements keep coming, and
    /// publishes the position after the last one.
    #[tokio::test(start_paused = true)]
    async fn a_stop_drains_the_batches_sent_while_acknowledgements_come() {
        let tp = TopicPartition::new("t", 0);
        let fetcher = Arc::new(Fetcher::default());
        let (tx, rx) = partition_queue(tp.clone(), Arc::clone(&fetcher));
        tx.push(fetched(30));
        let (stop_tx, stop) = watch::channel(false);
        let positions = Positions::default();
        let target = SlowTarget {
            delay: Duration::from_secs(3),
            next: AtomicUsize::new(0),
        };
        let running = tokio::spawn(task(target, &fetcher, &positions, stop).run(rx));
        tokio::time::sleep(Duration::from_millis(10)).await;
        stop_tx.send(true).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), running).await;
        assert!(ended.unwrap().unwrap().is_ok());
        let (_, committed) = lock(&positions).get(&tp).cloned().unwrap();
        // Every batch sent before the stop (all 30: this stand-in has no
        // window) was acknowledged and committed; nothing after the stop.
        assert_eq!(committed.source_offset, 30);
        assert_eq!(committed.target_offset, Some(30));
    }

    /// Issue 14 A.4 (engine review 13): a stop while the partition waits
    /// for room in a full producer window ends within the drain bound.
    /// (The task used to await `producer.send` inside the data arm, so the
    /// stop and drain arms could not run until the delivery timeout.)
    #[tokio::test(start_paused = true)]
    async fn a_stop_is_bounded_while_the_producer_window_is_full() {
        let tp = TopicPartition::new("t", 0);
        let fetcher = Arc::new(Fetcher::default());
        let (tx, rx) = partition_queue(tp.clone(), Arc::clone(&fetcher));
        tx.push(fetched(30));
        let (stop_tx, stop) = watch::channel(false);
        let positions = Positions::default();
        let target = StuckTarget {
            window: 10,
            sent: AtomicUsize::new(0),
        };
        let running = tokio::spawn(task(target, &fetcher, &positions, stop).run(rx));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!running.is_finished(), "blocked on the full window");
        let stopped_at = tokio::time::Instant::now();
        stop_tx.send(true).unwrap();
        let ended = tokio::time::timeout(DRAIN_STALL + Duration::from_secs(1), running).await;
        assert!(ended.is_ok(), "the stop waited past the drain bound");
        assert!(ended.unwrap().unwrap().is_ok());
        assert!(
            stopped_at.elapsed() >= DRAIN_STALL,
            "waited for the acknowledgements"
        );
        let (_, committed) = lock(&positions).get(&tp).cloned().unwrap();
        assert_eq!(
            committed.source_offset, 0,
            "nothing acknowledged, nothing committed"
        );
        assert_eq!(*fetcher.0.lock().unwrap(), ["unassign"]);
    }

    /// Issue 14 item 8: a source log that diverged under mirrored records
    /// stops the partition (never the retention path, which would skip
    /// ahead), naming the target offset from which the target holds
    /// records the source no longer has.
    #[tokio::test(start_paused = true)]
    async fn a_diverged_source_stops_the_partition_naming_the_target_offsets() {
        let tp = TopicPartition::new("t", 0);
        let fetcher = Arc::new(Fetcher::default());
        let (tx, rx) = partition_queue(tp.clone(), Arc::clone(&fetcher));
        tx.push(fetched(30));
        let (_stop_tx, stop) = watch::channel(false);
        let positions = Positions::default();
        let target = SlowTarget {
            delay: Duration::from_millis(1),
            next: AtomicUsize::new(0),
        };
        let running = tokio::spawn(task(target, &fetcher, &positions, stop).run(rx));
        tokio::time::sleep(Duration::from_secs(1)).await;
        *fetcher.1.lock().unwrap() = Some(StopReason::Diverged(ferry_client::LogDivergence {
            position: 30,
            diverged_from: 20,
            exact: true,
            last_fetched_epoch: 0,
            leader_epoch: 0,
            leader_end_offset: 20,
        }));
        let mut gone = fetched(0);
        gone.fetch_offset = 30;
        gone.error = Some(KafkaCode::OFFSET_OUT_OF_RANGE);
        tx.push(gone);
        let ended = tokio::time::timeout(Duration::from_secs(5), running).await;
        let error = ended.unwrap().unwrap().unwrap_err();
        assert!(
            matches!(
                error,
                EngineError::SourceStopped {
                    target_from: Some(20),
                    ..
                }
            ),
            "{error}"
        );
        let text = error.to_string();
        assert!(text.contains("from offset 20 on"), "{text}");
        assert!(
            !fetcher
                .0
                .lock()
                .unwrap()
                .iter()
                .any(|a| a.starts_with("assign")),
            "not skipped ahead like a retention gap"
        );
    }
}
