//! # ferry-wire
//!
//! The Kafka wire formats ferry needs, with no sockets and no async runtime:
//!
//! - [`frame`]: length-prefixed frames with a hard size limit.
//! - [`batch`]: zero-copy views over RecordBatch v2 bytes (header parse, CRC
//!   check, iteration over a fetched partition), and header rewrites whose CRC
//!   is *patched* in O(log n) instead of recomputed over the payload.
//! - [`record`], [`builder`], [`legacy`], [`reencode`]: the slow path, for
//!   batches a broker would refuse as-is: decode records and build new v2 batches.
//! - [`fetch`] and [`responses`]: bounded decoders of every response the
//!   client reads (kafka-protocol pre-allocates by wire counts), and the
//!   response header in front of them, so that no response is decoded by
//!   kafka-protocol.
//! - [`txn`]: dropping aborted transactions using batch headers only.
//! - [`codec`]: gzip, snappy (raw and xerial), lz4 (frame), zstd, each with a
//!   bound on decompressed size.
//! - [`produce`]: a Produce request encoder that keeps batch payloads as
//!   [`bytes::Bytes`] chunks for vectored writes instead of copying them.
//! - [`budget`]: a memory budget for socket buffers, so fetched data can apply
//!   backpressure instead of growing without bound.
//!
//! Everything that reads bytes returns [`WireError`] instead of panicking, and
//! every length read off the wire is checked against the bytes actually present
//! before anything is allocated.

pub mod batch;
pub mod budget;
pub mod builder;
pub mod coalesce;
pub mod codec;
mod crc;
mod error;
pub mod fetch;
pub mod frame;
pub mod legacy;
pub mod produce;
mod reader;
pub mod record;
pub mod reencode;
pub mod responses;
mod schema;
pub mod txn;
pub mod varint;

pub use error::WireError;

/// Result alias for this crate.
pub type Result<T, E = WireError> = std::result::Result<T, E>;
