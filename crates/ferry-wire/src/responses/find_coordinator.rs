//! A hand-written, bounded FindCoordinator response decoder (versions 0-6),
//! for the same reason as [`crate::fetch`]: kafka-protocol allocates arrays
//! by the count read off the wire. Versions 0-3 answer for one key; from
//! v4 the response is a list of coordinators, one per key asked for. Both
//! come out as a list here (one entry, with an empty key, below v4).

use bytes::Bytes;

use crate::Result;
use crate::schema::{ResponseReader, check_version};

pub const MIN_FIND_COORDINATOR_RESPONSE_VERSION: i16 = 0;
pub const MAX_FIND_COORDINATOR_RESPONSE_VERSION: i16 = 6;
const FIRST_FLEXIBLE: i16 = 3;
const FIRST_BATCHED: i16 = 4;

/// One FindCoordinator response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FindCoordinatorResponse {
    /// 0 below v1.
    pub throttle_time_ms: i32,
    /// One per key asked for (v4+); exactly one below v4.
    pub coordinators: Vec<Coordinator>,
}

/// The coordinator of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    /// The key (group id) this answers for; empty below v4, where the
    /// response answers for the one key of the request.
    pub key: String,
    /// -1 with an error.
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub error_code: i16,
    /// Always `None` at v0.
    pub error_message: Option<String>,
}

/// Decodes a FindCoordinator response body (everything after the response header).
pub fn decode_find_coordinator_response(
    body: Bytes,
    version: i16,
) -> Result<FindCoordinatorResponse> {
    check_version(
        "find coordinator response version",
        version,
        MIN_FIND_COORDINATOR_RESPONSE_VERSION,
        MAX_FIND_COORDINATOR_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = if version >= 1 {
        d.r.i32("throttle time")?
    } else {
        0
    };
    let coordinators = if version >= FIRST_BATCHED {
        // Smallest coordinator: key (1), node id (4), host (1), port (4),
        // error code (2), error message (1), tagged fields (1).
        let n = d.array_len("coordinators", 14)?.unwrap_or(0);
        let mut coordinators = Vec::with_capacity(n);
        for _ in 0..n {
            let key = d.required_string("coordinator key")?;
            let node_id = d.r.i32("coordinator node id")?;
            let host = d.required_string("coordinator host")?;
            let port = d.r.i32("coordinator port")?;
            let error_code = d.r.i16("coordinator error code")?;
            let error_message = d.string("coordinator error message")?;
            d.tagged_fields("coordinator", |_, _, _| Ok(()))?;
            coordinators.push(Coordinator {
                key,
                node_id,
                host,
                port,
                error_code,
                error_message,
            });
        }
        coordinators
    } else {
        let error_code = d.r.i16("error code")?;
        let error_message = if version >= 1 {
            d.string("error message")?
        } else {
            None
        };
        let node_id = d.r.i32("node id")?;
        let host = d.required_string("host")?;
        let port = d.r.i32("port")?;
        vec![Coordinator {
            key: String::new(),
            node_id,
            host,
            port,
            error_code,
            error_message,
        }]
    };
    d.tagged_fields("find coordinator response", |_, _, _| Ok(()))?;
    d.finish("find coordinator response")?;
    Ok(FindCoordinatorResponse {
        throttle_time_ms,
        coordinators,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::testing::{
        THROTTLE, assert_malformed, every_truncation_fails, huge_array, refuses_versions_outside,
        trailing_byte_fails,
    };

    use bytes::BytesMut;
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::messages::find_coordinator_response as kp;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn sample(version: i16, keys: u8) -> kp::FindCoordinatorResponse {
        let tag = |v: i16| v >= FIRST_FLEXIBLE;
        let mut r = kp::FindCoordinatorResponse::default();
        if version >= 1 {
            r = r.with_throttle_time_ms(7);
        }
        if version >= FIRST_BATCHED {
            let coordinator = |i: u8| {
                let mut c = kp::Coordinator::default()
                    .with_key(StrBytes::from_string(format!("group-{i}")))
                    .with_node_id(BrokerId(i32::from(i)))
                    .with_host(StrBytes::from_string(format!("host-{i}")))
                    .with_port(9092 + i32::from(i))
                    .with_error_code(if i == 1 { 15 } else { 0 })
                    .with_error_message((i == 1).then(|| StrBytes::from_static_str("loading")));
                if tag(version) {
                    c = c.with_unknown_tagged_field(5, Bytes::from_static(b"xy"));
                }
                c
            };
            r = r.with_coordinators((0..keys).map(coordinator).collect());
        } else {
            r = r
                .with_error_code(if keys == 1 { 15 } else { 0 })
                .with_node_id(BrokerId(3))
                .with_host(StrBytes::from_static_str("broker-3"))
                .with_port(9094)
                .with_error_message((keys == 1).then(|| StrBytes::from_static_str("no")));
        }
        if tag(version) {
            r = r.with_unknown_tagged_field(9, Bytes::from_static(b"abc"));
        }
        r
    }

    #[test]
    fn decodes_what_kafka_protocol_encodes() {
        for version in MIN_FIND_COORDINATOR_RESPONSE_VERSION..=MAX_FIND_COORDINATOR_RESPONSE_VERSION
        {
            for keys in 0..3u8 {
                let theirs = sample(version, keys);
                let mut b = BytesMut::new();
                theirs.encode(&mut b, version).unwrap();
                let wire = b.freeze();
                let ours = decode_find_coordinator_response(wire.clone(), version).unwrap();
                assert_eq!(ours.throttle_time_ms, theirs.throttle_time_ms);
                if version >= FIRST_BATCHED {
                    assert_eq!(ours.coordinators.len(), theirs.coordinators.len());
                    for (o, t) in ours.coordinators.iter().zip(&theirs.coordinators) {
                        assert_eq!(o.key, t.key.as_str());
                        assert_eq!(o.node_id, t.node_id.0);
                        assert_eq!(o.host, t.host.as_str());
                        assert_eq!(o.port, t.port);
                        assert_eq!(o.error_code, t.error_code);
                        assert_eq!(o.error_message.as_deref(), t.error_message.as_deref());
                    }
                } else {
                    assert_eq!(
                        ours.coordinators,
                        vec![Coordinator {
                            key: String::new(),
                            node_id: 3,
                            host: "broker-3".into(),
                            port: 9094,
                            error_code: theirs.error_code,
                            error_message: (version >= 1 && keys == 1).then(|| "no".into()),
                        }]
                    );
                }
                let decode = |b| decode_find_coordinator_response(b, version);
                assert!(every_truncation_fails(&wire, decode));
                assert!(trailing_byte_fails(&wire, decode));
            }
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let b = huge_array(&THROTTLE, true);
        assert_malformed(decode_find_coordinator_response(b, 6), "coordinators");
    }

    refuses_versions_outside!(
        decode_find_coordinator_response,
        MIN_FIND_COORDINATOR_RESPONSE_VERSION,
        MAX_FIND_COORDINATOR_RESPONSE_VERSION
    );
}
