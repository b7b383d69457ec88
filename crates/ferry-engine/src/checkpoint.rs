//! Checkpoints: each partition's replicated position, kept on the **target**
//! cluster (ferry needs no write access to the source).
//!
//! Topic `__ferry_checkpoints` (compacted, one partition, created on first
//! use). Key and value are JSON so any Kafka tool can read them:
//!
//! ```text
//! key   {"flow":"east-to-west","topic":"orders","partition":3}
//! value {"source_offset":1200,"target_topic":"east.orders","target_offset":1187,"time_ms":1764170000000}
//! ```
//!
//! `source_offset` is the next source offset to replicate: everything before
//! it is on the target. `target_offset` is the target offset after the last
//! replicated record (null if none was replicated yet).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use ferry_client::{
    Client, ClientError, FetchOptions, Isolation, KafkaCode, NewTopic, ProduceOptions,
    TopicPartition,
};
use ferry_wire::batch::{BatchIter, FetchedBatch};
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::Record;
use serde::{Deserialize, Serialize};

/// The checkpoint topic on every target cluster.
pub const CHECKPOINT_TOPIC: &str = "__ferry_checkpoints";

/// Entries per produced batch: keeps a batch far below 1 MiB.
const ENTRIES_PER_BATCH: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointKey {
    pub flow: String,
    pub topic: String,
    pub partition: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointValue {
    pub source_offset: i64,
    pub target_topic: String,
    pub target_offset: Option<i64>,
    pub time_ms: i64,
}

/// Failures reading or writing checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint topic {CHECKPOINT_TOPIC} on the target: {0}")]
    Client(#[from] ClientError),
    #[error("checkpoint topic {CHECKPOINT_TOPIC}: {0}")]
    Wire(#[from] ferry_wire::WireError),
    #[error(
        "checkpoint topic {CHECKPOINT_TOPIC}: record at offset {offset} is not a ferry checkpoint ({detail}); \
         was the topic written by something else?"
    )]
    Malformed { offset: i64, detail: String },
    #[error("checkpoint topic {CHECKPOINT_TOPIC}: reading at offset {offset} failed with {code}")]
    Fetch { offset: i64, code: KafkaCode },
    #[error("checkpoint topic {CHECKPOINT_TOPIC}: no progress reading at offset {offset}")]
    Stalled { offset: i64 },
}

/// Encodes checkpoint entries as record batches (uncompressed: tiny JSON).
pub fn encode(entries: &[(CheckpointKey, CheckpointValue)]) -> Result<Vec<Bytes>, CheckpointError> {
    entries
        .chunks(ENTRIES_PER_BATCH)
        .map(|chunk| {
            let records: Vec<Record> = chunk
                .iter()
                .map(|(k, v)| Record {
                    offset: 0,
                    timestamp: v.time_ms,
                    key: Some(Bytes::from(json(k))),
                    value: Some(Bytes::from(json(v))),
                    headers: Vec::new(),
                })
                .collect();
            Ok(build_batch(
                &BatchSpec::producer(Compression::None),
                &records,
            )?)
        })
        .collect()
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Folds checkpoint records into the latest value per key (later wins).
pub fn fold(
    state: &mut HashMap<CheckpointKey, CheckpointValue>,
    record: &Record,
) -> Result<(), CheckpointError> {
    let malformed = |detail: String| CheckpointError::Malformed {
        offset: record.offset,
        detail,
    };
    let key = record
        .key
        .as_ref()
        .ok_or_else(|| malformed("null key".into()))?;
    let key: CheckpointKey = serde_json::from_slice(key).map_err(|e| malformed(e.to_string()))?;
    match &record.value {
        None => {
            state.remove(&key); // a tombstone: the checkpoint was deleted
        }
        Some(v) => {
            let value: CheckpointValue =
                serde_json::from_slice(v).map_err(|e| malformed(e.to_string()))?;
            state.insert(key, value);
        }
    }
    Ok(())
}

/// Reads and writes checkpoints on one target cluster.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    client: Client,
}

