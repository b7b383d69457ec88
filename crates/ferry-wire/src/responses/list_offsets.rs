//! A hand-written, bounded ListOffsets response decoder (versions 1-10), for
//! the same reason as [`crate::fetch`]: kafka-protocol allocates arrays by
//! the count read off the wire. Version 0 (a list of offsets per partition
//! instead of one) is below ferry's floor and not read.

use bytes::Bytes;

use crate::Result;
use crate::schema::{ResponseReader, check_version};

pub const MIN_LIST_OFFSETS_RESPONSE_VERSION: i16 = 1;
pub const MAX_LIST_OFFSETS_RESPONSE_VERSION: i16 = 10;
const FIRST_FLEXIBLE: i16 = 6;

/// One ListOffsets response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListOffsetsResponse {
    /// 0 below v2.
    pub throttle_time_ms: i32,
    pub topics: Vec<ListOffsetsTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsTopic {
    pub name: String,
    pub partitions: Vec<ListOffsetsPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsPartition {
    pub partition: i32,
    pub error_code: i16,
    /// The offset found, or -1 if there is none (e.g. no record at or after
    /// the timestamp asked for).
    pub offset: i64,
}

/// Decodes a ListOffsets response body (everything after the response header).
pub fn decode_list_offsets_response(body: Bytes, version: i16) -> Result<ListOffsetsResponse> {
    check_version(
        "list offsets response version",
        version,
        MIN_LIST_OFFSETS_RESPONSE_VERSION,
        MAX_LIST_OFFSETS_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = if version >= 2 {
        d.r.i32("throttle time")?
    } else {
        0
    };
    // Smallest topic: a 1-byte name length and a 1-byte partition count (compact).
    let n = d.array_len("topics", 2)?.unwrap_or(0);
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let name = d.required_string("topic name")?;
        // Smallest partition: index, error code, timestamp, offset.
        let n = d.array_len("partitions", 22)?.unwrap_or(0);
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            let partition = d.r.i32("partition index")?;
            let error_code = d.r.i16("partition error code")?;
            let _timestamp = d.r.i64("timestamp")?;
            let offset = d.r.i64("offset")?;
            if version >= 4 {
                let _leader_epoch = d.r.i32("leader epoch")?;
            }
            d.tagged_fields("partition", |_, _, _| Ok(()))?;
            partitions.push(ListOffsetsPartition {
                partition,
                error_code,
                offset,
            });
        }
        d.tagged_fields("topic", |_, _, _| Ok(()))?;
        topics.push(ListOffsetsTopic { name, partitions });
    }
    d.tagged_fields("list offsets response", |_, _, _| Ok(()))?;
    d.finish("list offsets response")?;
    Ok(ListOffsetsResponse {
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
    use kafka_protocol::messages::list_offsets_response as kp;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    fn sample(version: i16, topics: u8) -> kp::ListOffsetsResponse {
        let partition = |i: i32| {
            let mut p = kp::ListOffsetsPartitionResponse::default()
                .with_partition_index(i)
                .with_error_code(if i == 2 { 6 } else { 0 })
                .with_timestamp(1_700_000_000_000 + i64::from(i))
                .with_offset(if i == 2 { -1 } else { 1000 * i64::from(i) });
            if version >= 4 {
                p = p.with_leader_epoch(i + 3);
            }
            p
        };
        let topic = |t: u8| {
            kp::ListOffsetsTopicResponse::default()
                .with_name(TopicName(StrBytes::from_string(format!("topic-{t}"))))
                .with_partitions((0..i32::from(t) + 1).map(partition).collect())
        };
        let mut r =
            kp::ListOffsetsResponse::default().with_topics((0..topics).map(topic).collect());
        if version >= 2 {
            r = r.with_throttle_time_ms(9);
        }
        r
    }

    proptest! {
        #[test]
        fn decodes_what_kafka_protocol_encodes(
            version in MIN_LIST_OFFSETS_RESPONSE_VERSION..=MAX_LIST_OFFSETS_RESPONSE_VERSION,
            topics in 0u8..4,
        ) {
            let theirs = sample(version, topics);
            let mut b = BytesMut::new();
            theirs.encode(&mut b, version).unwrap();
            let wire = b.freeze();
            let ours = decode_list_offsets_response(wire.clone(), version).unwrap();
            prop_assert_eq!(ours.throttle_time_ms, theirs.throttle_time_ms);
            prop_assert_eq!(ours.topics.len(), theirs.topics.len());
            for (o, t) in ours.topics.iter().zip(&theirs.topics) {
                prop_assert_eq!(o.name.as_str(), t.name.as_str());
                prop_assert_eq!(o.partitions.len(), t.partitions.len());
                for (op, tp) in o.partitions.iter().zip(&t.partitions) {
                    prop_assert_eq!(op.partition, tp.partition_index);
                    prop_assert_eq!(op.error_code, tp.error_code);
                    prop_assert_eq!(op.offset, tp.offset);
                }
            }
            prop_assert!(every_truncation_fails(&wire, |b| decode_list_offsets_response(b, version)));
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        // v1: topics right away; v2+: after the throttle time.
        let v1 = huge_array(&[], false);
        let v10 = huge_array(&THROTTLE, true);
        for (body, version) in [(v1, 1), (v10, 10)] {
            assert_malformed(decode_list_offsets_response(body, version), "topics");
        }
        // A sane topic count, then a huge partition count.
        let b = one_topic_then_huge_partitions();
        assert_malformed(decode_list_offsets_response(b, 5), "partitions");
    }

    refuses_versions_outside!(
        decode_list_offsets_response,
        MIN_LIST_OFFSETS_RESPONSE_VERSION,
        MAX_LIST_OFFSETS_RESPONSE_VERSION
    );
}
