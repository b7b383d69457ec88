//! One pipelined connection to one broker.
//!
//! The socket is owned by two tasks: a writer that frames and writes queued
//! requests, and a reader that splits response frames off the socket and hands
//! each to the request waiting for its correlation id. Callers only talk to
//! the tasks through channels, so dropping a caller's future can never leave a
//! half-written frame on the socket, and any number of requests can be in
//! flight at once.
//!
//! Anything that makes the byte stream untrustworthy (an I/O error, a bad
//! frame, an unknown correlation id, a request timeout, the broker closing)
//! *poisons* the connection: every pending request fails with that error,
//! later calls fail with it at once, and both tasks stop. Reconnecting is the
//! caller's job.
//!
//! A connection may run over TLS ([`TlsConfig`]) and authenticate with SASL
//! ([`SaslConfig`]) right after the ApiVersions exchange. When the broker
//! limits the SASL session (`connections.max.reauth.ms`, KIP-368), the
//! writer task re-authenticates before the session ends: it stops writing
//! other requests, runs the SASL exchange on the same socket, and goes on.

use crate::util::lock;
use ferry_wire::produce::ChunkedBuf;
use std::collections::VecDeque;
use std::io::{self};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use ferry_wire::WireError;
use ferry_wire::frame::{DEFAULT_MAX_FRAME_SIZE, FrameDecoder, SIZE_PREFIX_LEN, put_size_prefix};
use ferry_wire::responses::header::split_response_header;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::error::{ClientError, Result};
use crate::responses::BoundedRequest;

use crate::sasl::{self, Authenticator, SaslConfig, Transport};
use crate::tls::{self, TlsConfig};
use crate::versions::{self, BrokerVersions};

/// Settings for one broker connection.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Sent in every request header; brokers log it and use it for quotas.
    pub client_id: String,
    /// How long to wait for the TCP connection to be established.
    pub connect_timeout: Duration,
    /// How long a request may wait for its response, counted from the call
    /// (time spent queued behind other requests included). Must be longer
    /// than any Fetch `max_wait`.
    pub request_timeout: Duration,
    /// Largest response frame accepted. A larger one poisons the connection
    /// before any memory is reserved for it. Keep it above the Fetch `max_bytes`.
    pub max_frame_size: usize,
    /// Most bytes the read buffer grows by per read. Memory tracks what has
    /// actually arrived, never a size the peer announced.
    pub read_chunk: usize,
    /// Requests that may wait for the writer task before callers are held back.
    pub max_queued_requests: usize,
    /// TLS settings; `None`: plaintext.
    pub tls: Option<TlsConfig>,
    /// SASL settings; `None`: no authentication.
    pub sasl: Option<SaslConfig>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            client_id: "ferry".to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            read_chunk: 128 * 1024,
            max_queued_requests: 256,
            tls: None,
            sasl: None,
        }
    }
}

/// A connection to one broker, with the API versions negotiated on connect.
///
/// Cheap to clone; all clones share the socket. The socket closes when the
/// last clone is dropped or the connection is poisoned.
#[derive(Debug, Clone)]
pub struct Connection {
    inner: Arc<Inner>,
    versions: Arc<BrokerVersions>,
}

#[derive(Debug)]
struct Inner {
    requests: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
    request_timeout: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Nobody can send on this connection any more: stop the tasks, which
        // closes the socket.
        self.shared.stop_tasks();
    }
}

/// A request on its way to the writer task. The writer assigns the
/// correlation id, so ids are registered in the order frames hit the socket.
struct Outgoing {
    api: ApiKey,
    version: i16,
    header_version: i16,
    body: Vec<Bytes>,
    reply: oneshot::Sender<Result<Bytes>>,
}

/// State shared by the handle and both tasks.
#[derive(Debug)]
struct Shared {
    broker: String,
    /// The name the broker's TLS certificate was checked against; `None`
    /// on a plaintext connection.
    tls_name: Option<String>,
    state: Mutex<State>,
    tasks: Mutex<Vec<AbortHandle>>,
    /// When and how to re-authenticate; `None`: never.
    reauth: Mutex<Option<Reauth>>,
    /// Wakes the writer when `reauth` changes.
    reauth_changed: Notify,
    reauthentications: AtomicU64,
    /// Who the last SASL authentication logged in as (never a secret).
    principal: Mutex<Option<String>>,
}

