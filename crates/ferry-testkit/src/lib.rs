//! Shared by the real-broker tests of every crate.
//!
//! `scripts/test` starts two clusters with the harness and exports their
//! addresses as `FERRY_KAFKA_A` and `FERRY_KAFKA_B`, plus
//! `FERRY_REQUIRE_BROKERS=1`. Without the addresses a real-broker test says
//! "skipped" and passes, unless brokers are required: then it fails, so CI
//! can never pass without having run them.

pub mod cluster;
pub mod proxy;

use std::time::{SystemTime, UNIX_EPOCH};

pub mod oidc;
pub mod sasl_peer;
pub mod secure;
pub mod wait;

pub use wait::{eventually, eventually_blocking, eventually_every};

const HOW: &str = "run scripts/test, or start brokers with \
    `python3 harness/kafka_harness.py start a` (and `start b`) and export \
    FERRY_KAFKA_A / FERRY_KAFKA_B to the addresses they print";

fn required() -> bool {
    std::env::var("FERRY_REQUIRE_BROKERS").as_deref() == Ok("1")
}

fn address(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
}

/// The first test cluster's bootstrap address, or `None` (test skipped).
///
/// # Panics
/// If `FERRY_REQUIRE_BROKERS=1` and `FERRY_KAFKA_A` is not set.
pub fn broker_a() -> Option<String> {
    match address("FERRY_KAFKA_A") {
        Some(a) => Some(a),
        None if required() => panic!("FERRY_REQUIRE_BROKERS=1 but FERRY_KAFKA_A is not set: {HOW}"),
        None => {
            println!("skipped: FERRY_KAFKA_A is not set ({HOW})");
            None
        }
    }
}

/// Both test clusters' bootstrap addresses (source, target), or `None`.
///
/// # Panics
/// If `FERRY_REQUIRE_BROKERS=1` and either address is not set.
pub fn brokers() -> Option<(String, String)> {
    match (address("FERRY_KAFKA_A"), address("FERRY_KAFKA_B")) {
        (Some(a), Some(b)) => Some((a, b)),
        _ if required() => panic!(
            "FERRY_REQUIRE_BROKERS=1 but FERRY_KAFKA_A and FERRY_KAFKA_B are not both set: {HOW}"
        ),
        _ => {
            println!("skipped: FERRY_KAFKA_A and FERRY_KAFKA_B are not both set ({HOW})");
            None
        }
    }
}

/// Milliseconds since the epoch. Test records carry the current time: the
/// brokers' retention would delete records with old timestamps mid-test.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A name no earlier test run used: `<prefix>-<pid>-<time>`.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}
