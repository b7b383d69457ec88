//! A whole Fetch response body (as the client decodes it) followed by batch
//! iteration over every partition's records.
#![no_main]

use bytes::Bytes;
use ferry_wire::batch::BatchIter;
use kafka_protocol::messages::FetchResponse;
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    // Fetch versions ferry speaks: 4..=17.
    let version = 4 + i16::from(selector % 14);
    let mut buf = Bytes::copy_from_slice(body);
    let Ok(response) = FetchResponse::decode(&mut buf, version) else {
        return;
    };
    for topic in &response.responses {
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
