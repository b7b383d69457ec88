//! Raw fetch: one partition's record batches, exactly as the broker stored
//! them, as a zero-copy slice of the response frame.
//!
//! The request is encoded with kafka-protocol; the response is decoded with
//! [`ferry_wire::fetch`], whose decoder checks every count against the bytes
//! present before allocating (kafka-protocol's pre-allocates whatever count a
//! broker sends). Nothing here decompresses or parses the batches. These
//! fetches are sessionless (session id 0, epoch -1), for tools and checks;
//! mirroring fetches many partitions per request in fetch sessions
//! (KIP-227) through [`crate::SourceFetcher`].

use std::time::Duration;

use bytes::Bytes;
use ferry_wire::fetch::{FetchResponse, TopicKey, decode_fetch_response};
use ferry_wire::responses::offset_for_leader_epoch::{
    MAX_OFFSET_FOR_LEADER_EPOCH_VERSION, MIN_OFFSET_FOR_LEADER_EPOCH_VERSION,
    decode_offset_for_leader_epoch_response,
};
use kafka_protocol::messages::OffsetForLeaderEpochRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{ApiKey, FetchRequest, TopicName};
use kafka_protocol::protocol::{Message, StrBytes, VersionRange};
use uuid::Uuid;

pub use ferry_wire::txn::AbortedTxn;

use crate::client::Client;
use crate::connection::{Connection, encode_request};
use crate::error::{ClientError, KafkaCode, Result};
use crate::topic::TopicPartition;
use crate::versions::BrokerVersions;

/// Fetch v13 names topics by id; below that, by name.
const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 13;

/// Which records a fetch may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Records up to the last stable offset, plus the list of aborted
    /// transactions needed to drop aborted batches.
    #[default]
    ReadCommitted,
    /// Everything up to the high watermark, including open and aborted transactions.
    ReadUncommitted,
}

impl Isolation {
    fn wire(self) -> i8 {
        match self {
            Self::ReadUncommitted => 0,
            Self::ReadCommitted => 1,
        }
    }
}

/// Limits for one fetch. Byte limits above `i32::MAX` are sent as `i32::MAX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    pub isolation: Isolation,
    /// How long the broker may wait for `min_bytes` to accumulate.
    pub max_wait: Duration,
    pub min_bytes: u32,
    /// Upper bound for the whole response. The broker still returns at least
    /// one batch even if it is larger (KIP-74), so keep the connection's
    /// `max_frame_size` above the largest batch the topic allows.
    pub max_bytes: u32,
    /// Upper bound for this partition's records (same first-batch exception).
    pub partition_max_bytes: u32,
}

impl Default for FetchOptions {
    fn default() -> Self {
        // Kafka's consumer defaults: fetch.max.wait.ms, fetch.min.bytes,
        // fetch.max.bytes, max.partition.fetch.bytes.
        Self {
            isolation: Isolation::ReadCommitted,
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
        }
    }
}

/// The leader a broker pointed to in a Fetch error (v12+, KIP-951).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderHint {
    pub leader_id: i32,
    pub leader_epoch: i32,
}

/// One partition's part of a Fetch response.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedPartition {
    pub partition: i32,
    /// The raw record batches: a slice of the response frame (no copy). May
    /// end in a partial batch, which a later fetch returns whole.
    pub records: Bytes,
    pub high_watermark: i64,
    /// `-1` if the broker does not know it.
    pub last_stable_offset: i64,
    /// `-1` below Fetch v5.
    pub log_start_offset: i64,
    /// Only filled for [`Isolation::ReadCommitted`].
    pub aborted_transactions: Vec<AbortedTxn>,
    /// The partition's error, if any (e.g. `OFFSET_OUT_OF_RANGE`,
    /// `NOT_LEADER_OR_FOLLOWER`); `records` is then empty.
    pub error: Option<KafkaCode>,
    /// Where the broker says the leader is, when it sent a hint.
    pub current_leader: Option<LeaderHint>,
}

/// Which partition to fetch, as the Fetch request names it.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchTarget {
    pub topic: String,
    /// Needed for Fetch v13+; without it the version is capped at 12.
    pub topic_id: Option<Uuid>,
    pub partition: i32,
    /// The leader epoch from metadata, so a stale leader answers
    /// `FENCED_LEADER_EPOCH` instead of serving data (v9+).
    pub current_leader_epoch: Option<i32>,
}

