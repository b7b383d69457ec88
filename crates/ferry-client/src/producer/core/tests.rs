//! The core driven through the simulated brokers of [`crate::producer::sim`]:
//! each rule that used to need real brokers and the fault suite, in
//! virtual time.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use crate::TopicPartition;
use crate::error::{ClientError, KafkaCode};
use crate::producer::ProducerConfig;
use crate::producer::sim::{Fate, Sim, batch};

fn tp(partition: i32) -> TopicPartition {
    TopicPartition::new("t", partition)
}

const LIMIT: Duration = Duration::from_secs(600);

/// Every batch delivered, and each partition's log holds `expected`
/// batches exactly once, in order, at the offsets their acks name.
fn assert_exactly_once_in_order(sim: &Sim, expected: &BTreeMap<TopicPartition, Vec<u64>>) {
    for (tp, ids) in expected {
        let log = sim.log(tp);
        let got: Vec<i64> = log.iter().map(|w| w.id).collect();
        let want: Vec<i64> = ids.iter().map(|&n| i64::try_from(n).unwrap()).collect();
        assert_eq!(got, want, "log of {tp}");
        for (written, n) in log.iter().zip(ids) {
            let ack = sim.results[n]
                .as_ref()
                .unwrap_or_else(|e| panic!("batch {n}: {e}"));
            assert_eq!(ack.base_offset, written.base_offset, "ack of batch {n}");
        }
    }
    assert!(sim.stopped.is_empty(), "stopped: {:?}", sim.stopped);
}

/// A partition led by node 1 that has written batch 0 (so it pipelines).
fn confirmed(config: ProducerConfig, brokers: &[i32]) -> Sim {
    let mut sim = Sim::new(config, brokers, &[(tp(0), 1)]);
    sim.send(&tp(0), 0, 1);
    sim.run(LIMIT);
    assert!(sim.results[&0].is_ok());
    sim
}

#[test]
fn not_leader_with_a_kip951_hint_moves_without_a_metadata_refresh() {
    let mut sim = confirmed(ProducerConfig::default(), &[1, 2]);
    assert_eq!(
        sim.metadata_refreshes, 1,
        "the first send looks the topic up"
    );
    sim.move_leader(&tp(0), 2);
    for n in 1..=3 {
        sim.send(&tp(0), n, 2);
    }
    sim.run(LIMIT);
    assert_exactly_once_in_order(&sim, &BTreeMap::from([(tp(0), vec![0, 1, 2, 3])]));
    assert_eq!(sim.metadata_refreshes, 1, "the hint was enough");
    assert_eq!(sim.sent.last().unwrap().node, 2);
    assert_eq!(sim.core.retries.snapshot()["NOT_LEADER_OR_FOLLOWER"], 3);
}

#[test]
fn not_leader_without_a_hint_refreshes_metadata() {
    let mut sim = confirmed(ProducerConfig::default(), &[1, 2]);
    sim.hints = false;
    sim.move_leader(&tp(0), 2);
    sim.send(&tp(0), 1, 1);
    sim.run(LIMIT);
    assert_exactly_once_in_order(&sim, &BTreeMap::from([(tp(0), vec![0, 1])]));
    // (The retry after the backoff may reach the old leader once more
    // before the refresh is answered: one more NOT_LEADER, one more refresh.)
    assert!(sim.metadata_refreshes >= 2);
    assert_eq!(sim.sent.last().unwrap().node, 2);
}

/// A hint naming a broker the client does not know is not followed (the
/// connection could not be made): metadata is refreshed instead.
#[test]
fn a_hint_to_an_unknown_broker_refreshes_metadata() {
    let mut sim = confirmed(ProducerConfig::default(), &[1, 2]);
    sim.brokers.insert(3);
    sim.move_leader(&tp(0), 3);
    sim.send(&tp(0), 1, 1);
    sim.run(LIMIT);
    assert_exactly_once_in_order(&sim, &BTreeMap::from([(tp(0), vec![0, 1])]));
    assert!(sim.metadata_refreshes >= 2);
    assert_eq!(sim.sent.last().unwrap().node, 3);
}

