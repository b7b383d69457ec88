//! The source fetcher against real brokers when the source misbehaves:
//! a log that diverged from what was fetched (KIP-320), a batch larger than
//! the connection's frame limit. `FERRY_KAFKA_A`; see `source_support` for
//! how tests are skipped. The restart test starts a cluster of its own.

mod source_support;

use std::time::Duration;

use ferry_client::{
    Client, ClientConfig, FetcherConfig, KafkaCode, PartitionData, SourceFetcher, StopReason,
    TopicPartition,
};
use ferry_testkit::cluster::OwnCluster;
use source_support::{batch, broker, connect, create_topic, now_ms, produce, unique_topic};

const POLL_TIMEOUT: Duration = Duration::from_secs(30);

async fn poll(fetcher: &SourceFetcher) -> Vec<PartitionData> {
    tokio::time::timeout(POLL_TIMEOUT, fetcher.poll())
        .await
        .expect("data within 30 s")
        .expect("poll")
}

async fn leader_epoch(client: &Client, topic: &str) -> i32 {
    client
        .refresh_metadata(Some(&[topic]))
        .await
        .expect("metadata");
    client
        .leader(topic, 0)
        .await
        .expect("leader")
        .partition
        .leader_epoch
        .expect("a leader epoch (Metadata v7+)")
}

/// Polls until `tp` reports data or an error; returns everything polled.
async fn first_answer(fetcher: &SourceFetcher, tp: &TopicPartition) -> PartitionData {
    loop {
        for data in poll(fetcher).await {
            if &data.tp == tp {
                return data;
            }
        }
    }
}

/// A real broker answers a position past its end of ferry's last fetched
/// epoch with a diverging epoch (Fetch v12+): ferry, having fetched epoch E
/// up to 15 while the leader's epoch E ends at 10, stops the partition and
/// names the offsets 10..15 that the source no longer holds.
#[tokio::test]
async fn a_position_past_the_leaders_end_of_our_epoch_is_a_divergence() {
    let Some(addr) = broker() else { return };
    let client = connect(&addr).await;
    let topic = unique_topic("diverged");
    create_topic(&client, &topic, 1, &[]).await;
    produce(&client, &topic, 0, batch("a", 10, now_ms(), 0)).await;
    let epoch = leader_epoch(&client, &topic).await;
    let tp = TopicPartition::new(topic.as_str(), 0);
    let fetcher = SourceFetcher::new(client.clone(), FetcherConfig::default());
    fetcher.assign_after_epoch(tp.clone(), 15, epoch);
    let data = first_answer(&fetcher, &tp).await;
    assert_eq!(data.error, Some(KafkaCode::OFFSET_OUT_OF_RANGE), "{data:?}");
    assert_eq!(data.fetch_offset, 15);
    let d = fetcher.divergence(&tp).expect("a divergence report");
    assert_eq!(
        (d.position, d.diverged_from, d.exact),
        (15, 10, true),
        "{d}"
    );
    assert_eq!((d.leader_epoch, d.leader_end_offset), (epoch, 10));
    // OffsetForLeaderEpoch (the check on brokers below Fetch v12) agrees.
    let end = client
        .epoch_end_offset(&topic, 0, epoch)
        .await
        .expect("epoch end");
    assert_eq!(
        (end.error, end.leader_epoch, end.end_offset),
        (None, epoch, 10)
    );

    // A new assign clears it and fetching goes on from there.
    fetcher.assign(tp.clone(), 0);
    assert_eq!(fetcher.divergence(&tp), None);
    let data = first_answer(&fetcher, &tp).await;
    assert_eq!(data.error, None);
    assert_eq!(fetcher.last_fetched_epoch(&tp), Some(epoch));
}

/// Fetching on in the same epoch, with the epoch sent on every request,
/// never reports a divergence.
#[tokio::test]
async fn fetching_on_in_one_epoch_is_consistent() {
    let Some(addr) = broker() else { return };
    let client = connect(&addr).await;
    let topic = unique_topic("consistent");
    create_topic(&client, &topic, 1, &[]).await;
    let tp = TopicPartition::new(topic.as_str(), 0);
    let fetcher = SourceFetcher::new(client.clone(), FetcherConfig::default());
    fetcher.assign(tp.clone(), 0);
    let mut position = 0;
    for round in 0..5 {
        produce(
            &client,
            &topic,
            0,
            batch(&format!("r{round}"), 4, now_ms(), 0),
        )
        .await;
        while position < (round + 1) * 4 {
            let data = first_answer(&fetcher, &tp).await;
            assert_eq!(data.error, None, "{data:?}");
            position = fetcher.position(&tp).expect("assigned");
        }
    }
    assert!(fetcher.last_fetched_epoch(&tp).is_some());
}

