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
//!
//! Each record also carries the header `ferry` ([`RecordMeta`]): the write's
//! epoch and sequence ([`WriteClock`]) and the topic ids. On load, chunks
//! are applied in write order, each newer chunk superseding older runs only
//! from its first source offset on (`PartitionAssembler`); chunks of
//! another topic id than the newest are left out.
//!
//! Memory: the journal holds the map compactly (regular stretches as one
//! entry, see [`crate::offset_map`]) and at most [`DEFAULT_MAX_MAP_ENTRIES`]
//! entries per partition ([`RunJournal::set_max_entries`]). Loading reads
//! the topic twice (`offset_store_load.rs`): first which version of each
//! chunk key is the newest, then those versions in write order, so
//! start-up holds the compact maps and one small entry per chunk key (a
//! chunk covers up to 512 runs), never every chunk's runs at once.

use std::collections::HashMap;

use ferry_client::{Client, TopicPartition};
use serde::{Deserialize, Serialize};

use crate::compacted::{self, RecordMeta, StoreError, TopicId, TopicIds, WriteClock};
use crate::offset_map::{OffsetMap, Run};

/// The offset map topic on every target cluster.
pub const OFFSET_MAP_TOPIC: &str = "__ferry_offset_map";

/// Runs per record: ~30 bytes each in JSON, so a chunk stays near 16 KiB.
pub const RUNS_PER_CHUNK: usize = 512;

/// Entries of a partition's map held in memory by default (about
/// [`crate::offset_map::ENTRY_BYTES`] each, so ~1.3 MiB per partition):
/// beyond it the oldest are merged into an anchor ([`OffsetMap::coarsen_to`]).
/// A regular transactional stream needs 2 entries whatever its length; a
/// compacted topic needs about one per surviving record.
pub const DEFAULT_MAX_MAP_ENTRIES: usize = 16_384;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkKey {
    pub flow: String,
    pub topic: String,
    pub partition: i32,
    /// The first source offset of the chunk.
    pub from: i64,
}

