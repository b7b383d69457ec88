//! The captured fetches in `testdata/` (real Java and librdkafka producers,
//! a real Kafka 4.3.1 broker; see testdata/PROVENANCE.md) run through the
//! partition machine into an in-memory target: every case must come out as
//! the independent consumer saw it (`expected.json`), and forwarded batches
//! must be the fetched bytes themselves (zero copy).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{Seen, TargetLog, tp};
use ferry_client::PartitionData;
use ferry_engine::flow::machine::PartitionMachine;
use ferry_engine::metrics::BatchPath;
use ferry_engine::plan::PlanConfig;
use ferry_wire::record::Header;
use ferry_wire::txn::AbortedTxn;
use serde_json::Value;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("records.bin").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn b64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = u32::try_from(ALPHABET.iter().position(|&a| a == c).unwrap()).unwrap();
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap());
        }
    }
    out
}

/// A field as `expected.json` writes it: null, `{"b64"}`, or `{"len",
/// "sha256"}` for large values (compared by length).
fn same_field(got: Option<&Bytes>, want: &Value) -> bool {
    match (got, want) {
        (None, Value::Null) => true,
        (Some(g), Value::Object(o)) => match (o.get("b64"), o.get("len")) {
            (Some(Value::String(s)), _) => g[..] == b64(s)[..],
            (_, Some(len)) => len.as_u64() == Some(g.len() as u64),
            _ => false,
        },
        _ => false,
    }
}

fn same_record(got: &Seen, want: &Value) -> bool {
    let headers = want["headers"].as_array().unwrap();
    got.timestamp == want["timestamp"].as_i64().unwrap()
        && same_field(got.key.as_ref(), &want["key"])
        && same_field(got.value.as_ref(), &want["value"])
        && got.headers.len() == headers.len()
        && got.headers.iter().zip(headers).all(|(h, w): (&Header, _)| {
            h.key[..] == *w[0].as_str().unwrap().as_bytes() && same_field(h.value.as_ref(), &w[1])
        })
}

#[test]
fn captured_fetches_mirror_as_the_reference_consumer_read_them() {
    let all = cases();
    assert!(all.len() >= 20, "testdata cases: {}", all.len());
    for dir in all {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let fetch = json(&dir.join("fetch.json"));
        let expected = json(&dir.join("expected.json"));
        let records = Bytes::from(std::fs::read(dir.join("records.bin")).unwrap());
        let from = fetch["fetch_offset"].as_i64().unwrap();
        let aborted: Vec<AbortedTxn> = fetch["aborted_transactions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| AbortedTxn {
                        producer_id: t["producer_id"].as_i64().unwrap(),
                        first_offset: t["first_offset"].as_i64().unwrap(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let data = PartitionData {
            tp: tp(),
            fetch_offset: from,
            records: records.clone(),
            high_watermark: fetch["high_watermark"].as_i64().unwrap(),
            last_stable_offset: fetch["last_stable_offset"].as_i64().unwrap(),
            log_start_offset: 0,
            aborted_transactions: aborted,
            error: None,
        };
        let config = PlanConfig {
            max_batch_bytes: 8 << 20,
            ..PlanConfig::default()
        };
        let mut m = PartitionMachine::new(tp(), from, 0, config, None, None).unwrap();
        let outcome = m.on_fetched(&data).unwrap().unwrap();
        assert!(outcome.failure.is_none(), "{name}: {:?}", outcome.failure);
        let mut target = TargetLog::default();
        let range = records.as_ptr() as usize..records.as_ptr() as usize + records.len();
        while let Some(out) = m.sent() {
            if out.stats.path == BatchPath::Forwarded {
                let at = out.batch.as_bytes().as_ptr() as usize;
                assert!(range.contains(&at), "{name}: a forwarded batch was copied");
            }
            let base = target.append(&out.batch);
            m.on_ack(out.id, base).unwrap();
        }
        let end = m.fetch_position();
        assert_eq!(m.committed().source_offset, end, "{name}");
        let committed: Option<Vec<i64>> = (fetch["isolation_level"] == 1).then(|| {
            expected["committed_offsets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_i64().unwrap())
                .collect()
        });
        let want: Vec<&Value> = expected["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                let o = r["offset"].as_i64().unwrap();
                o >= from && o < end && committed.as_ref().is_none_or(|c| c.contains(&o))
            })
            .collect();
        assert!(!want.is_empty(), "{name}: nothing expected");
        assert_eq!(target.records.len(), want.len(), "{name}: record count");
        for (i, (got, want)) in target.records.iter().zip(&want).enumerate() {
            assert!(
                same_record(got, want),
                "{name}: record {i} differs: {got:?} vs {want}"
            );
        }
        // Every mirrored source offset translates to its target offset.
        for (i, w) in want.iter().enumerate() {
            let o = w["offset"].as_i64().unwrap();
            assert_eq!(m.map().translate(o), Some(i as i64), "{name}: offset {o}");
        }
    }
}
