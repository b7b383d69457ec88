//! Ways to break one response frame: bad input from a broker, for tests of
//! how a client copes. Each is armed for the next response to a request of
//! one API key ([`FaultProxy::mangle_response`](super::FaultProxy::mangle_response)).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceResponse, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// How to break a response frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mangle {
    /// Sends the size prefix and the first half of the frame, then closes
    /// the connection (a broker dying mid-write).
    Truncate,
    /// Replaces the size prefix with `i32::MAX` (2 GiB): a client that
    /// believed it would try to allocate or wait for 2 GiB.
    Oversize,
    /// Adds one to the correlation id: with requests pipelined, that is the
    /// id of the next request still waiting for its answer.
    WrongCorrelationId,
    /// Re-encodes the response body (and header) in this other version of
    /// its API, contents unchanged: a broker answering a version the client
    /// did not ask for. Fetch and Produce only; fields the other version
    /// cannot carry (topic ids before Fetch v13 / Produce v13) are dropped.
    AnswerAsVersion(i16),
}

/// What to put on the wire instead of `frame` (size prefix included), and
/// whether to close the connection after it; `None` when `mangle` cannot be
/// applied to this frame (then it is forwarded unchanged).
pub(super) fn apply(
    mangle: Mangle,
    frame: &[u8],
    api_key: i16,
    version: i16,
) -> Option<(Vec<u8>, bool)> {
    let body = frame.get(4..)?;
    match mangle {
        Mangle::Truncate => Some((frame[..4 + body.len() / 2].to_vec(), true)),
        Mangle::Oversize => {
            let mut out = frame.to_vec();
            out[..4].copy_from_slice(&i32::MAX.to_be_bytes());
            Some((out, false))
        }
        Mangle::WrongCorrelationId => {
            let id = i32::from_be_bytes(body.get(..4)?.try_into().ok()?);
            let mut out = frame.to_vec();
            out[4..8].copy_from_slice(&id.wrapping_add(1).to_be_bytes());
            Some((out, false))
        }
        Mangle::AnswerAsVersion(to) => {
            let body = transcode(body, api_key, version, to)?;
            let mut out = i32::try_from(body.len()).ok()?.to_be_bytes().to_vec();
            out.extend_from_slice(&body);
            Some((out, false))
        }
    }
}

/// The response `body` (header included) of `api` version `from`,
/// re-encoded as version `to`.
fn transcode(body: &[u8], api: i16, from: i16, to: i16) -> Option<Vec<u8>> {
    let key = ApiKey::try_from(api).ok()?;
    let mut buf = Bytes::copy_from_slice(body);
    let header = ResponseHeader::decode(&mut buf, key.response_header_version(from)).ok()?;
    let mut out = BytesMut::new();
    header
        .encode(&mut out, key.response_header_version(to))
        .ok()?;
    match key {
        ApiKey::Fetch => {
            let mut r = FetchResponse::decode(&mut buf, from).ok()?;
            if to < 13 {
                for t in &mut r.responses {
                    t.topic_id = Default::default();
                }
            }
            r.encode(&mut out, to).ok()?;
        }
        ApiKey::Produce => {
            let mut r = ProduceResponse::decode(&mut buf, from).ok()?;
            if to < 13 {
                for t in &mut r.responses {
                    t.topic_id = Default::default();
                }
            }
            r.encode(&mut out, to).ok()?;
        }
        _ => return None,
    }
    Some(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = i32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn truncate_keeps_the_prefix_and_half_the_body() {
        let f = frame(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let (out, close) = apply(Mangle::Truncate, &f, 1, 16).unwrap();
        assert_eq!(out, [0, 0, 0, 8, 1, 2, 3, 4]);
        assert!(close);
    }

    #[test]
    fn oversize_and_correlation_id() {
        let f = frame(&[0, 0, 0, 7, 9]);
        let (out, close) = apply(Mangle::Oversize, &f, 1, 16).unwrap();
        assert_eq!(out[..4], i32::MAX.to_be_bytes());
        assert!(!close);
        let (out, _) = apply(Mangle::WrongCorrelationId, &f, 1, 16).unwrap();
        assert_eq!(out, [0, 0, 0, 5, 0, 0, 0, 8, 9]);
    }

    #[test]
    fn a_produce_response_is_re_encoded_in_another_version() {
        use kafka_protocol::messages::produce_response::{
            PartitionProduceResponse, TopicProduceResponse,
        };
        let response = ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default()
                .with_name(kafka_protocol::messages::TopicName("t".into()))
                .with_partition_responses(vec![
                    PartitionProduceResponse::default()
                        .with_index(0)
                        .with_base_offset(42),
                ]),
        ]);
        let mut body = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(7)
            .encode(&mut body, 1)
            .unwrap();
        response.encode(&mut body, 11).unwrap();
        let (out, _) = apply(Mangle::AnswerAsVersion(8), &frame(&body), 0, 11).unwrap();
        let mut rest = Bytes::copy_from_slice(&out[4..]);
        let header = ResponseHeader::decode(&mut rest, 0).unwrap();
        assert_eq!(header.correlation_id, 7);
        let v8 = ProduceResponse::decode(&mut rest, 8).unwrap();
        assert_eq!(v8.responses[0].partition_responses[0].base_offset, 42);
        assert!(
            ProduceResponse::decode(&mut Bytes::copy_from_slice(&out[8..]), 11).is_err(),
            "not readable as the version asked for"
        );
    }
}