/// Unknown fields are ignored, so a later version may add some. Ferry's
/// bookkeeping (write order, topic ids) is in the record header
/// ([`RecordMeta`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Entries of `known` held at most (0: [`DEFAULT_MAX_MAP_ENTRIES`]).
    max_entries: usize,
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
        let mut journal = Self {
            chunks: Vec::new(),
            known,
            stored,
            target_start: 0,
            max_entries: 0,
        };
        journal.bound_memory();
        journal
    }

    /// Holds at most `max_entries` entries of the map in memory (see
    /// [`DEFAULT_MAX_MAP_ENTRIES`]); translations of the oldest offsets then
    /// err towards re-reading. The map on the topic stays exact (`ferry
    /// offsets translate` reads it).
    pub fn set_max_entries(&mut self, max_entries: usize) {
        self.max_entries = max_entries;
        self.bound_memory();
    }

    fn limit(&self) -> usize {
        if self.max_entries == 0 {
            DEFAULT_MAX_MAP_ENTRIES
        } else {
            self.max_entries
        }
    }

    /// Merges the oldest entries once the map holds an eighth more than
    /// its limit (so the merge, linear in the map, runs rarely).
    fn bound_memory(&mut self) {
        let limit = self.limit();
        if self.known.len() > limit + limit / 8 {
            self.known.coarsen_to(limit);
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
            self.push(run);
        }
        map.keep_last_run();
    }

    fn push(&mut self, run: Run) {
        // Live runs follow each other and supersede the loaded map from
        // where this run of ferry resumed (keeping what does not conflict).
        self.known.supersede(run);
        self.bound_memory();
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

/// Reads and writes the offset map on one target cluster. Clones share the
/// write order. [`load`](Self::load) before writing: a store's writes order
/// after what it loaded (a store that never loaded starts at epoch 1).
#[derive(Debug, Clone)]
pub struct OffsetMapStore {
    client: Client,
    clock: WriteClock,
}

/// One partition's chunks to write, with the ids of its topics.
pub type IdentifiedWrites = (TopicPartition, TopicIds, ChunkWrites);

impl OffsetMapStore {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            clock: WriteClock::new(),
        }
    }

    /// Creates the topic if it does not exist.
    pub async fn ensure_topic(&self) -> Result<(), StoreError> {
        compacted::ensure(&self.client, OFFSET_MAP_TOPIC).await
    }

    /// Writes chunks of `flow`'s partitions without topic ids. `time_ms` is
    /// not used: records are stamped without the host clock (see
    /// [`crate::compacted`]).
    pub async fn write(
        &self,
        flow: &str,
        chunks: &[(TopicPartition, ChunkWrites)],
        _time_ms: i64,
    ) -> Result<(), StoreError> {
        let identified: Vec<IdentifiedWrites> = chunks
            .iter()
            .map(|(tp, w)| (tp.clone(), TopicIds::default(), w.clone()))
            .collect();
        self.write_identified(flow, &identified).await
    }

    /// Writes chunks of `flow`'s partitions with the ids of their topics,
    /// stamped after every write this store loaded or made.
    pub async fn write_identified(
        &self,
        flow: &str,
        chunks: &[IdentifiedWrites],
    ) -> Result<(), StoreError> {
        let stamp = self.clock.next();
        let entries: Vec<(ChunkKey, Option<ChunkValue>, RecordMeta)> = chunks
            .iter()
            .flat_map(|(tp, ids, writes)| {
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
                        RecordMeta::stamped(stamp, *ids),
                    )
                })
            })
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        let batches = compacted::encode_with_meta(OFFSET_MAP_TOPIC, &entries)?;
        compacted::write(&self.client, OFFSET_MAP_TOPIC, batches).await
    }

    /// Deletes chunks (tombstones; compaction removes them). `time_ms` is
    /// not used (see [`write`](Self::write)).
    pub async fn delete(
        &self,
        flow: &str,
        chunks: &[(TopicPartition, Vec<i64>)],
        _time_ms: i64,
    ) -> Result<(), StoreError> {
        // Stamped like writes: an unstamped tombstone would order after
        // every later write of the same key by this run.
        let meta = RecordMeta::stamped(self.clock.next(), TopicIds::default());
        let entries: Vec<(ChunkKey, Option<ChunkValue>, RecordMeta)> = chunks
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
                        meta,
                    )
                })
            })
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        let batches = compacted::encode_with_meta(OFFSET_MAP_TOPIC, &entries)?;
        compacted::write(&self.client, OFFSET_MAP_TOPIC, batches).await
    }

    /// `flow`'s whole map, by source partition, with where each partition's
    /// chunks end on the target ((first source offset, target offset after)).
    /// Later writes of this store order after everything loaded.
    ///
    /// Two passes over the topic (see `offset_store_load.rs`): start-up
    /// holds the compact maps and a small entry per chunk key, not every
    /// chunk's runs at once.
    ///
    /// Each map holds at most twice [`DEFAULT_MAX_MAP_ENTRIES`] entries (the
    /// oldest merged into an anchor beyond it); [`load_exact`](Self::load_exact)
    /// holds every run, for one-shot tools.
    pub async fn load(&self, flow: &str) -> Result<HashMap<TopicPartition, LoadedMap>, StoreError> {
        self.load_bounded(flow, Some(DEFAULT_MAX_MAP_ENTRIES * 2))
            .await
    }

    /// [`load`](Self::load) without the bound on entries: exact however
    /// large the map (`ferry offsets translate`).
    pub async fn load_exact(
        &self,
        flow: &str,
    ) -> Result<HashMap<TopicPartition, LoadedMap>, StoreError> {
        self.load_bounded(flow, None).await
    }

    async fn load_bounded(
        &self,
        flow: &str,
        max_entries: Option<usize>,
    ) -> Result<HashMap<TopicPartition, LoadedMap>, StoreError> {
        let mut plan = load::LoadPlan::default();
        compacted::read_all(&self.client, OFFSET_MAP_TOPIC, |r| {
            let key: ChunkKey =
                compacted::parse(OFFSET_MAP_TOPIC, r.offset, r.key.as_ref(), "key")?;
            let value: Option<ChunkValue> = match &r.value {
                Some(v) if key.flow == flow => Some(compacted::parse(
                    OFFSET_MAP_TOPIC,
                    r.offset,
                    Some(v),
                    "value",
                )?),
                _ => None,
            };
            let meta = RecordMeta::of(OFFSET_MAP_TOPIC, r)?;
            plan.note(key, value.as_ref(), meta, r.offset, flow);
            Ok(())
        })
        .await?;
        self.clock.observe(plan.max_epoch());
        let mut order = plan.order(max_entries);
        compacted::read_all(&self.client, OFFSET_MAP_TOPIC, |r| {
            if !order.wants(r.offset) {
                return Ok(());
            }
            let value: ChunkValue =
                compacted::parse(OFFSET_MAP_TOPIC, r.offset, r.value.as_ref(), "value")?;
            order.take(r.offset, value);
            Ok(())
        })
        .await?;
        Ok(order.finish())
    }
}

