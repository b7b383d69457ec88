//! What a flow does when a partition task ends: a pure state machine.
//!
//! Nothing that can heal stops for good. A partition that ends on a
//! transient cause (the target unavailable past the delivery timeout, an
//! authorization refusal, a leadership change, a topic the target or the
//! source does not serve yet, a batch the target refuses until an operator
//! changes a topic setting) is restarted from its committed position after
//! an exponential backoff ([`backoff`], capped at [`MAX_BACKOFF`]), for as
//! long as it keeps failing. A partition that ends on a permanent cause (a
//! corrupt source batch, one that cannot be parsed, a source log truncated
//! under ferry's position, a bug) stays stopped until an operator restarts
//! it ([`Supervisor::restart_stopped`]); meanwhile its lag stays counted,
//! the flow is not ready, and `ferry status` shows it.
//!
//! The machine is fed events with the time (`now`) and answers what to log
//! and which partitions to start; the async flow only moves them.

use std::collections::HashMap;
use std::time::Duration;

use ferry_client::{KafkaCode, TopicPartition};
use tokio::time::Instant;

use crate::EngineError;

/// The first wait before a restart.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between restarts of a partition that keeps failing.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Whether an ending can heal by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Severity {
    /// Retried with backoff, forever.
    Transient,
    /// Stays stopped until an operator restarts it.
    Permanent,
}

/// Why a partition is not running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cause {
    pub severity: Severity,
    /// A short label for metrics and `ferry status` (a Kafka error name or
    /// a kind of failure).
    pub label: String,
    /// The full error, for the log and `/ready`.
    pub detail: String,
}

/// How a partition task's ending `error` is handled.
pub(super) fn classify(error: &EngineError) -> Cause {
    let (severity, label) = match error {
        EngineError::CorruptBatch { .. } => (Severity::Permanent, "corrupt_batch".to_owned()),
        // A record larger than the target topic's max.message.bytes: an
        // operator raises the limit, and the restart reads it again.
        EngineError::BadBatch {
            source: ferry_wire::WireError::RecordTooLarge { .. },
            ..
        } => (Severity::Transient, "record_too_large".to_owned()),
        EngineError::BadBatch { .. } => (Severity::Permanent, "bad_batch".to_owned()),
        EngineError::Internal { .. } => (Severity::Permanent, "internal".to_owned()),
        // Healed by the restart's resume scan (mirrored again from the
        // first lost record).
        EngineError::TargetTruncated { .. } => (Severity::Transient, "target_truncated".to_owned()),
        // A diverged source log needs an operator's decision; a batch over
        // the frame limit needs a config change and a restart.
        EngineError::SourceStopped { reason, .. } => (
            Severity::Permanent,
            match reason {
                ferry_client::StopReason::Diverged(_) => "source_diverged",
                _ => "frame_too_large",
            }
            .to_owned(),
        ),
        // Fetching past the source's end: the log was truncated under the
        // position (unclean election); resuming would guess.
        EngineError::SourcePartition {
            code: KafkaCode::OFFSET_OUT_OF_RANGE,
            ..
        } => (Severity::Permanent, "OFFSET_OUT_OF_RANGE".to_owned()),
        EngineError::SourcePartition { code, .. } => (Severity::Transient, code_label(*code)),
        // Every produce refusal is either transient (timeouts, leaders,
        // availability) or fixed by an operator on the target (ACLs,
        // max.message.bytes, message.timestamp.*, cleanup.policy): the
        // partition resumes by itself once it is.
        EngineError::Produce { error, .. } | EngineError::Cluster { source: error, .. } => {
            let label = error.kafka_code().map_or_else(
                || {
                    if matches!(**error, ferry_client::ClientError::NotDelivered { .. }) {
                        "not_delivered".to_owned()
                    } else {
                        "client".to_owned()
                    }
                },
                code_label,
            );
            (Severity::Transient, label)
        }
        EngineError::Checkpoint(_) => (Severity::Transient, "checkpoint".to_owned()),
        EngineError::Config { .. } => (Severity::Permanent, "config".to_owned()),
    };
    Cause {
        severity,
        label,
        detail: error.to_string(),
    }
}

/// A partition task that panicked: a bug, never retried blindly.
pub(super) fn panicked(detail: String) -> Cause {
    Cause {
        severity: Severity::Permanent,
        label: "panic".to_owned(),
        detail,
    }
}

fn code_label(code: KafkaCode) -> String {
    code.name()
        .map_or_else(|| format!("kafka_{}", code.code()), str::to_owned)
}

/// The wait before restart number `failures` (1 for the first).
pub(super) fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// One partition's state as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum State {
    /// A task runs it; `from` is where it started.
    Running { from: i64 },
    /// Ended on a transient cause; restarted at `at`.
    Retrying { at: Instant, cause: Cause },
    /// Ended on a permanent cause; restarted only on request.
    Stopped { cause: Cause },
}

