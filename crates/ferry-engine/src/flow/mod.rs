//! A flow: one source cluster mirrored into one target cluster.
//!
//! Tasks of a running flow:
//! - the **dispatcher** polls the source fetcher and hands each partition's
//!   data to that partition's task;
//! - one **partition task** per source partition plans each batch, sends it
//!   through the target's idempotent producer, and commits its position as
//!   acknowledgements come back, in order ([`crate::inflight`]);
//! - the **checkpointer** writes committed positions to the target's
//!   checkpoint topic every `checkpoint_interval`, and once more at shutdown;
//! - **discovery** lists source topics every `discovery_interval`, creates
//!   or grows target topics, and starts tasks for new partitions.
//!
//! Memory: every Fetch response frame is charged to one [`MemoryBudget`]
//! from before the request is sent until the last of its batches has been
//! acknowledged by the target (the lease rides on the frame's bytes), so a
//! slow target slows the source instead of filling memory. A partition
//! whose task falls behind is paused at the fetcher ([`queue`]), so one
//! stuck partition does not starve the others or block the dispatcher.
//!
//! Shutdown: stop taking new data, wait for every in-flight batch to be
//! acknowledged, write the final checkpoint. A restart then resumes exactly
//! where the target ends: nothing lost, nothing duplicated.

mod discovery;
mod identity;
pub mod machine;
mod partition;
mod queue;
mod resume;
pub mod scan;
mod start;
mod stats;
mod supervisor;
mod tasks;

use crate::metrics::Stage;
use ferry_client::util::lock;
use ferry_client::util::unix_millis;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_client::{
    Client, FetcherConfig, IdempotentProducer, OffsetSpec, ProducerConfig, SourceFetcher,
    TopicPartition,
};
use ferry_wire::budget::MemoryBudget;
use ferry_wire::codec::Compression;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::EngineError;
use crate::checkpoint::{CheckpointKey, CheckpointStore, CheckpointValue, TopicIds};
use crate::coalesce::Coalesce;
use crate::config::{Config, ConfigFilter, FlowConfig, StartPosition};
use crate::groups::GroupFilter;
use crate::inflight::Committed;
use crate::metrics::{FlowMetrics, Metrics};
use crate::offset_store::{OffsetMapStore, RunJournal};
use crate::topics::{TopicNaming, TopicPolicy};

pub use stats::FlowStats;

/// The wait before restart number `failures` (1 for the first) of a
/// partition or a flow that failed on a transient cause.
pub(crate) fn restart_backoff(failures: u32) -> Duration {
    supervisor::backoff(failures)
}

/// Knobs of one flow (see the config documentation for defaults).
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Bytes fetched but not yet acknowledged by the target, at most.
    pub memory_budget: usize,
    /// Check each source batch's CRC before forwarding it.
    pub verify_crc: bool,
    /// How often committed positions are written to the checkpoint topic.
    pub checkpoint_interval: Duration,
    /// Codec for re-encoded batches (`None`: the source batch's codec).
    pub reencode_compression: Option<Compression>,
    /// Merging of small batches (`None`: off).
    pub coalesce: Option<Coalesce>,
    pub fetcher: FetcherConfig,
    pub producer: ProducerConfig,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            memory_budget: 64 << 20,
            verify_crc: true,
            checkpoint_interval: Duration::from_secs(5),
            reencode_compression: None,
            coalesce: None,
            fetcher: FetcherConfig::default(),
            producer: ProducerConfig::default(),
        }
    }
}

/// Everything a flow needs to run, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    pub name: String,
    pub source_alias: String,
    pub target_alias: String,
    pub policy: TopicPolicy,
    pub start: StartPosition,
    pub discovery_interval: Duration,
    /// Which topic configs are copied to created target topics.
    pub configs: ConfigFilter,
    /// Replication factor of created target topics (-1: the broker default).
    pub replication_factor: i16,
    pub tuning: Tuning,
    /// Consumer-group offset sync: which groups, how often (`None`: off).
    pub groups: Option<(GroupFilter, Duration)>,
    /// Where the flow reports its metrics and readiness.
    pub metrics: FlowMetrics,
}

