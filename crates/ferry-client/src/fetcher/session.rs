//! One broker's fetch session (KIP-227), as plain state without I/O.
//!
//! A *full* fetch names every partition; the broker answers with a session
//! id and remembers the partitions and their fetch offsets. Later
//! *incremental* fetches carry the session id and the next epoch, and name
//! only what changed: partitions added or whose offset, size limit or
//! leader epoch changed, plus the ones to forget. The broker then answers
//! only for partitions that have something new, so a thousand idle
//! partitions cost nothing per request.
//!
//! Wire values (`FetchMetadata` in Kafka's clients):
//! - `(0, -1)`: sessionless full fetch (Fetch < v7).
//! - `(0, 0)`: full fetch that opens a new session.
//! - `(id, 0)`: full fetch that closes session `id` and opens a new one.
//! - `(id, n ≥ 1)`: incremental fetch `n` of session `id`; `n` wraps from
//!   `i32::MAX` to 1.
//!
//! The caller builds a [`FetchPlan`] with [`FetchSession::plan`], sends it,
//! and reports the outcome with [`FetchSession::completed`] or one of the
//! failure methods. Nothing changes until then, so a request that never got
//! an answer leaves the session as it was.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use uuid::Uuid;

use crate::error::KafkaCode;
use crate::topic::TopicPartition;

/// What the broker holds for one partition of the session: the values of
/// the last request that named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPartition {
    /// Needed when the session names topics by id (Fetch v13+).
    pub topic_id: Option<Uuid>,
    pub fetch_offset: i64,
    /// KIP-320 fencing: the leader epoch the fetcher believes in, or -1.
    pub current_leader_epoch: i32,
    pub max_bytes: i32,
    /// KIP-320 validation (Fetch v12+): the leader epoch of the last batch
    /// fetched, or -1 if unknown. A leader whose log differs from what was
    /// fetched answers with a diverging epoch instead of records.
    pub last_fetched_epoch: i32,
}

/// The session fields and partition lists of one Fetch request.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchPlan {
    pub session_id: i32,
    pub session_epoch: i32,
    /// Whether this request names every partition (and so replaces the session).
    pub full: bool,
    /// Whether topics are named by id (Fetch v13+) rather than by name.
    pub topic_ids: bool,
    /// Partitions to put in the request's topic list, in request order.
    pub send: Vec<(TopicPartition, SessionPartition)>,
    /// Partitions to put in the forgotten-topics list (incremental only).
    pub forget: Vec<(TopicPartition, Option<Uuid>)>,
}

/// Fetch session state for one broker. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct FetchSession {
    /// 0: no session.
    id: i32,
    /// The epoch of the next incremental request; 0: the next request is full.
    epoch: i32,
    /// How the session names topics; switching needs a full fetch.
    topic_ids: bool,
    /// What the broker holds, by partition.
    partitions: BTreeMap<TopicPartition, SessionPartition>,
}

/// The first Fetch version with sessions.
pub const FIRST_SESSION_VERSION: i16 = 7;

impl FetchSession {
    pub fn new() -> Self {
        Self::default()
    }

    /// The session id (0 if none).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The epoch the next incremental request will carry (0: next is full).
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// What the broker holds for `tp`: after [`completed`](Self::completed),
    /// the fetch offset the response for `tp` was read from.
    pub fn partition(&self, tp: &TopicPartition) -> Option<&SessionPartition> {
        self.partitions.get(tp)
    }

    /// Topic names by id, for mapping a v13+ response back to partitions.
    pub fn topics_by_id(&self) -> HashMap<Uuid, Arc<str>> {
        self.partitions
            .iter()
            .filter_map(|(tp, p)| p.topic_id.map(|id| (id, Arc::clone(&tp.topic))))
            .collect()
    }