#[derive(Debug, Clone)]
struct Entry {
    state: State,
    /// Endings since the partition last made progress.
    failures: u32,
    /// The cause last logged at warning level (once per state change).
    logged: Option<String>,
}

/// What the flow should log about a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Log {
    /// Nothing new: at most a debug line.
    Quiet,
    /// The partition will be restarted after `after` (first time for this
    /// cause).
    Retrying { after: Duration },
    /// The partition stays stopped.
    Stopped,
    /// A partition that had failed makes progress again.
    Recovered { failures: u32 },
}

/// Every partition the flow has started, and what became of it.
#[derive(Debug, Default)]
pub(super) struct Supervisor {
    partitions: HashMap<TopicPartition, Entry>,
}

impl Supervisor {
    /// Whether a task runs `tp` or it waits for a restart (either way:
    /// discovery must not start it again).
    pub(super) fn is_known(&self, tp: &TopicPartition) -> bool {
        self.partitions.contains_key(tp)
    }

    /// A task started for `tp` at source offset `from`.
    pub(super) fn started(&mut self, tp: &TopicPartition, from: i64) {
        let entry = self.partitions.entry(tp.clone()).or_insert_with(|| Entry {
            state: State::Running { from },
            failures: 0,
            logged: None,
        });
        entry.state = State::Running { from };
    }

    /// `tp`'s task ended with `cause` (or a restart attempt failed).
    pub(super) fn ended(&mut self, tp: &TopicPartition, cause: Cause, now: Instant) -> Log {
        let entry = self.partitions.entry(tp.clone()).or_insert_with(|| Entry {
            state: State::Running { from: 0 },
            failures: 0,
            logged: None,
        });
        let first = entry.logged.as_deref() != Some(cause.label.as_str());
        if first {
            entry.logged = Some(cause.label.clone());
        }
        match cause.severity {
            Severity::Transient => {
                entry.failures = entry.failures.saturating_add(1);
                let after = backoff(entry.failures);
                entry.state = State::Retrying {
                    at: now + after,
                    cause,
                };
                if first {
                    Log::Retrying { after }
                } else {
                    Log::Quiet
                }
            }
            Severity::Permanent => {
                entry.state = State::Stopped { cause };
                Log::Stopped
            }
        }
    }

    /// `tp` has committed up to `committed`: a partition that had failed
    /// and now moves past where it restarted is healthy again (its backoff
    /// starts afresh).
    pub(super) fn progressed(&mut self, tp: &TopicPartition, committed: i64) -> Log {
        let Some(entry) = self.partitions.get_mut(tp) else {
            return Log::Quiet;
        };
        match entry.state {
            State::Running { from } if committed > from && entry.failures > 0 => {
                let failures = entry.failures;
                entry.failures = 0;
                entry.logged = None;
                Log::Recovered { failures }
            }
            _ => Log::Quiet,
        }
    }

    /// Partitions whose restart is due at `now`.
    pub(super) fn due(&self, now: Instant) -> Vec<TopicPartition> {
        let mut due: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Retrying { at, .. } if at <= now))
            .map(|(tp, _)| tp.clone())
            .collect();
        due.sort();
        due
    }

    /// When the next restart is due, if any.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.partitions
            .values()
            .filter_map(|e| match e.state {
                State::Retrying { at, .. } => Some(at),
                _ => None,
            })
            .min()
    }

    /// An operator's request: every stopped partition is restarted now,
    /// with a fresh backoff. Returns how many.
    pub(super) fn restart_stopped(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for entry in self.partitions.values_mut() {
            if let State::Stopped { cause } = &entry.state {
                entry.state = State::Retrying {
                    at: now,
                    cause: cause.clone(),
                };
                entry.failures = 0;
                entry.logged = None;
                n += 1;
            }
        }
        n
    }

    /// `tp` no longer exists at the source: forget it.
    pub(super) fn forget(&mut self, tp: &TopicPartition) {
        self.partitions.remove(tp);
    }

    /// Every partition known, and its state.
    pub(super) fn states(&self) -> impl Iterator<Item = (&TopicPartition, &State)> {
        self.partitions.iter().map(|(tp, e)| (tp, &e.state))
    }

    /// (running, retrying, stopped) partition counts.
    pub(super) fn counts(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for e in self.partitions.values() {
            match e.state {
                State::Running { .. } => counts.0 += 1,
                State::Retrying { .. } => counts.1 += 1,
                State::Stopped { .. } => counts.2 += 1,
            }
        }
        counts
    }

    /// Why the flow is not ready because of its partitions, if it is not:
    /// a partition that is not running has records nobody copies.
    pub(super) fn not_ready_reason(&self) -> Option<String> {
        let (_, retrying, stopped) = self.counts();
        if retrying + stopped == 0 {
            return None;
        }
        let mut worst: Vec<(&TopicPartition, &Cause, bool)> = self
            .partitions
            .iter()
            .filter_map(|(tp, e)| match &e.state {
                State::Stopped { cause } => Some((tp, cause, true)),
                State::Retrying { cause, .. } => Some((tp, cause, false)),
                State::Running { .. } => None,
            })
            .collect();
        // Stopped ones first: they need an operator.
        worst.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(b.0)));
        let example = worst
            .first()
            .map(|(tp, cause, stopped)| {
                let what = if *stopped { "stopped" } else { "retrying" };
                format!("; e.g. {tp} {what}: {}", cause.label)
            })
            .unwrap_or_default();
        Some(format!(
            "{stopped} partition(s) stopped, {retrying} retrying{example}"
        ))
    }
}

