//! Extending a CRC-32C over zero bytes in O(log n), fast.
//!
//! `crc32c::crc32c_combine` does the same thing the way zlib once did, by
//! squaring 32×32 GF(2) matrices on every call: ~20 µs per call here, which
//! made patching a 1 KiB batch's header 100× slower than checksumming the
//! whole batch (see BENCHMARKS.md). Here the powers x^(2^k) mod P are a
//! compile-time table, so shifting by n bytes is popcount(n) polynomial
//! multiplications of at most 32 steps each: well under a microsecond.
//! Written by hand because no maintained crate offers it for CRC-32C.

/// CRC-32C (Castagnoli) polynomial, bit-reflected.
const POLY: u32 = 0x82F6_3B78;

/// `a * b mod P` in the reflected representation (bit 31 is x^0).
const fn mul_mod_p(a: u32, mut b: u32) -> u32 {
    let mut m: u32 = 1 << 31;
    let mut p: u32 = 0;
    while m != 0 {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                break;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

/// `X_POW_2K[k]` = x^(2^k) mod P.
const X_POW_2K: [u32; 64] = {
    let mut table = [0u32; 64];
    let mut p: u32 = 1 << 30; // x^1
    let mut k = 0;
    while k < 64 {
        table[k] = p;
        p = mul_mod_p(p, p);
        k += 1;
    }
    table
};

/// x^(8n) mod P: the multiplier that appends n zero bytes to a message.
fn x_pow_8n(n: usize) -> u32 {
    let mut p: u32 = 1 << 31; // x^0
    let mut n = n as u64;
    let mut k = 3; // 8n = n * 2^3
    while n != 0 && k < 64 {
        if n & 1 != 0 {
            p = mul_mod_p(X_POW_2K[k], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// Given the XOR of the CRCs of two equal-length messages, the XOR of their
/// CRCs after both are extended by `n` zero bytes. (CRC-32C is affine, so the
/// init and final-xor constants cancel in the XOR and only the linear shift
/// remains.)
pub(crate) fn shift_crc_difference(diff: u32, n: usize) -> u32 {
    mul_mod_p(x_pow_8n(n), diff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matches_the_crc_of_explicit_zero_extension(
            a in prop::collection::vec(any::<u8>(), 1..64),
            n in 0usize..5000,
        ) {
            let b = vec![0x5au8; a.len()];
            let diff = crc32c::crc32c(&a) ^ crc32c::crc32c(&b);
            let mut ax = a.clone();
            ax.resize(a.len() + n, 0);
            let mut bx = b.clone();
            bx.resize(b.len() + n, 0);
            prop_assert_eq!(shift_crc_difference(diff, n), crc32c::crc32c(&ax) ^ crc32c::crc32c(&bx));
        }

        #[test]
        fn agrees_with_crc32c_combine_for_large_n(diff in any::<u32>(), n in 0usize..(1 << 40)) {
            prop_assert_eq!(
                shift_crc_difference(diff, n),
                crc32c::crc32c_combine(diff, 0, n) ^ crc32c::crc32c_combine(0, 0, n)
            );
        }
    }
}
