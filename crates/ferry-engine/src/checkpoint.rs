//! Checkpoints: each partition's replicated position, kept on the **target**
//! cluster (ferry needs no write access to the source).
//!
//! Topic `__ferry_checkpoints` (compacted, one partition, created on first
//! use). Key and value are JSON so any Kafka tool can read them:
//!
//! ```text
//! key    {"flow":"east-to-west","topic":"orders","partition":3}
//! value  {"source_offset":1200,"target_topic":"east.orders","target_offset":1187,"time_ms":1764170000000}
//! header ferry: {"epoch":4,"seq":118,"source_topic_id":"mB0nBqKSRsO0hD2hy5dJ3w","target_topic_id":"1QkVn7mBQTKb1yXq1y0p2Q"}
//! ```
//!
//! `source_offset` is the next source offset to replicate: everything before
//! it is on the target. `target_offset` is the target offset after the last
//! replicated record (null if none was replicated yet). `time_ms` is the
//! host's clock, for people only: nothing orders or validates by it.
//!
//! The record header `ferry` ([`RecordMeta`]) carries ferry's bookkeeping,
//! so the value stays what older ferry reads (a rollback keeps working).
//! `epoch` and `seq` order the writes ([`WriteClock`]): on load the value
//! with the highest `(epoch, seq)` wins, not the one appended last (a
//! timed-out request can be appended after its retry). Records written by
//! older ferry have no header: they order by their place in the log, after
//! stamped values earlier in the log and before any later run's.
//!
//! `source_topic_id` / `target_topic_id` are Kafka's topic ids (Metadata v10,
//! Kafka 2.8+), as Kafka prints them: a checkpoint of a topic that was
//! deleted and re-created since is recognised by [`checkpoint_fit`] and never
//! resumed. Brokers without topic ids, and records written by older ferry,
//! leave them out: the topic is then recognised by name only, as before.

use std::collections::HashMap;

use bytes::Bytes;
use ferry_client::{Client, TopicPartition};
use ferry_wire::record::Record;
use serde::{Deserialize, Serialize};

use crate::compacted::{self, StampOrder, StoreError};
pub use crate::compacted::{RecordMeta, TopicId, TopicIds, WriteClock, WriteStamp};

/// The checkpoint topic on every target cluster.
pub const CHECKPOINT_TOPIC: &str = "__ferry_checkpoints";

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointKey {
    pub flow: String,
    pub topic: String,
    pub partition: i32,
}

/// Unknown fields are ignored, so a later version may add some.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointValue {
    pub source_offset: i64,
    pub target_topic: String,
    pub target_offset: Option<i64>,
    pub time_ms: i64,
}

/// Whether a topic is the one something was stored for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Same id.
    Same,
    /// The topic was deleted and re-created under the same name since.
    Recreated { stored: TopicId, current: TopicId },
    /// No id on one side (a broker before Kafka 2.8, or a record of older
    /// ferry): only the name can tell, as before topic ids were stored.
    Unknown,
}

/// Compares a stored topic id with the topic's current id.
pub fn compare_topic_id(stored: Option<TopicId>, current: Option<TopicId>) -> Identity {
    match (stored, current) {
        (Some(stored), Some(current)) if stored == current => Identity::Same,
        (Some(stored), Some(current)) => Identity::Recreated { stored, current },
        _ => Identity::Unknown,
    }
}

/// Whether a loaded checkpoint may be resumed from, decided at partition
/// start (and again when metadata shows a new topic id while running).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointFit {
    /// Resume at the checkpoint (with the loaded offset map), as always.
    /// Also when ids are unknown on either side (name-based, as before).
    Resume,
    /// The source topic was re-created: the checkpoint and the offset map
    /// are the old topic's. The flow must mirror the new topic as a fresh
    /// partition from its beginning (log start), with an empty offset map
    /// journal (never mixed with the old one), and log it loudly: its
    /// offsets restart at 0, and the old position would skip its records.
    SourceRecreated { stored: TopicId, current: TopicId },
    /// The target topic this flow now maps the partition to is not the one
    /// the checkpoint was written for (the naming changed): its target
    /// offsets and offset map describe another topic. The flow must mirror
    /// the partition from the source's beginning into the new target topic
    /// as a fresh mirror (log it loudly), never reuse the old target offsets.
    TargetRenamed { stored: String, current: String },
    /// The target topic was deleted and re-created: what the checkpoint says
    /// is on the target is gone. Mirror from the source's beginning as a
    /// fresh mirror, with an empty offset map journal; log it loudly.
    TargetRecreated { stored: TopicId, current: TopicId },
}

