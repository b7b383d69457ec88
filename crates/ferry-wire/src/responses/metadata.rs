//! A hand-written, bounded Metadata response decoder (versions 4-13), for the
//! same reason as [`crate::fetch`]: kafka-protocol allocates arrays by the
//! count read off the wire, and ferry asks every cluster for metadata of all
//! its topics at every discovery interval.

use bytes::Bytes;

use crate::schema::ResponseReader;
use crate::{Result, WireError};

pub const MIN_METADATA_RESPONSE_VERSION: i16 = 4;
pub const MAX_METADATA_RESPONSE_VERSION: i16 = 13;
const FIRST_FLEXIBLE: i16 = 9;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataResponse {
    pub throttle_time_ms: i32,
    pub brokers: Vec<MetadataBroker>,
    pub cluster_id: Option<String>,
    /// -1 if unknown.
    pub controller_id: i32,
    pub topics: Vec<MetadataTopic>,
    /// Top-level error (v13+), else 0.
    pub error_code: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataBroker {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataTopic {
    pub error_code: i16,
    /// Null only in answers to requests by topic id (v12+).
    pub name: Option<String>,
    /// The topic id (v10+); `None` when absent or all zeroes.
    pub topic_id: Option<[u8; 16]>,
    pub is_internal: bool,
    pub partitions: Vec<MetadataPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataPartition {
    pub error_code: i16,
    pub partition: i32,
    /// -1 during an election.
    pub leader_id: i32,
    /// -1 below v7.
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
}

/// Decodes a Metadata response body (everything after the response header).
pub fn decode_metadata_response(body: Bytes, version: i16) -> Result<MetadataResponse> {
    if !(MIN_METADATA_RESPONSE_VERSION..=MAX_METADATA_RESPONSE_VERSION).contains(&version) {
        return Err(WireError::InvalidField {
            what: "metadata response version",
            value: i64::from(version),
        });
    }
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = d.r.i32("throttle time")?;
    // Smallest broker: node id, a 1-byte host length, port, a 1-byte rack length.
    let n = d.array_len("brokers", 10)?.unwrap_or(0);
    let mut brokers = Vec::with_capacity(n);
    for _ in 0..n {
        let node_id = d.r.i32("node id")?;
        let host = d
            .string("broker host")?
            .ok_or_else(|| WireError::malformed("broker host", "null"))?;
        let port = d.r.i32("broker port")?;
        let rack = d.string("broker rack")?;
        d.tagged_fields("broker", |_, _, _| Ok(()))?;
        brokers.push(MetadataBroker {
            node_id,
            host,
            port,
            rack,
        });
    }
    let cluster_id = d.string("cluster id")?;
    let controller_id = d.r.i32("controller id")?;
    // Smallest topic: error code, name length, internal flag, partition count.
    let n = d.array_len("topics", 5)?.unwrap_or(0);
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(topic(&mut d, version)?);
    }
    if (8..=10).contains(&version) {
        let _cluster_authorized_operations = d.r.i32("cluster authorized operations")?;
    }
    let error_code = if version >= 13 {
        d.r.i16("error code")?
    } else {
        0
    };
    d.tagged_fields("metadata response", |_, _, _| Ok(()))?;
    d.finish("metadata response")?;
    Ok(MetadataResponse {
        throttle_time_ms,
        brokers,
        cluster_id,
        controller_id,
        topics,
        error_code,
    })
}

fn topic(d: &mut ResponseReader, version: i16) -> Result<MetadataTopic> {
    let error_code = d.r.i16("topic error code")?;
    let name = d.string("topic name")?;
    let topic_id = if version >= 10 {
        let id: [u8; 16] = d.r.array("topic id")?;
        (id != [0; 16]).then_some(id)
    } else {
        None
    };
    let is_internal = d.r.i8("is internal")? != 0;
    // Smallest partition: error code, index, leader, and three array lengths.
    let n = d.array_len("partitions", 13)?.unwrap_or(0);
    let mut partitions = Vec::with_capacity(n);
    for _ in 0..n {
        let error_code = d.r.i16("partition error code")?;
        let partition = d.r.i32("partition index")?;
        let leader_id = d.r.i32("leader id")?;
        let leader_epoch = if version >= 7 {
            d.r.i32("leader epoch")?
        } else {
            -1
        };
        let replicas = int32s(d, "replica nodes")?;
        let isr = int32s(d, "isr nodes")?;
        let offline_replicas = if version >= 5 {
            int32s(d, "offline replicas")?
        } else {
            Vec::new()
        };
        d.tagged_fields("partition", |_, _, _| Ok(()))?;
        partitions.push(MetadataPartition {
            error_code,
            partition,
            leader_id,
            leader_epoch,
            replicas,
            isr,
            offline_replicas,
        });
    }
    if version >= 8 {
        let _topic_authorized_operations = d.r.i32("topic authorized operations")?;
    }
    d.tagged_fields("topic", |_, _, _| Ok(()))?;
    Ok(MetadataTopic {
        error_code,
        name,
        topic_id,
        is_internal,
        partitions,
    })
}

fn int32s(d: &mut ResponseReader, what: &'static str) -> Result<Vec<i32>> {
    let n = d.array_len(what, 4)?.unwrap_or(0);
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(d.r.i32(what)?);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::testing::{
        THROTTLE, assert_malformed, every_truncation_fails, huge_array,
    };
    use bytes::BytesMut;
    use kafka_protocol::messages::metadata_response as kp;
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    fn sample(version: i16, topics: u8) -> kp::MetadataResponse {
        let partition = |i: i32| {
            let mut p = kp::MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(BrokerId(i % 3))
                .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                .with_isr_nodes(vec![BrokerId(1)]);
            if version >= 7 {
                p = p.with_leader_epoch(4);
            }
            if version >= 5 {
                p = p.with_offline_replicas(vec![BrokerId(2)]);
            }
            p
        };
        let topic = |t: u8| {
            let mut tr = kp::MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(format!("t{t}")))))
                .with_is_internal(t == 0)
                .with_partitions((0..i32::from(t) + 1).map(partition).collect());
            if version >= 10 {
                tr = tr.with_topic_id(uuid::Uuid::from_bytes([t + 1; 16]));
            }
            tr
        };
        let mut r = kp::MetadataResponse::default()
            .with_throttle_time_ms(3)
            .with_brokers(vec![
                kp::MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("b1"))
                    .with_port(9092)
                    .with_rack(Some(StrBytes::from_static_str("r"))),
            ])
            .with_cluster_id(Some(StrBytes::from_static_str("cid")))
            .with_controller_id(BrokerId(1))
            .with_topics((0..topics).map(topic).collect());
        if version >= 13 {
            r = r.with_error_code(0);
        }
        r
    }

    proptest! {
        #[test]
        fn decodes_what_kafka_protocol_encodes(
            version in MIN_METADATA_RESPONSE_VERSION..=MAX_METADATA_RESPONSE_VERSION,
            topics in 0u8..4,
        ) {
            let theirs = sample(version, topics);
            let mut b = BytesMut::new();
            theirs.encode(&mut b, version).unwrap();
            let wire = b.freeze();
            let ours = decode_metadata_response(wire.clone(), version).unwrap();
            prop_assert_eq!(ours.brokers.len(), 1);
            prop_assert_eq!(ours.brokers[0].port, 9092);
            prop_assert_eq!(ours.cluster_id.as_deref(), Some("cid"));
            prop_assert_eq!(ours.controller_id, 1);
            prop_assert_eq!(ours.topics.len(), theirs.topics.len());
            for (o, t) in ours.topics.iter().zip(&theirs.topics) {
                prop_assert_eq!(o.name.as_deref(), t.name.as_ref().map(|n| n.as_str()));
                prop_assert_eq!(o.is_internal, t.is_internal);
                if version >= 10 {
                    prop_assert_eq!(o.topic_id, Some(*t.topic_id.as_bytes()));
                }
                for (op, tp) in o.partitions.iter().zip(&t.partitions) {
                    prop_assert_eq!(op.partition, tp.partition_index);
                    prop_assert_eq!(op.leader_id, tp.leader_id.0);
                    prop_assert_eq!(op.leader_epoch, tp.leader_epoch);
                    prop_assert_eq!(op.replicas.len(), tp.replica_nodes.len());
                    prop_assert_eq!(op.offline_replicas.len(), tp.offline_replicas.len());
                }
            }
            prop_assert!(every_truncation_fails(&wire, |b| decode_metadata_response(b, version)));
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let b = huge_array(&THROTTLE, false);
        assert_malformed(decode_metadata_response(b, 4), "brokers");
    }
}
