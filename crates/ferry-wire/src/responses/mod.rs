//! Bounded decoders of the Kafka responses ferry reads (other than Fetch,
//! in [`crate::fetch`]), one module per API, and the response header in
//! front of them ([`header`]). Each checks every count and length against
//! the bytes present before allocating, and refuses versions it was not
//! written for.

pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod describe_configs;
pub mod describe_groups;
pub mod find_coordinator;
pub mod header;
pub mod init_producer_id;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sasl;

#[cfg(test)]
pub(crate) mod testing;
