//! Ferry's small compacted topics on the target cluster (checkpoints, the
//! offset map): create once, read every record from the log start, append
//! JSON records with acks=all. Key and value are JSON so any Kafka tool can
//! read them.
//!
//! Clock-proof: ferry's own records carry no timestamp of the host. They
//! are stamped -1 ("no timestamp", which brokers never check against
//! `message.timestamp.before/after.max.ms`), and topics ferry creates use
//! `message.timestamp.type=LogAppendTime`, so the broker stamps them with
//! its own clock. Topics created by an older ferry keep CreateTime; the -1
//! stamp makes them safe too, so they are left as they are. A host clock
//! hours off therefore cannot make Kafka 4 refuse a checkpoint
//! (INVALID_TIMESTAMP). Which record is newest is never decided by a
//! timestamp either: see [`WriteClock`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ferry_client::{
    Client, ClientError, FetchOptions, Isolation, KafkaCode, NewTopic, ProduceOptions,
};
use ferry_wire::batch::{BatchIter, FetchedBatch};
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::{Header, Record};
use serde::{Deserialize, Serialize};

/// Records per produced batch: keeps a batch far below 1 MiB.
const RECORDS_PER_BATCH: usize = 2_000;

/// The timestamp of every record ferry writes to its own topics: Kafka's
/// "no timestamp" (-1), never validated against the broker's clock bounds.
pub(crate) const NO_TIMESTAMP: i64 = -1;

/// A topic id as Kafka gives it (16 bytes), written as Kafka prints it
/// (URL-safe base64 without padding, 22 characters, as
/// `kafka-topics.sh --describe` shows it).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(pub [u8; 16]);

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl TopicId {
    /// `None` for Kafka's "no id" (all zeroes), which brokers send when a
    /// topic has none.
    pub fn new(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(Self(bytes))
    }

    /// Reads Kafka's printed form back (`None` if it is not one).
    pub fn parse(text: &str) -> Option<Self> {
        let mut bits = 0u32;
        let mut held = 0;
        let mut out = Vec::with_capacity(16);
        for c in text.bytes() {
            let v = u32::try_from(BASE64URL.iter().position(|&b| b == c)?).ok()?;
            bits = (bits << 6) | v;
            held += 6;
            if held >= 8 {
                held -= 8;
                out.push(u8::try_from((bits >> held) & 0xff).ok()?);
            }
        }
        Some(Self(out.try_into().ok()?))
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bits = 0u32;
        let mut held = 0;
        for &b in &self.0 {
            bits = (bits << 8) | u32::from(b);
            held += 8;
            while held >= 6 {
                held -= 6;
                f.write_str(char_at(bits >> held))?;
            }
        }
        if held > 0 {
            f.write_str(char_at(bits << (6 - held)))?;
        }
        Ok(())
    }
}

fn char_at(index: u32) -> &'static str {
    let i = usize::try_from(index & 63).unwrap_or(0);
    // ASCII: one byte each.
    std::str::from_utf8(&BASE64URL[i..=i]).unwrap_or("A")
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({self})")
    }
}

impl Serialize for TopicId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TopicId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a Kafka topic id: {text:?}")))
    }
}

/// The ids of a partition's source and target topics when a checkpoint or
/// map chunk was written; `None` where not known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TopicIds {
    pub source: Option<TopicId>,
    pub target: Option<TopicId>,
}

/// The record header holding [`RecordMeta`].
pub const META_HEADER: &str = "ferry";

/// Ferry's bookkeeping on each record of its topics, as JSON in the record
/// header [`META_HEADER`]: the write's place in the write order
/// ([`WriteClock`]) and the ids of the topics the record is for. A header,
/// not fields of the value, so that an older ferry (which refuses unknown
/// value fields) still reads the records after a rollback. Every field is
/// optional; records of older ferry have no header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_topic_id: Option<TopicId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_topic_id: Option<TopicId>,
}

impl RecordMeta {
    pub fn stamped(stamp: WriteStamp, ids: TopicIds) -> Self {
        Self {
            epoch: Some(stamp.epoch),
            seq: Some(stamp.seq),
            source_topic_id: ids.source,
            target_topic_id: ids.target,
        }
    }

