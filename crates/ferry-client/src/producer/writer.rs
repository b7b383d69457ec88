//! One broker connection's writer: queues the driver's Produce requests on
//! the connection strictly in the order they were built, and reports the
//! answers in that same order.
//!
//! Order matters twice. A broker reads a connection's requests one at a
//! time and answers them in that order, and an idempotent partition's
//! sequence numbers must reach it in the order they were assigned; tasks
//! that each send one request would race for the socket (tokio polls a
//! freshly spawned task first). And answers handled in request order keep
//! the driver's reasoning simple: an out-of-order error for a batch always
//! arrives after the answer for the batch before it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use ferry_wire::responses::produce::{ProduceResponse, decode_produce_response};
use kafka_protocol::messages::ApiKey;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::driver::Event;
use crate::Connection;
use crate::error::{ClientError, Result};

/// A request on its way to a broker's writer task.
#[derive(Debug)]
pub(super) struct Outbound {
    pub request: u64,
    pub version: i16,
    pub chunks: Vec<Bytes>,
}

/// Queues one broker's requests on its connection strictly in the order the
/// driver built them (a broker answers in the order it reads, and sequence
/// numbers must arrive in order), and reports the answers in that same
/// order: every request gets exactly one [`Event::Response`]. Ends when the
/// driver drops the sender (connection replaced, producer stopped) and every
/// queued request is answered.
pub(super) async fn write_requests(
    conn: Connection,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
    events: mpsc::UnboundedSender<Event>,
    timeout: Duration,
) {
    let mut waiting: VecDeque<Waiting> = VecDeque::new();
    let mut open = true;
    while open || !waiting.is_empty() {
        tokio::select! {
            biased;
            Some((request, result)) = oldest_answer(&mut waiting, &conn, timeout) => {
                waiting.pop_front();
                let _ = events.send(Event::Response { request, result });
            }
            next = outbound.recv(), if open => {
                let Some(Outbound { request, version, chunks }) = next else {
                    open = false;
                    continue;
                };
                let deadline = Instant::now() + timeout;
                let queued = tokio::time::timeout_at(
                    deadline,
                    conn.queue_raw(ApiKey::Produce, version, chunks),
                )
                .await;
                let response: Result<Answer> = match queued {
                    Ok(Ok(response)) => Ok(Box::pin(response)),
                    Ok(Err(err)) => Err(err),
                    Err(_) => Err(timed_out(&conn, timeout)),
                };
                waiting.push_back(Waiting { request, version, deadline, response });
            }
        }
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Bytes>> + Send>>;

/// A queued request waiting for its answer (or the error that kept it from
/// being queued, reported in its turn).
struct Waiting {
    request: u64,
    version: i16,
    deadline: Instant,
    response: Result<Answer>,
}

/// The oldest waiting request's decoded answer; `None` if nothing waits.
/// Cancel-safe: the answer future stays in `waiting` until it completes.
async fn oldest_answer(
    waiting: &mut VecDeque<Waiting>,
    conn: &Connection,
    timeout: Duration,
) -> Option<(u64, Result<ProduceResponse>)> {
    let oldest = waiting.front_mut()?;
    let response = match &mut oldest.response {
        Err(err) => return Some((oldest.request, Err(err.clone()))),
        Ok(response) => response,
    };
    let result = match tokio::time::timeout_at(oldest.deadline, response).await {
        Ok(Ok(body)) => {
            decode_produce_response(body, oldest.version).map_err(|e| {
                // Out of step with the broker: the answers behind this one
                // cannot be trusted either.
                conn.reject(ClientError::Decode {
                    broker: conn.broker().to_owned(),
                    api: ApiKey::Produce,
                    version: oldest.version,
                    detail: e.to_string(),
                })
            })
        }
        Ok(Err(err)) => Err(err),
        Err(_) => Err(timed_out(conn, timeout)),
    };
    Some((oldest.request, result))
}

fn timed_out(conn: &Connection, after: Duration) -> ClientError {
    ClientError::Timeout {
        broker: conn.broker().to_owned(),
        api: ApiKey::Produce,
        after,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::ConnectionConfig;

    /// A fake broker that reads Produce v3 requests whose body is a 4-byte
    /// index and answers each (an empty Produce v3 response) in turn,
    /// recording the indexes in the order they arrived.
    async fn fake_broker(listener: TcpListener, requests: usize) -> Vec<u32> {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut seen = Vec::with_capacity(requests);
        for _ in 0..requests {
            let size = socket.read_u32().await.unwrap();
            let mut frame = vec![0u8; usize::try_from(size).unwrap()];
            socket.read_exact(&mut frame).await.unwrap();
            // api key, version, then the correlation id; the index is last.
            let correlation = <[u8; 4]>::try_from(&frame[4..8]).unwrap();
            let index = <[u8; 4]>::try_from(&frame[frame.len() - 4..]).unwrap();
            seen.push(u32::from_be_bytes(index));
            let mut reply = Vec::new();
            reply.extend_from_slice(&12u32.to_be_bytes());
            reply.extend_from_slice(&correlation);
            reply.extend_from_slice(&0i32.to_be_bytes()); // no topics
            reply.extend_from_slice(&0i32.to_be_bytes()); // throttle
            socket.write_all(&reply).await.unwrap();
        }
        seen
    }

    /// Requests handed to the writer reach the broker in that order and
    /// their answers come back in that order, however the runtime schedules
    /// tasks (one task per request did not: the broker then saw sequence
    /// numbers out of order).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_and_answers_keep_their_order() {
        const REQUESTS: u32 = 200;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let broker = tokio::spawn(fake_broker(listener, REQUESTS as usize));
        let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let conn = Connection::start(stream, &address, &ConnectionConfig::default());
        let (outbound_tx, outbound) = mpsc::unbounded_channel();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_requests(
            conn,
            outbound,
            events_tx,
            Duration::from_secs(10),
        ));
        for i in 0..REQUESTS {
            let body = Bytes::copy_from_slice(&i.to_be_bytes());
            outbound_tx
                .send(Outbound {
                    request: u64::from(i),
                    version: 3,
                    chunks: vec![body],
                })
                .unwrap();
        }
        drop(outbound_tx);
        let mut answered = Vec::new();
        while let Some(event) = events.recv().await {
            match event {
                Event::Response { request, result } => {
                    result.unwrap();
                    answered.push(request);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        writer.await.unwrap();
        let expected: Vec<u32> = (0..REQUESTS).collect();
        assert_eq!(broker.await.unwrap(), expected, "order on the wire");
        let expected: Vec<u64> = (0..u64::from(REQUESTS)).collect();
        assert_eq!(answered, expected, "order of the answers");
    }
}
