//! The HTTP endpoint of `ferry run` (`[metrics] listen`): Prometheus
//! `/metrics`, and `/health` + `/ready` for Kubernetes probes.
//!
//! - `/health`: 200 while the process serves requests (liveness).
//! - `/ready`: 200 once every flow is connected, every topic it mirrors is
//!   set up on the target and every partition it found runs; 503 naming
//!   the flows that are not and why (a partition stopped or waiting to be
//!   restarted, a topic the target refuses, a flow that cannot start).
//! - `POST /partitions/restart`: restarts every stopped partition of every
//!   flow from its committed position (they stop on causes that do not heal
//!   by themselves, e.g. a corrupt source batch; transient causes are
//!   retried without it).
//! - `/metrics`: OpenMetrics text of every `ferry_*` series, plus
//!   `process_resident_memory_bytes` and `process_cpu_seconds_total`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use ferry_engine::metrics::Metrics;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

struct State {
    metrics: Metrics,
    registry: Registry,
    process: Process,
}

/// Gauges read from /proc at scrape time.
#[derive(Default)]
struct Process {
    rss_bytes: Gauge,
    /// A counter (`process_cpu_seconds_total`, as every Prometheus client
    /// names it), advanced to the kernel's figure at each scrape.
    cpu_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
}

impl Process {
    fn refresh(&self) {
        // /proc/self/stat: utime and stime (fields 14, 15) in clock ticks;
        // field 24 is rss in pages. Linux reports ticks at 100 Hz (USER_HZ)
        // and 4 KiB pages on the platforms ferry ships for.
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return;
        };
        // The command name (field 2) may hold spaces: count after its ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            #[allow(clippy::cast_precision_loss)] // ticks fit f64 exactly for centuries
            let now = (utime + stime) as f64 / 100.0;
            let before = self.cpu_seconds.get();
            if now > before {
                self.cpu_seconds.inc_by(now - before);
            }
        }
        if let Some(pages) = field(24) {
            self.rss_bytes
                .set(i64::try_from(pages.saturating_mul(4096)).unwrap_or(i64::MAX));
        }
    }
}

/// Binds `addr` now (so a bad address fails start-up) and serves from a
/// background task.
pub async fn serve(addr: SocketAddr, metrics: Metrics) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let mut registry = Registry::default();
    metrics.register(registry.sub_registry_with_prefix("ferry"));
    let process = Process::default();
    {
        let p = registry.sub_registry_with_prefix("process");
        p.register_with_unit(
            "resident_memory",
            "Resident memory of the ferry process",
            Unit::Bytes,
            process.rss_bytes.clone(),
        );
        p.register_with_unit(
            "cpu",
            "User and system CPU time of the ferry process",
            Unit::Seconds,
            process.cpu_seconds.clone(),
        );
    }
    let state = Arc::new(State {
        metrics,
        registry,
        process,
    });
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(respond(&state, &req)) }
                });
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, "metrics endpoint: connection ended");
                }
            });
        }
    });
    Ok(bound)
}

fn respond(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() == "/partitions/restart" {
        if req.method() != Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "POST only\n".into());
        }
        state.metrics.request_restart();
        return text(
            StatusCode::ACCEPTED,
            "stopped partitions restart within a second\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/health" => text(StatusCode::OK, "ok\n".into()),
        "/ready" => {
            if state.metrics.is_ready() {
                text(StatusCode::OK, "ready\n".into())
            } else {
                let waiting = state.metrics.not_ready().join(", ");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {waiting}\n"),
                )
            }
        }
        "/metrics" => {
            state.process.refresh();
            let mut body = String::new();
            match encode(&mut body, &state.registry) {
                Ok(()) => {
                    let mut r = Response::new(Full::new(Bytes::from(body)));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static(OPENMETRICS),
                    );
                    r
                }
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("encoding failed: {e}\n"),
                ),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /health or /ready\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