    pub fn stamp(&self) -> Option<WriteStamp> {
        Some(WriteStamp {
            epoch: self.epoch?,
            seq: self.seq?,
        })
    }

    pub fn ids(&self) -> TopicIds {
        TopicIds {
            source: self.source_topic_id,
            target: self.target_topic_id,
        }
    }

    /// The bookkeeping of `record` of `topic` (default without the header).
    pub fn of(topic: &'static str, record: &Record) -> Result<Self, StoreError> {
        match record
            .headers
            .iter()
            .find(|h| h.key.as_ref() == META_HEADER.as_bytes())
        {
            None => Ok(Self::default()),
            Some(h) => parse(topic, record.offset, h.value.as_ref(), "header"),
        }
    }
}

/// Orders ferry's writes to its own topics across runs without any clock:
/// a run's `epoch` is one above the highest epoch it loaded, and `seq`
/// counts its writes. A reader orders records by `(epoch, seq)`, so
/// neither clock skew between hosts, a clock set back, nor a request the
/// broker appended late (a timed-out attempt after its retry) can make an
/// older write win over a newer one. Clones share the counter.
#[derive(Debug, Clone, Default)]
pub struct WriteClock {
    state: Arc<WriteClockState>,
}

#[derive(Debug, Default)]
struct WriteClockState {
    /// The epoch of this run's writes (0 until anything was loaded: then 1).
    epoch: AtomicU64,
    seq: AtomicU64,
}

/// Gives every record read in log order its place in the write order:
/// its own stamp, or for a record without one (written by an older ferry)
/// the highest epoch seen before it in the log with the highest sequence:
/// after every stamped record before it (it was written after them, by a
/// run that did not stamp) and before every later run's (those loaded it
/// and took a higher epoch). Ties break by log offset.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StampOrder {
    max_seen: WriteStamp,
}

impl StampOrder {
    pub(crate) fn order(&mut self, stamp: Option<WriteStamp>) -> WriteStamp {
        match stamp {
            Some(stamp) => {
                self.max_seen = self.max_seen.max(stamp);
                stamp
            }
            None => WriteStamp {
                epoch: self.max_seen.epoch,
                seq: u64::MAX,
            },
        }
    }

    pub(crate) fn max_epoch(&self) -> u64 {
        self.max_seen.epoch
    }
}

/// Where one write stands in the order of all writes (see [`WriteClock`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteStamp {
    pub epoch: u64,
    pub seq: u64,
}

impl WriteClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// A record written by an earlier run had `epoch`: this run's writes
    /// order after it.
    pub fn observe(&self, epoch: u64) {
        self.state
            .epoch
            .fetch_max(epoch.saturating_add(1), Ordering::Relaxed);
    }

    /// The stamp of the next write: later than every stamp before it.
    pub fn next(&self) -> WriteStamp {
        // Epoch 0 is reserved for records without a stamp (older ferry).
        self.state.epoch.fetch_max(1, Ordering::Relaxed);
        let seq = self.state.seq.fetch_add(1, Ordering::Relaxed) + 1;
        WriteStamp {
            epoch: self.state.epoch.load(Ordering::Relaxed),
            seq,
        }
    }
}

/// Failures reading or writing one of ferry's topics on the target.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("topic {topic} on the target: {source}")]
    Client {
        topic: &'static str,
        source: ClientError,
    },
    #[error("topic {topic}: {source}")]
    Wire {
        topic: &'static str,
        source: ferry_wire::WireError,
    },
    #[error(
        "topic {topic}: record at offset {offset} is not ferry's ({detail}); \
         was the topic written by something else?"
    )]
    Malformed {
        topic: &'static str,
        offset: i64,
        detail: String,
    },
    #[error("topic {topic}: reading at offset {offset} failed with {code}")]
    Fetch {
        topic: &'static str,
        offset: i64,
        code: KafkaCode,
    },
    #[error("topic {topic}: no progress reading at offset {offset}")]
    Stalled { topic: &'static str, offset: i64 },
    #[error("topic {topic} on the target refused a write with {code}: {hint}")]
    WriteRefused {
        topic: &'static str,
        code: KafkaCode,
        hint: &'static str,
    },
}

