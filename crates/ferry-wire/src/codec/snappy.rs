//! snappy (codec 2), in the two shapes Kafka clients write:
//!
//! - xerial framing, written by the Java client (snappy-java's
//!   `SnappyOutputStream`): a 16-byte header, then `[i32 BE length][raw block]`
//!   chunks of at most 32 KiB of input each;
//! - one unframed raw block, written by librdkafka and most non-Java clients.
//!
//! Java and librdkafka read both, telling them apart by the xerial magic, so we
//! do the same. Note that Google's official snappy *framing* format (what
//! `snap::read`/`snap::write` implement) is neither, and Kafka clients reject it.

use snap::raw::{Decoder, Encoder, decompress_len, max_compress_len};

use super::{Compression, codec_error, reserve_capped, too_large};
use crate::Result;

const CODEC: Compression = Compression::Snappy;

/// First 8 bytes of a xerial stream. A raw block cannot start with them: the
/// length varint would be followed by a copy with nothing yet to copy from.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, then i32 BE version and i32 BE minimum compatible version.
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_VERSION: i32 = 1;
const XERIAL_MIN_COMPATIBLE: i32 = 1;
/// snappy-java's default block size, which the Java producer uses.
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;

/// Raw snappy never expands one input byte into more than this many output
/// bytes: the densest element, a 3-byte copy, emits at most 64 bytes. A block
/// announcing more than this times its length is lying about its size.
const MAX_EXPANSION: usize = 22;

pub(super) fn compress_raw(input: &[u8]) -> Result<Vec<u8>> {
    Encoder::new()
        .compress_vec(input)
        .map_err(|e| codec_error(CODEC, e))
}

pub(super) fn compress_xerial(input: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = Encoder::new();
    let chunks = input.len().div_ceil(XERIAL_BLOCK_SIZE);
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + chunks * 4 + input.len() / 2);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_MIN_COMPATIBLE.to_be_bytes());
    // Empty input leaves just the header, as snappy-java does.
    let mut block = vec![0; max_compress_len(XERIAL_BLOCK_SIZE)];
    for chunk in input.chunks(XERIAL_BLOCK_SIZE) {
        let n = encoder
            .compress(chunk, &mut block)
            .map_err(|e| codec_error(CODEC, e))?;
        let len = i32::try_from(n).map_err(|_| codec_error(CODEC, "chunk too large"))?;
        let compressed = block
            .get(..n)
            .ok_or_else(|| codec_error(CODEC, "encoder overran its buffer"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(compressed);
    }
    Ok(out)
}

pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if input.starts_with(&XERIAL_MAGIC) {
        decompress_xerial(input, &mut out, limit)?;
    } else {
        decompress_block(input, &mut out, limit)?;
    }
    Ok(out)
}

fn decompress_xerial(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<()> {
    let mut rest = input;
    while !rest.is_empty() {
        if rest.starts_with(&XERIAL_MAGIC) {
            // snappy-java also reads concatenated streams, headers included. The
            // version fields are not checked, as librdkafka does not check them.
            // A chunk length cannot be mistaken for the magic: it would be negative.
            rest = rest
                .get(XERIAL_HEADER_LEN..)
                .ok_or_else(|| codec_error(CODEC, "truncated xerial header"))?;
            continue;
        }
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| codec_error(CODEC, "truncated xerial chunk length"))?;
        let len = i32::from_be_bytes(*len);
        let len = usize::try_from(len)
            .map_err(|_| codec_error(CODEC, format!("negative xerial chunk length {len}")))?;
        let (block, tail) = tail.split_at_checked(len).ok_or_else(|| {
            codec_error(
                CODEC,
                format!(
                    "xerial chunk of {len} bytes, only {} bytes present",
                    tail.len()
                ),
            )
        })?;
        // No writer emits an empty chunk, but it stands for no output, not an error.
        if !block.is_empty() {
            decompress_block(block, out, limit)?;
        }
        rest = tail;
    }
    Ok(())
}

