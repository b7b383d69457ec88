//! Zig-zag varints as Kafka writes them inside records (protobuf style), and
//! unsigned varints as used by flexible (compact) request encodings.

// Zig-zag mapping and 7-bit groups are bit manipulation: the sign-dropping and
// truncating casts below are the algorithm, not accidents.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use bytes::BufMut;

use crate::{Result, WireError};

/// Decodes a zig-zag varint (at most 5 bytes) from the front of `buf`; returns value and length.
pub fn read_varint(buf: &[u8]) -> Result<(i32, usize)> {
    let (raw, n) = read_unsigned(buf, 5, "varint")?;
    let raw = u32::try_from(raw).map_err(|_| WireError::InvalidField {
        what: "varint",
        value: i64::try_from(raw).unwrap_or(i64::MAX),
    })?;
    Ok((((raw >> 1) as i32) ^ -((raw & 1) as i32), n))
}

/// Decodes a zig-zag varlong (at most 10 bytes) from the front of `buf`.
pub fn read_varlong(buf: &[u8]) -> Result<(i64, usize)> {
    let (raw, n) = read_unsigned(buf, 10, "varlong")?;
    Ok((((raw >> 1) as i64) ^ -((raw & 1) as i64), n))
}

/// Decodes an unsigned varint (at most 5 bytes, as in compact lengths).
pub fn read_unsigned_varint(buf: &[u8]) -> Result<(u32, usize)> {
    let (raw, n) = read_unsigned(buf, 5, "unsigned varint")?;
    let v = u32::try_from(raw).map_err(|_| WireError::InvalidField {
        what: "unsigned varint",
        value: i64::try_from(raw).unwrap_or(i64::MAX),
    })?;
    Ok((v, n))
}

fn read_unsigned(buf: &[u8], max_len: usize, what: &'static str) -> Result<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().take(max_len).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() < max_len {
        Err(WireError::truncated(what, buf.len() + 1, buf.len()))
    } else {
        Err(WireError::malformed(
            what,
            format!("longer than {max_len} bytes"),
        ))
    }
}

/// Appends `v` as a zig-zag varint.
pub fn put_varint(out: &mut impl BufMut, v: i32) {
    put_unsigned(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

/// Appends `v` as a zig-zag varlong.
pub fn put_varlong(out: &mut impl BufMut, v: i64) {
    put_unsigned(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends `v` as an unsigned varint.
pub fn put_unsigned_varint(out: &mut impl BufMut, v: u32) {
    put_unsigned(out, u64::from(v));
}

fn put_unsigned(out: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Encoded length of `v` as a zig-zag varint.
pub fn varint_len(v: i32) -> usize {
    unsigned_len(u64::from(((v << 1) ^ (v >> 31)) as u32))
}

/// Encoded length of `v` as a zig-zag varlong.
pub fn varlong_len(v: i64) -> usize {
    unsigned_len(((v << 1) ^ (v >> 63)) as u64)
}

/// Encoded length of `v` as an unsigned varint.
pub fn unsigned_varint_len(v: u32) -> usize {
    unsigned_len(u64::from(v))
}

fn unsigned_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let mut b = Vec::new();
        put_varint(&mut b, -1);
        assert_eq!(b, [1]);
        b.clear();
        put_varint(&mut b, 300);
        assert_eq!(b, [0xd8, 0x04]);
        assert_eq!(read_varint(&[0xd8, 0x04]).unwrap(), (300, 2));
    }

    #[test]
    fn overlong_and_truncated_inputs_are_errors() {
        assert!(matches!(
            read_varint(&[0x80, 0x80]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            read_varint(&[0xff; 6]),
            Err(WireError::Malformed { .. })
        ));
        assert!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x7f]).is_err(),
            "beyond 32 bits"
        );
    }

    proptest! {
        #[test]
        fn varint_round_trips(v in any::<i32>()) {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            prop_assert_eq!(b.len(), varint_len(v));
            prop_assert_eq!(read_varint(&b).unwrap(), (v, b.len()));
        }

        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut b = Vec::new();
            put_varlong(&mut b, v);
            prop_assert_eq!(b.len(), varlong_len(v));
            prop_assert_eq!(read_varlong(&b).unwrap(), (v, b.len()));
        }

        #[test]
        fn unsigned_round_trips(v in any::<u32>()) {
            let mut b = Vec::new();
            put_unsigned_varint(&mut b, v);
            prop_assert_eq!(b.len(), unsigned_varint_len(v));
            prop_assert_eq!(read_unsigned_varint(&b).unwrap(), (v, b.len()));
        }
    }
}
