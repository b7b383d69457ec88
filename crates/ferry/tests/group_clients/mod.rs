//! Real clients for the consumer-group tests (tests/runbook.rs,
//! tests/groups_vs_mm2.rs, tests/group_cases.rs): librdkafka producers and group members
//! (tests/scripts/group_consumer.py), Kafka's own Java tools through the
//! harness, and the `ferry` binary.

// Each test binary uses a different subset of these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One record a group member handed to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

fn check(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `group_consumer.py args...`; returns the records it printed.
pub fn clients(args: &[&str]) -> Vec<Received> {
    let out = Command::new("python3")
        .arg(repo_root().join("crates/ferry/tests/scripts/group_consumer.py"))
        .args(args)
        .output()
        .unwrap();
    check(&format!("group_consumer.py {args:?}"), &out)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, '\t').collect();
            assert_eq!(f.len(), 4, "group_consumer.py printed {l:?}");
            Received {
                topic: f[0].to_owned(),
                partition: f[1].parse().unwrap(),
                offset: f[2].parse().unwrap(),
                value: f[3].to_owned(),
            }
        })
        .collect()
}

/// Runs a Kafka tool class (`kafka_harness.py tool`); its output, whatever
/// the exit status.
pub fn kafka_tool_output(class: &str, args: &[&str]) -> Output {
    Command::new("python3")
        .arg(repo_root().join("harness/kafka_harness.py"))
        .args(["tool", class])
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap()
}

/// Runs a Kafka tool class; its stdout (it must succeed).
pub fn kafka_tool(class: &str, args: &[&str]) -> String {
    check(
        &format!("{class} {args:?}"),
        &kafka_tool_output(class, args),
    )
}

pub const TOPIC_COMMAND: &str = "org.apache.kafka.tools.TopicCommand";
pub const GROUP_COMMAND: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
pub const VERIFIABLE_PRODUCER: &str = "org.apache.kafka.tools.VerifiableProducer";
pub const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";

/// `kafka-console-consumer.sh --group G --include REGEX --from-beginning
/// --timeout-ms 8000`: the values it printed. Only for reading everything:
/// it exits when nothing came for 8 s and commits on close (auto-commit)
/// the position of everything it printed.
pub fn console_consume(bootstrap: &str, group: &str, include: &str) -> Vec<String> {
    kafka_tool(
        CONSOLE_CONSUMER,
        &[
            "--bootstrap-server",
            bootstrap,
            "--group",
            group,
            "--include",
            include,
            "--from-beginning",
            "--timeout-ms",
            "8000",
        ],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// `kafka-console-consumer.sh --group G --topic T --max-messages N`
/// (read_committed): the N records it printed, in the order it printed
/// them. It starts at the group's committed offsets (earliest without) and
/// on close commits the position after exactly what it printed.
pub fn console_take(bootstrap: &str, group: &str, topic: &str, count: usize) -> Vec<Received> {
    let out = kafka_tool(
        CONSOLE_CONSUMER,
        &[
            "--bootstrap-server",
            bootstrap,
            "--group",
            group,
            "--topic",
            topic,
            "--from-beginning",
            "--max-messages",
            &count.to_string(),
            "--timeout-ms",
            "20000",
            "--isolation-level",
            "read_committed",
            "--formatter-property",
            "print.partition=true",
            "--formatter-property",
            "print.offset=true",
        ],
    );
    // "Partition:P<TAB>Offset:O<TAB>value"
    let got: Vec<Received> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(3, '\t').collect();
            let partition = f.first()?.strip_prefix("Partition:")?.parse().ok()?;
            let offset = f.get(1)?.strip_prefix("Offset:")?.parse().ok()?;
            Some(Received {
                topic: topic.to_owned(),
                partition,
                offset,
                value: (*f.get(2)?).to_owned(),
            })
        })
        .collect();
    assert_eq!(got.len(), count, "console consumer printed:\n{out}");
    got
}

/// `kafka-consumer-groups.sh --describe`: (topic, partition) -> lag.
pub fn group_lag(bootstrap: &str, group: &str) -> BTreeMap<(String, i32), i64> {
    let out = kafka_tool(
        GROUP_COMMAND,
        &[
            "--bootstrap-server",
            bootstrap,
            "--describe",
            "--group",
            group,
        ],
    );
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6 && f[0] == group).then(|| {
                (
                    (f[1].to_owned(), f[2].parse().unwrap()),
                    f[5].parse().unwrap_or(-1),
                )
            })
        })
        .collect()
}

/// Runs `ferry args...`; its output, whatever the exit status.
pub fn ferry_output(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// Runs `ferry args... --config config`; its stdout (it must succeed).
pub fn ferry(args: &[&str], config: &Path) -> String {
    check(&format!("ferry {args:?}"), &ferry_output(args, config))
}

/// The STATE and LAG columns of `ferry status` for each flow (lag `None`:
/// "-").
pub fn status(config: &Path) -> BTreeMap<String, (String, Option<i64>)> {
    let out = ferry(&["status"], config);
    let mut rows = out
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("FLOW"));
    let header = rows.next().unwrap_or_default();
    // Cells are left-aligned under their header (some hold spaces).
    let column = |name: &str| header.find(&format!(" {name} ")).map_or(0, |i| i + 1);
    let (state, lag, partitions) = (column("STATE"), column("LAG"), column("PARTITIONS"));
    rows.map(|l| {
        let flow = l.split_whitespace().next().unwrap_or_default().to_owned();
        let state = l
            .get(state..partitions)
            .unwrap_or_default()
            .trim()
            .to_owned();
        let lag = l.get(lag..).and_then(|c| c.split_whitespace().next());
        (flow, (state, lag.and_then(|v| v.parse().ok())))
    })
    .collect()
}

/// A free local port for `[metrics] listen` (so `ferry status` finds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
