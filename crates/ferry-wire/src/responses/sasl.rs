//! Hand-written, bounded SaslHandshake (versions 0-1) and SaslAuthenticate
//! (versions 0-2) response decoders, for the same reason as
//! [`crate::fetch`]: kafka-protocol allocates by the counts and lengths
//! read off the wire, and these answers come before the broker has even
//! accepted who we are.

use bytes::Bytes;

use crate::Result;
use crate::schema::{ResponseReader, check_version};

pub const MIN_SASL_HANDSHAKE_RESPONSE_VERSION: i16 = 0;
pub const MAX_SASL_HANDSHAKE_RESPONSE_VERSION: i16 = 1;
pub const MIN_SASL_AUTHENTICATE_RESPONSE_VERSION: i16 = 0;
pub const MAX_SASL_AUTHENTICATE_RESPONSE_VERSION: i16 = 2;
const SASL_AUTHENTICATE_FIRST_FLEXIBLE: i16 = 2;

/// One SaslHandshake response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaslHandshakeResponse {
    pub error_code: i16,
    /// The mechanisms the listener enables.
    pub mechanisms: Vec<String>,
}

/// One SaslAuthenticate response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaslAuthenticateResponse {
    pub error_code: i16,
    pub error_message: Option<String>,
    /// The mechanism's next server message.
    pub auth_bytes: Bytes,
    /// 0 when the broker sets no limit (or before version 1).
    pub session_lifetime_ms: i64,
}

/// Decodes a SaslHandshake response body (everything after the header).
pub fn decode_sasl_handshake_response(body: Bytes, version: i16) -> Result<SaslHandshakeResponse> {
    check_version(
        "sasl handshake response version",
        version,
        MIN_SASL_HANDSHAKE_RESPONSE_VERSION,
        MAX_SASL_HANDSHAKE_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, false);
    let error_code = d.r.i16("error code")?;
    // Smallest mechanism: its 2-byte length.
    let n = d.array_len("mechanisms", 2)?.unwrap_or(0);
    let mut mechanisms = Vec::with_capacity(n);
    for _ in 0..n {
        mechanisms.push(d.required_string("mechanism")?);
    }
    d.finish("sasl handshake response")?;
    Ok(SaslHandshakeResponse {
        error_code,
        mechanisms,
    })
}

/// Decodes a SaslAuthenticate response body (everything after the header).
pub fn decode_sasl_authenticate_response(
    body: Bytes,
    version: i16,
) -> Result<SaslAuthenticateResponse> {
    check_version(
        "sasl authenticate response version",
        version,
        MIN_SASL_AUTHENTICATE_RESPONSE_VERSION,
        MAX_SASL_AUTHENTICATE_RESPONSE_VERSION,
    )?;
    let mut d = ResponseReader::new(body, version >= SASL_AUTHENTICATE_FIRST_FLEXIBLE);
    let error_code = d.r.i16("error code")?;
    let error_message = d.string("error message")?;
    let len = d.bytes_len("auth bytes")?.unwrap_or(0);
    let auth_bytes = d.r.bytes(len, "auth bytes")?;
    let session_lifetime_ms = if version >= 1 {
        d.r.i64("session lifetime")?
    } else {
        0
    };
    if d.flexible {
        d.tagged_fields("sasl authenticate response", |_, _, _| Ok(()))?;
    }
    d.finish("sasl authenticate response")?;
    Ok(SaslAuthenticateResponse {
        error_code,
        error_message,
        auth_bytes,
        session_lifetime_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireError;
    use crate::responses::testing::every_truncation_fails;
    use bytes::BytesMut;
    use kafka_protocol::messages::{
        SaslAuthenticateResponse as KpAuthenticate, SaslHandshakeResponse as KpHandshake,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn handshake_decodes_what_kafka_protocol_encodes(
            version in MIN_SASL_HANDSHAKE_RESPONSE_VERSION..=MAX_SASL_HANDSHAKE_RESPONSE_VERSION,
            mechanisms in 0usize..4,
            error in prop_oneof![Just(0i16), Just(33i16)],
        ) {
            let names = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
            let theirs = KpHandshake::default()
                .with_error_code(error)
                .with_mechanisms(names.iter().cycle().take(mechanisms).map(|m| StrBytes::from_static_str(m)).collect());
            let mut b = BytesMut::new();
            theirs.encode(&mut b, version).unwrap();
            let wire = b.freeze();
            let ours = decode_sasl_handshake_response(wire.clone(), version).unwrap();
            prop_assert_eq!(ours.error_code, error);
            let want: Vec<String> = theirs.mechanisms.iter().map(ToString::to_string).collect();
            prop_assert_eq!(ours.mechanisms, want);
            prop_assert!(every_truncation_fails(&wire, |b| decode_sasl_handshake_response(b, version)));
        }

        #[test]
        fn authenticate_decodes_what_kafka_protocol_encodes(
            version in MIN_SASL_AUTHENTICATE_RESPONSE_VERSION..=MAX_SASL_AUTHENTICATE_RESPONSE_VERSION,
            auth in proptest::collection::vec(any::<u8>(), 0..64),
            failed in any::<bool>(),
            lifetime in 0i64..1_000_000,
        ) {
            let theirs = KpAuthenticate::default()
                .with_error_code(if failed { 58 } else { 0 })
                .with_error_message(failed.then(|| StrBytes::from_static_str("Authentication failed")))
                .with_auth_bytes(Bytes::from(auth.clone()))
                .with_session_lifetime_ms(if version >= 1 { lifetime } else { 0 });
            let mut b = BytesMut::new();
            theirs.encode(&mut b, version).unwrap();
            let wire = b.freeze();
            let ours = decode_sasl_authenticate_response(wire.clone(), version).unwrap();
            prop_assert_eq!(ours.error_code, theirs.error_code);
            prop_assert_eq!(ours.error_message.as_deref(), theirs.error_message.as_deref());
            prop_assert_eq!(&ours.auth_bytes[..], &auth[..]);
            prop_assert_eq!(ours.session_lifetime_ms, theirs.session_lifetime_ms);
            prop_assert!(every_truncation_fails(&wire, |b| decode_sasl_authenticate_response(b, version)));
        }
    }

    #[test]
    fn huge_counts_and_lengths_are_rejected_before_allocating() {
        let mut handshake = BytesMut::new();
        handshake.extend_from_slice(&0i16.to_be_bytes());
        handshake.extend_from_slice(&i32::MAX.to_be_bytes());
        handshake.extend_from_slice(&[0u8; 8]);
        assert!(matches!(
            decode_sasl_handshake_response(handshake.freeze(), 1),
            Err(WireError::Malformed {
                what: "mechanisms",
                ..
            })
        ));
        let mut auth = BytesMut::new();
        auth.extend_from_slice(&0i16.to_be_bytes());
        auth.extend_from_slice(&(-1i16).to_be_bytes());
        auth.extend_from_slice(&i32::MAX.to_be_bytes());
        auth.extend_from_slice(&[0u8; 8]);
        assert!(decode_sasl_authenticate_response(auth.freeze(), 1).is_err());
    }
}
