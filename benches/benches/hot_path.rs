//! The per-batch hot path (header parse + CRC verify + header rewrite + CRC
//! patch) over real captured batches, side by side with a plain memcpy and a
//! bare CRC-32C pass over the same bytes: the hardware limits. Plus the slow
//! path (decode + re-encode) per codec.
//!
//! `cargo bench -p ferry-benches` (results in target/criterion).

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferry_benches::{captured_batches, concatenated};
use ferry_engine::plan::forward_header;
use ferry_wire::batch::{BatchIter, FetchedBatch};
use ferry_wire::reencode::{ReencodeOptions, reencode};
use std::hint::black_box;

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_path");
    for (name, batches) in captured_batches() {
        if batches.is_empty() {
            continue;
        }
        let data = concatenated(&batches);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(BenchmarkId::new("memcpy", &name), &data, |b, data| {
            let mut dst = vec![0u8; data.len()];
            b.iter(|| dst.copy_from_slice(black_box(data)));
        });
        group.bench_with_input(BenchmarkId::new("crc32c", &name), &data, |b, data| {
            b.iter(|| crc32c::crc32c(black_box(data)));
        });
        group.bench_with_input(BenchmarkId::new("forward", &name), &data, |b, data| {
            let mut scratch = BytesMut::with_capacity(64 * 1024);
            b.iter(|| {
                for entry in BatchIter::new(data.clone()) {
                    let Ok(FetchedBatch::V2(batch)) = entry else {
                        continue;
                    };
                    batch.verify_crc().ok();
                    let mut h = forward_header(batch.header());
                    h.producer_id = 1;
                    h.producer_epoch = 0;
                    h.base_sequence = 0;
                    black_box(batch.rewrite_header(&h, &mut scratch).ok());
                }
            });
        });
        group.bench_with_input(
            BenchmarkId::new("forward_no_verify", &name),
            &data,
            |b, data| {
                let mut scratch = BytesMut::with_capacity(64 * 1024);
                b.iter(|| {
                    for entry in BatchIter::new(data.clone()) {
                        let Ok(FetchedBatch::V2(batch)) = entry else {
                            continue;
                        };
                        let h = forward_header(batch.header());
                        black_box(batch.rewrite_header(&h, &mut scratch).ok());
                    }
                });
            },
        );
    }
    group.finish();
}

fn slow_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("slow_path");
    group.sample_size(10);
    for (name, batches) in captured_batches() {
        if batches.is_empty() {
            continue;
        }
        let bytes: usize = batches.iter().map(|b| b.len()).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(BenchmarkId::new("reencode", &name), |b| {
            b.iter(|| {
                for batch in &batches {
                    black_box(
                        reencode(
                            &FetchedBatch::V2(batch.clone()),
                            &ReencodeOptions::default(),
                        )
                        .ok(),
                    );
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, hot_path, slow_path);
criterion_main!(benches);
