//! # ferry-engine
//!
//! Ferry's replication engine, a library first: [`Engine`] runs the flows of
//! a [`config::Config`] in-process until a shutdown future completes.
//!
//! - [`flow`]: one source → target flow: discovery of topics and partitions,
//!   target topic creation, per-partition pipelines, checkpointing, drain.
//! - [`plan`]: the per-batch decision (forward as-is, re-encode, skip).
//! - [`inflight`], [`offset_map`]: what may be checkpointed, and the exact
//!   source → target offset map, as deterministic state machines.
//! - [`checkpoint`]: positions kept in a compacted topic on the target.
//! - [`topics`]: which topics a flow mirrors and their target names.
//! - [`config`]: the validated configuration (TOML or built in code).

pub mod checkpoint;
pub mod coalesce;
pub mod compacted;
pub mod config;
mod engine;
mod error;
pub mod flow;
pub mod groups;
pub mod inflight;
pub mod metrics;
pub mod offset_map;
pub mod offset_store;
pub mod plan;
pub mod topics;

pub use engine::{Engine, FlowOutcome};
pub use error::EngineError;
