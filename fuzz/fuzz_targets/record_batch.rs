//! Batch iteration, record decoding, control markers, header rewrite, the
//! slow path and coalescing over arbitrary partition data.
#![no_main]

use bytes::{Bytes, BytesMut};
use ferry_wire::batch::{BatchIter, FetchedBatch};
use ferry_wire::coalesce;
use ferry_wire::reencode::{ReencodeOptions, reencode};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut scratch = BytesMut::new();
    let mut iter = BatchIter::new(Bytes::copy_from_slice(data));
    let mut v2 = Vec::new();
    for entry in iter.by_ref() {
        let Ok(entry) = entry else { break };
        match &entry {
            FetchedBatch::V2(batch) => {
                let _ = batch.verify_crc();
                let _ = batch.control_type();
                if let Ok(records) = batch.records(LIMIT) {
                    for r in records.take(10_000) {
                        if r.is_err() {
                            break;
                        }
                    }
                }
                let mut h = *batch.header();
                h.base_offset = 0;
                h.producer_id = 1;
                let rewritten = batch.rewrite_header(&h, &mut scratch).expect("same length");
                assert_eq!(rewritten.len(), batch.len());
            }
            FetchedBatch::Legacy(m) => {
                let _ = m.verify_crc();
                let _ = m.records(LIMIT);
            }
        }
        let opts = ReencodeOptions {
            max_batch_bytes: 64 * 1024,
            decompress_limit: LIMIT,
            ..ReencodeOptions::default()
        };
        let _ = reencode(&entry, &opts);
        if let FetchedBatch::V2(batch) = entry {
            v2.push(batch);
        }
    }
    // Coalescing merges whatever consecutive batches a fetch holds.
    if v2.len() >= 2 {
        let opts = ReencodeOptions {
            max_batch_bytes: 64 * 1024,
            decompress_limit: LIMIT,
            ..ReencodeOptions::default()
        };
        let _ = coalesce::merge(&v2, &opts);
    }
    assert!(iter.incomplete_tail() <= data.len());
});
