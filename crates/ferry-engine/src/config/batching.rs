//! `[flows.batching]`: opt-in merging of small source batches.

use serde::Deserialize;

use super::units::ByteSize;

/// `[flows.batching]`. Off unless `coalesce_below` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Batching {
    /// Merge runs of consecutive source batches smaller than this (each
    /// one's size on the wire, compressed) into one batch, through the
    /// slow path (decode, re-encode in the same codec). Only data batches
    /// already fetched are merged (ferry never waits for more), and only
    /// non-transactional ones in one codec. Costs ferry CPU, saves the
    /// target broker per-batch work. Default unset: off. Range
    /// 1B..=`coalesce_max`.
    #[serde(default)]
    pub coalesce_below: Option<ByteSize>,
    /// A merged run stops before its source batches add up to more than
    /// this (and the result is split if it exceeds the target topic's
    /// `max.message.bytes`). Default `256KiB`, range 1KiB..=16MiB.
    #[serde(default = "default_coalesce_max")]
    pub coalesce_max: ByteSize,
}

fn default_coalesce_max() -> ByteSize {
    ByteSize::kib(256)
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            coalesce_below: None,
            coalesce_max: default_coalesce_max(),
        }
    }
}
