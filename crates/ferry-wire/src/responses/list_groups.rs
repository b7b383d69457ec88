//! A hand-written, bounded ListGroups response decoder (versions 0-5), for
//! the same reason as [`crate::fetch`]: kafka-protocol allocates arrays by
//! the count read off the wire.

use bytes::Bytes;

use crate::Result;
use crate::schema::{ResponseReader, check_version};

pub const MIN_LIST_GROUPS_RESPONSE_VERSION: i16 = 0;
pub const MAX_LIST_GROUPS_RESPONSE_VERSION: i16 = 5;
const FIRST_FLEXIBLE: i16 = 3;

/// One ListGroups response: the groups one broker coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListGroupsResponse {
    /// 0 below v1.
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub groups: Vec<ListedGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    /// `consumer` for consumer groups; empty for groups that only store
    /// offsets (no member ever joined).
    pub protocol_type: String,
    /// The group state (v4+; `None` below).
    pub group_state: Option<String>,
    /// The group type, `classic` or `consumer` (v5+; `None` below).
    pub group_type: Option<String>,
}

/// Decodes a ListGroups response body (everything after the response header).
pub fn decode_list_groups_response(body: Bytes, version: i16) -> Result<ListGroupsResponse> {
    check_version(
        "list groups response version",
        version,
        MIN_LIST_GROUPS_RESPONSE_VERSION,
        MAX_LIST_GROUPS_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = if version >= 1 {
        d.r.i32("throttle time")?
    } else {
        0
    };
    let error_code = d.r.i16("error code")?;
    // Smallest group: two 1-byte (compact) string lengths.
    let n = d.array_len("groups", 2)?.unwrap_or(0);
    let mut groups = Vec::with_capacity(n);
    for _ in 0..n {
        let group_id = d.required_string("group id")?;
        let protocol_type = d.required_string("protocol type")?;
        let group_state = if version >= 4 {
            Some(d.required_string("group state")?)
        } else {
            None
        };
        let group_type = if version >= 5 {
            Some(d.required_string("group type")?)
        } else {
            None
        };
        d.tagged_fields("group", |_, _, _| Ok(()))?;
        groups.push(ListedGroup {
            group_id,
            protocol_type,
            group_state,
            group_type,
        });
    }
    d.tagged_fields("list groups response", |_, _, _| Ok(()))?;
    d.finish("list groups response")?;
    Ok(ListGroupsResponse {
        throttle_time_ms,
        error_code,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::testing::{
        NO_ERROR, THROTTLE, assert_malformed, every_truncation_fails, huge_array,
        refuses_versions_outside, trailing_byte_fails,
    };

    use bytes::BytesMut;
    use kafka_protocol::messages::GroupId;
    use kafka_protocol::messages::list_groups_response as kp;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn sample(version: i16, groups: u8) -> kp::ListGroupsResponse {
        let flexible = version >= FIRST_FLEXIBLE;
        let group = |i: u8| {
            let mut g = kp::ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(format!("group-{i}"))))
                .with_protocol_type(StrBytes::from_string(
                    if i == 1 { "" } else { "consumer" }.into(),
                ));
            if version >= 4 {
                g = g.with_group_state(StrBytes::from_static_str("Empty"));
            }
            if version >= 5 {
                g = g.with_group_type(StrBytes::from_static_str("classic"));
            }
            if flexible {
                g = g.with_unknown_tagged_field(3, Bytes::from_static(b"t"));
            }
            g
        };
        let mut r = kp::ListGroupsResponse::default()
            .with_error_code(if groups == 2 { 15 } else { 0 })
            .with_groups((0..groups).map(group).collect());
        if version >= 1 {
            r = r.with_throttle_time_ms(11);
        }
        if flexible {
            r = r.with_unknown_tagged_field(0, Bytes::from_static(b"zz"));
        }
        r
    }

    #[test]
    fn decodes_what_kafka_protocol_encodes() {
        for version in MIN_LIST_GROUPS_RESPONSE_VERSION..=MAX_LIST_GROUPS_RESPONSE_VERSION {
            for groups in 0..4u8 {
                let theirs = sample(version, groups);
                let mut b = BytesMut::new();
                theirs.encode(&mut b, version).unwrap();
                let wire = b.freeze();
                let ours = decode_list_groups_response(wire.clone(), version).unwrap();
                assert_eq!(ours.throttle_time_ms, theirs.throttle_time_ms);
                assert_eq!(ours.error_code, theirs.error_code);
                assert_eq!(ours.groups.len(), theirs.groups.len());
                for (o, t) in ours.groups.iter().zip(&theirs.groups) {
                    assert_eq!(o.group_id, t.group_id.as_str());
                    assert_eq!(o.protocol_type, t.protocol_type.as_str());
                    assert_eq!(
                        o.group_state.as_deref(),
                        (version >= 4).then(|| t.group_state.as_str())
                    );
                    assert_eq!(
                        o.group_type.as_deref(),
                        (version >= 5).then(|| t.group_type.as_str())
                    );
                }
                let decode = |b| decode_list_groups_response(b, version);
                assert!(every_truncation_fails(&wire, decode));
                assert!(trailing_byte_fails(&wire, decode));
            }
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let v0 = huge_array(&NO_ERROR, false);
        let v5 = huge_array(&[&THROTTLE[..], &NO_ERROR[..]].concat(), true);
        for (body, version) in [(v0, 0), (v5, 5)] {
            assert_malformed(decode_list_groups_response(body, version), "groups");
        }
    }

    refuses_versions_outside!(
        decode_list_groups_response,
        MIN_LIST_GROUPS_RESPONSE_VERSION,
        MAX_LIST_GROUPS_RESPONSE_VERSION
    );
}
