//! The offset map, persisted on the target cluster so that any source
//! offset can be translated after a restart (and by other tools).
//!
//! Topic `__ferry_offset_map` (compacted, one partition). Each record holds
//! a chunk of one partition's runs (see [`crate::offset_map`]), keyed by the
//! chunk's first source offset; the chunk still growing is rewritten under
//! the same key, so compaction keeps its latest version:
//!
//! ```text
//! key   {"flow":"east-to-west","topic":"orders","partition":3,"from":1200}
//! value {"runs":[[1200,1187,800],[2003,1987,0],[2010,1990,96]]}
//! ```
//!
//! A run is `[source, target, len]`: source offsets `source..source+len`
//! are at target offsets `target..`; `len` 0 is an anchor. A partition
//! mirrored without gaps needs one run however long it is; every aborted
//! transaction, marker or compaction gap starts a new one.
//!
//! The flow writes new runs before each checkpoint, so a checkpoint never
//! points past what the persisted map covers.

use std::collections::{BTreeMap, HashMap};

use ferry_client::{Client, TopicPartition};
use serde::{Deserialize, Serialize};

use crate::compacted::{self, StoreError};
use crate::offset_map::{OffsetMap, Run};

/// The offset map topic on every target cluster.
pub const OFFSET_MAP_TOPIC: &str = "__ferry_offset_map";

/// Runs per record: ~30 bytes each in JSON, so a chunk stays near 16 KiB.
pub const RUNS_PER_CHUNK: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkKey {
    pub flow: String,
    pub topic: String,
    pub partition: i32,
    /// The first source offset of the chunk.
    pub from: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkValue {
    /// `[source, target, len]` per run, in order.
    pub runs: Vec<[i64; 3]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    from: i64,
    runs: Vec<Run>,
    /// Changed since it was last written.
    dirty: bool,
}

/// One partition's runs on their way to the topic: the partition task feeds
/// it, the checkpointer writes what changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunJournal {
    /// Full chunks not yet written, then the chunk still growing.
    chunks: Vec<Chunk>,
    /// The whole map as known: persisted runs loaded at start plus every
    /// run since (what consumer-group offsets are translated with).
    known: OffsetMap,
    /// Chunks on the topic: (key's source offset, target offset after
    /// their last run), so those the target's retention has passed can be
    /// deleted.
    stored: Vec<(i64, i64)>,
    /// The target partition's log start, as last seen (a recreated target
    /// topic starts at 0 again).
    target_start: i64,
}

/// Chunks to write for one partition: (first source offset, runs).
pub type ChunkWrites = Vec<(i64, Vec<Run>)>;

impl RunJournal {
    pub fn new() -> Self {
        Self::default()
    }

    /// A journal for a partition whose persisted map is `known`, stored in
    /// chunks `stored` ((first source offset, target offset after), as
    /// [`OffsetMapStore::load`] returns them).
    pub fn with_map(known: OffsetMap, stored: Vec<(i64, i64)>) -> Self {
        Self {
            chunks: Vec::new(),
            known,
            stored,
            target_start: 0,
        }
    }

    /// Forgets what lies wholly below `target_start` (the target
    /// partition's log start: nothing there can be consumed any more) and
    /// returns the stored chunks to delete from the topic.
    pub fn expire_below(&mut self, target_start: i64) -> Vec<i64> {
        self.target_start = target_start;
        self.known.truncate_below_target(target_start);
        let open = self.chunks.last().map(|c| c.from);
        let mut expired = Vec::new();
        self.stored.retain(|&(from, end)| {
            let gone = end <= target_start && Some(from) != open;
            if gone {
                expired.push(from);
            }
            !gone
        });
        expired
    }

    /// Where a consumer that would read source offset `source` next
    /// continues on the target ([`OffsetMap::translate`]), but never below
    /// the target's log start: records deleted there cannot be read, and
    /// an offset below it would leave the consumer to its
    /// `auto.offset.reset` (possibly "latest", skipping everything).
    pub fn translate(&self, source: i64) -> Option<i64> {
        self.known
            .translate(source)
            .map(|t| t.max(self.target_start))
    }