#[derive(Debug, Clone)]
struct Reauth {
    /// When the broker ends the session (counted from before the exchange
    /// that opened it, so never later than the broker's own clock says).
    expires: Instant,
    lifetime: Duration,
    auth: Arc<Authenticator>,
}

#[derive(Debug, Default)]
struct State {
    /// Waiters by correlation id, in the order their requests were written
    /// (the writer task registers each just before writing it): Kafka
    /// answers a connection's requests in that order, so a response for any
    /// other id than the first (even one another request waits for) means
    /// the stream cannot be trusted.
    pending: VecDeque<(i32, oneshot::Sender<Result<Bytes>>)>,
    /// When each pending request was written, in the same order.
    written: VecDeque<Instant>,
    /// When the last response arrived: the broker starts on a request only
    /// after answering the one before it.
    last_response: Option<Instant>,
    /// The longest any request held the connection at the broker (from
    /// the later of its write and the previous response to its own
    /// response): how long each request in flight may delay a
    /// re-authentication.
    longest_request: Duration,
    poisoned: Option<ClientError>,
    next_correlation_id: i32,
}

impl Shared {
    /// Registers a waiter under a fresh correlation id, or hands the waiter
    /// back with the poison error if the connection is already dead.
    fn register(&self, reply: oneshot::Sender<Result<Bytes>>) -> Option<i32> {
        let mut st = lock(&self.state);
        if let Some(err) = &st.poisoned {
            let _ = reply.send(Err(err.clone()));
            return None;
        }
        let mut id = st.next_correlation_id;
        // Ids wrap after 2^32 requests; skip any still in use.
        while st.pending.iter().any(|(used, _)| *used == id) {
            id = id.wrapping_add(1);
        }
        st.next_correlation_id = id.wrapping_add(1);
        st.pending.push_back((id, reply));
        st.written.push_back(Instant::now());
        Some(id)
    }

    /// Withdraws a registered request that was never written.
    fn unregister(&self, correlation_id: i32) -> Option<oneshot::Sender<Result<Bytes>>> {
        let mut st = lock(&self.state);
        // The newest, in practice: it was registered just before.
        let at = st
            .pending
            .iter()
            .rposition(|(id, _)| *id == correlation_id)?;
        st.written.remove(at);
        st.pending.remove(at).map(|(_, waiter)| waiter)
    }

    /// The waiter for the response with `correlation_id`, which must be the
    /// oldest request's; `Err(expected)` otherwise.
    fn take_next(
        &self,
        correlation_id: i32,
    ) -> std::result::Result<oneshot::Sender<Result<Bytes>>, Option<i32>> {
        let mut st = lock(&self.state);
        match st.pending.front() {
            Some((id, _)) if *id == correlation_id => {
                let now = Instant::now();
                if let Some(written) = st.written.pop_front() {
                    let started = st.last_response.map_or(written, |r| r.max(written));
                    let held = now.saturating_duration_since(started);
                    if held > st.longest_request {
                        st.longest_request = held;
                        // The writer's re-authentication time moves earlier.
                        self.reauth_changed.notify_one();
                    }
                }
                st.last_response = Some(now);
                st.pending.pop_front().map(|(_, waiter)| waiter).ok_or(None)
            }
            front => Err(front.map(|(id, _)| *id)),
        }
    }

    /// Requests written and not yet answered, and the longest a request
    /// has held the connection.
    fn in_flight(&self) -> (usize, Duration) {
        let st = lock(&self.state);
        (st.pending.len(), st.longest_request)
    }

    fn poisoned(&self) -> Option<ClientError> {
        lock(&self.state).poisoned.clone()
    }

