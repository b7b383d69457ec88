//! The source-side fetcher: raw record batches from many partitions of one
//! cluster, fetched with one long-running loop per leader broker.
//!
//! - The engine [`assign`](SourceFetcher::assign)s partitions at offsets and
//!   [`poll`](SourceFetcher::poll)s for [`PartitionData`]. Records stay
//!   zero-copy slices of the Fetch response frames.
//! - A *router* task resolves each partition's leader from metadata and
//!   hands it to that broker's *leader loop* (spawned on first use).
//! - Each leader loop keeps one fetch session (KIP-227, [`session`]) and
//!   sends one Fetch at a time: only changed partitions, forgotten ones on
//!   unassign or pause, topic ids at Fetch v13+, the leader epoch (KIP-320).
//! - Leadership errors (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH,
//!   UNKNOWN_LEADER_EPOCH, …) send the partition back to the router, or
//!   straight to the new leader when the response names one (KIP-951); the
//!   position is kept. Lost connections are retried with backoff. None of
//!   this reaches the engine.
//! - KIP-320: each partition remembers the leader epochs of the batches it
//!   fetched (`divergence.rs`) and sends the latest as `last_fetched_epoch`
//!   (Fetch v12+); on older brokers a new leader is first asked with
//!   OffsetForLeaderEpoch. A source log that no longer holds what was
//!   fetched (an unclean leader election) stops the partition with a
//!   [`LogDivergence`] instead of fetching the new leader's records on top.
//! - A response refused for exceeding the connection's `max_frame_size` is
//!   one partition's oversized batch (KIP-74 returns it whole), not broker
//!   trouble: the request's partitions are fetched alone until the one is
//!   found (`oversize.rs`); only it stops, with a [`StopReason`] naming the
//!   setting to raise.
//! - Errors the engine must decide about (OFFSET_OUT_OF_RANGE, authorization,
//!   a deleted or recreated topic, a batch that cannot be fetched, corrupt
//!   data) come back as a [`PartitionData`] with [`error`](PartitionData::error)
//!   set, and the partition stops until it is assigned again.
//!
//! Memory is bounded: a paused partition is not fetched, and the loops stop
//! sending requests while more than [`FetcherConfig::max_buffered_bytes`] of
//! polled-for data waits. With a [`MemoryBudget`]
//! ([`SourceFetcher::with_budget`]) the bound is hard: a loop leases budget
//! before each Fetch, asks the broker for no more than it leased, and the
//! lease rides on the response frame, so the bytes stay charged until the
//! last slice of the records is dropped (after the target acknowledged them,
//! in a replicator). Fetching starts with the first `poll`.

mod divergence;
mod leader;
mod oversize;
mod progress;
pub mod raw;
mod router;
pub mod session;
mod validate;

use crate::util::lock;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use ferry_wire::budget::MemoryBudget;

use crate::retry::RetryCounts;
use ferry_wire::txn::AbortedTxn;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::Client;
use crate::error::{ClientError, KafkaCode, Result};
use crate::fetcher::raw::Isolation;
use crate::retry::{Backoff, RetryState};
use crate::topic::TopicPartition;

pub use divergence::LogDivergence;
pub use session::{FetchPlan, FetchSession, SessionPartition};

use divergence::EpochHistory;