/// One stored chunk with its place in the write order (tests build maps
/// from these directly).
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct OrderedChunk {
    /// (write stamp, log offset).
    pub(crate) rank: (crate::compacted::WriteStamp, i64),
    pub(crate) from: i64,
    pub(crate) value: ChunkValue,
    pub(crate) ids: TopicIds,
}

/// One partition's persisted map and its chunks on the topic.
#[derive(Debug, Clone, Default)]
pub struct LoadedMap {
    pub map: OffsetMap,
    /// (first source offset, target offset after) of each stored chunk.
    /// Chunks of another topic id (see `ids`) are listed with target offset
    /// 0, so the first [`RunJournal::expire_below`] deletes them.
    pub chunks: Vec<(i64, i64)>,
    /// The topic ids of the newest chunk (`None` where unknown): compare
    /// them with the current ids ([`crate::checkpoint::compare_topic_id`]).
    pub ids: TopicIds,
}

impl LoadedMap {
    /// This map if it is of the topics with ids `current` (or ids are not
    /// known on either side); otherwise (a source or target topic deleted
    /// and re-created since) an empty map whose chunks are all due for
    /// deletion: the new topic is mirrored afresh, never with the old map.
    /// Pure: the flow calls it at partition start with the current ids.
    #[must_use]
    pub fn for_topics(self, current: TopicIds) -> Self {
        let recreated = |stored, now| {
            matches!(
                crate::checkpoint::compare_topic_id(stored, now),
                crate::checkpoint::Identity::Recreated { .. }
            )
        };
        if !recreated(self.ids.source, current.source)
            && !recreated(self.ids.target, current.target)
        {
            return self;
        }
        Self {
            map: OffsetMap::new(),
            chunks: self.chunks.into_iter().map(|(from, _)| (from, 0)).collect(),
            ids: current,
        }
    }
}

/// [`PartitionAssembler`] over chunks in any order (sorted by write order
/// first), as the tests build maps.
#[cfg(test)]
pub(crate) fn assemble_partition(mut chunks: Vec<OrderedChunk>) -> LoadedMap {
    chunks.sort_by_key(|c| c.rank);
    let ids = chunks.last().map(|c| c.ids).unwrap_or_default();
    let mut assembler = PartitionAssembler::new(ids, None);
    for chunk in chunks {
        if other_topic(chunk.ids, ids) {
            assembler.stored(chunk.from, 0);
            continue;
        }
        let end = chunk.value.runs.last().map_or(0, |[_, t, len]| t + len);
        assembler.stored(chunk.from, end);
        assembler.apply(&chunk.value);
    }
    assembler.finish()
}

/// Whether a chunk with `ids` is of another topic than `newest` (ids known
/// on both sides and different).
fn other_topic(ids: TopicIds, newest: TopicIds) -> bool {
    let differ =
        |a: Option<TopicId>, b: Option<TopicId>| matches!((a, b), (Some(a), Some(b)) if a != b);
    differ(ids.source, newest.source) || differ(ids.target, newest.target)
}

/// Builds one partition's map from its chunks, given **in write order**: each
/// chunk is newer knowledge than the ones written before it, so it
/// supersedes them from its first source offset on ([`OffsetMap::supersede`]:
/// a later run of ferry re-mirrored from there), and keeps everything of
/// them it does not contradict. Applying chunks in key order instead let a
/// stale chunk of a crashed run, keyed above a newer run's, wipe the map.
///
/// Chunks whose topic ids differ from the newest chunk's (a topic deleted
/// and re-created) are not used: the map is never mixed across topics.
/// Chunks without ids (older ferry, brokers without ids) are used.
/// Chunks of older ferry have no write stamp: they order by their place in
/// the log (see `compacted::StampOrder`), which is their write order.
#[derive(Debug, Default)]
struct PartitionAssembler {
    loaded: LoadedMap,
    /// Entries held at most (`None`: all, exact).
    max_entries: Option<usize>,
}

impl PartitionAssembler {
    fn new(ids: TopicIds, max_entries: Option<usize>) -> Self {
        Self {
            loaded: LoadedMap {
                ids,
                ..LoadedMap::default()
            },
            max_entries,
        }
    }

    /// A chunk on the topic: (first source offset, target offset after).
    fn stored(&mut self, from: i64, end: i64) {
        self.loaded.chunks.push((from, end));
    }

