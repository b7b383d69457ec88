//! Counters of a running flow (exported as metrics later).

use std::sync::atomic::{AtomicU64, Ordering};

/// What a flow has done so far.
#[derive(Debug, Default)]
pub struct FlowStats {
    pub batches_forwarded: AtomicU64,
    pub batches_reencoded: AtomicU64,
    /// Source batches merged with their neighbours (`[flows.batching]`),
    /// and the batches the merges produced.
    pub batches_coalesced: AtomicU64,
    pub batches_merged: AtomicU64,
    pub batches_skipped: AtomicU64,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    /// Source offsets deleted by retention before they were replicated.
    pub offsets_lost: AtomicU64,
}

fn n(v: impl TryInto<u64>) -> u64 {
    v.try_into().unwrap_or(0)
}

impl FlowStats {
    pub(super) fn forwarded(&self, bytes: usize, records: i64) {
        self.batches_forwarded.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(n(records), Ordering::Relaxed);
        self.bytes.fetch_add(n(bytes), Ordering::Relaxed);
    }

    pub(super) fn reencoded(&self, bytes: usize, records: i64) {
        self.batches_reencoded.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(n(records), Ordering::Relaxed);
        self.bytes.fetch_add(n(bytes), Ordering::Relaxed);
    }

    /// One batch produced by merging `sources` source batches (0 for the
    /// extra batches of a merge that had to be split).
    pub(super) fn coalesced(&self, sources: usize, bytes: usize, records: i64) {
        self.batches_coalesced
            .fetch_add(n(sources), Ordering::Relaxed);
        self.batches_merged.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(n(records), Ordering::Relaxed);
        self.bytes.fetch_add(n(bytes), Ordering::Relaxed);
    }

    pub(super) fn skipped(&self) {
        self.batches_skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn lost(&self, offsets: i64) {
        self.offsets_lost.fetch_add(n(offsets), Ordering::Relaxed);
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "{} records, {} bytes; batches: {} forwarded, {} re-encoded, {} coalesced into {}, {} skipped; \
             {} source offsets lost to retention",
            self.records.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.batches_forwarded.load(Ordering::Relaxed),
            self.batches_reencoded.load(Ordering::Relaxed),
            self.batches_coalesced.load(Ordering::Relaxed),
            self.batches_merged.load(Ordering::Relaxed),
            self.batches_skipped.load(Ordering::Relaxed),
            self.offsets_lost.load(Ordering::Relaxed),
        )
    }
}
