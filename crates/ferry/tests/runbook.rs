//! The README's failover/failback runbook, step by step, with real clients:
//! Kafka's Java producer (VerifiableProducer) and console consumer,
//! librdkafka producers and group members, `kafka-consumer-groups` for the group checks, and only
//! ferry commands for the rest. Every record produced on either cluster is
//! received by the consumer group exactly once across both moves.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;
mod group_clients;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Ferry, brokers, client, create, unique};
use ferry_client::OffsetSpec;
use group_clients::{
    Received, TOPIC_COMMAND, VERIFIABLE_PRODUCER, clients, console_consume, ferry, ferry_output,
    free_port, group_lag, kafka_tool, status,
};

const PARTITIONS: i32 = 3;

/// The README's ferry.toml: `east-to-west`, and from failback on also
/// `west-to-east`, both with prefix naming.
///
/// The periodic group sync is set to an hour (it runs once, at start-up),
/// so the group's last commits reach the target through the runbook's
/// `ferry offsets sync` steps: the test shows those are enough.
fn config(dir: &Path, east: &str, west: &str, names: &Names, both: bool) -> std::path::PathBuf {
    let flow = |name: &str, source: &str, target: &str| {
        // `.*<topic>` also matches `west.<topic>` on east and `east.<topic>`
        // on west: prefix naming must be what keeps them from going back.
        format!(
            "[[flows]]\nname = \"{name}\"\nsource = \"{source}\"\ntarget = \"{target}\"\n\
             topics = [\".*{topic}\"]\ndiscovery_interval = \"1s\"\n\
             [flows.tuning]\ncheckpoint_interval = \"500ms\"\n\
             [flows.groups]\ninclude = [\"{group}\"]\ninterval = \"1h\"\n",
            topic = names.topic,
            group = names.group,
        )
    };
    let mut text = format!(
        "[clusters.east]\nbootstrap_servers = [\"{east}\"]\n\
         [clusters.west]\nbootstrap_servers = [\"{west}\"]\n\
         [metrics]\nlisten = \"127.0.0.1:{}\"\n",
        names.port
    );
    text += &flow(&names.east_to_west, "east", "west");
    if both {
        text += &flow(&names.west_to_east, "west", "east");
    }
    let path = dir.join(if both { "failback.toml" } else { "ferry.toml" });
    std::fs::write(&path, text).unwrap();
    path
}

struct Names {
    topic: String,
    group: String,
    east_to_west: String,
    west_to_east: String,
    port: u16,
}

/// Polls `ferry status` until `flow` is ready with lag 0 (the runbook's
/// "wait for lag 0").
fn wait_lag_zero(config: &Path, flow: &str) {
    let every = Duration::from_millis(500);
    ferry_testkit::eventually_blocking(Duration::from_secs(90), every, "ready with LAG 0", || {
        let rows = status(config);
        if rows.get(flow) == Some(&("ready".to_owned(), Some(0))) {
            Ok(())
        } else {
            Err(format!("ferry status: {rows:?}"))
        }
    });
}

