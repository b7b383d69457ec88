//! A fake broker that speaks only what authentication needs (ApiVersions,
//! SaslHandshake, SaslAuthenticate) and records what the client sent, so a
//! mechanism that cannot run against a real broker here (AWS_MSK_IAM) is
//! checked byte for byte through ferry's real connection code.

use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the client sent.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Mechanisms named in SaslHandshake requests, in order.
    pub mechanisms: Vec<String>,
    /// The bytes of every SaslAuthenticate request, in order.
    pub auth_bytes: Vec<Bytes>,
}

/// The peer; it stops when dropped.
#[derive(Debug)]
pub struct SaslPeer {
    /// `127.0.0.1:<port>`.
    pub address: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl SaslPeer {
    /// Starts a peer that accepts `mechanism`, answers every
    /// SaslAuthenticate with `answer` and grants sessions of
    /// `session_lifetime_ms` (0: unlimited).
    ///
    /// # Panics
    /// If it cannot bind a port.
    pub async fn start(mechanism: &str, answer: &'static [u8], session_lifetime_ms: i64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (recorded, mechanism) = (Arc::clone(&seen), mechanism.to_owned());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (seen, mechanism) = (Arc::clone(&recorded), mechanism.clone());
                tokio::spawn(serve(socket, seen, mechanism, answer, session_lifetime_ms));
            }
        });
        Self {
            address,
            seen,
            task,
        }
    }

    /// What the clients sent so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for SaslPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut socket: TcpStream,
    seen: Arc<Mutex<Seen>>,
    mechanism: String,
    answer: &'static [u8],
    lifetime_ms: i64,
) {
    loop {
        let Ok(size) = socket.read_i32().await else {
            return;
        };
        let Ok(size) = usize::try_from(size) else {
            return;
        };
        if size > 1 << 20 {
            return;
        }
        let mut frame = vec![0u8; size];
        if socket.read_exact(&mut frame).await.is_err() {
            return;
        }
        let mut buf = Bytes::from(frame);
        let (Some(key), Some(version)) = (
            buf.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]])),
            buf.get(2..4).map(|b| i16::from_be_bytes([b[0], b[1]])),
        ) else {
            return;
        };
        let Ok(api) = ApiKey::try_from(key) else {
            return;
        };
        let Ok(header) = RequestHeader::decode(&mut buf, api.request_header_version(version))
        else {
            return;
        };
        let mut body = BytesMut::new();
        let encoded = match api {
            ApiKey::ApiVersions => {
                let _ = ApiVersionsRequest::decode(&mut buf, version);
                let keys = [
                    (ApiKey::ApiVersions, 0, 3),
                    (ApiKey::SaslHandshake, 0, 1),
                    (ApiKey::SaslAuthenticate, 0, 2),
                    (ApiKey::Metadata, 0, 12),
                ];
                ApiVersionsResponse::default()
                    .with_api_keys(
                        keys.iter()
                            .map(|(k, min, max)| {
                                ApiVersion::default()
                                    .with_api_key(*k as i16)
                                    .with_min_version(*min)
                                    .with_max_version(*max)
                            })
                            .collect(),
                    )
                    .encode(&mut body, version)
            }
            ApiKey::SaslHandshake => {
                let asked = SaslHandshakeRequest::decode(&mut buf, version)
                    .map(|r| r.mechanism.to_string())
                    .unwrap_or_default();
                let ok = asked == mechanism;
                if let Ok(mut s) = seen.lock() {
                    s.mechanisms.push(asked);
                }
                SaslHandshakeResponse::default()
                    .with_error_code(if ok { 0 } else { 33 })
                    .with_mechanisms(vec![StrBytes::from_string(mechanism.clone())])
                    .encode(&mut body, version)
            }
            ApiKey::SaslAuthenticate => {
                let auth = SaslAuthenticateRequest::decode(&mut buf, version)
                    .map(|r| r.auth_bytes)
                    .unwrap_or_default();
                if let Ok(mut s) = seen.lock() {
                    s.auth_bytes.push(auth);
                }
                SaslAuthenticateResponse::default()
                    .with_auth_bytes(Bytes::from_static(answer))
                    .with_session_lifetime_ms(lifetime_ms)
                    .encode(&mut body, version)
            }
            _ => return,
        };
        if encoded.is_err() {
            return;
        }
        let mut head = BytesMut::new();
        if ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut head, api.response_header_version(version))
            .is_err()
        {
            return;
        }
        let mut out = BytesMut::with_capacity(4 + head.len() + body.len());
        out.put_i32(i32::try_from(head.len() + body.len()).unwrap_or(i32::MAX));
        out.put(head);
        out.put(body);
        if socket.write_all(&out).await.is_err() {
            return;
        }
    }
}
