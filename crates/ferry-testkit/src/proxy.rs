//! A fault-injecting TCP proxy for tests: put it between ferry and a broker
//! and it adds latency, throttles bandwidth, pauses traffic, resets
//! connections (on command or at random) and flips bytes in responses.
//!
//! It understands exactly one thing about Kafka: both directions are
//! 4-byte length-prefixed frames. Everything is forwarded frame by frame
//! through a delay line, so latency delays each frame without serialising
//! them: pipelined requests stay pipelined.
//!
//! The broker must advertise the proxy's address, or clients go around it
//! after their first metadata request: pick the proxy's port first
//! ([`FaultProxy::start`]), start the cluster with
//! `--override advertised.listeners=PLAINTEXT://127.0.0.1:<port>`, then
//! point the proxy at the broker's real port ([`FaultProxy::set_upstream`]).
//!
//! It can also break single response frames ([`Mangle`]): cut one short,
//! give it a 2 GiB size, a wrong correlation id, or re-encode it in another
//! API version; for that it notes each request's API key and version.
//!
//! The proxy runs on a thread and a runtime of its own, so a test that
//! blocks its own runtime (or has none) still has a working proxy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

mod mangle;
pub use mangle::Mangle;

/// Frames larger than this end the connection (no broker sends one in a test).
const MAX_FRAME: usize = 1 << 30;
/// Size of a v2 record batch header, up to the first record.
const BATCH_HEADER: usize = 61;

/// What the proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub connections: u64,
    /// Connections the proxy reset (on command or at random).
    pub resets: u64,
    /// Request frames forwarded (client to broker).
    pub requests: u64,
    /// Response frames forwarded (broker to client).
    pub responses: u64,
    /// Bytes forwarded, both directions, length prefixes included.
    pub bytes: u64,
    /// Frames or record batches corrupted.
    pub corrupted: u64,
    /// Response frames broken by a [`Mangle`].
    pub mangled: u64,
}

#[derive(Debug, Default)]
struct Settings {
    upstream: Option<SocketAddr>,
    latency: Duration,
    /// Bytes per second, per connection and direction.
    bandwidth: Option<u64>,
    /// Response frames still to pass before the one to corrupt.
    corrupt_frame_in: Option<u64>,
    /// Corrupt this many more data batches with a base offset at or past the first field.
    corrupt_batches: Option<(i64, u64)>,
    /// Reset one random connection every (min, max) interval.
    random_resets: Option<(Duration, Duration)>,
    /// Armed manglers, first first: (API key of the request answered, how).
    mangles: Vec<(i16, Mangle)>,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    resets: AtomicU64,
    requests: AtomicU64,
    responses: AtomicU64,
    bytes: AtomicU64,
    corrupted: AtomicU64,
    mangled: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    settings: Mutex<Settings>,
    paused: watch::Sender<bool>,
    live: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    counters: Counters,
    /// Request frames forwarded, by API key.
    by_api: Mutex<HashMap<i16, u64>>,
    rng: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        lock(&self.settings)
    }

    /// xorshift64*: reproducible enough, no dependency.
    fn random(&self) -> u64 {
        let mut x = lock(&self.rng);
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn reset(&self, id: u64) -> bool {
        let kill = lock(&self.live).remove(&id);
        kill.is_some_and(|k| k.send(()).is_ok())
    }
}

