//! The flow's partition tasks: starting them (from discovery), restarting
//! those that ended on a transient cause ([`super::supervisor`]), keeping
//! the lag of those not running visible, and saying whether the flow is
//! ready.

use crate::metrics::Stage;
use ferry_wire::budget::MemoryBudget;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ferry_client::{
    Client, IdempotentProducer, Isolation, OffsetSpec, SourceFetcher, TopicPartition,
};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::discovery::{Assignment, Round};
use super::identity;
use super::start::{FirstStart, StartFrom, anchor, start_from};
use super::supervisor::{self, Log, State, Supervisor};
use super::{FlowSpec, FlowStats, Journals, Positions, Routes, START_CONCURRENCY, lock, queue};
use crate::EngineError;
use crate::checkpoint::{Checkpoint, TopicIds};
use crate::config::StartPosition;
use crate::inflight::Committed;
use crate::offset_map::OffsetMap;
use crate::offset_store::{LoadedMap, RunJournal};

/// What a flow needs to start partition tasks, and the tasks it started.
pub(super) struct PartitionTasks {
    pub spec: Arc<FlowSpec>,
    pub source: Client,
    pub target: Client,
    pub producer: IdempotentProducer,
    pub fetcher: Arc<SourceFetcher>,
    pub positions: Positions,
    pub journals: Journals,
    pub routes: Routes,
    pub stats: Arc<FlowStats>,
    pub stop: watch::Receiver<bool>,
    /// Checkpoints loaded at start.
    pub checkpoints: HashMap<TopicPartition, Checkpoint>,
    /// The topic ids each started partition runs on (written with its
    /// checkpoints and map chunks; a restart compares them).
    pub ids: HashMap<TopicPartition, TopicIds>,
    /// Whether checkpoint writes succeed (part of readiness).
    pub writes: supervisor::WriteHealth,
    /// The flow's memory budget (resume scans lease from it too).
    pub budget: MemoryBudget,
    /// Offset maps loaded at start.
    pub persisted_maps: HashMap<TopicPartition, LoadedMap>,
    pub first_start: FirstStart,
    pub supervisor: Supervisor,
    /// Each partition's latest assignment (what a restart uses).
    pub assignments: HashMap<TopicPartition, Assignment>,
    /// Partitions the last discovery found (set up or not).
    pub seen: HashSet<TopicPartition>,
    /// Partitions found without a position yet (retried next discovery).
    pub pending: usize,
    /// Topics whose target could not be set up in the last round, and why.
    pub failed_topics: Vec<(String, String)>,
    /// Whether a discovery round has succeeded yet.
    pub discovered: bool,
    pub tasks: JoinSet<Result<(), EngineError>>,
    pub task_ids: HashMap<tokio::task::Id, TopicPartition>,
    /// What `ferry_partition_not_running` shows for each partition.
    pub shown: HashMap<TopicPartition, (&'static str, String)>,
}

impl PartitionTasks {
    /// Takes in a discovery round: starts every partition not started yet.
    /// Returns whether any started.
    pub(super) async fn discovered(&mut self, round: Round) -> bool {
        self.first_start.discovered(round.partitions());
        self.seen = round.partitions().collect();
        self.discovered = true;
        self.failed_topics = round
            .failed
            .iter()
            .map(|f| (f.topic.clone(), f.error.to_string()))
            .collect();
        let new: Vec<Assignment> = round
            .assignments
            .into_iter()
            .inspect(|a| {
                self.assignments.insert(a.source.clone(), a.clone());
            })
            .filter(|a| !self.supervisor.is_known(&a.source))
            .collect();
        self.pending = 0;
        self.start(new).await
    }

    /// Restarts the partitions whose backoff has passed; forgets those the
    /// source no longer has.
    pub(super) async fn restart_due(&mut self, now: Instant) -> bool {
        let mut due = Vec::new();
        for tp in self.supervisor.due(now) {
            match self.assignments.get(&tp) {
                Some(a) if self.seen.contains(&tp) => due.push(a.clone()),
                _ => {
                    tracing::info!(flow = %self.spec.name, partition = %tp, "partition no longer at the source; not restarting it");
                    self.forget(&tp);
                }
            }
        }
        if due.is_empty() {
            return false;
        }
        self.start(due).await
    }

