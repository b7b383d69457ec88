//! Simulation of one partition's mirror, without brokers: the partition
//! machine fed by an in-memory source log, sending into an in-memory
//! target log, through arbitrary interleavings of fetches, sends, appends,
//! acknowledgements (in any order, some answered DUPLICATE_SEQUENCE_NUMBER
//! without their offset as after a lost response and a retry),
//! checkpoints, crashes and target truncations; each crash restarts from
//! the last checkpoint through the resume scanner, as the flow does.
//!
//! Properties: the target ends holding exactly the source's committed
//! records, in order, none twice, none missing; every source offset
//! translates exactly through the offset map to the target offset a
//! consumer continues at (the resume scan maps the target's tail record by
//! record, so no restart leaves an inexact anchor); and an idle partition's
//! committed position is its fetch position.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;

use common::{Fate, SourceLog, TargetLog, tp};
use ferry_engine::coalesce::Coalesce;
use ferry_engine::flow::machine::{Outgoing, PartitionMachine};
use ferry_engine::flow::scan::{ResumeDoubt, ResumeScan, ScanStep, after_target_truncation};
use ferry_engine::inflight::{Committed, EntryId};
use ferry_engine::offset_map::OffsetMap;
use ferry_engine::offset_store::RunJournal;
use ferry_engine::plan::PlanConfig;
use ferry_wire::codec::Compression;
use proptest::prelude::*;

/// A piece of the source log.
#[derive(Debug, Clone)]
enum Piece {
    Plain {
        n: usize,
        codec: Compression,
    },
    /// Records large enough that the batch exceeds the target's limit.
    Oversize {
        n: usize,
    },
    LogAppendTime {
        n: usize,
    },
    Compacted {
        skip: i64,
        keep: Vec<bool>,
    },
    Transactions {
        fates: Vec<Fate>,
        batches: usize,
    },
}

/// One thing that happens next.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The fetcher delivers up to this many batches at the position.
    Fetch(usize),
    /// The task hands the next batch to the producer.
    Send,
    /// The target appends the producer's next batch.
    Append,
    /// An acknowledgement arrives (which one of those waiting; whether it
    /// comes as DUPLICATE_SEQUENCE_NUMBER without an offset).
    Ack { pick: usize, duplicate: bool },
    /// The checkpointer writes the position and the map.
    Checkpoint,
    /// kill -9: everything not yet appended or checkpointed is gone.
    Crash,
    /// The target loses its last batches, acknowledged or not (an unclean
    /// leader election), and ferry restarts (issue 14 item 9).
    TruncateTarget(usize),
}

/// The target's `max.message.bytes` in the simulation: small, so that
/// oversize batches are split.
const MAX_BATCH: usize = 2_000;

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
    ]
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        3 => (1..6usize, codec()).prop_map(|(n, codec)| Piece::Plain { n, codec }),
        1 => (3..8usize).prop_map(|n| Piece::Oversize { n }),
        1 => (1..4usize).prop_map(|n| Piece::LogAppendTime { n }),
        2 => (0..3i64, prop::collection::vec(any::<bool>(), 1..7))
            .prop_map(|(skip, keep)| Piece::Compacted { skip, keep }),
        2 => (prop::collection::vec(prop_oneof![Just(Fate::Commit), Just(Fate::Abort)], 1..3), 1..3usize)
            .prop_map(|(fates, batches)| Piece::Transactions { fates, batches }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1..4usize).prop_map(Step::Fetch),
        5 => Just(Step::Send),
        5 => Just(Step::Append),
        5 => (any::<usize>(), prop::bool::weighted(0.2))
            .prop_map(|(pick, duplicate)| Step::Ack { pick, duplicate }),
        1 => Just(Step::Checkpoint),
        1 => Just(Step::Crash),
        1 => (1..4usize).prop_map(Step::TruncateTarget),
    ]
}

