//! The engine's error type: every message names the topic, partition and offset.

use ferry_wire::WireError;

pub use ferry_client::TopicPartition;

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
