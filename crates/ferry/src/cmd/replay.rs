//! `ferry replay`: captured partition data through ferry's produce paths into
//! a real cluster and back, checked record by record.
//!
//! It exercises everything below the engine's flows against a real broker:
//! batch iteration, the per-batch plan, header rewrite with a patched CRC,
//! the slow path, the zero-copy Produce encoder and the raw fetch.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use ferry_client::{
    Client, ClientConfig, ClientError, FetchOptions, Isolation, KafkaCode, NewTopic,
    ProduceOptions, Produced,
};
use ferry_engine::plan::{PartitionPlanner, Plan, PlanConfig, TopicPartition};
use ferry_wire::batch::{BatchIter, FetchedBatch, RECORD_BATCH_OVERHEAD, RecordBatch};
use ferry_wire::record::Record;
use ferry_wire::txn::AbortedTxn;

/// Largest batch the replay topics accept (captured cases hold ≥ 1 MiB values).
const MAX_MESSAGE_BYTES: usize = 8 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bootstrap broker of the cluster to write to, host:port.
    #[arg(long)]
    bootstrap: String,
    /// Prefix of the topics created (one per case, with a unique suffix).
    #[arg(long, default_value = "ferry-replay")]
    topic_prefix: String,
    /// Case directories holding records.bin and fetch.json (testdata/<case>).
    #[arg(required = true)]
    cases: Vec<PathBuf>,
}

#[derive(Debug, serde::Deserialize)]
struct FetchJson {
    /// Null when the broker sent none (read_uncommitted fetches).
    #[serde(default)]
    aborted_transactions: Option<Vec<AbortedJson>>,
}

#[derive(Debug, serde::Deserialize)]
struct AbortedJson {
    producer_id: i64,
    first_offset: i64,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client = Client::connect(&[args.bootstrap.as_str()], ClientConfig::default()).await?;
        let mut failed = 0;
        for case in &args.cases {
            if let Err(e) = replay_case(&client, &args.topic_prefix, case).await {
                eprintln!("{}: FAILED: {}", case.display(), crate::error_chain(&e));
                failed += 1;
            }
        }
        println!("replayed {} case(s), {} failed", args.cases.len(), failed);
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

fn unique_suffix() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

async fn replay_case(client: &Client, prefix: &str, dir: &Path) -> Result<()> {
    let name = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let records = Bytes::from(
        fs::read(dir.join("records.bin"))
            .with_context(|| format!("{}/records.bin", dir.display()))?,
    );
    let fetch: FetchJson = serde_json::from_slice(
        &fs::read(dir.join("fetch.json"))
            .with_context(|| format!("{}/fetch.json", dir.display()))?,
    )
    .with_context(|| format!("{}/fetch.json", dir.display()))?;
    let aborted: Vec<AbortedTxn> = fetch
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| AbortedTxn {
            producer_id: a.producer_id,
            first_offset: a.first_offset,
        })
        .collect();
    let entries: Vec<FetchedBatch> = BatchIter::new(records).collect::<Result<_, _>>()?;
    let start = entries.first().map_or(0, |e| match e {
        FetchedBatch::V2(b) => b.header().base_offset,
        FetchedBatch::Legacy(m) => m.offset(),
    });
    let topic = format!("{prefix}-{name}-{}", unique_suffix());
    client
        .create_topic(&NewTopic {
            name: topic.clone(),
            partitions: 1,
            replication_factor: 1,
            // Captured records keep their original timestamps: without
            // infinite retention the broker would delete them (as older than
            // the default 7 days) while they are being read back.
            configs: vec![
                ("max.message.bytes".into(), MAX_MESSAGE_BYTES.to_string()),
                ("retention.ms".into(), "-1".into()),
            ],
        })
        .await?;
    client
        .wait_for_topic(&topic, 1, std::time::Duration::from_secs(30))
        .await?;

    let tp = TopicPartition {
        topic: topic.as_str().into(),
        partition: 0,
    };
    let config = PlanConfig {
        max_batch_bytes: MAX_MESSAGE_BYTES,
        ..PlanConfig::default()
    };
    let plans = PartitionPlanner::new(tp, start, config).plan_fetch(entries, aborted)?;

