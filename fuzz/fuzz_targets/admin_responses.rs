//! A response frame for one of the admin calls (ListOffsets,
//! DescribeConfigs, CreateTopics, CreatePartitions, IncrementalAlterConfigs,
//! InitProducerId) through ferry's bounded header splitter and body decoder.
//! The first byte picks the decoder and the version.
#![no_main]

use bytes::Bytes;
use ferry_wire::alter_configs_response as alter;
use ferry_wire::create_partitions_response as partitions;
use ferry_wire::create_topics_response as topics;
use ferry_wire::describe_configs_response as configs;
use ferry_wire::init_producer_id_response as producer_id;
use ferry_wire::list_offsets_response as offsets;
use ferry_wire::response_header::split_response_header;
use libfuzzer_sys::fuzz_target;

/// Each decoder: its version range, its first flexible version (which
/// moves the header to v1) and a decode that drops the result.
type Decode = fn(Bytes, i16) -> bool;
const DECODERS: [(i16, i16, i16, Decode); 6] = [
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