    fn forget(&mut self, tp: &TopicPartition) {
        self.supervisor.forget(tp);
        self.spec.metrics.forget_partition(tp);
        self.show(tp, None);
    }

    /// Starts `assignments` (looked up concurrently: one after the other,
    /// each waits behind the fetcher's long poll on the shared connection).
    async fn start(&mut self, assignments: Vec<Assignment>) -> bool {
        for a in &assignments {
            // A partition whose batch failed stays stopped in the producer
            // until told to go on (a no-op for any other partition); its
            // task starts again from the committed position, through the
            // resume tail check, so nothing the target got is sent twice.
            self.producer.restart_partition(&a.source);
        }
        let lookups: Vec<_> = assignments
            .into_iter()
            .map(|a| {
                let fresh = self.check_identity(&a);
                let known = self.known_position(&a.source);
                let from = if fresh.is_some() {
                    StartFrom::Lookup(StartPosition::Earliest)
                } else {
                    start_from(
                        known,
                        self.spec.start,
                        self.first_start.applies_to(&a.source),
                    )
                };
                // The exact map so far (a restart's journal is newer than
                // what was persisted): resume uses it to find records the
                // target lost.
                let map = lock(&self.journals)
                    .get(&a.source)
                    .map(|j| j.map().clone())
                    .or_else(|| self.persisted_maps.get(&a.source).map(|l| l.map.clone()));
                let restart = self.supervisor.is_known(&a.source);
                (a, known, from, map, fresh, restart)
            })
            .collect();
        let found: Vec<_> = futures_util::stream::iter(lookups)
            .map(|(mut assignment, known, from, map, fresh, restart)| {
                let (spec, source, target) = (&self.spec, &self.source, &self.target);
                let budget = &self.budget;
                let empty_target_only = fresh.as_ref().and_then(|f| f.empty_target_only.clone());
                async move {
                    if restart {
                        // The target topic's limit may have changed (the
                        // partition may have ended on MESSAGE_TOO_LARGE
                        // after it was lowered): batches are split to the
                        // limit it has now (issue 14 item 14).
                        if let Ok(bytes) = super::discovery::target_max_message_bytes(
                            target,
                            &assignment.target.topic,
                        )
                        .await
                        {
                            assignment.max_batch_bytes = bytes;
                        }
                    }
                    let position = start_position(
                        spec,
                        source,
                        target,
                        &assignment,
                        from,
                        map.as_ref(),
                        budget,
                    )
                    .await;
                    let position = match (position, empty_target_only) {
                        (Ok(_), Some(why)) if !target_empty(target, &assignment.target).await => {
                            Ok(Err(why))
                        }
                        (position, _) => position.map(Ok),
                    };
                    (assignment, known, position)
                }
            })
            .buffer_unordered(START_CONCURRENCY)
            .collect()
            .await;
        let mut started = false;
        for (assignment, known, position) in found {
            match position {
                Ok(Ok((position, target_end, tail))) => {
                    self.spawn(assignment, known, (position, target_end), tail);
                    started = true;
                }
                Ok(Err(why)) => {
                    let refusal = identity::refusal(&why, &assignment.target.to_string());
                    let cause = supervisor::Cause {
                        severity: supervisor::Severity::Permanent,
                        label: "source_topic_recreated".to_owned(),
                        detail: refusal,
                    };
                    // Known to the supervisor from here on: its lag stays
                    // counted and the flow is not ready.
                    self.ended(&assignment.source, cause);
                }
                Err(e) => {
                    self.spec.metrics.error(
                        Stage::Discovery,
                        e.kafka_code().and_then(ferry_client::KafkaCode::name),
                    );
                    let tp = assignment.source.clone();
                    if self.supervisor.is_known(&tp) {
                        // A restart that failed: back off further.
                        let error = EngineError::Cluster {
                            flow: self.spec.name.clone(),
                            cluster: self.spec.source_alias.clone(),
                            source: Box::new(e),
                        };
                        self.ended(&tp, supervisor::classify(&error));
                    } else {
                        // Not started yet: tried again at the next discovery.
                        self.pending += 1;
                        tracing::warn!(flow = %self.spec.name, partition = %tp, error = %e, "partition not started; retrying next interval");
                    }
                }
            }
        }
        started
    }