impl CheckpointStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Creates the checkpoint topic if it does not exist.
    pub async fn ensure_topic(&self) -> Result<(), CheckpointError> {
        let topic = NewTopic {
            name: CHECKPOINT_TOPIC.into(),
            partitions: 1,
            replication_factor: -1,
            configs: vec![("cleanup.policy".into(), "compact".into())],
        };
        match self.client.create_topic(&topic).await {
            Ok(()) => {}
            Err(e) if e.kafka_code() == Some(KafkaCode::TOPIC_ALREADY_EXISTS) => {}
            Err(e) => return Err(e.into()),
        }
        self.client
            .wait_for_topic(CHECKPOINT_TOPIC, 1, Duration::from_secs(30))
            .await?;
        Ok(())
    }

    /// Every checkpoint of `flow`, by source partition.
    pub async fn load(
        &self,
        flow: &str,
    ) -> Result<HashMap<TopicPartition, CheckpointValue>, CheckpointError> {
        let options = FetchOptions {
            isolation: Isolation::ReadCommitted,
            max_wait: Duration::ZERO,
            partition_max_bytes: 8 << 20,
            ..FetchOptions::default()
        };
        let mut state = HashMap::new();
        let mut offset = 0;
        loop {
            let fetched = self
                .client
                .fetch_raw(CHECKPOINT_TOPIC, 0, offset, &options)
                .await?;
            match fetched.error {
                None => {}
                // Compaction or retention removed the start: begin at the log start.
                Some(KafkaCode::OFFSET_OUT_OF_RANGE) if offset < fetched.log_start_offset => {
                    offset = fetched.log_start_offset;
                    continue;
                }
                Some(code) => return Err(CheckpointError::Fetch { offset, code }),
            }
            if offset >= fetched.high_watermark {
                break;
            }
            let before = offset;
            for entry in BatchIter::new(fetched.records.clone()) {
                let FetchedBatch::V2(batch) = entry? else {
                    continue;
                };
                offset = batch.header().next_offset();
                if batch.header().is_control() {
                    continue;
                }
                for record in batch.records(64 << 20)? {
                    fold(&mut state, &record?)?;
                }
            }
            if offset == before {
                return Err(CheckpointError::Stalled { offset });
            }
        }
        Ok(state
            .into_iter()
            .filter(|(k, _)| k.flow == flow)
            .map(|(k, v)| (TopicPartition::new(k.topic, k.partition), v))
            .collect())
    }

    /// Writes checkpoint entries (acks=all). Retries while the topic's
    /// leadership settles: those errors mean nothing was appended.
    pub async fn write(
        &self,
        entries: &[(CheckpointKey, CheckpointValue)],
    ) -> Result<(), CheckpointError> {
        for batch in encode(entries)? {
            let mut attempt = 0u32;
            loop {
                let result = self
                    .client
                    .produce_batch(
                        CHECKPOINT_TOPIC,
                        0,
                        vec![batch.clone()],
                        &ProduceOptions::default(),
                    )
                    .await;
                match result {
                    Ok(_) => break,
                    Err(e) if attempt < 20 && e.is_retriable() => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10))))
                            .await;
                        let _ = self
                            .client
                            .refresh_metadata(Some(&[CHECKPOINT_TOPIC]))
                            .await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_wire::batch::RecordBatch;

    fn entry(flow: &str, p: i32, off: i64) -> (CheckpointKey, CheckpointValue) {
        (
            CheckpointKey {
                flow: flow.into(),
                topic: "orders".into(),
                partition: p,
            },
            CheckpointValue {
                source_offset: off,
                target_topic: "east.orders".into(),
                target_offset: Some(off - 1),
                time_ms: 1_764_170_000_000,
            },
        )
    }

    #[test]
    fn encoded_checkpoints_fold_back_with_later_values_winning() {
        let entries = vec![entry("f", 0, 10), entry("f", 1, 20), entry("f", 0, 30)];
        let mut state = HashMap::new();
        for b in encode(&entries).unwrap() {
            let batch = RecordBatch::new(b).unwrap();
            batch.verify_crc().unwrap();
            for r in batch.records(1 << 20).unwrap() {
                fold(&mut state, &r.unwrap()).unwrap();
            }
        }
        assert_eq!(state.len(), 2);
        assert_eq!(state[&entry("f", 0, 0).0].source_offset, 30);
    }

    #[test]
    fn the_format_is_plain_json() {
        let (k, v) = entry("east-to-west", 3, 1200);
        assert_eq!(
            String::from_utf8(json(&k)).unwrap(),
            r#"{"flow":"east-to-west","topic":"orders","partition":3}"#
        );
        assert!(
            String::from_utf8(json(&v))
                .unwrap()
                .starts_with(r#"{"source_offset":1200,"#)
        );
    }

    #[test]
    fn foreign_records_are_reported_with_their_offset() {
        let r = Record {
            offset: 7,
            timestamp: 0,
            key: Some(Bytes::from_static(b"not json")),
            value: None,
            headers: vec![],
        };
        let err = fold(&mut HashMap::new(), &r).unwrap_err().to_string();
        assert!(err.contains("offset 7"), "{err}");
    }

    #[test]
    fn many_entries_split_into_several_batches() {
        let entries: Vec<_> = (0..5000).map(|p| entry("f", p, 1)).collect();
        assert_eq!(encode(&entries).unwrap().len(), 3);
    }
}
