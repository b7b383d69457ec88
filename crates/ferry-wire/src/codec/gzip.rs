//! gzip (codec 1): RFC 1952 streams, as `java.util.zip.GZIPOutputStream`
//! writes them.

use std::io::Write;

use flate2::Compression as Level;
use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::{Compression, codec_error, read_bounded};
use crate::Result;

const CODEC: Compression = Compression::Gzip;

pub(super) fn compress(input: &[u8]) -> Result<Vec<u8>> {
    // Java writes a single member at zlib's default level; so do we.
    let mut encoder = GzEncoder::new(Vec::with_capacity(input.len() / 2 + 64), Level::default());
    encoder
        .write_all(input)
        .map_err(|e| codec_error(CODEC, e))?;
    encoder.finish().map_err(|e| codec_error(CODEC, e))
}

pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    // Java's GZIPInputStream reads concatenated members, so a payload may hold
    // several; the single-member decoder would silently stop after the first.
    let decoder = MultiGzDecoder::new(input);
    read_bounded(CODEC, decoder, limit, input.len().saturating_mul(4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tests::{assert_bomb, is_codec_error, sample};

    #[test]
    fn writes_an_rfc1952_member() {
        let out = compress(b"hello").unwrap();
        // ID1 ID2 CM=deflate
        assert_eq!(&out[..3], &[0x1f, 0x8b, 0x08]);
        // Trailer: CRC-32 then ISIZE, little-endian.
        let n = out.len();
        assert_eq!(&out[n - 8..n - 4], &crc32fast::hash(b"hello").to_le_bytes());
        assert_eq!(&out[n - 4..], &5u32.to_le_bytes());
    }

    #[test]
    fn reads_concatenated_members() {
        let mut payload = compress(b"first ").unwrap();
        payload.extend_from_slice(&compress(b"").unwrap());
        payload.extend_from_slice(&compress(&sample(50_000)).unwrap());
        let mut expected = b"first ".to_vec();
        expected.extend_from_slice(&sample(50_000));
        assert_eq!(decompress(&payload, expected.len()).unwrap(), expected);
    }

    #[test]
    fn rejects_trailing_garbage_and_bad_crc() {
        let mut payload = compress(b"hello").unwrap();
        payload.push(0);
        assert!(is_codec_error(&decompress(&payload, 100)));

        let mut payload = compress(b"hello").unwrap();
        let crc_at = payload.len() - 8;
        payload[crc_at] ^= 1;
        assert!(is_codec_error(&decompress(&payload, 100)));
    }

    #[test]
    fn bomb_of_many_members_is_bounded() {
        // 64 members of 1 MiB of zeros: 64 MiB out of ~64 KiB in, built cheaply.
        let member = compress(&vec![0; 1 << 20]).unwrap();
        let payload = member.repeat(64);
        assert_bomb(Compression::Gzip, &payload, 64 << 20);
    }

    #[test]
    fn bomb_in_one_member_is_bounded() {
        let payload = compress(&vec![0; 4 << 20]).unwrap();
        assert_bomb(Compression::Gzip, &payload, 4 << 20);
    }
}
