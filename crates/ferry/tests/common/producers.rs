//! Real independent producers for the end-to-end tests
//! (tests/scripts/mirror_cases.py: the Kafka Java producer, transactional
//! or not, and librdkafka, running producer scripts), and waits for what
//! the source brokers do with their data (transactions closing, the log
//! cleaner compacting).

use ferry_testkit::eventually_every;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferry_client::{Client, Isolation, OffsetSpec};
use ferry_wire::batch::RecordBatch;

use super::{now_ms, read_all, records};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `tests/scripts/mirror_cases.py` and returns its stdout.
pub async fn helper(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/mirror_cases.py");
        let out = Command::new("python3")
            .arg(script)
            .args(&args)
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mirror_cases.py {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
    .await
    .unwrap()
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Writes a producer script (`standard` or `compact`, see mirror_cases.py).
pub async fn script(dir: &Path, kind: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(format!("{kind}.txt"));
    let mut args = strings(&["script", kind, "--out", path.to_str().unwrap()]);
    args.extend(strings(extra));
    helper(args).await;
    path
}

/// One run of a real producer: `java` (JavaProducer.java) or `librdkafka`.
pub struct Produce {
    pub client: &'static str,
    pub topic: String,
    pub codec: &'static str,
}

/// Producer processes running at once, across the tests of this file.
static PRODUCERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(3);

/// Runs the producers concurrently, each executing `script` against `bootstrap`.
/// Transactional ids are `<topic>-T1`, `<topic>-T2`.
pub async fn produce_real(bootstrap: &str, script: &Path, runs: Vec<Produce>) {
    let mut set = tokio::task::JoinSet::new();
    for run in runs {
        let mut args = strings(&[
            "produce",
            "--client",
            run.client,
            "--bootstrap",
            bootstrap,
            "--topic",
            &run.topic,
            "--script",
            script.to_str().unwrap(),
            "--t0",
            &now_ms().to_string(),
            "--txn-prefix",
            &run.topic,
        ]);
        // testdata/gen's settings: flush() decides the batches.
        let mut props = vec![
            "linger.ms=1000".to_owned(),
            "acks=all".to_owned(),
            format!("compression.type={}", run.codec),
        ];
        if run.client == "java" {
            props.push("batch.size=1048576".to_owned());
        }
        for p in props {
            args.push("--prop".to_owned());
            args.push(p);
        }
        set.spawn(async move {
            // Every producer run is a JVM or a Python process: a few at a
            // time across all tests keeps a 2-core machine responsive.
            let _permit = PRODUCERS.acquire().await.unwrap();
            helper(args).await
        });
    }
    while let Some(done) = set.join_next().await {
        if let Err(e) = done {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// End offsets (high watermarks) of every partition.
pub async fn high_watermarks(c: &Client, topic: &str, partitions: i32) -> Vec<i64> {
    let ps: Vec<i32> = (0..partitions).collect();
    let _ = c.refresh_metadata(Some(&[topic])).await;
    match c
        .list_offsets_with(topic, &ps, OffsetSpec::Latest, Isolation::ReadUncommitted)
        .await
    {
        Ok(v) => v.into_iter().map(|(_, o)| o).collect(),
        Err(_) => vec![-1; ps.len()],
    }
}

/// Waits until no transaction is open on `topic`'s partition 0: the last
/// stable offset reaches the high watermark.
pub async fn wait_stable(c: &Client, topic: &str) {
    let what = format!("{topic}: no open transaction");
    eventually_every(
        Duration::from_secs(60),
        Duration::from_millis(100),
        what,
        || async {
            let hw = high_watermarks(c, topic, 1).await;
            let lso = c
                .list_offsets(topic, &[0], OffsetSpec::Latest)
                .await
                .unwrap();
            if lso[0].1 == hw[0] {
                Ok(())
            } else {
                Err(format!("LSO {lso:?} below HW {hw:?}"))
            }
        },
    )
    .await;
}

/// Waits until the cleaner has left one record per key (`keys`) and the
/// partition has offset gaps; returns the source batches.
pub async fn wait_compacted(a: &Client, topic: &str, keys: usize) -> Vec<RecordBatch> {
    let what = format!("{topic} compacted");
    eventually_every(
        Duration::from_secs(120),
        Duration::from_millis(500),
        what,
        || async {
            let batches = read_all(a, topic, 0).await;
            let count = records(&batches).len();
            let mut expect = 0;
            let mut gaps = false;
            for b in &batches {
                let h = b.header();
                gaps |= h.base_offset != expect || !h.offsets_are_contiguous();
                expect = h.next_offset();
            }
            if count == keys && gaps {
                Ok(batches)
            } else {
                Err(format!("{count} records for {keys} keys, gaps: {gaps}"))
            }
        },
    )
    .await
}
