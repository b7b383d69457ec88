//! The source fetcher against a real broker (`FERRY_KAFKA_A`; see
//! `source_support` for how tests are skipped).

mod source_support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_client::{
    Client, FetcherConfig, KafkaCode, PartitionData, SourceFetcher, TopicPartition,
};
use ferry_wire::batch::{BatchIter, FetchedBatch};
use source_support::{
    batch, broker, connect, create_topic, delete_topic, now_ms, produce, unique_topic,
};

const POLL_TIMEOUT: Duration = Duration::from_secs(30);

async fn poll(fetcher: &SourceFetcher) -> Vec<PartitionData> {
    tokio::time::timeout(POLL_TIMEOUT, fetcher.poll())
        .await
        .expect("data within 30 s")
        .expect("poll")
}

/// Whatever arrives within `wait` (nothing if nothing does).
async fn poll_briefly(fetcher: &SourceFetcher, wait: Duration) -> Vec<PartitionData> {
    match tokio::time::timeout(wait, fetcher.poll()).await {
        Ok(data) => data.expect("poll"),
        Err(_) => Vec::new(),
    }
}

/// Checks that each partition's batches arrive exactly once and in order:
/// every batch starts where the previous one ended.
#[derive(Default)]
struct Tracker {
    next: HashMap<TopicPartition, i64>,
    records: HashMap<TopicPartition, i64>,
    batches: usize,
    bytes: usize,
}

impl Tracker {
    fn expect_from(&mut self, tp: &TopicPartition, offset: i64) {
        self.next.insert(tp.clone(), offset);
    }

    fn absorb(&mut self, data: &PartitionData) {
        assert_eq!(data.error, None, "{}: unexpected error: {data:?}", data.tp);
        let next = self
            .next
            .get_mut(&data.tp)
            .expect("data for an assigned partition");
        assert_eq!(
            data.fetch_offset, *next,
            "{}: fetched from the wrong offset",
            data.tp
        );
        assert!(
            !data.records.is_empty(),
            "{}: data without records",
            data.tp
        );
        self.bytes += data.records.len();
        let mut iter = BatchIter::new(data.records.clone());
        for entry in iter.by_ref() {
            let FetchedBatch::V2(b) = entry.expect("a well-formed batch") else {
                panic!("{}: a legacy batch", data.tp)
            };
            let h = b.header();
            assert_eq!(
                h.base_offset, *next,
                "{}: batch out of order or repeated",
                data.tp
            );
            b.verify_crc().expect("CRC");
            *next = h.next_offset();
            *self.records.entry(data.tp.clone()).or_default() += i64::from(h.record_count);
            self.batches += 1;
        }
        assert_eq!(
            iter.incomplete_tail(),
            0,
            "{}: partial batch handed out",
            data.tp
        );
        assert!(data.high_watermark >= *next);
    }

