//! Which of ferry-wire's bounded decoders reads the response to each
//! kafka-protocol request sent through [`Connection::send`].
//!
//! Requests are still encoded by kafka-protocol (what ferry writes is not
//! the risk), but its response decoders pre-allocate arrays by the counts a
//! broker sends, so a tiny frame announcing 2^31 entries aborts the process.
//! `send` therefore only takes requests listed here, each paired with a
//! decoder that checks every count against the bytes actually present.
//!
//! [`Connection::send`]: crate::Connection::send

use bytes::Bytes;
use ferry_wire::responses::alter_configs::{
    IncrementalAlterConfigsResponse, MAX_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION,
    MIN_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION, decode_incremental_alter_configs_response,
};
use ferry_wire::responses::create_partitions::{
    CreatePartitionsResponse, MAX_CREATE_PARTITIONS_RESPONSE_VERSION,
    MIN_CREATE_PARTITIONS_RESPONSE_VERSION, decode_create_partitions_response,
};
use ferry_wire::responses::create_topics::{
    CreateTopicsResponse, MAX_CREATE_TOPICS_RESPONSE_VERSION, MIN_CREATE_TOPICS_RESPONSE_VERSION,
    decode_create_topics_response,
};
use ferry_wire::responses::describe_configs::{
    DescribeConfigsResponse, MAX_DESCRIBE_CONFIGS_RESPONSE_VERSION,
    MIN_DESCRIBE_CONFIGS_RESPONSE_VERSION, decode_describe_configs_response,
};
use ferry_wire::responses::describe_groups::{
    DescribeGroupsResponse, MAX_DESCRIBE_GROUPS_RESPONSE_VERSION,
    MIN_DESCRIBE_GROUPS_RESPONSE_VERSION, decode_describe_groups_response,
};
use ferry_wire::responses::find_coordinator::{
    FindCoordinatorResponse, MAX_FIND_COORDINATOR_RESPONSE_VERSION,
    MIN_FIND_COORDINATOR_RESPONSE_VERSION, decode_find_coordinator_response,
};
use ferry_wire::responses::init_producer_id::{
    InitProducerIdResponse, MAX_INIT_PRODUCER_ID_RESPONSE_VERSION,
    MIN_INIT_PRODUCER_ID_RESPONSE_VERSION, decode_init_producer_id_response,
};
use ferry_wire::responses::list_groups::{
    ListGroupsResponse, MAX_LIST_GROUPS_RESPONSE_VERSION, MIN_LIST_GROUPS_RESPONSE_VERSION,
    decode_list_groups_response,
};
use ferry_wire::responses::list_offsets::{
    ListOffsetsResponse, MAX_LIST_OFFSETS_RESPONSE_VERSION, MIN_LIST_OFFSETS_RESPONSE_VERSION,
    decode_list_offsets_response,
};
use ferry_wire::responses::offset_commit::{
    MAX_OFFSET_COMMIT_RESPONSE_VERSION, MIN_OFFSET_COMMIT_RESPONSE_VERSION, OffsetCommitResponse,
    decode_offset_commit_response,
};
use ferry_wire::responses::offset_fetch::{
    MAX_OFFSET_FETCH_RESPONSE_VERSION, MIN_OFFSET_FETCH_RESPONSE_VERSION, OffsetFetchResponse,
    decode_offset_fetch_response,
};
use ferry_wire::responses::produce::{
    MAX_PRODUCE_RESPONSE_VERSION, MIN_PRODUCE_RESPONSE_VERSION, ProduceResponse,
    decode_produce_response,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest,
    ListGroupsRequest, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest,
};
use kafka_protocol::protocol::{Request, VersionRange};

/// A kafka-protocol request whose response ferry decodes with a bounded
/// decoder of its own.
pub trait BoundedRequest: Request {
    /// What the decoder returns: owned, and only the fields ferry reads.
    type Decoded;
    /// The response versions the decoder reads; [`Connection::send`]
    /// refuses any other before the request goes out.
    ///
    /// [`Connection::send`]: crate::Connection::send
    const DECODED_VERSIONS: VersionRange;
    /// Decodes a response body (everything after the response header).
    fn decode_response(body: Bytes, version: i16) -> ferry_wire::Result<Self::Decoded>;
}

/// Pairs a request type with its bounded decoder and that decoder's range.
macro_rules! bounded {
    ($request:ty => $decoded:ty, $decode:path, $min:expr, $max:expr) => {
        impl BoundedRequest for $request {
            type Decoded = $decoded;
            const DECODED_VERSIONS: VersionRange = VersionRange {
                min: $min,
                max: $max,
            };
            fn decode_response(body: Bytes, version: i16) -> ferry_wire::Result<$decoded> {
                $decode(body, version)
            }
        }
    };
}