/// Settings for a [`SourceFetcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetcherConfig {
    /// Which records to read. Default: [`Isolation::ReadCommitted`], so
    /// open transactions are never read and aborted ones are listed in
    /// [`PartitionData::aborted_transactions`].
    pub isolation: Isolation,
    /// How long a broker may hold a Fetch waiting for `min_bytes`. Default:
    /// 500 ms (the consumer's `fetch.max.wait.ms`). Idle partitions cost one
    /// request per this interval per broker.
    pub max_wait: Duration,
    /// Bytes a broker waits for before answering. Default: 1 (answer as
    /// soon as there is anything).
    pub min_bytes: u32,
    /// Upper bound for one Fetch response. Default: 50 MiB (`fetch.max.bytes`).
    /// Keep the connection's `max_frame_size` above it.
    pub max_bytes: u32,
    /// Upper bound per partition per response. Default: 1 MiB
    /// (`max.partition.fetch.bytes`). Raised for one partition, up to
    /// `max_bytes`, when a single batch is larger.
    pub partition_max_bytes: u32,
    /// Waits after errors: per broker after a failed request, per partition
    /// after a partition error. Default: 100 ms doubling to 1 s.
    pub backoff: Backoff,
    /// The leader loops send no Fetch while at least this many bytes of
    /// records for unpaused partitions wait to be polled. Default: 100 MiB
    /// (two full responses).
    pub max_buffered_bytes: usize,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        Self {
            isolation: Isolation::ReadCommitted,
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            backoff: Backoff::default(),
            max_buffered_bytes: 100 * 1024 * 1024,
        }
    }
}

/// Data (or an error) for one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionData {
    pub tp: TopicPartition,
    /// The offset this data was fetched from. The first batch may start
    /// before it (brokers return whole batches).
    pub fetch_offset: i64,
    /// Complete raw record batches, a zero-copy slice of the response
    /// frame. Empty when `error` is set (except for corrupt data, which is
    /// handed over for diagnosis).
    pub records: Bytes,
    /// `-1` where unknown (e.g. with an error raised by the fetcher itself).
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Aborted transactions overlapping `records` (read_committed only).
    pub aborted_transactions: Vec<AbortedTxn>,
    /// Set when the partition stopped and the engine must decide what to do;
    /// the partition is fetched again only after [`SourceFetcher::assign`].
    ///
    /// - `OFFSET_OUT_OF_RANGE`: the position is before the log start or past
    ///   the end (look it up with `Client::list_offsets` and reassign); or
    ///   the source log diverged from what was fetched (an unclean leader
    ///   election, KIP-320): then [`SourceFetcher::divergence`] says where,
    ///   and the records fetched from there on are gone from the source.
    /// - `TOPIC_AUTHORIZATION_FAILED` and other non-retriable broker codes.
    /// - `UNKNOWN_TOPIC_OR_PARTITION`: metadata no longer lists the topic
    ///   or partition (deleted), after several confirmations.
    /// - `UNKNOWN_TOPIC_ID`: the topic was deleted and recreated under the
    ///   same name (a new topic id).
    /// - `MESSAGE_TOO_LARGE`: a batch the broker returns only in part even
    ///   at `max_bytes` and listed first in the request; or a batch whose
    ///   response is larger than the connection's `max_frame_size` even when
    ///   fetched alone ([`SourceFetcher::stop_reason`] says how large). The
    ///   broker's other partitions go on.
    /// - `CORRUPT_MESSAGE`: records that do not parse as batches, or
    ///   that end before the fetch offset; `records` holds the bad bytes.
    pub error: Option<KafkaCode>,
}

/// Why the fetcher stopped a partition, beyond the Kafka code it reports
/// in [`PartitionData::error`]. The display text says what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// Reported as `OFFSET_OUT_OF_RANGE`: the source log diverged from what
    /// was fetched (KIP-320).
    Diverged(LogDivergence),
    /// Reported as `MESSAGE_TOO_LARGE`: fetched alone, the partition's next
    /// batch at `offset` still came in a response of `frame_size` bytes,
    /// more than the connection's `max_frame_size`.
    FrameTooLarge {
        offset: i64,
        frame_size: usize,
        max_frame_size: usize,
    },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Diverged(d) => d.fmt(f),
            Self::FrameTooLarge {
                offset,
                frame_size,
                max_frame_size,
            } => write!(
                f,
                "the batch at offset {offset} comes in a response of {frame_size} bytes, more \
                 than the source connection's max_frame_size of {max_frame_size} bytes; raise \
                 max_frame_size (clusters.<source>.max_frame_size) above {frame_size} and \
                 restart the partition"
            ),
        }
    }
}