/// Whether the flow's checkpoint (and offset map) writes succeed. A write
/// that keeps failing is not a warning to scroll past: a restart then
/// re-sends everything since the last written checkpoint, so the flow is
/// not ready while it lasts (issue 14 item 13).
#[derive(Debug, Default)]
pub(super) struct WriteHealth {
    failing: Option<(u32, String)>,
}

/// What a checkpoint write outcome changes, for the log.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum WriteLog {
    /// First failure (or a new error): warn.
    Failing,
    /// The same error again: nothing new to say.
    Quiet,
    /// Writes succeed again after `failures`.
    Recovered { failures: u32 },
    /// Healthy, as before.
    Fine,
}

impl WriteHealth {
    pub(super) fn record(&mut self, outcome: Result<(), String>) -> WriteLog {
        match (outcome, self.failing.take()) {
            (Ok(()), None) => WriteLog::Fine,
            (Ok(()), Some((failures, _))) => WriteLog::Recovered { failures },
            (Err(error), before) => {
                let (failures, log) = match before {
                    Some((n, last)) if last == error => (n + 1, WriteLog::Quiet),
                    Some((n, _)) => (n + 1, WriteLog::Failing),
                    None => (1, WriteLog::Failing),
                };
                self.failing = Some((failures, error));
                log
            }
        }
    }

