//! A hand-written, bounded DescribeConfigs response decoder (versions 1-4),
//! for the same reason as [`crate::fetch`]: kafka-protocol allocates arrays
//! by the count read off the wire, and a topic has a few hundred configs,
//! each with synonyms. Version 0 (no config source, an `is_default` flag
//! instead) is below ferry's floor and not read.

use bytes::Bytes;

use crate::Result;
use crate::schema::{ResponseReader, check_version};

pub const MIN_DESCRIBE_CONFIGS_RESPONSE_VERSION: i16 = 1;
pub const MAX_DESCRIBE_CONFIGS_RESPONSE_VERSION: i16 = 4;
const FIRST_FLEXIBLE: i16 = 4;

/// One DescribeConfigs response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescribeConfigsResponse {
    pub throttle_time_ms: i32,
    pub results: Vec<DescribeConfigsResult>,
}

/// The configs of one resource (for ferry, a topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeConfigsResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    /// 2 for a topic, 4 for a broker (Kafka's `ConfigResource.Type`).
    pub resource_type: i8,
    pub resource_name: String,
    pub configs: Vec<DescribedConfig>,
}

/// One config of a resource. Synonyms, types and documentation are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: String,
    /// Null for sensitive configs and for configs without a value.
    pub value: Option<String>,
    pub read_only: bool,
    /// Where the value comes from (Kafka's `ConfigSource`: 1 is a topic
    /// override, 5 the static broker config, 6 the default, ...).
    pub config_source: i8,
    pub is_sensitive: bool,
}