bounded!(ListOffsetsRequest => ListOffsetsResponse, decode_list_offsets_response,
    MIN_LIST_OFFSETS_RESPONSE_VERSION, MAX_LIST_OFFSETS_RESPONSE_VERSION);
bounded!(DescribeConfigsRequest => DescribeConfigsResponse, decode_describe_configs_response,
    MIN_DESCRIBE_CONFIGS_RESPONSE_VERSION, MAX_DESCRIBE_CONFIGS_RESPONSE_VERSION);
bounded!(CreateTopicsRequest => CreateTopicsResponse, decode_create_topics_response,
    MIN_CREATE_TOPICS_RESPONSE_VERSION, MAX_CREATE_TOPICS_RESPONSE_VERSION);
bounded!(CreatePartitionsRequest => CreatePartitionsResponse, decode_create_partitions_response,
    MIN_CREATE_PARTITIONS_RESPONSE_VERSION, MAX_CREATE_PARTITIONS_RESPONSE_VERSION);
bounded!(IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse,
    decode_incremental_alter_configs_response,
    MIN_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION, MAX_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION);
bounded!(InitProducerIdRequest => InitProducerIdResponse, decode_init_producer_id_response,
    MIN_INIT_PRODUCER_ID_RESPONSE_VERSION, MAX_INIT_PRODUCER_ID_RESPONSE_VERSION);
bounded!(FindCoordinatorRequest => FindCoordinatorResponse, decode_find_coordinator_response,
    MIN_FIND_COORDINATOR_RESPONSE_VERSION, MAX_FIND_COORDINATOR_RESPONSE_VERSION);
bounded!(ListGroupsRequest => ListGroupsResponse, decode_list_groups_response,
    MIN_LIST_GROUPS_RESPONSE_VERSION, MAX_LIST_GROUPS_RESPONSE_VERSION);
bounded!(DescribeGroupsRequest => DescribeGroupsResponse, decode_describe_groups_response,
    MIN_DESCRIBE_GROUPS_RESPONSE_VERSION, MAX_DESCRIBE_GROUPS_RESPONSE_VERSION);
bounded!(OffsetFetchRequest => OffsetFetchResponse, decode_offset_fetch_response,
    MIN_OFFSET_FETCH_RESPONSE_VERSION, MAX_OFFSET_FETCH_RESPONSE_VERSION);
bounded!(OffsetCommitRequest => OffsetCommitResponse, decode_offset_commit_response,
    MIN_OFFSET_COMMIT_RESPONSE_VERSION, MAX_OFFSET_COMMIT_RESPONSE_VERSION);
// Ferry produces with its own zero-copy encoder; this is for requests built
// with kafka-protocol's (tests do).
bounded!(ProduceRequest => ProduceResponse, decode_produce_response,
    MIN_PRODUCE_RESPONSE_VERSION, MAX_PRODUCE_RESPONSE_VERSION);

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;

    use super::*;
    use crate::versions::floor;

    /// `version_for` picks from kafka-protocol's request range, never below
    /// our floor: every version it can pick must be one the decoder reads,
    /// or a kafka-protocol upgrade would make `send` refuse live requests.
    fn covers_every_version_we_send<R: BoundedRequest>() {
        let api = ApiKey::try_from(R::KEY).unwrap();
        let lowest = R::VERSIONS.min.max(floor(api));
        assert!(
            R::DECODED_VERSIONS.min <= lowest && R::VERSIONS.max <= R::DECODED_VERSIONS.max,
            "{api:?}: we may send v{lowest}..=v{}, the decoder reads v{}..=v{}",
            R::VERSIONS.max,
            R::DECODED_VERSIONS.min,
            R::DECODED_VERSIONS.max
        );
    }

    #[test]
    fn every_version_we_can_send_has_a_decoder() {
        covers_every_version_we_send::<ListOffsetsRequest>();
        covers_every_version_we_send::<DescribeConfigsRequest>();
        covers_every_version_we_send::<CreateTopicsRequest>();
        covers_every_version_we_send::<CreatePartitionsRequest>();
        covers_every_version_we_send::<IncrementalAlterConfigsRequest>();
        covers_every_version_we_send::<InitProducerIdRequest>();
        covers_every_version_we_send::<ProduceRequest>();
        covers_every_version_we_send::<FindCoordinatorRequest>();
        covers_every_version_we_send::<ListGroupsRequest>();
        covers_every_version_we_send::<DescribeGroupsRequest>();
        covers_every_version_we_send::<OffsetFetchRequest>();
        covers_every_version_we_send::<OffsetCommitRequest>();
    }
}
