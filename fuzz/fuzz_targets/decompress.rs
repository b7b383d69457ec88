//! Every decompressor with a bound: never more output than the limit, never a panic.
#![no_main]

use ferry_wire::codec::{Compression, decompress};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let codec = Compression::ALL[usize::from(selector) % Compression::ALL.len()];
    if let Ok(out) = decompress(codec, input, LIMIT) {
        assert!(out.len() <= LIMIT);
    }
});