/// Fetches raw batches from one source cluster. See the module docs.
///
/// Dropping it stops every task it started.
#[derive(Debug)]
pub struct SourceFetcher {
    shared: Arc<Shared>,
}

impl SourceFetcher {
    pub fn new(client: Client, config: FetcherConfig) -> Self {
        Self::build(client, config, None)
    }

    /// A fetcher whose response frames are charged to `budget` (see the
    /// module docs): fetched records hold budget until their last slice is
    /// dropped, and fetching waits while the budget is spent. The budget
    /// must hold at least `config.max_bytes` for full-size fetches; a smaller
    /// one still works, with smaller fetches.
    pub fn with_budget(client: Client, config: FetcherConfig, budget: MemoryBudget) -> Self {
        Self::build(client, config, Some(budget))
    }

    fn build(client: Client, config: FetcherConfig, budget: Option<MemoryBudget>) -> Self {
        Self {
            shared: Arc::new(Shared {
                client,
                config,
                budget,
                retries: RetryCounts::default(),
                state: Mutex::new(State::default()),
                data_ready: Notify::new(),
                router_wake: Notify::new(),
            }),
        }
    }

    /// Starts fetching `tp` at `offset`; for an assigned partition, moves
    /// its position there (a seek), dropping data not yet polled. A partition
    /// stopped by an error is resumed (its leader looked up afresh).
    pub fn assign(&self, tp: TopicPartition, offset: i64) {
        let shared = &self.shared;
        let mut st = shared.lock();
        let default_max = shared.partition_max_bytes();
        match st.partitions.get_mut(&tp) {
            Some(part) => {
                part.position = offset;
                part.progressed(default_max);
                // A seek: what was fetched before says nothing about `offset`.
                part.epochs = EpochHistory::new();
                if part.parked {
                    let paused = part.paused;
                    *part = Part::new(offset, default_max, shared.config.backoff);
                    part.paused = paused;
                }
            }
            None => {
                st.partitions.insert(
                    tp.clone(),
                    Part::new(offset, default_max, shared.config.backoff),
                );
            }
        }
        st.ready.retain(|d| d.tp != tp);
        shared.wake_all(&st);
    }

    /// Like [`assign`](Self::assign), for a position whose preceding records
    /// were fetched in leader epoch `last_epoch` (e.g. kept with a
    /// checkpoint): the first fetch (Fetch v12+) checks that the source
    /// still holds them, and a divergence is reported as for records this
    /// fetcher fetched itself.
    pub fn assign_after_epoch(&self, tp: TopicPartition, offset: i64, last_epoch: i32) {
        self.assign(tp.clone(), offset);
        let mut st = self.shared.lock();
        if let Some(part) = st.partitions.get_mut(&tp) {
            part.epochs = EpochHistory::starting_at(last_epoch, offset);
        }
    }

    /// Why `tp` stopped, beyond the code in [`PartitionData::error`], when
    /// the fetcher knows more. Cleared by the next assign.
    pub fn stop_reason(&self, tp: &TopicPartition) -> Option<StopReason> {
        self.shared
            .lock()
            .partitions
            .get(tp)
            .and_then(|p| p.stopped)
    }

    /// Where the source log diverged from what was fetched, when that is
    /// why `tp` stopped (reported as `OFFSET_OUT_OF_RANGE` in
    /// [`PartitionData::error`]). Cleared by the next assign.
    pub fn divergence(&self, tp: &TopicPartition) -> Option<LogDivergence> {
        match self.stop_reason(tp) {
            Some(StopReason::Diverged(d)) => Some(d),
            _ => None,
        }
    }

