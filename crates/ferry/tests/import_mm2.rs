//! `ferry import mm2` as a user runs it: the config on stdout (or
//! `--output`), the report on stderr, exit 0 with warnings and 64 with
//! nothing written when something essential cannot be mapped; and, against
//! the real test clusters, the imported config passes `ferry check`.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferry_testkit::brokers;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/mm2")
        .join(name)
}

fn ferry(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("ferry runs");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    println!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn temp(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("ferry-import-{nanos}-{name}"))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn kafkas_sample_config_prints_a_config_and_a_report() {
    let file = fixture("kafka-connect-mirror-maker.properties");
    let out = ferry(&["import", "mm2", path(&file)], &[]);
    assert_eq!(out.status.code(), Some(0));
    let toml = String::from_utf8_lossy(&out.stdout);
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        toml.contains("[clusters.A]") && toml.contains("[[flows]]"),
        "{toml}"
    );
    assert!(
        report.contains("line 8     A->B.enabled = true"),
        "{report}"
    );
    assert!(
        report.contains("UNSUPPORTED"),
        "heartbeats and checkpoints: {report}"
    );
    assert!(report.contains("0 errors"), "{report}");
}

#[test]
fn strimzi_resources_import_with_output_file() {
    let out_file = temp("strimzi.toml");
    let file = fixture("strimzi-v1beta2-auth.yaml");
    let out = ferry(
        &[
            "import",
            "mm2",
            "--strimzi",
            path(&file),
            "--output",
            path(&out_file),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "the config went to the file");
    let toml = std::fs::read_to_string(&out_file).unwrap();
    std::fs::remove_file(&out_file).unwrap();
    assert!(
        toml.contains(r#"password = "${FERRY_MY_CLUSTER_SOURCE_PASSWORD}""#),
        "{toml}"
    );
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains("FERRY_MY_CLUSTER_SOURCE_PASSWORD: the password"),
        "{report}"
    );
}

#[test]
fn bad_input_exits_64_naming_the_line_and_writes_nothing() {
    for (name, expected) in [
        ("bad-syntax.properties", "line 6: malformed \\uXXXX escape"),
        ("bad-unknown-alias.properties", "unknown cluster alias C"),
        ("bad-identity-loop.properties", "form a loop"),
    ] {
        let out_file = temp("bad.toml");
        let out = ferry(
            &[
                "import",
                "mm2",
                path(&fixture(name)),
                "--output",
                path(&out_file),
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(64), "{name}");
        assert!(
            out.stdout.is_empty() && !out_file.exists(),
            "{name}: nothing written"
        );
        let report = String::from_utf8_lossy(&out.stderr);
        assert!(report.contains(expected), "{name}: {report}");
    }
    let missing = ferry(&["import", "mm2", "/nonexistent/mm2.properties"], &[]);
    assert_eq!(missing.status.code(), Some(66));
    let neither = ferry(&["import", "mm2"], &[]);
    assert_eq!(neither.status.code(), Some(64), "usage error");
}

/// The harness's own MM2 file (identity naming, A -> B) and the
/// groups-vs-mm2 file (prefix naming, group sync), pointed at the real test
/// clusters: the imported configs pass `ferry check`.
#[test]
fn imported_configs_pass_ferry_check_against_real_brokers() {
    let Some((a, b)) = brokers() else { return };
    for name in ["harness-example.properties", "groups-vs-mm2.properties"] {
        let text = std::fs::read_to_string(fixture(name))
            .unwrap()
            .replace("127.0.0.1:9092", &a)
            .replace("127.0.0.1:9093", &b);
        let props = temp(name);
        std::fs::write(&props, text).unwrap();
        let config = temp("ferry.toml");
        let out = ferry(
            &["import", "mm2", path(&props), "--output", path(&config)],
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{name}");
        let check = ferry(&["check", "--config", path(&config)], &[]);
        let stdout = String::from_utf8_lossy(&check.stdout);
        assert_eq!(check.status.code(), Some(0), "{name}: {stdout}");
        assert!(stdout.contains("check: OK"), "{name}: {stdout}");
        std::fs::remove_file(&props).unwrap();
        std::fs::remove_file(&config).unwrap();
    }
}
