//! `ferry verify`: compare every mirrored partition with its source, record
//! by record (key, value, headers in order with duplicates, timestamp, and
//! order), aligned by the flow's checkpoints on the target.
//!
//! For each partition with a checkpoint, the source records before its
//! `source_offset` (read_committed, aborted transactions and markers
//! dropped: exactly what ferry forwards) are walked backwards next to the
//! target records before its `target_offset`, so the newest ends line up
//! even when one side lacks the oldest records (ferry started at `latest`,
//! or retention deleted them). Target records past the checkpoint must be
//! the next source records. Both sides are streamed in chunks of a few MiB;
//! memory per partition is bounded by the duplicate window (see
//! [`align::Limits`]). Run it while ferry is stopped for an exact answer; while
//! ferry runs, its latest records show up as "past the checkpoint".
//!
//! Exit status: 0 every started partition matches; 1 a difference, or a
//! cluster or partition that could not be read; 64 invalid config; 66
//! unreadable config file.

mod align;
mod read;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ferry_client::TopicPartition;
use ferry_engine::checkpoint::{CHECKPOINT_TOPIC, CheckpointStore, CheckpointValue};
use ferry_engine::config::{Config, FlowConfig};
use ferry_wire::record::Record;

use align::{Alignment, Finding, Limits, Tail};
use read::{Backward, Forward, PartitionReader};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file (TOML; see docs/configuration.md).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Exit 0 even if the target holds blocks of records re-sent after a
    /// crash (kill -9 between checkpoints), when that is the only difference.
    #[arg(long)]
    allow_duplicates: bool,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let config = match super::load_config(&args.config) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let totals = runtime.block_on(verify(&config, args.allow_duplicates));
    println!("\n{}", totals.line());
    Ok(if totals.differing == 0 && totals.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

impl Totals {
    /// `verify: all 4 partitions match` or `verify: 2 of 4 partitions match, 1 differs, 1 not started`.
    fn line(&self) -> String {
        let total = self.matching + self.differing + self.not_started + self.errors;
        let mut parts = vec![if total == 0 {
            "no partitions to verify".to_owned()
        } else if self.matching == 1 && total == 1 {
            "1 partition, it matches".to_owned()
        } else if self.matching == total {
            format!("all {total} partitions match")
        } else {
            format!("{} of {} match", self.matching, plural(total, "partition"))
        }];
        if self.differing > 0 {
            let verb = if self.differing == 1 {
                "differs"
            } else {
                "differ"
            };
            parts.push(format!("{} {verb}", self.differing));
        }
        if self.not_started > 0 {
            parts.push(format!("{} not started", self.not_started));
        }
        if self.errors > 0 {
            parts.push(format!("{} could not be read", self.errors));
        }
        format!("verify: {}", parts.join(", "))
    }
}

#[derive(Debug, Default)]
struct Totals {
    matching: usize,
    differing: usize,
    not_started: usize,
    /// Clusters, topics or partitions that could not be read.
    errors: usize,
}

async fn verify(config: &Config, allow_duplicates: bool) -> Totals {
    let mut totals = Totals::default();
    for flow in &config.flows {
        println!("flow {}: {} -> {}", flow.name, flow.source, flow.target);
        if let Err(e) = verify_flow(config, flow, allow_duplicates, &mut totals).await {
            println!("  error: {}", crate::error_chain(&e));
            totals.errors += 1;
        }
    }
    totals
}

use super::connect;

async fn verify_flow(
    config: &Config,
    flow: &FlowConfig,
    allow_duplicates: bool,
    totals: &mut Totals,
) -> Result<()> {
    let source = connect(config, &flow.source).await?;
    let target = connect(config, &flow.target).await?;
    // As the engine decides it: the same bootstrap list means one cluster.
    let same_cluster = config.cluster(&flow.source).map(|c| &c.bootstrap_servers)
        == config.cluster(&flow.target).map(|c| &c.bootstrap_servers);
    let policy = flow.topic_policy(same_cluster)?;
    let target_meta = target
        .list_topics()
        .await
        .with_context(|| format!("cluster {}: listing topics", flow.target))?;
    // No checkpoint topic yet: ferry never ran against this target.
    let checkpoints: HashMap<TopicPartition, CheckpointValue> =
        if target_meta.topics.contains_key(CHECKPOINT_TOPIC) {
            CheckpointStore::new(target.clone())
                .load(&flow.name)
                .await
                .with_context(|| format!("cluster {}: reading checkpoints", flow.target))?
        } else {
            HashMap::new()
        };
    let source_meta = source
        .list_topics()
        .await
        .with_context(|| format!("cluster {}: listing topics", flow.source))?;
    for (name, topic) in &source_meta.topics {
        let Ok(mirror_name) = policy.map(name) else {
            continue;
        };
        if topic.is_internal || topic.partitions.is_empty() {
            continue;
        }
        let partitions: Vec<i32> = topic.partitions.keys().copied().collect();
        let bounds = match read::log_bounds(&source, name, &partitions).await {
            Ok(b) => b,
            Err(e) => {
                println!("  {name}: cannot read the source's offsets: {e}");
                totals.errors += 1;
                continue;
            }
        };
        // Target bounds per target topic (normally one, `mirror_name`).
        let mut target_bounds: BTreeMap<String, Result<Vec<(i64, i64)>, String>> = BTreeMap::new();
        for (&p, &(source_start, source_end)) in partitions.iter().zip(&bounds) {
            let label = format!("{name}-{p}");
            let Some(checkpoint) = checkpoints.get(&TopicPartition::new(name.as_str(), p)) else {
                println!("  {label} -> {mirror_name}-{p}: not started (no checkpoint)");
                totals.not_started += 1;
                continue;
            };
            // Where ferry wrote is what the checkpoint says.
            let target_topic = checkpoint.target_topic.as_str();
            let label = format!("{label} -> {target_topic}-{p}");
            if !target_bounds.contains_key(target_topic) {
                // A failure here shows below as a missing target partition.
                let _ = target.refresh_metadata(Some(&[target_topic])).await;
                let count = target
                    .metadata()
                    .topic(target_topic)
                    .map_or(0, |t| t.partitions.len());
                let all: Vec<i32> = (0..i32::try_from(count).unwrap_or(i32::MAX)).collect();
                let found = read::log_bounds(&target, target_topic, &all)
                    .await
                    .map_err(|e| e.to_string());
                target_bounds.insert(target_topic.to_owned(), found);
            }
            let target_partition = match target_bounds.get(target_topic) {
                Some(Ok(b)) => usize::try_from(p).ok().and_then(|i| b.get(i)).copied(),
                Some(Err(e)) => {
                    println!("  {label}: cannot read the target's offsets: {e}");
                    totals.errors += 1;
                    continue;
                }
                None => None,
            };
            let Some((target_start, target_end)) = target_partition else {
                println!("  {label}: the target partition does not exist");
                totals.differing += 1;
                continue;
            };
            let sides = Sides {
                source: PartitionReader::new(source.clone(), name, p),
                target: PartitionReader::new(target.clone(), target_topic, p),
                source_bounds: (source_start, source_end),
                target_bounds: (target_start, target_end),
            };
            match verify_partition(&sides, checkpoint).await {
                Ok(found) => {
                    let ok = found.ok(allow_duplicates);
                    println!("  {label}: {}", found.summary());
                    for line in found.describe(&sides).await {
                        println!("    {line}");
                    }
                    if ok {
                        totals.matching += 1;
                    } else {
                        totals.differing += 1;
                    }
                }
                Err(e) => {
                    println!("  {label}: error: {}", crate::error_chain(&e));
                    totals.errors += 1;
                }
            }
        }
    }
    Ok(())
}

/// Both sides of one partition.
#[derive(Debug)]
struct Sides {
    source: PartitionReader,
    target: PartitionReader,
    /// Log start and end (last stable offset) when verification began.
    source_bounds: (i64, i64),
    target_bounds: (i64, i64),
}

/// What one partition's comparison found.
#[derive(Debug)]
struct Found {
    aligned: Alignment,
    tail: Tail,
    /// A log that ends before the checkpoint's position.
    truncated: Vec<String>,
    source_start: i64,
    target_start: i64,
}

async fn verify_partition(sides: &Sides, checkpoint: &CheckpointValue) -> Result<Found> {
    let (source_start, source_end) = sides.source_bounds;
    let (target_start, target_end) = sides.target_bounds;
    // Logs only grow at the end: one ending before the checkpoint was
    // truncated or recreated. Compare what is there, and say so.
    let mut truncated = Vec::new();
    if checkpoint.source_offset > source_end {
        truncated.push(format!(
            "the source ends at offset {source_end}, before the checkpoint's {} \
             (truncated or recreated)",
            checkpoint.source_offset
        ));
    }
    // Replicated part: source before `source_offset`, target before
    // `target_offset` (none: nothing replicated yet, an empty part).
    let replicated_end = checkpoint.target_offset.unwrap_or(target_start);
    if replicated_end > target_end {
        truncated.push(format!(
            "the target ends at offset {target_end}, before the checkpoint's {replicated_end} \
             (truncated or recreated)"
        ));
    }
    let source_position = checkpoint.source_offset.min(source_end);
    let replicated_end = replicated_end.min(target_end);
    let mut source = Backward::new(sides.source.clone(), source_start, source_position);
    let mut target = Backward::new(sides.target.clone(), target_start, replicated_end);
    let aligned = align::align_backward(&mut source, &mut target, Limits::default()).await?;
    drop((source, target));
    // Past the checkpoint: whatever the target holds must come next on the
    // source. The source is read to its current end, not the one listed
    // before: if ferry is running, it may have copied newer records since.
    let mut source = Forward::new(
        sides.source.clone(),
        source_position.max(source_start),
        i64::MAX,
    );
    let mut target = Forward::new(
        sides.target.clone(),
        replicated_end.max(target_start),
        target_end,
    );
    let tail = align::compare_tail(&mut source, &mut target).await?;
    Ok(Found {
        aligned,
        tail,
        truncated,
        source_start,
        target_start,
    })
}

impl Found {
    fn ok(&self, allow_duplicates: bool) -> bool {
        self.tail.differs.is_none()
            && self.truncated.is_empty()
            && self
                .aligned
                .findings
                .iter()
                .all(|f| allow_duplicates && matches!(f, Finding::Duplicates { .. }))
    }

    fn summary(&self) -> String {
        let mut s = format!("{} match", plural_u64(self.aligned.matched, "record"));
        let differences = self.aligned.findings.len()
            + usize::from(self.tail.differs.is_some())
            + self.truncated.len();
        if differences > 0 {
            let more = if self.aligned.truncated {
                " or more"
            } else {
                ""
            };
            let _ = write!(s, ", {}{more}", plural(differences, "difference"));
        }
        if self.tail.matched > 0 {
            let _ = write!(
                s,
                "; {} past the checkpoint match the source (ferry running, or stopped by kill -9)",
                self.tail.matched
            );
        }
        if let Some(to) = self.aligned.source_older_from {
            let _ = write!(
                s,
                "; source offsets {}..={to} not compared: not on the target (before ferry's start \
                 position, or deleted there)",
                self.source_start
            );
        }
        if let Some(to) = self.aligned.target_older_from {
            let _ = write!(
                s,
                "; target offsets {}..={to} not compared: older than the source's log start",
                self.target_start
            );
        }
        s
    }

    /// One line per difference, oldest first; differing records are read
    /// again to say which fields differ.
    async fn describe(&self, sides: &Sides) -> Vec<String> {
        let mut lines = self.truncated.clone();
        for f in self.aligned.findings.iter().rev() {
            lines.push(match *f {
                Finding::Differs { source, target } => format!(
                    "source offset {source}, target offset {target}: {}",
                    differing_fields(sides, source, target).await
                ),
                Finding::Duplicates {
                    target,
                    source,
                    count,
                } => format!(
                    "{}: repeated by the next {count} target records ({} written twice: \
                     re-sent after a crash)",
                    offsets("target", target),
                    offsets("source", source)
                ),
                Finding::Extra {
                    target,
                    count,
                    after_source,
                } => format!(
                    "{}: {} not on the source (written by something else?), after the copy of \
                     source offset {after_source}",
                    offsets("target", target),
                    plural_u64(u64::try_from(count).unwrap_or(u64::MAX), "record")
                ),
                Finding::Missing {
                    source,
                    count,
                    after_target,
                } => format!(
                    "{}: {} missing on the target, after target offset {after_target}",
                    offsets("source", source),
                    plural_u64(u64::try_from(count).unwrap_or(u64::MAX), "record")
                ),
            });
        }
        if self.aligned.truncated {
            lines.push("… stopped comparing this partition after that many differences".into());
        }
        if let Some((source, target)) = self.tail.differs {
            let what = match source {
                Some(source) => format!(
                    "differs from the next source record, offset {source}: {}",
                    differing_fields(sides, source, target).await
                ),
                None => "not on the source (written by something else?)".into(),
            };
            lines.push(format!(
                "target offset {target} (past the checkpoint): {what}; {} from there",
                plural_u64(self.tail.unexplained, "target record")
            ));
        }
        lines
    }
}

/// Which fields of two records differ, e.g. `value differs (1024 vs 1023 bytes)`.
async fn differing_fields(sides: &Sides, source: i64, target: i64) -> String {
    let (s, t) = match (
        sides.source.record_at(source).await,
        sides.target.record_at(target).await,
    ) {
        (Ok(Some(s)), Ok(Some(t))) => (s, t),
        (Err(e), _) | (_, Err(e)) => {
            return format!("records differ (cannot read them again: {e})");
        }
        _ => return "records differ (one is gone)".into(),
    };
    let fields = field_differences(&s, &t);
    if fields.is_empty() {
        // Only possible if a record changed between the two reads.
        "records differ (equal when read again)".into()
    } else {
        fields.join(", ")
    }
}

fn field_differences(s: &Record, t: &Record) -> Vec<String> {
    let size = |b: &Option<bytes::Bytes>| {
        b.as_ref()
            .map_or("null".into(), |b| format!("{} bytes", b.len()))
    };
    let mut out = Vec::new();
    if s.key != t.key {
        out.push(format!(
            "key differs ({} vs {})",
            size(&s.key),
            size(&t.key)
        ));
    }
    if s.value != t.value {
        out.push(format!(
            "value differs ({} vs {})",
            size(&s.value),
            size(&t.value)
        ));
    }
    if s.headers != t.headers {
        let names = |r: &Record| {
            r.headers
                .iter()
                .map(|h| String::from_utf8_lossy(&h.key).into_owned())
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push(format!("headers differ ([{}] vs [{}])", names(s), names(t)));
    }
    if s.timestamp != t.timestamp {
        out.push(format!(
            "timestamp differs ({} vs {})",
            s.timestamp, t.timestamp
        ));
    }
    out
}

/// `target offset 7` or `target offsets 7..=9`.
fn offsets(side: &str, (first, last): (i64, i64)) -> String {
    if first == last {
        format!("{side} offset {first}")
    } else {
        format!("{side} offsets {first}..={last}")
    }
}

fn plural(n: usize, word: &str) -> String {
    plural_u64(u64::try_from(n).unwrap_or(u64::MAX), word)
}

fn plural_u64(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
