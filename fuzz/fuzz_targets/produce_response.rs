//! A Produce response body through ferry's bounded decoder.
#![no_main]

use bytes::Bytes;
use ferry_wire::responses::produce::{
    MAX_PRODUCE_RESPONSE_VERSION, MIN_PRODUCE_RESPONSE_VERSION, decode_produce_response,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let span =
        u8::try_from(MAX_PRODUCE_RESPONSE_VERSION - MIN_PRODUCE_RESPONSE_VERSION + 1).unwrap_or(1);
    let version = MIN_PRODUCE_RESPONSE_VERSION + i16::from(selector % span);
    let _ = decode_produce_response(Bytes::copy_from_slice(body), version);
});