/// A running proxy; stopped (every connection closed) when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Binds 127.0.0.1 on a free port and starts serving. Connections made
    /// before [`set_upstream`](Self::set_upstream) are closed at once.
    ///
    /// # Errors
    /// If the port cannot be bound or the runtime cannot be built.
    pub fn start() -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let seed = u64::from(addr.port()) << 32 | u64::from(std::process::id()) | 1;
        let shared = Arc::new(Shared {
            settings: Mutex::new(Settings::default()),
            paused: watch::channel(false).0,
            live: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            by_api: Mutex::new(HashMap::new()),
            rng: Mutex::new(seed),
        });
        let (stop, stopped) = oneshot::channel();
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("fault-proxy-{}", addr.port()))
                .spawn(move || {
                    runtime.block_on(async move {
                        let Ok(listener) = TcpListener::from_std(listener) else {
                            return;
                        };
                        tokio::spawn(random_resets(Arc::clone(&shared)));
                        tokio::select! {
                            () = accept(listener, shared) => {}
                            _ = stopped => {}
                        }
                    });
                    // Dropping the runtime drops every connection task and its sockets.
                })?
        };
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to (what the broker must advertise).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where new connections are forwarded (`127.0.0.1:9092`).
    ///
    /// # Panics
    /// If `upstream` is not an `ip:port` address.
    pub fn set_upstream(&self, upstream: &str) {
        let addr = upstream
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("upstream {upstream:?}: {e}"));
        self.shared.settings().upstream = Some(addr);
    }

    /// Delay added to every frame, in each direction (so the round trip
    /// grows by twice this).
    pub fn set_latency(&self, each_way: Duration) {
        self.shared.settings().latency = each_way;
    }

    /// Caps each connection's throughput per direction; `None` lifts it.
    pub fn set_bandwidth(&self, bytes_per_second: Option<u64>) {
        self.shared.settings().bandwidth = bytes_per_second.filter(|b| *b > 0);
    }

    /// Holds every frame (both directions) until [`resume`](Self::resume);
    /// connections stay open.
    pub fn pause(&self) {
        self.shared.paused.send_replace(true);
    }

    /// Releases paused traffic.
    pub fn resume(&self) {
        self.shared.paused.send_replace(false);
    }

    /// Resets (TCP RST) every open connection; returns how many.
    pub fn reset_all(&self) -> usize {
        let ids: Vec<u64> = lock(&self.shared.live).keys().copied().collect();
        ids.into_iter().filter(|id| self.shared.reset(*id)).count()
    }

    /// Resets one open connection, chosen at random, every interval drawn
    /// uniformly from `min..=max`; `None` stops.
    pub fn reset_randomly(&self, every: Option<(Duration, Duration)>) {
        self.shared.settings().random_resets = every.map(|(a, b)| (a.min(b), a.max(b)));
    }

    /// Flips a byte in the middle of the `n`th response frame from now
    /// (`n` = 1: the next one).
    pub fn corrupt_response_frame(&self, n: u64) {
        self.shared.settings().corrupt_frame_in = Some(n.saturating_sub(1));
    }

    /// Flips the last byte of the next `count` data record batches (v2, not
    /// control, valid CRC) whose base offset is at least `min_base_offset`,
    /// in any response: their CRC no longer matches.
    pub fn corrupt_batches(&self, min_base_offset: i64, count: u64) {
        self.shared.settings().corrupt_batches = Some((min_base_offset, count));
    }

    /// Breaks the next response to a request with `api_key` (0 Produce,
    /// 1 Fetch, ...) in the way `mangle` says. Several may be armed; each
    /// breaks one frame.
    pub fn mangle_response(&self, api_key: i16, mangle: Mangle) {
        self.shared.settings().mangles.push((api_key, mangle));
    }

    /// Back to a clean pipe: no latency, throttle, pause, resets or corruption.
    pub fn heal(&self) {
        let mut s = self.shared.settings();
        let upstream = s.upstream;
        *s = Settings {
            upstream,
            ..Settings::default()
        };
        drop(s);
        self.resume();
    }

    /// Request frames forwarded with this API key (0 Produce, 1 Fetch, ...).
    pub fn requests_of(&self, api_key: i16) -> u64 {
        lock(&self.shared.by_api)
            .get(&api_key)
            .copied()
            .unwrap_or(0)
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            connections: c.connections.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            responses: c.responses.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            corrupted: c.corrupted.load(Ordering::Relaxed),
            mangled: c.mangled.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.resume();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        next_id += 1;
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(client, next_id, Arc::clone(&shared)));
    }
}

async fn random_resets(shared: Arc<Shared>) {
    let mut next: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some((min, max)) = shared.settings().random_resets else {
            next = None;
            continue;
        };
        let now = Instant::now();
        let Some(at) = next else {
            let span = u64::try_from((max - min).as_millis()).unwrap_or(u64::MAX);
            let jitter = shared.random() % span.saturating_add(1);
            next = Some(now + min + Duration::from_millis(jitter));
            continue;
        };
        if now < at {
            continue;
        }
        next = None;
        let ids: Vec<u64> = lock(&shared.live).keys().copied().collect();
        if ids.is_empty() {
            continue;
        }
        let pick = usize::try_from(shared.random() % ids.len() as u64).unwrap_or(0);
        shared.reset(ids[pick]);
    }
}

