//! What a Produce partition error means for an idempotent producer.

use crate::error::KafkaCode;

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

#[cfg(test)]
mod tests {
    use super::*;

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
