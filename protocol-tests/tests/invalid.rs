//! Invalid input gives its own typed error: truncation, bad CRC, bad lengths,
//! inconsistent record counts, decompression bombs. Never a panic.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use bytes::{Bytes, BytesMut};
use ferry_protocol_tests::cases;
use ferry_wire::WireError;
use ferry_wire::batch::{BatchHeader, BatchIter, CRC_COVERED_START, FetchedBatch, RecordBatch};
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::{self, Compression};
use ferry_wire::record::Record;

fn sample(codec: Compression) -> RecordBatch {
    let records: Vec<Record> = (0..20)
        .map(|i| Record {
            offset: i,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}-").repeat(20))),
            headers: vec![],
        })
        .collect();
    RecordBatch::new(build_batch(&BatchSpec::producer(codec), &records).unwrap()).unwrap()
}

/// A real captured batch when testdata is present, else a built one.
fn real_or_sample() -> RecordBatch {
    cases()
        .iter()
        .flat_map(|c| BatchIter::new(c.records.clone()))
        .find_map(|e| match e {
            Ok(FetchedBatch::V2(b)) if !b.header().is_control() => Some(b),
            _ => None,
        })
        .unwrap_or_else(|| sample(Compression::Lz4))
}

/// Recomputes the CRC so that only the intended defect remains.
fn with_fixed_crc(mut bytes: Vec<u8>) -> Bytes {
    let crc = crc32c::crc32c(&bytes[CRC_COVERED_START..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(bytes)
}

#[test]
fn every_truncation_is_an_incomplete_tail_not_an_error() {
    let b = real_or_sample();
    let full = b.as_bytes().clone();
    for cut in 0..full.len() {
        let mut iter = BatchIter::new(full.slice(..cut));
        assert!(iter.next().is_none(), "cut at {cut}");
        assert_eq!(iter.incomplete_tail(), cut);
        assert!(RecordBatch::new(full.slice(..cut)).is_err());
    }
}

#[test]
fn a_flipped_payload_bit_is_a_crc_mismatch() {
    let b = real_or_sample();
    for at in [CRC_COVERED_START, 40, b.len() / 2, b.len() - 1] {
        let mut bytes = b.as_bytes().to_vec();
        bytes[at] ^= 0x10;
        let bad = RecordBatch::new(Bytes::from(bytes)).unwrap();
        assert!(
            matches!(bad.verify_crc(), Err(WireError::CrcMismatch { base_offset, .. }) if base_offset == b.header().base_offset),
            "byte {at}"
        );
    }
}

#[test]
fn bad_lengths_are_typed_errors() {
    let b = sample(Compression::None);
    for bogus in [-1i32, 0, 5, 48] {
        let mut bytes = b.as_bytes().to_vec();
        bytes[8..12].copy_from_slice(&bogus.to_be_bytes());
        let mut iter = BatchIter::new(Bytes::from(bytes));
        assert!(
            matches!(iter.next(), Some(Err(WireError::InvalidField { .. }))),
            "batch length {bogus}"
        );
        assert!(iter.next().is_none(), "iteration stops after an error");
    }
    // Length longer than the data: an incomplete tail (the broker cut it).
    let mut bytes = b.as_bytes().to_vec();
    bytes[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(BatchIter::new(Bytes::from(bytes)).next().is_none());
    // An unknown magic byte.
    let mut bytes = b.as_bytes().to_vec();
    bytes[16] = 7;
    assert!(matches!(
        BatchIter::new(Bytes::from(bytes)).next(),
        Some(Err(WireError::UnsupportedMagic { magic: 7, .. }))
    ));
}

#[test]
fn record_count_and_record_lengths_must_agree_with_the_bytes() {
    let b = sample(Compression::None);
    let mut h: BatchHeader = *b.header();
    // More records announced than present.
    h.record_count += 1;
    let mut bytes = b.as_bytes().to_vec();
    bytes[..61].copy_from_slice(&h.encode());
    let more = RecordBatch::new(with_fixed_crc(bytes)).unwrap();
    let res: Result<Vec<_>, _> = more.records(1 << 20).unwrap().collect();
    assert!(matches!(res, Err(WireError::Truncated { .. })), "{res:?}");
    // Fewer records announced than present: leftover bytes.
    let mut h: BatchHeader = *b.header();
    h.record_count -= 1;
    let mut bytes = b.as_bytes().to_vec();
    bytes[..61].copy_from_slice(&h.encode());
    let fewer = RecordBatch::new(with_fixed_crc(bytes)).unwrap();
    let res: Result<Vec<_>, _> = fewer.records(1 << 20).unwrap().collect();
    assert!(matches!(res, Err(WireError::Malformed { .. })), "{res:?}");
    // A record whose length prefix lies about its size.
    let mut bytes = b.as_bytes().to_vec();
    bytes[61] = 0x7e; // zig-zag 63: shorter than the record really is
    let lying = RecordBatch::new(with_fixed_crc(bytes)).unwrap();
    let res: Result<Vec<_>, _> = lying.records(1 << 20).unwrap().collect();
    assert!(res.is_err());
    // A negative record count.
    let mut h: BatchHeader = *b.header();
    h.record_count = -3;
    let mut bytes = b.as_bytes().to_vec();
    bytes[..61].copy_from_slice(&h.encode());
    assert!(matches!(
        RecordBatch::new(Bytes::from(bytes)),
        Err(WireError::InvalidField { .. })
    ));
}

#[test]
fn decompression_bombs_hit_the_limit() {
    // 32 MiB of one repeated record value compresses to almost nothing.
    let value = Bytes::from(vec![0u8; 1 << 20]);
    let records: Vec<Record> = (0..32)
        .map(|i| Record {
            offset: i,
            timestamp: 0,
            key: None,
            value: Some(value.clone()),
            headers: vec![],
        })
        .collect();
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let bomb =
            RecordBatch::new(build_batch(&BatchSpec::producer(codec), &records).unwrap()).unwrap();
        assert!(bomb.len() < 4 << 20, "{codec}: {} bytes", bomb.len());
        assert!(
            matches!(bomb.records(1 << 20), Err(WireError::DecompressedTooLarge { codec: c, limit }) if c == codec && limit == 1 << 20),
            "{codec}"
        );
        assert!(bomb.records(64 << 20).is_ok(), "{codec} within the limit");
    }
}

#[test]
fn garbage_payloads_are_codec_errors() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let b = sample(codec);
        let mut bytes = b.as_bytes().to_vec();
        for x in &mut bytes[61..] {
            *x = x.wrapping_mul(31).wrapping_add(7);
        }
        let bad = RecordBatch::new(with_fixed_crc(bytes)).unwrap();
        bad.verify_crc().unwrap();
        match bad.records(1 << 20) {
            Err(WireError::Codec { codec: c, .. }) => assert_eq!(c, codec),
            Err(other) => panic!("{codec}: unexpected error {other}"),
            Ok(records) => {
                // Some codecs may "decode" garbage; the records must then fail to parse.
                let all: Result<Vec<_>, _> = records.collect();
                assert!(all.is_err(), "{codec}: garbage decoded cleanly");
            }
        }
        let mut scratch = BytesMut::new();
        let h = *bad.header();
        assert!(bad.rewrite_header(&h, &mut scratch).is_ok());
    }
    assert!(matches!(
        codec::decompress(Compression::Zstd, b"not zstd", 1024),
        Err(WireError::Codec { .. })
    ));
}
