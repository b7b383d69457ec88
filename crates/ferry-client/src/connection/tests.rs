//! Framing and correlation edge cases against an in-process TCP peer that
//! speaks raw frames. This is not a broker mock: the peer only reads request
//! frames and writes whatever bytes a test needs.

use std::time::Duration;

use bytes::Bytes;
use ferry_wire::WireError;
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Connection, ConnectionConfig};
use crate::error::ClientError;

/// Metadata v4: request header v1, response header v0 (just the correlation id).
const API: ApiKey = ApiKey::Metadata;
const VERSION: i16 = 4;

async fn pair(config: ConnectionConfig) -> (Connection, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let conn = Connection::start(client.unwrap(), &addr.to_string(), &config);
    (conn, server.unwrap().0)
}

#[derive(Debug)]
struct Received {
    api_key: i16,
    version: i16,
    correlation_id: i32,
    client_id: String,
    body: Vec<u8>,
}

/// Reads one request frame. `flexible` = request header v2 (one tagged-field byte).
async fn read_request(peer: &mut TcpStream, flexible: bool) -> Received {
    let size = usize::try_from(peer.read_i32().await.unwrap()).unwrap();
    let mut frame = vec![0; size];
    peer.read_exact(&mut frame).await.unwrap();
    let mut f = &frame[..];
    let api_key = f.read_i16().await.unwrap();
    let version = f.read_i16().await.unwrap();
    let correlation_id = f.read_i32().await.unwrap();
    let len = usize::try_from(f.read_i16().await.unwrap()).unwrap();
    let client_id = String::from_utf8(f[..len].to_vec()).unwrap();
    f = &f[len..];
    if flexible {
        assert_eq!(
            f.read_u8().await.unwrap(),
            0,
            "no tagged fields in the header"
        );
    }
    Received {
        api_key,
        version,
        correlation_id,
        client_id,
        body: f.to_vec(),
    }
}

/// Writes a response frame with header v0.
async fn respond(peer: &mut TcpStream, correlation_id: i32, body: &[u8]) {
    peer.write_i32(i32::try_from(4 + body.len()).unwrap())
        .await
        .unwrap();
    peer.write_i32(correlation_id).await.unwrap();
    peer.write_all(body).await.unwrap();
}

fn chunk(s: &str) -> Vec<Bytes> {
    vec![Bytes::copy_from_slice(s.as_bytes())]
}

#[tokio::test]
async fn pipelined_requests_get_their_own_responses_in_order() {
    let (conn, mut peer) = pair(ConnectionConfig::default()).await;
    let server = async {
        let mut reqs = Vec::new();
        for _ in 0..3 {
            reqs.push(read_request(&mut peer, false).await);
        }
        // All three are in flight before any answer.
        for r in &reqs {
            let mut body = b"re:".to_vec();
            body.extend_from_slice(&r.body);
            respond(&mut peer, r.correlation_id, &body).await;
        }
        reqs
    };
    let (a, b, c, reqs) = tokio::join!(
        conn.send_raw(API, VERSION, chunk("a")),
        conn.send_raw(API, VERSION, chunk("b")),
        conn.send_raw(API, VERSION, chunk("c")),
        server,
    );
    assert_eq!(&a.unwrap()[..], b"re:a");
    assert_eq!(&b.unwrap()[..], b"re:b");
    assert_eq!(&c.unwrap()[..], b"re:c");
    let mut ids: Vec<_> = reqs.iter().map(|r| r.correlation_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "correlation ids are distinct");
    assert!(conn.poisoned().is_none());
}

/// Kafka answers a connection's requests in order; a response for a later
/// request (a correlation id another request waits for) means the stream
/// is garbled, and handing it to that request would be wrong.
#[tokio::test]
async fn a_response_out_of_order_poisons_the_connection() {
    let (conn, mut peer) = pair(ConnectionConfig::default()).await;
    let server = async {
        let first = read_request(&mut peer, false).await;
        let second = read_request(&mut peer, false).await;
        respond(&mut peer, second.correlation_id, b"early").await;
        (first, peer)
    };
    let (a, b, (first, _peer)) = tokio::join!(
        conn.send_raw(API, VERSION, chunk("a")),
        conn.send_raw(API, VERSION, chunk("b")),
        server,
    );
    for result in [a, b] {
        match result {
            Err(ClientError::UnexpectedCorrelationId { expected, .. }) => {
                assert_eq!(expected, Some(first.correlation_id));
            }
            other => panic!("{other:?}"),
        }
    }
    let err = conn.poisoned().unwrap();
    assert!(err.is_retriable() && err.is_protocol_violation(), "{err}");
    assert!(err.to_string().contains("was due"), "{err}");
}

