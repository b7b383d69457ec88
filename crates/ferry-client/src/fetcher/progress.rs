//! How far one partition's fetched `records` move its fetch position.

use bytes::Bytes;
use ferry_wire::batch::{BatchIter, FetchedBatch, LOG_OVERHEAD};

/// What a partition's records amount to, seen from `fetch_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scan {
    /// No bytes: nothing new (or no room left in the response).
    Empty,
    /// The first `end` bytes are complete batches; fetching continues at
    /// `next_offset`. A partial batch after them is dropped: the next fetch
    /// returns it whole. `epochs`: each leader epoch the batches carry
    /// where it first appears, `(epoch, base_offset)` (KIP-320).
    Batches {
        end: usize,
        next_offset: i64,
        epochs: Vec<(i32, i64)>,
    },
    /// Only the beginning of one batch: the partition's size limit (or
    /// what was left of the response's) is smaller than the batch.
    /// `needed` is the batch's full size, when enough of its header arrived.
    PartialOnly { needed: Option<usize> },
    /// Complete batches that all end before `fetch_offset`: fetching from
    /// there would return them again forever.
    Behind { next_offset: i64 },
    /// A malformed entry after `good_end` bytes of complete batches.
    Malformed {
        good_end: usize,
        next_offset: Option<i64>,
        detail: String,
    },
}

/// Walks the batch headers of `records` (no payload is read).
pub(crate) fn scan(records: &Bytes, fetch_offset: i64) -> Scan {
    if records.is_empty() {
        return Scan::Empty;
    }
    let mut iter = BatchIter::new(records.clone());
    let mut end = 0usize;
    let mut epochs: Vec<(i32, i64)> = Vec::new();
    for entry in iter.by_ref() {
        match entry {
            Ok(batch) => {
                end += batch.len();
                // Legacy messages carry no leader epoch.
                if let FetchedBatch::V2(b) = &batch {
                    let h = b.header();
                    if epochs
                        .last()
                        .is_none_or(|&(e, _)| e != h.partition_leader_epoch)
                    {
                        epochs.push((h.partition_leader_epoch, h.base_offset));
                    }
                }
            }
            Err(e) => {
                return Scan::Malformed {
                    good_end: end,
                    next_offset: iter.next_offset(),
                    detail: e.to_string(),
                };
            }
        }
    }
    match iter.next_offset() {
        None => Scan::PartialOnly {
            needed: batch_size(records),
        },
        Some(next_offset) if next_offset <= fetch_offset => Scan::Behind { next_offset },
        Some(next_offset) => Scan::Batches {
            end,
            next_offset,
            epochs,
        },
    }
}

/// The full size of the batch `records` starts with, from its length field.
fn batch_size(records: &[u8]) -> Option<usize> {
    let length = records.get(8..LOG_OVERHEAD)?;
    let length = i32::from_be_bytes(length.try_into().ok()?);
    usize::try_from(length).ok()?.checked_add(LOG_OVERHEAD)
}

#[cfg(test)]
mod tests {
    use ferry_wire::builder::{BatchSpec, build_batch};
    use ferry_wire::codec::Compression;
    use ferry_wire::record::Record;

    use super::*;

    fn batch(base_offset: i64, records: usize) -> Bytes {
        batch_in(-1, base_offset, records)
    }

    fn batch_in(epoch: i32, base_offset: i64, records: usize) -> Bytes {
        let records: Vec<Record> = (0..records)
            .map(|i| Record {
                offset: base_offset + i64::try_from(i).unwrap(),
                timestamp: 1_700_000_000_000,
                key: None,
                value: Some(Bytes::from(vec![b'x'; 100])),
                headers: Vec::new(),
            })
            .collect();
        let spec = BatchSpec {
            base_offset,
            partition_leader_epoch: epoch,
            ..BatchSpec::producer(Compression::None)
        };
        build_batch(&spec, &records).unwrap()
    }

    fn concat(parts: &[&[u8]]) -> Bytes {
        Bytes::from(parts.concat())
    }

    #[test]
    fn complete_batches_move_the_position_and_a_partial_tail_is_cut() {
        let a = batch(10, 3);
        let b = batch(13, 2);
        let c = batch(15, 4);
        let records = concat(&[&a, &b, &c[..c.len() / 2]]);
        assert_eq!(
            scan(&records, 10),
            Scan::Batches {
                end: a.len() + b.len(),
                next_offset: 15,
                epochs: vec![(-1, 10)],
            }
        );
        // The broker returns the whole batch holding the fetch offset.
        assert_eq!(
            scan(&records, 11),
            Scan::Batches {
                end: a.len() + b.len(),
                next_offset: 15,
                epochs: vec![(-1, 10)],
            }
        );
    }

    #[test]
    fn leader_epochs_are_listed_where_they_change() {
        let records = concat(&[
            &batch_in(3, 0, 2),
            &batch_in(3, 2, 2),
            &batch_in(5, 4, 1),
            &batch_in(5, 5, 1),
            &batch_in(7, 6, 3),
        ]);
        let Scan::Batches {
            epochs,
            next_offset,
            ..
        } = scan(&records, 0)
        else {
            panic!("expected batches");
        };
        assert_eq!(next_offset, 9);
        assert_eq!(epochs, [(3, 0), (5, 4), (7, 6)]);
    }

    #[test]
    fn a_lone_partial_batch_reports_its_size() {
        let a = batch(0, 50);
        assert_eq!(
            scan(&a.slice(..100), 0),
            Scan::PartialOnly {
                needed: Some(a.len())
            }
        );
        assert_eq!(scan(&a.slice(..5), 0), Scan::PartialOnly { needed: None });
        assert_eq!(scan(&Bytes::new(), 0), Scan::Empty);
    }

    #[test]
    fn batches_before_the_position_are_no_progress() {
        let a = batch(0, 3);
        assert_eq!(scan(&a, 3), Scan::Behind { next_offset: 3 });
    }

    #[test]
    fn garbage_after_good_batches_is_reported_with_the_good_prefix() {
        let a = batch(0, 3);
        let mut junk = vec![0u8; 40];
        junk[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        let records = concat(&[&a, &junk]);
        match scan(&records, 0) {
            Scan::Malformed {
                good_end,
                next_offset,
                ..
            } => {
                assert_eq!(good_end, a.len());
                assert_eq!(next_offset, Some(3));
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }
}