impl StoreError {
    /// The Kafka error code behind this failure, if any.
    pub fn kafka_code(&self) -> Option<KafkaCode> {
        match self {
            Self::Client { source, .. } => source.kafka_code(),
            Self::Fetch { code, .. } | Self::WriteRefused { code, .. } => Some(*code),
            Self::Wire { .. } | Self::Malformed { .. } | Self::Stalled { .. } => None,
        }
    }

    /// Whether trying again later can succeed on its own. False only for
    /// records that are not ferry's; everything else (an unreachable or
    /// refusing target, an ACL not granted yet) may heal, so a flow keeps
    /// retrying and reports the failure (metric, `/ready`) meanwhile.
    pub fn may_heal(&self) -> bool {
        !matches!(self, Self::Malformed { .. } | Self::Wire { .. })
    }

    /// A short, stable label for metrics and `/ready`: `unavailable`,
    /// `authorization`, `refused`, `malformed` or `read`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed { .. } | Self::Wire { .. } => "malformed",
            Self::Fetch { .. } | Self::Stalled { .. } => "read",
            Self::WriteRefused { code, .. } if is_authorization(*code) => "authorization",
            Self::WriteRefused { .. } => "refused",
            Self::Client { source, .. } => match source.kafka_code() {
                Some(code) if is_authorization(code) => "authorization",
                Some(code) if !code.is_retriable() => "refused",
                _ => "unavailable",
            },
        }
    }
}

fn is_authorization(code: KafkaCode) -> bool {
    matches!(
        code,
        KafkaCode::TOPIC_AUTHORIZATION_FAILED
            | KafkaCode::CLUSTER_AUTHORIZATION_FAILED
            | KafkaCode::SASL_AUTHENTICATION_FAILED
    )
}

/// What to do about a write `code` the broker refused for good.
fn refusal_hint(code: KafkaCode) -> &'static str {
    match code {
        KafkaCode::INVALID_TIMESTAMP => {
            "the topic's message.timestamp.* settings refuse the record; ferry stamps \
             its own records with no timestamp, so check the topic's configs"
        }
        KafkaCode::TOPIC_AUTHORIZATION_FAILED | KafkaCode::CLUSTER_AUTHORIZATION_FAILED => {
            "grant ferry's principal WRITE on ferry's __ferry_* topics of the target"
        }
        KafkaCode::MESSAGE_TOO_LARGE | KafkaCode::RECORD_LIST_TOO_LARGE => {
            "raise the topic's max.message.bytes to at least 1 MiB"
        }
        _ => "see the broker's log for the reason",
    }
}

/// Creates the compacted, single-partition `topic` if it does not exist.
pub(crate) async fn ensure(client: &Client, topic: &'static str) -> Result<(), StoreError> {
    let err = |source| StoreError::Client { topic, source };
    let new = NewTopic {
        name: topic.into(),
        partitions: 1,
        replication_factor: -1,
        configs: vec![
            ("cleanup.policy".into(), "compact".into()),
            // The broker stamps the records: the host clock cannot matter.
            ("message.timestamp.type".into(), "LogAppendTime".into()),
        ],
    };
    match client.create_topic(&new).await {
        Ok(()) => {}
        Err(e) if e.kafka_code() == Some(KafkaCode::TOPIC_ALREADY_EXISTS) => {}
        Err(e) => return Err(err(e)),
    }
    client
        .wait_for_topic(topic, 1, Duration::from_secs(30))
        .await
        .map_err(err)
}

