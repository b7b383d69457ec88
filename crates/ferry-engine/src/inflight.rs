//! The in-flight batches of one partition, and the position that may be
//! checkpointed.
//!
//! Batches are produced in source order and may be acknowledged out of
//! order relative to skipped entries (markers, aborted data) that need no
//! acknowledgement at all. A source position is committed only when every
//! entry before it is done: an acknowledged batch, or a skip. So a crash
//! never loses a record, whatever was in flight; at most the in-flight
//! batches are produced again after a restart.

use std::collections::VecDeque;

use crate::offset_map::{OffsetMap, OutOfOrder};

/// How an entry's records map onto the target once it is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// A forwarded batch: `count` records from `source_base` on, offsets contiguous.
    Contiguous { source_base: i64, count: i64 },
    /// A re-encoded batch: record `i` came from `source_offsets[i]`.
    Records(Vec<i64>),
    /// Nothing produced (a skip).
    None,
}

impl Mapping {
    /// The source offset of record `i` (counting from 0).
    pub fn source_offset(&self, i: usize) -> Option<i64> {
        match self {
            Self::Contiguous { source_base, count } => i64::try_from(i)
                .ok()
                .filter(|i| i < count)
                .map(|i| source_base + i),
            Self::Records(offsets) => offsets.get(i).copied(),
            Self::None => None,
        }
    }

    /// The first record's source offset.
    pub fn first(&self) -> Option<i64> {
        self.source_offset(0)
    }

    /// Records mapped.
    pub fn records(&self) -> i64 {
        match self {
            Self::Contiguous { count, .. } => *count,
            Self::Records(offsets) => i64::try_from(offsets.len()).unwrap_or(i64::MAX),
            Self::None => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    id: u64,
    /// Source offset after this entry.
    next_offset: i64,
    mapping: Mapping,
    /// Target base offset once acknowledged; always "done" for skips.
    acked: Option<i64>,
}

/// Handle of a pending entry, to acknowledge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryId(u64);

/// Progress made by [`InFlight::advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Next source offset to replicate; everything before it is on the target.
    pub source_offset: i64,
    /// Target offset after the last acknowledged batch, if any batch was.
    pub target_offset: Option<i64>,
}

/// In-flight entries of one partition, in source order.
#[derive(Debug, Clone)]
pub struct InFlight {
    entries: VecDeque<Entry>,
    next_id: u64,
    committed: Committed,
}

/// An acknowledgement that matches no pending entry (a bug upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("acknowledgement for an unknown or already acknowledged batch")]
pub struct UnknownEntry;

impl InFlight {
    /// Nothing in flight; `position` is the committed source offset.
    pub fn new(position: i64) -> Self {
        Self {
            entries: VecDeque::new(),
            next_id: 0,
            committed: Committed {
                source_offset: position,
                target_offset: None,
            },
        }
    }

    /// Nothing in flight; `position` is the committed source offset and the
    /// target partition currently ends at `target`.
    pub fn starting_at(position: i64, target: i64) -> Self {
        let mut f = Self::new(position);
        f.committed.target_offset = Some(target);
        f
    }

    /// A batch was sent; it is done when [`Self::ack`] is called with the id.
    pub fn push_pending(&mut self, next_offset: i64, mapping: Mapping) -> EntryId {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push_back(Entry {
            id,
            next_offset,
            mapping,
            acked: None,
        });
        EntryId(id)
    }

    /// Source offsets up to `next_offset` need nothing produced.
    pub fn push_skip(&mut self, next_offset: i64) {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push_back(Entry {
            id,
            next_offset,
            mapping: Mapping::None,
            acked: Some(-1),
        });
    }

    /// The target acknowledged entry `id` at `target_base`.
    pub fn ack(&mut self, id: EntryId, target_base: i64) -> Result<(), UnknownEntry> {
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.id == id.0 && e.acked.is_none())
            .ok_or(UnknownEntry)?;
        entry.acked = Some(target_base);
        Ok(())
    }

    /// Moves the committed position over every done entry at the front,
    /// recording acknowledged batches in `map`. Returns the new position.
    pub fn advance(&mut self, map: &mut OffsetMap) -> Result<Committed, OutOfOrder> {
        while let Some(front) = self.entries.front() {
            let Some(target) = front.acked else { break };
            // A batch acknowledged as DUPLICATE_SEQUENCE_NUMBER comes back
            // without its offset (the broker no longer remembers it). It is
            // on the target all the same, right after the batch acknowledged
            // before it: the idempotent producer appends one partition's
            // batches in sequence order, ferry is the target partition's only
            // writer, and skipped entries produce nothing. So it starts where
            // the committed target offset ends. Without a known target
            // offset only the source position advances.
            let target = match (target, &front.mapping) {
                (t, Mapping::None) => t,
                (t, _) if t < 0 => self.committed.target_offset.unwrap_or(-1),
                (t, _) => t,
            };
            match &front.mapping {
                _ if target < 0 => {}
                Mapping::Contiguous { source_base, count } => {
                    map.record(*source_base, target, *count)?;
                    self.committed.target_offset = Some(target + count);
                }
                Mapping::Records(offsets) => {
                    map.record_offsets(offsets, target)?;
                    let n = i64::try_from(offsets.len()).unwrap_or(i64::MAX);
                    self.committed.target_offset = Some(target + n);
                }
                Mapping::None => {}
            }
            self.committed.source_offset = front.next_offset;
            self.entries.pop_front();
        }
        Ok(self.committed)
    }