/// Appends one raw block's output to `out`, which never grows past `limit`.
fn decompress_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<()> {
    // The announced length is only used once it is known to fit both the limit
    // and what the block's bytes could possibly encode; the decoder then checks
    // that the block really produces exactly that many bytes.
    let len = decompress_len(block).map_err(|e| codec_error(CODEC, e))?;
    let start = out.len();
    if len > limit.saturating_sub(start) {
        return Err(too_large(CODEC, limit));
    }
    let possible = block.len().saturating_mul(MAX_EXPANSION);
    if len > possible {
        return Err(codec_error(
            CODEC,
            format!(
                "block of {} bytes announces {len} bytes of output, more than it can encode",
                block.len()
            ),
        ));
    }
    let end = start.saturating_add(len);
    reserve_capped(out, end, limit);
    out.resize(end, 0);
    let dst = out
        .get_mut(start..)
        .ok_or_else(|| codec_error(CODEC, "internal buffer accounting error"))?;
    let written = Decoder::new()
        .decompress(block, dst)
        .map_err(|e| codec_error(CODEC, e))?;
    out.truncate(start.saturating_add(written));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireError;
    use crate::codec::tests::{assert_bomb, is_codec_error, sample};

    const HEADER: [u8; 16] = [
        0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
    ];

    fn chunk(raw: &[u8]) -> Vec<u8> {
        let mut out = i32::try_from(raw.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(raw);
        out
    }

    #[test]
    fn xerial_header_is_what_snappy_java_writes() {
        assert_eq!(compress_xerial(b"").unwrap(), HEADER);
        assert_eq!(&compress_xerial(b"x").unwrap()[..16], &HEADER);
    }

    #[test]
    fn xerial_chunks_hold_at_most_32_kib() {
        let data = sample(100_000);
        let stream = compress_xerial(&data).unwrap();
        let mut rest = &stream[16..];
        let mut sizes = Vec::new();
        while !rest.is_empty() {
            let len = usize::try_from(i32::from_be_bytes(rest[..4].try_into().unwrap())).unwrap();
            sizes.push(decompress_len(&rest[4..4 + len]).unwrap());
            rest = &rest[4 + len..];
        }
        assert_eq!(sizes, [32768, 32768, 32768, 100_000 - 3 * 32768]);
    }

    #[test]
    fn reads_hand_built_multi_chunk_xerial() {
        let parts = [sample(10), sample(40_000), b"tail".to_vec()];
        let mut stream = HEADER.to_vec();
        for part in &parts {
            stream.extend_from_slice(&chunk(&compress_raw(part).unwrap()));
        }
        // Zero-length chunks carry nothing.
        stream.extend_from_slice(&chunk(b""));
        // Concatenated streams repeat the header; snappy-java reads them.
        stream.extend_from_slice(&HEADER);
        stream.extend_from_slice(&chunk(&compress_raw(b"!").unwrap()));
        let mut expected = parts.concat();
        expected.push(b'!');
        assert_eq!(decompress(&stream, expected.len()).unwrap(), expected);
    }

    #[test]
    fn reads_raw_snappy() {
        let data = sample(70_000);
        let raw = compress_raw(&data).unwrap();
        assert!(!raw.starts_with(&XERIAL_MAGIC));
        assert_eq!(decompress(&raw, data.len()).unwrap(), data);
        assert_eq!(decompress(&[0], 0).unwrap(), b"");
    }

    #[test]
    fn rejects_bad_xerial_chunk_lengths() {
        let mut negative = HEADER.to_vec();
        negative.extend_from_slice(&(-1i32).to_be_bytes());
        negative.push(0);
        assert!(is_codec_error(&decompress(&negative, 100)));

        let mut long = HEADER.to_vec();
        long.extend_from_slice(&chunk(&compress_raw(b"hello").unwrap()));
        long.pop();
        assert!(is_codec_error(&decompress(&long, 100)));

        assert!(is_codec_error(&decompress(&HEADER[..12], 100)));
    }

    #[test]
    fn forged_raw_length_allocates_nothing() {
        // Announces 2^32 - 1 bytes in a 6-byte block: refused by the limit, or
        // as impossible for its size when the limit would allow it.
        let forged = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert_eq!(
            decompress(&forged, 1 << 20),
            Err(WireError::DecompressedTooLarge {
                codec: CODEC,
                limit: 1 << 20
            })
        );
        assert!(is_codec_error(&decompress(&forged, usize::MAX)));
        // Announced length that the block does not actually produce.
        let mut short = compress_raw(b"hello world").unwrap();
        short[0] += 1;
        assert!(is_codec_error(&decompress(&short, 100)));
    }

    /// Raw snappy for `64 * (copies + 1)` zero bytes: a 64-byte literal, then
    /// 3-byte copies of 64 bytes, the densest encoding there is.
    fn dense_raw_zeros(copies: usize) -> Vec<u8> {
        let total = 64 * (copies + 1);
        let mut out = Vec::with_capacity(3 * copies + 80);
        let mut n = total;
        while n >= 0x80 {
            out.push(u8::try_from(n & 0x7f).unwrap() | 0x80);
            n >>= 7;
        }
        out.push(u8::try_from(n).unwrap());
        out.extend_from_slice(&[60 << 2, 63]); // literal of 63 + 1 bytes
        out.extend_from_slice(&[0; 64]);
        for _ in 0..copies {
            out.extend_from_slice(&[(63 << 2) | 0b10, 64, 0]); // copy 64 bytes from 64 back
        }
        out
    }

    #[test]
    fn densest_raw_stream_is_not_mistaken_for_a_forgery() {
        let dense = dense_raw_zeros(10_000);
        let out = decompress(&dense, usize::MAX).unwrap();
        assert_eq!(out.len(), 64 * 10_001);
    }

    #[test]
    fn raw_bomb_is_bounded() {
        assert_bomb(CODEC, &dense_raw_zeros((1 << 20) - 1), 64 << 20);
    }

    #[test]
    fn xerial_bomb_is_bounded() {
        // 2048 chunks of 32 KiB of zeros: 64 MiB, built from one compressed chunk.
        let one = chunk(&compress_raw(&[0; XERIAL_BLOCK_SIZE]).unwrap());
        let mut stream = HEADER.to_vec();
        stream.extend_from_slice(&one.repeat(2048));
        assert_bomb(CODEC, &stream, 64 << 20);
    }
}
