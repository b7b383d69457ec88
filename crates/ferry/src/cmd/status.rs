//! `ferry status`: one screen per configuration — each flow's state, lag,
//! rate and errors.
//!
//! From the running instance when the config has `[metrics] listen` and it
//! answers (two scrapes one second apart give the rate); otherwise computed
//! from the clusters: the flows' checkpoints on the target against the
//! source's end offsets (no rate, and positions only as fresh as the last
//! checkpoint).
//!
//! LAG counts source records not yet on the target up to the source's high
//! watermark: 0 means nothing is left to copy (the failover runbook's
//! check). Records of open transactions are part of it (they cannot be
//! copied yet, but once committed they must be); the part of the lag they
//! make up is shown after it. A flow with a stopped partition reads
//! STOPPED (with the partition and cause), never "ready".

use ferry_client::util::unix_millis;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use ferry_client::{Isolation, OffsetSpec};
use ferry_engine::checkpoint::{CHECKPOINT_TOPIC, CheckpointStore};
use ferry_engine::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file (TOML; see docs/configuration.md).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Ask the instance at this address instead of `[metrics] listen`.
    #[arg(long, value_name = "HOST:PORT")]
    address: Option<SocketAddr>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let config = match super::load_config(&args.config) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let address = args.address.or(config.metrics.listen).map(|mut a| {
        if a.ip().is_unspecified() {
            a.set_ip([127, 0, 0, 1].into()); // listening everywhere: ask locally
        }
        a
    });
    if let Some(addr) = address {
        match from_instance(addr) {
            Ok(rows) => {
                println!("ferry at {addr} (live):");
                print_table(&rows, true);
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => println!("no running ferry answers at {addr} ({e:#}); from the clusters:"),
        }
    } else {
        println!("no [metrics] listen configured; from the clusters:");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let rows = runtime.block_on(from_clusters(&config));
    print_table(&rows, false);
    Ok(ExitCode::SUCCESS)
}

/// One line of the table.
#[derive(Debug, Default, Clone)]
struct Row {
    flow: String,
    state: String,
    partitions: String,
    lag_records: Option<f64>,
    /// Lag up to the last stable offset (what can be copied now).
    lag_stable: Option<f64>,
    lag_seconds: Option<f64>,
    records_per_s: Option<f64>,
    records: Option<f64>,
    last_error: String,
}

fn print_table(rows: &[Row], live: bool) {
    let num =
        |v: Option<f64>, unit: &str| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}{unit}"));
    let header = [
        "FLOW",
        "STATE",
        "PARTITIONS",
        "LAG",
        "LAG AGE",
        "RATE",
        "MIRRORED",
        "ERRORS",
    ];
    let mut lines: Vec<[String; 8]> = vec![header.map(str::to_owned)];
    for r in rows {
        lines.push([
            r.flow.clone(),
            r.state.clone(),
            r.partitions.clone(),
            lag_cell(r.lag_records, r.lag_stable),
            r.lag_seconds
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}s")),
            if live {
                num(r.records_per_s, "/s")
            } else {
                "-".to_owned()
            },
            num(r.records, ""),
            if r.last_error.is_empty() {
                "-".to_owned()
            } else {
                r.last_error.clone()
            },
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("  {}", cells.join("  ").trim_end());
    }
}

/// The lag, and the part of it in open transactions when there is one.
fn lag_cell(lag: Option<f64>, stable: Option<f64>) -> String {
    match (lag, stable) {
        (None, _) => "-".to_owned(),
        (Some(lag), Some(stable)) if lag > stable => {
            format!("{lag:.0} ({:.0} in open transactions)", lag - stable)
        }
        (Some(lag), _) => format!("{lag:.0}"),
    }
}

// ---- live: from /metrics ---------------------------------------------------

const METRICS_BODY_LIMIT: u64 = 64 << 20;

fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    // The address is user input: it may not be ferry at all, so cap what we
    // hold (per-partition metrics of thousands of partitions fit easily).
    let mut out = String::new();
    s.take(METRICS_BODY_LIMIT + 1).read_to_string(&mut out)?;
    if out.len() as u64 > METRICS_BODY_LIMIT {
        anyhow::bail!(
            "{addr}{path}: response larger than {} MiB, not ferry's metrics endpoint?",
            METRICS_BODY_LIMIT >> 20
        );
    }
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("not an HTTP response")?;
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_owned()))
}

