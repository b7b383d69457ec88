//! The engine's error type: every message names the topic, partition and offset.

use std::fmt;
use std::sync::Arc;

use ferry_wire::WireError;

/// A topic partition, as named in messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A source batch failed its CRC check: it is never forwarded, and the
    /// partition stops until an operator looks at it.
    #[error(
        "source partition {tp}: batch at offset {offset} is corrupt ({source}); not forwarding it"
    )]
    CorruptBatch {
        tp: TopicPartition,
        offset: i64,
        source: WireError,
    },
    /// A source batch could not be parsed, decoded or re-encoded.
    #[error("source partition {tp}: cannot process the batch at offset {offset}: {source}")]
    BadBatch {
        tp: TopicPartition,
        offset: i64,
        source: WireError,
    },
}
