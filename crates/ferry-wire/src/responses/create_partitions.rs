//! A hand-written, bounded CreatePartitions response decoder (versions 0-3),
//! for the same reason as [`crate::fetch`]: kafka-protocol allocates arrays
//! by the count read off the wire.

use bytes::Bytes;

use crate::Result;
use crate::schema::{ResponseReader, check_version};

pub const MIN_CREATE_PARTITIONS_RESPONSE_VERSION: i16 = 0;
pub const MAX_CREATE_PARTITIONS_RESPONSE_VERSION: i16 = 3;
const FIRST_FLEXIBLE: i16 = 2;

/// One CreatePartitions response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreatePartitionsResponse {
    pub throttle_time_ms: i32,
    pub results: Vec<CreatePartitionsResult>,
}

/// The outcome for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePartitionsResult {
    pub name: String,
    pub error_code: i16,
    pub error_message: Option<String>,
}

/// Decodes a CreatePartitions response body (everything after the response header).
pub fn decode_create_partitions_response(
    body: Bytes,
    version: i16,
) -> Result<CreatePartitionsResponse> {
    check_version(
        "create partitions response version",
        version,
        MIN_CREATE_PARTITIONS_RESPONSE_VERSION,
        MAX_CREATE_PARTITIONS_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = d.r.i32("throttle time")?;
    // Smallest result: name length, error code, message length.
    let n = d.array_len("results", 4)?.unwrap_or(0);
    let mut results = Vec::with_capacity(n);
    for _ in 0..n {
        let name = d.required_string("topic name")?;
        let error_code = d.r.i16("result error code")?;
        let error_message = d.string("result error message")?;
        d.tagged_fields("create partitions result", |_, _, _| Ok(()))?;
        results.push(CreatePartitionsResult {
            name,
            error_code,
            error_message,
        });
    }
    d.tagged_fields("create partitions response", |_, _, _| Ok(()))?;
    d.finish("create partitions response")?;
    Ok(CreatePartitionsResponse {
        throttle_time_ms,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::testing::{
        THROTTLE, assert_malformed, every_truncation_fails, huge_array, refuses_versions_outside,
    };

    use bytes::BytesMut;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::create_partitions_response as kp;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    fn sample(results: u8) -> kp::CreatePartitionsResponse {
        let result = |r: u8| {
            let failed = r % 2 == 1;
            kp::CreatePartitionsTopicResult::default()
                .with_name(TopicName(StrBytes::from_string(format!("topic-{r}"))))
                .with_error_code(if failed { 37 } else { 0 })
                .with_error_message(
                    failed.then(|| StrBytes::from_static_str("Topic already has 3 partitions.")),
                )
        };
        kp::CreatePartitionsResponse::default()
            .with_throttle_time_ms(1)
            .with_results((0..results).map(result).collect())
    }

    proptest! {
        #[test]
        fn decodes_what_kafka_protocol_encodes(
            version in MIN_CREATE_PARTITIONS_RESPONSE_VERSION..=MAX_CREATE_PARTITIONS_RESPONSE_VERSION,
            results in 0u8..5,
        ) {
            let theirs = sample(results);
            let mut b = BytesMut::new();
            theirs.encode(&mut b, version).unwrap();
            let wire = b.freeze();
            let ours = decode_create_partitions_response(wire.clone(), version).unwrap();
            prop_assert_eq!(ours.throttle_time_ms, theirs.throttle_time_ms);
            prop_assert_eq!(ours.results.len(), theirs.results.len());
            for (o, t) in ours.results.iter().zip(&theirs.results) {
                prop_assert_eq!(o.name.as_str(), t.name.as_str());
                prop_assert_eq!(o.error_code, t.error_code);
                prop_assert_eq!(o.error_message.as_deref(), t.error_message.as_deref());
            }
            prop_assert!(every_truncation_fails(&wire, |b| decode_create_partitions_response(b, version)));
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let v0 = huge_array(&THROTTLE, false);
        let v3 = huge_array(&THROTTLE, true);
        for (body, version) in [(v0, 0), (v3, 3)] {
            assert_malformed(decode_create_partitions_response(body, version), "results");
        }
    }

    refuses_versions_outside!(
        decode_create_partitions_response,
        MIN_CREATE_PARTITIONS_RESPONSE_VERSION,
        MAX_CREATE_PARTITIONS_RESPONSE_VERSION
    );
}
