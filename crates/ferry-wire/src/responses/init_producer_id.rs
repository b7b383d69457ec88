//! A hand-written InitProducerId response decoder (versions 0-5). It has no
//! arrays, so nothing to bound; it is ferry's own so that no response is
//! decoded by kafka-protocol, whose decoders allocate by wire counts.

use bytes::Bytes;

use crate::Result;
use crate::schema::{ResponseReader, check_version};

pub const MIN_INIT_PRODUCER_ID_RESPONSE_VERSION: i16 = 0;
pub const MAX_INIT_PRODUCER_ID_RESPONSE_VERSION: i16 = 5;
const FIRST_FLEXIBLE: i16 = 2;

/// One InitProducerId response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InitProducerIdResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    /// -1 on error.
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Decodes an InitProducerId response body (everything after the response header).
pub fn decode_init_producer_id_response(
    body: Bytes,
    version: i16,
) -> Result<InitProducerIdResponse> {
    check_version(
        "init producer id response version",
        version,
        MIN_INIT_PRODUCER_ID_RESPONSE_VERSION,
        MAX_INIT_PRODUCER_ID_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= FIRST_FLEXIBLE);
    let throttle_time_ms = d.r.i32("throttle time")?;
    let error_code = d.r.i16("error code")?;
    let producer_id = d.r.i64("producer id")?;
    let producer_epoch = d.r.i16("producer epoch")?;
    d.tagged_fields("init producer id response", |_, _, _| Ok(()))?;
    d.finish("init producer id response")?;
    Ok(InitProducerIdResponse {
        throttle_time_ms,
        error_code,
        producer_id,
        producer_epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::testing::{every_truncation_fails, refuses_versions_outside};
    use bytes::BytesMut;
    use kafka_protocol::messages::ProducerId;
    use kafka_protocol::messages::init_producer_id_response as kp;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn decodes_what_kafka_protocol_encodes() {
        for version in MIN_INIT_PRODUCER_ID_RESPONSE_VERSION..=MAX_INIT_PRODUCER_ID_RESPONSE_VERSION
        {
            for (error_code, producer_id, producer_epoch) in [(0, 4242, 0), (15, -1, -1)] {
                let theirs = kp::InitProducerIdResponse::default()
                    .with_throttle_time_ms(3)
                    .with_error_code(error_code)
                    .with_producer_id(ProducerId(producer_id))
                    .with_producer_epoch(producer_epoch);
                let mut b = BytesMut::new();
                theirs.encode(&mut b, version).unwrap();
                let wire = b.freeze();
                let ours = decode_init_producer_id_response(wire.clone(), version).unwrap();
                assert_eq!(
                    ours,
                    InitProducerIdResponse {
                        throttle_time_ms: 3,
                        error_code,
                        producer_id,
                        producer_epoch,
                    }
                );
                assert!(every_truncation_fails(&wire, |b| {
                    decode_init_producer_id_response(b, version)
                }));
            }
        }
    }

    #[test]
    fn unknown_tags_are_skipped_and_trailing_bytes_refused() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&7i64.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&[1, 9, 2, 0xab, 0xcd]); // one tag (9) of 2 bytes
        let body = b.freeze();
        let ours = decode_init_producer_id_response(body.clone(), 4).unwrap();
        assert_eq!((ours.producer_id, ours.producer_epoch), (7, 1));
        let mut longer = BytesMut::from(&body[..]);
        longer.extend_from_slice(&[0]);
        assert!(decode_init_producer_id_response(longer.freeze(), 4).is_err());
        // A tag announcing more bytes than are left.
        let mut lying = BytesMut::from(&body[..body.len() - 3]);
        lying.extend_from_slice(&[0x7f, 0xab]);
        assert!(decode_init_producer_id_response(lying.freeze(), 4).is_err());
    }

    refuses_versions_outside!(
        decode_init_producer_id_response,
        MIN_INIT_PRODUCER_ID_RESPONSE_VERSION,
        MAX_INIT_PRODUCER_ID_RESPONSE_VERSION
    );
}
