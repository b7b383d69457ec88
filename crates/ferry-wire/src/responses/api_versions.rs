//! A hand-written, bounded ApiVersions response decoder (versions 0-3), for
//! the same reason as [`crate::fetch`]: kafka-protocol allocates arrays by
//! the count read off the wire, and this is the first response ferry reads
//! from every broker it connects to, before it knows anything about it.
//!
//! Two things set ApiVersions apart. Its response *header* stays v0 (no
//! tagged fields) even when the body is flexible (v3+), so that a client can
//! read an answer to a version the broker does not know; see
//! [`super::header`]. And a broker that does not know the requested
//! version answers `UNSUPPORTED_VERSION` (35) in the **v0** body format,
//! whatever was asked: the caller must spot that (the error code is the
//! first field in every version) and decode such a reply as v0, not as the
//! version it sent.

use bytes::Bytes;

use crate::Result;
use crate::schema::{ResponseReader, check_version};

pub const MIN_API_VERSIONS_RESPONSE_VERSION: i16 = 0;
pub const MAX_API_VERSIONS_RESPONSE_VERSION: i16 = 3;
const FIRST_FLEXIBLE: i16 = 3;

/// One ApiVersions response: the version range of every API the broker offers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiVersionsResponse {
    pub error_code: i16,
    pub api_keys: Vec<ApiVersionRange>,
    /// 0 below v1.
    pub throttle_time_ms: i32,
}

/// The versions of one API the broker supports, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersionRange {
    pub api_key: i16,
    pub min_version: i16,
    pub max_version: i16,
}

/// Decodes an ApiVersions response body (everything after the response header).
pub fn decode_api_versions_response(body: Bytes, version: i16) -> Result<ApiVersionsResponse> {
    check_version(
        "api versions response version",
        version,
        MIN_API_VERSIONS_RESPONSE_VERSION,
        MAX_API_VERSIONS_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let error_code = d.r.i16("error code")?;
    // Smallest entry: key, min and max (plus a tag count when flexible).
    let n = d.array_len("api keys", 6)?.unwrap_or(0);
    let mut api_keys = Vec::with_capacity(n);
    for _ in 0..n {
        let api_key = d.r.i16("api key")?;
        let min_version = d.r.i16("api min version")?;
        let max_version = d.r.i16("api max version")?;
        d.tagged_fields("api version", |_, _, _| Ok(()))?;
        api_keys.push(ApiVersionRange {
            api_key,
            min_version,
            max_version,
        });
    }
    let throttle_time_ms = if version >= 1 {
        d.r.i32("throttle time")?
    } else {
        0
    };
    // Supported and finalized features (tags 0-3) are not ferry's concern.
    d.tagged_fields("api versions response", |_, _, _| Ok(()))?;
    d.finish("api versions response")?;
    Ok(ApiVersionsResponse {
        error_code,
        api_keys,
        throttle_time_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireError;
    use crate::responses::testing::every_truncation_fails;
    use bytes::BytesMut;
    use kafka_protocol::messages::api_versions_response as kp;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    fn sample(version: i16, apis: i16) -> kp::ApiVersionsResponse {
        let mut r = kp::ApiVersionsResponse::default()
            .with_error_code(if apis == 0 { 35 } else { 0 })
            .with_api_keys(
                (0..apis)
                    .map(|key| {
                        kp::ApiVersion::default()
                            .with_api_key(key)
                            .with_min_version(key % 3)
                            .with_max_version(key + 4)
                    })
                    .collect(),
            );
        if version >= 1 {
            r = r.with_throttle_time_ms(7);
        }
        if version >= 3 {
            // Tagged fields ferry skips.
            r = r
                .with_supported_features(vec![
                    kp::SupportedFeatureKey::default()
                        .with_name(StrBytes::from_static_str("metadata.version"))
                        .with_min_version(1)
                        .with_max_version(27),
                ])
                .with_finalized_features_epoch(12)
                .with_zk_migration_ready(true);
        }
        r
    }

    proptest! {
        #[test]
        fn decodes_what_kafka_protocol_encodes(
            version in MIN_API_VERSIONS_RESPONSE_VERSION..=MAX_API_VERSIONS_RESPONSE_VERSION,
            apis in 0i16..80,
        ) {
            let theirs = sample(version, apis);
            let mut b = BytesMut::new();
            theirs.encode(&mut b, version).unwrap();
            let wire = b.freeze();
            let ours = decode_api_versions_response(wire.clone(), version).unwrap();
            prop_assert_eq!(ours.error_code, theirs.error_code);
            prop_assert_eq!(ours.throttle_time_ms, theirs.throttle_time_ms);
            prop_assert_eq!(ours.api_keys.len(), theirs.api_keys.len());
            for (o, t) in ours.api_keys.iter().zip(&theirs.api_keys) {
                prop_assert_eq!(o.api_key, t.api_key);
                prop_assert_eq!(o.min_version, t.min_version);
                prop_assert_eq!(o.max_version, t.max_version);
            }
            prop_assert!(every_truncation_fails(&wire, |b| decode_api_versions_response(b, version)));
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let mut v0 = BytesMut::new();
        v0.extend_from_slice(&0i16.to_be_bytes());
        v0.extend_from_slice(&i32::MAX.to_be_bytes());
        v0.extend_from_slice(&[0u8; 12]);
        let mut v3 = BytesMut::new();
        v3.extend_from_slice(&0i16.to_be_bytes());
        v3.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // compact count 2^32-2
        v3.extend_from_slice(&[0u8; 12]);
        for (body, version) in [(v0, 0), (v3, 3)] {
            assert!(matches!(
                decode_api_versions_response(body.freeze(), version),
                Err(WireError::Malformed {
                    what: "api keys",
                    ..
                })
            ));
        }
    }

    #[test]
    fn trailing_bytes_and_unknown_versions_are_refused() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&[1]);
        assert!(decode_api_versions_response(b.freeze(), 0).is_err());
        assert!(decode_api_versions_response(Bytes::new(), -1).is_err());
        assert!(decode_api_versions_response(Bytes::new(), 4).is_err());
    }
}
