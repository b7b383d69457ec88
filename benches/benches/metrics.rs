//! What the metrics cost per batch: the updates a partition task makes for
//! one forwarded batch (in flight, acknowledged with its latencies, mirrored
//! position and lag), with per-partition series on and off. Compare with
//! `hot_path/forward` (the work the batch itself costs).
//!
//! `cargo bench -p ferry-benches --bench metrics`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ferry_client::TopicPartition;
use ferry_engine::metrics::{AckedBatch, BatchPath, Metrics};

fn per_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics_per_batch");
    for per_partition in [true, false] {
        let metrics = Metrics::new(per_partition);
        let flow = metrics.flow("bench");
        let mut partition = flow.partition(&TopicPartition::new("orders", 0));
        let label = if per_partition {
            "per_partition"
        } else {
            "per_flow_only"
        };
        let mut offset = 0i64;
        group.bench_function(BenchmarkId::new("forwarded_batch", label), |b| {
            b.iter(|| {
                offset += 100;
                partition.fetched(offset + 1_000, offset + 1_000, 1_000_000);
                partition.sent();
                partition.acknowledged(
                    black_box(&AckedBatch {
                        path: BatchPath::Forwarded,
                        bytes: 16_384,
                        records: 100,
                        max_timestamp: 999_000,
                        produce_time: Duration::from_micros(1_500),
                    }),
                    1_000_000,
                );
                partition.mirrored(offset, 1_000_000);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, per_batch);
criterion_main!(benches);