#[tokio::test]
async fn header_version_follows_the_api_version() {
    let config = ConnectionConfig {
        client_id: "mirror-7".into(),
        ..ConnectionConfig::default()
    };
    let (conn, mut peer) = pair(config).await;
    // Fetch v12 is flexible: request header v2, response header v1.
    let server = async {
        let r = read_request(&mut peer, true).await;
        let mut frame = r.correlation_id.to_be_bytes().to_vec();
        frame.push(0); // response header v1: empty tagged fields
        frame.extend_from_slice(b"body");
        peer.write_i32(i32::try_from(frame.len()).unwrap())
            .await
            .unwrap();
        peer.write_all(&frame).await.unwrap();
        r
    };
    let (resp, r) = tokio::join!(conn.send_raw(ApiKey::Fetch, 12, chunk("x")), server);
    assert_eq!(&resp.unwrap()[..], b"body", "response header stripped");
    assert_eq!((r.api_key, r.version), (ApiKey::Fetch as i16, 12));
    assert_eq!(r.client_id, "mirror-7");
    assert_eq!(r.body, b"x");
}

#[tokio::test]
async fn many_chunks_arrive_in_order() {
    let (conn, mut peer) = pair(ConnectionConfig::default()).await;
    // More chunks than one writev takes (64), some empty, some large.
    let chunks: Vec<Bytes> = (0..200u32)
        .map(|i| {
            let len = usize::try_from((i * 37) % 3000).unwrap();
            Bytes::from(vec![u8::try_from(i % 251).unwrap(); len])
        })
        .collect();
    let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    let server = async {
        let r = read_request(&mut peer, false).await;
        respond(&mut peer, r.correlation_id, b"ok").await;
        r
    };
    let (resp, r) = tokio::join!(conn.send_raw(API, VERSION, chunks), server);
    assert_eq!(&resp.unwrap()[..], b"ok");
    assert_eq!(r.body.len(), expected.len());
    assert!(r.body == expected);
}

#[tokio::test]
async fn large_response_is_assembled_from_small_reads() {
    let config = ConnectionConfig {
        read_chunk: 1024,
        ..ConnectionConfig::default()
    };
    let (conn, mut peer) = pair(config).await;
    let body: Vec<u8> = (0..3_000_000u32)
        .map(|i| u8::try_from(i % 253).unwrap())
        .collect();
    let server = async {
        let r = read_request(&mut peer, false).await;
        respond(&mut peer, r.correlation_id, &body).await;
    };
    let (resp, ()) = tokio::join!(conn.send_raw(API, VERSION, chunk("big")), server);
    assert!(resp.unwrap() == body);
}

#[tokio::test]
async fn unknown_correlation_id_poisons_the_connection() {
    let (conn, mut peer) = pair(ConnectionConfig::default()).await;
    let server = async {
        read_request(&mut peer, false).await;
        read_request(&mut peer, false).await;
        respond(&mut peer, 999_999, b"stray").await;
        peer
    };
    let (a, b, _peer) = tokio::join!(
        conn.send_raw(API, VERSION, chunk("a")),
        conn.send_raw(API, VERSION, chunk("b")),
        server
    );
    for result in [a, b] {
        assert!(
            matches!(
                result,
                Err(ClientError::UnexpectedCorrelationId {
                    correlation_id: 999_999,
                    ..
                })
            ),
            "{result:?}"
        );
    }
    // Later calls fail at once with the same error, without touching the socket.
    let later = tokio::time::timeout(
        Duration::from_secs(1),
        conn.send_raw(API, VERSION, chunk("c")),
    )
    .await
    .expect("a poisoned connection fails fast");
    assert!(matches!(
        later,
        Err(ClientError::UnexpectedCorrelationId { .. })
    ));
    assert!(conn.poisoned().is_some());
}

