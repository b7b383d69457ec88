//! Benchmark inputs shared by the criterion benches: real captured batches
//! from `testdata/` (see `benches/hot_path.rs`).

use bytes::Bytes;
use ferry_protocol_tests::cases;
use ferry_wire::batch::{BatchIter, FetchedBatch, RecordBatch};

/// The data batches of every captured case, grouped by case name.
pub fn captured_batches() -> Vec<(String, Vec<RecordBatch>)> {
    cases()
        .into_iter()
        .map(|c| {
            let batches = BatchIter::new(c.records.clone())
                .filter_map(|e| match e {
                    Ok(FetchedBatch::V2(b)) if !b.header().is_control() => Some(b),
                    _ => None,
                })
                .collect();
            (c.name, batches)
        })
        .collect()
}

/// All captured data batches concatenated, as one fetched partition would be.
pub fn concatenated(batches: &[RecordBatch]) -> Bytes {
    let mut v = Vec::with_capacity(batches.iter().map(RecordBatch::len).sum());
    for b in batches {
        v.extend_from_slice(b.as_bytes());
    }
    Bytes::from(v)
}
