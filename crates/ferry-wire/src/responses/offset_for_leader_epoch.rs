//! A hand-written, bounded OffsetForLeaderEpoch response decoder (versions
//! 2-4), for the same reason as [`crate::fetch`]: kafka-protocol allocates
//! arrays by the count read off the wire. Ferry asks it on brokers whose
//! Fetch has no diverging epoch (below v12) to check, after a leader
//! change, that the source still holds what was fetched (KIP-320).

use bytes::Bytes;

use crate::Result;
use crate::schema::{ResponseReader, check_version};

/// The versions Kafka 4 still speaks are 2-4; 2.1+ brokers all have v2.
pub const MIN_OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 2;
pub const MAX_OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const FIRST_FLEXIBLE: i16 = 4;

/// One OffsetForLeaderEpoch response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetForLeaderEpochResponse {
    pub throttle_time_ms: i32,
    pub topics: Vec<EpochEndTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochEndTopic {
    pub name: String,
    pub partitions: Vec<EpochEndOffset>,
}

/// The leader's answer for one partition: the largest epoch it holds at or
/// below the one asked for, and where that epoch ends in its log (`-1`, `-1`
/// when it cannot tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub partition: i32,
    pub error_code: i16,
    pub leader_epoch: i32,
    pub end_offset: i64,
}

/// Decodes an OffsetForLeaderEpoch response body (after the response header).
pub fn decode_offset_for_leader_epoch_response(
    body: Bytes,
    version: i16,
) -> Result<OffsetForLeaderEpochResponse> {
    check_version(
        "offset for leader epoch response version",
        version,
        MIN_OFFSET_FOR_LEADER_EPOCH_VERSION,
        MAX_OFFSET_FOR_LEADER_EPOCH_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = d.r.i32("throttle time")?;
    // Smallest topic: a 1-byte name length and a 1-byte partition count (compact).
    let n = d.array_len("topics", 2)?.unwrap_or(0);
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let name = d.required_string("topic name")?;
        // Each partition: error code, index, leader epoch, end offset.
        let n = d.array_len("partitions", 18)?.unwrap_or(0);
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            let error_code = d.r.i16("partition error code")?;
            let partition = d.r.i32("partition index")?;
            let leader_epoch = d.r.i32("leader epoch")?;
            let end_offset = d.r.i64("end offset")?;
            d.tagged_fields("partition", |_, _, _| Ok(()))?;
            partitions.push(EpochEndOffset {
                partition,
                error_code,
                leader_epoch,
                end_offset,
            });
        }
        d.tagged_fields("topic", |_, _, _| Ok(()))?;
        topics.push(EpochEndTopic { name, partitions });
    }
    d.tagged_fields("offset for leader epoch response", |_, _, _| Ok(()))?;
    d.finish("offset for leader epoch response")?;
    Ok(OffsetForLeaderEpochResponse {
        throttle_time_ms,
        topics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::testing::{
        THROTTLE, assert_malformed, every_truncation_fails, huge_array,
        one_topic_then_huge_partitions, refuses_versions_outside,
    };
    use bytes::BytesMut;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::offset_for_leader_epoch_response as kp;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    fn sample(topics: u8) -> kp::OffsetForLeaderEpochResponse {
        let partition = |i: i32| {
            kp::EpochEndOffset::default()
                .with_error_code(if i == 2 { 74 } else { 0 })
                .with_partition(i)
                .with_leader_epoch(if i == 2 { -1 } else { i + 3 })
                .with_end_offset(if i == 2 { -1 } else { 1000 * i64::from(i) })
        };
        let topic = |t: u8| {
            kp::OffsetForLeaderTopicResult::default()
                .with_topic(TopicName(StrBytes::from_string(format!("topic-{t}"))))
                .with_partitions((0..i32::from(t) + 1).map(partition).collect())
        };
        kp::OffsetForLeaderEpochResponse::default()
            .with_throttle_time_ms(9)
            .with_topics((0..topics).map(topic).collect())
    }

    proptest! {
        #[test]
        fn decodes_what_kafka_protocol_encodes(
            version in MIN_OFFSET_FOR_LEADER_EPOCH_VERSION..=MAX_OFFSET_FOR_LEADER_EPOCH_VERSION,
            topics in 0u8..4,
        ) {
            let theirs = sample(topics);
            let mut b = BytesMut::new();
            theirs.encode(&mut b, version).unwrap();
            let wire = b.freeze();
            let ours = decode_offset_for_leader_epoch_response(wire.clone(), version).unwrap();
            prop_assert_eq!(ours.throttle_time_ms, 9);
            prop_assert_eq!(ours.topics.len(), theirs.topics.len());
            for (o, t) in ours.topics.iter().zip(&theirs.topics) {
                prop_assert_eq!(o.name.as_str(), t.topic.as_str());
                prop_assert_eq!(o.partitions.len(), t.partitions.len());
                for (op, tp) in o.partitions.iter().zip(&t.partitions) {
                    prop_assert_eq!(op.partition, tp.partition);
                    prop_assert_eq!(op.error_code, tp.error_code);
                    prop_assert_eq!(op.leader_epoch, tp.leader_epoch);
                    prop_assert_eq!(op.end_offset, tp.end_offset);
                }
            }
            prop_assert!(every_truncation_fails(&wire, |b| decode_offset_for_leader_epoch_response(b, version)));
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let v2 = huge_array(&THROTTLE, false);
        let v4 = huge_array(&THROTTLE, true);
        for (body, version) in [(v2, 2), (v4, 4)] {
            assert_malformed(
                decode_offset_for_leader_epoch_response(body, version),
                "topics",
            );
        }
        let b = one_topic_then_huge_partitions();
        assert_malformed(decode_offset_for_leader_epoch_response(b, 3), "partitions");
    }

    refuses_versions_outside!(
        decode_offset_for_leader_epoch_response,
        MIN_OFFSET_FOR_LEADER_EPOCH_VERSION,
        MAX_OFFSET_FOR_LEADER_EPOCH_VERSION
    );
}
