//! The resume scanner, without brokers: each answer and each doubt.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::{Bytes, BytesMut};
use common::{Fate, SourceLog, TargetLog, tp};
use ferry_engine::flow::machine::PartitionMachine;
use ferry_engine::flow::scan::{ResumeDoubt, ResumeScan, ScanStep, Side};
use ferry_engine::plan::PlanConfig;
use ferry_wire::batch::RecordBatch;
use ferry_wire::codec::Compression;

/// Mirrors all of `source` into a fresh target, in order, acknowledging
/// each batch.
fn mirror(source: &SourceLog, config: PlanConfig) -> TargetLog {
    let mut target = TargetLog::default();
    let mut m = PartitionMachine::new(tp(), 0, 0, config, None, None).unwrap();
    while m.fetch_position() < source.end {
        m.on_fetched(&source.fetch(m.fetch_position(), 3))
            .unwrap()
            .unwrap();
        while let Some(out) = m.sent() {
            let base = target.append(&out.batch);
            m.on_ack(out.id, base).unwrap();
        }
    }
    target
}

fn sample() -> SourceLog {
    let mut s = SourceLog::default();
    s.plain(5, 30, Compression::Lz4);
    s.transactions(&[Fate::Abort, Fate::Commit], 2, 3);
    s.compacted(4, &[true, false, true, true, false], Compression::None);
    s.plain(4, 30, Compression::Zstd);
    s
}

/// Runs a scan to its answer, feeding `per_fetch` batches at a time.
fn run(scan: &mut ResumeScan, source: &SourceLog, per_fetch: usize) -> ScanStep {
    let mut step = scan.first_step();
    while let ScanStep::NeedMore(at) = step {
        let data = source.fetch(at, per_fetch);
        step = scan.feed(&data.records, data.aborted_transactions.iter().copied());
    }
    step
}

fn scan(
    source_checkpoint: i64,
    target_checkpoint: i64,
    target: &TargetLog,
) -> Result<Option<ResumeScan>, ResumeDoubt> {
    ResumeScan::new(
        tp(),
        (source_checkpoint, Some(target_checkpoint)),
        target.end(),
        PlanConfig::default(),
    )
}

#[test]
fn finds_the_source_offset_after_every_target_tail() {
    let source = sample();
    let full = mirror(&source, PlanConfig::default());
    assert_eq!(
        full.records,
        source
            .expected
            .iter()
            .map(|(_, s)| s.clone())
            .collect::<Vec<_>>()
    );
    // Cut the target after each of its records: the scan from the start
    // finds the source offset after that record, whatever the fetch size.
    for cut in 1..=full.records.len() {
        let cut_target = first_records(&full, cut);
        let want = source.expected[cut - 1].0 + 1;
        for per_fetch in [1, 2, 50] {
            let mut s = scan(0, 0, &cut_target).unwrap().unwrap();
            s.target_tail(&cut_target.tail(), cut_target.end()).unwrap();
            let found = run(&mut s, &source, per_fetch);
            assert_eq!(
                found,
                ScanStep::Found(want),
                "cut after {cut}, {per_fetch} per fetch"
            );
            // The tail is mapped exactly, record by record.
            for (t, (o, _)) in source.expected[..cut].iter().enumerate() {
                assert_eq!(s.tail_map().translate(*o), Some(t as i64), "offset {o}");
            }
            assert_eq!(s.tail_map().end().unwrap().1, cut as i64);
        }
    }
}

/// A target holding the first `n` records of `full`, in its batches (the
/// last one cut short, as a crash inside a split batch can leave it).
fn first_records(full: &TargetLog, n: usize) -> TargetLog {
    let mut target = TargetLog::default();
    for batch in &full.batches {
        let b = RecordBatch::new(batch.clone()).unwrap();
        let have = usize::try_from(target.end()).unwrap();
        let len = b.records(1 << 20).unwrap().count();
        if have + len <= n {
            target.append(&b);
            continue;
        }
        let keep: Vec<_> = b
            .records(1 << 20)
            .unwrap()
            .take(n - have)
            .map(|r| r.unwrap())
            .collect();
        if !keep.is_empty() {
            let spec = ferry_wire::builder::BatchSpec::producer(Compression::None);
            let rebuilt = ferry_wire::builder::build_batch(&spec, &keep).unwrap();
            target.append(&RecordBatch::new(rebuilt).unwrap());
        }
        break;
    }
    target
}

