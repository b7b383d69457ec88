//! Memory of the offset map: entries held (exact) and the growth of the
//! process's resident memory while the journal is alive (approximate; this
//! test binary holds only these tests, run one at a time under a lock).
//!
//! Engine review #2: a transactional stream leaves a one-offset gap (the
//! commit marker) after every transaction, and the map held one run per
//! transaction for as long as the target kept the records.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::sync::Mutex;

use ferry_engine::offset_map::OffsetMap;
use ferry_engine::offset_store::RunJournal;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn rss_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<i64>().ok())
        .map_or(0, |kib| kib * 1024)
}

const TRANSACTIONS: i64 = 100_000;

/// Bytes the journal holds after `TRANSACTIONS` transactions of
/// `records` records each, every chunk written.
fn bytes_held_after_transactions(records: i64) -> (i64, usize) {
    let before = rss_bytes();
    let mut journal = RunJournal::new();
    let mut map = OffsetMap::new();
    for i in 0..TRANSACTIONS {
        // Records at source i*(records+1).., the commit marker after them.
        map.record(i * (records + 1), i * records, records).unwrap();
        journal.absorb(&mut map);
        if i % 100 == 0 {
            let w = journal.pending();
            journal.written(&w);
        }
    }
    let w = journal.pending();
    journal.written(&w);
    let held = rss_bytes() - before;
    let entries = journal.map().len();
    // Exact still: every record translates to where it landed.
    for i in (0..TRANSACTIONS).step_by(997) {
        for r in 0..records {
            assert_eq!(
                journal.translate(i * (records + 1) + r),
                Some(i * records + r)
            );
        }
        assert_eq!(
            journal.translate(i * (records + 1) + records),
            Some((i + 1) * records),
            "the marker: the next transaction's first record"
        );
    }
    drop(journal);
    (held, entries)
}

#[test]
fn one_record_transactions_cost_no_memory_per_transaction() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (held, entries) = bytes_held_after_transactions(1);
    let per_transaction = held as f64 / TRANSACTIONS as f64;
    println!(
        "{TRANSACTIONS} one-record transactions: {held} bytes held, {per_transaction:.2} bytes \
         per transaction, {entries} map entries"
    );
    assert!(entries <= 2, "{entries} entries");
    assert!(held < 1 << 20, "{held} bytes held");
}

#[test]
fn nine_record_transactions_cost_no_memory_per_transaction() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (held, entries) = bytes_held_after_transactions(9);
    println!("{TRANSACTIONS} nine-record transactions: {held} bytes held, {entries} map entries");
    assert!(entries <= 2, "{entries} entries");
    assert!(held < 1 << 20, "{held} bytes held");
}