fn build(pieces: &[Piece]) -> SourceLog {
    let mut log = SourceLog::default();
    for p in pieces {
        match p {
            Piece::Plain { n, codec } => log.plain(*n, 40, *codec),
            Piece::Oversize { n } => log.plain(*n, 600, Compression::None),
            Piece::LogAppendTime { n } => log.log_append_time(*n, Compression::Lz4),
            Piece::Compacted { skip, keep } => log.compacted(*skip, keep, Compression::None),
            Piece::Transactions { fates, batches } => log.transactions(fates, *batches, 2),
        }
    }
    // The cleaner never removes a log's last batch: the log ends in one.
    log.plain(1, 10, Compression::None);
    log
}

/// One process's run of the partition.
struct Process {
    machine: PartitionMachine,
    /// Sent to the producer, not yet on the target.
    producer: VecDeque<Outgoing>,
    /// On the target, acknowledgement not yet delivered.
    acks: Vec<(EntryId, i64)>,
}

struct World {
    source: SourceLog,
    target: TargetLog,
    config: PlanConfig,
    coalesce: Option<Coalesce>,
    /// The flow's in-memory journal of map runs.
    journal: RunJournal,
    /// What the last checkpoint persisted: the position and the map.
    checkpoint: (Committed, OffsetMap),
    process: Process,
    /// How big the resume scanner's source fetches are.
    scan_fetch: usize,
    /// Truncations of the target simulated.
    truncations: usize,
}

impl World {
    fn new(source: SourceLog, coalesce: bool, scan_fetch: usize) -> Self {
        let config = PlanConfig {
            max_batch_bytes: MAX_BATCH,
            ..PlanConfig::default()
        };
        let coalesce = coalesce.then_some(Coalesce {
            below: 400,
            max: 1_500,
        });
        let machine = PartitionMachine::new(tp(), 0, 0, config, coalesce, None).unwrap();
        // A partition's first checkpoint is written when it starts.
        let start = machine.committed();
        Self {
            source,
            target: TargetLog::default(),
            config,
            coalesce,
            journal: RunJournal::new(),
            checkpoint: (start, OffsetMap::new()),
            process: Process {
                machine,
                producer: VecDeque::new(),
                acks: Vec::new(),
            },
            scan_fetch,
            truncations: 0,
        }
    }

    /// Whether the target would keep records after losing its last
    /// `batches` (an emptied target counts as deleted on purpose and is
    /// not re-mirrored, see `after_target_truncation`).
    fn keeps_records_after(&self, batches: usize) -> bool {
        let mut target = self.target.clone();
        target.truncate_batches(batches);
        target.end() > 0
    }

    fn step(&mut self, step: Step) {
        let p = &mut self.process;
        match step {
            Step::Fetch(n) => {
                let at = p.machine.fetch_position();
                // The task takes the next fetch once it sent the last one.
                if p.machine.unsent() == 0 && at < self.source.end {
                    let outcome = p.machine.on_fetched(&self.source.fetch(at, n)).unwrap();
                    assert!(outcome.unwrap().failure.is_none());
                }
            }
            Step::Send => {
                if let Some(out) = p.machine.sent() {
                    p.producer.push_back(out);
                }
            }
            Step::Append => {
                if let Some(out) = p.producer.pop_front() {
                    let base = self.target.append(&out.batch);
                    p.acks.push((out.id, base));
                }
            }
            Step::Ack { pick, duplicate } => {
                if !p.acks.is_empty() {
                    let (id, base) = p.acks.remove(pick % p.acks.len());
                    p.machine
                        .on_ack(id, if duplicate { -1 } else { base })
                        .unwrap();
                }
            }
            Step::Checkpoint => {
                p.machine.journal_into(&mut self.journal);
                self.checkpoint = (p.machine.committed(), self.journal.map().clone());
            }
            Step::Crash => self.restart(),
            Step::TruncateTarget(batches) => {
                if self.keeps_records_after(batches) {
                    self.target.truncate_batches(batches);
                    self.truncations += 1;
                    self.restart();
                }
            }
        }
        self.process.machine.journal_into(&mut self.journal);
        // Idle (everything planned is acknowledged): the committed position
        // is where fetching goes on, or the lag never reaches 0.
        let m = &self.process.machine;
        if m.pending() == 0 {
            assert_eq!(
                m.committed().source_offset,
                m.fetch_position(),
                "idle but behind"
            );
        }
    }

