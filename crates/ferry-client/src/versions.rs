//! API version negotiation.
//!
//! On connect we send ApiVersions v3 (KIP-511: it carries our software name
//! and version). A broker older than 2.4 does not know v3 and answers in the
//! v0 format with `UNSUPPORTED_VERSION`; we then ask again with v0. Answers
//! are read by ferry-wire's bounded decoder: this is the first response
//! read from any broker, before anything is known about it.
//!
//! For each API we speak `min(broker max, our max)`, where *our max* is what
//! kafka-protocol's message struct can encode (`<Msg as Message>::VERSIONS`).
//! `ApiKey::valid_versions()` is not used: in kafka-protocol 0.18 it is one
//! higher than the struct for OffsetCommit, OffsetFetch and InitProducerId,
//! and encoding at that version fails.
//!
//! We also keep our own floor per API and never go below it, whatever the
//! broker advertises: Kafka 4.0 advertises Produce v0 but rejects v0–2 and
//! closes the connection on versions KIP-896 removed.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use ferry_wire::responses::api_versions::{ApiVersionsResponse, decode_api_versions_response};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::{Request, StrBytes, VersionRange};

use crate::connection::{Connection, decode_bounded, encode_request};
use crate::error::{ClientError, KafkaCode, Result};

/// The ApiVersions version we try first (KIP-511, Kafka 2.4+).
const PREFERRED_API_VERSIONS_VERSION: i16 = 3;

/// The lowest version of each API ferry will speak.
///
/// These are the versions a Kafka 2.1 broker supports and Kafka 4 still
/// accepts (KIP-896), and below which features we rely on are missing:
/// Produce v3 and Fetch v4 for record batch v2 and transactions, Metadata v4
/// for `allow_auto_topic_creation = false`, ListOffsets v1 for offset lookups
/// without the removed v0 format.
pub fn floor(api: ApiKey) -> i16 {
    match api {
        ApiKey::Produce => 3,
        ApiKey::Fetch => 4,
        ApiKey::Metadata => 4,
        ApiKey::ListOffsets => 1,
        ApiKey::OffsetCommit => 2,
        ApiKey::OffsetFetch => 1,
        ApiKey::OffsetForLeaderEpoch => 2,
        ApiKey::CreateTopics => 2,
        ApiKey::DeleteTopics => 1,
        ApiKey::DescribeConfigs => 1,
        // Everything else: kafka-protocol's own minimum is the only floor.
        _ => 0,
    }
}

/// The version ranges one broker advertised.
#[derive(Clone, PartialEq)]
pub struct BrokerVersions {
    broker: String,
    ranges: BTreeMap<i16, VersionRange>,
}

impl fmt::Debug for BrokerVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, range) in &self.ranges {
            match ApiKey::try_from(*key) {
                Ok(api) => map.entry(&api, &format_args!("{}..={}", range.min, range.max)),
                Err(()) => map.entry(key, &format_args!("{}..={}", range.min, range.max)),
            };
        }
        map.finish()
    }
}

impl BrokerVersions {
    /// No ranges known: every API is reported as unsupported.
    pub(crate) fn empty(broker: &str) -> Self {
        Self {
            broker: broker.to_owned(),
            ranges: BTreeMap::new(),
        }
    }

    /// A table with the given `(api, min, max)` ranges, for tests.
    #[cfg(test)]
    pub(crate) fn from_ranges(broker: &str, ranges: &[(ApiKey, i16, i16)]) -> Self {
        Self {
            broker: broker.to_owned(),
            ranges: ranges
                .iter()
                .map(|&(api, min, max)| (api as i16, VersionRange { min, max }))
                .collect(),
        }
    }

    /// Builds the table from a decoded ApiVersions response.
    pub(crate) fn from_response(broker: &str, response: &ApiVersionsResponse) -> Result<Self> {
        if let Some(code) = KafkaCode::from_code(response.error_code) {
            return Err(ClientError::Kafka {
                broker: broker.to_owned(),
                api: ApiKey::ApiVersions,
                code,
                context: String::new(),
            });
        }
        let ranges = response
            .api_keys
            .iter()
            .map(|v| {
                let range = VersionRange {
                    min: v.min_version,
                    max: v.max_version,
                };
                (v.api_key, range)
            })
            .collect();
        Ok(Self {
            broker: broker.to_owned(),
            ranges,
        })
    }

    /// The range the broker advertised for `api`, if it offers it at all.
    pub fn broker_range(&self, api: ApiKey) -> Option<VersionRange> {
        self.ranges.get(&(api as i16)).copied()
    }

