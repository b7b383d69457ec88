//! One Produce request of many partitions: encoding the batches taken for
//! it, and finding each batch's answer in the response.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use ferry_wire::WireError;
use ferry_wire::produce::{
    EncodedRequest, FIRST_TOPIC_ID_VERSION, PartitionRecords, ProduceRequestParams, TopicRecords,
    TopicRef, encode_produce_body,
};
use ferry_wire::responses::produce::{ProducePartition, ProduceResponse, TopicKey};
use kafka_protocol::messages::ApiKey;
use uuid::Uuid;

use crate::error::{ClientError, KafkaCode};

/// One batch in a request: where it goes and what it was sent as.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    /// The producer's index of the partition.
    pub slot: usize,
    /// The batch's id in its partition's state.
    pub entry: u64,
    pub topic: Arc<str>,
    pub topic_id: Option<Uuid>,
    pub partition: i32,
    pub sequence: i32,
    pub record_count: i32,
    /// The batch's size and timestamps, for refusals the target topic's
    /// settings cause.
    pub batch_bytes: usize,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
}

/// The Produce version for a request: topic ids (v13) only if every topic
/// in it has one.
pub(crate) fn request_version(max_version: i16, parts: &[Part]) -> i16 {
    if parts.iter().all(|p| p.topic_id.is_some()) {
        max_version
    } else {
        max_version.min(FIRST_TOPIC_ID_VERSION - 1)
    }
}

/// Encodes `parts` (at most one per partition) with their batch chunks,
/// grouped by topic in first-seen order. The chunks are not copied.
pub(crate) fn encode(
    version: i16,
    acks: i16,
    timeout_ms: i32,
    parts: &[Part],
    chunks: Vec<[Bytes; 2]>,
) -> Result<EncodedRequest, WireError> {
    let mut topics: Vec<TopicRecords<'_>> = Vec::new();
    let mut by_topic: HashMap<&str, usize> = HashMap::new();
    for (part, batch) in parts.iter().zip(chunks) {
        let index = *by_topic.entry(&part.topic).or_insert_with(|| {
            let topic = match part.topic_id {
                Some(id) if version >= FIRST_TOPIC_ID_VERSION => TopicRef::Id(*id.as_bytes()),
                _ => TopicRef::Name(&part.topic),
            };
            topics.push(TopicRecords {
                topic,
                partitions: Vec::new(),
            });
            topics.len() - 1
        });
        if let Some(t) = topics.get_mut(index) {
            t.partitions.push(PartitionRecords {
                partition: part.partition,
                records: batch.into(),
            });
        }
    }
    let params = ProduceRequestParams {
        version,
        correlation_id: 0,
        client_id: None,
        transactional_id: None,
        acks,
        timeout_ms,
    };
    encode_produce_body(&params, &topics)
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum Key<'a> {
    Name(&'a str),
    Id([u8; 16]),
}

/// Each part's answer, in the order of `parts` (`None`: the response has
/// none, a broker bug the caller treats as retriable).
pub(crate) fn answers<'r>(
    version: i16,
    parts: &[Part],
    response: &'r ProduceResponse,
) -> Vec<Option<&'r ProducePartition>> {
    let by_id = version >= FIRST_TOPIC_ID_VERSION;
    let mut index: HashMap<(Key<'_>, i32), usize> = HashMap::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let key = match part.topic_id {
            Some(id) if by_id => Key::Id(*id.as_bytes()),
            _ => Key::Name(&part.topic),
        };
        index.insert((key, part.partition), i);
    }
    let mut out = vec![None; parts.len()];
    for topic in &response.topics {
        for p in &topic.partitions {
            let key = match &topic.topic {
                TopicKey::Name(name) => Key::Name(name),
                TopicKey::Id(id) => Key::Id(*id),
            };
            if let Some(slot) = index.get(&(key, p.partition)).and_then(|&i| out.get_mut(i)) {
                *slot = Some(p);
            }
        }
    }
    out
}

