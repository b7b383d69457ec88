//! `ferry check`: config errors exit 64 naming the field; an unreachable
//! cluster exits 1; against a real broker (FERRY_KAFKA_A) it lists a topic
//! created here with its partition count and target.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_client::{Client, ClientConfig, NewTopic};
use ferry_testkit::broker_a as broker;

fn unique() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Writes `text` to a fresh temporary config file.
fn config_file(text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ferry-check-{}.toml", unique()));
    std::fs::write(&path, text).unwrap();
    path
}

fn ferry_check(config: &PathBuf, env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("check")
        .arg("--config")
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .expect("ferry runs");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    println!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn an_invalid_config_exits_64_naming_the_field() {
    let path = config_file(
        "[clusters.east]\nbootstrap_servers = [\"127.0.0.1:9092\"]\n\
         [clusters.west]\nbootstrap_servers = [\"${FERRY_CHECK_TEST_UNSET}\"]\n\
         [[flows]]\nsource = \"east\"\ntarget = \"west\"\n",
    );
    let out = ferry_check(&path, &[]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "clusters.west.bootstrap_servers[0]: environment variable FERRY_CHECK_TEST_UNSET is not set"
        ),
        "{stderr}"
    );

    std::fs::write(
        &path,
        "[clusters.east]\nbootstrap_servers = [\"127.0.0.1:9092\"]\n\
         [clusters.west]\nbootstrap_servers = [\"127.0.0.1:9093\"]\n\
         [[flows]]\nsource = \"east\"\ntarget = \"west\"\n\
         [flows.tuning]\nmax_in_flight_per_partition = 9\n",
    )
    .unwrap();
    let out = ferry_check(&path, &[]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "flows[0].tuning.max_in_flight_per_partition: must be between 1 and 5, got 9"
        ),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing is checked with an invalid config"
    );
    std::fs::remove_file(&path).unwrap();

    let missing = std::env::temp_dir().join(format!("ferry-check-missing-{}.toml", unique()));
    assert_eq!(ferry_check(&missing, &[]).status.code(), Some(66));
}

#[test]
fn an_unreachable_cluster_exits_1_with_a_clear_message() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let path = config_file(
        "[clusters.east]\nbootstrap_servers = [\"127.0.0.1:1\"]\nconnect_timeout = \"2s\"\n\
         [clusters.west]\nbootstrap_servers = [\"127.0.0.1:1\"]\nconnect_timeout = \"2s\"\n\
         [[flows]]\nsource = \"east\"\ntarget = \"west\"\n",
    );
    let out = ferry_check(&path, &[]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cluster east: cannot connect"), "{stdout}");
    assert!(stdout.contains("127.0.0.1:1"), "{stdout}");
    assert!(
        stdout.contains("skipped: source cluster east could not be reached"),
        "{stdout}"
    );
    assert!(stdout.contains("check: 2 problems"), "{stdout}");
}

#[test]
fn a_valid_config_lists_source_topics_against_a_real_broker() {
    let Some(bootstrap) = broker() else { return };
    let topic = format!("ferry-check-{}", unique());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::connect(&[bootstrap.as_str()], ClientConfig::default())
            .await
            .unwrap();
        // The source topic, and its target under prefix naming with fewer
        // partitions, so both target states show up.
        for (name, partitions) in [(topic.clone(), 2), (format!("src.{topic}"), 1)] {
            client
                .create_topic(&NewTopic {
                    name: name.clone(),
                    partitions,
                    replication_factor: 1,
                    configs: vec![],
                })
                .await
                .unwrap();
            client
                .wait_for_topic(&name, partitions, Duration::from_secs(30))
                .await
                .unwrap();
        }
    });
    // One cluster under two aliases: source and target of a prefix flow.
    // The bootstrap address comes through the environment, as in production.
    let path = config_file(&format!(
        "[clusters.src]\nbootstrap_servers = [\"${{FERRY_CHECK_TEST_BOOTSTRAP}}\"]\n\
         [clusters.dst]\nbootstrap_servers = [\"{bootstrap}\"]\n\
         [[flows]]\nsource = \"src\"\ntarget = \"dst\"\n\
         topics = [\"{topic}\"]\n"
    ));
    let out = ferry_check(&path, &[("FERRY_CHECK_TEST_BOOTSTRAP", &bootstrap)]);
    std::fs::remove_file(&path).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("cluster src: cluster id "), "{stdout}");
    assert!(stdout.contains("Produce v"), "{stdout}");
    assert!(stdout.contains("Fetch v"), "{stdout}");
    assert!(stdout.contains("Metadata v"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "  {topic}: 2 partitions -> src.{topic} (exists on dst with 1 partition, fewer than the source)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  src.{topic}: 1 partition, not mirrored: matches no include pattern"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("src and dst are the same cluster"),
        "{stdout}"
    );
    assert!(stdout.contains("check: OK"), "{stdout}");
}