/// Calls `visit` with every data record of `topic`, from the log start to
/// the high watermark, in order.
pub(crate) async fn read_all(
    client: &Client,
    topic: &'static str,
    mut visit: impl FnMut(&Record) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let options = FetchOptions {
        isolation: Isolation::ReadCommitted,
        max_wait: Duration::ZERO,
        partition_max_bytes: 8 << 20,
        ..FetchOptions::default()
    };
    let wire = |source| StoreError::Wire { topic, source };
    let mut offset = 0;
    loop {
        let fetched = client
            .fetch_raw(topic, 0, offset, &options)
            .await
            .map_err(|source| StoreError::Client { topic, source })?;
        match fetched.error {
            None => {}
            // Compaction or retention removed the start: begin at the log start.
            Some(KafkaCode::OFFSET_OUT_OF_RANGE) if offset < fetched.log_start_offset => {
                offset = fetched.log_start_offset;
                continue;
            }
            Some(code) => {
                return Err(StoreError::Fetch {
                    topic,
                    offset,
                    code,
                });
            }
        }
        if offset >= fetched.high_watermark {
            return Ok(());
        }
        let before = offset;
        for entry in BatchIter::new(fetched.records.clone()) {
            let FetchedBatch::V2(batch) = entry.map_err(wire)? else {
                continue;
            };
            offset = batch.header().next_offset();
            if batch.header().is_control() {
                continue;
            }
            for record in batch.records(64 << 20).map_err(wire)? {
                visit(&record.map_err(wire)?)?;
            }
        }
        if offset == before {
            return Err(StoreError::Stalled { topic, offset });
        }
    }
}

/// JSON key/value pairs as record batches (uncompressed: tiny JSON),
/// stamped [`NO_TIMESTAMP`] whatever the host clock says.
pub(crate) fn encode<K: Serialize, V: Serialize>(
    topic: &'static str,
    entries: &[(K, Option<V>)],
) -> Result<Vec<Bytes>, StoreError> {
    let entries: Vec<(&K, Option<&V>, RecordMeta)> = entries
        .iter()
        .map(|(k, v)| (k, v.as_ref(), RecordMeta::default()))
        .collect();
    encode_with_meta(topic, &entries)
}

/// [`encode`], each record with its [`RecordMeta`] header (none if empty).
pub(crate) fn encode_with_meta<K: Serialize, V: Serialize>(
    topic: &'static str,
    entries: &[(K, Option<V>, RecordMeta)],
) -> Result<Vec<Bytes>, StoreError> {
    entries
        .chunks(RECORDS_PER_BATCH)
        .map(|chunk| {
            let records: Vec<Record> = chunk
                .iter()
                .map(|(k, v, meta)| Record {
                    offset: 0,
                    timestamp: NO_TIMESTAMP,
                    key: Some(Bytes::from(json(k))),
                    value: v.as_ref().map(|v| Bytes::from(json(v))),
                    headers: if *meta == RecordMeta::default() {
                        Vec::new()
                    } else {
                        vec![Header {
                            key: Bytes::from_static(META_HEADER.as_bytes()),
                            value: Some(Bytes::from(json(meta))),
                        }]
                    },
                })
                .collect();
            build_batch(&BatchSpec::producer(Compression::None), &records)
                .map_err(|source| StoreError::Wire { topic, source })
        })
        .collect()
}

pub(crate) fn json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Appends `batches` to `topic` (acks=all). Retries while the topic's
/// leadership settles: those errors mean nothing was appended.
pub(crate) async fn write(
    client: &Client,
    topic: &'static str,
    batches: Vec<Bytes>,
) -> Result<(), StoreError> {
    for batch in batches {
        let mut attempt = 0u32;
        loop {
            let result = client
                .produce_batch(topic, 0, vec![batch.clone()], &ProduceOptions::default())
                .await;
            match result {
                Ok(_) => break,
                Err(e) if attempt < 20 && e.is_retriable() => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10))))
                        .await;
                    let _ = client.refresh_metadata(Some(&[topic])).await;
                }
                Err(source) => {
                    return Err(match source.kafka_code() {
                        Some(code) if !code.is_retriable() => StoreError::WriteRefused {
                            topic,
                            code,
                            hint: refusal_hint(code),
                        },
                        _ => StoreError::Client { topic, source },
                    });
                }
            }
        }
    }
    Ok(())
}

/// Parses a JSON key or value of a record at `offset` of `topic`.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    topic: &'static str,
    offset: i64,
    bytes: Option<&Bytes>,
    what: &str,
) -> Result<T, StoreError> {
    let malformed = |detail: String| StoreError::Malformed {
        topic,
        offset,
        detail,
    };
    let bytes = bytes.ok_or_else(|| malformed(format!("null {what}")))?;
    serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))
}
