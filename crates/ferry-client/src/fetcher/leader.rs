//! One broker's fetch loop: one Fetch in flight at a time, over one fetch
//! session, for the partitions this broker leads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_wire::budget::{Lease, MemoryBudget};
use ferry_wire::fetch::{
    FetchPartition as WirePartition, FetchResponse, MAX_FETCH_VERSION, MIN_FETCH_VERSION, TopicKey,
    decode_fetch_response,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, TopicName};
use kafka_protocol::protocol::{Message, StrBytes, VersionRange};
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use super::divergence::{EpochCheck, EpochHistory, check};
use super::oversize::{FrameVerdict, OversizeSearch};
use super::progress::{Scan, scan};
use super::session::{
    FIRST_SESSION_VERSION, FetchPlan, FetchSession, SessionPartition, is_session_error,
};
use super::validate::validate;
use super::{FetcherConfig, Leader, PartitionData, Shared, State, StopReason};
use crate::connection::encode_request;
use crate::error::{ClientError, KafkaCode};
use crate::fetcher::raw::Isolation;
use crate::retry::RetryState;
use crate::topic::TopicPartition;
use ferry_wire::WireError;

/// Fetch v13 names topics by id.
const FIRST_TOPIC_ID_VERSION: i16 = 13;

/// Fetch v12 carries `last_fetched_epoch` and answers with diverging epochs.
pub(super) const FIRST_DIVERGING_EPOCH_VERSION: i16 = 12;

/// Partial-batch responses in a row for a batch larger than `max_bytes`,
/// after which the partition is reported as MESSAGE_TOO_LARGE. The first
/// such response lists the partition first in a full fetch, which any
/// broker since 0.10.1 answers with the whole batch (KIP-74).
const STUCK_LIMIT: u32 = 3;

/// The partitions to fetch now, in request order, and whether the request
/// must be a full one (to list a partition first).
type Work = (Vec<(TopicPartition, SessionPartition)>, bool);