impl FlowSpec {
    /// The runtime spec of `flow` from a validated `config`. `naming`
    /// overrides the configured naming (the embedding hook).
    pub fn from_config(
        config: &Config,
        flow: &FlowConfig,
        naming: Option<Arc<dyn TopicNaming>>,
    ) -> Result<Self, EngineError> {
        let invalid = |detail: String| EngineError::Config {
            flow: flow.name.clone(),
            detail,
        };
        let same_cluster = match (config.cluster(&flow.source), config.cluster(&flow.target)) {
            (Some(s), Some(t)) => s.bootstrap_servers == t.bootstrap_servers,
            _ => return Err(invalid("names a cluster that is not configured".into())),
        };
        let mut policy = flow
            .topic_policy(same_cluster)
            .map_err(|e| invalid(e.to_string()))?;
        if let Some(naming) = naming {
            policy = policy.with_naming(naming);
        }
        let t = &flow.tuning;
        let fetch = t.fetch_options();
        Ok(Self {
            name: flow.name.clone(),
            source_alias: flow.source.clone(),
            target_alias: flow.target.clone(),
            policy,
            start: flow.start,
            discovery_interval: flow.discovery_interval,
            configs: flow.config_filter().map_err(|e| invalid(e.to_string()))?,
            replication_factor: flow.replication_factor,
            metrics: Metrics::default().flow(&flow.name),
            groups: if flow.groups.enabled {
                let filter = GroupFilter::new(&flow.groups).map_err(|e| invalid(e.to_string()))?;
                Some((filter, flow.groups.interval))
            } else {
                None
            },
            tuning: Tuning {
                memory_budget: t.memory_budget.as_usize(),
                verify_crc: t.verify_crc,
                checkpoint_interval: t.checkpoint_interval,
                reencode_compression: None,
                coalesce: flow.batching.coalesce_below.map(|below| Coalesce {
                    below: below.as_usize(),
                    max: flow.batching.coalesce_max.as_usize(),
                }),
                fetcher: FetcherConfig {
                    max_wait: fetch.max_wait,
                    max_bytes: fetch.max_bytes,
                    partition_max_bytes: fetch.partition_max_bytes,
                    // Fetched data is leased from the memory budget; the
                    // read-ahead limit must not promise more than that.
                    max_buffered_bytes: t.memory_budget.as_usize(),
                    ..FetcherConfig::default()
                },
                producer: ProducerConfig {
                    max_in_flight_per_partition: usize::try_from(t.max_in_flight_per_partition)
                        .unwrap_or(5),
                    ..ProducerConfig::default()
                },
            },
        })
    }
}

/// The flow's consumer-group offset sync (see [`crate::groups`]).
struct GroupSyncTask {
    spec: Arc<FlowSpec>,
    clusters: (Client, Client),
    filter: GroupFilter,
    interval: Duration,
    positions: Positions,
    journals: Journals,
}

impl GroupSyncTask {
    async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), EngineError> {
        let mut tick = tokio::time::interval(self.interval);
        let mut synced_once: std::collections::HashSet<String> = std::collections::HashSet::new();
        loop {
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                _ = tick.tick() => {}
            }
            let (source, target) = (&self.clusters.0, &self.clusters.1);
            let groups = match crate::groups::selected_groups(source, &self.filter).await {
                Ok(groups) => groups,
                Err(e) => {
                    self.spec.metrics.error(Stage::GroupSync, None);
                    tracing::warn!(flow = %self.spec.name, error = %e, "listing source groups failed; retrying next interval");
                    continue;
                }
            };
            let now = unix_millis();
            for group in groups {
                let translate = |tp: &TopicPartition, offset: i64| {
                    let target_topic = lock(&self.positions).get(tp).map(|(t, _)| t.clone())?;
                    let translated = lock(&self.journals).get(tp)?.translate(offset)?;
                    Some((TopicPartition::new(target_topic, tp.partition), translated))
                };
                let outcome = crate::groups::sync_group(
                    &self.spec.name,
                    &group,
                    (source, target),
                    translate,
                    now,
                )
                .await;
                match outcome {
                    Ok(crate::groups::GroupOutcome::Synced(commits)) => {
                        if !commits.is_empty() && synced_once.insert(group.clone()) {
                            tracing::info!(flow = %self.spec.name, group = %group, partitions = commits.len(), "consumer group offsets synced to the target");
                        }
                    }
                    Ok(crate::groups::GroupOutcome::Active { members }) => {
                        tracing::debug!(flow = %self.spec.name, group = %group, members, "group active on the target; not synced");
                    }
                    Err(e) => {
                        self.spec.metrics.error(Stage::GroupSync, None);
                        tracing::warn!(flow = %self.spec.name, group = %group, error = %e, "group offset sync failed; retrying next interval");
                    }
                }
            }
        }
    }
}