    /// The partition's whole map as known now.
    pub fn map(&self) -> &OffsetMap {
        &self.known
    }

    /// Moves `map`'s runs into the journal, leaving `map` only its last run
    /// (which later acknowledgements may still extend).
    pub fn absorb(&mut self, map: &mut OffsetMap) {
        for run in map.runs() {
            self.push(*run);
        }
        map.keep_last_run();
    }

    fn push(&mut self, run: Run) {
        // Live runs follow each other; one that does not fit the loaded map
        // (a target reset under ferry) starts the known map afresh.
        if self.known.record_run(run).is_err() {
            self.known = OffsetMap::new();
            let _ = self.known.record_run(run);
        }
        if let Some(chunk) = self.chunks.last_mut() {
            if let Some(last) = chunk.runs.last_mut() {
                if last.source == run.source {
                    if *last != run {
                        *last = run; // the same run, extended since
                        chunk.dirty = true;
                    }
                    return;
                }
            }
            if chunk.runs.len() < RUNS_PER_CHUNK {
                chunk.runs.push(run);
                chunk.dirty = true;
                return;
            }
        }
        self.chunks.push(Chunk {
            from: run.source,
            runs: vec![run],
            dirty: true,
        });
    }

    /// The chunks changed since the last [`written`](Self::written).
    pub fn pending(&self) -> ChunkWrites {
        self.chunks
            .iter()
            .filter(|c| c.dirty)
            .map(|c| (c.from, c.runs.clone()))
            .collect()
    }

    /// `writes` (from [`pending`](Self::pending)) are on the topic: full
    /// chunks written leave memory, the growing one is clean until it grows.
    pub fn written(&mut self, writes: &ChunkWrites) {
        for (from, runs) in writes {
            let end = runs.last().map_or(0, |r| r.target + r.len);
            match self.stored.iter_mut().find(|(f, _)| f == from) {
                Some(entry) => entry.1 = end,
                None => self.stored.push((*from, end)),
            }
        }
        for chunk in &mut self.chunks {
            if writes
                .iter()
                .any(|(from, runs)| *from == chunk.from && *runs == chunk.runs)
            {
                chunk.dirty = false;
            }
        }
        let last = self.chunks.len().saturating_sub(1);
        let mut i = 0;
        self.chunks.retain(|c| {
            let keep = i == last || c.dirty;
            i += 1;
            keep
        });
    }
}

/// Reads and writes the offset map on one target cluster.
#[derive(Debug, Clone)]
pub struct OffsetMapStore {
    client: Client,
}

