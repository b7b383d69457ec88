//! Real-broker tests of a flow that heals by itself (issue 14, part A) and
//! of what discovery starts: a topic created while a `start = "latest"`
//! flow runs is mirrored from its beginning; a partition stopped by a
//! transient cause resumes; one bad topic does not block the others.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Ferry, brokers, client, compare, create, produce, unique, wait_caught_up};

/// Waits until `log` shows `needle` at least `n` times.
async fn wait_log(log: &std::path::Path, needle: &str, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= n {
            return;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 14 item 10: `start = "latest"` applies to what exists when the
/// flow first starts; a topic created later is mirrored from offset 0,
/// even when it got records before the discovery that finds it.
#[tokio::test]
async fn a_topic_created_under_latest_is_mirrored_from_its_beginning() {
    let Some((a_addr, b_addr)) = brokers() else {
        return;
    };
    let (a, b) = (client(&a_addr).await, client(&b_addr).await);
    let dir = std::env::temp_dir().join(unique("ferry-heal-latest"));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = unique("latest");
    let (old, new) = (format!("{prefix}-old"), format!("{prefix}-new"));
    create(&a, &old, 1).await;
    produce(&a, &old, 0, 2, 1).await; // before the start: not copied
    let config = dir.join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[clusters.src]
bootstrap_servers = ["{a_addr}"]
[clusters.dst]
bootstrap_servers = ["{b_addr}"]
[[flows]]
name = "{prefix}"
source = "src"
target = "dst"
topics = ["{prefix}-.*"]
naming = "identity"
start = "latest"
discovery_interval = "8s"
[flows.tuning]
checkpoint_interval = "500ms"
"#
        ),
    )
    .unwrap();
    let log = dir.join("ferry.log");
    let ferry = Ferry::start(&config, log.clone());
    wait_log(&log, "partition started", 1, Duration::from_secs(60)).await;
    // Right after a discovery round: the next one is ~8 s away.
    create(&a, &new, 1).await;
    produce(&a, &new, 0, 10, 2).await; // 500 records before discovery sees the topic
    wait_log(&log, "partition started", 2, Duration::from_secs(60)).await;
    wait_caught_up(&a, &b, &new, &new, 1, Duration::from_secs(60)).await;
    ferry.stop();
    let c = compare(&a, &b, &new, &new, 1).await;
    assert_eq!(c.source_records, 500);
    assert_eq!((c.missing, c.duplicates), (0, 0), "{c:?}");
}
