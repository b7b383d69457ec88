//! Prometheus metrics of running flows, and the readiness behind `/ready`.
//!
//! [`Metrics`] owns every metric family; an embedder registers them in its
//! own [`Registry`] with [`Metrics::register`]. Each flow takes a
//! [`FlowMetrics`] (handles with the flow's labels resolved once) and each
//! partition task a [`PartitionMetrics`], so the per-batch cost is a few
//! atomic adds, no label lookups.
//!
//! Per-partition series (offsets, lag, per-partition counters) can be
//! switched off for clusters with tens of thousands of partitions; the
//! per-flow series are always there.

use ferry_client::util::lock;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ferry_client::TopicPartition;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabels {
    flow: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    flow: String,
    /// `forwarded` (fast path), `reencoded` (slow path), `coalesced`
    /// (merged with its neighbours, `[flows.batching]`) or `skipped`.
    path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    flow: String,
    state: &'static str,
}

/// Where in a flow an error or retry happened: the `during` label of
/// `ferry_errors_total` and `ferry_retries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Fetching from the source.
    Fetch,
    /// Producing to the target.
    Produce,
    /// A partition's fetched data (an error code for one partition).
    Partition,
    /// Listing topics and setting up target topics.
    Discovery,
    /// Writing checkpoints and the offset map.
    Checkpoint,
    /// Consumer-group offset sync.
    GroupSync,
}

impl Stage {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Fetch => "fetch",
            Self::Produce => "produce",
            Self::Partition => "partition",
            Self::Discovery => "discovery",
            Self::Checkpoint => "checkpoint",
            Self::GroupSync => "group_sync",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    flow: String,
    /// Where: a [`Stage`] label.
    during: &'static str,
    /// The Kafka error name, or `other` for errors without a Kafka code.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    flow: String,
    /// `fetch` or `produce`.
    during: &'static str,
    /// The Kafka error name, or the kind of failure (`connect`, `timeout`, ...).
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    flow: String,
    topic: String,
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotRunningLabels {
    flow: String,
    topic: String,
    partition: i32,
    /// `retrying` (restarted after a backoff) or `stopped` (until restarted
    /// by an operator).
    state: &'static str,
    /// Why: a Kafka error name or a kind of failure.
    cause: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latencies from 1 ms to ~9 h (factor 2.5): replication latency during a
/// catch-up is the age of old data.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 18))
}

/// Every metric of the engine. Cheap to clone (clones share the series).
#[derive(Clone, Debug)]
pub struct Metrics {
    per_partition: bool,
    /// Each flow's readiness: `None` when ready, else why not.
    ready: Arc<Mutex<BTreeMap<String, Option<String>>>>,
    /// Operator requests to restart stopped partitions, counted.
    restart_requests: Arc<AtomicU64>,
    flow_ready: Family<FlowLabels, Gauge>,
    records: Family<FlowLabels, Counter>,
    bytes: Family<FlowLabels, Counter>,
    batches: Family<PathLabels, Counter>,
    offsets_lost: Family<FlowLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    retries: Family<RetryLabels, Counter>,
    produce_latency: HistogramFamily<FlowLabels>,
    replication_latency: HistogramFamily<FlowLabels>,
    inflight: Family<FlowLabels, Gauge>,
    memory_used: Family<FlowLabels, Gauge>,
    memory_budget: Family<FlowLabels, Gauge>,
    partitions: Family<StateLabels, Gauge>,
    topics: Family<FlowLabels, Gauge>,
    flow_lag: Family<FlowLabels, Gauge>,
    flow_lag_stable: Family<FlowLabels, Gauge>,
    not_running: Family<NotRunningLabels, Gauge>,
    high_watermark: Family<PartitionLabels, Gauge>,
    last_stable_offset: Family<PartitionLabels, Gauge>,
    mirrored_offset: Family<PartitionLabels, Gauge>,
    lag_records: Family<PartitionLabels, Gauge>,
    lag_stable_records: Family<PartitionLabels, Gauge>,
    lag_seconds: Family<PartitionLabels, FloatGauge>,
    partition_records: Family<PartitionLabels, Counter>,
    partition_bytes: Family<PartitionLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(true)
    }
}