/// The Fetch version to speak to a broker for `target`.
pub fn fetch_version(versions: &BrokerVersions, target: &FetchTarget) -> Result<i16> {
    let ours = FetchRequest::VERSIONS;
    let max = if target.topic_id.is_some() {
        ours.max
    } else {
        ours.max.min(FIRST_VERSION_WITH_TOPIC_IDS - 1)
    };
    versions.pick(ApiKey::Fetch, VersionRange { min: ours.min, max })
}

/// A sessionless Fetch request for one partition from `offset`.
pub fn fetch_request(
    target: &FetchTarget,
    offset: i64,
    options: &FetchOptions,
    version: i16,
) -> FetchRequest {
    let bytes = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let partition = FetchPartition::default()
        .with_partition(target.partition)
        .with_current_leader_epoch(target.current_leader_epoch.unwrap_or(-1))
        .with_fetch_offset(offset)
        .with_partition_max_bytes(bytes(options.partition_max_bytes));
    let topic = FetchTopic::default().with_partitions(vec![partition]);
    let topic = match target.topic_id {
        Some(id) if version >= FIRST_VERSION_WITH_TOPIC_IDS => topic.with_topic_id(id),
        _ => topic.with_topic(TopicName(StrBytes::from_string(target.topic.clone()))),
    };
    let max_wait_ms = i32::try_from(options.max_wait.as_millis()).unwrap_or(i32::MAX);
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(bytes(options.min_bytes))
        .with_max_bytes(bytes(options.max_bytes))
        .with_isolation_level(options.isolation.wire())
        .with_topics(vec![topic])
}

/// Decodes a Fetch response body (after the response header) from `broker`
/// and picks out `target`'s partition. The records stay a slice of `body`.
pub fn parse_fetch_response(
    body: Bytes,
    target: &FetchTarget,
    version: i16,
    broker: &str,
) -> Result<FetchedPartition> {
    let response = decode_fetch_response(body, version).map_err(|e| ClientError::Decode {
        broker: broker.to_owned(),
        api: ApiKey::Fetch,
        version,
        detail: e.to_string(),
    })?;
    fetched_partition(response, target, version, broker)
}

/// Picks `target`'s partition out of a decoded Fetch response.
fn fetched_partition(
    response: FetchResponse,
    target: &FetchTarget,
    version: i16,
    broker: &str,
) -> Result<FetchedPartition> {
    // Whole-request errors (v7+), e.g. a fetch session problem.
    if let Some(code) = KafkaCode::from_code(response.error_code) {
        return Err(ClientError::Kafka {
            broker: broker.to_owned(),
            api: ApiKey::Fetch,
            code,
            context: format!(
                " for topic {:?} partition {}",
                target.topic, target.partition
            ),
        });
    }
    let wanted = match target.topic_id {
        Some(id) if version >= FIRST_VERSION_WITH_TOPIC_IDS => TopicKey::Id(*id.as_bytes()),
        _ => TopicKey::Name(target.topic.clone()),
    };
    let partition = response
        .topics
        .into_iter()
        .filter(|t| t.topic == wanted)
        .flat_map(|t| t.partitions)
        .find(|p| p.partition == target.partition)
        .ok_or_else(|| ClientError::IncompleteResponse {
            broker: broker.to_owned(),
            api: ApiKey::Fetch,
            missing: format!("topic {:?} partition {}", target.topic, target.partition),
        })?;
    Ok(FetchedPartition {
        partition: partition.partition,
        records: partition.records.unwrap_or_default(),
        high_watermark: partition.high_watermark,
        last_stable_offset: partition.last_stable_offset,
        log_start_offset: partition.log_start_offset,
        aborted_transactions: partition.aborted_transactions.unwrap_or_default(),
        error: KafkaCode::from_code(partition.error_code),
        current_leader: partition
            .current_leader
            .filter(|&(leader_id, _)| leader_id >= 0)
            .map(|(leader_id, leader_epoch)| LeaderHint {
                leader_id,
                leader_epoch,
            }),
    })
}

/// One partition to ask OffsetForLeaderEpoch about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochQuery {
    pub partition: i32,
    /// Fencing, as in Fetch: -1 if unknown.
    pub current_leader_epoch: i32,
    /// The epoch whose end offset is wanted.
    pub leader_epoch: i32,
}

