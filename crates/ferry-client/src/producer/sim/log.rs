//! An in-memory partition log that takes idempotent batches the way a
//! Kafka broker does (`ProducerStateManager` / `ProducerAppendInfo`):
//!
//! - per producer id it remembers the epoch and the last
//!   [`RETAINED_BATCHES`] batches (first and last sequence, offset);
//! - a batch equal to one of those is a duplicate: not appended, answered
//!   with the original offset;
//! - an older epoch is refused (`INVALID_PRODUCER_EPOCH`); a newer epoch
//!   must start at sequence 0 unless the producer is unknown;
//! - within an epoch the first sequence must follow the last one
//!   (`OUT_OF_ORDER_SEQUENCE_NUMBER`), **unless the broker has no state for
//!   the producer** (expired, or deleted with the log's head): then any
//!   sequence is taken, as Kafka does.
//!
//! It knows nothing of ferry's producer, so the flow simulations can use it
//! as their target log too. Batches are identified by a caller's `id`
//! (e.g. the batch's first timestamp).

use std::collections::{HashMap, VecDeque};

use crate::error::KafkaCode;

/// Batches per producer the broker deduplicates against
/// (`ProducerStateEntry.NUM_BATCHES_TO_RETAIN`).
pub(crate) const RETAINED_BATCHES: usize = 5;

/// One batch as written to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub id: i64,
    pub base_offset: i64,
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

/// An idempotent batch offered to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offered {
    pub id: i64,
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    /// `(first sequence, last sequence, base offset)`, oldest first.
    batches: VecDeque<(i32, i32, i64)>,
}

/// A partition log with the broker's producer state.
#[derive(Debug, Clone, Default)]
pub(crate) struct PartitionLog {
    log: Vec<Written>,
    next_offset: i64,
    producers: HashMap<i64, ProducerEntry>,
}

fn last_sequence(first: i32, count: i32) -> i32 {
    // Kafka wraps at i32::MAX; the simulations stay far below it.
    first.saturating_add(count - 1)
}

impl PartitionLog {
    /// The batches written, in log order.
    pub fn batches(&self) -> &[Written] {
        &self.log
    }

    /// Appends `batch` or says why not: `Ok(base offset)` for a new batch
    /// or a duplicate (then the original offset), `Err(code)` for a refusal.
    pub fn append(&mut self, batch: Offered) -> Result<i64, KafkaCode> {
        let last = last_sequence(batch.base_sequence, batch.record_count);
        if let Some(entry) = self.producers.get(&batch.producer_id) {
            if batch.epoch < entry.epoch {
                return Err(KafkaCode::INVALID_PRODUCER_EPOCH);
            }
            if batch.epoch == entry.epoch {
                if let Some(&(_, _, offset)) = entry
                    .batches
                    .iter()
                    .find(|(f, l, _)| *f == batch.base_sequence && *l == last)
                {
                    return Ok(offset);
                }
                let last_seq = entry.batches.back().map_or(-1, |b| b.1);
                if batch.base_sequence != last_seq + 1 {
                    return Err(KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
                }
            } else if batch.base_sequence != 0 {
                return Err(KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
            }
        }
        // Unknown producer: any sequence goes (Kafka's "no current epoch").
        let base_offset = self.next_offset;
        self.next_offset += i64::from(batch.record_count);
        self.log.push(Written {
            id: batch.id,
            base_offset,
            producer_id: batch.producer_id,
            epoch: batch.epoch,
            base_sequence: batch.base_sequence,
            record_count: batch.record_count,
        });
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert(ProducerEntry {
                epoch: batch.epoch,
                batches: VecDeque::new(),
            });
        if entry.epoch != batch.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        entry
            .batches
            .push_back((batch.base_sequence, last, base_offset));
        if entry.batches.len() > RETAINED_BATCHES {
            entry.batches.pop_front();
        }
        Ok(base_offset)
    }

    /// The broker forgets every producer (`producer.id.expiration.ms`
    /// passed, which Kafka measures from the batches' *record* timestamps).
    pub fn expire_producers(&mut self) {
        self.producers.clear();
    }

    /// Keeps only the first `keep` batches (an unclean leader election) and
    /// rebuilds the producer state from them, as a new leader does.
    pub fn truncate(&mut self, keep: usize) {
        self.log.truncate(keep);
        self.next_offset = self
            .log
            .last()
            .map_or(0, |w| w.base_offset + i64::from(w.record_count));
        self.producers.clear();
        for w in &self.log {
            let entry = self
                .producers
                .entry(w.producer_id)
                .or_insert(ProducerEntry {
                    epoch: w.epoch,
                    batches: VecDeque::new(),
                });
            if entry.epoch != w.epoch {
                entry.epoch = w.epoch;
                entry.batches.clear();
            }
            entry.batches.push_back((
                w.base_sequence,
                last_sequence(w.base_sequence, w.record_count),
                w.base_offset,
            ));
            if entry.batches.len() > RETAINED_BATCHES {
                entry.batches.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(id: i64, epoch: i16, seq: i32) -> Offered {
        Offered {
            id,
            producer_id: 7,
            epoch,
            base_sequence: seq,
            record_count: 2,
        }
    }

    #[test]
    fn follows_the_brokers_sequence_rules() {
        let mut log = PartitionLog::default();
        assert_eq!(log.append(offer(1, 0, 0)), Ok(0));
        assert_eq!(log.append(offer(2, 0, 2)), Ok(2));
        // A duplicate answers its original offset and is not appended.
        assert_eq!(log.append(offer(1, 0, 0)), Ok(0));
        assert_eq!(
            log.append(offer(3, 0, 6)),
            Err(KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(
            log.append(offer(3, 1, 4)),
            Err(KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            "a new epoch starts at 0"
        );
        assert_eq!(log.append(offer(3, 1, 0)), Ok(4));
        assert_eq!(
            log.append(offer(4, 0, 4)),
            Err(KafkaCode::INVALID_PRODUCER_EPOCH)
        );
        // Without state any sequence goes.
        log.expire_producers();
        assert_eq!(log.append(offer(5, 1, 40)), Ok(6));
        assert_eq!(
            log.batches().iter().map(|w| w.id).collect::<Vec<_>>(),
            [1, 2, 3, 5]
        );
        log.truncate(2);
        assert_eq!(
            log.append(offer(6, 0, 6)),
            Err(KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(log.append(offer(6, 0, 4)), Ok(4));
    }
}
