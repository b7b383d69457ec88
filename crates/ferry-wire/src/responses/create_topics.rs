//! A hand-written, bounded CreateTopics response decoder (versions 2-7), for
//! the same reason as [`crate::fetch`]: kafka-protocol allocates arrays by
//! the count read off the wire. Only each topic's outcome is kept; the
//! configs that v5+ echo back are skipped.

use bytes::Bytes;

use crate::Result;
use crate::schema::{ResponseReader, check_version};

pub const MIN_CREATE_TOPICS_RESPONSE_VERSION: i16 = 2;
pub const MAX_CREATE_TOPICS_RESPONSE_VERSION: i16 = 7;
const FIRST_FLEXIBLE: i16 = 5;

/// One CreateTopics response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateTopicsResponse {
    pub throttle_time_ms: i32,
    pub topics: Vec<CreatedTopic>,
}

/// The outcome for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    pub name: String,
    pub error_code: i16,
    pub error_message: Option<String>,
}

/// Decodes a CreateTopics response body (everything after the response header).
pub fn decode_create_topics_response(body: Bytes, version: i16) -> Result<CreateTopicsResponse> {
    check_version(
        "create topics response version",
        version,
        MIN_CREATE_TOPICS_RESPONSE_VERSION,
        MAX_CREATE_TOPICS_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = d.r.i32("throttle time")?;
    // Smallest topic: name length, error code, message length.
    let n = d.array_len("topics", 4)?.unwrap_or(0);
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(topic(&mut d, version)?);
    }
    d.tagged_fields("create topics response", |_, _, _| Ok(()))?;
    d.finish("create topics response")?;
    Ok(CreateTopicsResponse {
        throttle_time_ms,
        topics,
    })
}

fn topic(d: &mut ResponseReader, version: i16) -> Result<CreatedTopic> {
    let name = d.required_string("topic name")?;
    // The id sits between name and error code, unlike in other responses.
    if version >= 7 {
        let _topic_id: [u8; 16] = d.r.array("topic id")?;
    }
    let error_code = d.r.i16("topic error code")?;
    let error_message = d.string("topic error message")?;
    if version >= 5 {
        let _num_partitions = d.r.i32("num partitions")?;
        let _replication_factor = d.r.i16("replication factor")?;
        // Smallest config: name and value lengths, read-only, source,
        // sensitive, tag count.
        let configs = d.array_len("topic configs", 6)?.unwrap_or(0);
        for _ in 0..configs {
            let _name = d.string("config name")?;
            let _value = d.string("config value")?;
            let _read_only = d.boolean("config read only")?;
            let _source = d.r.i8("config source")?;
            let _sensitive = d.boolean("config is sensitive")?;
            d.tagged_fields("topic config", |_, _, _| Ok(()))?;
        }
    }
    // Tag 0 (v5+) is the error for configs not echoed back; not ferry's concern.
    d.tagged_fields("topic", |_, _, _| Ok(()))?;
    Ok(CreatedTopic {
        name,
        error_code,
        error_message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireError;
    use crate::responses::testing::{
        THROTTLE, assert_malformed, every_truncation_fails, huge_array, refuses_versions_outside,
    };
    use bytes::BytesMut;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::create_topics_response as kp;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    fn sample(version: i16, topics: u8) -> kp::CreateTopicsResponse {
        let topic = |t: u8| {
            let failed = t == 1;
            let mut r = kp::CreatableTopicResult::default()
                .with_name(TopicName(StrBytes::from_string(format!("topic-{t}"))))
                .with_error_code(if failed { 36 } else { 0 })
                .with_error_message(
                    failed.then(|| StrBytes::from_static_str("Topic 'topic-1' already exists.")),
                );
            if version >= 5 {
                r = r
                    .with_num_partitions(i32::from(t) + 1)
                    .with_replication_factor(1)
                    .with_topic_config_error_code(if t == 2 { 29 } else { 0 })
                    .with_configs((!failed).then(|| {
                        (0..t)
                            .map(|c| {
                                kp::CreatableTopicConfigs::default()
                                    .with_name(StrBytes::from_string(format!("config.{c}")))
                                    .with_value(Some(StrBytes::from_static_str("1")))
                                    .with_config_source(5)
                            })
                            .collect()
                    }));
            }
            if version >= 7 {
                r = r.with_topic_id(uuid::Uuid::from_bytes([t + 1; 16]));
            }
            r
        };
        kp::CreateTopicsResponse::default()
            .with_throttle_time_ms(2)
            .with_topics((0..topics).map(topic).collect())
    }

    proptest! {
        #[test]
        fn decodes_what_kafka_protocol_encodes(
            version in MIN_CREATE_TOPICS_RESPONSE_VERSION..=MAX_CREATE_TOPICS_RESPONSE_VERSION,
            topics in 0u8..4,
        ) {
            let theirs = sample(version, topics);
            let mut b = BytesMut::new();
            theirs.encode(&mut b, version).unwrap();
            let wire = b.freeze();
            let ours = decode_create_topics_response(wire.clone(), version).unwrap();
            prop_assert_eq!(ours.throttle_time_ms, theirs.throttle_time_ms);
            prop_assert_eq!(ours.topics.len(), theirs.topics.len());
            for (o, t) in ours.topics.iter().zip(&theirs.topics) {
                prop_assert_eq!(o.name.as_str(), t.name.as_str());
                prop_assert_eq!(o.error_code, t.error_code);
                prop_assert_eq!(o.error_message.as_deref(), t.error_message.as_deref());
            }
            prop_assert!(every_truncation_fails(&wire, |b| decode_create_topics_response(b, version)));
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let topics = huge_array(&THROTTLE, false);
        assert_malformed(decode_create_topics_response(topics, 2), "topics");
        // One v5 topic whose echoed configs announce 2^31 entries.
        let mut configs = BytesMut::new();
        configs.extend_from_slice(&0i32.to_be_bytes());
        configs.extend_from_slice(&[2, 2, b't']); // one topic named "t"
        configs.extend_from_slice(&0i16.to_be_bytes());
        configs.extend_from_slice(&[0]); // null message
        configs.extend_from_slice(&1i32.to_be_bytes());
        configs.extend_from_slice(&1i16.to_be_bytes());
        configs.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
        configs.extend_from_slice(&[0u8; 16]);
        assert!(matches!(
            decode_create_topics_response(configs.freeze(), 5),
            Err(WireError::Malformed {
                what: "topic configs",
                ..
            })
        ));
    }

    refuses_versions_outside!(
        decode_create_topics_response,
        MIN_CREATE_TOPICS_RESPONSE_VERSION,
        MAX_CREATE_TOPICS_RESPONSE_VERSION
    );
}
