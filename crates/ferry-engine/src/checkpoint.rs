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

use bytes::Bytes;
use ferry_client::{Client, TopicPartition};
use ferry_wire::record::Record;
use serde::{Deserialize, Serialize};

use crate::compacted::{self, StoreError};

/// The checkpoint topic on every target cluster.
pub const CHECKPOINT_TOPIC: &str = "__ferry_checkpoints";

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
pub type CheckpointError = StoreError;

/// Encodes checkpoint entries as record batches (uncompressed: tiny JSON).
pub fn encode(entries: &[(CheckpointKey, CheckpointValue)]) -> Result<Vec<Bytes>, CheckpointError> {
    let time = entries.iter().map(|(_, v)| v.time_ms).max().unwrap_or(0);
    let entries: Vec<(&CheckpointKey, Option<&CheckpointValue>)> =
        entries.iter().map(|(k, v)| (k, Some(v))).collect();
    compacted::encode(CHECKPOINT_TOPIC, &entries, time)
}

/// Folds checkpoint records into the latest value per key (later wins).
pub fn fold(
    state: &mut HashMap<CheckpointKey, CheckpointValue>,
    record: &Record,
) -> Result<(), CheckpointError> {
    let key: CheckpointKey =
        compacted::parse(CHECKPOINT_TOPIC, record.offset, record.key.as_ref(), "key")?;
    match &record.value {
        None => {
            state.remove(&key); // a tombstone: the checkpoint was deleted
        }
        Some(v) => {
            let value: CheckpointValue =
                compacted::parse(CHECKPOINT_TOPIC, record.offset, Some(v), "value")?;
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
        compacted::ensure(&self.client, CHECKPOINT_TOPIC).await
    }

    /// Every checkpoint of `flow`, by source partition.
    pub async fn load(
        &self,
        flow: &str,
    ) -> Result<HashMap<TopicPartition, CheckpointValue>, CheckpointError> {
        let mut state = HashMap::new();
        compacted::read_all(&self.client, CHECKPOINT_TOPIC, |r| fold(&mut state, r)).await?;
        Ok(state
            .into_iter()
            .filter(|(k, _)| k.flow == flow)
            .map(|(k, v)| (TopicPartition::new(k.topic, k.partition), v))
            .collect())
    }

    /// Writes checkpoint entries (acks=all).
    pub async fn write(
        &self,
        entries: &[(CheckpointKey, CheckpointValue)],
    ) -> Result<(), CheckpointError> {
        compacted::write(&self.client, CHECKPOINT_TOPIC, encode(entries)?).await
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
            String::from_utf8(compacted::json(&k)).unwrap(),
            r#"{"flow":"east-to-west","topic":"orders","partition":3}"#
        );
        assert!(
            String::from_utf8(compacted::json(&v))
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
