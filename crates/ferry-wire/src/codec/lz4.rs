//! lz4 (codec 3): the standard LZ4 frame format, as the Java client's
//! `Lz4BlockOutputStream` writes it.
//!
//! Encoding goes through `lz4_flex::frame`. Decoding walks the frames here and
//! only hands single blocks to `lz4_flex::block`, because `lz4_flex`'s frame
//! reader treats a stream cut at a block boundary as a clean end (a truncated
//! payload would decode "successfully"), and reserves buffers sized by the
//! frame's announced block size rather than by the caller's limit.

use std::io::Write;

use lz4_flex::block::{DecompressError, decompress_into, decompress_into_with_dict};
use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};

use super::{Compression, codec_error, reserve_capped, too_large};
use crate::{Result, WireError};

const CODEC: Compression = Compression::Lz4;

const FRAME_MAGIC: u32 = 0x184D_2204;
/// Skippable frames (magic 0x184D2A50..=0x184D2A5F) carry data a reader skips.
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
/// The pre-frame "legacy" format; no Kafka client writes it and Java rejects it.
const LEGACY_MAGIC: u32 = 0x184C_2102;

const FLG_VERSION_MASK: u8 = 0b1100_0000;
const FLG_VERSION_01: u8 = 0b0100_0000;
const FLG_INDEPENDENT_BLOCKS: u8 = 0b0010_0000;
const FLG_BLOCK_CHECKSUM: u8 = 0b0001_0000;
const FLG_CONTENT_SIZE: u8 = 0b0000_1000;
const FLG_CONTENT_CHECKSUM: u8 = 0b0000_0100;
const FLG_RESERVED: u8 = 0b0000_0010;
const FLG_DICTIONARY_ID: u8 = 0b0000_0001;
const BD_RESERVED: u8 = 0b1000_1111;

/// High bit of a block's size word: the block is stored uncompressed.
const BLOCK_UNCOMPRESSED: u32 = 0x8000_0000;
/// How far back a linked block may copy from earlier output.
const WINDOW_SIZE: usize = 64 * 1024;

pub(super) fn compress(input: &[u8]) -> Result<Vec<u8>> {
    // What Java writes: independent blocks (Java's reader refuses linked ones)
    // of 64 KiB (a reader buffers one whole block, and lz4_flex's 8 MiB size is
    // not in the spec), no checksums, no content size.
    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent);
    let out = Vec::with_capacity(input.len() / 2 + 64);
    let mut encoder = FrameEncoder::with_frame_info(info, out);
    encoder
        .write_all(input)
        .map_err(|e| codec_error(CODEC, e))?;
    encoder.finish().map_err(|e| codec_error(CODEC, e))
}

pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut src = Input(input);
    let mut out = Vec::new();
    // liblz4 and lz4_flex read concatenated frames, so we do too.
    while !src.0.is_empty() {
        let magic = src.u32_le("frame magic")?;
        if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
            let len = src.u32_le("skippable frame size")?;
            let len = usize::try_from(len)
                .map_err(|_| codec_error(CODEC, "skippable frame too large"))?;
            src.take(len, "skippable frame")?;
            continue;
        }
        match magic {
            FRAME_MAGIC => decode_frame(&mut src, &mut out, limit)?,
            LEGACY_MAGIC => {
                return Err(codec_error(CODEC, "legacy lz4 format is not used by Kafka"));
            }
            other => return Err(codec_error(CODEC, format!("bad frame magic {other:#010x}"))),
        }
    }
    Ok(out)
}