/// Partitions whose start positions are looked up at once.
const START_CONCURRENCY: usize = 32;

/// How often a lagging flow logs its catch-up progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(30);

/// Catch-up progress between two reports: records mirrored per second and
/// the time left at that rate.
#[derive(Debug)]
struct Progress {
    records: u64,
    at: std::time::Instant,
    caught_up: bool,
}

impl Progress {
    fn new(records: u64) -> Self {
        Self {
            records,
            at: std::time::Instant::now(),
            caught_up: true,
        }
    }

    /// A log line for the interval ending now, or `None` while caught up
    /// (one line when the flow catches up).
    fn report(&mut self, records: u64, lag: i64) -> Option<String> {
        let elapsed = self.at.elapsed().as_secs_f64();
        let done = records.saturating_sub(self.records);
        self.records = records;
        self.at = std::time::Instant::now();
        if lag <= 0 {
            let was_behind = !self.caught_up;
            self.caught_up = true;
            return was_behind.then(|| "caught up with the source".to_owned());
        }
        self.caught_up = false;
        #[allow(clippy::cast_precision_loss)] // rates: exactness does not matter
        let rate = if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        };
        #[allow(clippy::cast_precision_loss)]
        let left = if rate > 0.0 {
            let secs = lag as f64 / rate;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped first
            let whole = Duration::from_secs(secs.clamp(1.0, 1e9).round() as u64);
            format!("about {} left", crate::config::format_duration(whole))
        } else {
            "no progress in the last interval".to_owned()
        };
        Some(format!(
            "catching up: {lag} records behind, {rate:.0} records/s, {left}"
        ))
    }
}

/// Deletes offset-map chunks that the target's retention has passed: the
/// map stays as large as what the target still holds.
async fn expire_offset_map(
    flow: &str,
    target: &Client,
    map_store: &OffsetMapStore,
    journals: &Journals,
    positions: &Positions,
) -> Result<(), EngineError> {
    let mut by_target: HashMap<String, Vec<(TopicPartition, i32)>> = HashMap::new();
    for (tp, (target_topic, _)) in lock(positions).iter() {
        by_target
            .entry(target_topic.clone())
            .or_default()
            .push((tp.clone(), tp.partition));
    }
    let mut expired = Vec::new();
    for (topic, parts) in by_target {
        let ids: Vec<i32> = parts.iter().map(|(_, p)| *p).collect();
        let Ok(starts) = target
            .list_offsets(&topic, &ids, OffsetSpec::Earliest)
            .await
        else {
            continue; // retried at the next tick
        };
        let mut journals = lock(journals);
        for (p, start) in starts {
            let Some((tp, _)) = parts.iter().find(|(_, q)| *q == p) else {
                continue;
            };
            if let Some(j) = journals.get_mut(tp) {
                let gone = j.expire_below(start);
                if !gone.is_empty() {
                    expired.push((tp.clone(), gone));
                }
            }
        }
    }
    let now = unix_millis();
    map_store.delete(flow, &expired, now).await?;
    Ok(())
}

/// Each partition's offset-map runs not yet written, shared with the checkpointer.
type Journals = Arc<Mutex<HashMap<TopicPartition, RunJournal>>>;

/// Committed positions of every partition of a flow, shared with the checkpointer.
type Positions = Arc<Mutex<HashMap<TopicPartition, (String, Committed)>>>;

/// Where the dispatcher hands each partition's fetched data.
type Routes = Arc<Mutex<HashMap<TopicPartition, queue::QueueSender<SourceFetcher>>>>;

