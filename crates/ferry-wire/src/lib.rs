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
//! - [`fetch`], [`produce_response`], [`metadata_response`]: bounded decoders of the
//!   responses ferry reads most (kafka-protocol's pre-allocate by wire counts).
//! - [`api_versions_response`], [`list_offsets_response`],
//!   [`describe_configs_response`], [`create_topics_response`],
//!   [`create_partitions_response`], [`alter_configs_response`],
//!   [`init_producer_id_response`], and for consumer groups
//!   [`find_coordinator_response`], [`list_groups_response`],
//!   [`describe_groups_response`], [`offset_fetch_response`],
//!   [`offset_commit_response`]: the same for every other response the
//!   client reads, and [`response_header`] for the header in front of them,
//!   so that no response is decoded by kafka-protocol.
//! - [`txn`]: dropping aborted transactions using batch headers only.
//! - [`codec`]: gzip, snappy (raw and xerial), lz4 (frame), zstd, each with a
//!   bound on decompressed size.
//! - [`produce`]: a Produce request encoder that keeps batch payloads as
//!   [`bytes::Bytes`] chunks for vectored writes instead of copying them.
//! - [`pool`]: a memory budget for socket buffers, so fetched data can apply
//!   backpressure instead of growing without bound.
//!
//! Everything that reads bytes returns [`WireError`] instead of panicking, and
//! every length read off the wire is checked against the bytes actually present
//! before anything is allocated.

pub mod alter_configs_response;
pub mod api_versions_response;
pub mod batch;
pub mod builder;
pub mod coalesce;
pub mod codec;
mod crc;
pub mod create_partitions_response;
pub mod create_topics_response;
pub mod describe_configs_response;
pub mod describe_groups_response;
mod error;
pub mod fetch;
pub mod find_coordinator_response;
pub mod frame;
pub mod init_producer_id_response;
pub mod legacy;
pub mod list_groups_response;
pub mod list_offsets_response;
pub mod metadata_response;
pub mod offset_commit_response;
pub mod offset_fetch_response;
pub mod offset_for_leader_epoch_response;
pub mod pool;
pub mod produce;
pub mod produce_response;
mod reader;
pub mod record;
pub mod reencode;
pub mod response_header;
pub mod sasl_response;
mod schema;
pub mod txn;
pub mod varint;

pub use error::WireError;

/// Result alias for this crate.
pub type Result<T, E = WireError> = std::result::Result<T, E>;