    /// Why the flow is not ready, while writes fail.
    pub(super) fn not_ready_reason(&self) -> Option<String> {
        self.failing.as_ref().map(|(n, error)| {
            format!(
                "checkpoint writes failing ({n} in a row: {error}); a restart now would re-send \
                 what was mirrored since the last written checkpoint"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("orders", p)
    }

    fn transient(label: &str) -> Cause {
        Cause {
            severity: Severity::Transient,
            label: label.to_owned(),
            detail: format!("{label} happened"),
        }
    }

    fn permanent(label: &str) -> Cause {
        Cause {
            severity: Severity::Permanent,
            ..transient(label)
        }
    }

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn produce_refusals_and_timeouts_heal_corrupt_data_does_not() {
        let source = TopicPartition::new("s", 0);
        let target = TopicPartition::new("t", 0);
        let produce = |error| EngineError::Produce {
            source_tp: source.clone(),
            target_tp: target.clone(),
            offset: 5,
            error: Box::new(error),
        };
        // Every produce refusal heals (the Kafka code is only its label).
        for (e, label) in [
            (
                produce(ferry_client::ClientError::NotDelivered {
                    topic: "t".into(),
                    partition: 0,
                    base_sequence: Some(3),
                    reason: "delivery timeout".into(),
                }),
                "not_delivered",
            ),
            (
                EngineError::SourcePartition {
                    tp: source.clone(),
                    offset: 1,
                    code: KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                },
                "UNKNOWN_TOPIC_OR_PARTITION",
            ),
            (
                EngineError::SourcePartition {
                    tp: source.clone(),
                    offset: 1,
                    code: KafkaCode::TOPIC_AUTHORIZATION_FAILED,
                },
                "TOPIC_AUTHORIZATION_FAILED",
            ),
            (
                EngineError::BadBatch {
                    tp: source.clone(),
                    offset: 1,
                    source: ferry_wire::WireError::RecordTooLarge {
                        offset: 1,
                        size: 200,
                        max: 50,
                    },
                },
                "record_too_large",
            ),
            (
                EngineError::TargetTruncated {
                    tp: source.clone(),
                    acknowledged_at: 5,
                    expected: 9,
                },
                "target_truncated",
            ),
        ] {
            let cause = classify(&e);
            assert_eq!(cause.severity, Severity::Transient, "{e}");
            assert_eq!(cause.label, label);
        }
        for e in [
            EngineError::CorruptBatch {
                tp: source.clone(),
                offset: 1,
                source: ferry_wire::WireError::Truncated {
                    what: "batch",
                    needed: 1,
                    available: 0,
                },
            },
            EngineError::SourcePartition {
                tp: source.clone(),
                offset: 1,
                code: KafkaCode::OFFSET_OUT_OF_RANGE,
            },
            EngineError::Internal {
                tp: source.clone(),
                detail: "x".into(),
            },
        ] {
            assert_eq!(classify(&e).severity, Severity::Permanent, "{e}");
        }
    }

    #[test]
    fn a_transient_ending_is_retried_with_backoff_and_logged_once() {
        let mut s = Supervisor::default();
        let t0 = Instant::now();
        s.started(&tp(0), 100);
        assert_eq!(
            s.ended(&tp(0), transient("not_delivered"), t0),
            Log::Retrying {
                after: Duration::from_secs(1)
            }
        );
        assert!(s.is_known(&tp(0)), "discovery must not start it twice");
        assert!(s.due(t0).is_empty());
        assert_eq!(s.next_due(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(s.due(t0 + Duration::from_secs(1)), vec![tp(0)]);
        // The restart fails the same way: quiet, and a longer wait.
        s.started(&tp(0), 100);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(s.ended(&tp(0), transient("not_delivered"), t1), Log::Quiet);
        assert_eq!(s.next_due(), Some(t1 + Duration::from_secs(2)));
        // A different cause is a state change: logged.
        s.started(&tp(0), 100);
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(
            s.ended(&tp(0), transient("TOPIC_AUTHORIZATION_FAILED"), t2),
            Log::Retrying {
                after: Duration::from_secs(4)
            }
        );
        assert_eq!(s.counts(), (0, 1, 0));
        assert!(s.not_ready_reason().unwrap().contains("1 retrying"));
    }

    #[test]
    fn progress_past_the_restart_resets_the_backoff() {
        let mut s = Supervisor::default();
        let t0 = Instant::now();
        s.started(&tp(0), 100);
        s.ended(&tp(0), transient("not_delivered"), t0);
        s.started(&tp(0), 100);
        assert_eq!(s.progressed(&tp(0), 100), Log::Quiet, "no progress yet");
        assert_eq!(s.progressed(&tp(0), 150), Log::Recovered { failures: 1 });
        assert_eq!(s.progressed(&tp(0), 200), Log::Quiet, "said once");
        assert_eq!(s.not_ready_reason(), None);
        // The next failure starts from the first backoff again, and is logged.
        assert_eq!(
            s.ended(&tp(0), transient("not_delivered"), t0),
            Log::Retrying {
                after: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn a_permanent_ending_stays_stopped_until_restarted() {
        let mut s = Supervisor::default();
        let t0 = Instant::now();
        s.started(&tp(0), 0);
        s.started(&tp(1), 0);
        assert_eq!(
            s.ended(&tp(1), permanent("corrupt_batch"), t0),
            Log::Stopped
        );
        assert_eq!(s.next_due(), None);
        assert!(s.due(t0 + MAX_BACKOFF * 10).is_empty());
        assert_eq!(s.counts(), (1, 0, 1));
        let why = s.not_ready_reason().unwrap();
        assert!(why.contains("orders-1 stopped: corrupt_batch"), "{why}");
        assert_eq!(s.restart_stopped(t0), 1);
        assert_eq!(s.due(t0), vec![tp(1)]);
    }

    #[test]
    fn forgotten_partitions_are_not_restarted() {
        let mut s = Supervisor::default();
        let t0 = Instant::now();
        s.started(&tp(0), 0);
        s.ended(&tp(0), transient("UNKNOWN_TOPIC_OR_PARTITION"), t0);
        s.forget(&tp(0));
        assert!(s.due(t0 + MAX_BACKOFF).is_empty());
        assert!(!s.is_known(&tp(0)));
    }

    #[test]
    fn failing_checkpoint_writes_make_the_flow_not_ready_until_one_succeeds() {
        let mut h = WriteHealth::default();
        assert_eq!(h.record(Ok(())), WriteLog::Fine);
        assert_eq!(h.not_ready_reason(), None);
        assert_eq!(h.record(Err("INVALID_TIMESTAMP".into())), WriteLog::Failing);
        assert_eq!(h.record(Err("INVALID_TIMESTAMP".into())), WriteLog::Quiet);
        let why = h.not_ready_reason().unwrap();
        assert!(why.contains("2 in a row: INVALID_TIMESTAMP"), "{why}");
        assert_eq!(h.record(Err("TIMEOUT".into())), WriteLog::Failing);
        assert_eq!(h.record(Ok(())), WriteLog::Recovered { failures: 3 });
        assert_eq!(h.not_ready_reason(), None);
    }
}
