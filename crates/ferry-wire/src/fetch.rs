//! A hand-written Fetch response decoder (versions 4-18), zero-copy and bounded.
//!
//! Why not kafka-protocol's decoder: it pre-allocates every array with the
//! count read off the wire (`Vec::with_capacity(n)`), so a 30-byte response
//! announcing 2^31 topics makes it request tens of GiB and the process
//! aborts (found by `fuzz/fuzz_targets/fetch_response.rs`). Fetch responses
//! are the largest and most frequent frames ferry reads, so this one is ours:
//! every count is checked against the bytes actually left before anything is
//! allocated, and each partition's `records` stays a slice of the frame.

use bytes::Bytes;

use crate::schema::ResponseReader;
pub use crate::schema::{NodeEndpoint, TopicKey};
use crate::txn::AbortedTxn;
use crate::{Result, WireError};

/// Lowest and highest Fetch response versions this decoder reads.
pub const MIN_FETCH_VERSION: i16 = 4;
pub const MAX_FETCH_VERSION: i16 = 18;
const FIRST_FLEXIBLE: i16 = 12;
const FIRST_TOPIC_ID: i16 = 13;

/// One Fetch response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<FetchTopic>,
    /// Leader endpoints sent with NOT_LEADER errors (v16+, KIP-951).
    pub node_endpoints: Vec<NodeEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTopic {
    pub topic: TopicKey,
    pub partitions: Vec<FetchPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartition {
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// `(epoch, end_offset)` when the fetch position diverged from the leader's log.
    pub diverging_epoch: Option<(i32, i64)>,
    /// `(leader_id, leader_epoch)` hint sent with leadership errors.
    pub current_leader: Option<(i32, i32)>,
    /// `(end_offset, epoch)` of a snapshot to fetch instead (KRaft only).
    pub snapshot_id: Option<(i64, i32)>,
    pub aborted_transactions: Option<Vec<AbortedTxn>>,
    pub preferred_read_replica: i32,
    /// The raw record batches: a zero-copy slice of the response frame.
    pub records: Option<Bytes>,
}

/// Decodes a Fetch response body (everything after the response header).
pub fn decode_fetch_response(body: Bytes, version: i16) -> Result<FetchResponse> {
    if !(MIN_FETCH_VERSION..=MAX_FETCH_VERSION).contains(&version) {
        return Err(WireError::InvalidField {
            what: "fetch response version",
            value: i64::from(version),
        });
    }
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = d.r.i32("throttle time")?;
    let (error_code, session_id) = if version >= 7 {
        (d.r.i16("error code")?, d.r.i32("session id")?)
    } else {
        (0, 0)
    };
    // Smallest possible topic: a 1-byte name length (compact) or 2, plus a partition count.
    let n = d.array_len("topics", 2)?.unwrap_or(0);
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(topic(&mut d, version)?);
    }
    // KIP-951: tag 0 of the top-level tagged fields holds leader endpoints.
    let node_endpoints = d.node_endpoints_tag("fetch response", version >= 16)?;
    d.finish("fetch response")?;
    Ok(FetchResponse {
        throttle_time_ms,
        error_code,
        session_id,
        topics,
        node_endpoints,
    })
}

fn topic(d: &mut ResponseReader, version: i16) -> Result<FetchTopic> {
    let topic = d.topic_key(version, FIRST_TOPIC_ID)?;
    // Smallest partition: 4+2+8+8 bytes, plus more in later versions.
    let n = d.array_len("partitions", 22)?.unwrap_or(0);
    let mut partitions = Vec::with_capacity(n);
    for _ in 0..n {
        partitions.push(partition(d, version)?);
    }
    d.tagged_fields("topic", |_, _, _| Ok(()))?;
    Ok(FetchTopic { topic, partitions })
}

