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
use ferry_wire::produce_response::{ProduceResponse, decode_produce_response};
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
            decode_produce_response(body, oldest.version).map_err(|e| ClientError::Decode {
                broker: conn.broker().to_owned(),
                api: ApiKey::Produce,
                version: oldest.version,
                detail: e.to_string(),
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