    /// The version to speak for request type `R`: the highest both sides
    /// support, never below our [`floor`].
    pub fn version_for<R: Request>(&self) -> Result<i16> {
        let api = ApiKey::try_from(R::KEY).map_err(|()| ClientError::UnknownApiKey {
            broker: self.broker.clone(),
            key: R::KEY,
        })?;
        self.pick(api, R::VERSIONS)
    }

    /// Like [`version_for`](Self::version_for), for an encoder of our own
    /// that supports `ours` (e.g. the hand-written Produce encoder).
    pub fn pick(&self, api: ApiKey, ours: VersionRange) -> Result<i16> {
        let broker = self
            .broker_range(api)
            .ok_or_else(|| ClientError::ApiNotSupported {
                broker: self.broker.clone(),
                api,
            })?;
        let our_min = ours.min.max(floor(api));
        let lowest = broker.min.max(our_min);
        let highest = broker.max.min(ours.max);
        if lowest > highest {
            return Err(ClientError::UnsupportedVersion {
                broker: self.broker.clone(),
                api,
                broker_min: broker.min,
                broker_max: broker.max,
                our_min,
                our_max: ours.max,
            });
        }
        Ok(highest)
    }
}

/// Runs ApiVersions on a fresh connection.
pub(crate) async fn negotiate(conn: &Connection) -> Result<BrokerVersions> {
    let broker = conn.broker();
    let version = PREFERRED_API_VERSIONS_VERSION;
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("ferry"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    let body = encode_request(&request, ApiKey::ApiVersions, version, broker)?;
    let reply = conn
        .send_raw(ApiKey::ApiVersions, version, vec![body])
        .await?;
    let response = match decode_api_versions(reply, version, broker)? {
        Some(response) => response,
        None => {
            tracing::debug!(
                broker,
                "broker does not speak ApiVersions v3; retrying with v0"
            );
            let body = encode_request(
                &ApiVersionsRequest::default(),
                ApiKey::ApiVersions,
                0,
                broker,
            )?;
            let reply = conn.send_raw(ApiKey::ApiVersions, 0, vec![body]).await?;
            decode_bounded(
                reply,
                ApiKey::ApiVersions,
                0,
                broker,
                decode_api_versions_response,
            )?
        }
    };
    BrokerVersions::from_response(broker, &response)
}

/// Decodes an ApiVersions response body, or returns `None` when the broker
/// said `UNSUPPORTED_VERSION`: such a reply is in the v0 format whatever we
/// asked for, so it must not be decoded as `version`.
fn decode_api_versions(
    body: Bytes,
    version: i16,
    broker: &str,
) -> Result<Option<ApiVersionsResponse>> {
    // error_code is the first field in every version.
    let code = match body.get(..2) {
        Some(&[hi, lo]) => KafkaCode::from_code(i16::from_be_bytes([hi, lo])),
        _ => None,
    };
    if version > 0 && code == Some(KafkaCode::UNSUPPORTED_VERSION) {
        return Ok(None);
    }
    decode_bounded(
        body,
        ApiKey::ApiVersions,
        version,
        broker,
        decode_api_versions_response,
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::{
        CreateTopicsRequest, FetchRequest, InitProducerIdRequest, MetadataRequest,
        OffsetCommitRequest, OffsetFetchRequest, ProduceRequest,
    };
    use kafka_protocol::protocol::Message;

    use super::*;

    fn table(ranges: &[(ApiKey, i16, i16)]) -> BrokerVersions {
        BrokerVersions::from_ranges("b:9092", ranges)
    }

    #[test]
    fn picks_the_highest_common_version() {
        // Kafka 4.1-like ranges.
        let v = table(&[
            (ApiKey::Produce, 0, 13),
            (ApiKey::Fetch, 4, 18),
            (ApiKey::Metadata, 0, 13),
            (ApiKey::OffsetCommit, 2, 10),
            (ApiKey::OffsetFetch, 1, 10),
            (ApiKey::InitProducerId, 0, 6),
        ]);
        assert_eq!(v.version_for::<ProduceRequest>().unwrap(), 13);
        assert_eq!(v.version_for::<FetchRequest>().unwrap(), 18);
        assert_eq!(v.version_for::<MetadataRequest>().unwrap(), 13);
        // The struct maxima, not ApiKey::valid_versions() (which says 10/10/6).
        assert_eq!(
            v.version_for::<OffsetCommitRequest>().unwrap(),
            OffsetCommitRequest::VERSIONS.max
        );
        assert_eq!(
            v.version_for::<OffsetFetchRequest>().unwrap(),
            OffsetFetchRequest::VERSIONS.max
        );
        assert_eq!(
            v.version_for::<InitProducerIdRequest>().unwrap(),
            InitProducerIdRequest::VERSIONS.max
        );
        assert!(ApiKey::OffsetCommit.valid_versions().max > OffsetCommitRequest::VERSIONS.max);
    }

    #[test]
    fn old_broker_gets_its_max() {
        // Kafka 2.1.
        let v = table(&[
            (ApiKey::Produce, 0, 7),
            (ApiKey::Fetch, 0, 10),
            (ApiKey::Metadata, 0, 7),
        ]);
        assert_eq!(v.version_for::<ProduceRequest>().unwrap(), 7);
        assert_eq!(v.version_for::<FetchRequest>().unwrap(), 10);
        assert_eq!(v.version_for::<MetadataRequest>().unwrap(), 7);
    }

    #[test]
    fn never_below_our_floor() {
        let v = table(&[(ApiKey::Produce, 0, 2), (ApiKey::Metadata, 0, 3)]);
        match v.version_for::<ProduceRequest>() {
            Err(ClientError::UnsupportedVersion {
                broker_max: 2,
                our_min: 3,
                ..
            }) => {}
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
        // Metadata v0-3 exist in kafka-protocol, but ferry needs v4.
        assert!(matches!(
            v.version_for::<MetadataRequest>(),
            Err(ClientError::UnsupportedVersion { our_min: 4, .. })
        ));
    }

    #[test]
    fn missing_api_is_reported() {
        let v = table(&[]);
        let err = v.version_for::<CreateTopicsRequest>().unwrap_err();
        assert!(matches!(
            err,
            ClientError::ApiNotSupported {
                api: ApiKey::CreateTopics,
                ..
            }
        ));
        assert!(err.to_string().contains("b:9092"));
    }

    #[test]
    fn own_encoder_range_is_respected() {
        let v = table(&[(ApiKey::Produce, 0, 13)]);
        assert_eq!(
            v.pick(ApiKey::Produce, VersionRange { min: 3, max: 11 })
                .unwrap(),
            11
        );
    }

    /// What a pre-2.4 broker sends back for ApiVersions v3: a v0 body with
    /// UNSUPPORTED_VERSION and its ranges.
    fn v0_error_body() -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(35);
        b.put_i32(1); // one entry
        b.put_i16(18);
        b.put_i16(0);
        b.put_i16(2);
        b.freeze()
    }

    #[test]
    fn unsupported_version_reply_is_not_decoded_as_v3() {
        assert!(
            decode_api_versions(v0_error_body(), 3, "b")
                .unwrap()
                .is_none()
        );
        // At v0 the same body is a real answer (an error one).
        let r = decode_api_versions(v0_error_body(), 0, "b")
            .unwrap()
            .unwrap();
        assert_eq!(r.error_code, 35);
        assert!(matches!(
            BrokerVersions::from_response("b", &r),
            Err(ClientError::Kafka {
                code: KafkaCode::UNSUPPORTED_VERSION,
                ..
            })
        ));
    }

    #[test]
    fn both_versions_we_ask_for_are_decodable() {
        use ferry_wire::responses::api_versions::{
            MAX_API_VERSIONS_RESPONSE_VERSION, MIN_API_VERSIONS_RESPONSE_VERSION,
        };
        let decodable = MIN_API_VERSIONS_RESPONSE_VERSION..=MAX_API_VERSIONS_RESPONSE_VERSION;
        assert!(decodable.contains(&PREFERRED_API_VERSIONS_VERSION));
        assert!(decodable.contains(&0));
    }

    #[test]
    fn a_huge_count_is_a_decode_error() {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i32(i32::MAX);
        b.put_bytes(0, 12);
        assert!(matches!(
            decode_api_versions(b.freeze(), 0, "b"),
            Err(ClientError::Decode {
                api: ApiKey::ApiVersions,
                version: 0,
                ..
            })
        ));
    }

    #[test]
    fn v0_response_builds_the_table() {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i32(2);
        for (key, min, max) in [(0i16, 0i16, 7i16), (1, 0, 10)] {
            b.put_i16(key);
            b.put_i16(min);
            b.put_i16(max);
        }
        let r = decode_api_versions(b.freeze(), 0, "b").unwrap().unwrap();
        let v = BrokerVersions::from_response("b", &r).unwrap();
        assert_eq!(
            v.broker_range(ApiKey::Fetch),
            Some(VersionRange { min: 0, max: 10 })
        );
        assert_eq!(v.version_for::<ProduceRequest>().unwrap(), 7);
    }
}
