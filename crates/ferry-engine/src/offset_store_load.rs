//! Loading the offset map in two passes over `__ferry_offset_map`, so that
//! start-up holds the compact map and one small entry per chunk key, not
//! every chunk's runs at once.
//!
//! Pass 1 ([`LoadPlan`]) notes, for each chunk key of the flow, which
//! version is the newest (by write stamp, then log offset) and where it
//! ends on the target. Pass 2 ([`LoadOrder`]) reads the topic again and
//! applies those versions in write order as they come by. Writes appear in
//! the log in write order except for a request the broker appended late;
//! only such out-of-order versions are held until their turn.

use std::collections::HashMap;

use ferry_client::TopicPartition;

use super::{ChunkKey, ChunkValue, LoadedMap, PartitionAssembler, other_topic};
use crate::compacted::{RecordMeta, StampOrder, TopicIds, WriteStamp};

/// One chunk key's newest version as pass 1 saw it.
#[derive(Debug, Clone, Copy)]
struct Newest {
    rank: (WriteStamp, i64),
    ids: TopicIds,
    /// Target offset after its last run; `None`: deleted (a tombstone).
    end: Option<i64>,
}

/// Pass 1: the newest version of each chunk key of one flow.
#[derive(Debug, Default)]
pub(crate) struct LoadPlan {
    newest: HashMap<ChunkKey, Newest>,
    stamps: StampOrder,
}

impl LoadPlan {
    /// Notes one record read at log `offset` (records come in log order);
    /// other flows' records only advance the write order.
    pub(crate) fn note(
        &mut self,
        key: ChunkKey,
        value: Option<&ChunkValue>,
        meta: RecordMeta,
        offset: i64,
        flow: &str,
    ) {
        let rank = (self.stamps.order(meta.stamp()), offset);
        if key.flow != flow {
            return;
        }
        if self.newest.get(&key).is_some_and(|held| held.rank > rank) {
            return; // an older write the broker appended late
        }
        let end = value.map(|v| v.runs.last().map_or(0, |[_, t, len]| t + len));
        self.newest.insert(
            key,
            Newest {
                rank,
                ids: meta.ids(),
                end,
            },
        );
    }

    /// The highest write epoch seen.
    pub(crate) fn max_epoch(&self) -> u64 {
        self.stamps.max_epoch()
    }

    /// What pass 2 applies, in which order, per partition, each map holding
    /// at most `max_entries` entries (`None`: all).
    pub(crate) fn order(self, max_entries: Option<usize>) -> LoadOrder {
        let mut partitions: HashMap<TopicPartition, Vec<(ChunkKey, Newest)>> = HashMap::new();
        for (key, newest) in self.newest {
            if newest.end.is_some() {
                partitions
                    .entry(TopicPartition::new(key.topic.as_str(), key.partition))
                    .or_default()
                    .push((key, newest));
            }
        }
        let mut order = LoadOrder::default();
        let mut apply: Vec<((WriteStamp, i64), i64)> = Vec::new();
        for (tp, chunks) in partitions {
            // The newest chunk's ids are the partition's: others are of a
            // topic deleted since, never mixed in, deleted at the next expiry.
            let ids = chunks
                .iter()
                .max_by_key(|(_, n)| n.rank)
                .map(|(_, n)| n.ids)
                .unwrap_or_default();
            let mut assembler = PartitionAssembler::new(ids, max_entries);
            for (key, newest) in chunks {
                if other_topic(newest.ids, ids) {
                    assembler.stored(key.from, 0);
                    continue;
                }
                assembler.stored(key.from, newest.end.unwrap_or(0));
                order.wanted.insert(newest.rank.1, (tp.clone(), key.from));
                apply.push((newest.rank, newest.rank.1));
            }
            order.assemblers.insert(tp, assembler);
        }
        apply.sort_unstable();
        order.apply = apply.into_iter().map(|(_, offset)| offset).collect();
        order
    }
}