#[test]
fn out_of_order_sequence_after_truncation_resequences_under_a_new_epoch() {
    let mut sim = confirmed(ProducerConfig::default(), &[1]);
    for n in 1..=2 {
        sim.send(&tp(0), n, 3);
    }
    sim.run(LIMIT);
    // An unclean election keeps only batch 0: the broker's last sequence
    // is 0, ours is 7, so the next batch is out of order at the head.
    sim.partitions.get_mut(&tp(0)).unwrap().log.truncate(1);
    sim.send(&tp(0), 3, 1);
    sim.send(&tp(0), 4, 1);
    sim.run(LIMIT);
    assert!(sim.results[&3].is_ok() && sim.results[&4].is_ok());
    assert_eq!(sim.log_ids(&tp(0)), [0, 3, 4]);
    let log = sim.log(&tp(0));
    assert_eq!((log[1].epoch, log[1].base_sequence), (1, 0));
    assert_eq!((log[2].epoch, log[2].base_sequence), (1, 1));
    assert_eq!(sim.core.identity().epoch, 1);
}

#[test]
fn lost_responses_are_retried_with_their_sequences_and_written_once() {
    let mut sim = confirmed(ProducerConfig::default(), &[1]);
    for n in 1..=5 {
        sim.send(&tp(0), n, 2);
    }
    // Batch 1 is written and answered; batch 2 is written and its answer
    // lost with the connection; 3..5 never reach the broker.
    sim.script
        .insert(tp(0), [Fate::Accept, Fate::AppendThenDrop].into());
    sim.run(LIMIT);
    assert_exactly_once_in_order(&sim, &BTreeMap::from([(tp(0), vec![0, 1, 2, 3, 4, 5])]));
    let sequences_of = |n: i64| -> Vec<i32> {
        sim.sent
            .iter()
            .flat_map(|r| &r.batches)
            .filter(|(_, b)| b.id == n)
            .map(|(_, b)| b.base_sequence)
            .collect()
    };
    assert_eq!(sequences_of(2), [3, 3], "resent with its sequence");
    assert_eq!(sequences_of(5), [9, 9]);
    assert_eq!(sim.core.retries.snapshot()["closed"], 4);
}

#[test]
fn duplicate_sequence_number_counts_as_written() {
    let mut sim = Sim::new(ProducerConfig::default(), &[1], &[(tp(0), 1)]);
    sim.script.insert(tp(0), [Fate::DuplicateSequence].into());
    sim.send(&tp(0), 0, 1);
    sim.send(&tp(0), 1, 1);
    sim.run(LIMIT);
    assert_eq!(sim.results[&0].as_ref().unwrap().base_offset, -1);
    assert!(sim.results[&1].is_ok());
    assert!(sim.stopped.is_empty());
}

#[test]
fn throttling_holds_back_the_next_request_to_that_broker() {
    let mut sim = Sim::new(
        ProducerConfig::default(),
        &[1, 2],
        &[(tp(0), 1), (tp(1), 2)],
    );
    sim.throttle_next.insert(1, 700);
    sim.send(&tp(0), 0, 1);
    sim.send(&tp(1), 100, 1);
    sim.run(LIMIT);
    let answered = sim.now;
    sim.send(&tp(0), 1, 1);
    sim.send(&tp(1), 101, 1);
    sim.run(LIMIT);
    let at = |n: i64| sim.sent.iter().find(|r| r.batches[0].1.id == n).unwrap().at;
    assert!(
        at(1) >= answered + Duration::from_millis(700),
        "sent while throttled"
    );
    assert_eq!(at(101), answered, "another broker is not held back");
}