    /// Marks the connection dead: fails every pending request with `err`
    /// and stops both tasks. Only the first error counts.
    fn poison(&self, err: ClientError) {
        let pending = {
            let mut st = lock(&self.state);
            if st.poisoned.is_some() {
                return;
            }
            st.poisoned = Some(err.clone());
            st.written.clear();
            std::mem::take(&mut st.pending)
        };
        if err.is_protocol_violation() {
            // The broker (or something between) sent bytes that make no
            // sense: worth an operator's attention, unlike a plain reset.
            tracing::warn!(broker = %self.broker, error = %err, pending = pending.len(), "connection dropped: bad response; requests will be retried on a new connection");
        } else {
            tracing::debug!(broker = %self.broker, error = %err, pending = pending.len(), "connection poisoned");
        }
        for (_, waiter) in pending {
            let _ = waiter.send(Err(err.clone()));
        }
        self.stop_tasks();
    }

    fn stop_tasks(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }

    /// The error for a failed read or write: what went wrong in TLS when
    /// the connection is a TLS one and rustls knows, else the I/O error.
    fn io_error(&self, e: io::Error) -> ClientError {
        self.tls_name
            .as_deref()
            .and_then(|name| tls::classify(&self.broker, name, &e))
            .unwrap_or_else(|| ClientError::Io {
                broker: self.broker.clone(),
                source: Arc::new(e),
            })
    }

    /// Schedules the next re-authentication for a session of `lifetime`
    /// (`None`: the broker set no limit) opened by an exchange that
    /// started at `started`.
    fn schedule_reauth(
        &self,
        auth: Arc<Authenticator>,
        lifetime: Option<Duration>,
        started: Instant,
    ) {
        *lock(&self.reauth) = lifetime.map(|lifetime| Reauth {
            expires: started + lifetime,
            lifetime,
            auth,
        });
        self.reauth_changed.notify_one();
    }

    fn reauth(&self) -> Option<Reauth> {
        lock(&self.reauth).clone()
    }

    /// When the current session must be renewed if `extra` more requests
    /// are written now (`None`: never).
    fn reauth_at(&self, extra: usize) -> Option<Instant> {
        let reauth = self.reauth()?;
        let (in_flight, longest) = self.in_flight();
        Some(sasl::reauth_at(
            reauth.expires,
            reauth.lifetime,
            in_flight + extra,
            longest,
        ))
    }
}

impl Connection {
    /// Connects to `address` (`host:port`), runs the TLS handshake when
    /// TLS is configured, negotiates API versions and authenticates when
    /// SASL is configured.
    pub async fn connect(address: &str, config: &ConnectionConfig) -> Result<Self> {
        check_address(address)?;
        let started = Instant::now();
        let stream =
            match tokio::time::timeout(config.connect_timeout, TcpStream::connect(address)).await {
                Err(_) => {
                    return Err(ClientError::ConnectTimeout {
                        broker: address.to_owned(),
                        after: config.connect_timeout,
                    });
                }
                Ok(Err(e)) => {
                    return Err(ClientError::Connect {
                        broker: address.to_owned(),
                        source: Arc::new(e),
                    });
                }
                Ok(Ok(stream)) => stream,
            };
        // Requests are small and latency-bound; never let Nagle hold them back.
        stream.set_nodelay(true).map_err(|e| ClientError::Connect {
            broker: address.to_owned(),
            source: Arc::new(e),
        })?;
        let conn = match &config.tls {
            None => Self::start(stream, address, config),
            Some(tls) => {
                let connector = tls.connector()?;
                let name = tls.server_name(address)?;
                let shown = name.to_str().into_owned();
                let left = config.connect_timeout.saturating_sub(started.elapsed());
                let stream = match tokio::time::timeout(left, connector.connect(name, stream)).await
                {
                    Err(_) => {
                        return Err(ClientError::ConnectTimeout {
                            broker: address.to_owned(),
                            after: config.connect_timeout,
                        });
                    }
                    Ok(Err(e)) => {
                        return Err(tls::classify(address, &shown, &e).unwrap_or_else(|| {
                            ClientError::Tls {
                                broker: address.to_owned(),
                                problem: format!("TLS handshake failed: {e}"),
                            }
                        }));
                    }
                    Ok(Ok(stream)) => stream,
                };
                let (read, write) = tokio::io::split(stream);
                Self::start_io(read, write, address, Some(shown), config)
            }
        };
        let versions = versions::negotiate(&conn).await?;
        if let Some(sasl) = &config.sasl {
            let auth = Arc::new(Authenticator::new(sasl, &versions)?);
            let started = Instant::now();
            let done = sasl::authenticate(&mut ConnectionTransport(&conn), address, &auth).await?;
            *lock(&conn.inner.shared.principal) = Some(done.principal);
            conn.inner
                .shared
                .schedule_reauth(auth, done.lifetime, started);
        }
        tracing::debug!(broker = address, "connected");
        Ok(Self {
            versions: Arc::new(versions),
            ..conn
        })
    }