/// Pass 2: applies the newest versions in write order.
#[derive(Debug, Default)]
pub(crate) struct LoadOrder {
    /// Log offsets of the versions to apply, in write order.
    apply: Vec<i64>,
    /// The next of `apply` to apply.
    next: usize,
    /// Versions to apply: log offset → (partition, chunk key's `from`).
    wanted: HashMap<i64, (TopicPartition, i64)>,
    /// Versions read before their turn (appended late).
    held: HashMap<i64, ChunkValue>,
    assemblers: HashMap<TopicPartition, PartitionAssembler>,
}

impl LoadOrder {
    /// Takes one record read at log `offset` (records come in log order).
    pub(crate) fn take(&mut self, offset: i64, value: ChunkValue) {
        if !self.wanted.contains_key(&offset) {
            return;
        }
        self.held.insert(offset, value);
        while let Some(&due) = self.apply.get(self.next) {
            let Some(value) = self.held.remove(&due) else {
                return;
            };
            self.apply_one(due, &value);
            self.next += 1;
        }
    }

    fn apply_one(&mut self, offset: i64, value: &ChunkValue) {
        if let Some((tp, _)) = self.wanted.get(&offset) {
            if let Some(assembler) = self.assemblers.get_mut(tp) {
                assembler.apply(value);
            }
        }
    }

    /// Whether pass 2 can skip the record at `offset` without parsing it.
    pub(crate) fn wants(&self, offset: i64) -> bool {
        self.wanted.contains_key(&offset)
    }

    /// The maps. Versions that vanished between the passes (compacted away)
    /// are skipped; those held behind them are applied in order.
    pub(crate) fn finish(mut self) -> HashMap<TopicPartition, LoadedMap> {
        let rest: Vec<i64> = self.apply.get(self.next..).unwrap_or_default().to_vec();
        for offset in rest {
            if let Some(value) = self.held.remove(&offset) {
                self.apply_one(offset, &value);
            }
        }
        self.assemblers
            .into_iter()
            .map(|(tp, a)| (tp, a.finish()))
            .collect()
    }
}

/// Both passes over a log held in memory, as [`super::OffsetMapStore::load`]
/// runs them over the topic.
#[cfg(test)]
pub(crate) fn load_log(
    log: &[(ChunkKey, Option<ChunkValue>, RecordMeta)],
    flow: &str,
) -> HashMap<TopicPartition, LoadedMap> {
    let offsets = (0i64..).zip(log);
    let mut plan = LoadPlan::default();
    for (offset, (key, value, meta)) in offsets.clone() {
        plan.note(key.clone(), value.as_ref(), *meta, offset, flow);
    }
    let mut order = plan.order(None);
    for (offset, (_, value, _)) in offsets {
        if let (true, Some(value)) = (order.wants(offset), value) {
            order.take(offset, value.clone());
        }
    }
    order.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A newest version the broker appended after a newer write of another
    /// key is held until its turn: applied in log order it would wipe the
    /// newer chunk's runs.
    #[test]
    fn a_version_appended_late_is_applied_in_write_order() {
        let key = |from| ChunkKey {
            flow: "f".into(),
            topic: "t".into(),
            partition: 0,
            from,
        };
        let stamped = |epoch, seq| RecordMeta {
            epoch: Some(epoch),
            seq: Some(seq),
            ..RecordMeta::default()
        };
        let value = |runs: &[[i64; 3]]| {
            Some(ChunkValue {
                runs: runs.to_vec(),
            })
        };
        let log = vec![
            (key(0), value(&[[0, 0, 10]]), stamped(1, 1)),
            (key(50), value(&[[50, 200, 10]]), stamped(2, 1)),
            (key(0), value(&[[0, 0, 100]]), stamped(1, 5)), // appended late
        ];
        let loaded = load_log(&log, "f");
        let m = &loaded[&TopicPartition::new("t", 0)].map;
        assert_eq!(m.translate(10), Some(10));
        assert_eq!(
            m.translate(55),
            Some(205),
            "the newer chunk's runs are kept"
        );
        assert_eq!(
            loaded[&TopicPartition::new("t", 0)].chunks,
            vec![(0, 100), (50, 210)]
        );
    }
}
