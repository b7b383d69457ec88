//! What a Produce partition error means for an idempotent producer.

use kafka_protocol::messages::ApiKey;

use crate::error::{ClientError, KafkaCode};

/// How to handle one partition's answer to one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Written, now or by an earlier attempt. `DUPLICATE_SEQUENCE_NUMBER`
    /// lands here too: the broker already has the batch but no longer
    /// remembers its offset (the acknowledgement then carries offset -1).
    Written,
    /// Not written (or not known to be): resend with the same sequence
    /// numbers. `refresh_metadata` when leadership may have moved.
    Retry { refresh_metadata: bool },
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`: an earlier batch is missing, which is
    /// retriable if that batch is still ours to resend, and means the broker
    /// lost this producer's state if not.
    OutOfOrder,
    /// `UNKNOWN_PRODUCER_ID` (brokers before 2.5) or `INVALID_PRODUCER_EPOCH`:
    /// the broker's state for this producer is gone or newer; bump the epoch
    /// and start the partition's sequences over.
    ProducerState,
    /// Anything else: resending the same bytes cannot help. The batch fails
    /// and its partition stops.
    Fatal,
}

/// The verdict for a partition's error code (`None`: no error).
pub(crate) fn verdict(code: Option<KafkaCode>) -> Verdict {
    let Some(code) = code else {
        return Verdict::Written;
    };
    match code {
        KafkaCode::DUPLICATE_SEQUENCE_NUMBER => Verdict::Written,
        KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER => Verdict::OutOfOrder,
        KafkaCode::UNKNOWN_PRODUCER_ID | KafkaCode::INVALID_PRODUCER_EPOCH => {
            Verdict::ProducerState
        }
        // Retriable in Kafka's table (a batch corrupted in transit), but ferry
        // resends the very same bytes: a corrupt batch stays corrupt.
        KafkaCode::CORRUPT_MESSAGE => Verdict::Fatal,
        // Kafka's InvalidMetadataException family: leadership or the topic
        // itself changed, so the cached route is stale.
        KafkaCode::NOT_LEADER_OR_FOLLOWER
        | KafkaCode::LEADER_NOT_AVAILABLE
        | KafkaCode::UNKNOWN_TOPIC_OR_PARTITION
        | KafkaCode::FENCED_LEADER_EPOCH
        | KafkaCode::UNKNOWN_LEADER_EPOCH
        | KafkaCode::KAFKA_STORAGE_ERROR
        | KafkaCode::UNKNOWN_TOPIC_ID
        | KafkaCode::INCONSISTENT_TOPIC_ID
        | KafkaCode::REPLICA_NOT_AVAILABLE => Verdict::Retry {
            refresh_metadata: true,
        },
        c if c.is_retriable() => Verdict::Retry {
            refresh_metadata: false,
        },
        _ => Verdict::Fatal,
    }
}

/// The target topic settings that make a broker refuse a batch with
/// `code`, where changing them makes the same batch acceptable. Such a
/// refusal is still final for the batch (resending the same bytes under
/// the same settings fails the same way), but an operator can fix it.
pub(crate) fn topic_settings(code: KafkaCode) -> Option<&'static [&'static str]> {
    match code {
        // Kafka 4 refuses records stamped more than an hour ahead by default.
        KafkaCode::INVALID_TIMESTAMP => Some(&[
            "message.timestamp.after.max.ms",
            "message.timestamp.before.max.ms",
        ]),
        KafkaCode::MESSAGE_TOO_LARGE => Some(&["max.message.bytes"]),
        _ => None,
    }
}

impl ClientError {
    /// For a batch the target refused because of one of its topic's
    /// settings (`INVALID_TIMESTAMP`, `MESSAGE_TOO_LARGE`): the settings to
    /// change, after which producing the partition again can succeed. The
    /// error's message says the same. `None` for every other error: those
    /// are retried by the producer itself, or cannot be fixed by a setting.
    pub fn target_topic_settings(&self) -> Option<&'static [&'static str]> {
        match self {
            Self::Kafka {
                api: ApiKey::Produce,
                code,
                ..
            } => topic_settings(*code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_an_operator_can_fix_name_the_topic_setting() {
        let refused = |code| ClientError::Kafka {
            broker: "b:9092".into(),
            api: ApiKey::Produce,
            code,
            context: String::new(),
        };
        let timestamp = refused(KafkaCode::INVALID_TIMESTAMP);
        assert_eq!(
            timestamp.target_topic_settings(),
            Some(
                &[
                    "message.timestamp.after.max.ms",
                    "message.timestamp.before.max.ms"
                ][..]
            )
        );
        assert_eq!(verdict(timestamp.kafka_code()), Verdict::Fatal);
        assert_eq!(
            refused(KafkaCode::MESSAGE_TOO_LARGE).target_topic_settings(),
            Some(&["max.message.bytes"][..])
        );
        for code in [
            KafkaCode::INVALID_RECORD,
            KafkaCode::TOPIC_AUTHORIZATION_FAILED,
            KafkaCode::NOT_LEADER_OR_FOLLOWER,
        ] {
            assert_eq!(refused(code).target_topic_settings(), None, "{code}");
        }
        let fetch = ClientError::Kafka {
            broker: "b:9092".into(),
            api: ApiKey::Fetch,
            code: KafkaCode::MESSAGE_TOO_LARGE,
            context: String::new(),
        };
        assert_eq!(fetch.target_topic_settings(), None);
    }

    fn v(code: i16) -> Verdict {
        verdict(KafkaCode::from_code(code))
    }

    #[test]
    fn success_and_duplicates_are_written() {
        assert_eq!(v(0), Verdict::Written);
        assert_eq!(v(46), Verdict::Written);
    }

    #[test]
    fn leadership_errors_refresh_metadata() {
        for code in [6, 5, 3, 74, 75, 56, 100] {
            assert_eq!(
                v(code),
                Verdict::Retry {
                    refresh_metadata: true
                },
                "code {code}"
            );
        }
        for code in [19, 20, 7, 13] {
            assert_eq!(
                v(code),
                Verdict::Retry {
                    refresh_metadata: false
                },
                "code {code}"
            );
        }
    }

    #[test]
    fn sequence_and_producer_errors() {
        assert_eq!(v(45), Verdict::OutOfOrder);
        assert_eq!(v(59), Verdict::ProducerState);
        assert_eq!(v(47), Verdict::ProducerState);
    }

    #[test]
    fn refusals_are_fatal() {
        // MESSAGE_TOO_LARGE, INVALID_RECORD, CORRUPT_MESSAGE, TOPIC_AUTHORIZATION_FAILED,
        // INVALID_TIMESTAMP, UNSUPPORTED_COMPRESSION_TYPE, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        // INVALID_TXN_STATE, PRODUCER_FENCED, UNKNOWN_SERVER_ERROR, RECORD_LIST_TOO_LARGE,
        // an unknown code.
        for code in [10, 87, 2, 29, 32, 76, 53, 48, 90, -1, 18, 9999] {
            assert_eq!(v(code), Verdict::Fatal, "code {code}");
        }
    }
}