    /// Starts the reader and writer tasks on an established stream, without
    /// negotiating versions (`versions()` is empty until [`connect`](Self::connect) does that).
    pub(crate) fn start(stream: TcpStream, broker: &str, config: &ConnectionConfig) -> Self {
        let (read, write) = stream.into_split();
        Self::start_io(read, write, broker, None, config)
    }

    /// Generic over the two halves: a TCP or a TLS stream.
    fn start_io<R, W>(
        read: R,
        write: W,
        broker: &str,
        tls_name: Option<String>,
        config: &ConnectionConfig,
    ) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(Shared {
            broker: broker.to_owned(),
            tls_name,
            state: Mutex::new(State::default()),
            tasks: Mutex::new(Vec::with_capacity(2)),
            reauth: Mutex::new(None),
            reauth_changed: Notify::new(),
            reauthentications: AtomicU64::new(0),
            principal: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel(config.max_queued_requests.max(1));
        let client_id = StrBytes::from_string(config.client_id.clone());
        let writer = tokio::spawn(write_loop(
            write,
            rx,
            Arc::clone(&shared),
            client_id,
            config.request_timeout,
        ));
        let reader = tokio::spawn(read_loop(
            read,
            Arc::clone(&shared),
            FrameDecoder::new(config.max_frame_size),
            config.read_chunk.max(1),
        ));
        lock(&shared.tasks).extend([writer.abort_handle(), reader.abort_handle()]);
        // A task may have poisoned the connection before its handle was stored.
        if shared.poisoned().is_some() {
            shared.stop_tasks();
        }
        Self {
            inner: Arc::new(Inner {
                requests: tx,
                shared,
                request_timeout: config.request_timeout,
            }),
            versions: Arc::new(BrokerVersions::empty(broker)),
        }
    }

    /// The address this connection was opened to.
    pub fn broker(&self) -> &str {
        &self.inner.shared.broker
    }

    /// The API version ranges the broker advertised.
    pub fn versions(&self) -> &BrokerVersions {
        &self.versions
    }

    /// Who this connection authenticated as and with which mechanism, e.g.
    /// `ferry-app with OAUTHBEARER` (the JWT subject); `None` without SASL.
    pub fn authenticated_as(&self) -> Option<String> {
        lock(&self.inner.shared.principal).clone()
    }

    /// How many times this connection re-authenticated (KIP-368).
    pub fn reauthentications(&self) -> u64 {
        self.inner.shared.reauthentications.load(Ordering::Relaxed)
    }

    /// The error that made this connection unusable, if any. A poisoned
    /// connection fails every call with it; open a new one.
    pub fn poisoned(&self) -> Option<ClientError> {
        self.inner.shared.poisoned()
    }

    /// Sends a kafka-protocol request at `version` and decodes the response
    /// with ferry-wire's bounded decoder for it (see [`BoundedRequest`]).
    ///
    /// Pick the version with [`BrokerVersions::version_for`]. A version the
    /// decoder cannot read is refused before anything is sent: the broker
    /// would act on the request and its answer would be lost.
    pub async fn send<R: BoundedRequest>(&self, request: &R, version: i16) -> Result<R::Decoded> {
        let api = api_key(R::KEY, self.broker())?;
        let decodable = R::DECODED_VERSIONS;
        if !(decodable.min..=decodable.max).contains(&version) {
            return Err(ClientError::Encode {
                broker: self.broker().to_owned(),
                api,
                version,
                detail: format!(
                    "ferry decodes v{}..=v{} responses only",
                    decodable.min, decodable.max
                ),
            });
        }
        let body = encode_request(request, api, version, self.broker())?;
        let frame = self
            .round_trip(api, version, R::header_version(version), vec![body])
            .await?;
        let body = strip_response_header(
            frame,
            api,
            version,
            api.response_header_version(version),
            self.broker(),
        )
        .map_err(|e| self.reject(e))?;
        decode_bounded(body, api, version, self.broker(), R::decode_response)
            .map_err(|e| self.reject(e))
    }

    /// Sends a pre-encoded request body (everything after the request
    /// header, as any number of chunks) and returns the response body
    /// (everything after the response header).
    ///
    /// The chunks are written with vectored writes, never copied into one
    /// buffer; this is the path for a hand-encoded, zero-copy Produce.
    ///
    /// Every request must get a response: a Produce with `acks = 0` (which
    /// the broker never answers) would time out and poison the connection.
    pub async fn send_raw(&self, api: ApiKey, version: i16, chunks: Vec<Bytes>) -> Result<Bytes> {
        let frame = self
            .round_trip(api, version, api.request_header_version(version), chunks)
            .await?;
        strip_response_header(
            frame,
            api,
            version,
            api.response_header_version(version),
            self.broker(),
        )
        .map_err(|e| self.reject(e))
    }

    /// Queues a pre-encoded request like [`send_raw`](Self::send_raw), and
    /// once it is queued returns the future of its response body.
    ///
    /// Requests queued by successive calls, each awaited before the next,
    /// are written in that order, and a broker answers a connection's
    /// requests in the order it reads them. Concurrent `send_raw` futures
    /// carry no such guarantee (tasks are not polled in spawn order), and
    /// pipelined idempotent Produce requests need it: their sequence numbers
    /// must arrive in order. The request goes out whether or not the returned
    /// future is polled; dropping it discards the response. The request
    /// timeout counts from this call.
    pub async fn queue_raw(
        &self,
        api: ApiKey,
        version: i16,
        chunks: Vec<Bytes>,
    ) -> Result<impl Future<Output = Result<Bytes>> + Send + 'static> {
        if let Some(err) = self.poisoned() {
            return Err(err);
        }
        let started = tokio::time::Instant::now();
        let timeout = self.inner.request_timeout;
        let (reply, response) = oneshot::channel();
        let outgoing = Outgoing {
            api,
            version,
            header_version: api.request_header_version(version),
            body: chunks,
            reply,
        };
        match tokio::time::timeout(timeout, self.inner.requests.send(outgoing)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(self.failure()),
            Err(_) => return Err(self.timed_out(api)),
        }
        let conn = self.clone();
        Ok(async move {
            let left = timeout.saturating_sub(started.elapsed());
            let frame = match tokio::time::timeout(left, response).await {
                Ok(frame) => frame.unwrap_or_else(|_| Err(conn.failure()))?,
                Err(_) => return Err(conn.timed_out(api)),
            };
            strip_response_header(
                frame,
                api,
                version,
                api.response_header_version(version),
                conn.broker(),
            )
            .map_err(|e| conn.reject(e))
        })
    }