    // Produce: forwarded batches as [rewritten header, original payload].
    let began = Instant::now();
    let mut scratch = BytesMut::new();
    let mut expected: Vec<Record> = Vec::new();
    let mut forwarded: Vec<(i64, Bytes)> = Vec::new(); // target base offset, source payload
    let (mut fast, mut slow, mut skipped, mut bytes) = (0usize, 0usize, 0usize, 0usize);
    for (_, plan) in plans {
        match plan {
            Plan::Forward { batch, header } => {
                let out = batch.rewrite_header(&header, &mut scratch)?;
                bytes += out.len();
                expected.extend(decode(&batch)?);
                let produced = produce(client, &topic, out.into_chunks().to_vec()).await?;
                forwarded.push((produced.base_offset, batch.payload()));
                fast += 1;
            }
            Plan::Reencode { batches, .. } => {
                for b in batches {
                    bytes += b.batch.len();
                    expected.extend(decode(&b.batch)?);
                    produce(client, &topic, vec![b.batch.as_bytes().clone()]).await?;
                }
                slow += 1;
            }
            Plan::Skip(_) => skipped += 1,
        }
    }
    let elapsed = began.elapsed();

    // Read everything back.
    let options = FetchOptions {
        isolation: Isolation::ReadCommitted,
        max_bytes: 64 << 20,
        partition_max_bytes: 64 << 20,
        ..FetchOptions::default()
    };
    let mut target: Vec<RecordBatch> = Vec::new();
    let mut offset = 0;
    loop {
        let fetched = client.fetch_raw(&topic, 0, offset, &options).await?;
        if let Some(code) = fetched.error {
            bail!("fetching {topic} back at offset {offset}: {code}");
        }
        let mut iter = BatchIter::new(fetched.records.clone());
        for entry in iter.by_ref() {
            match entry? {
                FetchedBatch::V2(b) => {
                    offset = b.header().next_offset();
                    target.push(b);
                }
                FetchedBatch::Legacy(_) => bail!("the target returned a legacy message"),
            }
        }
        if offset >= fetched.high_watermark {
            break;
        }
        if fetched.records.is_empty() {
            bail!("no progress reading {topic} back at offset {offset}");
        }
    }

    // Compare records, in order.
    let got: Vec<Record> = target
        .iter()
        .map(decode)
        .collect::<Result<Vec<_>>>()?
        .concat();
    if got.len() != expected.len() {
        bail!(
            "{} records produced, {} read back",
            expected.len(),
            got.len()
        );
    }
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        let same = g.key == e.key
            && g.value == e.value
            && g.headers == e.headers
            && g.timestamp == e.timestamp;
        if !same {
            bail!(
                "record {i} (source offset {}) differs after the round trip",
                e.offset
            );
        }
    }
    // Forwarded batches: the target stores the source's payload bytes as they were.
    for (base, payload) in &forwarded {
        let stored = target
            .iter()
            .find(|b| b.header().base_offset == *base)
            .with_context(|| format!("no target batch at offset {base}"))?;
        if stored.as_bytes()[RECORD_BATCH_OVERHEAD..] != payload[..] {
            bail!("the payload of the batch at target offset {base} differs from the source's");
        }
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "{name}: {} records OK; batches: {fast} forwarded byte-identical, {slow} re-encoded, {skipped} skipped; \
         {bytes} bytes produced in {:.0} ms ({:.1} MB/s, one batch per request)",
        got.len(),
        secs * 1e3,
        bytes as f64 / secs / 1e6
    );
    Ok(())
}

/// Produces one batch to partition 0, retrying while the partition's
/// leadership is still settling (a topic just created can answer
/// NOT_LEADER_OR_FOLLOWER for a moment after metadata lists its leader).
/// Those errors mean the batch was not appended, so a retry cannot duplicate.
async fn produce(client: &Client, topic: &str, batch: Vec<Bytes>) -> Result<Produced> {
    let mut attempts = 0;
    loop {
        match client
            .produce_batch(topic, 0, batch.clone(), &ProduceOptions::default())
            .await
        {
            Err(e) if attempts < 100 && not_appended(&e) => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                client.refresh_metadata(Some(&[topic])).await?;
            }
            other => return Ok(other?),
        }
    }
}

fn not_appended(e: &ClientError) -> bool {
    matches!(
        e.kafka_code(),
        Some(
            KafkaCode::NOT_LEADER_OR_FOLLOWER
                | KafkaCode::LEADER_NOT_AVAILABLE
                | KafkaCode::UNKNOWN_TOPIC_OR_PARTITION
        )
    )
}

fn decode(batch: &RecordBatch) -> Result<Vec<Record>> {
    if batch.header().is_control() {
        return Ok(vec![]);
    }
    Ok(batch.records(64 << 20)?.collect::<Result<_, _>>()?)
}