/// Decodes one frame (after its magic), appending to `out`, which never grows
/// past `limit` bytes.
fn decode_frame(src: &mut Input<'_>, out: &mut Vec<u8>, limit: usize) -> Result<()> {
    let descriptor_start = src.0;
    let flg = src.u8("frame descriptor")?;
    let bd = src.u8("frame descriptor")?;
    if flg & FLG_VERSION_MASK != FLG_VERSION_01 {
        return Err(codec_error(
            CODEC,
            format!("unsupported frame version in FLG {flg:#04x}"),
        ));
    }
    if flg & FLG_RESERVED != 0 || bd & BD_RESERVED != 0 {
        return Err(codec_error(CODEC, "reserved frame descriptor bits are set"));
    }
    if flg & FLG_DICTIONARY_ID != 0 {
        // Java rejects these too (the bit is "reserved" there).
        return Err(codec_error(
            CODEC,
            "frames using a dictionary are not supported",
        ));
    }
    let block_max: usize = match (bd >> 4) & 0x07 {
        4 => 64 * 1024,
        5 => 256 * 1024,
        6 => 1024 * 1024,
        7 => 4 * 1024 * 1024,
        other => return Err(codec_error(CODEC, format!("invalid block size id {other}"))),
    };
    let content_size = if flg & FLG_CONTENT_SIZE != 0 {
        Some(src.u64_le("frame content size")?)
    } else {
        None
    };
    let descriptor_len = descriptor_start.len() - src.0.len();
    let descriptor = descriptor_start.get(..descriptor_len).unwrap_or_default();
    let stored_hc = src.u8("frame header checksum")?;
    check_header_checksum(descriptor, stored_hc)?;

    let frame_start = out.len();
    if let Some(size) = content_size {
        // The announced size only ever serves to refuse early; it is checked below.
        let room = u64::try_from(limit.saturating_sub(frame_start)).unwrap_or(u64::MAX);
        if size > room {
            return Err(too_large(CODEC, limit));
        }
    }

    loop {
        let word = src.u32_le("block size")?;
        if word == 0 {
            break; // end mark
        }
        let size = usize::try_from(word & !BLOCK_UNCOMPRESSED)
            .map_err(|_| codec_error(CODEC, "block too large"))?;
        if size > block_max {
            return Err(codec_error(
                CODEC,
                format!("block of {size} bytes in a frame of {block_max}-byte blocks"),
            ));
        }
        let data = src.take(size, "block")?;
        if flg & FLG_BLOCK_CHECKSUM != 0 {
            let stored = src.u32_le("block checksum")?;
            if xxh32(data) != stored {
                return Err(codec_error(CODEC, "block checksum mismatch"));
            }
        }
        let start = out.len();
        let room = limit.saturating_sub(start);
        if word & BLOCK_UNCOMPRESSED != 0 {
            if size > room {
                return Err(too_large(CODEC, limit));
            }
            reserve_capped(out, start + size, limit);
            out.extend_from_slice(data);
            continue;
        }
        // A block's output size is only known once decoded, so decode into
        // whatever room is left, up to the frame's block size.
        let room = room.min(block_max);
        reserve_capped(out, start + room, limit);
        out.resize(start + room, 0);
        let (before, dst) = out.split_at_mut(start);
        let decoded = if flg & FLG_INDEPENDENT_BLOCKS != 0 {
            decompress_into(data, dst)
        } else {
            // Linked blocks (liblz4's default, though Java refuses them) may copy
            // from this frame's previous 64 KiB of output.
            let dict_start = frame_start.max(start.saturating_sub(WINDOW_SIZE));
            let dict = before.get(dict_start..).unwrap_or_default();
            decompress_into_with_dict(data, dst, dict)
        };
        match decoded {
            Ok(n) => out.truncate(start + n),
            // Out of room only because of the limit: the output is too large.
            Err(DecompressError::OutputTooSmall { .. }) if room < block_max => {
                return Err(too_large(CODEC, limit));
            }
            Err(e) => return Err(codec_error(CODEC, e)),
        }
    }

    let produced = out.get(frame_start..).unwrap_or_default();
    if flg & FLG_CONTENT_CHECKSUM != 0 {
        let stored = src.u32_le("content checksum")?;
        if xxh32(produced) != stored {
            return Err(codec_error(CODEC, "content checksum mismatch"));
        }
    }
    if let Some(size) = content_size {
        if u64::try_from(produced.len()).ok() != Some(size) {
            return Err(codec_error(
                CODEC,
                format!("frame announced {size} bytes but held {}", produced.len()),
            ));
        }
    }
    Ok(())
}

