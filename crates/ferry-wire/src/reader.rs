//! A bounds-checked cursor over a [`Bytes`] buffer. Slices it hands out share
//! the buffer's allocation, so decoding uncompressed records copies nothing.

use bytes::Bytes;

use crate::varint::{read_unsigned_varint, read_varint, read_varlong};
use crate::{Result, WireError};

#[derive(Debug, Clone)]
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8]> {
        let available = self.remaining();
        if n > available {
            return Err(WireError::truncated(what, n, available));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn i8(&mut self, what: &'static str) -> Result<i8> {
        Ok(i8::from_be_bytes(self.array::<1>(what)?))
    }

    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn varint(&mut self, what: &'static str) -> Result<i32> {
        let (v, n) = read_varint(&self.buf[self.pos..]).map_err(|e| rename(e, what))?;
        self.pos += n;
        Ok(v)
    }

    pub(crate) fn varlong(&mut self, what: &'static str) -> Result<i64> {
        let (v, n) = read_varlong(&self.buf[self.pos..]).map_err(|e| rename(e, what))?;
        self.pos += n;
        Ok(v)
    }

    pub(crate) fn unsigned_varint(&mut self, what: &'static str) -> Result<u32> {
        let (v, n) = read_unsigned_varint(&self.buf[self.pos..]).map_err(|e| rename(e, what))?;
        self.pos += n;
        Ok(v)
    }

    /// Skips `n` bytes.
    pub(crate) fn skip(&mut self, n: usize, what: &'static str) -> Result<()> {
        self.take(n, what).map(|_| ())
    }

    /// `n` bytes as a zero-copy slice of the underlying buffer.
    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<Bytes> {
        let available = self.remaining();
        if n > available {
            return Err(WireError::truncated(what, n, available));
        }
        let s = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(s)
    }

    /// A nullable byte string whose length was already read: -1 is null.
    pub(crate) fn nullable_bytes(&mut self, len: i64, what: &'static str) -> Result<Option<Bytes>> {
        match len {
            -1 => Ok(None),
            n if n < -1 => Err(WireError::InvalidField { what, value: n }),
            n => {
                let n =
                    usize::try_from(n).map_err(|_| WireError::InvalidField { what, value: n })?;
                self.bytes(n, what).map(Some)
            }
        }
    }
}

fn rename(e: WireError, what: &'static str) -> WireError {
    match e {
        WireError::Truncated {
            needed, available, ..
        } => WireError::Truncated {
            what,
            needed,
            available,
        },
        WireError::Malformed { detail, .. } => WireError::Malformed { what, detail },
        WireError::InvalidField { value, .. } => WireError::InvalidField { what, value },
        other => other,
    }
}