#[test]
fn an_empty_tail_resumes_at_the_checkpoint() {
    let target = mirror(&sample(), PlanConfig::default());
    assert!(scan(7, target.end(), &target).unwrap().is_none());
    // A checkpoint without a target offset: nothing to match.
    let none = ResumeScan::new(tp(), (7, None), target.end(), PlanConfig::default());
    assert!(none.unwrap().is_none());
}

#[test]
fn doubt_target_behind_checkpoint() {
    let target = mirror(&sample(), PlanConfig::default());
    assert_eq!(
        scan(0, target.end() + 5, &target).unwrap_err(),
        ResumeDoubt::TargetBehindCheckpoint {
            target_end: target.end(),
            checkpointed: target.end() + 5
        }
    );
}

#[test]
fn doubt_source_ends_before_the_tail() {
    let source = sample();
    let mut target = mirror(&source, PlanConfig::default());
    let extra = target.batches[0].clone();
    target.append(&RecordBatch::new(extra).unwrap()); // a foreign write
    let mut s = scan(0, 0, &target).unwrap().unwrap();
    s.target_tail(&target.tail(), target.end()).unwrap();
    assert_eq!(
        run(&mut s, &source, 4),
        ScanStep::Doubt(ResumeDoubt::SourceEnds { at: source.end })
    );
}

#[test]
fn doubt_last_record_differs() {
    let source = sample();
    let mirrored = mirror(&source, PlanConfig::default());
    // The same number of records, but the last one is someone else's.
    let mut target = TargetLog::default();
    for b in &mirrored.batches[..mirrored.batches.len() - 1] {
        target.append(&RecordBatch::new(b.clone()).unwrap());
    }
    let last = RecordBatch::new(mirrored.batches.last().unwrap().clone()).unwrap();
    let mut records: Vec<_> = last.records(1 << 20).unwrap().map(|r| r.unwrap()).collect();
    records.last_mut().unwrap().value = Some(Bytes::from_static(b"not ferry's"));
    let spec = ferry_wire::builder::BatchSpec::producer(Compression::None);
    let foreign = ferry_wire::builder::build_batch(&spec, &records).unwrap();
    target.append(&RecordBatch::new(foreign).unwrap());
    assert_eq!(target.end(), mirrored.end());
    let mut s = scan(0, 0, &target).unwrap().unwrap();
    s.target_tail(&target.tail(), target.end()).unwrap();
    let last_source = source.expected.last().unwrap().0;
    assert_eq!(
        run(&mut s, &source, 2),
        ScanStep::Doubt(ResumeDoubt::LastRecordDiffers {
            source_offset: last_source
        })
    );
}

#[test]
fn doubt_no_readable_target_record_and_unreadable_target() {
    let target = mirror(&sample(), PlanConfig::default());
    let mut s = scan(0, 0, &target).unwrap().unwrap();
    assert_eq!(
        s.target_tail(&Bytes::new(), target.end()),
        Err(ResumeDoubt::NoTargetRecord)
    );
    let mut garbage = BytesMut::from(&target.tail()[..]);
    garbage[16] = 7; // magic
    assert!(matches!(
        s.target_tail(&garbage.freeze(), target.end()),
        Err(ResumeDoubt::Unreadable {
            side: Side::Target,
            ..
        })
    ));
}

#[test]
fn doubt_too_far() {
    let mut source = SourceLog::default();
    for _ in 0..20 {
        source.plain(10, 200, Compression::None);
    }
    let target = mirror(&source, PlanConfig::default());
    let mut s = scan(0, 0, &target).unwrap().unwrap().with_limit(4096);
    s.target_tail(&target.tail(), target.end()).unwrap();
    assert_eq!(
        run(&mut s, &source, 2),
        ScanStep::Doubt(ResumeDoubt::TooFar { limit: 4096 })
    );
}

#[test]
fn doubt_bad_source_batch() {
    let source = sample();
    let target = mirror(&source, PlanConfig::default());
    let mut s = scan(0, 0, &target).unwrap().unwrap();
    s.target_tail(&target.tail(), target.end()).unwrap();
    let mut first = BytesMut::from(&source.batches[0][..]);
    first[16] = 9; // an unknown magic
    let first_end = common::last_offset(&source.batches[0]) + 1;
    let mut records = source.batches[0].to_vec();
    records.extend_from_slice(&first);
    match s.feed(&Bytes::from(records), []) {
        ScanStep::Doubt(ResumeDoubt::BadSourceBatch { offset, .. }) => {
            assert_eq!(offset, first_end);
        }
        other => panic!("{other:?}"),
    }
}