/// Checks the frame descriptor's checksum byte: the second byte of the xxh32 of
/// the descriptor (FLG up to, not including, the checksum byte).
fn check_header_checksum(descriptor: &[u8], stored: u8) -> Result<()> {
    if header_checksum(descriptor) == stored {
        return Ok(());
    }
    // Kafka before 0.10 also hashed the magic number (KAFKA-3160), and Java
    // still writes that for magic v0 message sets, whose reader then ignores the
    // byte. Accept it as well; the batch CRC guards the payload anyway.
    let mut with_magic = Vec::with_capacity(4 + descriptor.len());
    with_magic.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    with_magic.extend_from_slice(descriptor);
    if header_checksum(&with_magic) == stored {
        return Ok(());
    }
    Err(codec_error(CODEC, "frame header checksum mismatch"))
}

fn header_checksum(descriptor: &[u8]) -> u8 {
    // (xxh32 >> 8) & 0xff
    xxh32(descriptor).to_le_bytes()[1]
}

/// Unread input, with reads that fail instead of panicking when bytes run out.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n).ok_or_else(|| truncated(what))?;
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let (head, tail) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| truncated(what))?;
        self.0 = tail;
        Ok(*head)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        self.array::<1>(what).map(|[b]| b)
    }

    fn u32_le(&mut self, what: &str) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64_le(&mut self, what: &str) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }
}

fn truncated(what: &str) -> WireError {
    codec_error(CODEC, format!("truncated frame: {what} missing"))
}

const PRIME1: u32 = 0x9E37_79B1;
const PRIME2: u32 = 0x85EB_CA77;
const PRIME3: u32 = 0xC2B2_AE3D;
const PRIME4: u32 = 0x27D4_EB2F;
const PRIME5: u32 = 0x1656_67B1;

/// XXH32 with seed 0, the checksum of the LZ4 frame format (written from the
/// xxHash specification; lz4_flex does not export its hasher).
fn xxh32(data: &[u8]) -> u32 {
    let mut stripes = data.chunks_exact(16);
    let mut acc = if data.len() >= 16 {
        let mut lanes = [
            PRIME1.wrapping_add(PRIME2),
            PRIME2,
            0,
            0u32.wrapping_sub(PRIME1),
        ];
        for stripe in &mut stripes {
            for (lane, word) in lanes.iter_mut().zip(stripe.chunks_exact(4)) {
                *lane = lane
                    .wrapping_add(le_u32(word).wrapping_mul(PRIME2))
                    .rotate_left(13)
                    .wrapping_mul(PRIME1);
            }
        }
        let [a, b, c, d] = lanes;
        a.rotate_left(1)
            .wrapping_add(b.rotate_left(7))
            .wrapping_add(c.rotate_left(12))
            .wrapping_add(d.rotate_left(18))
    } else {
        PRIME5
    };
    // The spec adds the length modulo 2^32.
    acc = acc.wrapping_add(u32::try_from(data.len() & 0xFFFF_FFFF).unwrap_or(0));
    let mut words = stripes.remainder().chunks_exact(4);
    for word in &mut words {
        acc = acc
            .wrapping_add(le_u32(word).wrapping_mul(PRIME3))
            .rotate_left(17)
            .wrapping_mul(PRIME4);
    }
    for &byte in words.remainder() {
        acc = acc
            .wrapping_add(u32::from(byte).wrapping_mul(PRIME5))
            .rotate_left(11)
            .wrapping_mul(PRIME1);
    }
    acc ^= acc >> 15;
    acc = acc.wrapping_mul(PRIME2);
    acc ^= acc >> 13;
    acc = acc.wrapping_mul(PRIME3);
    acc ^ (acc >> 16)
}

