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

use std::time::Duration;

use bytes::Bytes;
use ferry_client::{
    Client, ClientError, FetchOptions, Isolation, KafkaCode, NewTopic, ProduceOptions,
};
use ferry_wire::batch::{BatchIter, FetchedBatch};
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::{Header, Record};
use serde::Serialize;

/// Records per produced batch: keeps a batch far below 1 MiB.
const RECORDS_PER_BATCH: usize = 2_000;

/// The timestamp of every record ferry writes to its own topics: Kafka's
/// "no timestamp" (-1), never validated against the broker's clock bounds.
pub(crate) const NO_TIMESTAMP: i64 = -1;

#[path = "compacted_meta.rs"]
mod meta;
pub(crate) use meta::StampOrder;
pub use meta::{META_HEADER, RecordMeta, TopicId, TopicIds, WriteClock, WriteStamp};

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
