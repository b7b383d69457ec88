//! Counts of retried failures, by cause, for an operator's metrics.
//!
//! The producer and the fetcher retry what can be retried without involving
//! the caller (leadership moves, timeouts, lost connections, throttling is
//! not counted). A [`RetryCounts`] handle lets the caller see how often, and
//! why, without parsing logs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::ClientError;

/// Retries so far by cause: the Kafka error name (`NOT_LEADER_OR_FOLLOWER`)
/// or the kind of failure (`connect`, `timeout`, `closed`, ...). Cheap to
/// clone; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct RetryCounts(Arc<Mutex<BTreeMap<&'static str, u64>>>);

impl RetryCounts {
    /// Counts one retry of `error`.
    pub(crate) fn record(&self, error: &ClientError) {
        self.record_cause(cause(error));
    }

    /// Counts one retry of a partition error (a Kafka error name).
    pub(crate) fn record_cause(&self, cause: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(cause)
            .or_default() += 1;
    }

    /// The counts now.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A short, bounded name for why `error` happened (a metric label value).
pub fn cause(error: &ClientError) -> &'static str {
    if let Some(name) = error.kafka_code().and_then(crate::KafkaCode::name) {
        return name;
    }
    match error {
        ClientError::Connect { .. } | ClientError::Bootstrap { .. } => "connect",
        ClientError::ConnectTimeout { .. } => "connect_timeout",
        ClientError::Io { .. } => "io",
        ClientError::Timeout { .. } => "timeout",
        ClientError::Closed { .. } => "closed",
        ClientError::Frame { .. } | ClientError::UnexpectedCorrelationId { .. } => "framing",
        ClientError::Decode { .. } | ClientError::IncompleteResponse { .. } => "bad_response",
        ClientError::NoLeader { .. } => "no_leader",
        ClientError::UnknownPartition { .. } | ClientError::UnknownBroker { .. } => "metadata",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::KafkaCode;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn counts_by_kafka_name_or_failure_kind() {
        let counts = RetryCounts::default();
        let kafka = ClientError::Kafka {
            broker: "b:9092".into(),
            api: ApiKey::Produce,
            code: KafkaCode::NOT_LEADER_OR_FOLLOWER,
            context: String::new(),
        };
        counts.record(&kafka);
        counts.record(&kafka);
        counts.record(&ClientError::Closed {
            broker: "b:9092".into(),
            mid_frame: false,
        });
        let snap = counts.snapshot();
        assert_eq!(snap.get("NOT_LEADER_OR_FOLLOWER"), Some(&2));
        assert_eq!(snap.get("closed"), Some(&1));
    }
}
