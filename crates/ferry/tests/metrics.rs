//! `[metrics]`: scrape `/metrics` while ferry mirrors and check it against
//! what the source holds; `/health` and `/ready` as Kubernetes sees them.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use ferry_testkit::eventually_blocking;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{
    Ferry, brokers, client, create, metrics_address, produce, read_all, unique, wait_mirrored,
};

/// A plain HTTP/1.1 GET: (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// Metric names (`ferry_*`, `process_*`) mentioned in `text`.
fn series_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["ferry_", "process_"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    assert!(out.len() > 5, "no metric names found");
    out
}

/// The value of the sample `name{labels}` in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_what_was_mirrored_and_ready_needs_every_flow_connected() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-metrics"));
    std::fs::create_dir_all(&dir).unwrap();
    let topic = unique("metrics");
    create(&a, &topic, 2).await;
    for p in 0..2 {
        produce(&a, &topic, p, 6, usize::try_from(p).unwrap()).await;
    }
    let (flow, broken) = (unique("good"), unique("broken"));
    let config = dir.join("ferry.toml");
    let write = |with_broken: bool| {
        let extra = if with_broken {
            format!(
                "[clusters.nowhere]\nbootstrap_servers = [\"127.0.0.1:1\"]\nconnect_timeout = \"1s\"\n\
                 [[flows]]\nname = \"{broken}\"\nsource = \"src\"\ntarget = \"nowhere\"\ntopics = [\"{topic}\"]\n"
            )
        } else {
            String::new()
        };
        std::fs::write(
            &config,
            format!(
                "[metrics]\nlisten = \"127.0.0.1:0\"\n\
                 [clusters.src]\nbootstrap_servers = [\"{a_addr}\"]\n\
                 [clusters.dst]\nbootstrap_servers = [\"{b_addr}\"]\n\
                 [[flows]]\nname = \"{flow}\"\nsource = \"src\"\ntarget = \"dst\"\n\
                 topics = [\"{topic}\"]\n{extra}"
            ),
        )
        .unwrap();
    };

    // 1. One flow cannot reach its target: the process serves, mirrors the
    //    other flow, and is not ready, naming the broken flow.
    write(true);
    let log = dir.join("ferry-broken.log");
    let ferry = Ferry::start(&config, log.clone());
    let addr = metrics_address(&log);
    assert_eq!(get(&addr, "/health").0, 200);
    let target = format!("src.{topic}");
    wait_mirrored(&a, &b, &topic, &target, 2).await;
    // Not ready, naming only the broken flow (once the good one's discovery
    // round has been taken in: its data may arrive a moment before).
    let every = Duration::from_millis(100);
    eventually_blocking(
        Duration::from_secs(10),
        every,
        "only the broken flow not ready",
        || match get(&addr, "/ready") {
            (503, body) if body.contains(&broken) && !body.contains(&flow) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    ferry.stop_allowing_failure();

    // 2. Both clusters reachable: ready, and the counters equal the source's.
    write(false);
    for p in 0..2 {
        produce(&a, &topic, p, 3, 7).await;
    }
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());
    let addr = metrics_address(&log);
    wait_mirrored(&a, &b, &topic, &target, 2).await;
    let every = Duration::from_millis(100);
    eventually_blocking(Duration::from_secs(30), every, "/ready", || {
        match get(&addr, "/ready") {
            (200, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    // What this run mirrored: the 3 new batches of 50 records per partition.
    let mut want_bytes = 0;
    for p in 0..2 {
        let batches = read_all(&a, &topic, p).await;
        want_bytes += batches[6..].iter().map(|b| b.len()).sum::<usize>();
    }
    let (status, text) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    let f = format!("{{flow=\"{flow}\"}}");
    assert_eq!(
        sample(&text, &format!("ferry_records_total{f}")),
        Some(300.0),
        "{text}"
    );
    #[allow(clippy::cast_precision_loss)]
    let want_bytes = want_bytes as f64;
    assert_eq!(
        sample(&text, &format!("ferry_mirrored_bytes_total{f}")),
        Some(want_bytes),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("ferry_batches_total{{flow=\"{flow}\",path=\"forwarded\"}}")
        ),
        Some(6.0)
    );
    assert_eq!(sample(&text, &format!("ferry_flow_ready{f}")), Some(1.0));
    assert_eq!(
        sample(&text, &format!("ferry_inflight_batches{f}")),
        Some(0.0)
    );
    for p in 0..2 {
        let labels = format!("{{flow=\"{flow}\",topic=\"{topic}\",partition=\"{p}\"}}");
        assert_eq!(
            sample(&text, &format!("ferry_lag_records{labels}")),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("ferry_lag_seconds{labels}")),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, &format!("ferry_mirrored_offset{labels}")),
            Some(450.0),
            "9 batches of 50 records"
        );
    }
    assert!(
        sample(&text, "process_resident_memory_bytes").unwrap_or(0.0) > 0.0,
        "{text}"
    );
    assert!(text.contains("ferry_produce_latency_seconds_bucket"));
    assert_eq!(get(&addr, "/nope").0, 404);
    // Every series the Grafana dashboard queries exists.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana-dashboard.json"
    ))
    .unwrap();
    // Exposed only once something happened (labels unknown before).
    let after_an_event = ["ferry_errors_total"];
    for name in series_names(&dashboard) {
        if after_an_event.contains(&name.as_str()) {
            continue;
        }
        // A family with no samples yet still has its `# TYPE <base>` line.
        let base = name.strip_suffix("_bucket").unwrap_or(&name);
        let base = base.strip_suffix("_total").unwrap_or(base);
        assert!(
            text.contains(&format!("# TYPE {base} ")),
            "deploy/grafana-dashboard.json queries {name}, which /metrics does not have"
        );
    }

    // `ferry status` from the running instance, then from the checkpoints.
    let status = |addr: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["status", "--config"])
            .arg(&config)
            .args(["--address", addr])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let live = status(&addr);
    let line = live.lines().find(|l| l.contains(&flow)).unwrap_or_default();
    assert!(live.contains("(live)"), "{live}");
    assert!(
        line.contains("ready") && line.contains("2 running") && line.contains(" 300 "),
        "{live}"
    );
    ferry.stop();
    let offline = status(&addr);
    let line = offline
        .lines()
        .find(|l| l.contains(&flow))
        .unwrap_or_default();
    assert!(offline.contains("no running ferry answers"), "{offline}");
    assert!(
        line.contains("not running") && line.contains("2 checkpointed"),
        "{offline}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
