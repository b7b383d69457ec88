//! A hand-written, bounded OffsetCommit response decoder (versions 2-9),
//! for the same reason as [`crate::fetch`]: kafka-protocol allocates arrays
//! by the count read off the wire. Versions 0-1 (removed by Kafka 4,
//! KIP-896) are below ferry's floor; v10 (topic ids) is past what
//! kafka-protocol's request encodes, so it is never asked for.

use bytes::Bytes;

use crate::Result;
use crate::schema::{ResponseReader, check_version};

pub const MIN_OFFSET_COMMIT_RESPONSE_VERSION: i16 = 2;
pub const MAX_OFFSET_COMMIT_RESPONSE_VERSION: i16 = 9;
const FIRST_FLEXIBLE: i16 = 8;

/// One OffsetCommit response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetCommitResponse {
    /// 0 below v3.
    pub throttle_time_ms: i32,
    pub topics: Vec<OffsetCommitTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitTopic {
    pub name: String,
    pub partitions: Vec<OffsetCommitPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitPartition {
    pub partition: i32,
    pub error_code: i16,
}

/// Decodes an OffsetCommit response body (everything after the response header).
pub fn decode_offset_commit_response(body: Bytes, version: i16) -> Result<OffsetCommitResponse> {
    check_version(
        "offset commit response version",
        version,
        MIN_OFFSET_COMMIT_RESPONSE_VERSION,
        MAX_OFFSET_COMMIT_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = if version >= 3 {
        d.r.i32("throttle time")?
    } else {
        0
    };
    // Smallest topic: a 1-byte name length and a 1-byte partition count (compact).
    let n = d.array_len("topics", 2)?.unwrap_or(0);
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let name = d.required_string("topic name")?;
        // Smallest partition: index and error code.
        let n = d.array_len("partitions", 6)?.unwrap_or(0);
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            let partition = d.r.i32("partition index")?;
            let error_code = d.r.i16("partition error code")?;
            d.tagged_fields("partition", |_, _, _| Ok(()))?;
            partitions.push(OffsetCommitPartition {
                partition,
                error_code,
            });
        }
        d.tagged_fields("topic", |_, _, _| Ok(()))?;
        topics.push(OffsetCommitTopic { name, partitions });
    }
    d.tagged_fields("offset commit response", |_, _, _| Ok(()))?;
    d.finish("offset commit response")?;
    Ok(OffsetCommitResponse {
        throttle_time_ms,
        topics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::responses::testing::{
        THROTTLE, assert_malformed, every_truncation_fails, huge_array,
        one_topic_then_huge_partitions, refuses_versions_outside, trailing_byte_fails,
    };
    use bytes::BytesMut;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::offset_commit_response as kp;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn sample(version: i16, topics: u8) -> kp::OffsetCommitResponse {
        let flexible = version >= FIRST_FLEXIBLE;
        let partition = |i: i32| {
            let mut p = kp::OffsetCommitResponsePartition::default()
                .with_partition_index(i)
                .with_error_code(if i == 1 { 25 } else { 0 });
            if flexible {
                p = p.with_unknown_tagged_field(1, Bytes::from_static(b"p"));
            }
            p
        };
        let topic = |t: u8| {
            let mut topic = kp::OffsetCommitResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(format!("topic-{t}"))))
                .with_partitions((0..i32::from(t) + 1).map(partition).collect());
            if flexible {
                topic = topic.with_unknown_tagged_field(2, Bytes::from_static(b"tt"));
            }
            topic
        };
        let mut r =
            kp::OffsetCommitResponse::default().with_topics((0..topics).map(topic).collect());
        if version >= 3 {
            r = r.with_throttle_time_ms(4);
        }
        if flexible {
            r = r.with_unknown_tagged_field(0, Bytes::from_static(b"r"));
        }
        r
    }

    #[test]
    fn decodes_what_kafka_protocol_encodes() {
        for version in MIN_OFFSET_COMMIT_RESPONSE_VERSION..=MAX_OFFSET_COMMIT_RESPONSE_VERSION {
            for topics in 0..4u8 {
                let theirs = sample(version, topics);
                let mut b = BytesMut::new();
                theirs.encode(&mut b, version).unwrap();
                let wire = b.freeze();
                let ours = decode_offset_commit_response(wire.clone(), version).unwrap();
                assert_eq!(ours.throttle_time_ms, theirs.throttle_time_ms);
                assert_eq!(ours.topics.len(), theirs.topics.len());
                for (o, t) in ours.topics.iter().zip(&theirs.topics) {
                    assert_eq!(o.name, t.name.as_str());
                    let parts: Vec<(i32, i16)> = t
                        .partitions
                        .iter()
                        .map(|p| (p.partition_index, p.error_code))
                        .collect();
                    let ours: Vec<(i32, i16)> = o
                        .partitions
                        .iter()
                        .map(|p| (p.partition, p.error_code))
                        .collect();
                    assert_eq!(ours, parts);
                }
                let decode = |b| decode_offset_commit_response(b, version);
                assert!(every_truncation_fails(&wire, decode));
                assert!(trailing_byte_fails(&wire, decode));
            }
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let v2 = huge_array(&[], false);
        let v9 = huge_array(&THROTTLE, true);
        for (body, version) in [(v2, 2), (v9, 9)] {
            assert_malformed(decode_offset_commit_response(body, version), "topics");
        }
        let b = one_topic_then_huge_partitions();
        assert_malformed(decode_offset_commit_response(b, 5), "partitions");
    }

    refuses_versions_outside!(
        decode_offset_commit_response,
        MIN_OFFSET_COMMIT_RESPONSE_VERSION,
        MAX_OFFSET_COMMIT_RESPONSE_VERSION
    );
}