fn partition(d: &mut ResponseReader, version: i16) -> Result<FetchPartition> {
    let partition = d.r.i32("partition index")?;
    let error_code = d.r.i16("partition error code")?;
    let high_watermark = d.r.i64("high watermark")?;
    let last_stable_offset = d.r.i64("last stable offset")?;
    let log_start_offset = if version >= 5 {
        d.r.i64("log start offset")?
    } else {
        -1
    };
    let aborted_transactions = match d.array_len("aborted transactions", 16)? {
        None => None,
        Some(n) => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let producer_id = d.r.i64("aborted producer id")?;
                let first_offset = d.r.i64("aborted first offset")?;
                d.tagged_fields("aborted transaction", |_, _, _| Ok(()))?;
                v.push(AbortedTxn {
                    producer_id,
                    first_offset,
                });
            }
            Some(v)
        }
    };
    let preferred_read_replica = if version >= 11 {
        d.r.i32("preferred read replica")?
    } else {
        -1
    };
    let records = match d.bytes_len("records")? {
        None => None,
        Some(n) => Some(d.r.bytes(n, "records")?),
    };
    let mut diverging_epoch = None;
    let mut current_leader = None;
    let mut snapshot_id = None;
    d.tagged_fields("partition", |d, tag, field| {
        match tag {
            0 => {
                let epoch = d.r.i32("diverging epoch")?;
                let end = d.r.i64("diverging end offset")?;
                d.tagged_fields("diverging epoch", |_, _, _| Ok(()))?;
                diverging_epoch = Some((epoch, end));
            }
            1 => {
                let id = d.r.i32("current leader id")?;
                let epoch = d.r.i32("current leader epoch")?;
                d.tagged_fields("current leader", |_, _, _| Ok(()))?;
                current_leader = Some((id, epoch));
            }
            2 => {
                let end = d.r.i64("snapshot end offset")?;
                let epoch = d.r.i32("snapshot epoch")?;
                d.tagged_fields("snapshot id", |_, _, _| Ok(()))?;
                snapshot_id = Some((end, epoch));
            }
            _ => return Ok(()),
        }
        d.end_of_tagged(field)
    })?;
    Ok(FetchPartition {
        partition,
        error_code,
        high_watermark,
        last_stable_offset,
        log_start_offset,
        diverging_epoch,
        current_leader,
        snapshot_id,
        aborted_transactions,
        preferred_read_replica,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::fetch_response as kp;
    use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    fn encode(resp: &kp::FetchResponse, version: i16) -> Bytes {
        let mut b = BytesMut::new();
        resp.encode(&mut b, version).unwrap();
        b.freeze()
    }

    fn sample(version: i16, seed: usize) -> kp::FetchResponse {
        let part = |i: i32| {
            let mut p = kp::PartitionData::default()
                .with_partition_index(i)
                .with_error_code(i16::try_from(i % 3).unwrap())
                .with_high_watermark(1000 + i64::from(i))
                .with_last_stable_offset(900)
                .with_records(Some(Bytes::from(vec![
                    u8::try_from(i % 256).unwrap();
                    (seed + usize::try_from(i).unwrap())
                        % 300
                ])));
            if version >= 5 {
                p = p.with_log_start_offset(5);
            }
            if i % 2 == 0 {
                p = p.with_aborted_transactions(Some(vec![
                    kp::AbortedTransaction::default()
                        .with_producer_id(ProducerId(7))
                        .with_first_offset(42),
                ]));
            } else {
                p = p.with_aborted_transactions(None);
            }
            if version >= 11 {
                p = p.with_preferred_read_replica(BrokerId(3));
            }
            if version >= 12 && i == 1 {
                p = p
                    .with_current_leader(
                        kp::LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(2))
                            .with_leader_epoch(9),
                    )
                    .with_diverging_epoch(
                        kp::EpochEndOffset::default()
                            .with_epoch(4)
                            .with_end_offset(77),
                    );
                p.unknown_tagged_fields
                    .insert(99, Bytes::from_static(b"future"));
            }
            p
        };
        let topic = |t: u8| {
            let mut ft = kp::FetchableTopicResponse::default()
                .with_partitions((0..i32::from(t) + 1).map(part).collect());
            if version >= 13 {
                ft = ft.with_topic_id(uuid::Uuid::from_bytes([t; 16]));
            } else {
                ft = ft.with_topic(TopicName(StrBytes::from_string(format!("topic-{t}"))));
            }
            ft
        };
        let mut r = kp::FetchResponse::default()
            .with_throttle_time_ms(12)
            .with_responses((0..u8::try_from(seed % 4).unwrap()).map(topic).collect());
        if version >= 7 {
            r = r.with_error_code(0).with_session_id(55);
        }
        if version >= 16 {
            r = r.with_node_endpoints(vec![
                kp::NodeEndpoint::default()
                    .with_node_id(BrokerId(2))
                    .with_host(StrBytes::from_static_str("broker-2"))
                    .with_port(9092)
                    .with_rack(Some(StrBytes::from_static_str("rack-a"))),
            ]);
        }
        r
    }

    fn check_same(ours: &FetchResponse, theirs: &kp::FetchResponse, version: i16) {
        assert_eq!(ours.throttle_time_ms, theirs.throttle_time_ms);
        assert_eq!(ours.session_id, theirs.session_id);
        assert_eq!(ours.topics.len(), theirs.responses.len());
        for (o, t) in ours.topics.iter().zip(&theirs.responses) {
            match &o.topic {
                TopicKey::Name(n) => assert_eq!(n.as_str(), t.topic.as_str()),
                TopicKey::Id(id) => assert_eq!(id, t.topic_id.as_bytes()),
            }
            for (op, tp) in o.partitions.iter().zip(&t.partitions) {
                assert_eq!(op.partition, tp.partition_index);
                assert_eq!(op.error_code, tp.error_code);
                assert_eq!(op.high_watermark, tp.high_watermark);
                assert_eq!(op.last_stable_offset, tp.last_stable_offset);
                assert_eq!(op.log_start_offset, tp.log_start_offset);
                assert_eq!(op.records, tp.records);
                assert_eq!(op.preferred_read_replica, tp.preferred_read_replica.0);
                let aborted = tp.aborted_transactions.as_ref().map(|v| {
                    v.iter()
                        .map(|a| AbortedTxn {
                            producer_id: a.producer_id.0,
                            first_offset: a.first_offset,
                        })
                        .collect::<Vec<_>>()
                });
                assert_eq!(op.aborted_transactions, aborted);
                if version >= 12 && tp.current_leader.leader_id.0 != -1 {
                    assert_eq!(
                        op.current_leader,
                        Some((
                            tp.current_leader.leader_id.0,
                            tp.current_leader.leader_epoch
                        ))
                    );
                    assert_eq!(
                        op.diverging_epoch,
                        Some((tp.diverging_epoch.epoch, tp.diverging_epoch.end_offset))
                    );
                }
            }
        }
        assert_eq!(ours.node_endpoints.len(), theirs.node_endpoints.len());
    }

    proptest! {
        #[test]
        fn decodes_what_kafka_protocol_encodes(version in MIN_FETCH_VERSION..=MAX_FETCH_VERSION, seed in 0usize..1000) {
            let theirs = sample(version, seed);
            let wire = encode(&theirs, version);
            let ours = decode_fetch_response(wire.clone(), version).unwrap();
            check_same(&ours, &theirs, version);
            // Records are slices of the frame, not copies.
            for p in ours.topics.iter().flat_map(|t| &t.partitions) {
                if let Some(r) = &p.records {
                    if !r.is_empty() {
                        let start = wire.as_ptr() as usize;
                        let at = r.as_ptr() as usize;
                        prop_assert!(at >= start && at < start + wire.len());
                    }
                }
            }
            // Every truncation is an error, never a panic.
            for cut in (0..wire.len()).step_by(7) {
                prop_assert!(decode_fetch_response(wire.slice(..cut), version).is_err());
            }
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        for version in [4i16, 11, 12, 16] {
            let mut b = BytesMut::new();
            b.extend_from_slice(&0i32.to_be_bytes()); // throttle
            if version >= 7 {
                b.extend_from_slice(&0i16.to_be_bytes());
                b.extend_from_slice(&0i32.to_be_bytes());
            }
            if version >= 12 {
                b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]); // compact count 2^31-2
            } else {
                b.extend_from_slice(&i32::MAX.to_be_bytes());
            }
            b.extend_from_slice(&[0u8; 20]);
            assert!(matches!(
                decode_fetch_response(b.freeze(), version),
                Err(WireError::Malformed { what: "topics", .. })
            ));
        }
    }

    #[test]
    fn versions_outside_the_range_are_refused() {
        assert!(decode_fetch_response(Bytes::new(), 3).is_err());
        assert!(decode_fetch_response(Bytes::new(), 19).is_err());
    }
}
