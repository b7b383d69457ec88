//! A whole Fetch response body through ferry's bounded decoder, then batch
//! iteration over every partition's records.
#![no_main]

use bytes::Bytes;
use ferry_wire::batch::BatchIter;
use ferry_wire::fetch::{MAX_FETCH_VERSION, MIN_FETCH_VERSION, decode_fetch_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let span = u8::try_from(MAX_FETCH_VERSION - MIN_FETCH_VERSION + 1).unwrap_or(1);
    let version = MIN_FETCH_VERSION + i16::from(selector % span);
    let Ok(response) = decode_fetch_response(Bytes::copy_from_slice(body), version) else {
        return;
    };
    for topic in &response.topics {
        for partition in &topic.partitions {
            if let Some(records) = &partition.records {
                for entry in BatchIter::new(records.clone()) {
                    if entry.is_err() {
                        break;
                    }
                }
            }
        }
    }
});