impl OffsetMapStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Creates the topic if it does not exist.
    pub async fn ensure_topic(&self) -> Result<(), StoreError> {
        compacted::ensure(&self.client, OFFSET_MAP_TOPIC).await
    }

    /// Writes chunks of `flow`'s partitions.
    pub async fn write(
        &self,
        flow: &str,
        chunks: &[(TopicPartition, ChunkWrites)],
        time_ms: i64,
    ) -> Result<(), StoreError> {
        let entries: Vec<(ChunkKey, Option<ChunkValue>)> = chunks
            .iter()
            .flat_map(|(tp, writes)| {
                writes.iter().map(move |(from, runs)| {
                    (
                        ChunkKey {
                            flow: flow.to_owned(),
                            topic: tp.topic.to_string(),
                            partition: tp.partition,
                            from: *from,
                        },
                        Some(ChunkValue {
                            runs: runs.iter().map(|r| [r.source, r.target, r.len]).collect(),
                        }),
                    )
                })
            })
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        let batches = compacted::encode(OFFSET_MAP_TOPIC, &entries, time_ms)?;
        compacted::write(&self.client, OFFSET_MAP_TOPIC, batches).await
    }

    /// Deletes chunks (tombstones; compaction removes them).
    pub async fn delete(
        &self,
        flow: &str,
        chunks: &[(TopicPartition, Vec<i64>)],
        time_ms: i64,
    ) -> Result<(), StoreError> {
        let entries: Vec<(ChunkKey, Option<ChunkValue>)> = chunks
            .iter()
            .flat_map(|(tp, froms)| {
                froms.iter().map(move |from| {
                    (
                        ChunkKey {
                            flow: flow.to_owned(),
                            topic: tp.topic.to_string(),
                            partition: tp.partition,
                            from: *from,
                        },
                        None,
                    )
                })
            })
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        let batches = compacted::encode(OFFSET_MAP_TOPIC, &entries, time_ms)?;
        compacted::write(&self.client, OFFSET_MAP_TOPIC, batches).await
    }

    /// `flow`'s whole map, by source partition, with where each partition's
    /// chunks end on the target ((first source offset, target offset after)).
    pub async fn load(&self, flow: &str) -> Result<HashMap<TopicPartition, LoadedMap>, StoreError> {
        let mut chunks: BTreeMap<ChunkKey, ChunkValue> = BTreeMap::new();
        compacted::read_all(&self.client, OFFSET_MAP_TOPIC, |r| {
            let key: ChunkKey =
                compacted::parse(OFFSET_MAP_TOPIC, r.offset, r.key.as_ref(), "key")?;
            if key.flow != flow {
                return Ok(());
            }
            match &r.value {
                None => {
                    chunks.remove(&key);
                }
                Some(v) => {
                    let value: ChunkValue =
                        compacted::parse(OFFSET_MAP_TOPIC, r.offset, Some(v), "value")?;
                    chunks.insert(key, value);
                }
            }
            Ok(())
        })
        .await?;
        let mut stored: HashMap<TopicPartition, Vec<(i64, i64)>> = HashMap::new();
        for (key, value) in &chunks {
            let end = value.runs.last().map_or(0, |[_, t, len]| t + len);
            stored
                .entry(TopicPartition::new(key.topic.as_str(), key.partition))
                .or_default()
                .push((key.from, end));
        }
        Ok(assemble(chunks)
            .into_iter()
            .map(|(tp, map)| {
                let chunks = stored.remove(&tp).unwrap_or_default();
                (tp, LoadedMap { map, chunks })
            })
            .collect())
    }
}

/// One partition's persisted map and its chunks on the topic.
#[derive(Debug, Clone, Default)]
pub struct LoadedMap {
    pub map: OffsetMap,
    /// (first source offset, target offset after) of each stored chunk.
    pub chunks: Vec<(i64, i64)>,
}