pub(super) async fn run(shared: Arc<Shared>, node: i32, wake: Arc<Notify>) {
    let mut session = FetchSession::new();
    let mut failures = RetryState::new(shared.config.backoff);
    let mut throttled_until: Option<Instant> = None;
    let mut requests: usize = 0;
    let mut oversize = OversizeSearch::default();
    loop {
        if let Some(until) = throttled_until.take() {
            // KIP-219: the broker answered at once and expects us to wait.
            tokio::time::sleep_until(until).await;
        }
        let Some((mut wanted, full)) = next_work(&shared, node, &wake, requests).await else {
            return;
        };
        requests = requests.wrapping_add(1);
        // After a response too large for a frame, one partition at a time.
        let probe = oversize.probe(wanted.iter().map(|(tp, _)| tp));
        if let Some(tp) = &probe {
            wanted.retain(|(w, _)| w == tp);
        } else if full {
            session.force_full();
        }
        let lease = match &shared.budget {
            Some(budget) => Some(reserve(budget, &shared.config, &wanted).await),
            None => None,
        };
        match fetch_once(&shared, node, &mut session, &wanted, lease, probe.is_some()).await {
            Ok(throttle) => {
                failures.succeeded();
                oversize.answered(probe.as_ref());
                throttled_until = throttle;
            }
            Err(e) => {
                let earlier = failures.failures();
                let mut delay = failures.failed();
                let session_reset = e.kafka_code().is_some_and(is_session_error);
                if session_reset && earlier == 0 {
                    // The broker evicted the session: open a new one now.
                    delay = Duration::ZERO;
                }
                if let Some((frame_size, max_frame_size)) = frame_too_large(&e) {
                    // Not broker trouble: one partition's batch. Find it.
                    shared.retries.record(&e);
                    let sent = wanted.iter().map(|(tp, _)| tp);
                    if let FrameVerdict::Oversized(tp) = oversize.refused(sent, probe.as_ref()) {
                        stop_oversized(&shared, &tp, frame_size, max_frame_size);
                    } else {
                        tracing::debug!(node, frame_size, max_frame_size, probe = ?probe, "response too large for a frame; fetching partitions alone to find the batch");
                    }
                    delay = delay.min(shared.config.backoff.delay(1));
                    tokio::time::sleep(delay).await;
                    continue;
                }
                on_failure(&shared, node, &e, delay, session_reset);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The frame size and limit, if `e` is a response larger than the limit.
fn frame_too_large(e: &ClientError) -> Option<(usize, usize)> {
    match e {
        ClientError::Frame {
            source: WireError::FrameTooLarge { size, max },
            ..
        } => Some((*size, *max)),
        _ => None,
    }
}

/// `tp`'s next batch does not fit in a frame even fetched alone: stop it
/// with a report naming the setting to raise.
fn stop_oversized(shared: &Shared, tp: &TopicPartition, frame_size: usize, max_frame_size: usize) {
    let mut st = shared.lock();
    let Some(part) = st.partitions.get_mut(tp) else {
        return;
    };
    let reason = StopReason::FrameTooLarge {
        offset: part.position,
        frame_size,
        max_frame_size,
    };
    tracing::error!(partition = %tp, offset = part.position, frame_size, max_frame_size, "{reason}; partition stopped, the broker's other partitions go on");
    Shared::park(&mut st, tp, KafkaCode::MESSAGE_TOO_LARGE);
    if let Some(part) = st.partitions.get_mut(tp) {
        part.stopped = Some(reason);
    }
    drop(st);
    shared.data_ready.notify_waiters();
}

/// Waits until this broker has partitions to fetch and the buffer has room.
async fn next_work(shared: &Shared, node: i32, wake: &Notify, rotation: usize) -> Option<Work> {
    loop {
        // `notify_one` leaves a permit when nobody waits, so a wake-up
        // between the check below and the await is not lost.
        let notified = wake.notified();
        let due = {
            let st = shared.lock();
            if st.closed {
                return None;
            }
            if st.buffered_unpaused() >= shared.config.max_buffered_bytes {
                None // poll wakes us when it takes data
            } else {
                match wanted(&st, node, Instant::now(), rotation) {
                    Ok(work) => return Some(work),
                    Err(due) => due,
                }
            }
        };
        match due {
            Some(due) => {
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep_until(due) => {}
                }
            }
            None => notified.await,
        }
    }
}

/// The partitions `node` should fetch now, or when the next one becomes due.
/// A full request lists partitions in this order and the broker fills its
/// response in it, so the order rotates by `rotation` from request to
/// request: no partition always comes last when responses are full.
fn wanted(st: &State, node: i32, now: Instant, rotation: usize) -> Result<Work, Option<Instant>> {
    let mut first = Vec::new();
    let mut rest = Vec::new();
    let mut due: Option<Instant> = None;
    for (tp, part) in &st.partitions {
        let Some(leader) = part.leader.filter(|l| l.node == node) else {
            continue;
        };
        if part.paused || part.parked {
            continue;
        }
        if let Some(t) = part.not_before.filter(|t| *t > now) {
            due = Some(due.map_or(t, |d| d.min(t)));
            continue;
        }
        let entry = (
            tp.clone(),
            SessionPartition {
                topic_id: part.topic_id,
                fetch_offset: part.position,
                current_leader_epoch: leader.epoch,
                max_bytes: part.max_bytes,
                last_fetched_epoch: part.epochs.last().unwrap_or(-1),
            },
        );
        if part.first {
            first.push(entry);
        } else {
            rest.push(entry);
        }
    }
    if first.is_empty() && rest.is_empty() {
        return Err(due);
    }
    let full = !first.is_empty();
    first.sort_by(|a, b| a.0.cmp(&b.0));
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    if !rest.is_empty() {
        let by = rotation % rest.len();
        rest.rotate_left(by);
    }
    first.extend(rest);
    Ok((first, full))
}

/// Budget for one Fetch of `wanted`: at least the largest partition limit
/// among them (so a batch raised past the default still fits, KIP-74), up to
/// the request limit if that much is free.
async fn reserve(
    budget: &MemoryBudget,
    config: &FetcherConfig,
    wanted: &[(TopicPartition, SessionPartition)],
) -> Lease {
    let max = usize::try_from(config.max_bytes).unwrap_or(usize::MAX);
    let min = wanted
        .iter()
        .map(|(_, p)| usize::try_from(p.max_bytes).unwrap_or(0))
        .max()
        .unwrap_or(0)
        .min(max);
    budget.acquire_up_to(min, max).await
}

/// Sends one Fetch and folds the answer in. Returns when to send the next
/// one, if the broker throttled us. With a `lease`, the request asks for no
/// more than the lease holds, and the response frame carries the lease.
async fn fetch_once(
    shared: &Arc<Shared>,
    node: i32,
    session: &mut FetchSession,
    wanted: &[(TopicPartition, SessionPartition)],
    lease: Option<Lease>,
    probe: bool,
) -> Result<Option<Instant>, ClientError> {
    let conn = shared.client.broker_connection(node).await?;
    let ids = wanted.iter().all(|(_, w)| w.topic_id.is_some());
    let ours = FetchRequest::VERSIONS;
    let max = if ids {
        ours.max.min(MAX_FETCH_VERSION)
    } else {
        FIRST_TOPIC_ID_VERSION - 1
    };
    let range = VersionRange {
        min: ours.min.max(MIN_FETCH_VERSION),
        max,
    };
    let version = conn.versions().pick(ApiKey::Fetch, range)?;
    // Below v12 nothing checks the fetch position against the leader's
    // log; after a leader change ask it first (KIP-320).
    let checked;
    let wanted = if version < FIRST_DIVERGING_EPOCH_VERSION && !probe {
        checked = validate(shared, &conn, node, wanted).await?;
        if checked.is_empty() {
            return Ok(None);
        }
        &checked[..]
    } else {
        wanted
    };
    let by_id = ids && version >= FIRST_TOPIC_ID_VERSION;
    let plan = if probe {
        // Sessionless, so the broker's session is left as it is.
        probe_plan(wanted, by_id)
    } else {
        session.plan(wanted, by_id, version >= FIRST_SESSION_VERSION)
    };
    let mut request = fetch_request(&plan, &shared.config, version);
    if probe {
        // Only to see whether it fits: no waiting for data.
        request.max_wait_ms = 0;
    }
    if let Some(lease) = &lease {
        request.max_bytes = request
            .max_bytes
            .min(i32::try_from(lease.size()).unwrap_or(i32::MAX));
    }
    let body = encode_request(&request, ApiKey::Fetch, version, conn.broker())?;
    let frame = match conn.send_raw(ApiKey::Fetch, version, vec![body]).await {
        Ok(frame) => frame,
        Err(e) => {
            if !probe {
                session.failed();
            }
            return Err(e);
        }
    };
    // The broker may exceed max_bytes by one batch (KIP-74); that overshoot
    // is not charged, the rest of an unused reservation goes back now.
    let frame = match lease {
        Some(mut lease) => {
            lease.release_excess(frame.len());
            lease.into_bytes(frame)
        }
        None => frame,
    };
    let response = match decode_fetch_response(frame, version) {
        Ok(r) => r,
        Err(e) => {
            if !probe {
                session.failed();
            }
            return Err(conn.reject(ClientError::Decode {
                broker: conn.broker().to_owned(),
                api: ApiKey::Fetch,
                version,
                detail: e.to_string(),
            }));
        }
    };
    if let Some(code) = KafkaCode::from_code(response.error_code) {
        if !probe {
            session.failed_with(code);
        }
        return Err(ClientError::Kafka {
            broker: conn.broker().to_owned(),
            api: ApiKey::Fetch,
            code,
            context: format!(
                " (fetch session {} epoch {})",
                plan.session_id, plan.session_epoch
            ),
        });
    }
    let throttle = u64::try_from(response.throttle_time_ms)
        .ok()
        .filter(|ms| *ms > 0)
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    if probe {
        let mut alone = FetchSession::new();
        alone.completed(&plan, 0);
        absorb(shared, node, &alone, response);
    } else {
        session.completed(&plan, response.session_id);
        absorb(shared, node, session, response);
    }
    Ok(throttle)
}

/// A sessionless full fetch of `wanted` alone.
fn probe_plan(wanted: &[(TopicPartition, SessionPartition)], topic_ids: bool) -> FetchPlan {
    FetchPlan {
        session_id: 0,
        session_epoch: -1,
        full: true,
        topic_ids,
        send: wanted.to_vec(),
        forget: Vec::new(),
    }
}

/// The Fetch request for `plan`. Partitions of one topic are grouped under
/// it, topics in the order their first partition appears.
pub(super) fn fetch_request(
    plan: &FetchPlan,
    config: &FetcherConfig,
    version: i16,
) -> FetchRequest {
    let by_id = plan.topic_ids && version >= FIRST_TOPIC_ID_VERSION;
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (tp, p) in &plan.send {
        let i = *index.entry(&tp.topic).or_insert_with(|| {
            let topic = FetchTopic::default();
            topics.push(match p.topic_id {
                Some(id) if by_id => topic.with_topic_id(id),
                _ => topic.with_topic(topic_name(&tp.topic)),
            });
            topics.len() - 1
        });
        if let Some(topic) = topics.get_mut(i) {
            let mut partition = FetchPartition::default()
                .with_partition(tp.partition)
                .with_current_leader_epoch(p.current_leader_epoch)
                .with_fetch_offset(p.fetch_offset)
                .with_partition_max_bytes(p.max_bytes);
            if version >= FIRST_DIVERGING_EPOCH_VERSION {
                partition = partition.with_last_fetched_epoch(p.last_fetched_epoch);
            }
            topic.partitions.push(partition);
        }
    }
    let mut forgotten: Vec<ForgottenTopic> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (tp, id) in &plan.forget {
        let i = *index.entry(&tp.topic).or_insert_with(|| {
            let topic = ForgottenTopic::default();
            forgotten.push(match id {
                Some(id) if by_id => topic.with_topic_id(*id),
                _ => topic.with_topic(topic_name(&tp.topic)),
            });
            forgotten.len() - 1
        });
        if let Some(topic) = forgotten.get_mut(i) {
            topic.partitions.push(tp.partition);
        }
    }
    let bytes = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    FetchRequest::default()
        .with_max_wait_ms(i32::try_from(config.max_wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(bytes(config.min_bytes))
        .with_max_bytes(bytes(config.max_bytes))
        .with_isolation_level(match config.isolation {
            Isolation::ReadUncommitted => 0,
            Isolation::ReadCommitted => 1,
        })
        .with_session_id(plan.session_id)
        .with_session_epoch(plan.session_epoch)
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten)
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// After a failed request: report what retrying will not fix, and when the
/// broker itself may be gone, send its partitions back to the router so a
/// leader change is noticed (they return here if it still leads).
fn on_failure(shared: &Shared, node: i32, e: &ClientError, delay: Duration, session_reset: bool) {
    let broker_trouble = matches!(
        e,
        ClientError::Connect { .. }
            | ClientError::ConnectTimeout { .. }
            | ClientError::Io { .. }
            | ClientError::Timeout { .. }
            | ClientError::Closed { .. }
            | ClientError::UnexpectedCorrelationId { .. }
            | ClientError::UnknownBroker { .. }
            | ClientError::Frame { .. }
    );
    if session_reset {
        tracing::debug!(node, error = %e, "fetch session reset");
    } else {
        tracing::warn!(node, error = %e, ?delay, "fetch failed; retrying");
    }
    let mut st = shared.lock();
    if e.is_retriable() {
        shared.retries.record(e);
    } else {
        shared.set_fatal(&mut st, e.clone());
    }
    if broker_trouble {
        let at = Instant::now() + delay;
        for part in st.partitions.values_mut() {
            if part.leader.is_some_and(|l| l.node == node) {
                part.leader = None;
                part.not_before = Some(at);
            }
        }
        shared.router_wake.notify_one();
    }
}

/// What one partition's answer led to.
enum Outcome {
    Nothing,
    Delivered,
    /// Back to the router.
    Rerouted,
    /// Straight to the leader the broker named.
    MovedTo(i32),
}

/// Folds a Fetch response into the shared state.
fn absorb(shared: &Arc<Shared>, node: i32, session: &FetchSession, response: FetchResponse) {
    let by_id: HashMap<Uuid, Arc<str>> = if response
        .topics
        .iter()
        .any(|t| matches!(t.topic, TopicKey::Id(_)))
    {
        session.topics_by_id()
    } else {
        HashMap::new()
    };
    let mut st = shared.lock();
    let now = Instant::now();
    let (mut delivered, mut reroute) = (false, false);
    for topic in response.topics {
        let name: Arc<str> = match topic.topic {
            TopicKey::Name(name) => Arc::from(name),
            TopicKey::Id(id) => match by_id.get(&Uuid::from_bytes(id)) {
                Some(name) => Arc::clone(name),
                None => {
                    tracing::debug!(node, topic_id = %Uuid::from_bytes(id), "response names a topic id not in the session");
                    continue;
                }
            },
        };
        for p in topic.partitions {
            let tp = crate::TopicPartition {
                topic: Arc::clone(&name),
                partition: p.partition,
            };
            // The offset the broker read from is the one the session holds.
            let Some(sent) = session.partition(&tp) else {
                continue;
            };
            match partition_result(shared, &mut st, node, &tp, sent.fetch_offset, p, now) {
                Outcome::Nothing => {}
                Outcome::Delivered => delivered = true,
                Outcome::Rerouted => reroute = true,
                Outcome::MovedTo(leader) => shared.ensure_loop(&mut st, leader),
            }
        }
    }
    if reroute {
        shared.router_wake.notify_one();
    }
    drop(st);
    if delivered {
        shared.data_ready.notify_waiters();
    }
}

/// Leadership moved or is moving: find the new leader.
pub(super) fn moves_leader(code: KafkaCode) -> bool {
    matches!(
        code,
        KafkaCode::NOT_LEADER_OR_FOLLOWER
            | KafkaCode::FENCED_LEADER_EPOCH
            | KafkaCode::UNKNOWN_LEADER_EPOCH
            | KafkaCode::LEADER_NOT_AVAILABLE
            | KafkaCode::REPLICA_NOT_AVAILABLE
            | KafkaCode::KAFKA_STORAGE_ERROR
            // The router decides whether the topic is really gone.
            | KafkaCode::UNKNOWN_TOPIC_OR_PARTITION
            | KafkaCode::UNKNOWN_TOPIC_ID
            | KafkaCode::INCONSISTENT_TOPIC_ID
    )
}

/// Handles one partition of a response.
fn partition_result(
    shared: &Shared,
    st: &mut State,
    node: i32,
    tp: &TopicPartition,
    fetch_offset: i64,
    p: WirePartition,
    now: Instant,
) -> Outcome {
    let default_max = shared.partition_max_bytes();
    let cap = shared.max_bytes().max(default_max);
    let State {
        partitions, ready, ..
    } = st;
    let Some(part) = partitions.get_mut(tp) else {
        return Outcome::Nothing; // unassigned meanwhile
    };
    // Stale: stopped, moved, or sought elsewhere while the request was out.
    if part.parked || part.leader.map(|l| l.node) != Some(node) || part.position != fetch_offset {
        return Outcome::Nothing;
    }
    let data = |records, error| PartitionData {
        tp: tp.clone(),
        fetch_offset,
        records,
        high_watermark: p.high_watermark,
        last_stable_offset: p.last_stable_offset,
        log_start_offset: p.log_start_offset,
        aborted_transactions: p.aborted_transactions.clone().unwrap_or_default(),
        error,
    };
    if let Some(code) = KafkaCode::from_code(p.error_code) {
        if moves_leader(code) {
            let epoch = part.leader.map_or(-1, |l| l.epoch);
            let hint = p
                .current_leader
                .filter(|&(id, hint_epoch)| id >= 0 && id != node && hint_epoch > epoch)
                .filter(|&(id, _)| shared.client.metadata().brokers.contains_key(&id));
            tracing::debug!(partition = %tp, node, error = %code, ?hint, "leadership moved");
            shared.retries.record_cause(code.name().unwrap_or("other"));
            return match hint {
                Some((id, hint_epoch)) => {
                    part.leader = Some(Leader {
                        node: id,
                        epoch: hint_epoch,
                    });
                    part.not_before = None;
                    Outcome::MovedTo(id)
                }
                None => {
                    part.reroute(now);
                    Outcome::Rerouted
                }
            };
        }
        if code.is_retriable() {
            tracing::debug!(partition = %tp, node, error = %code, "retrying partition");
            part.retry_later(now);
            return Outcome::Nothing;
        }
        part.parked = true;
        tracing::warn!(partition = %tp, offset = fetch_offset, error = %code, "partition stopped");
        ready.push_back(data(bytes::Bytes::new(), Some(code)));
        return Outcome::Delivered;
    }
    if let Some((leader_epoch, leader_end_offset)) = p.diverging_epoch {
        match check(&part.epochs, fetch_offset, leader_epoch, leader_end_offset) {
            EpochCheck::Diverged(divergence) => {
                part.parked = true;
                part.stopped = Some(StopReason::Diverged(divergence));
                tracing::error!(partition = %tp, node, position = divergence.position, diverged_from = divergence.diverged_from, leader_epoch, leader_end_offset, "{divergence}; partition stopped");
                ready.push_back(data(
                    bytes::Bytes::new(),
                    Some(KafkaCode::OFFSET_OUT_OF_RANGE),
                ));
                return Outcome::Delivered;
            }
            EpochCheck::Consistent | EpochCheck::Unknown => {
                // The broker sees a divergence our history cannot place:
                // fetch on without the epoch rather than ask forever.
                tracing::warn!(partition = %tp, node, position = fetch_offset, leader_epoch, leader_end_offset, last_fetched_epoch = ?part.epochs.last(), "diverging epoch answer that does not contradict what was fetched; fetching on without epoch validation");
                part.epochs = EpochHistory::new();
                part.retry_later(now);
                return Outcome::Nothing;
            }
        }
    }
    part.retry.succeeded();
    part.unknown = 0;
    let records = p.records.clone().unwrap_or_default();
    match scan(&records, fetch_offset) {
        Scan::Empty => Outcome::Nothing,
        Scan::Batches {
            end,
            next_offset,
            epochs,
        } => {
            for (epoch, base_offset) in epochs {
                part.epochs.record(epoch, base_offset);
            }
            part.checked_leader = part.leader;
            part.position = next_offset;
            part.progressed(default_max);
            ready.push_back(data(records.slice(..end), None));
            Outcome::Delivered
        }
        Scan::PartialOnly { needed } => {
            let limit = usize::try_from(part.max_bytes).unwrap_or(0);
            match needed {
                // The response ran out of room (max_bytes) before this
                // partition: the next fetch has room again.
                None => Outcome::Nothing,
                Some(n) if n <= limit => Outcome::Nothing,
                // The batch is larger than this partition's limit.
                Some(n) if part.max_bytes < cap => {
                    let n = i32::try_from(n).unwrap_or(i32::MAX);
                    part.max_bytes = n.max(part.max_bytes.saturating_mul(2)).min(cap);
                    tracing::debug!(partition = %tp, offset = fetch_offset, max_bytes = part.max_bytes, "batch larger than the partition limit; refetching with more room");
                    Outcome::Nothing
                }
                // Larger than max_bytes: only listing it first in a full
                // fetch makes the broker return it whole (KIP-74).
                Some(n) => {
                    part.stuck += 1;
                    part.first = true;
                    if part.stuck <= STUCK_LIMIT {
                        return Outcome::Nothing;
                    }
                    part.parked = true;
                    tracing::warn!(partition = %tp, offset = fetch_offset, batch_bytes = n, "batch cannot be fetched whole");
                    ready.push_back(data(records, Some(KafkaCode::MESSAGE_TOO_LARGE)));
                    Outcome::Delivered
                }
            }
        }
        Scan::Behind { next_offset } => {
            part.parked = true;
            tracing::warn!(partition = %tp, offset = fetch_offset, next_offset, "broker returned batches before the fetch offset");
            ready.push_back(data(records, Some(KafkaCode::CORRUPT_MESSAGE)));
            Outcome::Delivered
        }
        Scan::Malformed {
            good_end,
            next_offset,
            detail,
        } => {
            tracing::warn!(partition = %tp, offset = fetch_offset, %detail, "malformed record batch");
            let mut bad_from = fetch_offset;
            if let Some(next) = next_offset.filter(|_| good_end > 0) {
                ready.push_back(data(records.slice(..good_end), None));
                part.position = next;
                bad_from = next;
            }
            part.parked = true;
            let mut bad = data(records.slice(good_end..), Some(KafkaCode::CORRUPT_MESSAGE));
            bad.fetch_offset = bad_from;
            ready.push_back(bad);
            Outcome::Delivered
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetcher::Part;
    use crate::retry::Backoff;

    fn state(parts: &[(&str, i32, Option<i32>)]) -> State {
        let mut st = State::default();
        for &(topic, partition, node) in parts {
            let mut p = Part::new(10, 1000, Backoff::default());
            p.leader = node.map(|node| Leader { node, epoch: 4 });
            p.topic_id = Some(Uuid::from_u128(1));
            st.partitions
                .insert(TopicPartition::new(topic, partition), p);
        }
        st
    }

    fn part<'a>(st: &'a mut State, t: &str, p: i32) -> &'a mut Part {
        st.partitions.get_mut(&TopicPartition::new(t, p)).unwrap()
    }

    fn names(work: &Work) -> Vec<String> {
        work.0.iter().map(|(tp, _)| tp.to_string()).collect()
    }

    #[test]
    fn a_loop_fetches_only_its_own_ready_partitions() {
        let mut st = state(&[
            ("a", 0, Some(1)),
            ("a", 1, Some(1)),
            ("a", 2, Some(2)),
            ("b", 0, Some(1)),
            ("b", 1, None),
            ("c", 0, Some(1)),
            ("c", 1, Some(1)),
        ]);
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        part(&mut st, "a", 1).paused = true;
        part(&mut st, "c", 0).parked = true;
        part(&mut st, "c", 1).not_before = Some(later);
        let work = wanted(&st, 1, now, 0).unwrap();
        assert_eq!(names(&work), ["a-0", "b-0"]);
        assert!(!work.1);
        let (_, w) = &work.0[0];
        assert_eq!(
            (w.fetch_offset, w.current_leader_epoch, w.max_bytes),
            (10, 4, 1000)
        );
        assert_eq!(w.last_fetched_epoch, -1, "nothing fetched yet");
        part(&mut st, "a", 0).epochs.record(3, 0);
        let work = wanted(&st, 1, now, 0).unwrap();
        assert_eq!(work.0[0].1.last_fetched_epoch, 3);

        // Nothing ready: when to look again.
        part(&mut st, "a", 0).paused = true;
        part(&mut st, "b", 0).paused = true;
        assert_eq!(wanted(&st, 1, now, 0).unwrap_err(), Some(later));
        assert_eq!(wanted(&st, 3, now, 0).unwrap_err(), None);
    }

    #[test]
    fn full_fetch_order_rotates_and_stuck_partitions_go_first() {
        let mut st = state(&[("a", 0, Some(1)), ("a", 1, Some(1)), ("a", 2, Some(1))]);
        let now = Instant::now();
        assert_eq!(
            names(&wanted(&st, 1, now, 0).unwrap()),
            ["a-0", "a-1", "a-2"]
        );
        assert_eq!(
            names(&wanted(&st, 1, now, 1).unwrap()),
            ["a-1", "a-2", "a-0"]
        );
        assert_eq!(
            names(&wanted(&st, 1, now, 5).unwrap()),
            ["a-2", "a-0", "a-1"]
        );
        if let Some(p) = st.partitions.get_mut(&TopicPartition::new("a", 2)) {
            p.first = true;
        }
        let work = wanted(&st, 1, now, 1).unwrap();
        assert_eq!(names(&work), ["a-2", "a-1", "a-0"]);
        assert!(work.1, "listing a partition first needs a full fetch");
    }

    fn sp(offset: i64, id: Option<u128>) -> SessionPartition {
        SessionPartition {
            topic_id: id.map(Uuid::from_u128),
            fetch_offset: offset,
            current_leader_epoch: 7,
            max_bytes: 1000,
            last_fetched_epoch: 6,
        }
    }

    #[test]
    fn request_groups_partitions_by_topic_in_plan_order() {
        let plan = FetchPlan {
            session_id: 5,
            session_epoch: 3,
            full: false,
            topic_ids: false,
            send: vec![
                (TopicPartition::new("b", 1), sp(10, None)),
                (TopicPartition::new("a", 0), sp(20, None)),
                (TopicPartition::new("b", 0), sp(30, None)),
            ],
            forget: vec![(TopicPartition::new("c", 2), None)],
        };
        let r = fetch_request(&plan, &FetcherConfig::default(), 12);
        assert_eq!((r.session_id, r.session_epoch), (5, 3));
        assert_eq!(r.isolation_level, 1);
        assert_eq!(r.max_wait_ms, 500);
        let topics: Vec<_> = r.topics.iter().map(|t| t.topic.0.to_string()).collect();
        assert_eq!(topics, ["b", "a"]);
        let b: Vec<_> = r.topics[0]
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition,
                    p.fetch_offset,
                    p.current_leader_epoch,
                    p.partition_max_bytes,
                )
            })
            .collect();
        assert_eq!(b, [(1, 10, 7, 1000), (0, 30, 7, 1000)]);
        // KIP-320: the last fetched epoch goes out from v12 ...
        assert!(
            r.topics[0]
                .partitions
                .iter()
                .all(|p| p.last_fetched_epoch == 6)
        );
        // ... and not below, where the field does not exist.
        let r = fetch_request(&plan, &FetcherConfig::default(), 11);
        assert!(
            r.topics[0]
                .partitions
                .iter()
                .all(|p| p.last_fetched_epoch == -1)
        );
        let mut wire = bytes::BytesMut::new();
        kafka_protocol::protocol::Encodable::encode(&r, &mut wire, 11).expect("encodes at v11");
        assert_eq!(r.forgotten_topics_data.len(), 1);
        assert_eq!(r.forgotten_topics_data[0].topic.0.as_str(), "c");
        assert_eq!(r.forgotten_topics_data[0].partitions, [2]);
    }

    #[test]
    fn request_names_topics_by_id_from_v13() {
        let plan = FetchPlan {
            session_id: 0,
            session_epoch: 0,
            full: true,
            topic_ids: true,
            send: vec![(TopicPartition::new("a", 0), sp(0, Some(9)))],
            forget: vec![(TopicPartition::new("c", 1), Some(Uuid::from_u128(4)))],
        };
        let r = fetch_request(&plan, &FetcherConfig::default(), 13);
        assert_eq!(r.topics[0].topic_id, Uuid::from_u128(9));
        assert_eq!(r.forgotten_topics_data[0].topic_id, Uuid::from_u128(4));
        // Below v13 the same plan falls back to names.
        let r = fetch_request(&plan, &FetcherConfig::default(), 12);
        assert_eq!(r.topics[0].topic.0.as_str(), "a");
    }
}
