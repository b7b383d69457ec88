//! Fetches one partition's raw record batches and prints each batch header.
//!
//! ```text
//! cargo run -p ferry-client --example fetch_raw -- \
//!     --bootstrap 127.0.0.1:9092 --topic t --partition 0 \
//!     [--offset 0] [--isolation committed|uncommitted] [--out records.bin]
//! ```
//!
//! `--out` writes the records bytes exactly as the broker sent them.

use std::process::ExitCode;

use ferry_client::{Client, ClientConfig, FetchOptions, Isolation};
use ferry_wire::batch::{BatchIter, FetchedBatch};

const USAGE: &str = "usage: fetch_raw --bootstrap HOST:PORT --topic TOPIC --partition N \
                     [--offset N] [--isolation committed|uncommitted] [--out FILE]";

#[derive(Debug)]
struct Args {
    bootstrap: String,
    topic: String,
    partition: i32,
    offset: i64,
    isolation: Isolation,
    out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut bootstrap = None;
    let mut topic = None;
    let mut partition = None;
    let mut offset = 0;
    let mut isolation = Isolation::ReadCommitted;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--bootstrap" => bootstrap = Some(value()?),
            "--topic" => topic = Some(value()?),
            "--partition" => {
                partition = Some(value()?.parse().map_err(|e| format!("--partition: {e}"))?)
            }
            "--offset" => offset = value()?.parse().map_err(|e| format!("--offset: {e}"))?,
            "--isolation" => {
                isolation = match value()?.as_str() {
                    "committed" => Isolation::ReadCommitted,
                    "uncommitted" => Isolation::ReadUncommitted,
                    other => {
                        return Err(format!(
                            "--isolation: expected committed or uncommitted, got {other:?}"
                        ));
                    }
                }
            }
            "--out" => out = Some(value()?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Args {
        bootstrap: bootstrap.ok_or_else(|| format!("--bootstrap is required\n{USAGE}"))?,
        topic: topic.ok_or_else(|| format!("--topic is required\n{USAGE}"))?,
        partition: partition.ok_or_else(|| format!("--partition is required\n{USAGE}"))?,
        offset,
        isolation,
        out,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let client = Client::connect(&[args.bootstrap.as_str()], ClientConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let options = FetchOptions {
        isolation: args.isolation,
        ..FetchOptions::default()
    };
    let fetched = client
        .fetch_raw(&args.topic, args.partition, args.offset, &options)
        .await
        .map_err(|e| e.to_string())?;

    println!(
        "{}-{} from offset {}: {} bytes, high watermark {}, last stable {}, log start {}, error {}",
        args.topic,
        args.partition,
        args.offset,
        fetched.records.len(),
        fetched.high_watermark,
        fetched.last_stable_offset,
        fetched.log_start_offset,
        fetched
            .error
            .map_or_else(|| "none".to_owned(), |c| c.to_string()),
    );
    for txn in &fetched.aborted_transactions {
        println!(
            "aborted transaction: producer {} from offset {}",
            txn.producer_id, txn.first_offset
        );
    }

    let mut batches = BatchIter::new(fetched.records.clone());
    for entry in &mut batches {
        match entry {
            Ok(FetchedBatch::V2(batch)) => {
                let h = batch.header();
                let codec = h
                    .compression()
                    .map_or_else(|e| e.to_string(), |c| c.to_string());
                println!(
                    "batch base_offset={} last_offset_delta={} count={} attributes={:#06x} codec={} producer_id={} bytes={}",
                    h.base_offset,
                    h.last_offset_delta,
                    h.record_count,
                    h.attributes,
                    codec,
                    h.producer_id,
                    batch.len(),
                );
            }
            Ok(FetchedBatch::Legacy(message)) => {
                let codec = message
                    .compression()
                    .map_or_else(|e| e.to_string(), |c| c.to_string());
                println!(
                    "legacy message (magic {}) offset={} codec={} bytes={}",
                    message.magic(),
                    message.offset(),
                    codec,
                    message.as_bytes().len(),
                );
            }
            Err(e) => println!("unparseable entry: {e}"),
        }
    }
    if batches.incomplete_tail() > 0 {
        println!(
            "{} trailing bytes are a partial batch (the fetch size limit cut it)",
            batches.incomplete_tail()
        );
    }
    if let Some(next) = batches.next_offset() {
        println!("next fetch offset: {next}");
    }

    if let Some(path) = &args.out {
        std::fs::write(path, &fetched.records).map_err(|e| format!("writing {path}: {e}"))?;
        println!("wrote {} bytes to {path}", fetched.records.len());
    }
    Ok(())
}