    /// The leader epoch of the last batch fetched for `tp`, if known: what
    /// [`assign_after_epoch`](Self::assign_after_epoch) takes back.
    pub fn last_fetched_epoch(&self, tp: &TopicPartition) -> Option<i32> {
        self.shared
            .lock()
            .partitions
            .get(tp)
            .and_then(|p| p.epochs.last())
    }

    /// Stops fetching `tp` and drops its data not yet polled.
    pub fn unassign(&self, tp: &TopicPartition) {
        let mut st = self.shared.lock();
        st.partitions.remove(tp);
        st.ready.retain(|d| &d.tp != tp);
        self.shared.wake_all(&st);
    }

    /// Stops fetching `tp` until [`resume`](Self::resume), keeping its
    /// position; [`poll`](Self::poll) holds back its data already fetched.
    pub fn pause(&self, tp: &TopicPartition) {
        let mut st = self.shared.lock();
        if let Some(part) = st.partitions.get_mut(tp) {
            part.paused = true;
        }
    }

    /// Fetches `tp` again after [`pause`](Self::pause).
    pub fn resume(&self, tp: &TopicPartition) {
        let mut st = self.shared.lock();
        if let Some(part) = st.partitions.get_mut(tp) {
            part.paused = false;
        }
        self.shared.wake_all(&st);
        drop(st);
        self.shared.data_ready.notify_waiters();
    }

    /// The next available data of assigned, unpaused partitions, in fetch
    /// order per partition; waits until there is some.
    ///
    /// Returns `Err` only for a failure that is not about one partition and
    /// that retrying will not fix (e.g. a broker that speaks no Fetch version
    /// ferry does, or a response that does not decode). The fetcher keeps
    /// retrying with backoff, so polling again is allowed. Cancel-safe.
    pub async fn poll(&self) -> Result<Vec<PartitionData>> {
        let shared = &self.shared;
        shared.start();
        loop {
            let notified = shared.data_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = shared.lock();
                if let Some(e) = st.fatal.take() {
                    return Err(e);
                }
                let ready = st.take_ready();
                if !ready.is_empty() {
                    // Room in the buffer again.
                    shared.wake_loops(&st);
                    return Ok(ready);
                }
            }
            notified.await;
        }
    }

    /// Fetches and partition errors retried so far, by cause.
    pub fn retries(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.shared.retries.snapshot()
    }

    /// The current fetch position of `tp`, if assigned: where the next
    /// fetch starts (past everything returned or buffered).
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.shared.lock().partitions.get(tp).map(|p| p.position)
    }
}

impl Drop for SourceFetcher {
    fn drop(&mut self) {
        self.shared.shutdown();
    }
}

/// State shared by the handle, the router and the leader loops. Locks are
/// never held across an await.
#[derive(Debug)]
struct Shared {
    client: Client,
    config: FetcherConfig,
    /// Charged for every response frame while any of its records live.
    budget: Option<MemoryBudget>,
    /// Failed fetches and partition errors retried, by cause.
    retries: RetryCounts,
    state: Mutex<State>,
    /// Signalled when data or a fatal error is ready for `poll`.
    data_ready: Notify,
    /// Signalled when a partition needs its leader looked up.
    router_wake: Notify,
}

#[derive(Debug, Default)]
struct State {
    partitions: HashMap<TopicPartition, Part>,
    /// Fetched data not yet polled, in arrival order.
    ready: VecDeque<PartitionData>,
    loops: HashMap<i32, LeaderLoop>,
    router: Option<AbortHandle>,
    /// A non-retriable failure for the next `poll` to report.
    fatal: Option<ClientError>,
    closed: bool,
}

#[derive(Debug)]
struct LeaderLoop {
    wake: Arc<Notify>,
    task: AbortHandle,
}

/// The partition's leader, as the fetcher currently believes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Leader {
    node: i32,
    /// Sent as `current_leader_epoch`; -1 if metadata had none.
    epoch: i32,
}

