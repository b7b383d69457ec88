//! A hand-written, bounded IncrementalAlterConfigs response decoder
//! (versions 0-1), for the same reason as [`crate::fetch`]: kafka-protocol
//! allocates arrays by the count read off the wire.

use bytes::Bytes;

use crate::Result;
use crate::schema::{ResponseReader, check_version};

pub const MIN_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION: i16 = 0;
pub const MAX_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION: i16 = 1;
const FIRST_FLEXIBLE: i16 = 1;

/// One IncrementalAlterConfigs response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IncrementalAlterConfigsResponse {
    pub throttle_time_ms: i32,
    pub results: Vec<AlterConfigsResult>,
}

/// The outcome for one resource (for ferry, a topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterConfigsResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    /// 2 for a topic, 4 for a broker (Kafka's `ConfigResource.Type`).
    pub resource_type: i8,
    pub resource_name: String,
}

/// Decodes an IncrementalAlterConfigs response body (everything after the
/// response header).
pub fn decode_incremental_alter_configs_response(
    body: Bytes,
    version: i16,
) -> Result<IncrementalAlterConfigsResponse> {
    check_version(
        "incremental alter configs response version",
        version,
        MIN_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION,
        MAX_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = d.r.i32("throttle time")?;
    // Smallest result: error code, message length, type, name length.
    let n = d.array_len("results", 5)?.unwrap_or(0);
    let mut results = Vec::with_capacity(n);
    for _ in 0..n {
        let error_code = d.r.i16("result error code")?;
        let error_message = d.string("result error message")?;
        let resource_type = d.r.i8("resource type")?;
        let resource_name = d.required_string("resource name")?;
        d.tagged_fields("alter configs result", |_, _, _| Ok(()))?;
        results.push(AlterConfigsResult {
            error_code,
            error_message,
            resource_type,
            resource_name,
        });
    }
    d.tagged_fields("incremental alter configs response", |_, _, _| Ok(()))?;
    d.finish("incremental alter configs response")?;
    Ok(IncrementalAlterConfigsResponse {
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
    use kafka_protocol::messages::incremental_alter_configs_response as kp;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    fn sample(results: u8) -> kp::IncrementalAlterConfigsResponse {
        let result = |r: u8| {
            let failed = r == 1;
            kp::AlterConfigsResourceResponse::default()
                .with_error_code(if failed { 40 } else { 0 })
                .with_error_message(
                    failed.then(|| StrBytes::from_static_str("Invalid value x for retention.ms")),
                )
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(format!("topic-{r}")))
        };
        kp::IncrementalAlterConfigsResponse::default()
            .with_throttle_time_ms(6)
            .with_responses((0..results).map(result).collect())
    }

    proptest! {
        #[test]
        fn decodes_what_kafka_protocol_encodes(
            version in MIN_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION..=MAX_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION,
            results in 0u8..4,
        ) {
            let theirs = sample(results);
            let mut b = BytesMut::new();
            theirs.encode(&mut b, version).unwrap();
            let wire = b.freeze();
            let ours = decode_incremental_alter_configs_response(wire.clone(), version).unwrap();
            prop_assert_eq!(ours.throttle_time_ms, theirs.throttle_time_ms);
            prop_assert_eq!(ours.results.len(), theirs.responses.len());
            for (o, t) in ours.results.iter().zip(&theirs.responses) {
                prop_assert_eq!(o.error_code, t.error_code);
                prop_assert_eq!(o.error_message.as_deref(), t.error_message.as_deref());
                prop_assert_eq!(o.resource_type, t.resource_type);
                prop_assert_eq!(o.resource_name.as_str(), t.resource_name.as_str());
            }
            prop_assert!(every_truncation_fails(&wire, |b| decode_incremental_alter_configs_response(b, version)));
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let v0 = huge_array(&THROTTLE, false);
        let v1 = huge_array(&THROTTLE, true);
        for (body, version) in [(v0, 0), (v1, 1)] {
            assert_malformed(
                decode_incremental_alter_configs_response(body, version),
                "results",
            );
        }
    }

    refuses_versions_outside!(
        decode_incremental_alter_configs_response,
        MIN_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION,
        MAX_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION
    );
}