/// Sleeps until `at`; forever when there is none.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs `spec` until `shutdown` turns true, then drains and checkpoints.
/// Returns the flow's counters.
#[allow(clippy::too_many_lines)] // a select loop; each arm calls out
pub async fn run_flow(
    spec: FlowSpec,
    source: Client,
    target: Client,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Arc<FlowStats>, EngineError> {
    let spec = Arc::new(spec);
    let stats = Arc::new(FlowStats::default());
    let cluster = |alias: &str| {
        let flow = spec.name.clone();
        let alias = alias.to_owned();
        move |e| EngineError::Cluster {
            flow: flow.clone(),
            cluster: alias.clone(),
            source: Box::new(e),
        }
    };

    let store = CheckpointStore::new(target.clone());
    store.ensure_topic().await?;
    let checkpoints = store.load_checkpoints(&spec.name).await?;
    let map_store = OffsetMapStore::new(target.clone());
    map_store.ensure_topic().await?;
    let persisted_maps = map_store.load(&spec.name).await?;
    let journals: Journals = Arc::default();
    tracing::info!(flow = %spec.name, checkpoints = checkpoints.len(), "flow starting");

    let producer = IdempotentProducer::start(target.clone(), spec.tuning.producer.clone())
        .await
        .map_err(cluster(&spec.target_alias))?;
    let budget = MemoryBudget::new(spec.tuning.memory_budget);
    let fetcher = Arc::new(SourceFetcher::with_budget(
        source.clone(),
        spec.tuning.fetcher.clone(),
        budget.clone(),
    ));
    let positions: Positions = Arc::default();

    // The dispatcher: one poll loop feeding per-partition channels.
    let routes: Routes = Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = JoinSet::new();
    background.spawn(dispatch(
        Arc::clone(&fetcher),
        Arc::clone(&routes),
        stop_rx.clone(),
        spec.metrics.clone(),
        spec.name.clone(),
    ));

    let group_sync = match spec.groups.clone() {
        Some(groups) => match crate::groups::ensure_topic(&target).await {
            Ok(()) => Some(groups),
            Err(e) => {
                // Mirroring does not depend on it: go on without group sync.
                tracing::warn!(flow = %spec.name, error = %e, "consumer group offset sync is off: cannot use its topic on the target");
                None
            }
        },
        None => None,
    };
    if let Some((filter, interval)) = group_sync {
        let sync = GroupSyncTask {
            spec: Arc::clone(&spec),
            clusters: (source.clone(), target.clone()),
            filter,
            interval,
            positions: Arc::clone(&positions),
            journals: Arc::clone(&journals),
        };
        background.spawn(sync.run(stop_rx.clone()));
    }

    let mut discovery =
        discovery::Discovery::new(Arc::clone(&spec), source.clone(), target.clone());
    let mut partitions = tasks::PartitionTasks {
        spec: Arc::clone(&spec),
        source: source.clone(),
        target: target.clone(),
        producer: producer.clone(),
        fetcher: Arc::clone(&fetcher),
        positions: Arc::clone(&positions),
        journals: Arc::clone(&journals),
        routes: Arc::clone(&routes),
        stats: Arc::clone(&stats),
        stop: stop_rx.clone(),
        first_start: start::FirstStart::new(checkpoints.len()),
        checkpoints,
        ids: HashMap::new(),
        writes: supervisor::WriteHealth::default(),
        budget: budget.clone(),
        persisted_maps,
        supervisor: supervisor::Supervisor::default(),
        assignments: HashMap::new(),
        seen: std::collections::HashSet::new(),
        pending: 0,
        failed_topics: Vec::new(),
        discovered: false,
        tasks: JoinSet::new(),
        task_ids: HashMap::new(),
        shown: HashMap::new(),
    };
    let mut discovery_tick = tokio::time::interval(spec.discovery_interval);
    let mut checkpoint_tick = tokio::time::interval(spec.tuning.checkpoint_interval);
    checkpoint_tick.tick().await;
    let mut written: HashMap<TopicPartition, i64> = HashMap::new();
    let mut metrics_tick = tokio::time::interval(Duration::from_secs(1));
    let mut progress = Progress::new(spec.metrics.records_total());
    let mut progress_tick = tokio::time::interval(PROGRESS_INTERVAL);
    progress_tick.tick().await;
    let mut restarts_seen = spec.metrics.restart_requests();

    loop {
        let mut newly_started = false;
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
            _ = discovery_tick.tick() => {
                // A failed listing (a broker restarting, a timeout) is
                // retried at the next tick; running partitions carry on.
                match discovery.run().await {
                    Ok(round) => {
                        newly_started = partitions.discovered(round).await;
                        // Readiness as soon as the round's partitions run,
                        // not after the lookups below.
                        partitions.report();
                    }
                    Err(e) => {
                        spec.metrics.error(Stage::Discovery, None);
                        tracing::warn!(flow = %spec.name, error = %e, "topic discovery failed; retrying next interval");
                    }
                }
                // Lookups only (cancel-safe): a SIGTERM does not wait for
                // them, e.g. for ListOffsets retrying on a deleted target
                // topic, which kept the stop waiting seconds longer.
                let lookups = async {
                    partitions.refresh_source_ends().await;
                    if let Err(e) = expire_offset_map(&spec.name, &target, &map_store, &journals, &positions).await {
                        tracing::warn!(flow = %spec.name, error = %e, "offset map cleanup failed; retrying next interval");
                    }
                };
                tokio::select! {
                    () = lookups => {}
                    _ = shutdown.changed() => {
                        if *shutdown.borrow() {
                            break;
                        }
                    }
                }
            }
            () = sleep_until(partitions.supervisor.next_due()) => {
                newly_started = partitions.restart_due(tokio::time::Instant::now()).await;
            }
            _ = metrics_tick.tick() => {
                spec.metrics.set_memory(budget.used(), budget.capacity());
                spec.metrics.set_retries(Stage::Fetch, &fetcher.retries());
                spec.metrics.set_retries(Stage::Produce, &producer.retries());
                partitions.check_progress();
                let requested = spec.metrics.restart_requests();
                if requested != restarts_seen {
                    restarts_seen = requested;
                    partitions.restart_stopped();
                }
            }
            _ = progress_tick.tick() => {
                let lag = spec.metrics.lag_records();
                if let Some(line) = progress.report(spec.metrics.records_total(), lag) {
                    tracing::info!(flow = %spec.name, behind = lag, "{line}");
                }
            }
            _ = checkpoint_tick.tick() => {
                // Positions stay in memory; a failed write is retried next tick.
                let written_now = write_checkpoints((&store, &map_store, &journals), &spec.name, (&positions, &partitions.ids), &mut written).await;
                partitions.checkpoint_written(written_now);
            }
            Some(done) = partitions.tasks.join_next_with_id() => {
                // A partition task ends early only on an error.
                match done {
                    Ok((id, result)) => partitions.task_ended(id, Ok(result)),
                    Err(e) => partitions.task_ended(e.id(), Err(e)),
                }
            }
        }
        partitions.report();
        // Record where each new partition starts on both sides at once:
        // after a crash before the first periodic checkpoint, the restart
        // can still match the target's tail (see resume.rs).
        if newly_started {
            let written_now = write_checkpoints(
                (&store, &map_store, &journals),
                &spec.name,
                (&positions, &partitions.ids),
                &mut written,
            )
            .await;
            partitions.checkpoint_written(written_now);
        }
    }

    // Drain: tasks stop taking data and wait for their in-flight batches.
    spec.metrics.set_not_ready("stopping".to_owned());
    tracing::info!(flow = %spec.name, "draining in-flight batches");
    let _ = stop_tx.send(true);
    while let Some(done) = partitions.tasks.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::error!(flow = %spec.name, error = %e, "partition stopped");
        }
    }
    while background.join_next().await.is_some() {}
    write_checkpoints(
        (&store, &map_store, &journals),
        &spec.name,
        (&positions, &partitions.ids),
        &mut written,
    )
    .await?;
    // Every partition drained or gave up (then its batches are still in the
    // producer, retrying): positions are safe either way, so close is given
    // a short while, not the producer's delivery timeout.
    let close_wait = Duration::from_secs(2);
    match tokio::time::timeout(close_wait, producer.close()).await {
        Ok(closed) => closed.map_err(cluster(&spec.target_alias))?,
        Err(_) => tracing::warn!(
            flow = %spec.name,
            "the producer still had unacknowledged batches {close_wait:?} after the drain; stopping anyway"
        ),
    }
    tracing::info!(flow = %spec.name, "flow stopped; checkpoint written");
    Ok(stats)
}

