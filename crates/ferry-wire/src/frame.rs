//! Length-prefixed Kafka frames (`i32 size | size bytes`).
//!
//! [`FrameDecoder`] splits complete frames off a growing read buffer. The size
//! prefix is checked against a configurable maximum *before* any buffer is
//! grown for it, and the buffer only grows by what has actually arrived plus a
//! bounded read chunk, so a peer announcing a 2 GiB frame costs nothing.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{Result, WireError};

/// Default maximum frame size: 100 MiB, Kafka's own `socket.request.max.bytes`.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

/// Bytes of the size prefix.
pub const SIZE_PREFIX_LEN: usize = 4;

/// Splits complete frames off a read buffer.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_size: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl FrameDecoder {
    /// A decoder that rejects frames larger than `max_frame_size` bytes (prefix excluded).
    pub fn new(max_frame_size: usize) -> Self {
        Self { max_frame_size }
    }

    /// The configured maximum frame size.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Size of the frame at the front of `buf`, once its prefix has arrived.
    ///
    /// Returns `Ok(None)` while fewer than four bytes are present.
    pub fn peek_size(&self, buf: &[u8]) -> Result<Option<usize>> {
        let Some(prefix) = buf.get(..SIZE_PREFIX_LEN) else {
            return Ok(None);
        };
        let raw = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let size = usize::try_from(raw).map_err(|_| WireError::NegativeFrameSize(raw))?;
        if size > self.max_frame_size {
            return Err(WireError::FrameTooLarge {
                size,
                max: self.max_frame_size,
            });
        }
        Ok(Some(size))
    }

    /// Splits one complete frame (without its size prefix) off the front of `buf`.
    ///
    /// Returns `Ok(None)` if the frame is not complete yet; `buf` is left as is.
    /// The returned [`Bytes`] shares `buf`'s allocation: no payload is copied.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>> {
        let Some(size) = self.peek_size(buf)? else {
            return Ok(None);
        };
        if buf.len() < SIZE_PREFIX_LEN + size {
            return Ok(None);
        }
        buf.advance(SIZE_PREFIX_LEN);
        Ok(Some(buf.split_to(size).freeze()))
    }

    /// How many more bytes to make room for before the next read, bounded by
    /// `read_chunk`: never the full announced size of a frame up front.
    pub fn reserve_hint(&self, buf: &[u8], read_chunk: usize) -> Result<usize> {
        let missing = match self.peek_size(buf)? {
            Some(size) => (SIZE_PREFIX_LEN + size).saturating_sub(buf.len()),
            None => SIZE_PREFIX_LEN - buf.len(),
        };
        Ok(missing.clamp(1, read_chunk.max(1)))
    }
}

/// Writes the four-byte size prefix for a frame body of `len` bytes.
pub fn put_size_prefix(out: &mut impl BufMut, len: usize) -> Result<()> {
    let len = i32::try_from(len).map_err(|_| WireError::Encode {
        what: "frame",
        detail: format!("{len} bytes does not fit a 32-bit size prefix"),
    })?;
    out.put_i32(len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        put_size_prefix(&mut b, body.len()).unwrap();
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn splits_complete_frames_and_waits_for_partial_ones() {
        let d = FrameDecoder::new(16);
        let mut buf = framed(b"hello");
        buf.extend_from_slice(&framed(b"wor")[..5]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), &b"hello"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 5, "partial frame left in place");
    }

    #[test]
    fn oversized_frame_is_a_typed_error_before_any_allocation() {
        let d = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(WireError::FrameTooLarge {
                size: i32::MAX as usize,
                max: 1024
            })
        );
        assert!(d.reserve_hint(&buf, 64 * 1024).is_err());
    }

    #[test]
    fn negative_size_is_rejected() {
        let d = FrameDecoder::default();
        let mut buf = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert_eq!(d.decode(&mut buf), Err(WireError::NegativeFrameSize(-5)));
    }

    #[test]
    fn reserve_hint_is_bounded_by_the_read_chunk() {
        let d = FrameDecoder::new(10 << 20);
        let buf = (5i32 << 20).to_be_bytes();
        assert_eq!(d.reserve_hint(&buf, 65536).unwrap(), 65536);
        assert_eq!(d.reserve_hint(&[0, 0], 65536).unwrap(), 2);
        let small = framed(b"abc");
        assert_eq!(d.reserve_hint(&small[..5], 65536).unwrap(), 2);
    }
}
