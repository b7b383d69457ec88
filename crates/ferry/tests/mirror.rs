//! Real-broker tests of `ferry run`: two clusters from the harness
//! (FERRY_KAFKA_A as source, FERRY_KAFKA_B as target), the real binary, and
//! a record-by-record comparison of both sides afterwards.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use ferry_testkit::eventually;
use std::time::Duration;

use common::{
    Ferry, brokers, client, create, produce, read_all, records, try_read_all, unique,
    wait_mirrored, write_config,
};
use ferry_wire::batch::RECORD_BATCH_OVERHEAD;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_record_identically_and_resumes_without_duplicates() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-mirror-test"));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = unique("mirror");
    let topic = format!("{prefix}-orders");
    create(&a, &topic, 3).await;
    for p in 0..3 {
        produce(&a, &topic, p, 12, usize::try_from(p).unwrap()).await;
    }
    let flow = unique("flow");
    let config = write_config(&dir, &a_addr, &b_addr, &flow, &format!("{prefix}-.*"));
    let target = format!("src.{topic}");

    // 1. Mirror, and pick up a topic created while running...
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    wait_mirrored(&a, &b, &topic, &target, 3).await;
    let late = format!("{prefix}-late");
    create(&a, &late, 2).await;
    produce(&a, &late, 1, 3, 9).await;
    wait_mirrored(&a, &b, &late, &format!("src.{late}"), 2).await;
    // ...and a partition added to a mirrored topic while running.
    a.create_partitions(&late, 3).await.unwrap();
    produce(&a, &late, 2, 2, 11).await;
    wait_mirrored(&a, &b, &late, &format!("src.{late}"), 3).await;
    ferry.stop();

    // Record-identical, and payloads byte-identical (the fast path).
    for p in 0..3 {
        let src = read_all(&a, &topic, p).await;
        let dst = read_all(&b, &target, p).await;
        assert_eq!(records(&src), records(&dst), "partition {p}");
        assert_eq!(src.len(), dst.len(), "batch for batch");
        for (s, d) in src.iter().zip(&dst) {
            assert_eq!(
                s.as_bytes()[RECORD_BATCH_OVERHEAD..],
                d.as_bytes()[RECORD_BATCH_OVERHEAD..]
            );
            assert_eq!(
                s.header().compression().unwrap(),
                d.header().compression().unwrap()
            );
        }
    }

    // 2. Restart after SIGTERM: new data only, nothing duplicated.
    for p in 0..3 {
        produce(&a, &topic, p, 4, 20).await;
    }
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    wait_mirrored(&a, &b, &topic, &target, 3).await;
    ferry.stop();
    for p in 0..3 {
        assert_eq!(
            records(&read_all(&a, &topic, p).await),
            records(&read_all(&b, &target, p).await),
            "partition {p} after restart"
        );
    }

    // 3. kill -9 mid-stream, restart: nothing lost, and nothing duplicated:
    //    the restart matches the target's tail past the last checkpoint.
    for p in 0..3 {
        produce(&a, &topic, p, 150, 30).await;
    }
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    ferry.kill();
    let ferry = Ferry::start(&config, dir.join("ferry.log"));
    // Done when every partition's target ends with the source's last record
    // (an end-offset comparison could be fooled by re-sent records).
    eventually(
        Duration::from_secs(120),
        "every partition caught up",
        || async {
            for p in 0..3 {
                let src = records(&read_all(&a, &topic, p).await);
                let dst = records(&read_all(&b, &target, p).await);
                if dst.last() != src.last() {
                    return Err(format!("partition {p} behind"));
                }
            }
            Ok(())
        },
    )
    .await;
    ferry.stop();
    let mut duplicates = 0;
    for p in 0..3 {
        let src = records(&read_all(&a, &topic, p).await);
        let dst = records(&read_all(&b, &target, p).await);
        // Every source record is on the target, in order.
        let mut it = dst.iter();
        for r in &src {
            assert!(
                it.any(|d| d == r),
                "partition {p}: a source record is missing on the target"
            );
        }
        duplicates += dst.len() - src.len();
    }
    let log = std::fs::read_to_string(dir.join("ferry.log")).unwrap_or_default();
    assert_eq!(
        duplicates, 0,
        "records duplicated after kill -9; ferry's log:\n{log}"
    );
    println!(
        "after kill -9: {} partition(s) resumed past the checkpoint by matching the target's tail",
        log.matches("resuming after them").count()
    );
    // Offset translation after the crash: exact where the map is known,
    // never past the record (a consumer re-reads, never skips).
    let mut exact = 0;
    let mut total = 0;
    for p in 0..3 {
        let src = records(&read_all(&a, &topic, p).await);
        let end = i64::try_from(src.len()).unwrap();
        for (s, t) in common::translate(&config, &topic, p, end)
            .into_iter()
            .enumerate()
        {
            let s = i64::try_from(s).unwrap();
            assert!(
                t <= s,
                "partition {p}: source offset {s} translated past its record to {t}"
            );
            exact += usize::from(t == s);
            total += 1;
        }
    }
    println!(
        "translation after kill -9: {exact} of {total} source offsets exact, the rest conservative"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One process, two flows from the same source: one with prefix naming that
/// starts at a timestamp, one with identity naming that starts at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_flows_in_one_process_with_their_own_naming_and_start() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-two-flows"));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = unique("flows");
    let (by_time, by_end) = (format!("{prefix}-time"), format!("{prefix}-end"));
    create(&a, &by_time, 1).await;
    create(&a, &by_end, 2).await;
    // Before the cut: neither flow may copy these.
    produce(&a, &by_time, 0, 3, 1).await;
    produce(&a, &by_end, 0, 2, 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cut = common::now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    produce(&a, &by_time, 0, 2, 3).await;

    let config = dir.join("flows.toml");
    let rfc3339 = {
        let secs = cut / 1000;
        let millis = cut % 1000;
        // civil date from days since the epoch (Howard Hinnant's algorithm)
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    };
    std::fs::write(
        &config,
        format!(
            r#"
[clusters.src]
bootstrap_servers = ["{a_addr}"]
[clusters.dst]
bootstrap_servers = ["{b_addr}"]
[[flows]]
name = "{prefix}-a"
source = "src"
target = "dst"
topics = ["{by_time}"]
start = {{ timestamp = "{rfc3339}" }}
discovery_interval = "1s"
[[flows]]
name = "{prefix}-b"
source = "src"
target = "dst"
topics = ["{by_end}"]
naming = "identity"
start = "latest"
discovery_interval = "1s"
"#
        ),
    )
    .unwrap();
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());
    // Produce to the "latest" flow only once both its partitions started.
    eventually(
        Duration::from_secs(60),
        "both partitions started",
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let started = text
                .lines()
                .filter(|l| l.contains("partition started") && l.contains(&by_end))
                .count();
            if started >= 2 {
                Ok(())
            } else {
                Err(format!("log:\n{text}"))
            }
        },
    )
    .await;
    produce(&a, &by_end, 1, 2, 4).await;
    let time_target = format!("src.{by_time}");
    // Only the 2 batches after the cut, and only the 2 produced after start.
    let (time_src, end_src) =
        eventually(Duration::from_secs(60), "both flows mirrored", || async {
            let _ = b
                .refresh_metadata(Some(&[time_target.as_str(), by_end.as_str()]))
                .await;
            let t = records(&try_read_all(&b, &time_target, 0).await.unwrap_or_default());
            let e0 = records(&try_read_all(&b, &by_end, 0).await.unwrap_or_default());
            let e1 = records(&try_read_all(&b, &by_end, 1).await.unwrap_or_default());
            if t.len() >= 100 && e1.len() >= 100 {
                assert!(
                    e0.is_empty(),
                    "records from before start = latest were copied"
                );
                return Ok((t, e1));
            }
            Err(format!("time {} end {}", t.len(), e1.len()))
        })
        .await;
    ferry.stop();
    let src_time = records(&read_all(&a, &by_time, 0).await);
    assert_eq!(
        time_src,
        src_time[150..],
        "exactly the records at or after the cut"
    );
    let src_end = records(&read_all(&a, &by_end, 1).await);
    assert_eq!(end_src, src_end, "partition 1 got only post-start records");
    let _ = std::fs::remove_dir_all(&dir);
}
