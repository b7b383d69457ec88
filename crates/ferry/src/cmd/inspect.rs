//! `ferry inspect`: the wire layer and the batch plan over captured data,
//! without any broker.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use bytes::Bytes;
use ferry_engine::plan::{PartitionPlanner, Plan, PlanConfig, TopicPartition};
use ferry_wire::batch::{BatchIter, FetchedBatch};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `records.bin` files, or directories holding one (testdata cases).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print one line per batch.
    #[arg(long)]
    batches: bool,
    /// The target's max.message.bytes: larger batches are split on the slow path.
    #[arg(long, default_value_t = 1_048_588)]
    max_message_bytes: usize,
}

#[derive(Debug, Default)]
struct Totals {
    bytes: usize,
    batches: usize,
    fast: usize,
    slow: BTreeMap<String, usize>,
    skipped: BTreeMap<String, usize>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let mut all = Totals::default();
    let mut failed = false;
    for path in &args.paths {
        let file = if path.is_dir() {
            path.join("records.bin")
        } else {
            path.clone()
        };
        match inspect_file(&file, args, &mut all) {
            Ok(()) => {}
            Err(e) => {
                eprintln!("{}: {}", file.display(), crate::error_chain(&e));
                failed = true;
            }
        }
    }
    println!(
        "total: {} batches, {} bytes; fast path {}; slow path {:?}; skipped {:?}",
        all.batches, all.bytes, all.fast, all.slow, all.skipped
    );
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn inspect_file(file: &Path, args: &Args, all: &mut Totals) -> Result<()> {
    let data =
        Bytes::from(fs::read(file).with_context(|| format!("cannot read {}", file.display()))?);
    let name = file.parent().and_then(Path::file_name).map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut iter = BatchIter::new(data.clone());
    let entries: Vec<FetchedBatch> = iter.by_ref().collect::<Result<_, _>>()?;
    let first = entries.first().map_or(0, |e| match e {
        FetchedBatch::V2(b) => b.header().base_offset,
        FetchedBatch::Legacy(m) => m.offset(),
    });
    let tp = TopicPartition {
        topic: name.as_str().into(),
        partition: 0,
    };
    let config = PlanConfig {
        max_batch_bytes: args.max_message_bytes,
        ..PlanConfig::default()
    };
    // Aborted transactions come from the fetch response, which a bare
    // records.bin lacks; transactional data is shown as data here.
    let plans = PartitionPlanner::new(tp, first, config).plan_fetch(entries.iter().cloned(), [])?;
    let mut t = Totals::default();
    for (entry, (_, plan)) in entries.iter().zip(&plans) {
        t.batches += 1;
        t.bytes += entry.len();
        let what = match plan {
            Plan::Forward { .. } => {
                t.fast += 1;
                "forward".to_string()
            }
            Plan::Reencode { reason, batches } => {
                *t.slow.entry(format!("{reason:?}")).or_default() += 1;
                format!("re-encode ({reason:?}) into {} batch(es)", batches.len())
            }
            Plan::Skip(why) => {
                *t.skipped.entry(format!("{why:?}")).or_default() += 1;
                format!("skip ({why:?})")
            }
        };
        if args.batches {
            match entry {
                FetchedBatch::V2(b) => {
                    let h = b.header();
                    println!(
                        "  {name} offsets {}..={} records {} bytes {} {} pid {} {}",
                        h.base_offset,
                        h.last_offset(),
                        h.record_count,
                        b.len(),
                        h.compression().map_or("?", |c| c.name()),
                        h.producer_id,
                        what
                    );
                }
                FetchedBatch::Legacy(m) => {
                    println!(
                        "  {name} legacy v{} offset {} {}",
                        m.magic(),
                        m.offset(),
                        what
                    );
                }
            }
        }
    }
    println!(
        "{name}: {} batches, {} bytes, fast path {}, slow path {:?}, skipped {:?}, partial tail {} bytes",
        t.batches,
        t.bytes,
        t.fast,
        t.slow,
        t.skipped,
        iter.incomplete_tail()
    );
    all.batches += t.batches;
    all.bytes += t.bytes;
    all.fast += t.fast;
    for (k, v) in t.slow {
        *all.slow.entry(k).or_default() += v;
    }
    for (k, v) in t.skipped {
        *all.skipped.entry(k).or_default() += v;
    }
    Ok(())
}