    /// The request to send for `wanted` (the partitions to fetch now, in the
    /// order a full request should list them). `topic_ids`: the request
    /// names topics by id; `sessions`: the broker speaks Fetch v7+.
    pub fn plan(
        &self,
        wanted: &[(TopicPartition, SessionPartition)],
        topic_ids: bool,
        sessions: bool,
    ) -> FetchPlan {
        let full = |session_id, session_epoch| FetchPlan {
            session_id,
            session_epoch,
            full: true,
            topic_ids,
            send: wanted.to_vec(),
            forget: Vec::new(),
        };
        if !sessions {
            return full(0, -1);
        }
        // A recreated topic keeps its name but not its id; the broker's
        // session cannot express that change incrementally.
        let id_changed = wanted.iter().any(|(tp, w)| {
            self.partitions
                .get(tp)
                .is_some_and(|s| s.topic_id != w.topic_id)
        });
        if self.id == 0 || self.epoch == 0 || self.topic_ids != topic_ids || id_changed {
            return full(self.id, 0);
        }
        let send = wanted
            .iter()
            .filter(|(tp, w)| self.partitions.get(tp) != Some(w))
            .cloned()
            .collect();
        let keep: HashSet<&TopicPartition> = wanted.iter().map(|(tp, _)| tp).collect();
        let forget = self
            .partitions
            .iter()
            .filter(|(tp, _)| !keep.contains(tp))
            .map(|(tp, p)| (tp.clone(), p.topic_id))
            .collect();
        FetchPlan {
            session_id: self.id,
            session_epoch: self.epoch,
            full: false,
            topic_ids,
            send,
            forget,
        }
    }

    /// The broker answered `plan` without a top-level error, with
    /// `response_session_id`.
    pub fn completed(&mut self, plan: &FetchPlan, response_session_id: i32) {
        if plan.full {
            self.partitions = plan.send.iter().cloned().collect();
            self.topic_ids = plan.topic_ids;
            if plan.session_epoch < 0 {
                // Sessionless (Fetch < v7): every request stays full.
                self.id = 0;
                self.epoch = 0;
            } else {
                // Id 0: the broker did not open a session (its cache is
                // full); the next request asks again.
                self.id = response_session_id;
                self.epoch = i32::from(response_session_id != 0);
            }
            return;
        }
        for (tp, _) in &plan.forget {
            self.partitions.remove(tp);
        }
        self.partitions.extend(plan.send.iter().cloned());
        if response_session_id == 0 {
            // The broker closed the session: start over with a full fetch.
            self.id = 0;
            self.epoch = 0;
        } else {
            self.epoch = if self.epoch == i32::MAX {
                1
            } else {
                self.epoch + 1
            };
        }
    }

    /// Applies a top-level error code from the response to `plan`. Session
    /// errors drop the session; anything else makes the next request a full
    /// one that closes this session.
    pub fn failed_with(&mut self, code: KafkaCode) {
        if is_session_error(code) {
            self.lost();
        } else {
            self.failed();
        }
    }

    /// The request failed or its answer is unusable (connection lost,
    /// undecodable response): whether the broker saw it is unknown, so the
    /// next request is full, closing the old session if the broker still
    /// has it.
    pub fn failed(&mut self) {
        self.epoch = 0;
        self.partitions.clear();
    }

    /// Forces the next request to be full (e.g. to list a partition first,
    /// which only a full request can do), closing the current session.
    pub fn force_full(&mut self) {
        self.failed();
    }

    /// The broker no longer knows the session: the next request opens a
    /// new one.
    pub fn lost(&mut self) {
        self.id = 0;
        self.epoch = 0;
        self.partitions.clear();
    }
}