    /// Queues one request and waits for its whole response frame.
    async fn round_trip(
        &self,
        api: ApiKey,
        version: i16,
        header_version: i16,
        body: Vec<Bytes>,
    ) -> Result<Bytes> {
        if let Some(err) = self.poisoned() {
            return Err(err);
        }
        let (reply, response) = oneshot::channel();
        let outgoing = Outgoing {
            api,
            version,
            header_version,
            body,
            reply,
        };
        // Dropping this future before the send completes means the request
        // was never queued; once queued, the writer skips it if we are gone
        // by the time it gets there, and discards its response otherwise.
        let exchange = async {
            if self.inner.requests.send(outgoing).await.is_err() {
                return Err(self.failure());
            }
            // A dropped reply means the tasks stopped: poisoned or closed.
            response.await.unwrap_or_else(|_| Err(self.failure()))
        };
        // Queueing time counts against the timeout too.
        match tokio::time::timeout(self.inner.request_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out(api)),
        }
    }

    fn timed_out(&self, api: ApiKey) -> ClientError {
        let err = ClientError::Timeout {
            broker: self.broker().to_owned(),
            api,
            after: self.inner.request_timeout,
        };
        // The broker answers a connection's requests in order, so everything
        // behind this one is stuck as well; Kafka's own clients disconnect too.
        self.inner.shared.poison(err.clone());
        err
    }

    /// Closes the connection because of `err`, a response that did not
    /// decode: the stream may be out of step (a response to another
    /// version, or not to this request at all). Returns `err`.
    pub(crate) fn reject(&self, err: ClientError) -> ClientError {
        self.inner.shared.poison(err.clone());
        err
    }

    fn failure(&self) -> ClientError {
        self.poisoned().unwrap_or_else(|| ClientError::Closed {
            broker: self.broker().to_owned(),
            mid_frame: false,
        })
    }
}