impl Metrics {
    /// Metrics with or without the per-partition series.
    pub fn new(per_partition: bool) -> Self {
        Self {
            per_partition,
            ready: Arc::default(),
            restart_requests: Arc::default(),
            flow_ready: Family::default(),
            records: Family::default(),
            bytes: Family::default(),
            batches: Family::default(),
            offsets_lost: Family::default(),
            errors: Family::default(),
            retries: Family::default(),
            produce_latency: Family::new_with_constructor(latency_histogram),
            replication_latency: Family::new_with_constructor(latency_histogram),
            inflight: Family::default(),
            memory_used: Family::default(),
            memory_budget: Family::default(),
            partitions: Family::default(),
            topics: Family::default(),
            flow_lag: Family::default(),
            flow_lag_stable: Family::default(),
            not_running: Family::default(),
            high_watermark: Family::default(),
            last_stable_offset: Family::default(),
            mirrored_offset: Family::default(),
            lag_records: Family::default(),
            lag_stable_records: Family::default(),
            lag_seconds: Family::default(),
            partition_records: Family::default(),
            partition_bytes: Family::default(),
        }
    }

    /// Adds every family to `registry` (names get the registry's prefix, if
    /// any; `ferry run` uses `ferry`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "flow_ready",
            "1 once the flow is connected to both clusters and every partition it found is running",
            self.flow_ready.clone(),
        );
        registry.register(
            "records",
            "Records written to the target (control and aborted records excluded)",
            self.records.clone(),
        );
        registry.register_with_unit(
            "mirrored",
            "Record batch bytes written to the target",
            Unit::Bytes,
            self.bytes.clone(),
        );
        registry.register(
            "batches",
            "Source batches by path: forwarded as they are, reencoded (slow path), coalesced (merged with others), or skipped",
            self.batches.clone(),
        );
        registry.register(
            "source_offsets_lost",
            "Source offsets deleted by retention before ferry read them",
            self.offsets_lost.clone(),
        );
        registry.register(
            "errors",
            "Errors by where they happened and Kafka error code",
            self.errors.clone(),
        );
        registry.register(
            "retries",
            "Failures the client retried by itself, by fetch/produce and cause",
            self.retries.clone(),
        );
        registry.register_with_unit(
            "produce_latency",
            "Time from handing a batch to the producer to its acknowledgement",
            Unit::Seconds,
            self.produce_latency.clone(),
        );
        registry.register_with_unit(
            "replication_latency",
            "Time from the batch's last source timestamp to its acknowledgement by the target",
            Unit::Seconds,
            self.replication_latency.clone(),
        );
        registry.register(
            "inflight_batches",
            "Batches sent to the target and not yet acknowledged",
            self.inflight.clone(),
        );
        registry.register_with_unit(
            "memory_used",
            "Fetched bytes held until the target acknowledges them",
            Unit::Bytes,
            self.memory_used.clone(),
        );
        registry.register_with_unit(
            "memory_budget",
            "The configured memory budget",
            Unit::Bytes,
            self.memory_budget.clone(),
        );
        registry.register(
            "partitions",
            "Source partitions by state (running, retrying, stopped)",
            self.partitions.clone(),
        );
        registry.register("topics", "Source topics mirrored", self.topics.clone());
        registry.register(
            "flow_lag_records",
            "Source offsets not yet mirrored, up to the high watermark (records in open transactions included), summed over the flow's partitions; 0 means nothing is left to copy",
            self.flow_lag.clone(),
        );
        registry.register(
            "flow_lag_stable_records",
            "Source offsets not yet mirrored, up to the last stable offset (what can be copied now), summed over the flow's partitions",
            self.flow_lag_stable.clone(),
        );
        registry.register(
            "partition_not_running",
            "1 for a partition that is not running: retrying (restarted after a backoff) or stopped (until restarted), with the cause",
            self.not_running.clone(),
        );
        if self.per_partition {
            registry.register(
                "source_high_watermark",
                "The source partition's high watermark at the last fetch",
                self.high_watermark.clone(),
            );
            registry.register(
                "source_last_stable_offset",
                "The source partition's last stable offset at the last fetch",
                self.last_stable_offset.clone(),
            );
            registry.register(
                "mirrored_offset",
                "The next source offset to mirror: everything before it is acknowledged by the target",
                self.mirrored_offset.clone(),
            );
            registry.register(
                "lag_records",
                "Source offsets not yet mirrored (high watermark minus mirrored offset)",
                self.lag_records.clone(),
            );
            registry.register(
                "lag_stable_records",
                "Source offsets not yet mirrored up to the last stable offset (what can be copied now)",
                self.lag_stable_records.clone(),
            );
            registry.register_with_unit(
                "lag",
                "Age of the last mirrored batch while the partition lags; 0 when caught up",
                Unit::Seconds,
                self.lag_seconds.clone(),
            );
            registry.register(
                "partition_records",
                "Records written to the target, per partition",
                self.partition_records.clone(),
            );
            registry.register_with_unit(
                "partition_mirrored",
                "Record batch bytes written to the target, per partition",
                Unit::Bytes,
                self.partition_bytes.clone(),
            );
        }
    }

    /// Handles for flow `flow`; the flow counts as not ready until it says so.
    pub fn flow(&self, flow: &str) -> FlowMetrics {
        let labels = FlowLabels {
            flow: flow.to_owned(),
        };
        self.set_ready(flow, false);
        let path = |path| PathLabels {
            flow: flow.to_owned(),
            path,
        };
        FlowMetrics {
            metrics: self.clone(),
            name: flow.to_owned(),
            partitions: Arc::default(),
            retries_seen: Arc::default(),
            records: self.records.get_or_create_owned(&labels),
            bytes: self.bytes.get_or_create_owned(&labels),
            forwarded: self.batches.get_or_create_owned(&path("forwarded")),
            reencoded: self.batches.get_or_create_owned(&path("reencoded")),
            coalesced: self.batches.get_or_create_owned(&path("coalesced")),
            skipped: self.batches.get_or_create_owned(&path("skipped")),
            offsets_lost: self.offsets_lost.get_or_create_owned(&labels),
            produce_latency: self.produce_latency.get_or_create_owned(&labels),
            replication_latency: self.replication_latency.get_or_create_owned(&labels),
            inflight: self.inflight.get_or_create_owned(&labels),
            memory_used: self.memory_used.get_or_create_owned(&labels),
            memory_budget: self.memory_budget.get_or_create_owned(&labels),
            topics: self.topics.get_or_create_owned(&labels),
            lag: self.flow_lag.get_or_create_owned(&labels),
            lag_stable: self.flow_lag_stable.get_or_create_owned(&labels),
            retrying: self.partitions.get_or_create_owned(&StateLabels {
                flow: flow.to_owned(),
                state: "retrying",
            }),
            running: self.partitions.get_or_create_owned(&StateLabels {
                flow: flow.to_owned(),
                state: "running",
            }),
            stopped: self.partitions.get_or_create_owned(&StateLabels {
                flow: flow.to_owned(),
                state: "stopped",
            }),
        }
    }

    /// Whether every flow known to these metrics is ready (and there is one).
    pub fn is_ready(&self) -> bool {
        let ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        !ready.is_empty() && ready.values().all(Option::is_none)
    }

    /// Flows that are not ready: each flow's name and why.
    pub fn not_ready(&self) -> Vec<String> {
        let ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        ready
            .iter()
            .filter_map(|(f, why)| why.as_ref().map(|why| format!("{f} ({why})")))
            .collect()
    }

    /// Asks every flow to restart its stopped partitions (they start from
    /// their committed positions). Flows act on it within a second.
    pub fn request_restart(&self) {
        self.restart_requests.fetch_add(1, Ordering::Relaxed);
    }

    fn set_readiness(&self, flow: &str, why_not: Option<String>) {
        let ready = why_not.is_none();
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(flow.to_owned(), why_not);
        self.flow_ready
            .get_or_create(&FlowLabels {
                flow: flow.to_owned(),
            })
            .set(i64::from(ready));
    }

    fn set_ready(&self, flow: &str, ready: bool) {
        self.set_readiness(flow, (!ready).then(|| "starting".to_owned()));
    }
}

