//! Checks every decoder in this module shares: truncated input, a trailing
//! byte, array counts far beyond the bytes present, unknown versions.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Result, WireError};

/// A zero throttle time (INT32), the first field of most responses.
pub(crate) const THROTTLE: [u8; 4] = [0; 4];
/// A zero error code (INT16).
pub(crate) const NO_ERROR: [u8; 2] = [0; 2];

/// `prefix`, then an array count claiming `i32::MAX` elements (INT32, or
/// a compact unsigned varint in flexible versions), then a little padding:
/// a decoder must refuse it before allocating for the count.
pub(crate) fn huge_array(prefix: &[u8], compact: bool) -> Bytes {
    let mut b = BytesMut::from(prefix);
    if compact {
        b.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
    } else {
        b.put_i32(i32::MAX);
    }
    b.put_slice(&[0u8; 16]);
    b.freeze()
}

/// Asserts that `result` is the malformed-input error naming `what`.
#[track_caller]
pub(crate) fn assert_malformed<T: std::fmt::Debug>(result: Result<T>, what: &str) {
    match result {
        Err(WireError::Malformed { what: got, .. }) if got == what => {}
        other => panic!("expected Malformed {{ what: {what:?} }}, got {other:?}"),
    }
}

/// Whether every proper prefix of `wire` fails to decode.
pub(crate) fn every_truncation_fails<T>(wire: &Bytes, decode: impl Fn(Bytes) -> Result<T>) -> bool {
    (0..wire.len()).all(|cut| decode(wire.slice(..cut)).is_err())
}

/// Whether `wire` with one byte more fails to decode (nothing may be left over).
pub(crate) fn trailing_byte_fails<T>(wire: &Bytes, decode: impl Fn(Bytes) -> Result<T>) -> bool {
    let mut longer = BytesMut::from(&wire[..]);
    longer.put_u8(0);
    decode(longer.freeze()).is_err()
}

/// A test that `$decode` refuses the versions just outside `$min..=$max`.
macro_rules! refuses_versions_outside {
    ($decode:path, $min:expr, $max:expr) => {
        #[test]
        fn versions_outside_the_range_are_refused() {
            assert!($decode(bytes::Bytes::new(), $min - 1).is_err());
            assert!($decode(bytes::Bytes::new(), $max + 1).is_err());
        }
    };
}
pub(crate) use refuses_versions_outside;

/// A classic (non-flexible) body: a zero throttle time, one topic named
/// `t`, then a partition count claiming `i32::MAX` elements.
pub(crate) fn one_topic_then_huge_partitions() -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(&THROTTLE);
    b.put_i32(1);
    b.put_i16(1);
    b.put_slice(b"t");
    b.put_i32(i32::MAX);
    b.put_slice(&[0u8; 30]);
    b.freeze()
}