    /// Compares the topics `a` now names with those its known position was
    /// taken on ([`identity`]). When they differ, forgets that position,
    /// its checkpoint and its offset map, so the partition starts as a
    /// fresh mirror, and says why (loudly: its offsets start over).
    fn check_identity(&mut self, a: &Assignment) -> Option<FreshStart> {
        let tp = &a.source;
        let verdict = identity::verdict(
            self.ids.get(tp).copied(),
            self.checkpoints.get(tp),
            a.ids,
            &a.target.topic,
        );
        let fresh = match verdict {
            identity::Verdict::Resume => return None,
            identity::Verdict::Fresh { why } => FreshStart {
                why,
                empty_target_only: None,
            },
            identity::Verdict::SourceRecreated { why } => FreshStart {
                why: why.clone(),
                empty_target_only: Some(why),
            },
        };
        tracing::warn!(
            flow = %self.spec.name,
            partition = %tp,
            target = %a.target,
            reason = %fresh.why,
            "the known position belongs to another topic: mirroring this partition as a fresh mirror from the source's log start (its offsets start over)"
        );
        self.checkpoints.remove(tp);
        self.persisted_maps.remove(tp);
        lock(&self.positions).remove(tp);
        lock(&self.journals).remove(tp);
        self.ids.remove(tp);
        Some(fresh)
    }

    /// Where `tp` is known to be: its committed position if a task ran it
    /// in this process (newer than any checkpoint), else its checkpoint.
    fn known_position(&self, tp: &TopicPartition) -> Option<(i64, Option<i64>)> {
        if let Some((_, c)) = lock(&self.positions).get(tp) {
            return Some((c.source_offset, c.target_offset));
        }
        self.checkpoints
            .get(tp)
            .map(|c| (c.value.source_offset, c.value.target_offset))
    }

    fn spawn(
        &mut self,
        assignment: Assignment,
        known: Option<(i64, Option<i64>)>,
        (position, target_end): (i64, i64),
        tail: Option<OffsetMap>,
    ) {
        let tp = assignment.source.clone();
        self.ids.insert(tp.clone(), assignment.ids);
        let ids = assignment.ids;
        let persisted = self.persisted_maps.get(&tp);
        let map_end = {
            let mut journals = lock(&self.journals);
            // A restart keeps the journal of the task before it (it holds
            // runs not written yet); a first start takes the persisted map.
            let journal = journals.entry(tp.clone()).or_insert_with(|| {
                // Chunks written for other topic ids (a re-created topic)
                // are never mixed into this one's map.
                persisted
                    .cloned()
                    .map(|l| l.for_topics(ids))
                    .map(|l| RunJournal::with_map(l.map, l.chunks))
                    .unwrap_or_default()
            });
            journal.map().end()
        };
        let anchor = anchor(map_end, known, position, target_end);
        let (tx, rx) = queue::partition_queue(tp.clone(), Arc::clone(&self.fetcher));
        lock(&self.routes).insert(tp.clone(), tx);
        self.fetcher.assign(tp.clone(), position);
        lock(&self.positions).insert(
            tp.clone(),
            (
                assignment.target.topic.to_string(),
                Committed {
                    source_offset: position,
                    target_offset: Some(target_end),
                },
            ),
        );
        let restarted = self.supervisor.is_known(&tp);
        self.supervisor.started(&tp, position);
        self.show(&tp, None);
        tracing::info!(
            flow = %self.spec.name,
            partition = %tp,
            target = %assignment.target,
            position,
            target_end,
            "{}",
            if restarted { "partition restarted" } else { "partition started" }
        );
        let task = super::partition::PartitionTask {
            spec: Arc::clone(&self.spec),
            client: self.source.clone(),
            source: assignment.source,
            target: assignment.target,
            max_batch_bytes: assignment.max_batch_bytes,
            position,
            target_position: target_end,
            producer: self.producer.clone(),
            fetcher: Arc::clone(&self.fetcher),
            positions: Arc::clone(&self.positions),
            journals: Arc::clone(&self.journals),
            anchor,
            tail,
            stats: Arc::clone(&self.stats),
            stop: self.stop.clone(),
        };
        let handle = self.tasks.spawn(task.run(rx));
        self.task_ids.insert(handle.id(), tp);
    }