/// One flow's handles.
#[derive(Clone, Debug)]
pub struct FlowMetrics {
    metrics: Metrics,
    name: String,
    /// What each partition is known to be at, shared by its handles: it
    /// outlives a task that ended, so a stopped partition's lag stays
    /// counted until the partition is [forgotten](Self::forget_partition),
    /// and a restarted task's handle takes it over.
    partitions: Arc<Mutex<HashMap<TopicPartition, Arc<Mutex<Known>>>>>,
    /// Retry counts already added to the counters, by (during, cause).
    retries_seen: Arc<Mutex<BTreeMap<(&'static str, &'static str), u64>>>,
    records: Counter,
    bytes: Counter,
    forwarded: Counter,
    reencoded: Counter,
    coalesced: Counter,
    skipped: Counter,
    offsets_lost: Counter,
    produce_latency: Histogram,
    replication_latency: Histogram,
    inflight: Gauge,
    memory_used: Gauge,
    memory_budget: Gauge,
    topics: Gauge,
    /// Sum of the partitions' lag in records, behind the high watermark.
    lag: Gauge,
    /// The same behind the last stable offset.
    lag_stable: Gauge,
    running: Gauge,
    retrying: Gauge,
    stopped: Gauge,
}

fn count(n: impl TryInto<u64>) -> u64 {
    n.try_into().unwrap_or(0)
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl FlowMetrics {
    /// Handles for one partition of this flow (handles of the same
    /// partition share what they know).
    pub fn partition(&self, tp: &TopicPartition) -> PartitionMetrics {
        let known = Arc::clone(lock(&self.partitions).entry(tp.clone()).or_default());
        PartitionMetrics {
            flow: self.clone(),
            series: self.series(tp),
            known,
        }
    }

    /// The source's ends for `tp` as looked up by the flow (ListOffsets),
    /// for a partition whose fetches return nothing (no task runs it, or
    /// everything past its position is in an open transaction). Ends only
    /// move forward here: a fetch may already have seen newer ones.
    pub fn source_ends(
        &self,
        tp: &TopicPartition,
        high_watermark: i64,
        last_stable: i64,
        now_ms: i64,
    ) {
        let Some(known) = lock(&self.partitions).get(tp).cloned() else {
            return;
        };
        let mut k = lock(&known);
        k.high_watermark = k.high_watermark.max(high_watermark);
        k.last_stable = k.last_stable.max(last_stable);
        let series = self.series(tp);
        if let Some(s) = &series {
            s.high_watermark.set(k.high_watermark);
            s.last_stable_offset.set(k.last_stable);
        }
        update_lag(&mut k, self, series.as_ref(), now_ms);
    }

    fn series(&self, tp: &TopicPartition) -> Option<PartitionSeries> {
        self.metrics.per_partition.then(|| {
            let labels = PartitionLabels {
                flow: self.name.clone(),
                topic: tp.topic.to_string(),
                partition: tp.partition,
            };
            let m = &self.metrics;
            PartitionSeries {
                high_watermark: m.high_watermark.get_or_create_owned(&labels),
                last_stable_offset: m.last_stable_offset.get_or_create_owned(&labels),
                mirrored_offset: m.mirrored_offset.get_or_create_owned(&labels),
                lag_records: m.lag_records.get_or_create_owned(&labels),
                lag_stable_records: m.lag_stable_records.get_or_create_owned(&labels),
                lag_seconds: m.lag_seconds.get_or_create_owned(&labels),
                records: m.partition_records.get_or_create_owned(&labels),
                bytes: m.partition_bytes.get_or_create_owned(&labels),
            }
        })
    }

    /// Forgets a partition that no longer exists at the source: its lag
    /// stops counting.
    pub fn forget_partition(&self, tp: &TopicPartition) {
        if let Some(known) = lock(&self.partitions).remove(tp) {
            let k = lock(&known);
            self.lag.dec_by(k.lag);
            self.lag_stable.dec_by(k.lag_stable);
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.metrics.set_ready(&self.name, ready);
    }

    /// Not ready, and why (shown by `/ready`).
    pub fn set_not_ready(&self, why: String) {
        self.metrics.set_readiness(&self.name, Some(why));
    }

    /// How many restarts operators asked for so far ([`Metrics::request_restart`]).
    pub fn restart_requests(&self) -> u64 {
        self.metrics.restart_requests.load(Ordering::Relaxed)
    }

    /// Marks `tp` as not running (`state` `retrying` or `stopped`, with its
    /// `cause`), or running again (`None`; clears the earlier series).
    pub fn set_not_running(
        &self,
        tp: &TopicPartition,
        before: Option<(&'static str, &str)>,
        now: Option<(&'static str, &str)>,
    ) {
        let labels = |(state, cause): (&'static str, &str)| NotRunningLabels {
            flow: self.name.clone(),
            topic: tp.topic.to_string(),
            partition: tp.partition,
            state,
            cause: cause.to_owned(),
        };
        if let Some(before) = before {
            self.metrics
                .not_running
                .get_or_create(&labels(before))
                .set(0);
        }
        if let Some(now) = now {
            self.metrics.not_running.get_or_create(&labels(now)).set(1);
        }
    }

    /// Source offsets not yet mirrored up to the high watermark, over every
    /// partition of the flow: 0 means nothing is left to copy.
    pub fn lag_records(&self) -> i64 {
        self.lag.get()
    }

    /// Source offsets not yet mirrored up to the last stable offset.
    pub fn lag_stable_records(&self) -> i64 {
        self.lag_stable.get()
    }

    /// Records written to the target so far.
    pub fn records_total(&self) -> u64 {
        self.records.get()
    }

    pub fn set_memory(&self, used: usize, budget: usize) {
        self.memory_used.set(as_i64(used));
        self.memory_budget.set(as_i64(budget));
    }

    pub fn set_partitions(&self, running: usize, retrying: usize, stopped: usize, topics: usize) {
        self.running.set(as_i64(running));
        self.retrying.set(as_i64(retrying));
        self.stopped.set(as_i64(stopped));
        self.topics.set(as_i64(topics));
    }

    /// Brings `ferry_retries_total` up to the client's running `counts` for
    /// `stage` ([`Stage::Fetch`] or [`Stage::Produce`]).
    pub fn set_retries(&self, stage: Stage, counts: &BTreeMap<&'static str, u64>) {
        let during = stage.label();
        let mut seen = self
            .retries_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (&cause, &n) in counts {
            let before = seen.insert((during, cause), n).unwrap_or(0);
            if n > before {
                self.metrics
                    .retries
                    .get_or_create(&RetryLabels {
                        flow: self.name.clone(),
                        during,
                        cause,
                    })
                    .inc_by(n - before);
            }
        }
    }

    /// An error during `stage`, by Kafka error name or `other`.
    pub fn error(&self, stage: Stage, code: Option<&str>) {
        self.metrics
            .errors
            .get_or_create(&ErrorLabels {
                flow: self.name.clone(),
                during: stage.label(),
                code: code.unwrap_or("other").to_owned(),
            })
            .inc();
    }
}

#[derive(Clone, Debug)]
struct PartitionSeries {
    high_watermark: Gauge,
    last_stable_offset: Gauge,
    mirrored_offset: Gauge,
    lag_records: Gauge,
    lag_stable_records: Gauge,
    lag_seconds: FloatGauge,
    records: Counter,
    bytes: Counter,
}

/// What is known of one partition (kept while no task runs it).
#[derive(Debug, Clone, Copy)]
struct Known {
    high_watermark: i64,
    last_stable: i64,
    mirrored: i64,
    /// Max timestamp (ms) of the last acknowledged batch.
    last_timestamp: Option<i64>,
    /// This partition's share of the flow's lag gauges.
    lag: i64,
    lag_stable: i64,
}

impl Default for Known {
    fn default() -> Self {
        Self {
            high_watermark: -1,
            last_stable: -1,
            mirrored: -1,
            last_timestamp: None,
            lag: 0,
            lag_stable: 0,
        }
    }
}

/// One partition task's handles and what it last saw.
///
/// Dropping it (the task ended) keeps the partition's lag counted: a
/// partition that stopped still has records nobody copies.
#[derive(Debug)]
pub struct PartitionMetrics {
    flow: FlowMetrics,
    series: Option<PartitionSeries>,
    known: Arc<Mutex<Known>>,
}

impl PartitionMetrics {
    /// The source's offsets as of the latest fetch (or offset lookup).
    pub fn fetched(&mut self, high_watermark: i64, last_stable_offset: i64, now_ms: i64) {
        // read_committed fetches report the LSO; otherwise it is -1.
        let stable = if last_stable_offset >= 0 {
            last_stable_offset
        } else {
            high_watermark
        };
        let mut k = lock(&self.known);
        if stable >= 0 {
            k.last_stable = stable;
        }
        if high_watermark >= 0 {
            k.high_watermark = high_watermark;
        }
        if let Some(s) = &self.series {
            s.high_watermark.set(high_watermark);
            s.last_stable_offset.set(last_stable_offset);
        }
        update_lag(&mut k, &self.flow, self.series.as_ref(), now_ms);
    }

    pub fn sent(&self) {
        self.flow.inflight.inc();
    }

    pub fn skipped(&self) {
        self.flow.skipped.inc();
    }

    pub fn lost(&self, offsets: i64) {
        self.flow.offsets_lost.inc_by(count(offsets));
    }

    /// A batch acknowledged by the target: its path, its size and records,
    /// its newest source timestamp, and how long the produce took.
    pub fn acknowledged(&mut self, ack: &AckedBatch, now_ms: i64) {
        let f = &self.flow;
        f.inflight.dec();
        match ack.path {
            BatchPath::Forwarded => f.forwarded.inc(),
            BatchPath::Reencoded => f.reencoded.inc(),
            BatchPath::Coalesced(sources) => f.coalesced.inc_by(count(sources)),
        };
        f.records.inc_by(count(ack.records));
        f.bytes.inc_by(count(ack.bytes));
        f.produce_latency.observe(ack.produce_time.as_secs_f64());
        if ack.max_timestamp > 0 {
            #[allow(clippy::cast_precision_loss)] // ms as f64: exact below 2^53
            let age = (now_ms - ack.max_timestamp).max(0) as f64 / 1000.0;
            f.replication_latency.observe(age);
            lock(&self.known).last_timestamp = Some(ack.max_timestamp);
        }
        if let Some(s) = &self.series {
            s.records.inc_by(count(ack.records));
            s.bytes.inc_by(count(ack.bytes));
        }
    }

    /// A batch that failed (its in-flight slot is free again).
    pub fn failed(&self) {
        self.flow.inflight.dec();
    }

    /// Everything before `offset` is on the target.
    pub fn mirrored(&mut self, offset: i64, now_ms: i64) {
        let mut k = lock(&self.known);
        k.mirrored = offset;
        if let Some(s) = &self.series {
            s.mirrored_offset.set(offset);
        }
        update_lag(&mut k, &self.flow, self.series.as_ref(), now_ms);
    }
}

/// Brings a partition's share of the flow's lag gauges (and its own
/// series) up to what `k` says.
fn update_lag(k: &mut Known, flow: &FlowMetrics, series: Option<&PartitionSeries>, now_ms: i64) {
    if k.last_stable < 0 || k.mirrored < 0 {
        return;
    }
    let lag_stable = (k.last_stable - k.mirrored).max(0);
    // Behind the high watermark: records of open transactions too (a
    // read_committed fetch cannot copy them yet, but once committed
    // they must be). Never below the stable lag.
    let lag = (k.high_watermark - k.mirrored).max(lag_stable);
    flow.lag.inc_by(lag - k.lag);
    flow.lag_stable.inc_by(lag_stable - k.lag_stable);
    k.lag = lag;
    k.lag_stable = lag_stable;
    let Some(s) = series else {
        return;
    };
    s.lag_records.set(lag);
    s.lag_stable_records.set(lag_stable);
    let age = match k.last_timestamp {
        #[allow(clippy::cast_precision_loss)] // ms as f64: exact below 2^53
        Some(t) if lag > 0 => (now_ms - t).max(0) as f64 / 1000.0,
        _ => 0.0,
    };
    s.lag_seconds.set(age);
}

/// How a produced batch came about, for `ferry_batches_total{path}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchPath {
    /// A source batch as it was (fast path).
    Forwarded,
    /// Re-encoded from one source batch (slow path).
    Reencoded,
    /// Part of a merge of this many source batches: counted once, on the
    /// merge's last produced batch (0 on the others, if it was split).
    Coalesced(usize),
}

/// What [`PartitionMetrics::acknowledged`] records about one batch.
#[derive(Debug, Clone, Copy)]
pub struct AckedBatch {
    pub path: BatchPath,
    pub bytes: usize,
    pub records: i64,
    pub max_timestamp: i64,
    pub produce_time: Duration,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use prometheus_client::encoding::text::encode;

    fn scrape(m: &Metrics) -> String {
        let mut registry = Registry::with_prefix("ferry");
        m.register(&mut registry);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn counts_lag_and_readiness_show_up_in_the_exposition() {
        let m = Metrics::new(true);
        let flow = m.flow("east-west");
        assert!(!m.is_ready());
        let mut p = flow.partition(&TopicPartition::new("orders", 3));
        p.fetched(120, 100, 10_000);
        p.sent();
        p.acknowledged(
            &AckedBatch {
                path: BatchPath::Forwarded,
                bytes: 4096,
                records: 40,
                max_timestamp: 9_000,
                produce_time: Duration::from_millis(3),
            },
            10_000,
        );
        p.mirrored(40, 10_000);
        // 80 behind the high watermark, 60 of them committed (behind the LSO).
        assert_eq!(flow.lag_records(), 80);
        assert_eq!(flow.lag_stable_records(), 60);
        flow.set_ready(true);
        assert!(m.is_ready());
        let text = scrape(&m);
        for line in [
            "ferry_records_total{flow=\"east-west\"} 40",
            "ferry_mirrored_bytes_total{flow=\"east-west\"} 4096",
            "ferry_batches_total{flow=\"east-west\",path=\"forwarded\"} 1",
            "ferry_inflight_batches{flow=\"east-west\"} 0",
            "ferry_flow_ready{flow=\"east-west\"} 1",
            "ferry_lag_records{flow=\"east-west\",topic=\"orders\",partition=\"3\"} 80",
            "ferry_lag_stable_records{flow=\"east-west\",topic=\"orders\",partition=\"3\"} 60",
            "ferry_flow_lag_records{flow=\"east-west\"} 80",
            "ferry_flow_lag_stable_records{flow=\"east-west\"} 60",
            "ferry_lag_seconds{flow=\"east-west\",topic=\"orders\",partition=\"3\"} 1.0",
            "ferry_mirrored_offset{flow=\"east-west\",topic=\"orders\",partition=\"3\"} 40",
            "ferry_source_last_stable_offset{flow=\"east-west\",topic=\"orders\",partition=\"3\"} 100",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        // Caught up: no lag, in records or seconds.
        p.fetched(100, 100, 20_000);
        p.mirrored(100, 20_000);
        let text = scrape(&m);
        assert!(
            text.contains(
                "ferry_lag_records{flow=\"east-west\",topic=\"orders\",partition=\"3\"} 0"
            )
        );
        assert!(text.contains(
            "ferry_lag_seconds{flow=\"east-west\",topic=\"orders\",partition=\"3\"} 0.0"
        ));
    }

    #[test]
    fn records_behind_an_open_transaction_count_as_lag() {
        // Issue 14 item 12: a hanging transaction holds the LSO at 100
        // while 10,000 committed records follow it. Copied up to the LSO,
        // the flow still has everything past it to copy.
        let m = Metrics::new(false);
        let flow = m.flow("f");
        let mut p = flow.partition(&TopicPartition::new("t", 0));
        p.fetched(10_100, 100, 0);
        p.mirrored(100, 0);
        assert_eq!(flow.lag_stable_records(), 0, "nothing readable left");
        assert_eq!(flow.lag_records(), 10_000, "but not caught up");
        // A partition whose fetches return nothing at all (its next record
        // is in the open transaction) learns the ends from the flow's
        // lookups; they never move back.
        let tp = TopicPartition::new("t", 1);
        let mut q = flow.partition(&tp);
        q.mirrored(0, 0);
        flow.source_ends(&tp, 105, 0, 0);
        assert_eq!(flow.lag_records(), 10_105);
        flow.source_ends(&tp, 100, 0, 0);
        assert_eq!(
            flow.lag_records(),
            10_105,
            "an older lookup changes nothing"
        );
    }

    #[test]
    fn a_stopped_partition_keeps_its_lag_and_a_restart_takes_it_over() {
        // Issue 14 item 1: dropping the handle (the task ended) used to
        // remove the partition's lag from the flow's.
        let m = Metrics::new(true);
        let flow = m.flow("f");
        let tp = TopicPartition::new("t", 0);
        let mut p = flow.partition(&tp);
        p.fetched(500, 500, 0);
        p.mirrored(200, 0);
        drop(p);
        assert_eq!(flow.lag_records(), 300, "still counted while stopped");
        // The source grows while nobody copies it (the flow looks it up).
        flow.source_ends(&tp, 700, 700, 0);
        assert_eq!(flow.lag_records(), 500);
        // A restart takes the share over: no double counting.
        let mut restarted = flow.partition(&tp);
        restarted.mirrored(700, 0);
        assert_eq!(flow.lag_records(), 0);
        restarted.fetched(710, 710, 0);
        drop(restarted);
        flow.forget_partition(&tp);
        assert_eq!(flow.lag_records(), 0, "a deleted topic stops counting");
    }

    #[test]
    fn readiness_says_why_not() {
        let m = Metrics::new(false);
        let a = m.flow("a");
        let b = m.flow("b");
        a.set_ready(true);
        b.set_not_ready("1 partition(s) stopped".into());
        assert!(!m.is_ready());
        assert_eq!(m.not_ready(), vec!["b (1 partition(s) stopped)".to_owned()]);
        b.set_ready(true);
        assert!(m.is_ready());
        assert_eq!(a.restart_requests(), 0);
        m.request_restart();
        assert_eq!(b.restart_requests(), 1);
    }

    #[test]
    fn per_partition_series_can_be_switched_off() {
        let m = Metrics::new(false);
        let flow = m.flow("f");
        let mut p = flow.partition(&TopicPartition::new("t", 0));
        p.fetched(10, 10, 0);
        p.mirrored(5, 0);
        let text = scrape(&m);
        assert!(!text.contains("partition=\""), "{text}");
        assert!(text.contains("ferry_records_total{flow=\"f\"} 0"));
    }

    #[test]
    fn retries_follow_the_clients_running_counts() {
        let m = Metrics::new(true);
        let flow = m.flow("f");
        let mut counts = BTreeMap::from([("NOT_LEADER_OR_FOLLOWER", 2)]);
        flow.set_retries(Stage::Produce, &counts);
        counts.insert("NOT_LEADER_OR_FOLLOWER", 5);
        counts.insert("timeout", 1);
        flow.set_retries(Stage::Produce, &counts);
        flow.set_retries(Stage::Produce, &counts);
        let text = scrape(&m);
        assert!(text.contains(
            "ferry_retries_total{flow=\"f\",during=\"produce\",cause=\"NOT_LEADER_OR_FOLLOWER\"} 5"
        ), "{text}");
        assert!(
            text.contains("ferry_retries_total{flow=\"f\",during=\"produce\",cause=\"timeout\"} 1")
        );
    }

    #[test]
    fn errors_are_counted_by_code() {
        let m = Metrics::new(true);
        let flow = m.flow("f");
        flow.error(Stage::Produce, Some("NOT_LEADER_OR_FOLLOWER"));
        flow.error(Stage::Produce, Some("NOT_LEADER_OR_FOLLOWER"));
        flow.error(Stage::Discovery, None);
        let text = scrape(&m);
        assert!(text.contains(
            "ferry_errors_total{flow=\"f\",during=\"produce\",code=\"NOT_LEADER_OR_FOLLOWER\"} 2"
        ));
        assert!(
            text.contains("ferry_errors_total{flow=\"f\",during=\"discovery\",code=\"other\"} 1")
        );
    }
}