/// What to do with `checkpoint` for a partition whose source topic now has
/// id `source_id`, mapped to target topic `target_topic` with id
/// `target_id` (`None` ids: not known). Pure: the flow calls it at
/// partition start.
pub fn checkpoint_fit(
    checkpoint: &Checkpoint,
    source_id: Option<TopicId>,
    target_topic: &str,
    target_id: Option<TopicId>,
) -> CheckpointFit {
    if let Identity::Recreated { stored, current } =
        compare_topic_id(checkpoint.ids.source, source_id)
    {
        return CheckpointFit::SourceRecreated { stored, current };
    }
    if checkpoint.value.target_topic != target_topic {
        return CheckpointFit::TargetRenamed {
            stored: checkpoint.value.target_topic.clone(),
            current: target_topic.to_owned(),
        };
    }
    if let Identity::Recreated { stored, current } =
        compare_topic_id(checkpoint.ids.target, target_id)
    {
        return CheckpointFit::TargetRecreated { stored, current };
    }
    CheckpointFit::Resume
}

/// A checkpoint as loaded: the value, the topic ids it was written for and
/// where its write stands among all writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub value: CheckpointValue,
    pub ids: TopicIds,
    pub order: WriteStamp,
}

/// Failures reading or writing checkpoints.
pub type CheckpointError = StoreError;

/// Encodes checkpoint entries as record batches (uncompressed: tiny JSON),
/// without write stamps or topic ids.
pub fn encode(entries: &[(CheckpointKey, CheckpointValue)]) -> Result<Vec<Bytes>, CheckpointError> {
    let entries: Vec<(&CheckpointKey, Option<&CheckpointValue>)> =
        entries.iter().map(|(k, v)| (k, Some(v))).collect();
    compacted::encode(CHECKPOINT_TOPIC, &entries)
}

/// Folds checkpoint records into the latest value per key (later wins).
pub fn fold(
    state: &mut HashMap<CheckpointKey, CheckpointValue>,
    record: &Record,
) -> Result<(), CheckpointError> {
    let mut stamped = Folded::default();
    stamped.fold(record)?;
    for (k, c) in stamped.state {
        match c {
            Some(c) => state.insert(k, c.value),
            None => state.remove(&k),
        };
    }
    Ok(())
}

/// Checkpoint records folded into the newest value per key: highest write
/// stamp first, then place in the log (see the module docs).
#[derive(Debug, Default)]
pub struct Folded {
    /// `None`: deleted (a tombstone).
    state: HashMap<CheckpointKey, Option<Checkpoint>>,
    /// Orders of the entries in `state`, with the log offset as tie-break.
    orders: HashMap<CheckpointKey, (WriteStamp, i64)>,
    stamps: StampOrder,
}

impl Folded {
    /// Folds one record (records must come in log order).
    pub fn fold(&mut self, record: &Record) -> Result<(), CheckpointError> {
        let key: CheckpointKey =
            compacted::parse(CHECKPOINT_TOPIC, record.offset, record.key.as_ref(), "key")?;
        let value: Option<CheckpointValue> = match &record.value {
            None => None,
            Some(v) => Some(compacted::parse(
                CHECKPOINT_TOPIC,
                record.offset,
                Some(v),
                "value",
            )?),
        };
        let meta = RecordMeta::of(CHECKPOINT_TOPIC, record)?;
        let order = self.stamps.order(meta.stamp());
        let rank = (order, record.offset);
        if self.orders.get(&key).is_some_and(|held| *held > rank) {
            return Ok(()); // an older write the broker appended late
        }
        self.orders.insert(key.clone(), rank);
        let checkpoint = value.map(|value| Checkpoint {
            value,
            ids: meta.ids(),
            order,
        });
        self.state.insert(key, checkpoint);
        Ok(())
    }

    /// The highest write epoch seen: a new run's writes must order after it.
    pub fn max_epoch(&self) -> u64 {
        self.stamps.max_epoch()
    }

    /// The live checkpoints.
    pub fn into_checkpoints(self) -> impl Iterator<Item = (CheckpointKey, Checkpoint)> {
        self.state.into_iter().filter_map(|(k, v)| Some((k, v?)))
    }
}

/// Reads and writes checkpoints on one target cluster. Clones share the
/// write order. Load before writing: a store's writes order after what it
/// loaded (a store that never loaded starts at epoch 1).
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    client: Client,
    clock: WriteClock,
}