/// Top-level Fetch errors that mean the session is gone or out of step.
pub fn is_session_error(code: KafkaCode) -> bool {
    matches!(
        code,
        KafkaCode::FETCH_SESSION_ID_NOT_FOUND
            | KafkaCode::INVALID_FETCH_SESSION_EPOCH
            | KafkaCode::FETCH_SESSION_TOPIC_ID_ERROR
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    fn at(offset: i64) -> SessionPartition {
        SessionPartition {
            topic_id: None,
            fetch_offset: offset,
            current_leader_epoch: 3,
            max_bytes: 1 << 20,
            last_fetched_epoch: -1,
        }
    }

    fn names(list: &[(TopicPartition, SessionPartition)]) -> Vec<String> {
        list.iter().map(|(tp, _)| tp.to_string()).collect()
    }

    fn forgotten(plan: &FetchPlan) -> Vec<String> {
        plan.forget.iter().map(|(tp, _)| tp.to_string()).collect()
    }

    /// A session opened over a-0, a-1, b-0 at offset 0.
    fn opened() -> (FetchSession, Vec<(TopicPartition, SessionPartition)>) {
        let mut s = FetchSession::new();
        let wanted = vec![
            (tp("a", 0), at(0)),
            (tp("a", 1), at(0)),
            (tp("b", 0), at(0)),
        ];
        let plan = s.plan(&wanted, false, true);
        s.completed(&plan, 77);
        (s, wanted)
    }

    #[test]
    fn first_request_is_full_and_opens_a_session() {
        let s = FetchSession::new();
        let wanted = vec![(tp("b", 0), at(5)), (tp("a", 0), at(0))];
        let plan = s.plan(&wanted, false, true);
        assert!(plan.full);
        assert_eq!((plan.session_id, plan.session_epoch), (0, 0));
        // A full request keeps the caller's order.
        assert_eq!(names(&plan.send), ["b-0", "a-0"]);
        assert!(plan.forget.is_empty());

        let (s, _) = opened();
        assert_eq!((s.id(), s.epoch()), (77, 1));
        assert_eq!(s.partition(&tp("a", 1)).map(|p| p.fetch_offset), Some(0));
    }

    #[test]
    fn unchanged_partitions_are_not_resent() {
        let (mut s, wanted) = opened();
        let plan = s.plan(&wanted, false, true);
        assert!(!plan.full);
        assert_eq!((plan.session_id, plan.session_epoch), (77, 1));
        assert!(plan.send.is_empty() && plan.forget.is_empty());
        s.completed(&plan, 77);
        assert_eq!(s.epoch(), 2);
    }

    #[test]
    fn moved_positions_and_changed_limits_are_sent() {
        let (mut s, mut wanted) = opened();
        wanted[1].1.fetch_offset = 40; // a-1 advanced past returned data
        wanted[2].1.max_bytes = 4 << 20; // b-0 needs room for a large batch
        let plan = s.plan(&wanted, false, true);
        assert_eq!(names(&plan.send), ["a-1", "b-0"]);
        s.completed(&plan, 77);
        assert_eq!(s.partition(&tp("a", 1)).map(|p| p.fetch_offset), Some(40));

        // A new leader epoch (KIP-320) is a change too.
        wanted[0].1.current_leader_epoch = 4;
        let plan = s.plan(&wanted, false, true);
        assert_eq!(names(&plan.send), ["a-0"]);
        s.completed(&plan, 77);

        // So is a new epoch in the fetched records.
        wanted[1].1.last_fetched_epoch = 4;
        let plan = s.plan(&wanted, false, true);
        assert_eq!(names(&plan.send), ["a-1"]);
    }

    #[test]
    fn unassigned_and_paused_partitions_are_forgotten_and_resumed_ones_come_back() {
        let (mut s, wanted) = opened();
        // a-1 unassigned, b-0 paused: both simply stop being wanted.
        let fewer = vec![wanted[0].clone()];
        let plan = s.plan(&fewer, false, true);
        assert!(plan.send.is_empty());
        assert_eq!(forgotten(&plan), ["a-1", "b-0"]);
        s.completed(&plan, 77);
        assert!(s.partition(&tp("b", 0)).is_none());

        // b-0 resumed at the position it had.
        let back = vec![wanted[0].clone(), wanted[2].clone()];
        let plan = s.plan(&back, false, true);
        assert_eq!(names(&plan.send), ["b-0"]);
        assert!(plan.forget.is_empty());
        s.completed(&plan, 77);
        assert_eq!(s.epoch(), 3);
    }

    #[test]
    fn a_request_without_an_answer_changes_nothing() {
        let (s, mut wanted) = opened();
        wanted[0].1.fetch_offset = 9;
        let first = s.plan(&wanted, false, true);
        // Never completed: the same plan again.
        assert_eq!(s.plan(&wanted, false, true), first);
    }

    #[test]
    fn session_errors_open_a_new_session() {
        for code in [
            KafkaCode::FETCH_SESSION_ID_NOT_FOUND,
            KafkaCode::INVALID_FETCH_SESSION_EPOCH,
            KafkaCode::FETCH_SESSION_TOPIC_ID_ERROR,
        ] {
            let (mut s, wanted) = opened();
            s.failed_with(code);
            let plan = s.plan(&wanted, false, true);
            assert!(plan.full, "{code}");
            assert_eq!((plan.session_id, plan.session_epoch), (0, 0), "{code}");
            assert_eq!(plan.send.len(), 3);
        }
    }

    #[test]
    fn other_failures_close_the_session_with_a_full_fetch() {
        let (mut s, wanted) = opened();
        s.failed();
        let plan = s.plan(&wanted, false, true);
        assert!(plan.full);
        assert_eq!((plan.session_id, plan.session_epoch), (77, 0));
        s.completed(&plan, 78);
        assert_eq!((s.id(), s.epoch()), (78, 1));

        let (mut s, wanted) = opened();
        s.failed_with(KafkaCode::UNKNOWN_SERVER_ERROR);
        assert_eq!(s.plan(&wanted, false, true).session_epoch, 0);
    }

    #[test]
    fn switching_to_topic_ids_or_a_new_id_needs_a_full_fetch() {
        let (s, mut wanted) = opened();
        assert!(s.plan(&wanted, true, true).full);

        let (mut s, _) = opened();
        for (tp, w) in &mut wanted {
            w.topic_id = Some(Uuid::from_u128(if &*tp.topic == "a" { 1 } else { 3 }));
        }
        let plan = s.plan(&wanted, true, true);
        assert!(plan.full);
        s.completed(&plan, 90);
        assert!(!s.plan(&wanted, true, true).full);
        let ids = s.topics_by_id();
        assert_eq!(ids.get(&Uuid::from_u128(1)).map(|t| &**t), Some("a"));
        assert_eq!(ids.get(&Uuid::from_u128(3)).map(|t| &**t), Some("b"));
        // Topic "a" was recreated under a new id.
        wanted[0].1.topic_id = Some(Uuid::from_u128(2));
        assert!(s.plan(&wanted, true, true).full);
    }

    #[test]
    fn forgotten_partitions_carry_their_topic_id() {
        let mut s = FetchSession::new();
        let mut p = at(0);
        p.topic_id = Some(Uuid::from_u128(5));
        let plan = s.plan(&[(tp("a", 0), p)], true, true);
        s.completed(&plan, 1);
        let plan = s.plan(&[], true, true);
        assert_eq!(plan.forget, vec![(tp("a", 0), Some(Uuid::from_u128(5)))]);
        assert_eq!(
            s.topics_by_id().get(&Uuid::from_u128(5)).map(|t| &**t),
            Some("a")
        );
    }

    #[test]
    fn without_sessions_every_request_is_full_and_sessionless() {
        let mut s = FetchSession::new();
        let wanted = vec![(tp("a", 0), at(0))];
        for _ in 0..3 {
            let plan = s.plan(&wanted, false, false);
            assert!(plan.full);
            assert_eq!((plan.session_id, plan.session_epoch), (0, -1));
            s.completed(&plan, 0);
        }
        // The partitions are still known, to map responses back.
        assert!(s.partition(&tp("a", 0)).is_some());
    }

    #[test]
    fn a_broker_without_room_for_a_session_is_asked_again() {
        let mut s = FetchSession::new();
        let wanted = vec![(tp("a", 0), at(0))];
        let plan = s.plan(&wanted, false, true);
        s.completed(&plan, 0);
        let plan = s.plan(&wanted, false, true);
        assert!(plan.full);
        assert_eq!((plan.session_id, plan.session_epoch), (0, 0));
    }

    #[test]
    fn a_session_closed_by_the_broker_restarts_full() {
        let (mut s, wanted) = opened();
        let plan = s.plan(&wanted, false, true);
        s.completed(&plan, 0);
        let plan = s.plan(&wanted, false, true);
        assert!(plan.full);
        assert_eq!((plan.session_id, plan.session_epoch), (0, 0));
    }

    #[test]
    fn epochs_wrap_to_one() {
        let (mut s, wanted) = opened();
        s.epoch = i32::MAX;
        let plan = s.plan(&wanted, false, true);
        assert_eq!(plan.session_epoch, i32::MAX);
        s.completed(&plan, 77);
        assert_eq!(s.epoch(), 1);
    }
}
