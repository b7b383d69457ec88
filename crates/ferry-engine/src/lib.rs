//! # ferry-engine
//!
//! The replication engine's decisions, kept free of sockets so they can be
//! tested deterministically. This first slice holds the per-batch plan: given
//! one fetched entry of a source partition, forward it as-is with a rewritten
//! header (fast path), re-encode it (slow path, with the reason), or skip it.
//! Flows, partition pipelines, the offset map and checkpoints build on it.

pub mod checkpoint;
pub mod config;
mod error;
pub mod inflight;
pub mod offset_map;
pub mod plan;
pub mod topics;

pub use error::EngineError;