    /// A partition task ended (`Ok(())` only when the flow stops).
    pub(super) fn task_ended(
        &mut self,
        id: tokio::task::Id,
        result: Result<Result<(), EngineError>, tokio::task::JoinError>,
    ) {
        let Some(tp) = self.task_ids.remove(&id) else {
            return;
        };
        let cause = match result {
            Ok(Ok(())) => return,
            Ok(Err(e)) => {
                if matches!(
                    e,
                    EngineError::SourcePartition {
                        code: ferry_client::KafkaCode::UNKNOWN_TOPIC_ID,
                        ..
                    }
                ) {
                    // The source topic was re-created: its restart waits
                    // for the next discovery, whose topic ids tell the new
                    // topic from the old ([`Self::check_identity`]).
                    self.assignments.remove(&tp);
                }
                supervisor::classify(&e)
            }
            Err(e) => supervisor::panicked(e.to_string()),
        };
        self.fetcher.unassign(&tp);
        self.ended(&tp, cause);
    }

    fn ended(&mut self, tp: &TopicPartition, cause: supervisor::Cause) {
        let log = self.supervisor.ended(tp, cause.clone(), Instant::now());
        let name = &self.spec.name;
        match log {
            Log::Retrying { after } => tracing::warn!(
                flow = %name, partition = %tp, cause = %cause.label, error = %cause.detail,
                "partition stopped by a transient error; restarting it from its committed position after {after:?}, with backoff (logged again when the cause changes)"
            ),
            Log::Stopped => tracing::error!(
                flow = %name, partition = %tp, cause = %cause.label, error = %cause.detail,
                "partition stopped; it stays stopped (its lag stays counted and the flow is not ready) until restarted (POST /partitions/restart on the metrics endpoint, or a restart of ferry)"
            ),
            Log::Quiet | Log::Recovered { .. } => tracing::debug!(
                flow = %name, partition = %tp, error = %cause.detail, "partition failed again; retrying with backoff"
            ),
        }
        let state = match self.supervisor.states().find(|(t, _)| *t == tp) {
            Some((_, State::Stopped { .. })) => "stopped",
            _ => "retrying",
        };
        self.show(tp, Some((state, cause.label)));
    }