/// Decodes a DescribeConfigs response body (everything after the response header).
pub fn decode_describe_configs_response(
    body: Bytes,
    version: i16,
) -> Result<DescribeConfigsResponse> {
    check_version(
        "describe configs response version",
        version,
        MIN_DESCRIBE_CONFIGS_RESPONSE_VERSION,
        MAX_DESCRIBE_CONFIGS_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = d.r.i32("throttle time")?;
    // Smallest result: error code, message and name lengths, type, config count.
    let n = d.array_len("results", 6)?.unwrap_or(0);
    let mut results = Vec::with_capacity(n);
    for _ in 0..n {
        results.push(result(&mut d, version)?);
    }
    d.tagged_fields("describe configs response", |_, _, _| Ok(()))?;
    d.finish("describe configs response")?;
    Ok(DescribeConfigsResponse {
        throttle_time_ms,
        results,
    })
}

fn result(d: &mut ResponseReader, version: i16) -> Result<DescribeConfigsResult> {
    let error_code = d.r.i16("result error code")?;
    let error_message = d.string("result error message")?;
    let resource_type = d.r.i8("resource type")?;
    let resource_name = d.required_string("resource name")?;
    // Smallest config: name and value lengths, read-only, source, sensitive,
    // synonym count.
    let n = d.array_len("configs", 6)?.unwrap_or(0);
    let mut configs = Vec::with_capacity(n);
    for _ in 0..n {
        configs.push(config(d, version)?);
    }
    d.tagged_fields("describe configs result", |_, _, _| Ok(()))?;
    Ok(DescribeConfigsResult {
        error_code,
        error_message,
        resource_type,
        resource_name,
        configs,
    })
}

fn config(d: &mut ResponseReader, version: i16) -> Result<DescribedConfig> {
    let name = d.required_string("config name")?;
    let value = d.string("config value")?;
    let read_only = d.boolean("config read only")?;
    let config_source = d.r.i8("config source")?;
    let is_sensitive = d.boolean("config is sensitive")?;
    // Smallest synonym: name and value lengths, source.
    let synonyms = d.array_len("config synonyms", 3)?.unwrap_or(0);
    for _ in 0..synonyms {
        let _name = d.string("synonym name")?;
        let _value = d.string("synonym value")?;
        let _source = d.r.i8("synonym source")?;
        d.tagged_fields("config synonym", |_, _, _| Ok(()))?;
    }
    if version >= 3 {
        let _config_type = d.r.i8("config type")?;
        let _documentation = d.string("config documentation")?;
    }
    d.tagged_fields("config", |_, _, _| Ok(()))?;
    Ok(DescribedConfig {
        name,
        value,
        read_only,
        config_source,
        is_sensitive,
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
    use kafka_protocol::messages::describe_configs_response as kp;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    fn sample(version: i16, results: u8) -> kp::DescribeConfigsResponse {
        let config = |i: u8| {
            let mut c = kp::DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_string(format!("config.{i}")))
                .with_value((i % 3 != 0).then(|| StrBytes::from_string(format!("v{i}"))))
                .with_read_only(i % 2 == 0)
                .with_config_source(i8::try_from(i % 7).unwrap())
                .with_is_sensitive(i % 3 == 0)
                .with_synonyms(
                    (0..i % 3)
                        .map(|s| {
                            kp::DescribeConfigsSynonym::default()
                                .with_name(StrBytes::from_string(format!("syn.{s}")))
                                .with_value((s == 0).then(|| StrBytes::from_static_str("x")))
                                .with_source(5)
                        })
                        .collect(),
                );
            if version >= 3 {
                c = c
                    .with_config_type(3)
                    .with_documentation(Some(StrBytes::from_static_str("what it does")));
            }
            c
        };
        let result = |r: u8| {
            kp::DescribeConfigsResult::default()
                .with_error_code(if r == 2 { 3 } else { 0 })
                .with_error_message((r == 2).then(|| StrBytes::from_static_str("unknown")))
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(format!("topic-{r}")))
                .with_configs((0..r * 4).map(config).collect())
        };
        kp::DescribeConfigsResponse::default()
            .with_throttle_time_ms(4)
            .with_results((0..results).map(result).collect())
    }

    proptest! {
        #[test]
        fn decodes_what_kafka_protocol_encodes(
            version in MIN_DESCRIBE_CONFIGS_RESPONSE_VERSION..=MAX_DESCRIBE_CONFIGS_RESPONSE_VERSION,
            results in 0u8..4,
        ) {
            let theirs = sample(version, results);
            let mut b = BytesMut::new();
            theirs.encode(&mut b, version).unwrap();
            let wire = b.freeze();
            let ours = decode_describe_configs_response(wire.clone(), version).unwrap();
            prop_assert_eq!(ours.throttle_time_ms, theirs.throttle_time_ms);
            prop_assert_eq!(ours.results.len(), theirs.results.len());
            for (o, t) in ours.results.iter().zip(&theirs.results) {
                prop_assert_eq!(o.error_code, t.error_code);
                prop_assert_eq!(o.error_message.as_deref(), t.error_message.as_deref());
                prop_assert_eq!(o.resource_type, t.resource_type);
                prop_assert_eq!(o.resource_name.as_str(), t.resource_name.as_str());
                prop_assert_eq!(o.configs.len(), t.configs.len());
                for (oc, tc) in o.configs.iter().zip(&t.configs) {
                    prop_assert_eq!(oc.name.as_str(), tc.name.as_str());
                    prop_assert_eq!(oc.value.as_deref(), tc.value.as_deref());
                    prop_assert_eq!(oc.read_only, tc.read_only);
                    prop_assert_eq!(oc.config_source, tc.config_source);
                    prop_assert_eq!(oc.is_sensitive, tc.is_sensitive);
                }
            }
            prop_assert!(every_truncation_fails(&wire, |b| decode_describe_configs_response(b, version)));
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let results = huge_array(&THROTTLE, false);
        assert_malformed(decode_describe_configs_response(results, 1), "results");
        // One result (v4, compact), then a huge config count.
        let mut configs = BytesMut::new();
        configs.extend_from_slice(&0i32.to_be_bytes());
        configs.extend_from_slice(&[2]); // one result
        configs.extend_from_slice(&0i16.to_be_bytes());
        configs.extend_from_slice(&[0, 2, 2, b't']); // null message, type, name "t"
        configs.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
        configs.extend_from_slice(&[0u8; 16]);
        assert!(matches!(
            decode_describe_configs_response(configs.freeze(), 4),
            Err(WireError::Malformed {
                what: "configs",
                ..
            })
        ));
    }

    refuses_versions_outside!(
        decode_describe_configs_response,
        MIN_DESCRIBE_CONFIGS_RESPONSE_VERSION,
        MAX_DESCRIBE_CONFIGS_RESPONSE_VERSION
    );
}