    /// The chunk's runs, newer than every chunk applied before.
    fn apply(&mut self, value: &ChunkValue) {
        for &[source, target, len] in &value.runs {
            self.loaded.map.supersede(Run {
                source,
                target,
                len,
            });
            // Bounded while loading too (see RunJournal::set_max_entries).
            if let Some(max) = self.max_entries {
                if self.loaded.map.len() > max + max / 8 {
                    self.loaded.map.coarsen_to(max);
                }
            }
        }
    }

    fn finish(mut self) -> LoadedMap {
        self.loaded.chunks.sort_unstable();
        self.loaded
    }
}

#[path = "offset_store_load.rs"]
mod load;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::compacted::WriteStamp;

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

    fn chunk(log_offset: i64, from: i64, runs: &[[i64; 3]]) -> OrderedChunk {
        OrderedChunk {
            rank: (WriteStamp::default(), log_offset),
            from,
            value: ChunkValue {
                runs: runs.to_vec(),
            },
            ids: TopicIds::default(),
        }
    }

    #[test]
    fn chunks_assemble_into_exact_maps() {
        let loaded = assemble_partition(vec![
            chunk(1, 12, &[[12, 8, 0], [15, 10, 4]]),
            chunk(0, 0, &[[0, 0, 5], [9, 5, 3]]),
        ]);
        let m = &loaded.map;
        assert_eq!(m.translate(3), Some(3));
        assert_eq!(
            m.translate(6),
            Some(5),
            "aborted: the next replicated record"
        );
        assert_eq!(m.translate(13), Some(8), "anchor: conservative");
        assert_eq!(m.translate(16), Some(11));
        assert_eq!(loaded.chunks, vec![(0, 8), (12, 14)]);
    }

    /// Engine review #11: run P1 persisted chunk 0 ([0,0,1000]) and chunk
    /// 1000 ([1000,1000,200]) but its checkpoint stayed at 900; run P2 fell
    /// back to the checkpoint and wrote chunk 900 (source 900.. at target
    /// 1200..). Applied in key order, P1's stale chunk 1000 came last, did
    /// not fit and replaced the whole map: translate(500) gave 1000, and a
    /// group synced with it skipped 500 records.
    #[test]
    fn a_stale_later_chunk_of_a_crashed_run_does_not_wipe_the_map() {
        let loaded = assemble_partition(vec![
            chunk(0, 0, &[[0, 0, 1000]]),
            chunk(1, 1000, &[[1000, 1000, 200]]),
            chunk(2, 900, &[[900, 1200, 700]]),
        ]);
        let m = &loaded.map;
        assert_eq!(m.translate(500), Some(500), "P1's exact knowledge is kept");
        assert_eq!(m.translate(899), Some(899));
        assert_eq!(m.translate(1000), Some(1300), "P2's newer copy");
        assert_eq!(m.translate(1599), Some(1899));
    }

    /// The same, ordered by write stamps: a chunk of an older run that the
    /// broker appended late (a timed-out request) still counts as older.
    #[test]
    fn write_stamps_order_chunks_before_the_log_does() {
        let stamped = |epoch, log_offset, from, runs: &[[i64; 3]]| {
            let mut c = chunk(log_offset, from, runs);
            c.rank.0 = WriteStamp { epoch, seq: 1 };
            c
        };
        let loaded = assemble_partition(vec![
            stamped(1, 0, 0, &[[0, 0, 1000]]),
            stamped(2, 1, 900, &[[900, 1200, 700]]),
            stamped(1, 2, 1000, &[[1000, 1000, 200]]), // appended late
        ]);
        assert_eq!(loaded.map.translate(500), Some(500));
        assert_eq!(loaded.map.translate(1000), Some(1300));
    }

    /// Reading the log: an unstamped record (older ferry) orders after the
    /// stamped ones before it; a late-appended older version of a key loses.
    #[test]
    fn the_newest_version_of_each_key_wins_by_write_order() {
        let key = |from| ChunkKey {
            flow: "f".into(),
            topic: "t".into(),
            partition: 0,
            from,
        };
        let meta = |stamp: Option<(u64, u64)>| RecordMeta {
            epoch: stamp.map(|s| s.0),
            seq: stamp.map(|s| s.1),
            ..RecordMeta::default()
        };
        let mut log = Vec::new();
        let mut insert = |from, runs: &[[i64; 3]], stamp, flow: &str| {
            let value = ChunkValue {
                runs: runs.to_vec(),
            };
            let key = ChunkKey {
                flow: flow.into(),
                ..key(from)
            };
            log.push((key, Some(value), meta(stamp)));
        };
        insert(0, &[[0, 0, 10]], None, "f");
        insert(0, &[[0, 0, 20]], Some((1, 2)), "f");
        insert(0, &[[0, 0, 15]], Some((1, 1)), "f");
        insert(7, &[[7, 7, 1]], None, "other");
        let loaded = load::load_log(&log, "f");
        let m = &loaded[&TopicPartition::new("t", 0)].map;
        assert_eq!(
            m.end(),
            Some((20, 20)),
            "(1,2) is newer than (1,1) appended after it"
        );
        assert_eq!(loaded.len(), 1, "other flows are not loaded");
    }

    /// A source topic deleted and re-created: chunks of the old topic id are
    /// not mixed into the new topic's map, and are listed for deletion.
    #[test]
    fn chunks_of_a_recreated_topic_are_not_mixed() {
        let old = TopicId::new([1; 16]);
        let new = TopicId::new([2; 16]);
        let with_id = |mut c: OrderedChunk, id| {
            c.ids.source = id;
            c
        };
        let loaded = assemble_partition(vec![
            with_id(chunk(0, 100, &[[100, 0, 4900]]), old),
            with_id(chunk(1, 5000, &[[5000, 5000, 10]]), old),
            with_id(chunk(2, 0, &[[0, 5010, 30]]), new),
        ]);
        assert_eq!(loaded.ids.source, new);
        assert_eq!(loaded.map.end(), Some((30, 5040)));
        assert_eq!(
            loaded.map.translate(5005),
            Some(5040),
            "not the old topic's 5005"
        );
        assert_eq!(loaded.chunks, vec![(0, 5040), (100, 0), (5000, 0)]);
    }

    #[test]
    fn a_map_of_a_recreated_topic_is_not_resumed() {
        let (old, new) = (TopicId::new([1; 16]), TopicId::new([2; 16]));
        let with = |source| {
            let mut loaded = assemble_partition(vec![chunk(0, 0, &[[0, 0, 5000]])]);
            loaded.ids.source = source;
            loaded
        };
        let same = TopicIds {
            source: old,
            target: None,
        };
        assert_eq!(with(old).for_topics(same).map.end(), Some((5000, 5000)));
        assert_eq!(
            with(None).for_topics(same).map.end(),
            Some((5000, 5000)),
            "no stored id: by name"
        );
        let fresh = with(old).for_topics(TopicIds {
            source: new,
            target: None,
        });
        assert!(fresh.map.is_empty());
        assert_eq!(fresh.chunks, vec![(0, 0)], "the old chunks are deleted");
        let mut journal = RunJournal::with_map(fresh.map, fresh.chunks);
        assert_eq!(journal.expire_below(0), vec![0]);
    }

    /// Engine review #2: a compacted topic leaves a run per surviving record
    /// (irregular gaps); the journal holds at most its limit, and older
    /// offsets translate conservatively (never past where they landed).
    #[test]
    fn a_compacted_topic_keeps_the_map_within_its_limit() {
        let mut journal = RunJournal::new();
        journal.set_max_entries(1_000);
        let mut map = OffsetMap::new();
        let mut exact = Vec::new(); // (source, target) of every record
        let mut target = 0;
        for batch in 0..200i64 {
            // Surviving records at irregular offsets, 500 per batch.
            let offsets: Vec<i64> = (0..500)
                .map(|i| {
                    let n = batch * 500 + i;
                    n * 3 + (n * n) % 2
                })
                .collect();
            map.record_offsets(&offsets, target).unwrap();
            exact.extend(offsets.iter().zip(target..).map(|(s, t)| (*s, t)));
            target += 500;
            journal.absorb(&mut map);
            let w = journal.pending();
            journal.written(&w);
        }
        assert!(
            journal.map().len() <= 1_000 + 1_000 / 8,
            "{}",
            journal.map().len()
        );
        for &(source, at) in exact.iter().step_by(37) {
            let t = journal.translate(source).unwrap();
            assert!(t <= at, "source {source} landed at {at}, translated to {t}");
        }
        let &(last_source, last_target) = exact.last().unwrap();
        assert_eq!(
            journal.translate(last_source),
            Some(last_target),
            "recent: exact"
        );
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

#[cfg(test)]
#[path = "offset_store_crash_tests.rs"]
mod crash_tests;