/// The dispatcher: polls the fetcher and hands each partition's data to
/// its task's queue.
async fn dispatch(
    fetcher: Arc<SourceFetcher>,
    routes: Routes,
    mut stop: watch::Receiver<bool>,
    metrics: FlowMetrics,
    flow: String,
) -> Result<(), EngineError> {
    loop {
        let polled = tokio::select! {
            _ = stop.changed() => return Ok(()),
            polled = fetcher.poll() => polled,
        };
        let data = match polled {
            Ok(data) => data,
            Err(e) => {
                metrics.error(
                    Stage::Fetch,
                    e.kafka_code().and_then(ferry_client::KafkaCode::name),
                );
                tracing::warn!(flow = %flow, error = %e, "fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        for d in data {
            let route = lock(&routes).get(&d.tp).cloned();
            if let Some(route) = route {
                route.push(d);
            }
        }
    }
}

/// Writes the offset map's new runs, then the checkpoints. Positions are
/// read first: partition tasks journal their runs before they publish a
/// position, so the map written covers every checkpoint written after it.
/// Both carry the ids of the topics each partition runs on (`ids`), so a
/// re-created topic is never resumed from them.
async fn write_checkpoints(
    stores: (&CheckpointStore, &OffsetMapStore, &Journals),
    flow: &str,
    (positions, ids): (&Positions, &HashMap<TopicPartition, TopicIds>),
    written: &mut HashMap<TopicPartition, i64>,
) -> Result<(), EngineError> {
    let (store, map_store, journals) = stores;
    let now = unix_millis();
    let changed: Vec<(TopicPartition, CheckpointKey, CheckpointValue)> = lock(positions)
        .iter()
        .filter(|(tp, (_, c))| written.get(*tp) != Some(&c.source_offset))
        .map(|(tp, (target_topic, c))| {
            (
                tp.clone(),
                CheckpointKey {
                    flow: flow.to_owned(),
                    topic: tp.topic.to_string(),
                    partition: tp.partition,
                },
                CheckpointValue {
                    source_offset: c.source_offset,
                    target_topic: target_topic.clone(),
                    target_offset: c.target_offset,
                    time_ms: now,
                },
            )
        })
        .collect();
    let runs: Vec<_> = lock(journals)
        .iter()
        .map(|(tp, j)| (tp.clone(), j.pending()))
        .filter(|(_, w)| !w.is_empty())
        .collect();
    if !runs.is_empty() {
        let identified: Vec<_> = runs
            .iter()
            .map(|(tp, w)| {
                (
                    tp.clone(),
                    ids.get(tp).copied().unwrap_or_default(),
                    w.clone(),
                )
            })
            .collect();
        map_store.write_identified(flow, &identified).await?;
        let mut journals = lock(journals);
        for (tp, writes) in &runs {
            if let Some(j) = journals.get_mut(tp) {
                j.written(writes);
            }
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    let entries: Vec<_> = changed
        .iter()
        .map(|(tp, k, v)| {
            (
                k.clone(),
                v.clone(),
                ids.get(tp).copied().unwrap_or_default(),
            )
        })
        .collect();
    store.write_identified(&entries).await?;
    for (tp, _, v) in changed {
        written.insert(tp, v.source_offset);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reports_rate_and_time_left_then_one_caught_up_line() {
        let mut p = Progress::new(0);
        p.at -= Duration::from_secs(10);
        let line = p.report(1_000, 5_000).unwrap_or_default();
        assert!(
            line.starts_with("catching up: 5000 records behind, 100 records/s, about "),
            "{line}"
        );
        p.at -= Duration::from_secs(10);
        let line = p.report(1_000, 4_000).unwrap_or_default();
        assert!(line.contains("no progress"), "{line}");
        assert_eq!(
            p.report(2_000, 0).as_deref(),
            Some("caught up with the source")
        );
        assert_eq!(p.report(2_000, 0), None, "said once");
    }
}
