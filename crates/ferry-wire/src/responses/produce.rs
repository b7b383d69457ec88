//! A hand-written, bounded Produce response decoder (versions 3-13), for the
//! same reason as [`crate::fetch`]: kafka-protocol allocates arrays by the
//! count read off the wire, and ferry reads one of these per produce request.

use bytes::Bytes;

use crate::schema::ResponseReader;
pub use crate::schema::{NodeEndpoint, TopicKey};
use crate::{Result, WireError};

pub const MIN_PRODUCE_RESPONSE_VERSION: i16 = 3;
pub const MAX_PRODUCE_RESPONSE_VERSION: i16 = 13;
const FIRST_FLEXIBLE: i16 = 9;
const FIRST_TOPIC_ID: i16 = 13;

/// One Produce response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProduceResponse {
    pub topics: Vec<ProduceTopic>,
    pub throttle_time_ms: i32,
    /// Leader endpoints sent with NOT_LEADER errors (v10+, KIP-951).
    pub node_endpoints: Vec<NodeEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceTopic {
    pub topic: TopicKey,
    pub partitions: Vec<ProducePartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducePartition {
    pub partition: i32,
    pub error_code: i16,
    /// Offset of the batch's first record, or -1 on error.
    pub base_offset: i64,
    /// The append time for LogAppendTime topics, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// Per-record failures: `(index of the record in the batch, message)` (v8+).
    pub record_errors: Vec<(i32, Option<String>)>,
    pub error_message: Option<String>,
    /// `(leader_id, leader_epoch)` hint sent with leadership errors (v10+).
    pub current_leader: Option<(i32, i32)>,
}

/// Decodes a Produce response body (everything after the response header).
pub fn decode_produce_response(body: Bytes, version: i16) -> Result<ProduceResponse> {
    if !(MIN_PRODUCE_RESPONSE_VERSION..=MAX_PRODUCE_RESPONSE_VERSION).contains(&version) {
        return Err(WireError::InvalidField {
            what: "produce response version",
            value: i64::from(version),
        });
    }
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let n = d.array_len("topics", 2)?.unwrap_or(0);
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let topic = d.topic_key(version, FIRST_TOPIC_ID)?;
        // Smallest partition: index, error code, base offset, append time.
        let n = d.array_len("partitions", 22)?.unwrap_or(0);
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            partitions.push(partition(&mut d, version)?);
        }
        d.tagged_fields("topic", |_, _, _| Ok(()))?;
        topics.push(ProduceTopic { topic, partitions });
    }
    let throttle_time_ms = d.r.i32("throttle time")?;
    // KIP-951: tag 0 of the top-level tagged fields holds leader endpoints.
    let node_endpoints = d.node_endpoints_tag("produce response", version >= 10)?;
    d.finish("produce response")?;
    Ok(ProduceResponse {
        topics,
        throttle_time_ms,
        node_endpoints,
    })
}