/// After `ferry offsets sync`: the group's offsets for `to_topic` on `to`
/// are its offsets for `from_topic` on `from` (the topic has no offset
/// gaps, so exact translation keeps the numbers).
async fn assert_group_moved(
    from: &ferry_client::Client,
    from_topic: &str,
    to: &ferry_client::Client,
    to_topic: &str,
    group: &str,
) {
    let offsets = |all: Vec<(ferry_client::TopicPartition, i64, _)>, topic: &str| {
        all.into_iter()
            .filter(|(tp, _, _)| tp.topic.as_ref() == topic)
            .map(|(tp, o, _)| (tp.partition, o))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let want = offsets(from.fetch_group_offsets(group).await.unwrap(), from_topic);
    let got = offsets(to.fetch_group_offsets(group).await.unwrap(), to_topic);
    assert!(!want.is_empty());
    assert_eq!(got, want, "{group}: {to_topic} against {from_topic}");
}

/// Every value received so far must be new; adds them to `seen`.
fn receive_once(seen: &mut BTreeSet<String>, got: &[Received], step: &str) {
    for r in got {
        assert!(
            seen.insert(r.value.clone()),
            "{step}: {:?} received twice ({}-{} offset {})",
            r.value,
            r.topic,
            r.partition,
            r.offset
        );
    }
}

/// VerifiableProducer (Kafka's Java producer, lz4): `count` records
/// `<prefix>.<n>`; returns their values.
fn java_produce(dir: &Path, bootstrap: &str, topic: &str, prefix: u32, count: u32) -> Vec<String> {
    let props = dir.join("producer.properties");
    std::fs::write(&props, "compression.type=lz4\nlinger.ms=5\n").unwrap();
    let out = kafka_tool(
        VERIFIABLE_PRODUCER,
        &[
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--max-messages",
            &count.to_string(),
            "--value-prefix",
            &prefix.to_string(),
            "--command-config",
            props.to_str().unwrap(),
        ],
    );
    let acked = out.matches("\"producer_send_success\"").count();
    assert_eq!(acked, count as usize, "VerifiableProducer: {out}");
    (0..count).map(|n| format!("{prefix}.{n}")).collect()
}

/// The librdkafka producer: `per_partition` records to each partition.
fn rdkafka_produce(bootstrap: &str, topic: &str, prefix: &str, per_partition: u32) -> Vec<String> {
    clients(&[
        "produce",
        bootstrap,
        topic,
        &PARTITIONS.to_string(),
        &per_partition.to_string(),
        prefix,
        "zstd",
    ]);
    (0..per_partition)
        .flat_map(|i| (0..PARTITIONS).map(move |p| format!("{prefix}-{p}-{i}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_and_failback_deliver_every_record_once() {
    let Some((east, west)) = brokers() else {
        return;
    };
    let started = Instant::now();
    let (a, b) = (client(&east).await, client(&west).await);
    let dir = std::env::temp_dir().join(unique("ferry-runbook"));
    std::fs::create_dir_all(&dir).unwrap();
    let id = unique("runbook");
    let names = Names {
        topic: format!("{id}-orders"),
        group: format!("{id}-billing"),
        east_to_west: format!("{id}-east-to-west"),
        west_to_east: format!("{id}-west-to-east"),
        port: free_port(),
    };
    let (topic, group) = (names.topic.as_str(), names.group.as_str());
    let mirrored_on_west = format!("east.{topic}");
    let mirrored_on_east = format!("west.{topic}");
    create(&a, topic, PARTITIONS).await;

    // Normal operation: producers and the group on east, ferry mirroring.
    let mut produced: BTreeSet<String> = BTreeSet::new();
    let mut seen = BTreeSet::new();
    produced.extend(java_produce(&dir, &east, topic, 1, 3000));
    let got = clients(&["consume", &east, group, topic, "1000"]);
    receive_once(&mut seen, &got, "east, before ferry");
    let ferry_toml = config(&dir, &east, &west, &names, false);
    let run = Ferry::start(&ferry_toml, dir.join("ferry.log"));
    produced.extend(rdkafka_produce(&east, topic, "east", 500));
    let got = clients(&["consume", &east, group, topic, "1700"]);
    receive_once(&mut seen, &got, "east, ferry running");

    // Failover. 1: producers are stopped; wait for lag 0.
    wait_lag_zero(&ferry_toml, &names.east_to_west);
    // 2-4: consumers are stopped; stop ferry (it drains and checkpoints),
    // then sync the group once more from the final offset map.
    run.stop();
    let synced = ferry(&["offsets", "sync", "--group", group], &ferry_toml);
    println!("offsets sync:\n{synced}");
    assert_group_moved(&a, topic, &b, &mirrored_on_west, group).await;
    // 5: ferry agrees everything is on west.
    let rows = status(&ferry_toml);
    let (state, lag) = &rows[&names.east_to_west];
    assert_eq!((state.as_str(), *lag), ("not running", Some(0)), "{rows:?}");
    let verified = ferry(&["verify"], &ferry_toml);
    println!("{verified}");
    // 6: the topic the producers will write on west, as on east.
    kafka_tool(
        TOPIC_COMMAND,
        &[
            "--bootstrap-server",
            &west,
            "--create",
            "--topic",
            topic,
            "--partitions",
            &PARTITIONS.to_string(),
            "--replication-factor",
            "1",
        ],
    );
    // 7: the consumers on west read east.<topic> (the rest of east's
    // records) and <topic> (what is produced on west from now on).
    let on_west = format!("{mirrored_on_west},{topic}");
    let got = clients(&["consume", &west, group, &on_west, "all"]);
    receive_once(&mut seen, &got, "west, after failover");
    assert_eq!(seen, produced, "after failover: every east record once");
    println!(
        "failover: {} records on east, {} of them received on east, {} on west",
        produced.len(),
        seen.len() - got.len(),
        got.len()
    );
    // 8: producers on west; the group reads part of it.
    produced.extend(rdkafka_produce(&west, topic, "west", 400));
    let got = clients(&["consume", &west, group, &on_west, "500"]);
    receive_once(&mut seen, &got, "west, producers on west");

    // Failback. 1: the reverse flow, next to the first one; ferry check
    // accepts the pair (prefix naming) and refuses an identity-named one.
    let failback_toml = config(&dir, &east, &west, &names, true);
    let checked = ferry(&["check"], &failback_toml);
    println!("{checked}");
    assert!(
        checked.lines().any(
            |l| l.trim_start().starts_with(&format!("{mirrored_on_west}:"))
                && l.contains("not mirrored")
        ),
        "east.<topic> must not go back to east:\n{checked}"
    );
    let looping = dir.join("looping.toml");
    let reverse = format!("name = \"{}\"\n", names.west_to_east);
    std::fs::write(
        &looping,
        std::fs::read_to_string(&failback_toml)
            .unwrap()
            .replace(&reverse, &format!("{reverse}naming = \"identity\"\n")),
    )
    .unwrap();
    let refused = ferry_output(&["check"], &looping);
    let refused_text = String::from_utf8_lossy(&refused.stderr).into_owned()
        + &String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(64), "{refused_text}");
    assert!(refused_text.contains("replication loop"), "{refused_text}");
    let run = Ferry::start(&failback_toml, dir.join("ferry.log"));
    // 2: producers on west stopped: wait for lag 0 of west-to-east.
    wait_lag_zero(&failback_toml, &names.west_to_east);
    // 3: consumers on west stopped; they had read all of east.<topic>, so
    // nothing on east's <topic> is left for them (checked: lag 0).
    let lag = group_lag(&west, group);
    for p in 0..PARTITIONS {
        assert_eq!(lag.get(&(mirrored_on_west.clone(), p)), Some(&0), "{lag:?}");
    }
    // 4: stop ferry, sync the group's west offsets to west.<topic> on east.
    run.stop();
    let synced = ferry(
        &[
            "offsets",
            "sync",
            "--flow",
            &names.west_to_east,
            "--group",
            group,
        ],
        &failback_toml,
    );
    println!("offsets sync (failback):\n{synced}");
    assert_group_moved(&b, topic, &a, &mirrored_on_east, group).await;
    // 5: the group's east offsets of <topic> still point where it left
    // east; it read on in east.<topic> on west: translate that back.
    let synced = ferry(
        &[
            "offsets",
            "sync",
            "--reverse",
            "--flow",
            &names.east_to_west,
            "--group",
            group,
        ],
        &failback_toml,
    );
    println!("offsets sync --reverse (failback):\n{synced}");
    let ends = a
        .list_offsets(
            topic,
            &(0..PARTITIONS).collect::<Vec<_>>(),
            OffsetSpec::Latest,
        )
        .await
        .unwrap();
    let back = a.fetch_group_offsets(group).await.unwrap();
    for (p, end) in ends {
        let at = back
            .iter()
            .find(|(tp, _, _)| tp.topic.as_ref() == topic && tp.partition == p)
            .map(|(_, o, _)| *o);
        assert_eq!(at, Some(end), "{topic}-{p} on east after sync --reverse");
    }
    // 6: the consumers on east read <topic> and west.<topic>; here Kafka's
    // Java console consumer, which commits what it printed when it exits.
    let include = format!("{topic}|west\\.{topic}");
    let got = console_consume(&east, group, &include);
    for value in &got {
        assert!(
            seen.insert(value.clone()),
            "east, after failback: {value:?} received twice"
        );
    }
    assert_eq!(seen, produced, "after failback: every record once");
    println!("failback: {} records received on east", got.len());
    let on_east = format!("{topic},{mirrored_on_east}");
    // 7: producers back on east; the group continues there.
    produced.extend(java_produce(&dir, &east, topic, 3, 300));
    let got = clients(&["consume", &east, group, &on_east, "all"]);
    receive_once(&mut seen, &got, "east, producers back on east");
    assert_eq!(seen, produced, "at the end: every record once");

    // No loop: nothing came back under a second prefix.
    let listed = |bootstrap: &str| {
        kafka_tool(TOPIC_COMMAND, &["--bootstrap-server", bootstrap, "--list"])
            .lines()
            .filter(|t| t.contains(&id))
            .map(str::to_owned)
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        listed(&east),
        BTreeSet::from([topic.to_owned(), mirrored_on_east.clone()])
    );
    assert_eq!(
        listed(&west),
        BTreeSet::from([topic.to_owned(), mirrored_on_west.clone()])
    );
    println!(
        "runbook: {} records produced, each received once, in {:.0?}",
        produced.len(),
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
