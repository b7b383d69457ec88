//! The idempotent producer against a real Kafka broker.
//!
//! The shared broker comes from `FERRY_KAFKA_A`. Without it each test prints
//! that it was skipped, unless `FERRY_REQUIRE_BROKERS=1`, which turns a
//! missing broker into a failure. The restart test starts (and stops) its own
//! cluster, `producer-test`, with `harness/kafka_harness.py`.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod source_support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ferry_client::{
    Ack, AckFuture, Client, ClientConfig, ClientError, FetchOptions, IdempotentProducer, KafkaCode,
    ProduceOptions, ProducerConfig, TopicPartition,
};
use ferry_wire::batch::{BatchIter, FetchedBatch, RecordBatch};
use ferry_wire::builder::{BatchSpec, build_batch};
use ferry_wire::codec::Compression;
use ferry_wire::record::Record;
use source_support::{broker, create_topic, now_ms};

fn unique_topic(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("ferry-producer-{prefix}-{}-{nanos}", std::process::id())
}

/// The value of record `r` of batch `b` of partition `p`.
fn value(p: i32, b: usize, r: usize) -> String {
    format!("p{p}-b{b}-r{r}")
}

/// Batch `b` of partition `p`: 1 to 4 records, every third one lz4.
fn make_batch(p: i32, b: usize) -> RecordBatch {
    let count = 1 + (b % 4);
    let records: Vec<Record> = (0..count)
        .map(|r| Record {
            offset: i64::try_from(r).unwrap(),
            timestamp: now_ms() + i64::try_from(b).unwrap(),
            key: Some(Bytes::from(format!("k{b}"))),
            value: Some(Bytes::from(value(p, b, r))),
            headers: Vec::new(),
        })
        .collect();
    let compression = if b % 3 == 0 {
        Compression::Lz4
    } else {
        Compression::None
    };
    let bytes = build_batch(&BatchSpec::producer(compression), &records).unwrap();
    RecordBatch::new(bytes).unwrap()
}

fn record_count(b: usize) -> i64 {
    i64::try_from(1 + (b % 4)).unwrap()
}

/// Sends `batch` under its own header.
async fn send(producer: &IdempotentProducer, tp: &TopicPartition, batch: RecordBatch) -> AckFuture {
    let header = *batch.header();
    producer
        .send(tp, batch, header)
        .await
        .unwrap_or_else(|e| panic!("send to {tp}: {e}"))
}

/// What a fetched target batch says about who wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    base_offset: i64,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    values: Vec<String>,
}

/// Every batch of a partition, from offset 0 to the high watermark.
async fn read_partition(client: &Client, topic: &str, partition: i32) -> Vec<Written> {
    let options = FetchOptions {
        max_wait: Duration::from_millis(10),
        ..FetchOptions::default()
    };
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let fetched = client
            .fetch_raw(topic, partition, offset, &options)
            .await
            .unwrap_or_else(|e| panic!("fetch {topic}-{partition}@{offset}: {e}"));
        assert_eq!(fetched.error, None, "fetch {topic}-{partition}@{offset}");
        if offset >= fetched.high_watermark {
            return out;
        }
        for batch in BatchIter::new(fetched.records) {
            let FetchedBatch::V2(batch) = batch.unwrap() else {
                panic!("legacy batch in a new topic");
            };
            batch.verify_crc().unwrap();
            let h = *batch.header();
            offset = h.next_offset();
            let values = batch
                .records(64 << 20)
                .unwrap()
                .map(|r| String::from_utf8(r.unwrap().value.unwrap().to_vec()).unwrap())
                .collect();
            out.push(Written {
                base_offset: h.base_offset,
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                base_sequence: h.base_sequence,
                values,
            });
        }
    }
}