/// The leader's answer about one epoch (KIP-101/320).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEnd {
    pub partition: i32,
    /// The partition's error, e.g. `FENCED_LEADER_EPOCH`, `NOT_LEADER_OR_FOLLOWER`.
    pub error: Option<KafkaCode>,
    /// The largest epoch the leader holds at or below the one asked for,
    /// and where it ends in its log; both -1 when the leader cannot tell.
    pub leader_epoch: i32,
    pub end_offset: i64,
}

/// Asks `conn` (the leader) where leader epochs end in its log, as a
/// consumer (replica id -1): one OffsetForLeaderEpoch request.
pub async fn epoch_end_offsets(
    conn: &Connection,
    topic: &str,
    queries: &[EpochQuery],
) -> Result<Vec<EpochEnd>> {
    let ours = OffsetForLeaderEpochRequest::VERSIONS;
    let version = conn.versions().pick(
        ApiKey::OffsetForLeaderEpoch,
        VersionRange {
            min: ours.min.max(MIN_OFFSET_FOR_LEADER_EPOCH_VERSION),
            max: ours.max.min(MAX_OFFSET_FOR_LEADER_EPOCH_VERSION),
        },
    )?;
    let partitions = queries
        .iter()
        .map(|q| {
            OffsetForLeaderPartition::default()
                .with_partition(q.partition)
                .with_current_leader_epoch(q.current_leader_epoch)
                .with_leader_epoch(q.leader_epoch)
        })
        .collect();
    let mut request = OffsetForLeaderEpochRequest::default().with_topics(vec![
        OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(partitions),
    ]);
    if version >= 3 {
        // A consumer: answers stop at the high watermark.
        request = request.with_replica_id(kafka_protocol::messages::BrokerId(-1));
    }
    let body = encode_request(
        &request,
        ApiKey::OffsetForLeaderEpoch,
        version,
        conn.broker(),
    )?;
    let reply = conn
        .send_raw(ApiKey::OffsetForLeaderEpoch, version, vec![body])
        .await?;
    let response = decode_offset_for_leader_epoch_response(reply, version).map_err(|e| {
        conn.reject(ClientError::Decode {
            broker: conn.broker().to_owned(),
            api: ApiKey::OffsetForLeaderEpoch,
            version,
            detail: e.to_string(),
        })
    })?;
    let answers: Vec<EpochEnd> = response
        .topics
        .into_iter()
        .filter(|t| t.name == topic)
        .flat_map(|t| t.partitions)
        .map(|p| EpochEnd {
            partition: p.partition,
            error: KafkaCode::from_code(p.error_code),
            leader_epoch: p.leader_epoch,
            end_offset: p.end_offset,
        })
        .collect();
    for q in queries {
        if !answers.iter().any(|a| a.partition == q.partition) {
            return Err(ClientError::IncompleteResponse {
                broker: conn.broker().to_owned(),
                api: ApiKey::OffsetForLeaderEpoch,
                missing: TopicPartition::new(topic, q.partition).to_string(),
            });
        }
    }
    Ok(answers)
}

impl Client {
    /// Where leader epoch `leader_epoch` ends in the log of `topic`/`partition`'s
    /// leader (OffsetForLeaderEpoch; KIP-320 validation on brokers whose
    /// Fetch has no diverging epoch).
    pub async fn epoch_end_offset(
        &self,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
    ) -> Result<EpochEnd> {
        let leader = self.leader(topic, partition).await?;
        let conn = self.broker_connection(leader.broker.node_id).await?;
        let query = EpochQuery {
            partition,
            current_leader_epoch: leader.partition.leader_epoch.unwrap_or(-1),
            leader_epoch,
        };
        let answers = epoch_end_offsets(&conn, topic, &[query]).await?;
        answers
            .into_iter()
            .find(|a| a.partition == partition)
            .ok_or_else(|| ClientError::IncompleteResponse {
                broker: conn.broker().to_owned(),
                api: ApiKey::OffsetForLeaderEpoch,
                missing: TopicPartition::new(topic, partition).to_string(),
            })
    }

    /// Fetches `topic`/`partition` from `offset` from the partition leader
    /// named by the cached metadata, returning the raw record batches.
    ///
    /// Partition-level errors come back as data in
    /// [`FetchedPartition::error`]; connection and request-level failures
    /// as `Err`. Nothing is retried here.
    pub async fn fetch_raw(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        options: &FetchOptions,
    ) -> Result<FetchedPartition> {
        let leader = self.leader(topic, partition).await?;
        let conn = self.broker_connection(leader.broker.node_id).await?;
        let target = FetchTarget {
            topic: topic.to_owned(),
            topic_id: leader.topic_id,
            partition,
            current_leader_epoch: leader.partition.leader_epoch,
        };
        let version = fetch_version(conn.versions(), &target)?;
        let request = fetch_request(&target, offset, options, version);
        let body = encode_request(&request, ApiKey::Fetch, version, conn.broker())?;
        let response = conn.send_raw(ApiKey::Fetch, version, vec![body]).await?;
        parse_fetch_response(response, &target, version, conn.broker())
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};