/// One assigned partition.
#[derive(Debug)]
struct Part {
    /// Where the next fetch starts.
    position: i64,
    paused: bool,
    /// `None`: the router must look the leader up.
    leader: Option<Leader>,
    /// The id the topic had when first routed; a different id later means
    /// the topic was deleted and recreated.
    topic_id: Option<Uuid>,
    /// Stopped after an error was handed to the engine.
    parked: bool,
    /// This partition's size limit per request.
    max_bytes: i32,
    /// Responses in a row that held only part of a batch at the largest size.
    stuck: u32,
    /// List first in a full fetch, where KIP-74 makes the broker return a
    /// whole batch whatever its size.
    first: bool,
    /// Failures since the last good fetch (leadership errors, lookups).
    retry: RetryState,
    /// No fetch or lookup before this.
    not_before: Option<Instant>,
    /// Metadata answers in a row that did not know the topic or partition.
    unknown: u32,
    /// Leader epochs of the records fetched since the last assign (KIP-320).
    epochs: EpochHistory,
    /// Why the partition stopped, when there is more to say than a code.
    stopped: Option<StopReason>,
    /// The leader whose log `epochs` was last found consistent with (it
    /// served records, or answered OffsetForLeaderEpoch). Another leader
    /// is asked first on brokers without Fetch v12.
    checked_leader: Option<Leader>,
}

impl Part {
    fn new(position: i64, max_bytes: i32, backoff: Backoff) -> Self {
        Self {
            position,
            paused: false,
            leader: None,
            topic_id: None,
            parked: false,
            max_bytes,
            stuck: 0,
            first: false,
            retry: RetryState::new(backoff),
            not_before: None,
            unknown: 0,
            epochs: EpochHistory::new(),
            stopped: None,
            checked_leader: None,
        }
    }

    /// Fetching moved on: size limits back to normal.
    fn progressed(&mut self, default_max: i32) {
        self.max_bytes = default_max;
        self.stuck = 0;
        self.first = false;
    }

    /// Back to the router. The first lookup after a good fetch is
    /// immediate; repeated ones back off.
    fn reroute(&mut self, now: Instant) {
        let delay = self.retry.current_delay();
        self.retry.failed();
        self.leader = None;
        self.not_before = Some(now + delay);
    }

    /// Try again later, same leader.
    fn retry_later(&mut self, now: Instant) {
        self.not_before = Some(now + self.retry.failed());
    }
}

impl State {
    /// Takes the data of unpaused partitions; paused ones' stays.
    fn take_ready(&mut self) -> Vec<PartitionData> {
        let mut out = Vec::new();
        let mut kept = VecDeque::new();
        for data in self.ready.drain(..) {
            let paused = self.partitions.get(&data.tp).is_some_and(|p| p.paused);
            if paused {
                kept.push_back(data);
            } else {
                out.push(data);
            }
        }
        self.ready = kept;
        out
    }

