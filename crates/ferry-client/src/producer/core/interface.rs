//! What goes in and out of [`ProducerCore`](super::ProducerCore): the
//! runner's inputs and the core's actions.

use std::sync::Arc;
use std::time::Instant;

use ferry_wire::batch::{BatchHeader, RecordBatch};
use ferry_wire::responses::produce::ProduceResponse;

use crate::TopicPartition;
use crate::error::{ClientError, Result};
use crate::metadata::ClusterMetadata;
use crate::producer::Ack;
use crate::producer::sequence::ProducerIdentity;
use crate::producer::writer::Outbound;

/// What the runner tells the core.
#[derive(Debug)]
pub(crate) enum Input<T> {
    /// A batch to produce (its header already checked by `send`).
    Send {
        tp: TopicPartition,
        batch: RecordBatch,
        header: BatchHeader,
        token: T,
    },
    /// Answer [`Action::FlushDone`] `id` once every batch sent so far is done.
    Flush { id: u64 },
    /// As `Flush`, and accept no more batches: the core is
    /// [`finished`](ProducerCore::finished) once the flush is done.
    Close { id: u64 },
    /// Every handle is gone: finish what is queued, then stop.
    HandlesDropped,
    /// Let a stopped partition take batches again once its earlier
    /// batches are resolved (the runner gave it a new gate).
    Restart { tp: TopicPartition },
    /// The outcome of [`Action::Connect`].
    Connected {
        node: i32,
        result: Result<ConnectedBroker>,
    },
    /// The connection to `node` broke (the runner saw it poisoned); its
    /// writer has been dropped.
    ConnectionBroken { node: i32 },
    /// The answer to request `request` of an [`Action::Send`].
    Response {
        request: u64,
        result: Result<ProduceResponse>,
    },
    /// The outcome of [`Action::RefreshMetadata`].
    Metadata {
        topics: Vec<Arc<str>>,
        result: Result<Arc<ClusterMetadata>>,
    },
    /// The outcome of [`Action::InitProducerId`].
    ProducerId(Result<ProducerIdentity>),
}

/// A usable connection: the broker's address (for messages) and the
/// Produce version both sides speak.
#[derive(Debug, Clone)]
pub(crate) struct ConnectedBroker {
    pub broker: String,
    pub version: i16,
}

/// What the core asks the runner to do.
#[derive(Debug)]
pub(crate) enum Action<T> {
    /// Open a connection to `node`; answer with [`Input::Connected`].
    Connect { node: i32 },
    /// Queue this request on `node`'s connection, in order; its answer
    /// comes back as [`Input::Response`].
    Send { node: i32, outbound: Outbound },
    /// Refresh metadata for `topics`; answer with [`Input::Metadata`].
    RefreshMetadata { topics: Vec<Arc<str>> },
    /// Get a new producer id, retrying until `deadline`; answer with
    /// [`Input::ProducerId`].
    InitProducerId { deadline: Instant },
    /// Hand a batch's result to its caller.
    Deliver { token: T, result: Result<Ack> },
    /// Refuse every later send to `tp` with `error`.
    StopPartition {
        tp: TopicPartition,
        error: ClientError,
    },
    /// Answer flush or close `id`.
    FlushDone { id: u64, result: Result<()> },
}