/// Builds each partition's map from its chunks (ordered by their key, so by
/// first source offset within a partition). A run that overlaps earlier ones
/// (a restart re-mapping a stretch the previous run had persisted ahead of
/// its checkpoint) replaces them from its source offset on; if it still does
/// not fit (a target that was reset), the map starts afresh there.
fn assemble(chunks: BTreeMap<ChunkKey, ChunkValue>) -> HashMap<TopicPartition, OffsetMap> {
    let mut maps: HashMap<TopicPartition, OffsetMap> = HashMap::new();
    for (key, value) in chunks {
        let map = maps
            .entry(TopicPartition::new(key.topic, key.partition))
            .or_default();
        for [source, target, len] in value.runs {
            let run = Run {
                source,
                target,
                len,
            };
            if map.record_run(run).is_err() {
                *map = OffsetMap::new();
                let _ = map.record_run(run);
            }
        }
    }
    maps
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn run(source: i64, target: i64, len: i64) -> Run {
        Run {
            source,
            target,
            len,
        }
    }

    #[test]
    fn the_growing_run_is_rewritten_and_written_chunks_leave_memory() {
        let mut journal = RunJournal::new();
        let mut map = OffsetMap::new();
        map.record(0, 0, 10).unwrap();
        journal.absorb(&mut map);
        assert_eq!(journal.pending(), vec![(0, vec![run(0, 0, 10)])]);
        let w = journal.pending();
        journal.written(&w);
        assert!(journal.pending().is_empty());
        // The same run grows: the chunk is dirty again with the longer run.
        map.record(10, 10, 5).unwrap();
        map.record(20, 15, 1).unwrap(); // a gap: a new run
        journal.absorb(&mut map);
        assert_eq!(map.len(), 1, "the map keeps only the last run");
        assert_eq!(
            journal.pending(),
            vec![(0, vec![run(0, 0, 15), run(20, 15, 1)])]
        );
        assert_eq!(
            journal.map().translate(17),
            Some(15),
            "the known map has it all"
        );
        assert_eq!(journal.map().len(), 2);
    }

    #[test]
    fn full_chunks_close_and_a_new_key_starts() {
        let mut journal = RunJournal::new();
        let mut map = OffsetMap::new();
        for i in 0..=i64::try_from(RUNS_PER_CHUNK).unwrap() {
            map.record(i * 2, i, 1).unwrap(); // every other offset: no merging
        }
        journal.absorb(&mut map);
        let pending = journal.pending();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].1.len(), RUNS_PER_CHUNK);
        assert_eq!(pending[1].0, i64::try_from(RUNS_PER_CHUNK).unwrap() * 2);
        journal.written(&pending);
        assert_eq!(journal.chunks.len(), 1, "only the growing chunk stays");
    }

    #[test]
    fn chunks_below_the_target_log_start_expire() {
        let mut known = OffsetMap::new();
        known.record(0, 0, 100).unwrap();
        let mut journal = RunJournal::with_map(known, vec![(0, 100)]);
        let mut map = OffsetMap::new();
        map.record(150, 100, 50).unwrap();
        journal.absorb(&mut map);
        let w = journal.pending();
        journal.written(&w);
        assert!(
            journal.expire_below(99).is_empty(),
            "offset 99 is still there"
        );
        assert_eq!(journal.expire_below(120), vec![0]);
        assert!(
            journal.expire_below(1_000).is_empty(),
            "the open chunk stays"
        );
        assert_eq!(
            journal.map().translate(10),
            Some(100),
            "below the log start: where it starts"
        );
    }

    #[test]
    fn translations_for_group_sync_never_fall_below_the_target_log_start() {
        let mut known = OffsetMap::new();
        known.record(0, 0, 100).unwrap();
        let mut journal = RunJournal::with_map(known, vec![(0, 100)]);
        assert_eq!(journal.translate(5), Some(5));
        assert!(
            journal.expire_below(20).is_empty(),
            "the chunk still has 20..100"
        );
        assert_eq!(journal.map().translate(5), Some(5), "where it was");
        assert_eq!(journal.translate(5), Some(20), "where a consumer can read");
        assert_eq!(journal.translate(30), Some(30), "still there: exact");
        assert_eq!(journal.translate(500), Some(100), "the end");
    }

    #[test]
    fn chunks_assemble_into_exact_maps() {
        let key = |from| ChunkKey {
            flow: "f".into(),
            topic: "t".into(),
            partition: 0,
            from,
        };
        let mut chunks = BTreeMap::new();
        chunks.insert(
            key(0),
            ChunkValue {
                runs: vec![[0, 0, 5], [9, 5, 3]],
            },
        );
        chunks.insert(
            key(12),
            ChunkValue {
                runs: vec![[12, 8, 0], [15, 10, 4]],
            },
        );
        let maps = assemble(chunks);
        let m = &maps[&TopicPartition::new("t", 0)];
        assert_eq!(m.translate(3), Some(3));
        assert_eq!(
            m.translate(6),
            Some(5),
            "aborted: the next replicated record"
        );
        assert_eq!(m.translate(13), Some(8), "anchor: conservative");
        assert_eq!(m.translate(16), Some(11));
    }

    #[test]
    fn the_format_is_plain_json() {
        let key = ChunkKey {
            flow: "east-to-west".into(),
            topic: "orders".into(),
            partition: 3,
            from: 1200,
        };
        assert_eq!(
            String::from_utf8(compacted::json(&key)).unwrap(),
            r#"{"flow":"east-to-west","topic":"orders","partition":3,"from":1200}"#
        );
        let value = ChunkValue {
            runs: vec![[1200, 1187, 800]],
        };
        assert_eq!(
            String::from_utf8(compacted::json(&value)).unwrap(),
            r#"{"runs":[[1200,1187,800]]}"#
        );
    }
}
