//! Frame splitting over arbitrary bytes arriving in arbitrary chunks.
#![no_main]

use bytes::BytesMut;
use ferry_wire::frame::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let decoder = FrameDecoder::new(64 * 1024);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(usize::from(chunk).max(1)) {
        if decoder.reserve_hint(&buf, 4096).is_err() {
            return;
        }
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => assert!(frame.len() <= 64 * 1024),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