    use super::*;

    /// A Fetch v4 response body, laid out by hand: one topic, one partition,
    /// one aborted transaction, and `records`.
    fn v4_response(topic: &str, partition: i32, records: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i32(0); // throttle_time_ms
        b.put_i32(1); // topics
        b.put_i16(i16::try_from(topic.len()).unwrap());
        b.put_slice(topic.as_bytes());
        b.put_i32(1); // partitions
        b.put_i32(partition);
        b.put_i16(0); // error_code
        b.put_i64(42); // high_watermark
        b.put_i64(40); // last_stable_offset
        b.put_i32(1); // aborted_transactions
        b.put_i64(7); // producer_id
        b.put_i64(3); // first_offset
        b.put_i32(i32::try_from(records.len()).unwrap());
        b.put_slice(records);
        b.freeze()
    }

    fn target() -> FetchTarget {
        FetchTarget {
            topic: "t".into(),
            topic_id: None,
            partition: 2,
            current_leader_epoch: None,
        }
    }

    #[test]
    fn records_are_a_slice_of_the_frame() {
        let body = v4_response("t", 2, b"batch-bytes");
        let range = body.as_ptr_range();
        let p = parse_fetch_response(body.clone(), &target(), 4, "b").unwrap();
        assert_eq!(&p.records[..], b"batch-bytes");
        assert!(
            range.contains(&p.records.as_ptr()),
            "records were copied out of the frame"
        );
        assert_eq!((p.high_watermark, p.last_stable_offset), (42, 40));
        assert_eq!(
            p.aborted_transactions,
            vec![AbortedTxn {
                producer_id: 7,
                first_offset: 3
            }]
        );
        assert_eq!(p.error, None);
    }

    /// A body announcing 2^31 topics in a few bytes is a decode error, not
    /// an attempt to allocate for them.
    #[test]
    fn absurd_counts_are_rejected_before_allocating() {
        let mut b = BytesMut::new();
        b.put_i32(0); // throttle_time_ms
        b.put_i32(i32::MAX); // topics
        b.put_i16(1);
        let err = parse_fetch_response(b.freeze(), &target(), 4, "b").unwrap_err();
        assert!(matches!(err, ClientError::Decode { .. }), "{err}");
    }

    #[test]
    fn missing_partition_is_an_error() {
        let body = v4_response("t", 5, b"");
        let err = parse_fetch_response(body, &target(), 4, "b").unwrap_err();
        assert!(
            matches!(err, ClientError::IncompleteResponse { .. }),
            "{err}"
        );
    }

    #[test]
    fn request_names_topic_by_id_only_from_v13() {
        let mut t = target();
        t.topic_id = Some(Uuid::from_u128(1));
        let r = fetch_request(&t, 10, &FetchOptions::default(), 13);
        assert_eq!(r.topics[0].topic_id, Uuid::from_u128(1));
        assert_eq!(r.isolation_level, 1);
        let r = fetch_request(&t, 10, &FetchOptions::default(), 12);
        assert_eq!(r.topics[0].topic.0.as_str(), "t");
        assert_eq!(r.topics[0].partitions[0].fetch_offset, 10);
    }

    #[test]
    fn topic_ids_decide_whether_v13_plus_is_used() {
        let v = BrokerVersions::from_ranges("b", &[(ApiKey::Fetch, 4, 17)]);
        let mut t = target();
        assert_eq!(fetch_version(&v, &t).unwrap(), 12);
        t.topic_id = Some(Uuid::from_u128(9));
        assert_eq!(fetch_version(&v, &t).unwrap(), 17);
    }

    #[test]
    fn byte_limits_saturate() {
        let opts = FetchOptions {
            max_bytes: u32::MAX,
            max_wait: Duration::from_secs(u64::MAX / 4),
            ..FetchOptions::default()
        };
        let r = fetch_request(&target(), 0, &opts, 12);
        assert_eq!(r.max_bytes, i32::MAX);
        assert_eq!(r.max_wait_ms, i32::MAX);
    }
}