/// Sends `batches` batches to each partition, one task per partition, all
/// pipelined; returns each partition's acks in send order.
async fn produce_all(
    producer: &IdempotentProducer,
    topic: &str,
    partitions: i32,
    batches: usize,
    pace: Option<Duration>,
    progress: Arc<AtomicUsize>,
) -> HashMap<i32, Vec<Ack>> {
    let mut tasks = Vec::new();
    for p in 0..partitions {
        let producer = producer.clone();
        let tp = TopicPartition::new(topic, p);
        let progress = Arc::clone(&progress);
        tasks.push(tokio::spawn(async move {
            let mut pending = Vec::with_capacity(batches);
            for b in 0..batches {
                pending.push(send(&producer, &tp, make_batch(p, b)).await);
                progress.fetch_add(1, Ordering::Relaxed);
                if let Some(pace) = pace {
                    tokio::time::sleep(pace).await;
                }
            }
            let mut acks = Vec::with_capacity(batches);
            for (b, ack) in pending.into_iter().enumerate() {
                acks.push(ack.await.unwrap_or_else(|e| panic!("{tp} batch {b}: {e}")));
            }
            (p, acks)
        }));
    }
    let mut all = HashMap::new();
    for task in tasks {
        let (p, acks) = task.await.unwrap();
        all.insert(p, acks);
    }
    all
}