/// Checks that `address` looks like `host:port` before any DNS or socket work.
pub(crate) fn check_address(address: &str) -> Result<()> {
    let invalid = |reason| ClientError::InvalidAddress {
        address: address.to_owned(),
        reason,
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(|| invalid("no port"))?;
    if host.is_empty() || host == "[]" {
        return Err(invalid("no host"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(invalid("the port must be a number from 1 to 65535")),
        Ok(_) => Ok(()),
    }
}

fn api_key(key: i16, broker: &str) -> Result<ApiKey> {
    ApiKey::try_from(key).map_err(|()| ClientError::UnknownApiKey {
        broker: broker.to_owned(),
        key,
    })
}

/// Encodes a request body (no header) into one buffer of exactly the right size.
pub(crate) fn encode_request<T: Encodable>(
    request: &T,
    api: ApiKey,
    version: i16,
    broker: &str,
) -> Result<Bytes> {
    // kafka-protocol errors are `anyhow::Error`; keeping their text is enough.
    let encode_err = |detail: String| ClientError::Encode {
        broker: broker.to_owned(),
        api,
        version,
        detail,
    };
    let size = request
        .compute_size(version)
        .map_err(|e| encode_err(format!("{e:#}")))?;
    let mut buf = BytesMut::with_capacity(size);
    request
        .encode(&mut buf, version)
        .map_err(|e| encode_err(format!("{e:#}")))?;
    Ok(buf.freeze())
}

/// Decodes a response body with one of ferry-wire's bounded decoders
/// (never kafka-protocol's, which allocate by the counts a broker sends).
pub(crate) fn decode_bounded<T>(
    body: Bytes,
    api: ApiKey,
    version: i16,
    broker: &str,
    decode: impl FnOnce(Bytes, i16) -> ferry_wire::Result<T>,
) -> Result<T> {
    decode(body, version).map_err(|e| ClientError::Decode {
        broker: broker.to_owned(),
        api,
        version,
        detail: e.to_string(),
    })
}

/// Skips the response header (correlation id, plus tagged fields in header
/// v1); the reader task already matched the correlation id.
fn strip_response_header(
    frame: Bytes,
    api: ApiKey,
    version: i16,
    header_version: i16,
    broker: &str,
) -> Result<Bytes> {
    split_response_header(frame, header_version)
        .map(|(_, body)| body)
        .map_err(|e| ClientError::Decode {
            broker: broker.to_owned(),
            api,
            version,
            detail: format!("response header v{header_version}: {e}"),
        })
}

/// How many queued requests the writer coalesces into one vectored write.
const MAX_WRITE_BATCH: usize = 64;

async fn write_loop<W>(
    mut io: W,
    mut requests: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
    client_id: StrBytes,
    request_timeout: Duration,
) where
    W: AsyncWrite + Unpin + Send,
{
    let mut batch = Vec::with_capacity(MAX_WRITE_BATCH);
    loop {
        // Wake when the requests already in flight would delay a
        // SaslHandshake written any later past the session's end.
        let due = shared.reauth_at(0);
        let received = tokio::select! {
            n = requests.recv_many(&mut batch, MAX_WRITE_BATCH) => Some(n),
            () = sleep_until(due) => None,
            () = shared.reauth_changed.notified() => continue,
        };
        if received == Some(0) {
            // All handles are gone; dropping `io` closes our side of the socket.
            return;
        }
        // Re-authenticate before writing anything more once the time has
        // come, counting the requests about to be written: the broker reads
        // the SaslHandshake only after answering everything written before
        // it, and closes a connection whose session has expired by then.
        let due = shared.reauth_at(received.unwrap_or(0));
        if let Some(reauth) = shared
            .reauth()
            .filter(|_| due.is_some_and(|at| at <= Instant::now()))
        {
            let started = Instant::now();
            let mut transport = WriterTransport {
                io: &mut io,
                shared: &shared,
                client_id: &client_id,
                timeout: request_timeout,
            };
            match sasl::authenticate(&mut transport, &shared.broker, &reauth.auth).await {
                Ok(done) => {
                    shared.reauthentications.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(broker = %shared.broker, "re-authenticated");
                    *lock(&shared.principal) = Some(done.principal);
                    shared.schedule_reauth(reauth.auth, done.lifetime, started);
                }
                Err(e) => {
                    shared.poison(e);
                    return;
                }
            }
        }
        if received.is_none() {
            continue;
        }
        let mut out = ChunkedBuf::default();
        for request in batch.drain(..) {
            // The caller gave up before anything was written: skip the
            // request entirely rather than send something nobody awaits.
            if request.reply.is_closed() {
                continue;
            }
            let Outgoing {
                api,
                version,
                header_version,
                body,
                reply,
            } = request;
            let Some(correlation_id) = shared.register(reply) else {
                continue;
            };
            match frame_head(
                api,
                version,
                header_version,
                correlation_id,
                &client_id,
                &body,
            ) {
                Ok(head) => {
                    out.push(head);
                    body.into_iter().for_each(|chunk| out.push(chunk));
                }
                Err(detail) => {
                    if let Some(waiter) = shared.unregister(correlation_id) {
                        let _ = waiter.send(Err(ClientError::Encode {
                            broker: shared.broker.clone(),
                            api,
                            version,
                            detail,
                        }));
                    }
                }
            }
        }
        if out.remaining() == 0 {
            continue;
        }
        let written = match io.write_all_buf(&mut out).await {
            Ok(()) => io.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            shared.poison(shared.io_error(e));
            return;
        }
    }
}

/// Sleeps until `at`; forever when there is no `at`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// SASL requests through the connection's queue, for the first
/// authentication (nothing else is sent on the connection yet).
struct ConnectionTransport<'a>(&'a Connection);

impl Transport for ConnectionTransport<'_> {
    async fn round_trip(&mut self, api: ApiKey, version: i16, body: Bytes) -> Result<Bytes> {
        self.0.send_raw(api, version, vec![body]).await
    }
}

/// SASL requests written by the writer task itself, for re-authentication:
/// nothing else is written until the exchange is over.
struct WriterTransport<'a, W> {
    io: &'a mut W,
    shared: &'a Shared,
    client_id: &'a StrBytes,
    timeout: Duration,
}