    /// Brings `ferry_partition_not_running` for `tp` up to date.
    fn show(&mut self, tp: &TopicPartition, now: Option<(&'static str, String)>) {
        let before = self.shown.remove(tp);
        if before.is_none() && now.is_none() {
            return;
        }
        self.spec.metrics.set_not_running(
            tp,
            before.as_ref().map(|(s, c)| (*s, c.as_str())),
            now.as_ref().map(|(s, c)| (*s, c.as_str())),
        );
        if let Some(now) = now {
            self.shown.insert(tp.clone(), now);
        }
    }

    /// Partitions that failed and now move again: healthy, logged once.
    pub(super) fn check_progress(&mut self) {
        let committed: Vec<(TopicPartition, i64)> = lock(&self.positions)
            .iter()
            .map(|(tp, (_, c))| (tp.clone(), c.source_offset))
            .collect();
        for (tp, offset) in committed {
            if let Log::Recovered { failures } = self.supervisor.progressed(&tp, offset) {
                tracing::info!(flow = %self.spec.name, partition = %tp, failures, "partition mirroring again after its failures");
            }
        }
    }

    /// An operator asked for stopped partitions to be restarted.
    pub(super) fn restart_stopped(&mut self) {
        let n = self.supervisor.restart_stopped(Instant::now());
        if n > 0 {
            tracing::info!(flow = %self.spec.name, partitions = n, "restarting stopped partitions on request");
        }
    }

    /// Looks up the source's ends (high watermark and last stable offset)
    /// of every partition started, so the lag stays true where fetches
    /// return nothing: a partition no task runs, and one whose next
    /// records are in an open transaction (a read_committed fetch returns
    /// nothing and the fetcher hands the task nothing).
    pub(super) async fn refresh_source_ends(&self) {
        let mut by_topic: HashMap<&str, Vec<i32>> = HashMap::new();
        for (tp, _) in self.supervisor.states() {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let now = ferry_client::util::unix_millis();
        // Topics looked up concurrently, as partition starts are.
        let by_topic: Vec<(String, Vec<i32>)> = by_topic
            .into_iter()
            .map(|(t, p)| (t.to_owned(), p))
            .collect();
        let source = self.source.clone();
        let found: Vec<_> = futures_util::stream::iter(by_topic)
            .map(move |(topic, partitions)| topic_ends(source.clone(), topic, partitions))
            .buffer_unordered(START_CONCURRENCY)
            .collect()
            .await;
        for (topic, hw, lso) in found {
            let (Ok(hw), Ok(lso)) = (hw, lso) else {
                continue; // retried next round
            };
            for (p, high_watermark) in hw {
                let stable = lso
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map_or(high_watermark, |(_, o)| *o);
                self.spec.metrics.source_ends(
                    &TopicPartition::new(topic.as_str(), p),
                    high_watermark,
                    stable,
                    now,
                );
            }
        }
    }

    /// Why the flow is not ready, or `None` when it is: connected (a
    /// discovery ran), every partition found has a position and runs, and
    /// every topic's target is set up.
    pub(super) fn not_ready(&self) -> Option<String> {
        if !self.discovered {
            return Some("discovering topics".to_owned());
        }
        let mut why = Vec::new();
        if let Some((topic, error)) = self.failed_topics.first() {
            why.push(format!(
                "{} topic(s) cannot be set up on the target, e.g. {topic}: {error}",
                self.failed_topics.len()
            ));
        }
        if self.pending > 0 {
            why.push(format!(
                "{} partition(s) without a position yet",
                self.pending
            ));
        }
        if let Some(partitions) = self.supervisor.not_ready_reason() {
            why.push(partitions);
        }
        if let Some(writes) = self.writes.not_ready_reason() {
            why.push(writes);
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// Takes in the outcome of a checkpoint write: logged once per change,
    /// and the flow is not ready while writes fail.
    pub(super) fn checkpoint_written(&mut self, outcome: Result<(), EngineError>) {
        if outcome.is_err() {
            self.spec.metrics.error(Stage::Checkpoint, None);
        }
        let error = outcome.as_ref().err().map(ToString::to_string);
        match self.writes.record(outcome.map_err(|e| e.to_string())) {
            supervisor::WriteLog::Failing => tracing::warn!(
                flow = %self.spec.name,
                error = %error.unwrap_or_default(),
                "checkpoint write failed; retrying every checkpoint interval (the flow is not ready until one succeeds)"
            ),
            supervisor::WriteLog::Recovered { failures } => tracing::info!(
                flow = %self.spec.name,
                failures,
                "checkpoint writes succeed again"
            ),
            supervisor::WriteLog::Quiet | supervisor::WriteLog::Fine => {}
        }
    }

    /// Updates the partition gauges and readiness.
    pub(super) fn report(&self) {
        let (running, retrying, stopped) = self.supervisor.counts();
        let topics = self
            .supervisor
            .states()
            .map(|(tp, _)| &tp.topic)
            .collect::<HashSet<_>>()
            .len();
        self.spec
            .metrics
            .set_partitions(running, retrying, stopped, topics);
        match self.not_ready() {
            None => self.spec.metrics.set_ready(true),
            Some(why) => self.spec.metrics.set_not_ready(why),
        }
    }
}

/// The high watermarks and last stable offsets of `partitions` of `topic`.
async fn topic_ends(
    source: Client,
    topic: String,
    partitions: Vec<i32>,
) -> (
    String,
    ferry_client::Result<Vec<(i32, i64)>>,
    ferry_client::Result<Vec<(i32, i64)>>,
) {
    let hw = source
        .list_offsets_with(
            &topic,
            &partitions,
            OffsetSpec::Latest,
            Isolation::ReadUncommitted,
        )
        .await;
    let lso = source
        .list_offsets_with(
            &topic,
            &partitions,
            OffsetSpec::Latest,
            Isolation::ReadCommitted,
        )
        .await;
    (topic, hw, lso)
}

/// A start that forgets the known position ([`PartitionTasks::check_identity`]).
struct FreshStart {
    why: String,
    /// Set when the source topic was re-created: the fresh mirror may only
    /// go into an empty target partition (else the partition stops, why).
    empty_target_only: Option<String>,
}

/// Whether the target partition holds no records (its log start is its end).
async fn target_empty(target: &Client, tp: &TopicPartition) -> bool {
    let end = |spec| async move {
        target
            .list_offsets(&tp.topic, &[tp.partition], spec)
            .await
            .ok()
            .and_then(|o| o.first().map(|(_, o)| *o))
    };
    match (
        end(OffsetSpec::Earliest).await,
        end(OffsetSpec::Latest).await,
    ) {
        (Some(start), Some(end)) => start >= end,
        // Unknown: not empty, so nothing is mixed (the start is retried).
        _ => false,
    }
}

/// Where a partition starts: its source offset, and the target partition's
/// end (where the next produced batch lands, ferry being its only writer).
async fn start_position(
    spec: &FlowSpec,
    source: &Client,
    target: &Client,
    assignment: &Assignment,
    from: StartFrom,
    map: Option<&OffsetMap>,
    budget: &MemoryBudget,
) -> Result<(i64, i64, Option<OffsetMap>), ferry_client::ClientError> {
    let (position, tail) = match from {
        StartFrom::Resume {
            source_offset,
            target_offset,
        } => {
            let config = crate::plan::PlanConfig {
                verify_crc: spec.tuning.verify_crc,
                max_batch_bytes: assignment.max_batch_bytes,
                reencode_compression: spec.tuning.reencode_compression,
                ..crate::plan::PlanConfig::default()
            };
            super::resume::resume_position(
                (source, target),
                (&assignment.source, &assignment.target),
                (source_offset, target_offset),
                map,
                config,
                budget,
            )
            .await
        }
        StartFrom::Lookup(start) => (start_offset(source, &assignment.source, start).await?, None),
    };
    let t = &assignment.target;
    let target_end = target
        .list_offsets(&t.topic, &[t.partition], OffsetSpec::Latest)
        .await?
        .first()
        .map_or(0, |(_, o)| *o);
    Ok((position, target_end, tail))
}

/// The first offset for a partition without a known position.
async fn start_offset(
    source: &Client,
    tp: &TopicPartition,
    start: StartPosition,
) -> Result<i64, ferry_client::ClientError> {
    let spec = match start {
        StartPosition::Earliest => OffsetSpec::Earliest,
        StartPosition::Latest => OffsetSpec::Latest,
        StartPosition::Timestamp(t) => OffsetSpec::Timestamp(t.unix_millis()),
    };
    let offsets = source
        .list_offsets(&tp.topic, &[tp.partition], spec)
        .await?;
    Ok(offsets.first().map_or(0, |(_, o)| *o))
}
