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

    /// A cluster call failed (connection, authorization, broker error).
    #[error("flow {flow}: cluster {cluster}: {source}")]
    Cluster {
        flow: String,
        cluster: String,
        source: Box<ferry_client::ClientError>,
    },

    /// The target refused or never acknowledged a batch.
    #[error(
        "producing source partition {source_tp} (batch at source offset {offset}) to {target_tp} failed: {error}"
    )]
    Produce {
        source_tp: TopicPartition,
        target_tp: TopicPartition,
        offset: i64,
        error: Box<ferry_client::ClientError>,
    },

    /// The source answered a fetch of a partition with an error ferry cannot
    /// recover from by itself; the partition stops.
    #[error(
        "source partition {tp}: fetch at offset {offset} failed with {code}; the partition is stopped"
    )]
    SourcePartition {
        tp: TopicPartition,
        offset: i64,
        code: ferry_client::KafkaCode,
    },

    /// The fetcher stopped the partition and said why: the source log
    /// diverged from what was fetched (an unclean leader election), or a
    /// batch is larger than the connection's frame limit.
    #[error("source partition {tp}: {reason}{}; the partition is stopped", diverged_note(*.target_from))]
    SourceStopped {
        tp: TopicPartition,
        reason: ferry_client::StopReason,
        /// The first target offset holding a record mirrored from the
        /// diverged stretch, if any was mirrored.
        target_from: Option<i64>,
    },

    /// The target acknowledged a batch below the offsets it had already
    /// acknowledged: it lost acknowledged records.
    #[error(
        "target partition for {tp}: a batch was acknowledged at offset {acknowledged_at}, below \
         {expected} where acknowledged records ended, so the target lost records (unclean leader \
         election or disk loss); the partition restarts and mirrors them again from the first \
         lost one"
    )]
    TargetTruncated {
        tp: TopicPartition,
        acknowledged_at: i64,
        expected: i64,
    },

    /// Reading or writing checkpoints failed.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),

    /// An engine invariant broke: a bug, reported instead of guessed around.
    #[error("source partition {tp}: internal error: {detail}; please report it")]
    Internal { tp: TopicPartition, detail: String },

    /// A flow's configuration cannot be turned into a running flow.
    #[error("flow {flow}: {detail}")]
    Config { flow: String, detail: String },
}

/// What a divergence means for the target, when records from the diverged
/// stretch were mirrored.
fn diverged_note(target_from: Option<i64>) -> String {
    target_from.map_or_else(String::new, |t| {
        format!(
            "; the target partition holds records mirrored from that stretch from offset {t} \
             on, which the source no longer has"
        )
    })
}