/// Every record once, in order; acked offsets match the log; every batch
/// carries the producer's id with contiguous sequences.
async fn verify(
    client: &Client,
    topic: &str,
    partitions: i32,
    batches: usize,
    acks: &HashMap<i32, Vec<Ack>>,
    producer_id: i64,
) {
    for p in 0..partitions {
        let written = read_partition(client, topic, p).await;
        let got: Vec<&String> = written.iter().flat_map(|w| &w.values).collect();
        let want: Vec<String> = (0..batches)
            .flat_map(|b| (0..1 + (b % 4)).map(move |r| value(p, b, r)))
            .collect();
        assert_eq!(got.len(), want.len(), "partition {p}: record count");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(*g, w, "partition {p}: record {i}");
        }
        let acks = &acks[&p];
        let mut expected_offset = 0;
        let by_offset: HashMap<i64, &Written> =
            written.iter().map(|w| (w.base_offset, w)).collect();
        for (b, ack) in acks.iter().enumerate() {
            assert_eq!(
                ack.base_offset, expected_offset,
                "partition {p} batch {b}: acked offset"
            );
            assert_eq!(i64::from(ack.record_count), record_count(b));
            let w = by_offset.get(&ack.base_offset).unwrap_or_else(|| {
                panic!(
                    "partition {p} batch {b}: no batch at offset {}",
                    ack.base_offset
                )
            });
            assert_eq!(w.values[0], value(p, b, 0));
            assert_eq!(w.producer_id, producer_id);
            expected_offset += record_count(b);
        }
        // One producer epoch here: sequences are the record positions.
        for w in &written {
            assert_eq!(i64::from(w.base_sequence), w.base_offset, "partition {p}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_pipelined_batches_to_eight_partitions() {
    let Some(addr) = broker() else { return };
    let client = Client::connect(&[&addr], ClientConfig::default())
        .await
        .unwrap();
    let topic = unique_topic("bulk");
    let partitions = 8;
    let batches = 500;
    create_topic(&client, &topic, partitions, &[]).await;

    let producer = IdempotentProducer::start(client.clone(), ProducerConfig::default())
        .await
        .unwrap();
    let (producer_id, epoch) = producer.producer_id_and_epoch();
    assert!(producer_id >= 0);
    assert_eq!(epoch, 0);

    let started = Instant::now();
    let acks = produce_all(
        &producer,
        &topic,
        partitions,
        batches,
        None,
        Arc::new(AtomicUsize::new(0)),
    )
    .await;
    let elapsed = started.elapsed();
    let total = usize::try_from(partitions).unwrap() * batches;
    #[allow(clippy::cast_precision_loss)]
    let rate = total as f64 / elapsed.as_secs_f64();
    println!("{total} batches to {partitions} partitions in {elapsed:?}: {rate:.0} batches/s");

    producer.flush().await.unwrap();
    verify(&client, &topic, partitions, batches, &acks, producer_id).await;

    // Closing stops every clone.
    let other = producer.clone();
    producer.close().await.unwrap();
    let tp = TopicPartition::new(topic.as_str(), 0);
    let batch = make_batch(0, 0);
    let header = *batch.header();
    let err = other.send(&tp, batch, header).await.unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_batch_fails_its_partition_only() {
    let Some(addr) = broker() else { return };
    let client = Client::connect(&[&addr], ClientConfig::default())
        .await
        .unwrap();
    let topic = unique_topic("too-large");
    create_topic(&client, &topic, 4, &[("max.message.bytes", "20000")]).await;
    let producer = IdempotentProducer::start(client.clone(), ProducerConfig::default())
        .await
        .unwrap();
    let tp = |p| TopicPartition::new(topic.as_str(), p);

    // Partitions 0, 2, 3 get 20 batches each, partition 1 two small ones,
    // then one of ~60 kB, all interleaved and in flight together.
    let mut fine = Vec::new();
    let mut small = Vec::new();
    for b in 0..20 {
        for p in [0, 2, 3] {
            fine.push(send(&producer, &tp(p), make_batch(p, b)).await);
        }
        if b < 2 {
            small.push(send(&producer, &tp(1), make_batch(1, b)).await);
        }
    }
    let big_value = Bytes::from(vec![b'x'; 60_000]);
    let big = RecordBatch::new(
        build_batch(
            &BatchSpec::producer(Compression::None),
            &[Record {
                offset: 0,
                timestamp: now_ms(),
                key: None,
                value: Some(big_value),
                headers: Vec::new(),
            }],
        )
        .unwrap(),
    )
    .unwrap();
    let big_ack = send(&producer, &tp(1), big).await;

    let err = big_ack.await.unwrap_err();
    let text = err.to_string();
    println!("{text}");
    assert_eq!(
        err.kafka_code(),
        Some(KafkaCode::MESSAGE_TOO_LARGE),
        "{text}"
    );
    assert!(
        text.contains(&format!("{topic:?} partition 1")) && text.contains("base sequence 3"),
        "{text}"
    );
    for ack in small {
        ack.await.unwrap();
    }
    // The partition stopped: later sends fail at once, naming the cause.
    let header = *make_batch(1, 5).header();
    let refused = producer
        .send(&tp(1), make_batch(1, 5), header)
        .await
        .unwrap_err();
    let refused_text = refused.to_string();
    assert!(
        matches!(refused, ClientError::NotDelivered { partition: 1, .. })
            && refused_text.contains("MESSAGE_TOO_LARGE"),
        "{refused_text}"
    );
    // The others carry on.
    for ack in fine {
        ack.await.unwrap();
    }
    for b in 20..30 {
        for p in [0, 2, 3] {
            send(&producer, &tp(p), make_batch(p, b))
                .await
                .await
                .unwrap();
        }
    }
    let flushed = producer.flush().await;
    assert!(
        flushed.is_ok(),
        "batches sent after the failure all succeeded: {flushed:?}"
    );
    let p1 = read_partition(&client, &topic, 1).await;
    let values: Vec<&String> = p1.iter().flat_map(|w| &w.values).collect();
    assert_eq!(values, [&value(1, 0, 0), &value(1, 1, 0), &value(1, 1, 1)]);
    for p in [0, 2, 3] {
        let records: usize = read_partition(&client, &topic, p)
            .await
            .iter()
            .map(|w| w.values.len())
            .sum();
        assert_eq!(
            records,
            (0..30).map(|b| 1 + b % 4).sum::<usize>(),
            "partition {p}"
        );
    }
    producer.close().await.unwrap();
}

/// Writes a batch with this producer's id behind its back, so that the
/// broker's producer state no longer matches the producer's.
async fn intrude(
    client: &Client,
    topic: &str,
    partition: i32,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
    records: usize,
) {
    let records: Vec<Record> = (0..records)
        .map(|r| Record {
            offset: i64::try_from(r).unwrap(),
            timestamp: now_ms(),
            key: None,
            value: Some(Bytes::from(format!("intruder-{r}"))),
            headers: Vec::new(),
        })
        .collect();
    let spec = BatchSpec {
        producer_id,
        producer_epoch: epoch,
        base_sequence: sequence,
        ..BatchSpec::producer(Compression::None)
    };
    let bytes = build_batch(&spec, &records).unwrap();
    client
        .produce_batch(topic, partition, vec![bytes], &ProduceOptions::default())
        .await
        .unwrap();
}

async fn values_of(client: &Client, topic: &str, partition: i32) -> Vec<(i16, i32, Vec<String>)> {
    read_partition(client, topic, partition)
        .await
        .into_iter()
        .map(|w| (w.epoch, w.base_sequence, w.values))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_sequence_bumps_the_epoch_and_resequences() {
    let Some(addr) = broker() else { return };
    let client = Client::connect(&[&addr], ClientConfig::default())
        .await
        .unwrap();
    let topic = unique_topic("oos");
    create_topic(&client, &topic, 1, &[]).await;
    let producer = IdempotentProducer::start(client.clone(), ProducerConfig::default())
        .await
        .unwrap();
    let (pid, epoch) = producer.producer_id_and_epoch();
    let tp = TopicPartition::new(topic.as_str(), 0);
    // Three one-record batches: sequences 0, 1, 2.
    for b in [0, 4, 8] {
        send(&producer, &tp, make_batch(0, b)).await.await.unwrap();
    }
    // Someone takes sequences 3-4 under our id: our next batch (sequence 3)
    // is out of order although every earlier batch was acknowledged.
    intrude(&client, &topic, 0, pid, epoch, 3, 2).await;
    let ack = send(&producer, &tp, make_batch(0, 12)).await.await.unwrap();
    assert_eq!(ack.base_offset, 5);
    assert_eq!(producer.producer_id_and_epoch(), (pid, epoch + 1));
    let ack = send(&producer, &tp, make_batch(0, 16)).await.await.unwrap();
    assert_eq!(ack.base_offset, 6);
    let log = values_of(&client, &topic, 0).await;
    let v = |b| vec![value(0, b, 0)];
    assert_eq!(
        log,
        [
            (epoch, 0, v(0)),
            (epoch, 1, v(4)),
            (epoch, 2, v(8)),
            (
                epoch,
                3,
                vec!["intruder-0".to_owned(), "intruder-1".to_owned()]
            ),
            (epoch + 1, 0, v(12)),
            (epoch + 1, 1, v(16)),
        ]
    );
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_epoch_on_the_broker_is_overtaken() {
    let Some(addr) = broker() else { return };
    let client = Client::connect(&[&addr], ClientConfig::default())
        .await
        .unwrap();
    let topic = unique_topic("epoch");
    create_topic(&client, &topic, 1, &[]).await;
    let producer = IdempotentProducer::start(client.clone(), ProducerConfig::default())
        .await
        .unwrap();
    let (pid, epoch) = producer.producer_id_and_epoch();
    let tp = TopicPartition::new(topic.as_str(), 0);
    send(&producer, &tp, make_batch(0, 0)).await.await.unwrap();
    // The broker sees epoch + 1 (sequences 0-2) for our id: our next batch
    // gets INVALID_PRODUCER_EPOCH, then, under epoch + 1 at sequence 0,
    // OUT_OF_ORDER_SEQUENCE_NUMBER, and goes through under epoch + 2.
    intrude(&client, &topic, 0, pid, epoch + 1, 0, 3).await;
    let ack = send(&producer, &tp, make_batch(0, 4)).await.await.unwrap();
    assert_eq!(ack.base_offset, 4);
    assert_eq!(producer.producer_id_and_epoch(), (pid, epoch + 2));
    let log = values_of(&client, &topic, 0).await;
    assert_eq!(log.len(), 3);
    assert_eq!(log[2], (epoch + 2, 0, vec![value(0, 4, 0)]));
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_timeout_names_the_partition_and_the_cause() {
    let Some(addr) = broker() else { return };
    let client = Client::connect(&[&addr], ClientConfig::default())
        .await
        .unwrap();
    let config = ProducerConfig {
        request_timeout: Duration::from_secs(1),
        delivery_timeout: Duration::from_secs(2),
        ..ProducerConfig::default()
    };
    let producer = IdempotentProducer::start(client, config).await.unwrap();
    let topic = unique_topic("missing");
    let tp = TopicPartition::new(topic.as_str(), 0);
    let started = Instant::now();
    let err = send(&producer, &tp, make_batch(0, 0))
        .await
        .await
        .unwrap_err();
    let waited = started.elapsed();
    let text = err.to_string();
    println!("{text} (after {waited:?})");
    assert!(
        matches!(err, ClientError::NotDelivered { partition: 0, .. })
            && text.contains(&topic)
            && text.contains("delivery timeout")
            && text.contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{text}"
    );
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(
        producer.flush().await.is_ok(),
        "the failure came before this flush"
    );
}

// ---- a broker restart, on a cluster of our own --------------------------------

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn harness(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(repo_root().join("harness/kafka_harness.py"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "kafka_harness.py {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A cluster this test started; stopped when dropped, even on failure.
struct OwnCluster(&'static str);

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("python3")
            .arg(repo_root().join("harness/kafka_harness.py"))
            .args(["stop", self.0])
            .current_dir(repo_root())
            .output();
    }
}

/// The pid of a running harness cluster, from `kafka_harness.py status`.
fn cluster_pid(name: &str) -> u32 {
    let status = harness(&["status"]);
    status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("pid=")))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid for {name} in:\n{status}"))
}

/// Waits until `progress` reaches `at`.
async fn reach(progress: &AtomicUsize, at: usize) {
    while progress.load(Ordering::Relaxed) < at {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_and_duplicates_nothing() {
    // Needs the harness (Java, Kafka jars) as much as the shared broker does.
    if broker().is_none() {
        return;
    }
    let name = "producer-test";
    let addr = tokio::task::spawn_blocking(move || harness(&["start", name]))
        .await
        .unwrap();
    let _cluster = OwnCluster(name);
    let addr = addr.lines().next().unwrap_or_default().to_owned();
    let client = Client::connect(&[&addr], ClientConfig::default())
        .await
        .unwrap();
    let topic = unique_topic("restart");
    let partitions = 4;
    let batches = 600;
    create_topic(&client, &topic, partitions, &[]).await;
    let producer = IdempotentProducer::start(client.clone(), ProducerConfig::default())
        .await
        .unwrap();
    let (producer_id, _) = producer.producer_id_and_epoch();

    let progress = Arc::new(AtomicUsize::new(0));
    let sending = {
        let producer = producer.clone();
        let topic = topic.clone();
        let progress = Arc::clone(&progress);
        tokio::spawn(async move {
            produce_all(
                &producer,
                &topic,
                partitions,
                batches,
                Some(Duration::from_millis(5)),
                progress,
            )
            .await
        })
    };
    let total = usize::try_from(partitions).unwrap() * batches;

    // A clean restart (SIGTERM: controlled shutdown) a quarter of the way in...
    reach(&progress, total / 4).await;
    let t = Instant::now();
    tokio::task::spawn_blocking(move || harness(&["restart", name]))
        .await
        .unwrap();
    println!(
        "restarted {name} at {} of {total} batches in {:?}",
        progress.load(Ordering::Relaxed),
        t.elapsed()
    );

    // ...and a crash (SIGKILL, requests in flight) at two thirds.
    reach(&progress, total * 2 / 3).await;
    let t = Instant::now();
    let pid = cluster_pid(name);
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -9 {pid}");
    tokio::task::spawn_blocking(move || {
        // `start` sees the dead pid and starts the cluster again on the same ports.
        while harness(&["status"])
            .lines()
            .any(|l| l.starts_with(name) && l.contains("running"))
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        harness(&["start", name])
    })
    .await
    .unwrap();
    println!(
        "killed and restarted {name} at {} of {total} batches in {:?}",
        progress.load(Ordering::Relaxed),
        t.elapsed()
    );

    let acks = sending.await.unwrap();
    producer.flush().await.unwrap();
    verify(&client, &topic, partitions, batches, &acks, producer_id).await;
    producer.close().await.unwrap();
}
