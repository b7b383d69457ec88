//! `ferry run` between secure clusters with ACLs on, started here:
//!
//! - source: SASL_SSL with SCRAM-SHA-512, user `ferry-src`;
//! - target: SSL with mutual TLS, principal `User:CN=ferry`.
//!
//! Each principal holds exactly the ACLs the README's "Least privilege"
//! section lists, nothing more, and the mirror must be record-identical.
//! Then the failures: a wrong password fails fast with its message (and
//! the password appears nowhere), and a missing ACL is named with the
//! topic and the operation.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use ferry_testkit::eventually;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::acl::*;
use common::{Ferry, client, create, grant, produce, read_all, records, unique, wait_mirrored};
use ferry_testkit::secure::{Pki, SecureCluster, can_start_clusters};

const SRC_USER: &str = "ferry-src";
const DST_PRINCIPAL: &str = "User:CN=ferry";

/// The exact ACLs of the README, for topics named `prefix*` on the source
/// and `src.prefix*` on the target.
async fn least_privilege(
    src_admin: &ferry_client::Client,
    dst_admin: &ferry_client::Client,
    prefix: &str,
) {
    let src = format!("User:{SRC_USER}");
    grant(
        src_admin,
        &src,
        (TOPIC, prefix, PREFIXED),
        &[DESCRIBE, READ, DESCRIBE_CONFIGS],
    )
    .await;
    grant(
        dst_admin,
        DST_PRINCIPAL,
        (TOPIC, &format!("src.{prefix}"), PREFIXED),
        &[CREATE, WRITE, DESCRIBE, READ, ALTER, DESCRIBE_CONFIGS],
    )
    .await;
    for topic in ["__ferry_checkpoints", "__ferry_offset_map"] {
        grant(
            dst_admin,
            DST_PRINCIPAL,
            (TOPIC, topic, LITERAL),
            &[CREATE, WRITE, DESCRIBE, READ],
        )
        .await;
    }
    grant(
        dst_admin,
        DST_PRINCIPAL,
        (CLUSTER, "kafka-cluster", LITERAL),
        &[IDEMPOTENT_WRITE],
    )
    .await;
}

fn write_config(
    dir: &Path,
    name: &str,
    src: &str,
    dst: &str,
    pki: &Pki,
    pattern: &str,
) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[clusters.src]
bootstrap_servers = ["{src}"]
security_protocol = "sasl_ssl"
[clusters.src.tls]
ca_file = "{ca}"
[clusters.src.sasl]
mechanism = "SCRAM-SHA-512"
username = "{SRC_USER}"
password = "${{FERRY_TEST_SRC_PASSWORD}}"

[clusters.dst]
bootstrap_servers = ["{dst}"]
security_protocol = "ssl"
[clusters.dst.tls]
ca_file = "{ca}"
cert_file = "{cert}"
key_file = "{key}"

[[flows]]
name = "{name}"
source = "src"
target = "dst"
topics = ["{pattern}"]
discovery_interval = "1s"
[flows.tuning]
checkpoint_interval = "500ms"
memory_budget = "64MiB"
"#,
            ca = pki.ca.display(),
            cert = pki.client_cert.display(),
            key = pki.client_key.display(),
        ),
    )
    .unwrap();
    path
}