fn partition(d: &mut ResponseReader, version: i16) -> Result<ProducePartition> {
    let partition = d.r.i32("partition index")?;
    let error_code = d.r.i16("partition error code")?;
    let base_offset = d.r.i64("base offset")?;
    let log_append_time_ms = d.r.i64("log append time")?;
    let log_start_offset = if version >= 5 {
        d.r.i64("log start offset")?
    } else {
        -1
    };
    let mut record_errors = Vec::new();
    let mut error_message = None;
    if version >= 8 {
        let n = d.array_len("record errors", 5)?.unwrap_or(0);
        record_errors.reserve(n);
        for _ in 0..n {
            let index = d.r.i32("record error index")?;
            let message = d.string("record error message")?;
            d.tagged_fields("record error", |_, _, _| Ok(()))?;
            record_errors.push((index, message));
        }
        error_message = d.string("error message")?;
    }
    let mut current_leader = None;
    d.tagged_fields("partition", |d, tag, field| {
        if tag == 0 && version >= 10 {
            let id = d.r.i32("current leader id")?;
            let epoch = d.r.i32("current leader epoch")?;
            d.tagged_fields("current leader", |_, _, _| Ok(()))?;
            current_leader = Some((id, epoch));
            d.end_of_tagged(field)?;
        }
        Ok(())
    })?;
    Ok(ProducePartition {
        partition,
        error_code,
        base_offset,
        log_append_time_ms,
        log_start_offset,
        record_errors,
        error_message,
        current_leader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::testing::every_truncation_fails;
    use bytes::BytesMut;
    use kafka_protocol::messages::produce_response as kp;
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    fn sample(version: i16, topics: u8, with_errors: bool) -> kp::ProduceResponse {
        let partition = |i: i32| {
            let mut p = kp::PartitionProduceResponse::default()
                .with_index(i)
                .with_error_code(if with_errors { 87 } else { 0 })
                .with_base_offset(100 * i64::from(i))
                .with_log_append_time_ms(-1);
            if version >= 5 {
                p = p.with_log_start_offset(3);
            }
            if version >= 8 && with_errors {
                p = p
                    .with_record_errors(vec![
                        kp::BatchIndexAndErrorMessage::default()
                            .with_batch_index(2)
                            .with_batch_index_error_message(Some(StrBytes::from_static_str("bad"))),
                    ])
                    .with_error_message(Some(StrBytes::from_static_str("INVALID_RECORD")));
            }
            if version >= 10 && with_errors {
                p = p.with_current_leader(
                    kp::LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(4))
                        .with_leader_epoch(8),
                );
            }
            p
        };
        let topic = |t: u8| {
            let mut tr = kp::TopicProduceResponse::default()
                .with_partition_responses((0..i32::from(t) + 1).map(partition).collect());
            if version >= 13 {
                tr = tr.with_topic_id(uuid::Uuid::from_bytes([t; 16]));
            } else {
                tr = tr.with_name(TopicName(StrBytes::from_string(format!("t{t}"))));
            }
            tr
        };
        let mut r = kp::ProduceResponse::default()
            .with_throttle_time_ms(5)
            .with_responses((0..topics).map(topic).collect());
        if version >= 10 && with_errors {
            r = r.with_node_endpoints(vec![
                kp::NodeEndpoint::default()
                    .with_node_id(BrokerId(4))
                    .with_host(StrBytes::from_static_str("b4"))
                    .with_port(9092),
            ]);
        }
        r
    }

    proptest! {
        #[test]
        fn decodes_what_kafka_protocol_encodes(
            version in MIN_PRODUCE_RESPONSE_VERSION..=MAX_PRODUCE_RESPONSE_VERSION,
            topics in 0u8..4,
            with_errors in any::<bool>(),
        ) {
            let theirs = sample(version, topics, with_errors);
            let mut b = BytesMut::new();
            theirs.encode(&mut b, version).unwrap();
            let wire = b.freeze();
            let ours = decode_produce_response(wire.clone(), version).unwrap();
            prop_assert_eq!(ours.throttle_time_ms, theirs.throttle_time_ms);
            prop_assert_eq!(ours.topics.len(), theirs.responses.len());
            prop_assert_eq!(ours.node_endpoints.len(), theirs.node_endpoints.len());
            for (o, t) in ours.topics.iter().zip(&theirs.responses) {
                match &o.topic {
                    TopicKey::Name(n) => prop_assert_eq!(n.as_str(), t.name.as_str()),
                    TopicKey::Id(id) => prop_assert_eq!(id, t.topic_id.as_bytes()),
                }
                for (op, tp) in o.partitions.iter().zip(&t.partition_responses) {
                    prop_assert_eq!(op.partition, tp.index);
                    prop_assert_eq!(op.error_code, tp.error_code);
                    prop_assert_eq!(op.base_offset, tp.base_offset);
                    prop_assert_eq!(op.log_start_offset, tp.log_start_offset);
                    prop_assert_eq!(op.record_errors.len(), tp.record_errors.len());
                    prop_assert_eq!(op.error_message.as_deref(), tp.error_message.as_deref());
                    if version >= 10 && with_errors {
                        prop_assert_eq!(op.current_leader, Some((4, 8)));
                    }
                }
            }
            prop_assert!(every_truncation_fails(&wire, |b| decode_produce_response(b, version)));
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&i32::MAX.to_be_bytes());
        b.extend_from_slice(&[0u8; 32]);
        assert!(matches!(
            decode_produce_response(b.freeze(), 8),
            Err(WireError::Malformed { what: "topics", .. })
        ));
    }
}