#[test]
fn requests_are_split_at_max_request_bytes() {
    let (one, _) = batch(0, 3);
    let entry = one.len() + super::assemble::PARTITION_OVERHEAD;
    let config = ProducerConfig {
        max_request_bytes: 3 * entry,
        ..ProducerConfig::default()
    };
    let partitions: Vec<(TopicPartition, i32)> = (0..10).map(|p| (tp(p), 1)).collect();
    let mut sim = Sim::new(config, &[1], &partitions);
    for p in 0..10u64 {
        sim.send(&tp(i32::try_from(p).unwrap()), p, 3);
    }
    sim.run(LIMIT);
    let sizes: Vec<usize> = sim.sent.iter().map(|r| r.batches.len()).collect();
    assert_eq!(sizes, [3, 3, 3, 1]);
    assert_eq!(sim.results.len(), 10);
    assert!(sim.results.values().all(Result::is_ok));
    // A batch larger than the limit still goes, alone.
    let config = ProducerConfig {
        max_request_bytes: entry / 2,
        ..ProducerConfig::default()
    };
    let mut sim = Sim::new(config, &[1], &partitions[..3]);
    for p in 0..3u64 {
        sim.send(&tp(i32::try_from(p).unwrap()), p, 3);
    }
    sim.run(LIMIT);
    assert!(sim.sent.iter().all(|r| r.batches.len() == 1));
    assert_eq!(sim.sent.len(), 3);
}

#[test]
fn delivery_timeout_fails_the_batch_and_stops_the_partition() {
    let config = ProducerConfig {
        delivery_timeout: Duration::from_secs(40),
        ..ProducerConfig::default()
    };
    let mut sim = Sim::new(config, &[1], &[(tp(0), 1)]);
    sim.unreachable.insert(1);
    sim.send(&tp(0), 0, 1);
    sim.send(&tp(0), 1, 1);
    sim.run(LIMIT);
    let elapsed = sim.elapsed();
    assert!(
        elapsed >= Duration::from_secs(40) && elapsed <= Duration::from_secs(41),
        "{elapsed:?}"
    );
    let first = sim.results[&0].as_ref().unwrap_err().to_string();
    assert!(
        first.contains("delivery timeout") && first.contains("never sent"),
        "{first}"
    );
    assert!(
        first.contains("could not connect"),
        "names the cause: {first}"
    );
    assert!(matches!(
        sim.results[&1],
        Err(ClientError::NotDelivered { .. })
    ));
    assert!(sim.stopped.contains_key(&tp(0)));
}

/// Engine review §20: the broker has no state for the producer (expired:
/// Kafka ages it by the batches' *record* timestamps, so a backfill of old
/// data loses it within minutes, and a new leader drops it on load). After
/// a leader move, the retried batches went out pipelined to the new leader;
/// the first was refused (NOT_ENOUGH_REPLICAS, nothing appended), the next
/// ones were taken (no state: any sequence goes), and the first was then
/// OUT_OF_ORDER at the head, renumbered and written after them. Retries now
/// go one at a time until the broker acknowledges one, as the Java
/// producer does, so the broker has state again before anything pipelines.
#[test]
fn retries_after_a_leader_move_do_not_reorder_when_the_broker_lost_the_state() {
    let mut sim = confirmed(ProducerConfig::default(), &[1, 2]);
    for n in 1..=3 {
        sim.send(&tp(0), n, 1);
    }
    sim.settle();
    assert_eq!(sim.queues[&1].len(), 3, "pipelined");
    let p = sim.partitions.get_mut(&tp(0)).unwrap();
    p.log.expire_producers();
    sim.move_leader(&tp(0), 2);
    sim.script.insert(
        tp(0),
        [Fate::Refuse(KafkaCode::NOT_ENOUGH_REPLICAS), Fate::Accept].into(),
    );
    sim.run(LIMIT);
    assert_exactly_once_in_order(&sim, &BTreeMap::from([(tp(0), vec![0, 1, 2, 3])]));
}

