//! Reading Kafka response schemas with bounds: the shared pieces of ferry's
//! hand-written response decoders (see [`crate::fetch`] for why they exist).
//! Every array count is checked against the bytes left before allocating,
//! and tagged fields are bounded by their announced size.

use crate::reader::Reader;
use crate::{Result, WireError};

/// How a response names a topic: by name below v13, by id from v13.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicKey {
    Name(String),
    Id([u8; 16]),
}

/// A broker endpoint sent with leadership errors (KIP-951; Fetch v16+, Produce v10+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEndpoint {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

pub(crate) struct ResponseReader {
    pub(crate) r: Reader,
    pub(crate) flexible: bool,
}

impl ResponseReader {
    pub(crate) fn new(body: bytes::Bytes, flexible: bool) -> Self {
        Self {
            r: Reader::new(body),
            flexible,
        }
    }

    /// An array length (nullable), bounded by the bytes left: each element
    /// takes at least `min_element` bytes, so a larger count is malformed.
    pub(crate) fn array_len(
        &mut self,
        what: &'static str,
        min_element: usize,
    ) -> Result<Option<usize>> {
        let n: i64 = if self.flexible {
            i64::from(self.r.unsigned_varint(what)?) - 1
        } else {
            i64::from(self.r.i32(what)?)
        };
        if n == -1 {
            return Ok(None);
        }
        let count = usize::try_from(n).map_err(|_| WireError::InvalidField { what, value: n })?;
        if count.saturating_mul(min_element) > self.r.remaining() {
            return Err(WireError::malformed(
                what,
                format!(
                    "{count} elements announced but only {} bytes left",
                    self.r.remaining()
                ),
            ));
        }
        Ok(Some(count))
    }

    pub(crate) fn bytes_len(&mut self, what: &'static str) -> Result<Option<usize>> {
        let n: i64 = if self.flexible {
            i64::from(self.r.unsigned_varint(what)?) - 1
        } else {
            i64::from(self.r.i32(what)?)
        };
        match n {
            -1 => Ok(None),
            n => usize::try_from(n)
                .map(Some)
                .map_err(|_| WireError::InvalidField { what, value: n }),
        }
    }

    /// A string the schema does not allow to be null.
    pub(crate) fn required_string(&mut self, what: &'static str) -> Result<String> {
        self.string(what)?
            .ok_or_else(|| WireError::malformed(what, "null"))
    }

    /// A boolean: Kafka reads any non-zero byte as true.
    pub(crate) fn boolean(&mut self, what: &'static str) -> Result<bool> {
        Ok(self.r.i8(what)? != 0)
    }

    pub(crate) fn string(&mut self, what: &'static str) -> Result<Option<String>> {
        let len = if self.flexible {
            self.bytes_len(what)?
        } else {
            match self.r.i16(what)? {
                -1 => None,
                n => Some(usize::try_from(n).map_err(|_| WireError::InvalidField {
                    what,
                    value: i64::from(n),
                })?),
            }
        };
        let Some(len) = len else { return Ok(None) };
        let raw = self.r.bytes(len, what)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| WireError::malformed(what, "not UTF-8"))
    }

    /// Walks a tagged-field section; `known` reads the fields it knows and
    /// must consume exactly their announced size; others are skipped.
    pub(crate) fn tagged_fields(
        &mut self,
        what: &'static str,
        mut known: impl FnMut(&mut Self, u32, TaggedField) -> Result<()>,
    ) -> Result<()> {
        if !self.flexible {
            return Ok(());
        }
        let n = self.r.unsigned_varint(what)?;
        for _ in 0..n {
            let tag = self.r.unsigned_varint(what)?;
            let size = usize::try_from(self.r.unsigned_varint(what)?)
                .map_err(|_| WireError::malformed(what, "tagged field size"))?;
            if size > self.r.remaining() {
                return Err(WireError::truncated(what, size, self.r.remaining()));
            }
            let field = TaggedField {
                end: self.r.position() + size,
            };
            let before = self.r.position();
            known(self, tag, field)?;
            if self.r.position() == before {
                self.r.skip(size, what)?; // unknown (or ignored) tag
            }
        }
        Ok(())
    }

    pub(crate) fn end_of_tagged(&mut self, field: TaggedField) -> Result<()> {
        if self.r.position() == field.end {
            Ok(())
        } else {
            Err(WireError::malformed(
                "tagged field",
                "contents do not match the announced size",
            ))
        }
    }

    pub(crate) fn node_endpoint(&mut self) -> Result<NodeEndpoint> {
        let node_id = self.r.i32("node id")?;
        let host = self
            .string("node host")?
            .ok_or_else(|| WireError::malformed("node host", "null"))?;
        let port = self.r.i32("node port")?;
        let rack = self.string("node rack")?;
        self.tagged_fields("node endpoint", |_, _, _| Ok(()))?;
        Ok(NodeEndpoint {
            node_id,
            host,
            port,
            rack,
        })
    }
}

/// Refuses a version outside `min..=max` before reading anything: each
/// decoder knows the layouts of its range only.
pub(crate) fn check_version(what: &'static str, version: i16, min: i16, max: i16) -> Result<()> {
    if (min..=max).contains(&version) {
        Ok(())
    } else {
        Err(WireError::InvalidField {
            what,
            value: i64::from(version),
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct TaggedField {
    end: usize,
}

impl ResponseReader {
    /// A topic name (below `id_from`) or topic id (from `id_from` on).
    pub(crate) fn topic_key(&mut self, version: i16, id_from: i16) -> Result<TopicKey> {
        if version >= id_from {
            Ok(TopicKey::Id(self.r.array("topic id")?))
        } else {
            self.string("topic name")?
                .map(TopicKey::Name)
                .ok_or_else(|| WireError::malformed("topic name", "null"))
        }
    }

    /// The top-level tagged fields of a response whose tag 0 (when
    /// `has_endpoints`) lists leader endpoints (KIP-951); other tags skipped.
    pub(crate) fn node_endpoints_tag(
        &mut self,
        what: &'static str,
        has_endpoints: bool,
    ) -> Result<Vec<NodeEndpoint>> {
        let mut endpoints = Vec::new();
        self.tagged_fields(what, |d, tag, field| {
            if tag == 0 && has_endpoints {
                let n = d.array_len("node endpoints", 10)?.unwrap_or(0);
                endpoints.reserve(n);
                for _ in 0..n {
                    endpoints.push(d.node_endpoint()?);
                }
                d.end_of_tagged(field)?;
            }
            Ok(())
        })?;
        Ok(endpoints)
    }

    /// Checks nothing is left: a response longer than its schema is as
    /// suspect as a shorter one.
    pub(crate) fn finish(&self, what: &'static str) -> Result<()> {
        match self.r.remaining() {
            0 => Ok(()),
            n => Err(WireError::malformed(
                what,
                format!("{n} bytes left after the last field"),
            )),
        }
    }
}