#[tokio::test]
async fn oversized_frame_is_rejected_from_its_prefix() {
    let config = ConnectionConfig {
        max_frame_size: 1024,
        ..ConnectionConfig::default()
    };
    let (conn, mut peer) = pair(config).await;
    let server = async {
        let r = read_request(&mut peer, false).await;
        // Announce 1 GiB, send a few bytes, then wait: the client must not
        // wait for (or reserve) the rest.
        peer.write_i32(1 << 30).await.unwrap();
        peer.write_i32(r.correlation_id).await.unwrap();
        peer
    };
    let (result, _peer) = tokio::join!(conn.send_raw(API, VERSION, chunk("a")), server);
    match result {
        Err(ClientError::Frame {
            source: WireError::FrameTooLarge { size, max: 1024 },
            ..
        }) => assert_eq!(size, 1 << 30),
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert!(conn.poisoned().is_some());
}

#[tokio::test]
async fn frame_too_short_for_a_header_poisons() {
    let (conn, mut peer) = pair(ConnectionConfig::default()).await;
    let server = async {
        read_request(&mut peer, false).await;
        peer.write_all(&[0, 0, 0, 2, 0xAB, 0xCD]).await.unwrap();
        peer
    };
    let (result, _peer) = tokio::join!(conn.send_raw(API, VERSION, chunk("a")), server);
    assert!(
        matches!(
            result,
            Err(ClientError::Frame {
                source: WireError::Truncated { .. },
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn peer_closing_mid_frame_fails_pending_requests() {
    let (conn, mut peer) = pair(ConnectionConfig::default()).await;
    let server = async move {
        let r = read_request(&mut peer, false).await;
        peer.write_i32(100).await.unwrap();
        peer.write_i32(r.correlation_id).await.unwrap();
        peer.write_all(&[1, 2, 3]).await.unwrap();
        drop(peer);
    };
    let (result, ()) = tokio::join!(conn.send_raw(API, VERSION, chunk("a")), server);
    assert!(
        matches!(
            result,
            Err(ClientError::Closed {
                mid_frame: true,
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn peer_closing_between_frames_fails_pending_requests() {
    let (conn, mut peer) = pair(ConnectionConfig::default()).await;
    let server = async move {
        read_request(&mut peer, false).await;
        drop(peer);
    };
    let (result, ()) = tokio::join!(conn.send_raw(API, VERSION, chunk("a")), server);
    assert!(
        matches!(
            result,
            Err(ClientError::Closed {
                mid_frame: false,
                ..
            })
        ),
        "{result:?}"
    );
    let err = conn.send_raw(API, VERSION, chunk("b")).await.unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
}

#[tokio::test]
async fn request_timeout_fails_the_request_and_poisons() {
    let config = ConnectionConfig {
        request_timeout: Duration::from_millis(100),
        ..ConnectionConfig::default()
    };
    let (conn, mut peer) = pair(config).await;
    let server = async {
        read_request(&mut peer, false).await;
        peer // never answers
    };
    let (result, _peer) = tokio::join!(conn.send_raw(API, VERSION, chunk("a")), server);
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                api: ApiKey::Metadata,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert!(matches!(conn.poisoned(), Some(ClientError::Timeout { .. })));
}

/// A caller that gives up mid-write must not leave half a frame behind: the
/// writer task owns the socket and finishes the frame; the late response
/// is discarded and the connection stays healthy.
#[tokio::test]
async fn dropped_caller_never_leaves_a_half_written_frame() {
    let (conn, mut peer) = pair(ConnectionConfig::default()).await;
    // Far more than the socket buffers hold, so the write is still in
    // progress when the caller gives up (the peer is not reading yet).
    let big = Bytes::from(vec![7u8; 16 * 1024 * 1024]);
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        conn.send_raw(API, VERSION, vec![big.clone()]),
    )
    .await;
    assert!(
        gave_up.is_err(),
        "the first request should still be in flight"
    );

    let server = async {
        let a = read_request(&mut peer, false).await;
        let b = read_request(&mut peer, false).await;
        respond(&mut peer, a.correlation_id, b"late").await;
        respond(&mut peer, b.correlation_id, b"for-b").await;
        (a, b)
    };
    let (resp, (a, b)) = tokio::join!(conn.send_raw(API, VERSION, chunk("b")), server);
    assert_eq!(
        a.body.len(),
        big.len(),
        "the abandoned frame was written whole"
    );
    assert_eq!(b.body, b"b");
    assert_eq!(&resp.unwrap()[..], b"for-b");
    assert!(conn.poisoned().is_none());
}

/// A caller that gives up before its request reaches the writer costs nothing:
/// the request is never written.
#[tokio::test]
async fn request_abandoned_before_writing_is_skipped() {
    let config = ConnectionConfig {
        max_queued_requests: 1,
        ..ConnectionConfig::default()
    };
    let (conn, mut peer) = pair(config).await;
    // Keep the writer busy with a big frame the peer is not reading yet.
    let big = Bytes::from(vec![1u8; 16 * 1024 * 1024]);
    let first = conn.send_raw(API, VERSION, vec![big]);
    let abandoned = conn.send_raw(API, VERSION, chunk("never"));
    let third = conn.send_raw(API, VERSION, chunk("third"));
    tokio::pin!(first);
    tokio::pin!(third);
    // Start the first request and queue the second, then drop the second.
    let _ = tokio::time::timeout(Duration::from_millis(50), &mut first).await;
    let _ = tokio::time::timeout(Duration::from_millis(50), abandoned).await;
    let server = async {
        let a = read_request(&mut peer, false).await;
        let b = read_request(&mut peer, false).await;
        respond(&mut peer, a.correlation_id, b"1").await;
        respond(&mut peer, b.correlation_id, b"3").await;
        b
    };
    let (r1, r3, b) = tokio::join!(first, third, server);
    assert_eq!(&r1.unwrap()[..], b"1");
    assert_eq!(&r3.unwrap()[..], b"3");
    assert_eq!(b.body, b"third", "the abandoned request was never written");
}

/// CreatePartitions v1: not flexible, so request header v1 and response header v0.
fn create_partitions_request() -> kafka_protocol::messages::CreatePartitionsRequest {
    kafka_protocol::messages::CreatePartitionsRequest::default().with_timeout_ms(1000)
}

#[tokio::test]
async fn send_reads_the_answer_with_the_bounded_decoder() {
    let (conn, mut peer) = pair(ConnectionConfig::default()).await;
    let server = async {
        let r = read_request(&mut peer, false).await;
        assert_eq!((r.api_key, r.version), (ApiKey::CreatePartitions as i16, 1));
        let mut body = 0i32.to_be_bytes().to_vec(); // throttle
        body.extend_from_slice(&1i32.to_be_bytes()); // one result
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(b"t");
        body.extend_from_slice(&37i16.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes()); // null message
        respond(&mut peer, r.correlation_id, &body).await;
        // The next answer announces 2^31 - 1 results in a few bytes.
        let r = read_request(&mut peer, false).await;
        let mut body = 0i32.to_be_bytes().to_vec();
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        body.extend_from_slice(&[0; 8]);
        respond(&mut peer, r.correlation_id, &body).await;
    };
    let client = async {
        let ok = conn.send(&create_partitions_request(), 1).await.unwrap();
        let huge = conn.send(&create_partitions_request(), 1).await;
        (ok, huge)
    };
    let ((ok, huge), ()) = tokio::join!(client, server);
    assert_eq!(ok.results.len(), 1);
    assert_eq!(ok.results[0].name, "t");
    assert_eq!(ok.results[0].error_code, 37);
    assert!(
        matches!(
            huge,
            Err(ClientError::Decode {
                api: ApiKey::CreatePartitions,
                version: 1,
                ..
            })
        ),
        "{huge:?}"
    );
    // A body that does not decode as the version asked for means the broker
    // is not answering what ferry asked: the connection is dropped (a new
    // one negotiates versions again) and the error is retriable.
    assert!(matches!(conn.poisoned(), Some(ClientError::Decode { .. })));
    assert!(huge.unwrap_err().is_retriable());
}

#[tokio::test]
async fn send_refuses_a_version_it_cannot_decode_before_sending() {
    let (conn, mut peer) = pair(ConnectionConfig::default()).await;
    // CreatePartitions v4 does not exist (yet): nothing could read its answer.
    let err = conn
        .send(&create_partitions_request(), 4)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Encode {
                api: ApiKey::CreatePartitions,
                version: 4,
                ..
            }
        ),
        "{err}"
    );
    // Refused by send's own check, before kafka-protocol's encoder is asked.
    assert!(err.to_string().contains("decodes v0..=v3"), "{err}");
    // Nothing went out: the first request the peer sees is the next one.
    let server = async {
        let r = read_request(&mut peer, false).await;
        assert_eq!(r.version, 1);
        respond(&mut peer, r.correlation_id, &[0; 8]).await;
    };
    let request = create_partitions_request();
    let (answer, ()) = tokio::join!(conn.send(&request, 1), server);
    assert!(answer.unwrap().results.is_empty());
}

#[test]
fn addresses_are_checked_before_connecting() {
    use super::check_address;
    assert!(check_address("127.0.0.1:9092").is_ok());
    assert!(check_address("[::1]:9092").is_ok());
    assert!(check_address("kafka-0.kafka:9092").is_ok());
    for bad in [
        "localhost",
        ":9092",
        "host:",
        "host:0",
        "host:70000",
        "host:x",
    ] {
        let err = check_address(bad).unwrap_err();
        assert!(
            matches!(err, ClientError::InvalidAddress { .. }),
            "{bad}: {err:?}"
        );
    }
}