impl<W: AsyncWrite + Unpin + Send> Transport for WriterTransport<'_, W> {
    async fn round_trip(&mut self, api: ApiKey, version: i16, body: Bytes) -> Result<Bytes> {
        let broker = &self.shared.broker;
        let (reply, response) = oneshot::channel();
        let Some(correlation_id) = self.shared.register(reply) else {
            return Err(self
                .shared
                .poisoned()
                .unwrap_or_else(|| ClientError::Closed {
                    broker: broker.clone(),
                    mid_frame: false,
                }));
        };
        let header_version = api.request_header_version(version);
        let head = frame_head(
            api,
            version,
            header_version,
            correlation_id,
            self.client_id,
            std::slice::from_ref(&body),
        )
        .map_err(|detail| ClientError::Encode {
            broker: broker.clone(),
            api,
            version,
            detail,
        })?;
        let mut out = ChunkedBuf::default();
        out.push(head);
        out.push(body);
        let written = match self.io.write_all_buf(&mut out).await {
            Ok(()) => self.io.flush().await,
            Err(e) => Err(e),
        };
        written.map_err(|e| self.shared.io_error(e))?;
        let frame = match tokio::time::timeout(self.timeout, response).await {
            Ok(Ok(frame)) => frame?,
            Ok(Err(_)) => {
                return Err(self
                    .shared
                    .poisoned()
                    .unwrap_or_else(|| ClientError::Closed {
                        broker: broker.clone(),
                        mid_frame: false,
                    }));
            }
            Err(_) => {
                return Err(ClientError::Timeout {
                    broker: broker.clone(),
                    api,
                    after: self.timeout,
                });
            }
        };
        strip_response_header(
            frame,
            api,
            version,
            api.response_header_version(version),
            broker,
        )
    }
}