    /// Bytes of records waiting for `poll` that `poll` would hand out now.
    fn buffered_unpaused(&self) -> usize {
        self.ready
            .iter()
            .filter(|d| !self.partitions.get(&d.tp).is_some_and(|p| p.paused))
            .map(|d| d.records.len())
            .sum()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn partition_max_bytes(&self) -> i32 {
        i32::try_from(self.config.partition_max_bytes).unwrap_or(i32::MAX)
    }

    fn max_bytes(&self) -> i32 {
        i32::try_from(self.config.max_bytes).unwrap_or(i32::MAX)
    }

    /// Starts the router, once.
    fn start(self: &Arc<Self>) {
        let mut st = self.lock();
        if st.router.is_none() && !st.closed {
            let task = tokio::spawn(router::run(Arc::clone(self)));
            st.router = Some(task.abort_handle());
        }
    }

    fn shutdown(&self) {
        let mut st = self.lock();
        st.closed = true;
        if let Some(router) = st.router.take() {
            router.abort();
        }
        for (_, l) in st.loops.drain() {
            l.task.abort();
        }
    }

    fn wake_loops(&self, st: &State) {
        for l in st.loops.values() {
            l.wake.notify_one();
        }
    }

    fn wake_all(&self, st: &State) {
        self.wake_loops(st);
        self.router_wake.notify_one();
    }

    /// The loop for `node`, started if there is none (or it ended).
    fn ensure_loop(self: &Arc<Self>, st: &mut State, node: i32) {
        if st.closed {
            return;
        }
        if let Some(l) = st.loops.get(&node) {
            if !l.task.is_finished() {
                l.wake.notify_one();
                return;
            }
        }
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(leader::run(Arc::clone(self), node, Arc::clone(&wake)));
        st.loops.insert(
            node,
            LeaderLoop {
                wake,
                task: task.abort_handle(),
            },
        );
    }

    /// Hands `code` to the engine for `tp` and stops fetching it.
    fn park(st: &mut State, tp: &TopicPartition, code: KafkaCode) {
        let Some(part) = st.partitions.get_mut(tp) else {
            return;
        };
        tracing::warn!(partition = %tp, offset = part.position, error = %code, "partition stopped");
        part.parked = true;
        st.ready.push_back(PartitionData {
            tp: tp.clone(),
            fetch_offset: part.position,
            records: Bytes::new(),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: Vec::new(),
            error: Some(code),
        });
    }

    /// Records a non-retriable failure for `poll` (the first one wins).
    fn set_fatal(&self, st: &mut State, e: ClientError) {
        if st.fatal.is_none() {
            st.fatal = Some(e);
            self.data_ready.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(tp: &TopicPartition, len: usize) -> PartitionData {
        PartitionData {
            tp: tp.clone(),
            fetch_offset: 0,
            records: Bytes::from(vec![0; len]),
            high_watermark: 0,
            last_stable_offset: 0,
            log_start_offset: 0,
            aborted_transactions: Vec::new(),
            error: None,
        }
    }

    #[test]
    fn paused_data_stays_buffered_and_does_not_count_against_the_limit() {
        let a = TopicPartition::new("t", 0);
        let b = TopicPartition::new("t", 1);
        let mut st = State::default();
        for tp in [&a, &b] {
            st.partitions
                .insert(tp.clone(), Part::new(0, 1024, Backoff::default()));
        }
        st.ready.extend([data(&a, 10), data(&b, 20), data(&a, 5)]);
        if let Some(p) = st.partitions.get_mut(&b) {
            p.paused = true;
        }
        assert_eq!(st.buffered_unpaused(), 15);
        let out = st.take_ready();
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|d| d.tp == a));
        assert_eq!(st.ready.len(), 1);
        assert_eq!(st.buffered_unpaused(), 0);
    }

    #[test]
    fn defaults_are_the_consumer_defaults() {
        let c = FetcherConfig::default();
        assert_eq!(c.isolation, Isolation::ReadCommitted);
        assert_eq!(c.max_wait, Duration::from_millis(500));
        assert_eq!((c.min_bytes, c.max_bytes), (1, 50 << 20));
        assert_eq!(c.partition_max_bytes, 1 << 20);
        assert_eq!(c.backoff.delay(1), Duration::from_millis(100));
        assert_eq!(c.backoff.delay(10), Duration::from_secs(1));
    }

    #[test]
    fn reroute_is_immediate_first_then_backs_off() {
        let mut p = Part::new(0, 1024, Backoff::default());
        p.leader = Some(Leader { node: 1, epoch: 0 });
        let now = Instant::now();
        p.reroute(now);
        assert_eq!(p.leader, None);
        assert_eq!(p.not_before, Some(now));
        p.reroute(now);
        assert_eq!(p.not_before, Some(now + Duration::from_millis(100)));
        p.retry_later(now);
        assert_eq!(p.not_before, Some(now + Duration::from_millis(400)));
    }
}