    /// A new process: resumes from the checkpoint as the flow does
    /// (`flow/mod.rs` start-up: resume scan, an anchor where the persisted
    /// map does not reach the resume position, the scan's exact tail map
    /// over it).
    fn restart(&mut self) {
        let (committed, map) = self.checkpoint.clone();
        let target_end = self.target.end();
        let checkpoint = (committed.source_offset, committed.target_offset);
        let scan = ResumeScan::new(tp(), checkpoint, target_end, self.config);
        let mut tail = None;
        let position = match scan {
            Err(ResumeDoubt::TargetBehindCheckpoint { checkpointed, .. }) => {
                after_target_truncation(&map, target_end, (committed.source_offset, checkpointed))
                    .unwrap()
            }
            Err(why) => panic!("resume doubted: {why}"),
            Ok(None) => committed.source_offset,
            Ok(Some(mut scan)) => {
                scan.target_tail(&self.target.tail(), target_end).unwrap();
                let mut step = scan.first_step();
                loop {
                    match step {
                        ScanStep::NeedMore(at) => {
                            let data = self.source.fetch(at, self.scan_fetch);
                            step = scan.feed(&data.records, data.aborted_transactions.clone());
                        }
                        ScanStep::Found(position) => {
                            tail = Some(scan.tail_map().clone());
                            break position;
                        }
                        ScanStep::Doubt(why) => panic!("resume doubted: {why}"),
                    }
                }
            }
        };
        let mapped_to = map
            .end()
            .filter(|&(s, t)| s <= position && t <= target_end)
            .or_else(|| {
                committed
                    .target_offset
                    .map(|t| (committed.source_offset, t))
            });
        let anchor = mapped_to.filter(|&end| end != (position, target_end));
        self.journal = RunJournal::with_map(map, Vec::new());
        let machine = PartitionMachine::new(
            tp(),
            position,
            target_end,
            self.config,
            self.coalesce,
            anchor,
        )
        .unwrap();
        let machine = match &tail {
            Some(tail) => machine.with_known_tail(tail).unwrap(),
            _ => machine,
        };
        self.process = Process {
            machine,
            producer: VecDeque::new(),
            acks: Vec::new(),
        };
        // The flow checkpoints a partition's start on both sides at once.
        self.step(Step::Checkpoint);
    }

    /// Runs to the end of the source with nothing lost on the way.
    fn finish(&mut self) {
        for _ in 0..10_000 {
            let m = &self.process.machine;
            if m.fetch_position() >= self.source.end && m.pending() == 0 {
                return;
            }
            self.step(Step::Fetch(3));
            while self.process.machine.unsent() > 0 {
                self.step(Step::Send);
            }
            while !self.process.producer.is_empty() {
                self.step(Step::Append);
            }
            while !self.process.acks.is_empty() {
                self.step(Step::Ack {
                    pick: 0,
                    duplicate: false,
                });
            }
        }
        panic!("no progress");
    }

    fn check(&self) {
        let want: Vec<_> = self
            .source
            .expected
            .iter()
            .map(|(_, s)| s.clone())
            .collect();
        assert_eq!(self.target.records.len(), want.len(), "record count");
        assert!(
            self.target.records == want,
            "target records differ from the source's"
        );
        let committed = self.process.machine.committed();
        assert_eq!(committed.source_offset, self.source.end);
        assert_eq!(committed.target_offset, Some(self.target.end()));
        let map = self.journal.map();
        let mut next = 0usize; // index of the first expected record at or after `s`
        for s in 0..self.source.end {
            while next < self.source.expected.len() && self.source.expected[next].0 < s {
                next += 1;
            }
            let exact = i64::try_from(next).unwrap();
            let got = map.translate(s).unwrap();
            assert_eq!(
                got, exact,
                "source offset {s} translates to {got}, not {exact}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_and_crash_mirrors_exactly(
        pieces in prop::collection::vec(piece(), 1..8),
        steps in prop::collection::vec(step(), 0..120),
        coalesce in any::<bool>(),
        scan_fetch in 1..4usize,
    ) {
        let mut world = World::new(build(&pieces), coalesce, scan_fetch);
        for s in steps {
            world.step(s);
        }
        world.finish();
        world.check();
    }
}