    fn at(&self, tp: &TopicPartition) -> i64 {
        self.next.get(tp).copied().unwrap_or(-1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_once_in_order_across_pause_resume_and_seek() {
    let Some(addr) = broker() else { return };
    let client = connect(&addr).await;
    const TOPICS: usize = 3;
    const PARTITIONS: i32 = 4;
    const BATCHES: usize = 25;
    const RECORDS: usize = 5;
    let topics: Vec<String> = (0..TOPICS)
        .map(|i| unique_topic(&format!("f{i}")))
        .collect();
    for t in &topics {
        create_topic(&client, t, PARTITIONS, &[]).await;
    }
    let tps: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| (0..PARTITIONS).map(move |p| TopicPartition::new(t.as_str(), p)))
        .collect();

    // Produce concurrently with fetching, interleaving partitions.
    let producer = {
        let client = client.clone();
        let tps = tps.clone();
        tokio::spawn(async move {
            for round in 0..BATCHES {
                for tp in &tps {
                    let b = batch(&format!("{tp}/{round}"), RECORDS, now_ms(), 0);
                    produce(&client, &tp.topic, tp.partition, b).await;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let fetcher = SourceFetcher::new(client.clone(), FetcherConfig::default());
    let mut seen = Tracker::default();
    for tp in &tps {
        fetcher.assign(tp.clone(), 0);
        seen.expect_from(tp, 0);
    }
    let end = i64::try_from(BATCHES * RECORDS).unwrap();
    let paused = tps[1].clone();
    let sought = tps[6].clone();
    let mut paused_at: Option<Instant> = None;
    let mut resumed = false;
    let mut reassigned = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for data in poll_briefly(&fetcher, Duration::from_millis(200)).await {
            if paused_at.is_some() && !resumed {
                assert_ne!(data.tp, paused, "data for a paused partition");
            }
            seen.absorb(&data);
        }
        // Pause one partition once it has data, for a second.
        if paused_at.is_none() && seen.at(&paused) > 0 {
            fetcher.pause(&paused);
            paused_at = Some(Instant::now());
        }
        if let Some(at) = paused_at.filter(|_| !resumed) {
            if at.elapsed() > Duration::from_secs(1) {
                fetcher.resume(&paused);
                resumed = true;
            }
        }
        // Once a partition is a good way in, drop it and start it over.
        if !reassigned && seen.at(&sought) >= 10 {
            fetcher.unassign(&sought);
            fetcher.assign(sought.clone(), 0);
            seen.expect_from(&sought, 0);
            seen.records.remove(&sought);
            reassigned = true;
        }
        let done = producer.is_finished() && tps.iter().all(|tp| seen.at(tp) == end);
        if done && resumed && reassigned {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not everything arrived: {:?}",
            seen.next
        );
    }
    producer.await.unwrap();
    for tp in &tps {
        assert_eq!(seen.records.get(tp).copied(), Some(end), "{tp}");
    }
    assert_eq!(fetcher.position(&tps[0]), Some(end));
    println!("{} batches, {} bytes", seen.batches, seen.bytes);
}

#[tokio::test]
async fn batches_larger_than_the_partition_limit_are_fetched_whole() {
    let Some(addr) = broker() else { return };
    let client = connect(&addr).await;
    let topic = unique_topic("big");
    create_topic(&client, &topic, 3, &[]).await;
    for p in 0..3 {
        for i in 0..3 {
            // ~20 KiB batches against a 1 KiB per-partition limit.
            let b = batch(&format!("{p}/{i}"), 20, now_ms(), 1000);
            produce(&client, &topic, p, b).await;
        }
    }
    // Room to grow the partition limit; then not even room for one batch
    // per response, where only KIP-74 (first partition) gets it through.
    for max_bytes in [64 * 1024, 8 * 1024] {
        let config = FetcherConfig {
            partition_max_bytes: 1024,
            max_bytes,
            ..FetcherConfig::default()
        };
        let fetcher = SourceFetcher::new(client.clone(), config);
        let mut seen = Tracker::default();
        for p in 0..3 {
            let tp = TopicPartition::new(topic.as_str(), p);
            fetcher.assign(tp.clone(), 0);
            seen.expect_from(&tp, 0);
        }
        while (0..3).any(|p| seen.at(&TopicPartition::new(topic.as_str(), p)) < 60) {
            for data in poll(&fetcher).await {
                seen.absorb(&data);
            }
        }
        assert_eq!(seen.batches, 9, "max_bytes {max_bytes}");
    }
}

/// Polls until `tp` reports an error, checking nothing else goes wrong.
async fn error_for(fetcher: &SourceFetcher, tp: &TopicPartition) -> PartitionData {
    loop {
        for data in poll(fetcher).await {
            if data.error.is_some() {
                assert_eq!(&data.tp, tp);
                return data;
            }
        }
    }
}

#[tokio::test]
async fn a_deleted_topic_is_reported_not_waited_on() {
    let Some(addr) = broker() else { return };
    let client = connect(&addr).await;
    let topic = unique_topic("deleted");
    create_topic(&client, &topic, 1, &[]).await;
    produce(&client, &topic, 0, batch("x", 3, now_ms(), 0)).await;
    let tp = TopicPartition::new(topic.as_str(), 0);
    let fetcher = SourceFetcher::new(client.clone(), FetcherConfig::default());
    fetcher.assign(tp.clone(), 0);
    let first = poll(&fetcher).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].error, None);

    delete_topic(&client, &topic).await;
    let started = Instant::now();
    let data = error_for(&fetcher, &tp).await;
    let code = data.error.unwrap();
    assert!(
        [
            KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
            KafkaCode::UNKNOWN_TOPIC_ID
        ]
        .contains(&code),
        "{code}"
    );
    assert_eq!(data.fetch_offset, 3);
    println!("deletion reported as {code} after {:?}", started.elapsed());
}

#[tokio::test]
async fn out_of_range_is_reported_and_a_new_assign_recovers() {
    let Some(addr) = broker() else { return };
    let client = connect(&addr).await;
    let topic = unique_topic("range");
    create_topic(&client, &topic, 2, &[]).await;
    produce(&client, &topic, 0, batch("a", 4, now_ms(), 0)).await;
    let tp = TopicPartition::new(topic.as_str(), 0);
    let idle = TopicPartition::new(topic.as_str(), 1);
    let fetcher = SourceFetcher::new(client.clone(), FetcherConfig::default());
    fetcher.assign(idle, 0);
    fetcher.assign(tp.clone(), 100);
    let data = error_for(&fetcher, &tp).await;
    assert_eq!(data.error, Some(KafkaCode::OFFSET_OUT_OF_RANGE));
    assert_eq!(data.fetch_offset, 100);
    assert!(data.records.is_empty());

    fetcher.assign(tp.clone(), 0);
    let mut seen = Tracker::default();
    seen.expect_from(&tp, 0);
    while seen.at(&tp) < 4 {
        for data in poll(&fetcher).await {
            seen.absorb(&data);
        }
    }
}

/// Throughput of one fetcher against one local broker: prints MB/s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_from_one_broker() {
    let Some(addr) = broker() else { return };
    let client = connect(&addr).await;
    let topic = unique_topic("speed");
    const PARTITIONS: i32 = 4;
    const BATCHES: usize = 64; // per partition, 128 KiB each: 32 MiB in all
    create_topic(&client, &topic, PARTITIONS, &[]).await;
    let client = Arc::new(client);
    let mut producers = Vec::new();
    for p in 0..PARTITIONS {
        let client = Arc::clone(&client);
        let topic = topic.clone();
        producers.push(tokio::spawn(async move {
            let b = batch("speed", 128, now_ms(), 1024);
            for _ in 0..BATCHES {
                produce(&client, &topic, p, b.clone()).await;
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    let fetcher = SourceFetcher::new(Client::clone(&client), FetcherConfig::default());
    let mut seen = Tracker::default();
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic.as_str(), p))
        .collect();
    for tp in &tps {
        fetcher.assign(tp.clone(), 0);
        seen.expect_from(tp, 0);
    }
    let end = i64::try_from(BATCHES * 128).unwrap();
    let started = Instant::now();
    let mut polls = 0;
    while tps.iter().any(|tp| seen.at(tp) < end) {
        for data in poll(&fetcher).await {
            seen.absorb(&data);
        }
        polls += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let mb = seen.bytes as f64 / 1e6;
    println!(
        "fetched {mb:.1} MB in {} batches with {polls} polls in {secs:.2} s: {:.0} MB/s",
        seen.batches,
        mb / secs
    );
    let per_partition: BTreeMap<_, _> = seen
        .records
        .iter()
        .map(|(tp, n)| (tp.to_string(), *n))
        .collect();
    assert!(
        per_partition.values().all(|n| *n == end),
        "{per_partition:?}"
    );
}

/// Connection loss: the broker restarts under a running fetcher, which
/// reconnects and carries on from its positions. Restarting disturbs every
/// other test on that broker, so this one runs only when asked:
/// `FERRY_RESTART_CLUSTER=<harness cluster name> cargo test --test fetcher -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the broker; set FERRY_RESTART_CLUSTER and run with --ignored"]
async fn survives_a_broker_restart() {
    let Some(addr) = broker() else { return };
    let Ok(cluster) = std::env::var("FERRY_RESTART_CLUSTER") else {
        println!("skipped: FERRY_RESTART_CLUSTER is not set");
        return;
    };
    let client = connect(&addr).await;
    let topic = unique_topic("restart");
    create_topic(&client, &topic, 2, &[]).await;
    let tps: Vec<TopicPartition> = (0..2)
        .map(|p| TopicPartition::new(topic.as_str(), p))
        .collect();
    for tp in &tps {
        for i in 0..5 {
            produce(
                &client,
                &topic,
                tp.partition,
                batch(&format!("{i}"), 3, now_ms(), 0),
            )
            .await;
        }
    }
    let fetcher = SourceFetcher::new(client.clone(), FetcherConfig::default());
    let mut seen = Tracker::default();
    for tp in &tps {
        fetcher.assign(tp.clone(), 0);
        seen.expect_from(tp, 0);
    }
    while tps.iter().any(|tp| seen.at(tp) < 15) {
        for data in poll(&fetcher).await {
            seen.absorb(&data);
        }
    }

    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let restart = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("harness/kafka_harness.py")
            .arg("restart")
            .arg(&cluster)
            .current_dir(repo)
            .status()
            .expect("run the harness")
    });
    // Polling through the restart: nothing arrives, nothing breaks.
    while !restart.is_finished() {
        for data in poll_briefly(&fetcher, Duration::from_millis(200)).await {
            seen.absorb(&data);
        }
    }
    assert!(restart.await.unwrap().success(), "harness restart failed");
    let restarted = Instant::now();

    // Produce more once the broker serves the topic again.
    client
        .wait_for_topic(&topic, 2, Duration::from_secs(60))
        .await
        .unwrap();
    for tp in &tps {
        for i in 5..10 {
            produce(
                &client,
                &topic,
                tp.partition,
                batch(&format!("{i}"), 3, now_ms(), 0),
            )
            .await;
        }
    }
    while tps.iter().any(|tp| seen.at(tp) < 30) {
        for data in poll(&fetcher).await {
            seen.absorb(&data);
        }
    }
    println!("caught up {:?} after the restart", restarted.elapsed());
}
