//! Ferry's bookkeeping on the records of its own topics: the write order
//! ([`WriteClock`], [`WriteStamp`], read back with [`StampOrder`]) and the
//! topic ids ([`TopicId`]), carried in the record header [`META_HEADER`]
//! ([`RecordMeta`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ferry_wire::record::Record;
use serde::{Deserialize, Serialize};

use super::{StoreError, parse};

/// A topic id as Kafka gives it (16 bytes), written as Kafka prints it
/// (URL-safe base64 without padding, 22 characters, as
/// `kafka-topics.sh --describe` shows it).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(pub [u8; 16]);

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl TopicId {
    /// `None` for Kafka's "no id" (all zeroes), which brokers send when a
    /// topic has none.
    pub fn new(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(Self(bytes))
    }

    /// Reads Kafka's printed form back (`None` if it is not one).
    pub fn parse(text: &str) -> Option<Self> {
        let mut bits = 0u32;
        let mut held = 0;
        let mut out = Vec::with_capacity(16);
        for c in text.bytes() {
            let v = u32::try_from(BASE64URL.iter().position(|&b| b == c)?).ok()?;
            bits = (bits << 6) | v;
            held += 6;
            if held >= 8 {
                held -= 8;
                out.push(u8::try_from((bits >> held) & 0xff).ok()?);
            }
        }
        Some(Self(out.try_into().ok()?))
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bits = 0u32;
        let mut held = 0;
        for &b in &self.0 {
            bits = (bits << 8) | u32::from(b);
            held += 8;
            while held >= 6 {
                held -= 6;
                f.write_str(char_at(bits >> held))?;
            }
        }
        if held > 0 {
            f.write_str(char_at(bits << (6 - held)))?;
        }
        Ok(())
    }
}

fn char_at(index: u32) -> &'static str {
    let i = usize::try_from(index & 63).unwrap_or(0);
    // ASCII: one byte each.
    std::str::from_utf8(&BASE64URL[i..=i]).unwrap_or("A")
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({self})")
    }
}

impl Serialize for TopicId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TopicId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a Kafka topic id: {text:?}")))
    }
}

/// The ids of a partition's source and target topics when a checkpoint or
/// map chunk was written; `None` where not known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TopicIds {
    pub source: Option<TopicId>,
    pub target: Option<TopicId>,
}

/// The record header holding [`RecordMeta`].
pub const META_HEADER: &str = "ferry";

/// Ferry's bookkeeping on each record of its topics, as JSON in the record
/// header [`META_HEADER`]: the write's place in the write order
/// ([`WriteClock`]) and the ids of the topics the record is for. A header,
/// not fields of the value, so that an older ferry (which refuses unknown
/// value fields) still reads the records after a rollback. Every field is
/// optional; records of older ferry have no header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_topic_id: Option<TopicId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_topic_id: Option<TopicId>,
}

impl RecordMeta {
    pub fn stamped(stamp: WriteStamp, ids: TopicIds) -> Self {
        Self {
            epoch: Some(stamp.epoch),
            seq: Some(stamp.seq),
            source_topic_id: ids.source,
            target_topic_id: ids.target,
        }
    }

    pub fn stamp(&self) -> Option<WriteStamp> {
        Some(WriteStamp {
            epoch: self.epoch?,
            seq: self.seq?,
        })
    }

    pub fn ids(&self) -> TopicIds {
        TopicIds {
            source: self.source_topic_id,
            target: self.target_topic_id,
        }
    }

    /// The bookkeeping of `record` of `topic` (default without the header).
    pub fn of(topic: &'static str, record: &Record) -> Result<Self, StoreError> {
        match record
            .headers
            .iter()
            .find(|h| h.key.as_ref() == META_HEADER.as_bytes())
        {
            None => Ok(Self::default()),
            Some(h) => parse(topic, record.offset, h.value.as_ref(), "header"),
        }
    }
}

/// Orders ferry's writes to its own topics across runs without any clock:
/// a run's `epoch` is one above the highest epoch it loaded, and `seq`
/// counts its writes. A reader orders records by `(epoch, seq)`, so
/// neither clock skew between hosts, a clock set back, nor a request the
/// broker appended late (a timed-out attempt after its retry) can make an
/// older write win over a newer one. Clones share the counter.
#[derive(Debug, Clone, Default)]
pub struct WriteClock {
    state: Arc<WriteClockState>,
}

#[derive(Debug, Default)]
struct WriteClockState {
    /// The epoch of this run's writes (0 until anything was loaded: then 1).
    epoch: AtomicU64,
    seq: AtomicU64,
}

/// Gives every record read in log order its place in the write order:
/// its own stamp, or for a record without one (written by an older ferry)
/// the highest epoch seen before it in the log with the highest sequence:
/// after every stamped record before it (it was written after them, by a
/// run that did not stamp) and before every later run's (those loaded it
/// and took a higher epoch). Ties break by log offset.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StampOrder {
    max_seen: WriteStamp,
}

impl StampOrder {
    pub(crate) fn order(&mut self, stamp: Option<WriteStamp>) -> WriteStamp {
        match stamp {
            Some(stamp) => {
                self.max_seen = self.max_seen.max(stamp);
                stamp
            }
            None => WriteStamp {
                epoch: self.max_seen.epoch,
                seq: u64::MAX,
            },
        }
    }

    pub(crate) fn max_epoch(&self) -> u64 {
        self.max_seen.epoch
    }
}

/// Where one write stands in the order of all writes (see [`WriteClock`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteStamp {
    pub epoch: u64,
    pub seq: u64,
}

impl WriteClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// A record written by an earlier run had `epoch`: this run's writes
    /// order after it.
    pub fn observe(&self, epoch: u64) {
        self.state
            .epoch
            .fetch_max(epoch.saturating_add(1), Ordering::Relaxed);
    }

    /// The stamp of the next write: later than every stamp before it.
    pub fn next(&self) -> WriteStamp {
        // Epoch 0 is reserved for records without a stamp (older ferry).
        self.state.epoch.fetch_max(1, Ordering::Relaxed);
        let seq = self.state.seq.fetch_add(1, Ordering::Relaxed) + 1;
        WriteStamp {
            epoch: self.state.epoch.load(Ordering::Relaxed),
            seq,
        }
    }
}
