//! Loads the captured cases in `testdata/`: raw Fetch response partition data
//! from a real broker, the fetch's metadata, and what independent clients
//! (librdkafka consumers) read from the same partition.
//!
//! Layout per case directory (see `testdata/PROVENANCE.md`):
//! `records.bin` (the partition's `records` bytes as received), `fetch.json`,
//! `expected.json`.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Metadata of the Fetch that captured `records.bin`.
#[derive(Debug, Clone, Deserialize)]
pub struct FetchMeta {
    pub topic: String,
    pub partition: i32,
    pub fetch_version: i16,
    pub isolation_level: i8,
    pub fetch_offset: i64,
    pub partition_max_bytes: i64,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Null when the broker sent none (read_uncommitted fetches).
    #[serde(default)]
    pub aborted_transactions: Option<Vec<AbortedJson>>,
    pub kafka_version: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct AbortedJson {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// Bytes as recorded by the independent consumer: inline, or a digest for large values.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Blob {
    Inline { b64: String },
    Digest { len: usize, sha256: String },
}

impl Blob {
    /// Whether `bytes` are the recorded bytes.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        match self {
            Blob::Inline { b64 } => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .is_ok_and(|d| d == bytes),
            Blob::Digest { len, sha256 } => {
                *len == bytes.len() && hex(&Sha256::digest(bytes)) == sha256.to_ascii_lowercase()
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One record as the independent consumer saw it.
#[derive(Debug, Clone, Deserialize)]
pub struct ExpectedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: String,
    pub key: Option<Blob>,
    pub value: Option<Blob>,
    pub headers: Vec<(String, Option<Blob>)>,
}

/// What the independent consumers read.
#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    pub case: String,
    pub producer: String,
    #[serde(default)]
    pub producer_settings: serde_json::Value,
    /// Everything a read_uncommitted consumer returned, in offset order.
    pub records: Vec<ExpectedRecord>,
    /// Offsets a read_committed consumer returned.
    pub committed_offsets: Vec<i64>,
}

/// One captured case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub records: Bytes,
    pub fetch: FetchMeta,
    pub expected: Expected,
}

/// The repository's `testdata/` directory.
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Every case under `testdata/`, sorted by name. Panics with the file name
/// if a case is incomplete or unreadable: broken test data must be loud.
#[allow(clippy::missing_panics_doc)]
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(testdata_dir()) else {
        return out;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.join("records.bin").is_file() {
            continue;
        }
        let read = |f: &str| {
            fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(f).display()))
        };
        let json = |f: &str| {
            let raw = read(f);
            serde_json::from_slice::<serde_json::Value>(&raw)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.join(f).display()))
        };
        let fetch: FetchMeta = serde_json::from_value(json("fetch.json"))
            .unwrap_or_else(|e| panic!("{}/fetch.json: {e}", dir.display()));
        let expected: Expected = serde_json::from_value(json("expected.json"))
            .unwrap_or_else(|e| panic!("{}/expected.json: {e}", dir.display()));
        out.push(Case {
            name: entry.file_name().to_string_lossy().into_owned(),
            records: Bytes::from(read("records.bin")),
            dir,
            fetch,
            expected,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