/// How many per-record errors an error message lists.
const RECORD_ERRORS_SHOWN: usize = 5;

/// The error for a partition the broker refused: names the broker, topic,
/// partition, the batch's base sequence, the code and the broker's message
/// (and per-record errors, e.g. for INVALID_RECORD).
pub(crate) fn partition_error(
    broker: &str,
    part: &Part,
    code: KafkaCode,
    answer: &ProducePartition,
) -> ClientError {
    let mut notes = Vec::new();
    if let Some(message) = answer.error_message.as_deref().filter(|m| !m.is_empty()) {
        notes.push(format!("broker message: {message:?}"));
    }
    if !answer.record_errors.is_empty() {
        let shown: Vec<String> = answer
            .record_errors
            .iter()
            .take(RECORD_ERRORS_SHOWN)
            .map(|(index, message)| match message {
                Some(m) => format!("record {index}: {m:?}"),
                None => format!("record {index}"),
            })
            .collect();
        let more = answer
            .record_errors
            .len()
            .saturating_sub(RECORD_ERRORS_SHOWN);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        notes.push(format!("record errors: {}{tail}", shown.join(", ")));
    }
    if let Some(fix) = topic_setting_note(code, part) {
        notes.push(fix);
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    ClientError::Kafka {
        broker: broker.to_owned(),
        api: ApiKey::Produce,
        code,
        context: format!(
            " for topic {:?} partition {}, batch base sequence {}{notes}",
            part.topic, part.partition, part.sequence
        ),
    }
}

/// What to change on the target when its topic settings refuse a batch
/// (see [`super::classify::topic_settings`]).
fn topic_setting_note(code: KafkaCode, part: &Part) -> Option<String> {
    match code {
        KafkaCode::INVALID_TIMESTAMP => Some(format!(
            "the target refuses the batch's timestamps (first {}, max {} ms since the epoch): \
             raise message.timestamp.after.max.ms (records stamped in the future; Kafka 4 allows \
             1 hour by default) or message.timestamp.before.max.ms (records stamped in the past) \
             on the target topic, then retry the partition",
            part.first_timestamp, part.max_timestamp
        )),
        KafkaCode::MESSAGE_TOO_LARGE => Some(format!(
            "the batch is {} bytes: raise max.message.bytes on the target topic (or \
             message.max.bytes on its brokers) to at least that, then retry the partition",
            part.batch_bytes
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Buf;
    use ferry_wire::responses::produce::ProduceTopic;
    use kafka_protocol::messages::ProduceRequest;
    use kafka_protocol::protocol::Decodable;

    use super::*;

    fn part(topic: &str, id: Option<u8>, partition: i32) -> Part {
        Part {
            slot: 0,
            entry: 0,
            topic: topic.into(),
            topic_id: id.map(|b| Uuid::from_bytes([b; 16])),
            partition,
            sequence: 7,
            record_count: 1,
            batch_bytes: 1234,
            first_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_009_000,
        }
    }

    fn answer(partition: i32, error_code: i16) -> ProducePartition {
        ProducePartition {
            partition,
            error_code,
            base_offset: i64::from(partition) * 10,
            log_append_time_ms: -1,
            log_start_offset: 0,
            record_errors: Vec::new(),
            error_message: None,
            current_leader: None,
        }
    }

    #[test]
    fn topic_ids_only_when_every_topic_has_one() {
        let with = [part("a", Some(1), 0), part("b", Some(2), 0)];
        let without = [part("a", Some(1), 0), part("b", None, 0)];
        assert_eq!(request_version(13, &with), 13);
        assert_eq!(request_version(13, &without), 12);
        assert_eq!(request_version(9, &with), 9);
    }

    #[test]
    fn groups_partitions_by_topic_without_copying() {
        let parts = [part("a", None, 0), part("b", None, 1), part("a", None, 2)];
        let payloads: Vec<[Bytes; 2]> = (0..3u8)
            .map(|i| [Bytes::from(vec![i; 61]), Bytes::from(vec![i; 100])])
            .collect();
        let ptrs: Vec<*const u8> = payloads.iter().map(|p| p[1].as_ptr()).collect();
        let encoded = encode(12, -1, 30_000, &parts, payloads).unwrap();
        for ptr in ptrs {
            assert!(
                encoded.chunks.iter().any(|c| c.as_ptr() == ptr),
                "payload copied"
            );
        }
        let mut body: Vec<u8> = Vec::new();
        for c in &encoded.chunks {
            body.extend_from_slice(c);
        }
        let mut buf = Bytes::from(body);
        let decoded = ProduceRequest::decode(&mut buf, 12).unwrap();
        assert!(!buf.has_remaining());
        assert_eq!(decoded.acks, -1);
        let shape: Vec<(String, Vec<i32>)> = decoded
            .topic_data
            .iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    t.partition_data.iter().map(|p| p.index).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [("a".to_owned(), vec![0, 2]), ("b".to_owned(), vec![1])]
        );
    }

    #[test]
    fn answers_are_matched_by_name_or_id() {
        let parts = [
            part("a", Some(1), 0),
            part("a", Some(1), 1),
            part("b", Some(2), 0),
        ];
        let response = ProduceResponse {
            topics: vec![
                ProduceTopic {
                    topic: TopicKey::Id([2; 16]),
                    partitions: vec![answer(0, 0)],
                },
                ProduceTopic {
                    topic: TopicKey::Id([1; 16]),
                    partitions: vec![answer(1, 6), answer(9, 0)],
                },
            ],
            throttle_time_ms: 0,
            node_endpoints: Vec::new(),
        };
        let got: Vec<Option<i16>> = answers(13, &parts, &response)
            .iter()
            .map(|a| a.map(|p| p.error_code))
            .collect();
        assert_eq!(got, [None, Some(6), Some(0)]);
        let by_name = ProduceResponse {
            topics: vec![ProduceTopic {
                topic: TopicKey::Name("a".into()),
                partitions: vec![answer(0, 0)],
            }],
            ..response
        };
        assert!(answers(12, &parts, &by_name)[0].is_some());
    }

    #[test]
    fn refusals_by_topic_settings_name_the_setting() {
        let part = part("orders", None, 3);
        let timestamp = partition_error(
            "b1:9092",
            &part,
            KafkaCode::INVALID_TIMESTAMP,
            &answer(3, 32),
        );
        let text = timestamp.to_string();
        for want in [
            "INVALID_TIMESTAMP (32)",
            "message.timestamp.after.max.ms",
            "message.timestamp.before.max.ms",
            "max 1700000009000",
            "\"orders\" partition 3",
        ] {
            assert!(text.contains(want), "{want:?} missing from {text}");
        }
        let too_large = partition_error(
            "b1:9092",
            &part,
            KafkaCode::MESSAGE_TOO_LARGE,
            &answer(3, 10),
        )
        .to_string();
        assert!(
            too_large.contains("max.message.bytes") && too_large.contains("1234 bytes"),
            "{too_large}"
        );
        let other = partition_error("b1:9092", &part, KafkaCode::INVALID_RECORD, &answer(3, 87));
        assert!(!other.to_string().contains("retry the partition"));
    }

    #[test]
    fn refusals_name_everything() {
        let mut a = answer(3, 87);
        a.error_message = Some("batch is bad".into());
        a.record_errors = (0..7).map(|i| (i, Some(format!("r{i}")))).collect();
        let e = partition_error(
            "b1:9092",
            &part("orders", None, 3),
            KafkaCode::INVALID_RECORD,
            &a,
        );
        let s = e.to_string();
        for want in [
            "b1:9092",
            "\"orders\" partition 3",
            "base sequence 7",
            "INVALID_RECORD (87)",
            "batch is bad",
            "record 4: \"r4\"",
            "2 more",
        ] {
            assert!(s.contains(want), "{want:?} missing from {s}");
        }
        assert_eq!(e.kafka_code(), Some(KafkaCode::INVALID_RECORD));
    }
}
