//! Records inside a v2 batch: decoding (zero-copy over uncompressed data) and
//! encoding, for the slow path.
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//! keyLen varint | key | valueLen varint | value
//! headerCount varint | [hKeyLen varint | hKey | hValLen varint | hValue]*
//! ```

use bytes::{BufMut, Bytes};

use crate::batch::{BatchHeader, TimestampType};
use crate::reader::Reader;
use crate::varint::{put_varint, put_varlong, varint_len, varlong_len};
use crate::{Result, WireError};

/// One record header. Keys are kept as bytes (Kafka requires UTF-8, but a
/// replicator must carry whatever the source holds). Duplicate keys are legal
/// and order matters, so headers are a list, not a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// One decoded record, with offsets and timestamps made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl Record {
    /// Bytes this record takes inside a batch at the given deltas, length prefix included.
    pub fn encoded_len(&self, offset_delta: i32, timestamp_delta: i64) -> usize {
        let body = self.body_len(offset_delta, timestamp_delta);
        varint_len(i32::try_from(body).unwrap_or(i32::MAX)) + body
    }

    fn body_len(&self, offset_delta: i32, timestamp_delta: i64) -> usize {
        let opt = |b: &Option<Bytes>| match b {
            Some(b) => varint_len(len_i32(b.len())) + b.len(),
            None => varint_len(-1),
        };
        1 + varlong_len(timestamp_delta)
            + varint_len(offset_delta)
            + opt(&self.key)
            + opt(&self.value)
            + varint_len(len_i32(self.headers.len()))
            + self
                .headers
                .iter()
                .map(|h| varint_len(len_i32(h.key.len())) + h.key.len() + opt(&h.value))
                .sum::<usize>()
    }

    /// Appends the record with the given deltas. Fails if a length does not
    /// fit Kafka's 32-bit varints.
    pub fn encode(
        &self,
        out: &mut impl BufMut,
        offset_delta: i32,
        timestamp_delta: i64,
    ) -> Result<()> {
        let body = self.body_len(offset_delta, timestamp_delta);
        put_varint(out, checked_len(body, "record")?);
        out.put_i8(0); // record attributes: unused
        put_varlong(out, timestamp_delta);
        put_varint(out, offset_delta);
        put_nullable(out, self.key.as_ref(), "record key")?;
        put_nullable(out, self.value.as_ref(), "record value")?;
        put_varint(out, checked_len(self.headers.len(), "header count")?);
        for h in &self.headers {
            put_varint(out, checked_len(h.key.len(), "header key")?);
            out.put_slice(&h.key);
            put_nullable(out, h.value.as_ref(), "header value")?;
        }
        Ok(())
    }
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn checked_len(n: usize, what: &'static str) -> Result<i32> {
    i32::try_from(n).map_err(|_| WireError::Encode {
        what,
        detail: format!("{n} bytes exceeds the 2 GiB limit of the record format"),
    })
}

fn put_nullable(out: &mut impl BufMut, b: Option<&Bytes>, what: &'static str) -> Result<()> {
    match b {
        Some(b) => {
            put_varint(out, checked_len(b.len(), what)?);
            out.put_slice(b);
        }
        None => put_varint(out, -1),
    }
    Ok(())
}

/// Iterator over the records of one batch, decoded from its (decompressed)
/// records section. Uncompressed batches are decoded without copying: keys,
/// values and headers are slices of the fetched bytes.
#[derive(Debug)]
pub struct Records {
    reader: Reader,
    remaining: i32,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    done: bool,
}

impl Records {
    pub(crate) fn new(data: Bytes, header: &BatchHeader) -> Result<Self> {
        Ok(Self {
            reader: Reader::new(data),
            remaining: header.record_count,
            base_offset: header.base_offset,
            base_timestamp: header.base_timestamp,
            log_append_time: match header.timestamp_type() {
                TimestampType::LogAppendTime => Some(header.max_timestamp),
                TimestampType::CreateTime => None,
            },
            done: false,
        })
    }

    fn decode_one(&mut self) -> Result<Record> {
        let r = &mut self.reader;
        let length = r.varint("record length")?;
        let length = usize::try_from(length).map_err(|_| WireError::InvalidField {
            what: "record length",
            value: i64::from(length),
        })?;
        if length > r.remaining() {
            return Err(WireError::truncated("record", length, r.remaining()));
        }
        let start = r.position();
        let _attributes = r.i8("record attributes")?;
        let timestamp_delta = r.varlong("record timestamp delta")?;
        let offset_delta = r.varint("record offset delta")?;
        let key_len = r.varint("record key length")?;
        let key = r.nullable_bytes(i64::from(key_len), "record key")?;
        let value_len = r.varint("record value length")?;
        let value = r.nullable_bytes(i64::from(value_len), "record value")?;
        let header_count = r.varint("record header count")?;
        let header_count = usize::try_from(header_count).map_err(|_| WireError::InvalidField {
            what: "record header count",
            value: i64::from(header_count),
        })?;
        // Each header takes at least two bytes: bound the allocation by what is present.
        let mut headers = Vec::with_capacity(header_count.min(r.remaining() / 2));
        for _ in 0..header_count {
            let key_len = r.varint("header key length")?;
            let key = r
                .nullable_bytes(i64::from(key_len), "header key")?
                .ok_or_else(|| WireError::malformed("record header", "null header key"))?;
            let value_len = r.varint("header value length")?;
            let value = r.nullable_bytes(i64::from(value_len), "header value")?;
            headers.push(Header { key, value });
        }
        let consumed = r.position() - start;
        if consumed != length {
            return Err(WireError::malformed(
                "record",
                format!("length prefix says {length} bytes but the record took {consumed}"),
            ));
        }
        Ok(Record {
            offset: self.base_offset.saturating_add(i64::from(offset_delta)),
            timestamp: self
                .log_append_time
                .unwrap_or_else(|| self.base_timestamp.saturating_add(timestamp_delta)),
            key,
            value,
            headers,
        })
    }
}

impl Iterator for Records {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.remaining == 0 {
            self.done = true;
            let left = self.reader.remaining();
            return (left != 0).then(|| {
                Err(WireError::malformed(
                    "record batch",
                    format!("{left} bytes left after the last record"),
                ))
            });
        }
        self.remaining -= 1;
        let r = self.decode_one();
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}