/// Samples of an exposition: (name, labels, value).
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        out.push((name.to_owned(), labels, value));
    }
    out
}

fn from_instance(addr: SocketAddr) -> Result<Vec<Row>> {
    let (status, first) = get(addr, "/metrics")?;
    anyhow::ensure!(status == 200, "/metrics answered {status}");
    std::thread::sleep(Duration::from_secs(1));
    let (_, second) = get(addr, "/metrics")?;
    let before = samples(&first);
    let after = samples(&second);
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let row = |rows: &mut BTreeMap<String, Row>, flow: &str| -> Row {
        rows.entry(flow.to_owned())
            .or_insert_with(|| Row {
                flow: flow.to_owned(),
                ..Row::default()
            })
            .clone()
    };
    let mut running: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    // Partitions not running, by flow: (state, "topic-partition: cause").
    let mut not_running: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut errors: BTreeMap<String, (f64, String)> = BTreeMap::new();
    for (name, labels, value) in &after {
        let Some(flow) = labels.get("flow") else {
            continue;
        };
        let mut r = row(&mut rows, flow);
        match name.as_str() {
            "ferry_flow_ready" => {
                r.state = if *value > 0.0 { "ready" } else { "not ready" }.to_owned();
            }
            "ferry_flow_lag_records" => r.lag_records = Some(*value),
            "ferry_flow_lag_stable_records" => r.lag_stable = Some(*value),
            "ferry_partition_not_running" if *value > 0.0 => {
                let get = |k: &str| labels.get(k).map_or("?", String::as_str);
                not_running.entry(flow.clone()).or_default().push((
                    get("state").to_owned(),
                    format!("{}-{}: {}", get("topic"), get("partition"), get("cause")),
                ));
            }
            "ferry_records_total" => {
                r.records = Some(*value);
                let earlier = before
                    .iter()
                    .find(|(n, l, _)| n == name && l.get("flow") == Some(flow))
                    .map_or(*value, |(_, _, v)| *v);
                r.records_per_s = Some(value - earlier);
            }
            "ferry_lag_seconds" => {
                r.lag_seconds = Some(r.lag_seconds.unwrap_or(0.0).max(*value));
            }
            "ferry_partitions" => {
                let e = running.entry(flow.clone()).or_default();
                match labels.get("state").map(String::as_str) {
                    Some("running") => e.0 = *value,
                    Some("stopped") => e.1 = *value,
                    Some("retrying") => e.2 = *value,
                    _ => {}
                }
            }
            "ferry_errors_total" => {
                let e = errors.entry(flow.clone()).or_default();
                e.0 += value;
                if *value > 0.0 {
                    e.1 = format!(
                        "{} during {}",
                        labels.get("code").map_or("?", String::as_str),
                        labels.get("during").map_or("?", String::as_str)
                    );
                }
            }
            _ => {}
        }
        rows.insert(flow.clone(), r);
    }
    for (flow, r) in &mut rows {
        let (run, stop, retry) = running.get(flow).copied().unwrap_or_default();
        r.partitions = format!("{run:.0} running");
        if retry > 0.0 {
            r.partitions.push_str(&format!(", {retry:.0} retrying"));
        }
        if stop > 0.0 {
            r.partitions.push_str(&format!(", {stop:.0} stopped"));
        }
        if let Some(state) = partition_state(not_running.get(flow).map_or(&[][..], Vec::as_slice)) {
            r.state = state;
        }
        if let Some((n, last)) = errors.get(flow).filter(|(n, _)| *n > 0.0) {
            r.last_error = format!("{n:.0} (e.g. {last})");
        }
    }
    Ok(rows.into_values().collect())
}

/// The STATE of a flow with partitions not running: STOPPED (they need an
/// operator) before retrying, with the first partition and its cause.
fn partition_state(not_running: &[(String, String)]) -> Option<String> {
    for (state, label) in [("stopped", "STOPPED"), ("retrying", "retrying")] {
        let hit: Vec<&String> = not_running
            .iter()
            .filter(|(s, _)| s == state)
            .map(|(_, what)| what)
            .collect();
        if let Some(first) = hit.first() {
            let more = if hit.len() > 1 {
                format!(" and {} more", hit.len() - 1)
            } else {
                String::new()
            };
            return Some(format!("{label} ({first}{more})"));
        }
    }
    None
}