/// Runs `ferry <args>` to completion with the source password in the
/// environment; returns (exit code, stdout + stderr, how long it took).
fn ferry(args: &[&str], config: &Path, password: &str) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("FERRY_TEST_SRC_PASSWORD", password)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_source_to_mtls_target_with_least_privilege() {
    if !can_start_clusters() {
        return;
    }
    let dir = std::env::temp_dir().join(unique("ferry-sec-mirror"));
    let pki = Pki::generate(&dir);
    let password = format!("Src-{}-pa55word", std::process::id());
    let base = [
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_owned(),
        "super.users=User:ANONYMOUS".to_owned(),
    ];
    let src_overrides: Vec<String> = base
        .iter()
        .cloned()
        .chain([
            "listener.name.secure.sasl.enabled.mechanisms=SCRAM-SHA-512".to_owned(),
            "listener.name.secure.scram-sha-512.sasl.jaas.config=\
             org.apache.kafka.common.security.scram.ScramLoginModule required;"
                .to_owned(),
            "listener.name.secure.ssl.keystore.type=PEM".to_owned(),
            format!(
                "listener.name.secure.ssl.keystore.location={}",
                pki.server.display()
            ),
        ])
        .collect();
    let dst_overrides: Vec<String> = base
        .iter()
        .cloned()
        .chain([
            "listener.name.secure.ssl.keystore.type=PEM".to_owned(),
            format!(
                "listener.name.secure.ssl.keystore.location={}",
                pki.server.display()
            ),
            "listener.name.secure.ssl.truststore.type=PEM".to_owned(),
            format!(
                "listener.name.secure.ssl.truststore.location={}",
                pki.ca.display()
            ),
            "listener.name.secure.ssl.client.auth=required".to_owned(),
        ])
        .collect();
    let scram = [format!(
        "SCRAM-SHA-512=[name={SRC_USER},password={password}]"
    )];
    let (src_cluster, dst_cluster) = std::thread::scope(|s| {
        let src = s.spawn(|| {
            SecureCluster::start(
                &unique("sec-src"),
                &["SECURE:SASL_SSL"],
                &scram,
                &src_overrides,
            )
        });
        let dst = s.spawn(|| {
            SecureCluster::start(&unique("sec-dst"), &["SECURE:SSL"], &[], &dst_overrides)
        });
        (src.join().unwrap(), dst.join().unwrap())
    });
    let (src_addr, dst_addr) = (
        src_cluster.listener("SECURE"),
        dst_cluster.listener("SECURE"),
    );
    let (a, b) = (
        client(&src_cluster.plaintext).await,
        client(&dst_cluster.plaintext).await,
    );

    let prefix = unique("secure");
    let topic = format!("{prefix}-orders");
    create(&a, &topic, 3).await;
    for p in 0..3 {
        produce(&a, &topic, p, 6, usize::try_from(p).unwrap()).await;
    }
    least_privilege(&a, &b, &prefix).await;
    let config = write_config(
        &dir,
        "secure",
        &src_addr,
        &dst_addr,
        &pki,
        &format!("{prefix}-.*"),
    );

    // `ferry check` reaches both clusters and prints no secret.
    let (code, out, _) = ferry(&["check"], &config, &password);
    assert_eq!(code, Some(0), "ferry check:\n{out}");
    assert!(
        !out.contains(&password),
        "ferry check printed the password:\n{out}"
    );
    assert!(
        out.contains(&format!("sasl_ssl (SCRAM-SHA-512 as \"{SRC_USER}\")"))
            && out.contains("ssl with a client certificate"),
        "ferry check names how it reached each cluster:\n{out}"
    );

    // Mirror, record-identically.
    let log = dir.join("ferry.log");
    let ferry_run = {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["run", "--config"])
            .arg(&config)
            .env("FERRY_TEST_SRC_PASSWORD", &password)
            .env("RUST_LOG", "info,ferry_client=debug")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        Ferry {
            child,
            log: log.clone(),
        }
    };
    let target = format!("src.{topic}");
    wait_mirrored(&a, &b, &topic, &target, 3).await;
    ferry_run.stop();
    for p in 0..3 {
        let src = records(&read_all(&a, &topic, p).await);
        let dst = records(&read_all(&b, &target, p).await);
        assert_eq!(src.len(), 6 * 50, "partition {p}");
        assert_eq!(src, dst, "partition {p}");
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains(&password), "ferry run logged the password");

    // A wrong password: ferry run stops fast, says why, prints no password.
    let wrong = "not-the-Passw0rd";
    let (code, out, took) = ferry(&["run"], &config, wrong);
    assert_eq!(code, Some(1), "ferry run with a wrong password:\n{out}");
    assert!(took < Duration::from_secs(20), "took {took:?}:\n{out}");
    assert!(
        out.contains(&format!(
            "authentication as user \"{SRC_USER}\" with SCRAM-SHA-512 failed"
        )),
        "{out}"
    );
    assert!(!out.contains(wrong) && !out.contains(&password), "{out}");
    let (code, out, _) = ferry(&["check"], &config, wrong);
    assert_eq!(code, Some(1), "ferry check with a wrong password:\n{out}");
    assert!(
        out.contains("authentication as user") && !out.contains(wrong),
        "{out}"
    );

    // A missing ACL: topics under another prefix, which the target
    // principal may not create. The error names the topic and the operation.
    let other = unique("noacl");
    let other_topic = format!("{other}-t");
    create(&a, &other_topic, 1).await;
    produce(&a, &other_topic, 0, 1, 0).await;
    grant(
        &a,
        &format!("User:{SRC_USER}"),
        (TOPIC, &other, PREFIXED),
        &[DESCRIBE, READ, DESCRIBE_CONFIGS],
    )
    .await;
    let config = write_config(
        &dir,
        "noacl",
        &src_addr,
        &dst_addr,
        &pki,
        &format!("{other}-.*"),
    );
    let log = dir.join("noacl.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", "--config"])
        .arg(&config)
        .env("FERRY_TEST_SRC_PASSWORD", &password)
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .unwrap();
    let noacl = Ferry {
        child,
        log: log.clone(),
    };
    let want = format!("CreateTopics for topic \"src.{other_topic}\"");
    let text = eventually(
        Duration::from_secs(30),
        "an authorization error",
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(&want) {
                Ok(text)
            } else {
                Err(format!("log:\n{text}"))
            }
        },
    )
    .await;
    assert!(
        text.contains("TOPIC_AUTHORIZATION_FAILED") && text.contains("Create on the topic"),
        "{text}"
    );
    // Retried at the discovery interval, not in a tight loop.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let denied = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches(&want)
        .count();
    assert!(denied <= 6, "{denied} authorization failures in about 3 s");
    drop(noacl);

    drop((src_cluster, dst_cluster));
    let _ = std::fs::remove_dir_all(&dir);
}