/// The unclean-election shape on a cluster of the test's own: records
/// 0..10 in epoch E, a broker restart (a new leader epoch), records 10..20
/// in the new epoch. A fetcher that read epoch E up to 15 (records that,
/// after an unclean election, the new leader never had) must not fetch on
/// at 15 as if nothing happened: before KIP-320 validation it silently
/// returned the new epoch's records 15..20.
#[tokio::test]
async fn a_new_epoch_past_our_position_is_a_divergence_not_new_data() {
    if broker().is_none() {
        return;
    }
    let cluster = OwnCluster::start("fetcher-divergence", &[]);
    let client = Client::connect(&[cluster.bootstrap.as_str()], ClientConfig::default())
        .await
        .expect("connect to the own cluster");
    let topic = unique_topic("epochs");
    create_topic(&client, &topic, 1, &[]).await;
    produce(&client, &topic, 0, batch("old", 10, now_ms(), 0)).await;
    let old_epoch = leader_epoch(&client, &topic).await;
    drop(client);
    cluster.restart();
    let client = Client::connect(&[cluster.bootstrap.as_str()], ClientConfig::default())
        .await
        .expect("reconnect after the restart");
    client
        .wait_for_topic(&topic, 1, Duration::from_secs(60))
        .await
        .expect("topic served again");
    let new_epoch = leader_epoch(&client, &topic).await;
    assert!(new_epoch > old_epoch, "restart kept epoch {old_epoch}");
    produce(&client, &topic, 0, batch("new", 10, now_ms(), 0)).await;

    let tp = TopicPartition::new(topic.as_str(), 0);
    let fetcher = SourceFetcher::new(client.clone(), FetcherConfig::default());
    fetcher.assign_after_epoch(tp.clone(), 15, old_epoch);
    let data = first_answer(&fetcher, &tp).await;
    assert_eq!(data.error, Some(KafkaCode::OFFSET_OUT_OF_RANGE), "{data:?}");
    let d = fetcher.divergence(&tp).expect("a divergence report");
    assert_eq!((d.position, d.diverged_from), (15, 10), "{d}");
    assert_eq!((d.leader_epoch, d.leader_end_offset), (old_epoch, 10));
    println!("{d}");
    // OffsetForLeaderEpoch gives the same answers: where each epoch ends.
    let end = client
        .epoch_end_offset(&topic, 0, old_epoch)
        .await
        .expect("old epoch end");
    assert_eq!(
        (end.error, end.leader_epoch, end.end_offset),
        (None, old_epoch, 10)
    );
    let end = client
        .epoch_end_offset(&topic, 0, new_epoch)
        .await
        .expect("new epoch end");
    assert_eq!(
        (end.error, end.leader_epoch, end.end_offset),
        (None, new_epoch, 20)
    );
}

/// Partition 1 holds one 512 KiB batch, more than the connection's 256 KiB
/// frame limit (a small limit stands in for a 120 MiB batch); partitions 0
/// and 2 on the same broker hold many small batches. Before, the refused
/// response stalled all three forever (the big partition was listed first
/// again and again); now partition 1 alone stops, with a report naming the
/// setting, and the others are fetched to the end.
#[tokio::test]
async fn a_batch_larger_than_the_frame_limit_stops_only_its_partition() {
    let Some(addr) = broker() else { return };
    const FRAME: usize = 256 * 1024;
    let mut config = ClientConfig::default();
    config.connection.max_frame_size = FRAME;
    let client = Client::connect(&[addr.as_str()], config)
        .await
        .expect("connect");
    let topic = unique_topic("oversized");
    create_topic(&client, &topic, 3, &[]).await;
    produce(&client, &topic, 1, batch("big", 128, now_ms(), 4096)).await;
    const SMALL_BATCHES: i64 = 40;
    for p in [0, 2] {
        for i in 0..SMALL_BATCHES {
            produce(
                &client,
                &topic,
                p,
                batch(&format!("{p}/{i}"), 4, now_ms(), 1000),
            )
            .await;
        }
    }
    let fetcher = SourceFetcher::new(
        client.clone(),
        FetcherConfig {
            max_bytes: 64 * 1024,
            partition_max_bytes: 16 * 1024,
            ..FetcherConfig::default()
        },
    );
    let tps: Vec<TopicPartition> = (0..3)
        .map(|p| TopicPartition::new(topic.as_str(), p))
        .collect();
    for tp in &tps {
        fetcher.assign(tp.clone(), 0);
    }
    let mut big_error = None;
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let done = [&tps[0], &tps[2]]
                .iter()
                .all(|tp| fetcher.position(tp) == Some(SMALL_BATCHES * 4));
            if done && big_error.is_some() {
                return;
            }
            for data in poll(&fetcher).await {
                if data.tp == tps[1] {
                    assert!(data.error.is_some(), "the big batch arrived: {data:?}");
                    big_error = data.error;
                } else {
                    assert_eq!(data.error, None, "{data:?}");
                }
            }
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "stalled: positions {:?}, partition 1 {big_error:?}",
        tps.iter()
            .map(|tp| fetcher.position(tp))
            .collect::<Vec<_>>()
    );
    assert_eq!(big_error, Some(KafkaCode::MESSAGE_TOO_LARGE));
    let reason = fetcher.stop_reason(&tps[1]).expect("a stop reason");
    let StopReason::FrameTooLarge {
        offset,
        frame_size,
        max_frame_size,
    } = reason
    else {
        panic!("{reason:?}")
    };
    assert_eq!((offset, max_frame_size), (0, FRAME));
    assert!(frame_size > 512 * 1024, "{frame_size}");
    assert!(reason.to_string().contains("max_frame_size"), "{reason}");
    println!("{reason}");
}