// ---- offline: from the checkpoints ----------------------------------------

async fn from_clusters(config: &Config) -> Vec<Row> {
    let mut rows = Vec::new();
    for flow in &config.flows {
        let mut row = Row {
            flow: flow.name.clone(),
            state: "not running".to_owned(),
            ..Row::default()
        };
        match flow_lag(config, &flow.name, &flow.source, &flow.target).await {
            Ok((partitions, (lag, stable), age)) => {
                row.partitions = format!("{partitions} checkpointed");
                row.lag_records = Some(lag);
                row.lag_stable = Some(stable);
                row.lag_seconds = age;
            }
            Err(e) => row.last_error = format!("{e:#}"),
        }
        rows.push(row);
    }
    rows
}

use super::connect;

/// Partitions checkpointed, their lag in records (up to the high watermark,
/// and up to the last stable offset), and the checkpoint's age.
async fn flow_lag(
    config: &Config,
    flow: &str,
    source_alias: &str,
    target_alias: &str,
) -> Result<(usize, (f64, f64), Option<f64>)> {
    let source = connect(config, source_alias).await?;
    let target = connect(config, target_alias).await?;
    let topics = target
        .list_topics()
        .await
        .with_context(|| format!("cluster {target_alias}: listing topics"))?;
    if !topics.topics.contains_key(CHECKPOINT_TOPIC) {
        return Ok((0, (0.0, 0.0), None));
    }
    let checkpoints = CheckpointStore::new(target)
        .load(flow)
        .await
        .with_context(|| format!("cluster {target_alias}: reading checkpoints"))?;
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    let mut newest = 0;
    for (tp, c) in &checkpoints {
        by_topic
            .entry(&tp.topic)
            .or_default()
            .push((tp.partition, c.source_offset));
        newest = newest.max(c.time_ms);
    }
    let mut lag = [0i64; 2];
    for (topic, parts) in by_topic {
        let ids: Vec<i32> = parts.iter().map(|(p, _)| *p).collect();
        // The high watermark (read_uncommitted), then the last stable offset.
        for (i, isolation) in [Isolation::ReadUncommitted, Isolation::ReadCommitted]
            .into_iter()
            .enumerate()
        {
            let ends = source
                .list_offsets_with(topic, &ids, OffsetSpec::Latest, isolation)
                .await
                .with_context(|| format!("cluster {source_alias}: end offsets of {topic}"))?;
            for (p, end) in ends {
                if let Some((_, at)) = parts.iter().find(|(q, _)| *q == p) {
                    lag[i] += (end - at).max(0);
                }
            }
        }
    }
    let now = unix_millis();
    #[allow(clippy::cast_precision_loss)]
    let age = (newest > 0).then(|| (now - newest).max(0) as f64 / 1000.0);
    #[allow(clippy::cast_precision_loss)]
    Ok((checkpoints.len(), (lag[0] as f64, lag[1] as f64), age))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_partition_reads_stopped_before_retrying_ones() {
        let rows = [
            ("retrying".to_owned(), "t-1: not_delivered".to_owned()),
            ("stopped".to_owned(), "t-0: corrupt_batch".to_owned()),
            ("stopped".to_owned(), "t-2: corrupt_batch".to_owned()),
        ];
        assert_eq!(
            partition_state(&rows).as_deref(),
            Some("STOPPED (t-0: corrupt_batch and 1 more)")
        );
        assert_eq!(
            partition_state(&rows[..1]).as_deref(),
            Some("retrying (t-1: not_delivered)")
        );
        assert_eq!(partition_state(&[]), None);
    }

    #[test]
    fn lag_shows_the_part_in_open_transactions() {
        assert_eq!(
            lag_cell(Some(120.0), Some(100.0)),
            "120 (20 in open transactions)"
        );
        assert_eq!(lag_cell(Some(5.0), Some(5.0)), "5");
        assert_eq!(lag_cell(Some(5.0), None), "5");
        assert_eq!(lag_cell(None, Some(1.0)), "-");
    }
}
