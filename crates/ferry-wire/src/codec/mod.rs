//! Compression codecs used inside RecordBatch v2 payloads.
//!
//! Only the slow path (re-encoding) and diagnostics use these: forwarded
//! batches keep their compressed bytes untouched.
//!
//! Encoders write exactly the framing the Kafka Java producer writes, because
//! that is the one framing every client and broker can read. Decoders accept
//! every framing real clients produce, and never hold more than the caller's
//! `limit` of output (plus a small constant), whatever sizes the compressed data
//! announces: a batch payload is attacker-controlled input.

use std::fmt;
use std::io::{ErrorKind, Read};

use crate::{Result, WireError};

mod gzip;
mod lz4;
mod snappy;
mod zstd;

/// Decompresses a RecordBatch payload written with `codec`.
///
/// Fails with [`WireError::DecompressedTooLarge`] as soon as the output would
/// exceed `limit` bytes, having allocated at most about `limit` bytes; with
/// [`WireError::Codec`] if the bytes are not a valid stream for `codec`.
pub fn decompress(codec: Compression, input: &[u8], limit: usize) -> Result<Vec<u8>> {
    if codec != Compression::None && input.is_empty() {
        // Every encoder writes at least a header, and Java's decoders throw on an
        // empty stream; say so plainly instead of each library's own wording.
        return Err(codec_error(codec, "empty input"));
    }
    match codec {
        Compression::None if input.len() > limit => Err(too_large(codec, limit)),
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => gzip::decompress(input, limit),
        Compression::Snappy => snappy::decompress(input, limit),
        Compression::Lz4 => lz4::decompress(input, limit),
        Compression::Zstd => zstd::decompress(input, limit),
    }
}

/// Compresses a RecordBatch payload the way the Kafka Java producer does, so
/// that every Kafka client and broker can read it:
///
/// - gzip: one RFC 1952 member at the default level;
/// - snappy: xerial framing (what Java writes; see [`compress_snappy_raw`] for
///   librdkafka's unframed variant);
/// - lz4: an LZ4 frame with independent 64 KiB blocks and no checksums;
/// - zstd: one frame at level 3.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>> {
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => gzip::compress(input),
        Compression::Snappy => snappy::compress_xerial(input),
        Compression::Lz4 => lz4::compress(input),
        Compression::Zstd => zstd::compress(input),
    }
}

/// Compresses `input` as one unframed raw snappy block, the way librdkafka
/// writes snappy payloads. Java, librdkafka and [`decompress`] all read it.
pub fn compress_snappy_raw(input: &[u8]) -> Result<Vec<u8>> {
    snappy::compress_raw(input)
}

fn codec_error(codec: Compression, reason: impl fmt::Display) -> WireError {
    WireError::Codec {
        codec,
        reason: reason.to_string(),
    }
}

fn too_large(codec: Compression, limit: usize) -> WireError {
    WireError::DecompressedTooLarge { codec, limit }
}

/// Smallest buffer step, so tiny payloads do not cost many reallocations.
const MIN_GROWTH: usize = 4 * 1024;

/// Makes `out`'s capacity at least `wanted` bytes, doubling (so filling it stays
/// linear) but never reserving past `cap` bytes. `Vec`'s own growth could
/// overshoot a caller's limit by up to 2x.
fn reserve_capped(out: &mut Vec<u8>, wanted: usize, cap: usize) {
    if wanted <= out.capacity() {
        return;
    }
    let target = out
        .capacity()
        .saturating_mul(2)
        .max(MIN_GROWTH)
        .min(cap)
        .max(wanted);
    out.reserve_exact(target.saturating_sub(out.len()));
}

