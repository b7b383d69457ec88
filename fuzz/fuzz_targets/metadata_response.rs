//! A Metadata response body through ferry's bounded decoder.
#![no_main]

use bytes::Bytes;
use ferry_wire::responses::metadata::{
    MAX_METADATA_RESPONSE_VERSION, MIN_METADATA_RESPONSE_VERSION, decode_metadata_response,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let span = u8::try_from(MAX_METADATA_RESPONSE_VERSION - MIN_METADATA_RESPONSE_VERSION + 1)
        .unwrap_or(1);
    let version = MIN_METADATA_RESPONSE_VERSION + i16::from(selector % span);
    let _ = decode_metadata_response(Bytes::copy_from_slice(body), version);
});
