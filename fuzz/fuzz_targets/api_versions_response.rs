//! An ApiVersions response frame (header v0, whatever the body version)
//! through ferry's bounded header splitter and body decoder.
#![no_main]

use bytes::Bytes;
use ferry_wire::responses::api_versions::{
    MAX_API_VERSIONS_RESPONSE_VERSION, MIN_API_VERSIONS_RESPONSE_VERSION,
    decode_api_versions_response,
};
use ferry_wire::responses::header::split_response_header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let span =
        u8::try_from(MAX_API_VERSIONS_RESPONSE_VERSION - MIN_API_VERSIONS_RESPONSE_VERSION + 1)
            .unwrap_or(1);
    let version = MIN_API_VERSIONS_RESPONSE_VERSION + i16::from(selector % span);
    if let Ok((_, body)) = split_response_header(Bytes::copy_from_slice(frame), 0) {
        let _ = decode_api_versions_response(body, version);
    }
});
