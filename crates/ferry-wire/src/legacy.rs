//! Legacy message sets (magic v0 and v1), as written before Kafka 0.11.
//!
//! Kafka 4.x no longer stores them, but a 2.x/3.x source may still serve old
//! segments in this format. Produce v3+ only takes v2 batches, so ferry
//! converts them on the slow path: decode here, re-encode with
//! [`crate::builder`].
//!
//! ```text
//! offset i64 | messageSize i32 | crc u32 (CRC-32 of magic..end) | magic i8 | attributes i8
//! [timestamp i64, v1 only] | keyLen i32 | key | valueLen i32 | value
//! ```
//!
//! A compressed message is a wrapper whose value is a compressed message set.
//! In v1 the inner offsets are relative (0..n-1) and the wrapper carries the
//! absolute offset of the last inner message; in v0 inner offsets are absolute.

use bytes::Bytes;

use crate::batch::LOG_OVERHEAD;
use crate::codec::{self, Compression};
use crate::reader::Reader;
use crate::record::Record;
use crate::{Result, WireError};

const TIMESTAMP_TYPE_BIT: i8 = 0x08;
/// Timestamp of v0 messages, which have none.
pub const NO_TIMESTAMP: i64 = -1;

/// One legacy message (plain or compressed wrapper), zero-copy over its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMessage {
    bytes: Bytes,
    offset: i64,
    crc: u32,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
}

impl LegacyMessage {
    /// Parses exactly one message (log overhead included). Does not check the CRC.
    pub fn new(bytes: Bytes) -> Result<Self> {
        let mut r = Reader::new(bytes.clone());
        let offset = r.i64("legacy message offset")?;
        let size = r.i32("legacy message size")?;
        let size_ok = usize::try_from(size)
            .ok()
            .filter(|s| LOG_OVERHEAD + s == bytes.len());
        if size_ok.is_none() {
            return Err(WireError::malformed(
                "legacy message",
                format!(
                    "message at offset {offset} declares {size} bytes but {} were given",
                    bytes.len().saturating_sub(LOG_OVERHEAD)
                ),
            ));
        }
        let crc = r.u32("legacy message crc")?;
        let magic = r.i8("legacy message magic")?;
        if !(0..=1).contains(&magic) {
            return Err(WireError::UnsupportedMagic { magic, offset });
        }
        let attributes = r.i8("legacy message attributes")?;
        let timestamp = if magic == 1 {
            r.i64("legacy message timestamp")?
        } else {
            NO_TIMESTAMP
        };
        let key_len = r.i32("legacy message key length")?;
        let key = r.nullable_bytes(i64::from(key_len), "legacy message key")?;
        let value_len = r.i32("legacy message value length")?;
        let value = r.nullable_bytes(i64::from(value_len), "legacy message value")?;
        if r.remaining() != 0 {
            return Err(WireError::malformed(
                "legacy message",
                format!(
                    "{} trailing bytes in message at offset {offset}",
                    r.remaining()
                ),
            ));
        }
        Ok(Self {
            bytes,
            offset,
            crc,
            magic,
            attributes,
            timestamp,
            key,
            value,
        })
    }

    /// The message's offset (for a wrapper: the offset of its last inner message).
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// 0 or 1.
    pub fn magic(&self) -> i8 {
        self.magic
    }

    /// The codec of a wrapper (none for a plain message).
    pub fn compression(&self) -> Result<Compression> {
        let id = u8::try_from(self.attributes & 0x07).unwrap_or(u8::MAX);
        match Compression::from_id(id)? {
            Compression::Zstd => Err(WireError::UnknownCodec(id)), // not defined for v0/v1
            c => Ok(c),
        }
    }

    fn log_append_time(&self) -> bool {
        self.magic == 1 && self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    /// Checks the stored CRC-32 (IEEE) over magic..end.
    pub fn verify_crc(&self) -> Result<()> {
        let computed = crc32fast::hash(&self.bytes[LOG_OVERHEAD + 4..]);
        if computed == self.crc {
            Ok(())
        } else {
            Err(WireError::LegacyCrcMismatch {
                offset: self.offset,
                stored: self.crc,
                computed,
            })
        }
    }

    /// The records this message holds, with absolute offsets: one for a plain
    /// message, all inner ones for a compressed wrapper (decompressed into at
    /// most `decompress_limit` bytes; inner CRCs are checked too).
    pub fn records(&self, decompress_limit: usize) -> Result<Vec<Record>> {
        let codec = self.compression()?;
        if codec == Compression::None {
            return Ok(vec![self.as_record(self.offset, self.timestamp)]);
        }
        let compressed = self.value.as_ref().ok_or_else(|| {
            WireError::malformed("legacy wrapper", "compressed message with null value")
        })?;
        let inner = Bytes::from(codec::decompress(codec, compressed, decompress_limit)?);
        let messages = parse_inner_set(inner, self)?;
        let last_relative = messages.last().map_or(0, |m| m.offset);
        let base = if self.magic == 0 {
            0
        } else {
            self.offset.saturating_sub(last_relative)
        };
        Ok(messages
            .iter()
            .map(|m| {
                let ts = if self.log_append_time() {
                    self.timestamp
                } else {
                    m.timestamp
                };
                m.as_record(base.saturating_add(m.offset), ts)
            })
            .collect())
    }

    fn as_record(&self, offset: i64, timestamp: i64) -> Record {
        Record {
            offset,
            timestamp,
            key: self.key.clone(),
            value: self.value.clone(),
            headers: Vec::new(),
        }
    }
}

fn parse_inner_set(data: Bytes, wrapper: &LegacyMessage) -> Result<Vec<LegacyMessage>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < LOG_OVERHEAD {
            return Err(WireError::truncated(
                "inner legacy message",
                LOG_OVERHEAD,
                rest.len(),
            ));
        }
        let size = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let size = usize::try_from(size).map_err(|_| WireError::InvalidField {
            what: "inner legacy message size",
            value: i64::from(size),
        })?;
        let total = LOG_OVERHEAD.saturating_add(size);
        if rest.len() < total {
            return Err(WireError::truncated(
                "inner legacy message",
                total,
                rest.len(),
            ));
        }
        let m = LegacyMessage::new(data.slice(pos..pos + total))?;
        m.verify_crc()?;
        if m.magic != wrapper.magic || m.compression()? != Compression::None {
            return Err(WireError::malformed(
                "legacy wrapper",
                format!(
                    "wrapper at offset {} holds a message with magic {} or nested compression",
                    wrapper.offset, m.magic
                ),
            ));
        }
        out.push(m);
        pos += total;
    }
    Ok(out)
}