    /// The committed position (as of the last [`Self::advance`]).
    pub fn committed(&self) -> Committed {
        self.committed
    }

    /// Entries not yet committed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Batches sent but not acknowledged.
    pub fn pending(&self) -> usize {
        self.entries.iter().filter(|e| e.acked.is_none()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_advances_only_over_acknowledged_prefix() {
        let mut f = InFlight::new(100);
        let mut map = OffsetMap::new();
        let a = f.push_pending(
            110,
            Mapping::Contiguous {
                source_base: 100,
                count: 10,
            },
        );
        f.push_skip(111); // a commit marker at 110
        let b = f.push_pending(
            120,
            Mapping::Contiguous {
                source_base: 111,
                count: 9,
            },
        );
        f.ack(b, 510).unwrap();
        assert_eq!(
            f.advance(&mut map).unwrap().source_offset,
            100,
            "a is not acked yet"
        );
        f.ack(a, 500).unwrap();
        let c = f.advance(&mut map).unwrap();
        assert_eq!(c.source_offset, 120);
        assert_eq!(c.target_offset, Some(519));
        assert!(f.is_empty());
        assert_eq!(
            map.translate(110),
            Some(510),
            "the marker maps to the next record"
        );
    }

    #[test]
    fn skips_alone_advance_the_position() {
        let mut f = InFlight::new(0);
        f.push_skip(5);
        f.push_skip(9);
        let c = f.advance(&mut OffsetMap::new()).unwrap();
        assert_eq!((c.source_offset, c.target_offset), (9, None));
    }

    #[test]
    fn reencoded_batches_map_each_record() {
        let mut f = InFlight::new(0);
        let mut map = OffsetMap::new();
        let a = f.push_pending(10, Mapping::Records(vec![2, 5, 9]));
        f.ack(a, 40).unwrap();
        assert_eq!(f.advance(&mut map).unwrap().target_offset, Some(43));
        assert_eq!(map.translate(3), Some(41));
    }

    #[test]
    fn double_or_unknown_acks_are_errors() {
        let mut f = InFlight::new(0);
        let a = f.push_pending(
            1,
            Mapping::Contiguous {
                source_base: 0,
                count: 1,
            },
        );
        f.ack(a, 0).unwrap();
        assert_eq!(f.ack(a, 0), Err(UnknownEntry));
        assert_eq!(f.ack(EntryId(99), 0), Err(UnknownEntry));
        assert_eq!(f.pending(), 0);
    }

    /// Issue 14 item 17: a batch acknowledged as DUPLICATE_SEQUENCE_NUMBER
    /// (offset -1) sits right after the batch before it (see `advance`),
    /// so the committed target offset and the map still cover it.
    #[test]
    fn a_duplicate_acknowledged_without_its_offset_lands_after_the_batch_before() {
        let mut f = InFlight::starting_at(0, 40);
        let mut map = OffsetMap::new();
        let a = f.push_pending(
            3,
            Mapping::Contiguous {
                source_base: 0,
                count: 3,
            },
        );
        f.push_skip(4); // a marker
        let b = f.push_pending(6, Mapping::Records(vec![4, 5]));
        let c = f.push_pending(
            8,
            Mapping::Contiguous {
                source_base: 6,
                count: 2,
            },
        );
        f.ack(a, 40).unwrap();
        f.ack(b, -1).unwrap();
        f.ack(c, -1).unwrap();
        let done = f.advance(&mut map).unwrap();
        assert_eq!((done.source_offset, done.target_offset), (8, Some(47)));
        for (source, target) in [
            (0, 40),
            (2, 42),
            (3, 43),
            (4, 43),
            (5, 44),
            (6, 45),
            (7, 46),
        ] {
            assert_eq!(
                map.translate(source),
                Some(target),
                "source offset {source}"
            );
        }
        // Without a known target position nothing can be inferred: the
        // source position still advances, the target offset stays unknown.
        let mut f = InFlight::new(0);
        let a = f.push_pending(1, Mapping::Records(vec![0]));
        f.ack(a, -1).unwrap();
        let done = f.advance(&mut OffsetMap::new()).unwrap();
        assert_eq!((done.source_offset, done.target_offset), (1, None));
    }
}
