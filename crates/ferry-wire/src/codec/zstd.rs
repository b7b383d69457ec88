//! zstd (codec 4): standard zstd frames, as zstd-jni's `ZstdOutputStream`
//! writes them for the Java client.

use super::{Compression, codec_error, read_bounded, too_large};
use crate::Result;

const CODEC: Compression = Compression::Zstd;

/// The Java producer's default level.
const LEVEL: i32 = 3;

/// Largest window a frame may ask for: 2^27 (128 MiB), the default cap of
/// libzstd and zstd-jni; only `--long`/ultra settings go beyond it. The decoder
/// allocates the window a frame announces, so this is what bounds a hostile
/// frame's memory before it has produced anything.
const WINDOW_LOG_MAX: u32 = 27;

pub(super) fn compress(input: &[u8]) -> Result<Vec<u8>> {
    // One-shot compression records the content size in the frame header and
    // sizes the window to the input; level 3 never uses more than 2^21 anyway.
    ::zstd::bulk::compress(input, LEVEL).map_err(|e| codec_error(CODEC, e))
}

pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    // A first frame that announces more than the limit is refused before any
    // decoding. The announced size is not used otherwise (and zstd checks it).
    if let Ok(Some(size)) = ::zstd::zstd_safe::get_frame_content_size(input) {
        if size > u64::try_from(limit).unwrap_or(u64::MAX) {
            return Err(too_large(CODEC, limit));
        }
    }
    // The streaming decoder reads every concatenated frame (and skips
    // skippable ones), and fails on a frame cut short.
    let mut decoder =
        ::zstd::stream::read::Decoder::with_buffer(input).map_err(|e| codec_error(CODEC, e))?;
    decoder
        .window_log_max(WINDOW_LOG_MAX)
        .map_err(|e| codec_error(CODEC, e))?;
    read_bounded(CODEC, decoder, limit, input.len().saturating_mul(4))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::codec::tests::{assert_bomb, is_codec_error, sample};

    /// A frame with no content size and the given window log, holding one raw
    /// block of "A": the smallest frame that makes a decoder size its window.
    fn frame_with_window_log(log: u8) -> Vec<u8> {
        let exponent = log - 10;
        vec![
            0x28,
            0xB5,
            0x2F,
            0xFD,
            0x00,          // no content size, not single-segment, no checksum
            exponent << 3, // window descriptor, mantissa 0
            0x09,
            0x00,
            0x00, // last block, raw, 1 byte
            b'A',
        ]
    }

    fn streamed(data: &[u8]) -> Vec<u8> {
        // Like zstd-jni's output stream: the frame header has no content size.
        let mut encoder = ::zstd::stream::write::Encoder::new(Vec::new(), LEVEL).unwrap();
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn reads_frames_with_and_without_content_size() {
        let data = sample(300_000);
        let with_size = compress(&data).unwrap();
        assert!(matches!(
            ::zstd::zstd_safe::get_frame_content_size(&with_size),
            Ok(Some(300_000))
        ));
        assert_eq!(decompress(&with_size, data.len()).unwrap(), data);

        let without = streamed(&data);
        assert!(matches!(
            ::zstd::zstd_safe::get_frame_content_size(&without),
            Ok(None)
        ));
        assert_eq!(decompress(&without, data.len()).unwrap(), data);
    }

    #[test]
    fn reads_concatenated_and_skippable_frames() {
        let mut payload = compress(b"one ").unwrap();
        payload.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
        payload.extend_from_slice(&2u32.to_le_bytes());
        payload.extend_from_slice(b"??");
        payload.extend_from_slice(&streamed(b"two"));
        assert_eq!(decompress(&payload, 7).unwrap(), b"one two");
    }

    #[test]
    fn windows_above_2_pow_27_are_refused() {
        assert_eq!(decompress(&frame_with_window_log(20), 1).unwrap(), b"A");
        assert_eq!(decompress(&frame_with_window_log(27), 1).unwrap(), b"A");
        assert!(is_codec_error(&decompress(&frame_with_window_log(28), 1)));
    }

    #[test]
    fn rejects_trailing_garbage() {
        let mut payload = compress(b"hello").unwrap();
        payload.extend_from_slice(b"junk");
        assert!(is_codec_error(&decompress(&payload, 100)));
    }

    #[test]
    fn announced_size_over_the_limit_is_refused_early() {
        let payload = compress(&[0; 2 << 20]).unwrap();
        assert_eq!(
            decompress(&payload, 1 << 20),
            Err(too_large(CODEC, 1 << 20))
        );
    }

    #[test]
    fn bomb_is_bounded() {
        // A single streamed frame without content size, so only the output
        // bound stops it.
        let mut encoder = ::zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        let zeros = vec![0; 1 << 20];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        let payload = encoder.finish().unwrap();
        assert_bomb(CODEC, &payload, 64 << 20);
    }
}