fn le_u32(word: &[u8]) -> u32 {
    word.try_into().map_or(0, u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use lz4_flex::frame::FrameDecoder;

    use super::*;
    use crate::codec::tests::{assert_bomb, is_codec_error, sample};

    fn encode_with(info: FrameInfo, data: &[u8]) -> Vec<u8> {
        let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn xxh32_matches_reference_values() {
        assert_eq!(xxh32(b""), 0x02CC_5D05);
        assert_eq!(xxh32(b"a"), 0x550D_7456);
        assert_eq!(xxh32(b"abc"), 0x32D1_53FF);
        assert_eq!(
            xxh32(b"Nobody inspects the spammish repetition"),
            0xE229_3B2F
        );
    }

    #[test]
    fn frame_header_is_what_java_expects() {
        // Empty input: header, then the end mark.
        assert_eq!(
            compress(b"").unwrap(),
            [0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, 0x82, 0, 0, 0, 0]
        );
        let frame = compress(&sample(200_000)).unwrap();
        assert_eq!(&frame[..4], &[0x04, 0x22, 0x4D, 0x18]);
        let (flg, bd, hc) = (frame[4], frame[5], frame[6]);
        assert_eq!(flg & FLG_VERSION_MASK, FLG_VERSION_01);
        assert_ne!(
            flg & FLG_INDEPENDENT_BLOCKS,
            0,
            "Java refuses linked blocks"
        );
        // Java's defaults: no checksums, no content size, no dictionary.
        assert_eq!(flg & 0b0001_1111, 0);
        assert_eq!(bd, 0x40, "64 KiB blocks");
        assert_eq!(hc, xxh32(&[flg, bd]).to_le_bytes()[1]);
        assert_eq!(hc, 0x82);
    }

    #[test]
    fn reads_every_block_size_and_checksum_option() {
        let data = sample(300_000);
        for size in [
            BlockSize::Max64KB,
            BlockSize::Max256KB,
            BlockSize::Max1MB,
            BlockSize::Max4MB,
        ] {
            for checksums in [false, true] {
                for content_size in [None, Some(300_000)] {
                    let info = FrameInfo::new()
                        .block_size(size)
                        .block_checksums(checksums)
                        .content_checksum(checksums)
                        .content_size(content_size);
                    let frame = encode_with(info, &data);
                    assert_eq!(decompress(&frame, data.len()).unwrap(), data, "{size:?}");
                }
            }
        }
    }

    #[test]
    fn reads_linked_blocks() {
        // Repetitive data whose matches cross 64 KiB block boundaries.
        let data = sample(1000).repeat(300);
        let info = FrameInfo::new()
            .block_size(BlockSize::Max64KB)
            .block_mode(BlockMode::Linked)
            .content_checksum(true);
        let frame = encode_with(info, &data);
        assert_eq!(frame[4] & FLG_INDEPENDENT_BLOCKS, 0);
        assert_eq!(decompress(&frame, data.len()).unwrap(), data);
    }

    #[test]
    fn agrees_with_lz4_flex_frame_decoder() {
        let data = sample(150_000);
        let ours = compress(&data).unwrap();
        let mut theirs = Vec::new();
        FrameDecoder::new(&ours[..])
            .read_to_end(&mut theirs)
            .unwrap();
        assert_eq!(theirs, data);
    }

    #[test]
    fn reads_concatenated_and_skippable_frames() {
        let mut payload = compress(b"one ").unwrap();
        payload.extend_from_slice(&0x184D_2A53u32.to_le_bytes());
        payload.extend_from_slice(&3u32.to_le_bytes());
        payload.extend_from_slice(b"xyz");
        payload.extend_from_slice(&compress(b"two").unwrap());
        assert_eq!(decompress(&payload, 7).unwrap(), b"one two");
    }

    #[test]
    fn accepts_the_pre_0_10_header_checksum() {
        let mut frame = compress(b"legacy").unwrap();
        frame[6] = xxh32(&[0x04, 0x22, 0x4D, 0x18, frame[4], frame[5]]).to_le_bytes()[1];
        assert_ne!(frame[6], 0x82);
        assert_eq!(decompress(&frame, 6).unwrap(), b"legacy");
    }

    #[test]
    fn rejects_malformed_frames() {
        let good = compress(b"hello hello hello").unwrap();
        let with = |at: usize, value: u8| {
            let mut frame = good.clone();
            frame[at] = value;
            decompress(&frame, 100)
        };
        assert!(is_codec_error(&with(6, 0x83)), "header checksum");
        assert!(is_codec_error(&with(0, 0x05)), "magic");
        assert!(is_codec_error(&with(4, 0xA0)), "version 10");
        // Flags that change the header length get a fixed-up checksum so that
        // only the flag itself is wrong.
        let flagged = |flg: u8, bd: u8| {
            let mut frame = vec![0x04, 0x22, 0x4D, 0x18, flg, bd];
            if flg & FLG_DICTIONARY_ID != 0 {
                frame.extend_from_slice(&[1, 0, 0, 0]);
            }
            frame.push(xxh32(&frame[4..]).to_le_bytes()[1]);
            frame.extend_from_slice(&[0, 0, 0, 0]);
            decompress(&frame, 100)
        };
        assert_eq!(flagged(0x60, 0x40).unwrap(), b"");
        assert!(is_codec_error(&flagged(0x61, 0x40)), "dictionary id");
        assert!(is_codec_error(&flagged(0x62, 0x40)), "reserved FLG bit");
        assert!(is_codec_error(&flagged(0x60, 0x41)), "reserved BD bit");
        assert!(is_codec_error(&flagged(0x60, 0x30)), "block size id 3");
        assert!(is_codec_error(&flagged(0x60, 0x00)), "block size id 0");
        // The legacy lz4 format.
        assert!(is_codec_error(&decompress(
            &[0x02, 0x21, 0x4C, 0x18, 1, 0, 0, 0, 0],
            100
        )));
    }

    #[test]
    fn rejects_oversized_blocks_and_bad_checksums() {
        // A stored block one byte larger than the frame's 64 KiB block size.
        let mut frame = vec![0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, 0x82];
        frame.extend_from_slice(&(BLOCK_UNCOMPRESSED | (64 * 1024 + 1)).to_le_bytes());
        frame.extend_from_slice(&vec![7; 64 * 1024 + 1]);
        frame.extend_from_slice(&[0, 0, 0, 0]);
        assert!(is_codec_error(&decompress(&frame, usize::MAX)));

        let info = FrameInfo::new()
            .block_checksums(true)
            .content_checksum(true);
        let data = sample(1000);
        let good = encode_with(info, &data);
        let n = good.len();
        let mut bad_content = good.clone();
        bad_content[n - 1] ^= 1;
        assert!(is_codec_error(&decompress(&bad_content, usize::MAX)));
        let mut bad_block = good.clone();
        bad_block[n - 5 - 1] ^= 1; // last byte of the block checksum
        assert!(is_codec_error(&decompress(&bad_block, usize::MAX)));
    }

    /// A frame announcing `size` bytes and holding `data` as one stored block
    /// (built by hand: lz4_flex refuses to write a wrong size).
    fn frame_with_content_size(size: u64, data: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x04, 0x22, 0x4D, 0x18, 0x68, 0x40];
        frame.extend_from_slice(&size.to_le_bytes());
        frame.push(xxh32(&frame[4..]).to_le_bytes()[1]);
        let len = u32::try_from(data.len()).unwrap();
        frame.extend_from_slice(&(BLOCK_UNCOMPRESSED | len).to_le_bytes());
        frame.extend_from_slice(data);
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame
    }

    #[test]
    fn content_size_is_checked() {
        assert_eq!(
            decompress(&frame_with_content_size(4, b"four"), 4).unwrap(),
            b"four"
        );
        assert!(is_codec_error(&decompress(
            &frame_with_content_size(5, b"four"),
            100
        )));
        assert!(is_codec_error(&decompress(
            &frame_with_content_size(3, b"four"),
            100
        )));
        // An announced size over the limit is refused before decoding.
        assert_eq!(
            decompress(&frame_with_content_size(1 << 40, b"four"), 1 << 20),
            Err(too_large(CODEC, 1 << 20))
        );
    }

    #[test]
    fn bomb_is_bounded() {
        // One 64 KiB block of zeros, repeated 1024 times: 64 MiB in one frame.
        let one = compress(&[0; 64 * 1024]).unwrap();
        let block = &one[7..one.len() - 4];
        let mut frame = one[..7].to_vec();
        frame.extend_from_slice(&block.repeat(1024));
        frame.extend_from_slice(&[0, 0, 0, 0]);
        assert_bomb(CODEC, &frame, 64 << 20);
    }
}
