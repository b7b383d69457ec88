//! A response frame for one of the admin calls (ListOffsets,
//! DescribeConfigs, CreateTopics, CreatePartitions, IncrementalAlterConfigs,
//! InitProducerId, and the consumer-group ones: FindCoordinator, ListGroups,
//! DescribeGroups, OffsetFetch, OffsetCommit; SaslHandshake, SaslAuthenticate)
//! through ferry's bounded header splitter and body decoder.
//! The first byte picks the decoder and the version.
#![no_main]

use bytes::Bytes;
use ferry_wire::responses::alter_configs as alter;
use ferry_wire::responses::create_partitions as partitions;
use ferry_wire::responses::create_topics as topics;
use ferry_wire::responses::describe_configs as configs;
use ferry_wire::responses::describe_groups as describe_groups;
use ferry_wire::responses::find_coordinator as coordinator;
use ferry_wire::responses::init_producer_id as producer_id;
use ferry_wire::responses::list_groups as list_groups;
use ferry_wire::responses::list_offsets as offsets;
use ferry_wire::responses::offset_commit as offset_commit;
use ferry_wire::responses::offset_fetch as offset_fetch;
use ferry_wire::responses::header::split_response_header;
use ferry_wire::responses::sasl as sasl;
use libfuzzer_sys::fuzz_target;

/// Each decoder: its version range, its first flexible version (which
/// moves the header to v1) and a decode that drops the result.
type Decode = fn(Bytes, i16) -> bool;
const DECODERS: [(i16, i16, i16, Decode); 13] = [
    (
        offsets::MIN_LIST_OFFSETS_RESPONSE_VERSION,
        offsets::MAX_LIST_OFFSETS_RESPONSE_VERSION,
        6,
        |b, v| offsets::decode_list_offsets_response(b, v).is_ok(),
    ),
    (
        configs::MIN_DESCRIBE_CONFIGS_RESPONSE_VERSION,
        configs::MAX_DESCRIBE_CONFIGS_RESPONSE_VERSION,
        4,
        |b, v| configs::decode_describe_configs_response(b, v).is_ok(),
    ),
    (
        topics::MIN_CREATE_TOPICS_RESPONSE_VERSION,
        topics::MAX_CREATE_TOPICS_RESPONSE_VERSION,
        5,
        |b, v| topics::decode_create_topics_response(b, v).is_ok(),
    ),
    (
        partitions::MIN_CREATE_PARTITIONS_RESPONSE_VERSION,
        partitions::MAX_CREATE_PARTITIONS_RESPONSE_VERSION,
        2,
        |b, v| partitions::decode_create_partitions_response(b, v).is_ok(),
    ),
    (
        alter::MIN_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION,
        alter::MAX_INCREMENTAL_ALTER_CONFIGS_RESPONSE_VERSION,
        1,
        |b, v| alter::decode_incremental_alter_configs_response(b, v).is_ok(),
    ),
    (
        producer_id::MIN_INIT_PRODUCER_ID_RESPONSE_VERSION,
        producer_id::MAX_INIT_PRODUCER_ID_RESPONSE_VERSION,
        2,
        |b, v| producer_id::decode_init_producer_id_response(b, v).is_ok(),
    ),
    (
        coordinator::MIN_FIND_COORDINATOR_RESPONSE_VERSION,
        coordinator::MAX_FIND_COORDINATOR_RESPONSE_VERSION,
        3,
        |b, v| coordinator::decode_find_coordinator_response(b, v).is_ok(),
    ),
    (
        list_groups::MIN_LIST_GROUPS_RESPONSE_VERSION,
        list_groups::MAX_LIST_GROUPS_RESPONSE_VERSION,
        3,
        |b, v| list_groups::decode_list_groups_response(b, v).is_ok(),
    ),
    (
        describe_groups::MIN_DESCRIBE_GROUPS_RESPONSE_VERSION,
        describe_groups::MAX_DESCRIBE_GROUPS_RESPONSE_VERSION,
        5,
        |b, v| describe_groups::decode_describe_groups_response(b, v).is_ok(),
    ),
    (
        offset_fetch::MIN_OFFSET_FETCH_RESPONSE_VERSION,
        offset_fetch::MAX_OFFSET_FETCH_RESPONSE_VERSION,
        6,
        |b, v| offset_fetch::decode_offset_fetch_response(b, v).is_ok(),
    ),
    (
        offset_commit::MIN_OFFSET_COMMIT_RESPONSE_VERSION,
        offset_commit::MAX_OFFSET_COMMIT_RESPONSE_VERSION,
        8,
        |b, v| offset_commit::decode_offset_commit_response(b, v).is_ok(),
    ),
    (
        sasl::MIN_SASL_HANDSHAKE_RESPONSE_VERSION,
        sasl::MAX_SASL_HANDSHAKE_RESPONSE_VERSION,
        i16::MAX, // never flexible
        |b, v| sasl::decode_sasl_handshake_response(b, v).is_ok(),
    ),
    (
        sasl::MIN_SASL_AUTHENTICATE_RESPONSE_VERSION,
        sasl::MAX_SASL_AUTHENTICATE_RESPONSE_VERSION,
        2,
        |b, v| sasl::decode_sasl_authenticate_response(b, v).is_ok(),
    ),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let pick = usize::from(selector);
    let (min, max, first_flexible, decode) = DECODERS[pick % DECODERS.len()];
    let span = usize::try_from(max - min + 1).unwrap_or(1);
    let version = min + i16::try_from(pick / DECODERS.len() % span).unwrap_or(0);
    let header_version = if version >= first_flexible { 1 } else { 0 };
    if let Ok((_, body)) = split_response_header(Bytes::copy_from_slice(frame), header_version) {
        let _ = decode(body, version);
    }
});
