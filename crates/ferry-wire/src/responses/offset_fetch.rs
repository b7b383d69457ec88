//! A hand-written, bounded OffsetFetch response decoder (versions 1-9), for
//! the same reason as [`crate::fetch`]: kafka-protocol allocates arrays by
//! the count read off the wire.
//!
//! Two layouts: v1-7 answer for the one group of the request (topics at
//! the top, a top-level error code from v2); v8+ (KIP-709) answer a list of
//! groups, each with its topics and error code. Both come out as a list of
//! groups here, with `group_id: None` for the single-group layout. Version 0
//! (offsets in ZooKeeper, removed by Kafka 4) is below ferry's floor; v10
//! (topic ids) is past what kafka-protocol's request encodes.

use bytes::Bytes;

use crate::Result;
use crate::schema::{ResponseReader, check_version};

pub const MIN_OFFSET_FETCH_RESPONSE_VERSION: i16 = 1;
pub const MAX_OFFSET_FETCH_RESPONSE_VERSION: i16 = 9;
const FIRST_FLEXIBLE: i16 = 6;
const FIRST_GROUPS: i16 = 8;

/// One OffsetFetch response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetFetchResponse {
    /// 0 below v3.
    pub throttle_time_ms: i32,
    /// One per group asked for (v8+); exactly one below v8.
    pub groups: Vec<OffsetFetchGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchGroup {
    /// The group this answers for (v8+); `None` below v8, where the response
    /// answers for the one group of the request.
    pub group_id: Option<String>,
    /// The group-level error (0 at v1, which has none).
    pub error_code: i16,
    pub topics: Vec<OffsetFetchTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchTopic {
    pub name: String,
    pub partitions: Vec<OffsetFetchPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchPartition {
    pub partition: i32,
    /// -1 if the group has no offset committed for the partition.
    pub committed_offset: i64,
    pub metadata: Option<String>,
    pub error_code: i16,
}

/// Decodes an OffsetFetch response body (everything after the response header).
pub fn decode_offset_fetch_response(body: Bytes, version: i16) -> Result<OffsetFetchResponse> {
    check_version(
        "offset fetch response version",
        version,
        MIN_OFFSET_FETCH_RESPONSE_VERSION,
        MAX_OFFSET_FETCH_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = if version >= 3 {
        d.r.i32("throttle time")?
    } else {
        0
    };
    let groups = if version >= FIRST_GROUPS {
        // Smallest group: id (1), topics count (1), error code (2), tags (1).
        let n = d.array_len("groups", 5)?.unwrap_or(0);
        let mut groups = Vec::with_capacity(n);
        for _ in 0..n {
            let group_id = d.required_string("group id")?;
            let topics = topics(&mut d, version)?;
            let error_code = d.r.i16("group error code")?;
            d.tagged_fields("group", |_, _, _| Ok(()))?;
            groups.push(OffsetFetchGroup {
                group_id: Some(group_id),
                error_code,
                topics,
            });
        }
        groups
    } else {
        let topics = topics(&mut d, version)?;
        let error_code = if version >= 2 {
            d.r.i16("error code")?
        } else {
            0
        };
        vec![OffsetFetchGroup {
            group_id: None,
            error_code,
            topics,
        }]
    };
    d.tagged_fields("offset fetch response", |_, _, _| Ok(()))?;
    d.finish("offset fetch response")?;
    Ok(OffsetFetchResponse {
        throttle_time_ms,
        groups,
    })
}

fn topics(d: &mut ResponseReader, version: i16) -> Result<Vec<OffsetFetchTopic>> {
    // Smallest topic: a 1-byte name length and a 1-byte partition count (compact).
    let n = d.array_len("topics", 2)?.unwrap_or(0);
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let name = d.required_string("topic name")?;
        // Smallest partition: index, offset, metadata length, error code.
        let n = d.array_len("partitions", 15)?.unwrap_or(0);
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            let partition = d.r.i32("partition index")?;
            let committed_offset = d.r.i64("committed offset")?;
            if version >= 5 {
                let _leader_epoch = d.r.i32("committed leader epoch")?;
            }
            let metadata = d.string("metadata")?;
            let error_code = d.r.i16("partition error code")?;
            d.tagged_fields("partition", |_, _, _| Ok(()))?;
            partitions.push(OffsetFetchPartition {
                partition,
                committed_offset,
                metadata,
                error_code,
            });
        }
        d.tagged_fields("topic", |_, _, _| Ok(()))?;
        topics.push(OffsetFetchTopic { name, partitions });
    }
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireError;
    use crate::responses::testing::{
        THROTTLE, assert_malformed, every_truncation_fails, huge_array,
        one_topic_then_huge_partitions, refuses_versions_outside, trailing_byte_fails,
    };
    use bytes::BytesMut;
    use kafka_protocol::messages::offset_fetch_response as kp;
    use kafka_protocol::messages::{GroupId, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    /// (topic, [(partition, offset, metadata, error)]) for one group.
    type Expected = Vec<(String, Vec<(i32, i64, Option<String>, i16)>)>;

    fn expected(topics: u8) -> Expected {
        (0..topics)
            .map(|t| {
                let parts = (0..i32::from(t) + 1)
                    .map(|p| {
                        (
                            p,
                            if p == 1 { -1 } else { 100 * i64::from(p) + 7 },
                            match p {
                                0 => Some("meta".to_owned()),
                                1 => None,
                                _ => Some(String::new()),
                            },
                            if p == 2 { 3 } else { 0 },
                        )
                    })
                    .collect();
                (format!("topic-{t}"), parts)
            })
            .collect()
    }

    fn str(s: &Option<String>) -> Option<StrBytes> {
        s.clone().map(StrBytes::from_string)
    }

    fn sample(version: i16, groups: u8, topics: u8) -> kp::OffsetFetchResponse {
        let flexible = version >= FIRST_FLEXIBLE;
        let mut r = kp::OffsetFetchResponse::default();
        if version >= 3 {
            r = r.with_throttle_time_ms(8);
        }
        if version >= FIRST_GROUPS {
            let group = |g: u8| {
                let ts = expected(topics)
                    .into_iter()
                    .map(|(name, parts)| {
                        let mut t = kp::OffsetFetchResponseTopics::default()
                            .with_name(TopicName(StrBytes::from_string(name)))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|(p, o, m, e)| {
                                        kp::OffsetFetchResponsePartitions::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(*o)
                                            .with_committed_leader_epoch(5)
                                            .with_metadata(str(m))
                                            .with_error_code(*e)
                                            .with_unknown_tagged_field(1, Bytes::from_static(b"x"))
                                    })
                                    .collect(),
                            );
                        t = t.with_unknown_tagged_field(2, Bytes::from_static(b"yy"));
                        t
                    })
                    .collect();
                kp::OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(format!("group-{g}"))))
                    .with_topics(ts)
                    .with_error_code(if g == 1 { 16 } else { 0 })
                    .with_unknown_tagged_field(3, Bytes::from_static(b"z"))
            };
            r = r.with_groups((0..groups).map(group).collect());
        } else {
            let ts = expected(topics)
                .into_iter()
                .map(|(name, parts)| {
                    let mut t = kp::OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name)))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|(p, o, m, e)| {
                                    let mut p = kp::OffsetFetchResponsePartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(*o)
                                        .with_metadata(str(m))
                                        .with_error_code(*e);
                                    if version >= 5 {
                                        p = p.with_committed_leader_epoch(5);
                                    }
                                    if flexible {
                                        p = p
                                            .with_unknown_tagged_field(1, Bytes::from_static(b"x"));
                                    }
                                    p
                                })
                                .collect(),
                        );
                    if flexible {
                        t = t.with_unknown_tagged_field(2, Bytes::from_static(b"yy"));
                    }
                    t
                })
                .collect();
            r = r.with_topics(ts);
            if version >= 2 {
                r = r.with_error_code(if groups == 1 { 16 } else { 0 });
            }
        }
        if flexible {
            r = r.with_unknown_tagged_field(0, Bytes::from_static(b"top"));
        }
        r
    }

    fn flatten(g: &OffsetFetchGroup) -> Expected {
        g.topics
            .iter()
            .map(|t| {
                let parts = t
                    .partitions
                    .iter()
                    .map(|p| {
                        (
                            p.partition,
                            p.committed_offset,
                            p.metadata.clone(),
                            p.error_code,
                        )
                    })
                    .collect();
                (t.name.clone(), parts)
            })
            .collect()
    }

    #[test]
    fn decodes_what_kafka_protocol_encodes() {
        for version in MIN_OFFSET_FETCH_RESPONSE_VERSION..=MAX_OFFSET_FETCH_RESPONSE_VERSION {
            for groups in 0..3u8 {
                for topics in 0..4u8 {
                    let theirs = sample(version, groups, topics);
                    let mut b = BytesMut::new();
                    theirs.encode(&mut b, version).unwrap();
                    let wire = b.freeze();
                    let ours = decode_offset_fetch_response(wire.clone(), version).unwrap();
                    assert_eq!(ours.throttle_time_ms, theirs.throttle_time_ms);
                    if version >= FIRST_GROUPS {
                        assert_eq!(ours.groups.len(), usize::from(groups));
                        for (i, g) in ours.groups.iter().enumerate() {
                            assert_eq!(g.group_id, Some(format!("group-{i}")));
                            assert_eq!(g.error_code, if i == 1 { 16 } else { 0 });
                            assert_eq!(flatten(g), expected(topics));
                        }
                    } else {
                        assert_eq!(ours.groups.len(), 1);
                        let g = &ours.groups[0];
                        assert_eq!(g.group_id, None);
                        assert_eq!(g.error_code, theirs.error_code);
                        assert_eq!(flatten(g), expected(topics));
                    }
                    let decode = |b| decode_offset_fetch_response(b, version);
                    assert!(every_truncation_fails(&wire, decode));
                    assert!(trailing_byte_fails(&wire, decode));
                }
            }
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        // v1: topics right away; v8: groups after the throttle time.
        let v1 = huge_array(&[], false);
        assert_malformed(decode_offset_fetch_response(v1, 1), "topics");
        let v8 = huge_array(&THROTTLE, true);
        assert_malformed(decode_offset_fetch_response(v8, 8), "groups");
        // v9: one group, then a huge topic count; then a huge partition count.
        let mut b = BytesMut::new();
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&[2, 2, b'g']);
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
        b.extend_from_slice(&[0u8; 16]);
        assert!(matches!(
            decode_offset_fetch_response(b.freeze(), 9),
            Err(WireError::Malformed { what: "topics", .. })
        ));
        let b = one_topic_then_huge_partitions();
        assert_malformed(decode_offset_fetch_response(b, 4), "partitions");
    }

    refuses_versions_outside!(
        decode_offset_fetch_response,
        MIN_OFFSET_FETCH_RESPONSE_VERSION,
        MAX_OFFSET_FETCH_RESPONSE_VERSION
    );
}
