//! An OffsetForLeaderEpoch response body through ferry's bounded decoder.
#![no_main]

use bytes::Bytes;
use ferry_wire::responses::offset_for_leader_epoch::{
    MAX_OFFSET_FOR_LEADER_EPOCH_VERSION, MIN_OFFSET_FOR_LEADER_EPOCH_VERSION,
    decode_offset_for_leader_epoch_response,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let span = u8::try_from(
        MAX_OFFSET_FOR_LEADER_EPOCH_VERSION - MIN_OFFSET_FOR_LEADER_EPOCH_VERSION + 1,
    )
    .unwrap_or(1);
    let version = MIN_OFFSET_FOR_LEADER_EPOCH_VERSION + i16::from(selector % span);
    let _ = decode_offset_for_leader_epoch_response(Bytes::copy_from_slice(body), version);
});