impl CheckpointStore {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            clock: WriteClock::new(),
        }
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
        Ok(self
            .load_checkpoints(flow)
            .await?
            .into_iter()
            .map(|(tp, c)| (tp, c.value))
            .collect())
    }

    /// Every checkpoint of `flow`, by source partition, with the topic ids
    /// it was written for (see [`checkpoint_fit`]). Later writes of this
    /// store order after everything loaded.
    pub async fn load_checkpoints(
        &self,
        flow: &str,
    ) -> Result<HashMap<TopicPartition, Checkpoint>, CheckpointError> {
        let mut folded = Folded::default();
        compacted::read_all(&self.client, CHECKPOINT_TOPIC, |r| folded.fold(r)).await?;
        self.clock.observe(folded.max_epoch());
        Ok(folded
            .into_checkpoints()
            .filter(|(k, _)| k.flow == flow)
            .map(|(k, c)| (TopicPartition::new(k.topic, k.partition), c))
            .collect())
    }

    /// Writes checkpoint entries (acks=all), without topic ids.
    pub async fn write(
        &self,
        entries: &[(CheckpointKey, CheckpointValue)],
    ) -> Result<(), CheckpointError> {
        let with_ids: Vec<_> = entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), TopicIds::default()))
            .collect();
        self.write_identified(&with_ids).await
    }

    /// Writes checkpoint entries (acks=all) with the ids of the topics they
    /// are for, stamped after every write this store loaded or made.
    pub async fn write_identified(
        &self,
        entries: &[(CheckpointKey, CheckpointValue, TopicIds)],
    ) -> Result<(), CheckpointError> {
        let stamp = self.clock.next();
        let records: Vec<(&CheckpointKey, Option<&CheckpointValue>, RecordMeta)> = entries
            .iter()
            .map(|(k, v, ids)| (k, Some(v), RecordMeta::stamped(stamp, *ids)))
            .collect();
        let batches = compacted::encode_with_meta(CHECKPOINT_TOPIC, &records)?;
        compacted::write(&self.client, CHECKPOINT_TOPIC, batches).await
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
    fn topic_ids_are_written_as_kafka_prints_them() {
        let bytes: [u8; 16] = std::array::from_fn(|i| u8::try_from(i).unwrap_or(0));
        let id = TopicId::new(bytes).unwrap();
        assert_eq!(id.to_string(), "AAECAwQFBgcICQoLDA0ODw");
        assert_eq!(TopicId::parse("AAECAwQFBgcICQoLDA0ODw"), Some(id));
        assert_eq!(TopicId::parse("not an id"), None);
        assert_eq!(TopicId::new([0; 16]), None, "Kafka's zero id means none");
    }

    /// Records of older ferry (no stamp, no ids) load as before; a stamped
    /// record appended after a newer one (a late retry) does not win.
    #[test]
    fn the_newest_write_wins_not_the_last_appended() {
        let record = |offset: i64, source_offset: i64, header: Option<&str>| Record {
            offset,
            timestamp: -1,
            key: Some(Bytes::from_static(
                br#"{"flow":"f","topic":"orders","partition":0}"#,
            )),
            value: Some(Bytes::from(format!(
                r#"{{"source_offset":{source_offset},"target_topic":"t","target_offset":null,"time_ms":1}}"#
            ))),
            headers: header
                .map(|h| ferry_wire::record::Header {
                    key: Bytes::from_static(b"ferry"),
                    value: Some(Bytes::from(h.to_owned())),
                })
                .into_iter()
                .collect(),
        };
        let mut folded = Folded::default();
        folded.fold(&record(0, 10, None)).unwrap(); // older ferry
        folded
            .fold(&record(1, 30, Some(r#"{"epoch":1,"seq":2}"#)))
            .unwrap();
        folded
            .fold(&record(2, 20, Some(r#"{"epoch":1,"seq":1}"#)))
            .unwrap(); // appended late
        assert_eq!(folded.max_epoch(), 1);
        let loaded: Vec<_> = folded.into_checkpoints().collect();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].1.value.source_offset, 30);
        assert_eq!(loaded[0].1.ids, TopicIds::default());
    }

    #[test]
    fn a_checkpoint_fits_only_the_topics_it_was_written_for() {
        let (a, b) = (TopicId::new([1; 16]), TopicId::new([2; 16]));
        let checkpoint = Checkpoint {
            value: entry("f", 0, 10).1,
            ids: TopicIds {
                source: a,
                target: a,
            },
            order: WriteStamp::default(),
        };
        let fit = |source, topic: &str, target| checkpoint_fit(&checkpoint, source, topic, target);
        assert_eq!(fit(a, "east.orders", a), CheckpointFit::Resume);
        assert_eq!(
            fit(None, "east.orders", None),
            CheckpointFit::Resume,
            "no ids: by name"
        );
        assert!(matches!(
            fit(b, "east.orders", a),
            CheckpointFit::SourceRecreated { .. }
        ));
        assert!(matches!(
            fit(a, "west.orders", a),
            CheckpointFit::TargetRenamed { .. }
        ));
        assert!(matches!(
            fit(a, "east.orders", b),
            CheckpointFit::TargetRecreated { .. }
        ));
        assert_eq!(compare_topic_id(a, None), Identity::Unknown);
    }

    #[test]
    fn many_entries_split_into_several_batches() {
        let entries: Vec<_> = (0..5000).map(|p| entry("f", p, 1)).collect();
        assert_eq!(encode(&entries).unwrap().len(), 3);
    }
}