/// The part of §20 no producer can prevent: the state vanished between two
/// pipelined batches and only the first was refused. The broker has then
/// written the second one first; the core says so loudly (and counts it)
/// rather than resequencing silently.
#[test]
fn a_gap_taken_by_a_broker_without_state_is_reported() {
    let mut sim = confirmed(ProducerConfig::default(), &[1]);
    for n in 1..=2 {
        sim.send(&tp(0), n, 1);
    }
    sim.settle();
    sim.partitions
        .get_mut(&tp(0))
        .unwrap()
        .log
        .expire_producers();
    sim.script.insert(
        tp(0),
        [Fate::Refuse(KafkaCode::NOT_ENOUGH_REPLICAS), Fate::Accept].into(),
    );
    sim.run(LIMIT);
    assert_eq!(sim.log_ids(&tp(0)), [0, 2, 1]);
    assert!(sim.results.values().all(Result::is_ok));
    assert_eq!(sim.core.retries.snapshot().get("reordered"), Some(&1));
}

#[derive(Debug, Clone)]
enum Op {
    /// Node answers its oldest request with this fate for every batch.
    Answer(i32, Fate),
    /// Leadership of a partition moves to a node.
    MoveLeader(i32, i32),
    /// Time passes.
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let node = 1..=3i32;
    let fate = prop_oneof![
        4 => Just(Fate::Accept),
        1 => Just(Fate::Refuse(KafkaCode::NOT_ENOUGH_REPLICAS)),
        1 => Just(Fate::Refuse(KafkaCode::REQUEST_TIMED_OUT)),
        1 => Just(Fate::AppendThenDrop),
        1 => Just(Fate::DropBeforeAppend),
    ];
    prop_oneof![
        6 => (node.clone(), fate).prop_map(|(n, f)| Op::Answer(n, f)),
        1 => (0..3i32, node).prop_map(|(p, n)| Op::MoveLeader(p, n)),
        2 => (1..300u64).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any interleaving of accepted, refused (retriable), lost answers,
    /// lost requests and leader moves: every partition's log ends up with
    /// every batch exactly once, in send order, at the offset its ack names.
    #[test]
    fn any_interleaving_writes_every_batch_once_in_order(
        ops in prop::collection::vec(op(), 0..120),
        records in prop::collection::vec(1..4usize, 36),
        hints in any::<bool>(),
    ) {
        let partitions: Vec<(TopicPartition, i32)> = (0..3).map(|p| (tp(p), p % 2 + 1)).collect();
        let mut sim = Sim::new(ProducerConfig::default(), &[1, 2, 3], &partitions);
        sim.hints = hints;
        let mut expected: BTreeMap<TopicPartition, Vec<u64>> = BTreeMap::new();
        for (n, count) in (0u64..).zip(&records) {
            let target = tp(i32::try_from(n % 3).unwrap());
            expected.entry(target.clone()).or_default().push(n);
            sim.send(&target, n, *count);
        }
        for op in ops {
            sim.settle();
            while sim.answer_connect() || sim.answer_metadata() || sim.answer_producer_id() {
                sim.settle();
            }
            match op {
                Op::Answer(node, fate) => {
                    sim.answer_request_with(node, Some(fate));
                }
                Op::MoveLeader(p, node) => sim.move_leader(&tp(p), node),
                Op::Wait(ms) => sim.advance(Duration::from_millis(ms)),
            }
        }
        sim.run(LIMIT);
        assert_exactly_once_in_order(&sim, &expected);
    }
}

/// Engine review §8a / issue 14 item 13: Kafka 4 refuses records stamped
/// more than an hour ahead. The batch fails with an error that names the
/// target topic settings to change and says it can be fixed; the
/// partition stops (its later batches are not delivered), others go on.
#[test]
fn invalid_timestamp_names_the_topic_setting_and_stops_only_that_partition() {
    let mut sim = Sim::new(ProducerConfig::default(), &[1], &[(tp(0), 1), (tp(1), 1)]);
    sim.script
        .insert(tp(0), [Fate::Refuse(KafkaCode::INVALID_TIMESTAMP)].into());
    sim.send(&tp(0), 0, 2);
    sim.send(&tp(0), 1, 2);
    sim.send(&tp(1), 2, 2);
    sim.run(LIMIT);
    let err = sim.results[&0].as_ref().unwrap_err();
    assert_eq!(
        err.target_topic_settings(),
        Some(
            &[
                "message.timestamp.after.max.ms",
                "message.timestamp.before.max.ms"
            ][..]
        )
    );
    let text = err.to_string();
    assert!(
        text.contains("message.timestamp.after.max.ms") && text.contains("\"t\" partition 0"),
        "{text}"
    );
    assert!(sim.results[&1].is_err());
    assert!(sim.results[&2].is_ok());
    assert!(sim.stopped.contains_key(&tp(0)) && !sim.stopped.contains_key(&tp(1)));
}

/// Once the operator fixed the setting, the stopped partition is
/// restarted: it takes batches again, under a new epoch from sequence 0.
#[test]
fn a_stopped_partition_restarts_under_a_new_epoch() {
    let mut sim = confirmed(ProducerConfig::default(), &[1]);
    sim.script.insert(
        tp(0),
        [Fate::Accept, Fate::Refuse(KafkaCode::MESSAGE_TOO_LARGE)].into(),
    );
    for n in 1..=3 {
        sim.send(&tp(0), n, 1);
    }
    sim.run(LIMIT);
    assert!(sim.stopped.contains_key(&tp(0)));
    assert!(sim.results[&1].is_ok());
    assert!(
        sim.results[&2]
            .as_ref()
            .unwrap_err()
            .target_topic_settings()
            .is_some()
    );
    assert!(sim.results[&3].is_err());
    sim.stopped.clear();
    sim.core
        .handle(super::Input::Restart { tp: tp(0) }, sim.now);
    sim.send(&tp(0), 4, 1);
    sim.run(LIMIT);
    assert!(sim.results[&4].is_ok(), "{:?}", sim.results[&4]);
    assert!(sim.stopped.is_empty());
    let last = sim.log(&tp(0)).last().unwrap();
    assert_eq!((last.id, last.epoch, last.base_sequence), (4, 1, 0));
    // Restarting a partition that is not stopped changes nothing.
    sim.core
        .handle(super::Input::Restart { tp: tp(0) }, sim.now);
    sim.send(&tp(0), 5, 1);
    sim.run(LIMIT);
    assert_eq!(sim.log(&tp(0)).last().unwrap().base_sequence, 1);
}

/// Resequencing needs a newer epoch; once the epoch is exhausted the core
/// asks for a new producer id (one InitProducerId however many partitions
/// wait) and the partition starts over under it.
#[test]
fn an_exhausted_epoch_gets_a_new_producer_id() {
    let last_epoch = crate::producer::sequence::ProducerIdentity {
        producer_id: 1000,
        epoch: i16::MAX,
    };
    let partitions = [(tp(0), 1), (tp(1), 1)];
    let mut sim = Sim::with_identity(ProducerConfig::default(), last_epoch, &[1], &partitions);
    for (n, p) in [(0, 0), (1, 1), (2, 0), (3, 1)] {
        sim.send(&tp(p), n, 1);
    }
    sim.run(LIMIT);
    // Both partitions lose their last batch (an unclean election).
    for p in [0, 1] {
        sim.partitions.get_mut(&tp(p)).unwrap().log.truncate(1);
    }
    sim.send(&tp(0), 4, 1);
    sim.send(&tp(1), 5, 1);
    sim.run(LIMIT);
    assert!(sim.results.values().all(Result::is_ok));
    assert_eq!(sim.producer_ids_issued, 1);
    for (p, n) in [(0, 4), (1, 5)] {
        let last = sim.log(&tp(p)).last().unwrap();
        assert_eq!(
            (last.id, last.producer_id, last.epoch, last.base_sequence),
            (n, 1001, 0, 0)
        );
    }
    assert_eq!(sim.core.identity().producer_id, 1001);
}