/// Reads `reader` to its end into a buffer that never grows past `limit + 1`
/// bytes: one byte past the limit is enough to prove the output too large.
/// `hint` is a first guess at the output size (it is capped, never trusted).
fn read_bounded<R: Read>(
    codec: Compression,
    mut reader: R,
    limit: usize,
    hint: usize,
) -> Result<Vec<u8>> {
    let cap = limit.saturating_add(1);
    let mut out = Vec::new();
    let mut filled = 0;
    loop {
        if filled == out.len() {
            if filled >= cap {
                return Err(too_large(codec, limit));
            }
            let wanted = if filled == 0 { hint } else { filled + 1 };
            reserve_capped(&mut out, wanted.clamp(1, cap), cap);
            // Zero-fill the spare capacity once, so each byte is zeroed only once.
            out.resize(out.capacity().min(cap), 0);
        }
        let Some(spare) = out.get_mut(filled..) else {
            return Err(codec_error(codec, "internal buffer accounting error"));
        };
        match reader.read(spare) {
            Ok(0) => break,
            Ok(n) => {
                filled = filled.saturating_add(n);
                if filled > limit {
                    return Err(too_large(codec, limit));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(codec_error(codec, e)),
        }
    }
    out.truncate(filled);
    Ok(out)
}

/// Codec id stored in bits 0-2 of a batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    /// All codecs, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec named by the low three bits of batch attributes.
    pub fn from_attributes(attributes: i16) -> Result<Self> {
        Self::from_id(u8::try_from(attributes & 0x07).unwrap_or(u8::MAX))
    }

    /// The codec with Kafka's numeric id.
    pub fn from_id(id: u8) -> Result<Self> {
        match id {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            other => Err(WireError::UnknownCodec(other)),
        }
    }

    /// Kafka's numeric id.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// Kafka's name (`compression.type` value).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const COMPRESSED: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Text-like data: compressible, but not trivially.
    pub(super) fn sample(len: usize) -> Vec<u8> {
        let words: [&[u8]; 6] = [
            b"kafka ", b"ferry ", b"record ", b"batch ", b"offset ", b"42 ",
        ];
        let mut out = Vec::with_capacity(len + 8);
        let mut state = 0x2545_f491_u32;
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            out.extend_from_slice(words[state as usize % words.len()]);
        }
        out.truncate(len);
        out
    }

    fn all_zeros(data: &[u8]) -> bool {
        let zeros = [0u8; 4096];
        data.chunks(zeros.len()).all(|c| c == &zeros[..c.len()])
    }

    /// A payload of `original_len` zero bytes must be refused at 1 MiB and
    /// decoded at exactly its size, with the output buffer never larger than the
    /// limit (+1 byte to detect overflow). (Refusal one byte short of the size is
    /// tested on smaller data, to keep the suite fast.)
    pub(super) fn assert_bomb(codec: Compression, payload: &[u8], original_len: usize) {
        let mib = 1 << 20;
        assert_eq!(
            decompress(codec, payload, mib),
            Err(WireError::DecompressedTooLarge { codec, limit: mib })
        );
        let out = decompress(codec, payload, original_len).unwrap();
        assert_eq!(out.len(), original_len);
        assert!(out.capacity() <= original_len + 1, "{}", out.capacity());
        assert!(all_zeros(&out));
    }

    pub(super) fn is_codec_error(result: &Result<Vec<u8>>) -> bool {
        matches!(result, Err(WireError::Codec { .. }))
    }

    #[test]
    fn round_trip_edge_sizes() {
        for codec in Compression::ALL {
            for len in [
                0,
                1,
                15,
                16,
                32 * 1024 - 1,
                32 * 1024,
                32 * 1024 + 1,
                65_537,
                200_000,
            ] {
                let data = sample(len);
                let compressed = compress(codec, &data).unwrap();
                let out = decompress(codec, &compressed, len).unwrap();
                assert!(out == data, "{codec} round trip of {len} bytes");
            }
        }
    }

    #[test]
    fn raw_snappy_round_trip() {
        for len in [0, 1, 100, 70_000] {
            let data = sample(len);
            let raw = compress_snappy_raw(&data).unwrap();
            assert_eq!(decompress(Compression::Snappy, &raw, len).unwrap(), data);
        }
    }

    #[test]
    fn none_copies_within_the_limit() {
        assert_eq!(decompress(Compression::None, b"abc", 3).unwrap(), b"abc");
        assert_eq!(decompress(Compression::None, b"", 0).unwrap(), b"");
        assert_eq!(
            decompress(Compression::None, b"abc", 2),
            Err(WireError::DecompressedTooLarge {
                codec: Compression::None,
                limit: 2
            })
        );
        assert_eq!(compress(Compression::None, b"abc").unwrap(), b"abc");
    }

    #[test]
    fn empty_input_is_a_codec_error() {
        for codec in COMPRESSED {
            assert!(is_codec_error(&decompress(codec, b"", 100)), "{codec}");
        }
    }

    #[test]
    fn exceeding_the_limit_by_one_byte_is_refused() {
        let data = sample(100_000);
        for codec in Compression::ALL {
            let compressed = compress(codec, &data).unwrap();
            assert_eq!(
                decompress(codec, &compressed, data.len() - 1),
                Err(WireError::DecompressedTooLarge {
                    codec,
                    limit: data.len() - 1
                }),
                "{codec}"
            );
            assert_eq!(
                decompress(codec, &compressed, 0).unwrap_err(),
                too_large(codec, 0)
            );
        }
    }

    #[test]
    fn truncated_input_is_a_codec_error() {
        let data = sample(3000);
        for codec in COMPRESSED {
            let compressed = compress(codec, &data).unwrap();
            for cut in 0..compressed.len() {
                let result = decompress(codec, &compressed[..cut], usize::MAX);
                if codec == Compression::Snappy && cut == 16 {
                    // A xerial header alone is a valid (empty) stream: xerial
                    // has no end marker, so a cut between chunks is undetectable.
                    assert_eq!(result.unwrap(), b"");
                } else {
                    assert!(is_codec_error(&result), "{codec} cut at {cut}: {result:?}");
                }
            }
        }
    }

    #[test]
    fn reserve_capped_never_exceeds_the_cap() {
        let mut v = Vec::new();
        reserve_capped(&mut v, 10, 100);
        assert!(v.capacity() >= 10 && v.capacity() <= 100);
        v.resize(v.capacity(), 0);
        reserve_capped(&mut v, 101, 100);
        assert!(v.capacity() >= 101);
        let mut w = vec![0u8; 60];
        reserve_capped(&mut w, 61, 100);
        assert_eq!(w.capacity(), 100);
    }

    fn compressible() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            // Random bytes: incompressible, stored blocks.
            proptest::collection::vec(any::<u8>(), 0..140_000),
            // Few distinct bytes: long matches.
            proptest::collection::vec(0u8..4, 0..140_000),
            (0usize..140_000).prop_map(sample),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn round_trip(data in compressible()) {
            for codec in Compression::ALL {
                let compressed = compress(codec, &data).unwrap();
                let out = decompress(codec, &compressed, data.len()).unwrap();
                prop_assert!(out == data, "{} round trip of {} bytes", codec, data.len());
            }
            let raw = compress_snappy_raw(&data).unwrap();
            prop_assert!(decompress(Compression::Snappy, &raw, data.len()).unwrap() == data);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..2000)) {
            for codec in Compression::ALL {
                let _ = decompress(codec, &input, 1 << 20);
            }
        }

        #[test]
        fn corrupted_streams_never_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            len in 0usize..5000,
        ) {
            let data = sample(len);
            for codec in COMPRESSED {
                let mut compressed = compress(codec, &data).unwrap();
                for (at, value) in &flips {
                    let i = at.index(compressed.len());
                    compressed[i] = *value;
                }
                match decompress(codec, &compressed, 1 << 20) {
                    Ok(_) | Err(WireError::Codec { .. } | WireError::DecompressedTooLarge { .. }) => {}
                    Err(other) => prop_assert!(false, "unexpected error {other:?}"),
                }
            }
        }
    }
}
