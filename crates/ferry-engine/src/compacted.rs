//! Ferry's small compacted topics on the target cluster (checkpoints, the
//! offset map): create once, read every record from the log start, append
//! JSON records with acks=all. Key and value are JSON so any Kafka tool can
//! read them.

use std::time::Duration;

use bytes::Bytes;
use ferry_client::{
    Client, ClientError, FetchOptions, Isolation, KafkaCode, NewTopic, ProduceOptions,
};
use ferry_wire::batch::{BatchIter, FetchedBatch};
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::Record;
use serde::Serialize;

/// Records per produced batch: keeps a batch far below 1 MiB.
const RECORDS_PER_BATCH: usize = 2_000;

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
}

/// Creates the compacted, single-partition `topic` if it does not exist.
pub(crate) async fn ensure(client: &Client, topic: &'static str) -> Result<(), StoreError> {
    let err = |source| StoreError::Client { topic, source };
    let new = NewTopic {
        name: topic.into(),
        partitions: 1,
        replication_factor: -1,
        configs: vec![("cleanup.policy".into(), "compact".into())],
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

/// JSON key/value pairs as record batches (uncompressed: tiny JSON).
pub(crate) fn encode<K: Serialize, V: Serialize>(
    topic: &'static str,
    entries: &[(K, Option<V>)],
    time_ms: i64,
) -> Result<Vec<Bytes>, StoreError> {
    entries
        .chunks(RECORDS_PER_BATCH)
        .map(|chunk| {
            let records: Vec<Record> = chunk
                .iter()
                .map(|(k, v)| Record {
                    offset: 0,
                    timestamp: time_ms,
                    key: Some(Bytes::from(json(k))),
                    value: v.as_ref().map(|v| Bytes::from(json(v))),
                    headers: Vec::new(),
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
                Err(source) => return Err(StoreError::Client { topic, source }),
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