/// Encodes one legacy message (for tests and fuzz seeds: Kafka 4 cannot write them).
pub fn encode_message(
    offset: i64,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = vec![magic.to_be_bytes()[0], attributes.to_be_bytes()[0]];
    if magic == 1 {
        body.extend_from_slice(&timestamp.to_be_bytes());
    }
    for part in [key, value] {
        match part {
            Some(p) => {
                body.extend_from_slice(&i32::try_from(p.len()).unwrap_or(i32::MAX).to_be_bytes());
                body.extend_from_slice(p);
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    let crc = crc32fast::hash(&body);
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(
        &i32::try_from(body.len() + 4)
            .unwrap_or(i32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_v1_message_decodes() {
        let raw = encode_message(42, 1, 0, 1234, Some(b"k"), Some(b"v"));
        let m = LegacyMessage::new(Bytes::from(raw)).unwrap();
        m.verify_crc().unwrap();
        let recs = m.records(1024).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].offset, 42);
        assert_eq!(recs[0].timestamp, 1234);
        assert_eq!(recs[0].key.as_deref(), Some(&b"k"[..]));
    }

    #[test]
    fn compressed_v1_wrapper_uses_relative_inner_offsets() {
        let mut inner = Vec::new();
        for i in 0..3i64 {
            inner.extend(encode_message(
                i,
                1,
                0,
                100 + i,
                None,
                Some(format!("v{i}").as_bytes()),
            ));
        }
        let compressed = codec::compress(Compression::Gzip, &inner).unwrap();
        let wrapper = encode_message(12, 1, 1, 500, None, Some(&compressed));
        let m = LegacyMessage::new(Bytes::from(wrapper)).unwrap();
        m.verify_crc().unwrap();
        let recs = m.records(1 << 20).unwrap();
        let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [10, 11, 12]);
        assert_eq!(recs[2].timestamp, 102);
    }

    #[test]
    fn log_append_time_wrapper_overrides_inner_timestamps() {
        let inner = encode_message(0, 1, 0, 7, None, Some(b"x"));
        let compressed = codec::compress(Compression::Gzip, &inner).unwrap();
        let wrapper = encode_message(5, 1, 1 | TIMESTAMP_TYPE_BIT, 999, None, Some(&compressed));
        let recs = LegacyMessage::new(Bytes::from(wrapper))
            .unwrap()
            .records(1 << 20)
            .unwrap();
        assert_eq!(recs[0].timestamp, 999);
        assert_eq!(recs[0].offset, 5);
    }

    #[test]
    fn v0_inner_offsets_are_absolute_and_crc_is_checked() {
        let mut inner = encode_message(20, 0, 0, 0, None, Some(b"a"));
        inner.extend(encode_message(21, 0, 0, 0, None, Some(b"b")));
        let compressed = codec::compress(Compression::Snappy, &inner).unwrap();
        let wrapper = encode_message(21, 0, 2, 0, None, Some(&compressed));
        let m = LegacyMessage::new(Bytes::from(wrapper.clone())).unwrap();
        let offsets: Vec<i64> = m
            .records(1 << 20)
            .unwrap()
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, [20, 21]);
        assert_eq!(m.records(1 << 20).unwrap()[0].timestamp, NO_TIMESTAMP);
        let mut bad = wrapper;
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            LegacyMessage::new(Bytes::from(bad)).unwrap().verify_crc(),
            Err(WireError::LegacyCrcMismatch { .. })
        ));
    }

    #[test]
    fn size_mismatch_is_an_error() {
        let mut raw = encode_message(1, 1, 0, 0, None, Some(b"v"));
        raw.push(0);
        assert!(LegacyMessage::new(Bytes::from(raw)).is_err());
    }
}