/// Size prefix plus request header; the body chunks follow it unchanged.
fn frame_head(
    api: ApiKey,
    version: i16,
    header_version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
    body: &[Bytes],
) -> std::result::Result<Bytes, String> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    let header_len = header
        .compute_size(header_version)
        .map_err(|e| format!("{e:#}"))?;
    let mut head = BytesMut::with_capacity(SIZE_PREFIX_LEN + header_len);
    head.put_bytes(0, SIZE_PREFIX_LEN);
    header
        .encode(&mut head, header_version)
        .map_err(|e| format!("request header v{header_version}: {e:#}"))?;
    let body_len = body
        .iter()
        .try_fold(0usize, |acc, c| acc.checked_add(c.len()));
    let frame_len = body_len
        .and_then(|b| b.checked_add(header_len))
        .ok_or_else(|| "request body size overflows".to_owned())?;
    let mut prefix = &mut head[..SIZE_PREFIX_LEN];
    put_size_prefix(&mut prefix, frame_len).map_err(|e| e.to_string())?;
    Ok(head.freeze())
}

async fn read_loop<R>(mut io: R, shared: Arc<Shared>, decoder: FrameDecoder, read_chunk: usize)
where
    R: AsyncRead + Unpin,
{
    let frame_error = |source: WireError| ClientError::Frame {
        broker: shared.broker.clone(),
        source,
    };
    let mut buf = BytesMut::new();
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if let Err(err) = dispatch(&shared, frame) {
                        shared.poison(err);
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    shared.poison(looks_like_tls(&shared, &buf).unwrap_or_else(|| frame_error(e)));
                    return;
                }
            }
        }
        let want = match decoder.reserve_hint(&buf, read_chunk) {
            Ok(n) => n,
            Err(e) => {
                shared.poison(frame_error(e));
                return;
            }
        };
        buf.reserve(want);
        match io.read_buf(&mut buf).await {
            Ok(0) => {
                shared.poison(ClientError::Closed {
                    broker: shared.broker.clone(),
                    mid_frame: !buf.is_empty(),
                });
                return;
            }
            Ok(_) => {}
            Err(e) => {
                shared.poison(shared.io_error(e));
                return;
            }
        }
    }
}

/// On a plaintext connection, a "frame" that starts like a TLS record (an
/// alert or a handshake, version 3.x) means the listener speaks TLS.
fn looks_like_tls(shared: &Shared, buf: &[u8]) -> Option<ClientError> {
    let tls_record = matches!(buf, [0x15 | 0x16, 0x03, 0x00..=0x04, ..]);
    (shared.tls_name.is_none() && tls_record).then(|| ClientError::Tls {
        broker: shared.broker.clone(),
        problem: "the broker answered in TLS: this listener is SSL or SASL_SSL; set \
                  security_protocol to \"ssl\" or \"sasl_ssl\""
            .to_owned(),
    })
}

/// Hands one response frame to the request that is waiting for it.
fn dispatch(shared: &Shared, frame: Bytes) -> Result<()> {
    let Some(&[a, b, c, d]) = frame.get(..4) else {
        return Err(ClientError::Frame {
            broker: shared.broker.clone(),
            source: WireError::Truncated {
                what: "response header",
                needed: 4,
                available: frame.len(),
            },
        });
    };
    let correlation_id = i32::from_be_bytes([a, b, c, d]);
    match shared.take_next(correlation_id) {
        // The caller may have given up (dropped its future); that is fine.
        Ok(waiter) => {
            let _ = waiter.send(Ok(frame));
            Ok(())
        }
        Err(_) if shared.poisoned().is_some() => Ok(()),
        Err(expected) => Err(ClientError::UnexpectedCorrelationId {
            broker: shared.broker.clone(),
            correlation_id,
            expected,
        }),
    }
}

#[cfg(test)]
mod tests;
