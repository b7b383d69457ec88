//! A hand-written, bounded DescribeGroups response decoder (versions 0-6),
//! for the same reason as [`crate::fetch`]: kafka-protocol allocates arrays
//! by the count read off the wire. Members are walked (their metadata and
//! assignment skipped, bounded) and only their ids kept.

use bytes::Bytes;

use crate::schema::{ResponseReader, check_version};
use crate::{Result, WireError};

pub const MIN_DESCRIBE_GROUPS_RESPONSE_VERSION: i16 = 0;
pub const MAX_DESCRIBE_GROUPS_RESPONSE_VERSION: i16 = 6;
const FIRST_FLEXIBLE: i16 = 5;

/// One DescribeGroups response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescribeGroupsResponse {
    /// 0 below v1.
    pub throttle_time_ms: i32,
    pub groups: Vec<DescribedGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub error_code: i16,
    /// v6+; `None` below.
    pub error_message: Option<String>,
    pub group_id: String,
    /// `Empty`, `Stable`, `Dead`, `PreparingRebalance`, …
    pub group_state: String,
    pub protocol_type: String,
    /// The member ids.
    pub members: Vec<String>,
}

/// Decodes a DescribeGroups response body (everything after the response header).
pub fn decode_describe_groups_response(
    body: Bytes,
    version: i16,
) -> Result<DescribeGroupsResponse> {
    check_version(
        "describe groups response version",
        version,
        MIN_DESCRIBE_GROUPS_RESPONSE_VERSION,
        MAX_DESCRIBE_GROUPS_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = if version >= 1 {
        d.r.i32("throttle time")?
    } else {
        0
    };
    // Smallest group: error code (2), four compact strings and a members
    // count (1 each).
    let n = d.array_len("groups", 7)?.unwrap_or(0);
    let mut groups = Vec::with_capacity(n);
    for _ in 0..n {
        let error_code = d.r.i16("group error code")?;
        let error_message = if version >= 6 {
            d.string("group error message")?
        } else {
            None
        };
        let group_id = d.required_string("group id")?;
        let group_state = d.required_string("group state")?;
        let protocol_type = d.required_string("protocol type")?;
        let _protocol_data = d.required_string("protocol data")?;
        // Smallest member: four strings and two byte arrays (1 byte each, compact).
        let m = d.array_len("members", 5)?.unwrap_or(0);
        let mut members = Vec::with_capacity(m);
        for _ in 0..m {
            let member_id = d.required_string("member id")?;
            if version >= 4 {
                let _instance_id = d.string("group instance id")?;
            }
            let _client_id = d.required_string("client id")?;
            let _client_host = d.required_string("client host")?;
            skip_bytes(&mut d, "member metadata")?;
            skip_bytes(&mut d, "member assignment")?;
            d.tagged_fields("member", |_, _, _| Ok(()))?;
            members.push(member_id);
        }
        if version >= 3 {
            let _authorized_operations = d.r.i32("authorized operations")?;
        }
        d.tagged_fields("group", |_, _, _| Ok(()))?;
        groups.push(DescribedGroup {
            error_code,
            error_message,
            group_id,
            group_state,
            protocol_type,
            members,
        });
    }
    d.tagged_fields("describe groups response", |_, _, _| Ok(()))?;
    d.finish("describe groups response")?;
    Ok(DescribeGroupsResponse {
        throttle_time_ms,
        groups,
    })
}

/// Skips a (non-null) byte array, bounded by the bytes left.
fn skip_bytes(d: &mut ResponseReader, what: &'static str) -> Result<()> {
    let len = d
        .bytes_len(what)?
        .ok_or_else(|| WireError::malformed(what, "null"))?;
    d.r.skip(len, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::testing::{
        THROTTLE, assert_malformed, every_truncation_fails, huge_array, refuses_versions_outside,
        trailing_byte_fails,
    };
    use bytes::BytesMut;
    use kafka_protocol::messages::describe_groups_response as kp;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn sample(version: i16, groups: u8) -> kp::DescribeGroupsResponse {
        let flexible = version >= FIRST_FLEXIBLE;
        let member = |i: u8| {
            let mut m = kp::DescribedGroupMember::default()
                .with_member_id(StrBytes::from_string(format!("member-{i}")))
                .with_client_id(StrBytes::from_static_str("client"))
                .with_client_host(StrBytes::from_static_str("/127.0.0.1"))
                .with_member_metadata(Bytes::from_static(b"meta"))
                .with_member_assignment(Bytes::from(vec![i; usize::from(i)]));
            if version >= 4 {
                m = m.with_group_instance_id((i == 1).then(|| StrBytes::from_static_str("inst")));
            }
            if flexible {
                m = m.with_unknown_tagged_field(2, Bytes::from_static(b"q"));
            }
            m
        };
        let group = |i: u8| {
            let mut g = kp::DescribedGroup::default()
                .with_error_code(if i == 2 { 16 } else { 0 })
                .with_group_id(kafka_protocol::messages::GroupId(StrBytes::from_string(
                    format!("group-{i}"),
                )))
                .with_group_state(StrBytes::from_static_str("Stable"))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocol_data(StrBytes::from_static_str("range"))
                .with_members((0..i).map(member).collect());
            if version >= 3 {
                g = g.with_authorized_operations(-2_147_483_648);
            }
            if version >= 6 {
                g = g.with_error_message((i == 2).then(|| StrBytes::from_static_str("moved")));
            }
            if flexible {
                g = g.with_unknown_tagged_field(1, Bytes::from_static(b"gg"));
            }
            g
        };
        let mut r =
            kp::DescribeGroupsResponse::default().with_groups((0..groups).map(group).collect());
        if version >= 1 {
            r = r.with_throttle_time_ms(5);
        }
        if flexible {
            r = r.with_unknown_tagged_field(4, Bytes::from_static(b"top"));
        }
        r
    }

    #[test]
    fn decodes_what_kafka_protocol_encodes() {
        for version in MIN_DESCRIBE_GROUPS_RESPONSE_VERSION..=MAX_DESCRIBE_GROUPS_RESPONSE_VERSION {
            for groups in 0..4u8 {
                let theirs = sample(version, groups);
                let mut b = BytesMut::new();
                theirs.encode(&mut b, version).unwrap();
                let wire = b.freeze();
                let ours = decode_describe_groups_response(wire.clone(), version).unwrap();
                assert_eq!(ours.throttle_time_ms, theirs.throttle_time_ms);
                assert_eq!(ours.groups.len(), theirs.groups.len());
                for (o, t) in ours.groups.iter().zip(&theirs.groups) {
                    assert_eq!(o.error_code, t.error_code);
                    let message = if version >= 6 {
                        t.error_message.as_deref()
                    } else {
                        None
                    };
                    assert_eq!(o.error_message.as_deref(), message);
                    assert_eq!(o.group_id, t.group_id.as_str());
                    assert_eq!(o.group_state, t.group_state.as_str());
                    assert_eq!(o.protocol_type, t.protocol_type.as_str());
                    let ids: Vec<&str> = t.members.iter().map(|m| m.member_id.as_str()).collect();
                    assert_eq!(o.members, ids);
                }
                let decode = |b| decode_describe_groups_response(b, version);
                assert!(every_truncation_fails(&wire, decode));
                assert!(trailing_byte_fails(&wire, decode));
            }
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let v0 = huge_array(&[], false);
        let v6 = huge_array(&THROTTLE, true);
        for (body, version) in [(v0, 0), (v6, 6)] {
            assert_malformed(decode_describe_groups_response(body, version), "groups");
        }
        // One sane group, then a huge member count (v0: non-flexible).
        let mut b = BytesMut::new();
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        for s in ["g", "Stable", "consumer", "range"] {
            b.extend_from_slice(&i16::try_from(s.len()).unwrap().to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        b.extend_from_slice(&i32::MAX.to_be_bytes());
        b.extend_from_slice(&[0u8; 30]);
        assert!(matches!(
            decode_describe_groups_response(b.freeze(), 0),
            Err(WireError::Malformed {
                what: "members",
                ..
            })
        ));
        // A member whose assignment announces more bytes than are left.
        let mut b = BytesMut::new();
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        for s in ["g", "Stable", "consumer", "range"] {
            b.extend_from_slice(&i16::try_from(s.len()).unwrap().to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        b.extend_from_slice(&1i32.to_be_bytes());
        for s in ["m", "c", "h"] {
            b.extend_from_slice(&1i16.to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&i32::MAX.to_be_bytes());
        b.extend_from_slice(&[0u8; 8]);
        assert!(decode_describe_groups_response(b.freeze(), 0).is_err());
    }

    refuses_versions_outside!(
        decode_describe_groups_response,
        MIN_DESCRIBE_GROUPS_RESPONSE_VERSION,
        MAX_DESCRIBE_GROUPS_RESPONSE_VERSION
    );
}