async fn connection(client: TcpStream, id: u64, shared: Arc<Shared>) {
    let Some(upstream) = shared.settings().upstream else {
        return;
    };
    let Ok(server) = TcpStream::connect(upstream).await else {
        // Broker down: the client sees its connection closed, as it would.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (kill, killed) = oneshot::channel();
    lock(&shared.live).insert(id, kill);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let asked = Mutex::new(HashMap::new());
    let reset = tokio::select! {
        _ = killed => true,
        () = pump(&mut cr, &mut sw, Direction::Request, &shared, &asked) => false,
        () = pump(&mut sr, &mut cw, Direction::Response, &shared, &asked) => false,
    };
    lock(&shared.live).remove(&id);
    if reset {
        shared.counters.resets.fetch_add(1, Ordering::Relaxed);
        // RST rather than FIN, both ways, unsent data discarded.
        let _ = cw.as_ref().set_zero_linger();
        let _ = sw.as_ref().set_zero_linger();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

/// Request API key and version by correlation id, for one connection.
type Asked = Mutex<HashMap<i32, (i16, i16)>>;

/// Reads frames from `from` and writes them to `to` through a delay line:
/// the reader stamps each frame with when it may leave, the writer waits
/// for that time (and while paused), so frames overlap in flight. Returns
/// when either side closes or fails, or after a frame that must be the last.
async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    dir: Direction,
    shared: &Shared,
    asked: &Asked,
) {
    let (line, mut out) = mpsc::unbounded_channel::<(Instant, Vec<u8>, bool)>();
    let read = async move {
        loop {
            let mut len = [0u8; 4];
            if from.read_exact(&mut len).await.is_err() {
                return;
            }
            let Ok(size) = usize::try_from(i32::from_be_bytes(len)) else {
                return;
            };
            if size > MAX_FRAME {
                return;
            }
            let mut frame = vec![0u8; 4 + size];
            frame[..4].copy_from_slice(&len);
            if from.read_exact(&mut frame[4..]).await.is_err() {
                return;
            }
            let mut last = false;
            match dir {
                Direction::Request => note_request(&frame, asked),
                Direction::Response => {
                    corrupt(&mut frame[4..], shared);
                    if let Some((mangled, close)) = mangle_response(&frame, shared, asked) {
                        frame = mangled;
                        last = close;
                    }
                }
            }
            let due = Instant::now() + shared.settings().latency;
            if line.send((due, frame, last)).is_err() || last {
                return;
            }
        }
    };
    let write = async {
        let mut paused = shared.paused.subscribe();
        while let Some((due, frame, last)) = out.recv().await {
            tokio::time::sleep_until(due.into()).await;
            while *paused.borrow_and_update() {
                if paused.changed().await.is_err() {
                    return;
                }
            }
            // Counted before the write, so a peer that has read a frame
            // sees it counted.
            let c = &shared.counters;
            let n = frame.len() as u64;
            c.bytes.fetch_add(n, Ordering::Relaxed);
            match dir {
                Direction::Request => {
                    c.requests.fetch_add(1, Ordering::Relaxed);
                    if let Some(key) = frame.get(4..6) {
                        let key = i16::from_be_bytes([key[0], key[1]]);
                        *lock(&shared.by_api).entry(key).or_default() += 1;
                    }
                }
                Direction::Response => {
                    c.responses.fetch_add(1, Ordering::Relaxed);
                }
            }
            if to.write_all(&frame).await.is_err() || last {
                return;
            }
            let bandwidth = shared.settings().bandwidth;
            if let Some(rate) = bandwidth {
                let micros = n.saturating_mul(1_000_000) / rate;
                tokio::time::sleep(Duration::from_micros(micros)).await;
            }
        }
    };
    // Reader done (EOF) ends the line; the writer drains it, then returns.
    tokio::join!(read, write);
}

/// Remembers what a request frame asked for (API key and version by
/// correlation id).
fn note_request(frame: &[u8], asked: &Asked) {
    let (Some(key), Some(version), Some(id)) = (
        frame.get(4..6),
        frame.get(6..8),
        frame.get(8..12).and_then(|b| <[u8; 4]>::try_from(b).ok()),
    ) else {
        return;
    };
    let key = i16::from_be_bytes([key[0], key[1]]);
    let version = i16::from_be_bytes([version[0], version[1]]);
    lock(asked).insert(i32::from_be_bytes(id), (key, version));
}

/// The armed mangler for the request this response answers, applied.
fn mangle_response(frame: &[u8], shared: &Shared, asked: &Asked) -> Option<(Vec<u8>, bool)> {
    let id = i32::from_be_bytes(frame.get(4..8)?.try_into().ok()?);
    let (key, version) = lock(asked).remove(&id)?;
    let mut s = shared.settings();
    let at = s.mangles.iter().position(|(k, _)| *k == key)?;
    let (_, how) = s.mangles[at];
    let mangled = mangle::apply(how, frame, key, version)?;
    s.mangles.remove(at);
    shared.counters.mangled.fetch_add(1, Ordering::Relaxed);
    Some(mangled)
}

/// Applies the armed corruptions to one response frame's body.
fn corrupt(body: &mut [u8], shared: &Shared) {
    let mut s = shared.settings();
    if let Some(n) = s.corrupt_frame_in {
        if n == 0 {
            s.corrupt_frame_in = None;
            if let Some(b) = body.get_mut(body.len() / 2) {
                *b ^= 0xFF;
                shared.counters.corrupted.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            s.corrupt_frame_in = Some(n - 1);
        }
    }
    if let Some((min_offset, count)) = s.corrupt_batches {
        let flipped = corrupt_batches(body, min_offset, count);
        shared
            .counters
            .corrupted
            .fetch_add(flipped, Ordering::Relaxed);
        let left = count - flipped;
        s.corrupt_batches = (left > 0).then_some((min_offset, left));
    }
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Finds v2 record batches in `body` (magic 2 where it belongs and a CRC
/// that matches: nothing else passes both) and flips the last byte of up
/// to `count` data batches based at `min_offset` or later. Returns how many.
pub(crate) fn corrupt_batches(body: &mut [u8], min_offset: i64, count: u64) -> u64 {
    let mut flipped = 0;
    let mut at = 0;
    while flipped < count && at + BATCH_HEADER <= body.len() {
        let end = match batch_at(body, at) {
            Some(end) => end,
            None => {
                at += 1;
                continue;
            }
        };
        let base = be_i64(body, at).unwrap_or(-1);
        let attributes = body[at + 22];
        let control = attributes & 0x20 != 0;
        let records = be_i32(body, at + 57).unwrap_or(0);
        if base >= min_offset && !control && records > 0 {
            body[end - 1] ^= 0xFF;
            flipped += 1;
        }
        at = end;
    }
    flipped
}

/// The end of the v2 batch starting at `at`, if one does.
fn batch_at(body: &[u8], at: usize) -> Option<usize> {
    if body.get(at + 16) != Some(&2) {
        return None;
    }
    let len = usize::try_from(be_i32(body, at + 8)?).ok()?;
    if len < BATCH_HEADER - 12 {
        return None;
    }
    let end = at.checked_add(12)?.checked_add(len)?;
    let crc = u32::from_be_bytes(body.get(at + 17..at + 21)?.try_into().ok()?);
    (crc32c::crc32c(body.get(at + 21..end)?) == crc).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers every frame with the same frame.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = i32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    async fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await?;
        let mut body = vec![0u8; usize::try_from(i32::from_be_bytes(len)).unwrap()];
        s.read_exact(&mut body).await?;
        Ok(body)
    }

    async fn proxied() -> (FaultProxy, TcpStream) {
        let upstream = echo_server().await;
        let proxy = FaultProxy::start().unwrap();
        proxy.set_upstream(&upstream.to_string());
        let client = TcpStream::connect(proxy.addr()).await.unwrap();
        (proxy, client)
    }

    /// A v2 batch header + payload with a valid CRC.
    fn batch(base_offset: i64, control: bool, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&base_offset.to_be_bytes());
        let len = i32::try_from(BATCH_HEADER - 12 + payload.len()).unwrap();
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
        b.push(2); // magic
        b.extend_from_slice(&[0; 4]); // crc, below
        b.extend_from_slice(&(if control { 0x20i16 } else { 0 }).to_be_bytes());
        b.extend_from_slice(&[0; 34]); // last offset delta .. base sequence
        b.extend_from_slice(&1i32.to_be_bytes()); // record count
        b.extend_from_slice(payload);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[tokio::test]
    async fn forwards_frames_unchanged_and_counts_them() {
        let (proxy, mut c) = proxied().await;
        for i in 0..5u8 {
            c.write_all(&frame(&[i; 100])).await.unwrap();
            assert_eq!(read_frame(&mut c).await.unwrap(), vec![i; 100]);
        }
        let s = proxy.stats();
        assert_eq!((s.connections, s.requests, s.responses), (1, 5, 5));
        // The first two bytes of a request are its API key.
        assert_eq!(proxy.requests_of(i16::from_be_bytes([3, 3])), 1);
        assert_eq!(s.bytes, 2 * 5 * 104);
    }

    #[tokio::test]
    async fn latency_delays_each_way_but_frames_stay_pipelined() {
        let (proxy, mut c) = proxied().await;
        proxy.set_latency(Duration::from_millis(50));
        let t = Instant::now();
        for i in 0..20u8 {
            c.write_all(&frame(&[i; 10])).await.unwrap();
        }
        for i in 0..20u8 {
            assert_eq!(read_frame(&mut c).await.unwrap(), vec![i; 10]);
        }
        let took = t.elapsed();
        // One round trip (2 x 50 ms), not twenty.
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_millis(600), "{took:?}");
    }

    #[tokio::test]
    async fn bandwidth_is_capped() {
        let (proxy, mut c) = proxied().await;
        proxy.set_bandwidth(Some(200_000));
        let t = Instant::now();
        for _ in 0..10 {
            c.write_all(&frame(&[7; 10_000])).await.unwrap();
        }
        for _ in 0..10 {
            read_frame(&mut c).await.unwrap();
        }
        // 100 kB at 200 kB/s, each way (pipelined): about half a second.
        assert!(
            t.elapsed() >= Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn pause_holds_traffic_until_resumed() {
        let (proxy, mut c) = proxied().await;
        proxy.pause();
        c.write_all(&frame(b"held")).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(300), read_frame(&mut c)).await;
        assert!(waited.is_err(), "a frame passed while paused");
        proxy.resume();
        assert_eq!(read_frame(&mut c).await.unwrap(), b"held");
    }

    #[tokio::test]
    async fn reset_all_resets_open_connections_and_new_ones_work() {
        let (proxy, mut c) = proxied().await;
        c.write_all(&frame(b"one")).await.unwrap();
        read_frame(&mut c).await.unwrap();
        assert_eq!(proxy.reset_all(), 1);
        let mut buf = [0u8; 1];
        let after = c.read(&mut buf).await;
        assert!(matches!(after, Ok(0) | Err(_)), "{after:?}");
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        c.write_all(&frame(b"two")).await.unwrap();
        assert_eq!(read_frame(&mut c).await.unwrap(), b"two");
        assert_eq!(proxy.stats().resets, 1);
    }

    #[tokio::test]
    async fn random_resets_keep_resetting() {
        let (proxy, _c) = proxied().await;
        proxy.reset_randomly(Some((Duration::from_millis(30), Duration::from_millis(60))));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut conns = Vec::new();
        while proxy.stats().resets < 3 {
            assert!(Instant::now() < deadline, "{:?}", proxy.stats());
            conns.push(TcpStream::connect(proxy.addr()).await.unwrap());
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        proxy.reset_randomly(None);
    }

    #[tokio::test]
    async fn corrupts_the_nth_response_frame_only() {
        let (proxy, mut c) = proxied().await;
        proxy.corrupt_response_frame(2);
        let body = [5u8; 9];
        let mut got = Vec::new();
        for _ in 0..3 {
            c.write_all(&frame(&body)).await.unwrap();
            got.push(read_frame(&mut c).await.unwrap());
        }
        assert_eq!(got[0], body);
        assert_ne!(got[1], body);
        assert_eq!(got[1][4], 5 ^ 0xFF);
        assert_eq!(got[2], body);
        assert_eq!(proxy.stats().corrupted, 1);
    }

    #[test]
    fn corrupts_data_batches_at_or_past_an_offset_only() {
        let mut body = vec![0xAA, 2, 0, 0, 7]; // junk, including a stray magic byte
        let early = batch(10, false, b"early records");
        let control = batch(50, true, b"marker");
        let late = batch(60, false, b"late records");
        let later = batch(70, false, b"later records");
        for b in [&early, &control, &late, &later] {
            body.extend_from_slice(b);
        }
        let original = body.clone();
        assert_eq!(corrupt_batches(&mut body, 50, 1), 1);
        let diff: Vec<usize> = (0..body.len())
            .filter(|i| body[*i] != original[*i])
            .collect();
        let late_end = 5 + early.len() + control.len() + late.len();
        assert_eq!(
            diff,
            vec![late_end - 1],
            "only the last byte of the batch at 60"
        );
        assert!(
            batch_at(&body, late_end - late.len()).is_none(),
            "its CRC fails"
        );
        assert_eq!(
            corrupt_batches(&mut body, 0, 10),
            2,
            "early and later; not the control"
        );
    }

    #[tokio::test]
    async fn corrupts_batches_in_responses() {
        let (proxy, mut c) = proxied().await;
        proxy.corrupt_batches(0, 1);
        let mut body = b"response header".to_vec();
        let b = batch(3, false, b"payload");
        body.extend_from_slice(&b);
        c.write_all(&frame(&body)).await.unwrap();
        let got = read_frame(&mut c).await.unwrap();
        assert_ne!(got, body);
        assert!(batch_at(&got, 15).is_none());
        c.write_all(&frame(&body)).await.unwrap();
        assert_eq!(
            read_frame(&mut c).await.unwrap(),
            body,
            "only one was asked for"
        );
    }
}
