//! Response headers: the correlation id, and from header v1 on (flexible
//! responses) a tagged-field section, skipped here with its sizes bounded
//! by the bytes present. ApiVersions responses always use header v0, even
//! for a flexible body, so the caller picks the header version per API.

use bytes::Bytes;

use crate::schema::ResponseReader;
use crate::{Result, WireError};

/// Splits a response frame (without its size prefix) into its correlation
/// id and its body, the bytes after the header.
pub fn split_response_header(frame: Bytes, header_version: i16) -> Result<(i32, Bytes)> {
    if !(0..=1).contains(&header_version) {
        return Err(WireError::InvalidField {
            what: "response header version",
            value: i64::from(header_version),
        });
    }
    let mut d = ResponseReader::new(frame, header_version >= 1);
    let correlation_id = d.r.i32("correlation id")?;
    d.tagged_fields("response header", |_, _, _| Ok(()))?;
    let body = d.r.bytes(d.r.remaining(), "response body")?;
    Ok((correlation_id, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::ResponseHeader;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn splits_what_kafka_protocol_encodes() {
        for header_version in [0i16, 1] {
            let mut header = ResponseHeader::default().with_correlation_id(77);
            if header_version >= 1 {
                header
                    .unknown_tagged_fields
                    .insert(5, Bytes::from_static(b"abc"));
            }
            let mut b = BytesMut::new();
            header.encode(&mut b, header_version).unwrap();
            let header_len = b.len();
            b.extend_from_slice(b"body");
            let frame = b.freeze();
            let (id, body) = split_response_header(frame.clone(), header_version).unwrap();
            assert_eq!((id, &body[..]), (77, &b"body"[..]));
            // The body is a slice of the frame, not a copy.
            assert_eq!(body.as_ptr(), frame[header_len..].as_ptr());
            for cut in 0..header_len {
                assert!(split_response_header(frame.slice(..cut), header_version).is_err());
            }
        }
    }

    #[test]
    fn a_tag_larger_than_the_frame_is_refused() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&[1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(
            split_response_header(b.freeze(), 1),
            Err(WireError::Truncated { .. })
        ));
        assert!(split_response_header(Bytes::new(), 2).is_err());
    }
}
