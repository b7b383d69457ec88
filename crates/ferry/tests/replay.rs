//! Real-broker test: every captured testdata case goes through the fast path
//! (rewritten header, original payload) or the slow path into a Kafka broker
//! started by the harness, is read back, and must match record for record,
//! with every forwarded payload byte-identical on the broker.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use ferry_testkit::broker_a as broker;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn every_testdata_case_round_trips_through_a_real_broker() {
    let Some(bootstrap) = broker() else { return };
    let testdata = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&testdata)
        .expect("testdata/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("records.bin").is_file())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the captured cases in {}",
        testdata.display()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("replay")
        .arg("--bootstrap")
        .arg(&bootstrap)
        .args(&cases)
        .output()
        .expect("ferry runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "ferry replay failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(&format!("replayed {} case(s), 0 failed", cases.len())));
    assert!(stdout.contains("forwarded byte-identical"));
}

#[test]
fn usage_errors_exit_64() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("replay")
        .output()
        .expect("ferry runs");
    assert_eq!(out.status.code(), Some(64));
}
