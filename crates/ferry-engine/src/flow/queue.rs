//! The hand-off from the dispatcher to one partition's task.
//!
//! Fetched data is already charged to the flow's memory budget (the fetcher
//! leases it per response), so the queue itself needs no size limit. What it
//! adds is fairness: a partition whose task falls behind (a slow or stuck
//! target partition) is paused at the fetcher once `PAUSE_AT` fetches wait
//! for it, so it cannot take the whole budget while the others starve, and
//! the dispatcher never blocks on one partition. The task resumes it when
//! it has caught up.

use std::sync::{Arc, Mutex, PoisonError};

use ferry_client::{PartitionData, SourceFetcher, TopicPartition};
use tokio::sync::mpsc;

/// Fetches waiting for a partition's task at which its fetching pauses.
pub(super) const PAUSE_AT: usize = 2;

/// What the queue needs from the fetcher (a trait so the pause logic is
/// testable without brokers).
pub(super) trait Pausable: Send + Sync {
    fn pause(&self, tp: &TopicPartition);
    fn resume(&self, tp: &TopicPartition);
}

impl Pausable for SourceFetcher {
    fn pause(&self, tp: &TopicPartition) {
        SourceFetcher::pause(self, tp);
    }
    fn resume(&self, tp: &TopicPartition) {
        SourceFetcher::resume(self, tp);
    }
}

/// What a partition task needs from the fetcher besides pausing: seeking
/// after a retention gap, and letting go of a stopped partition.
pub(super) trait FetchControl: Pausable {
    fn assign(&self, tp: TopicPartition, offset: i64);
    fn unassign(&self, tp: &TopicPartition);
    /// Why the fetcher stopped `tp`, when it says more than the error code.
    fn stop_reason(&self, _tp: &TopicPartition) -> Option<ferry_client::StopReason> {
        None
    }
}

impl FetchControl for SourceFetcher {
    fn assign(&self, tp: TopicPartition, offset: i64) {
        SourceFetcher::assign(self, tp, offset);
    }
    fn unassign(&self, tp: &TopicPartition) {
        SourceFetcher::unassign(self, tp);
    }
    fn stop_reason(&self, tp: &TopicPartition) -> Option<ferry_client::StopReason> {
        SourceFetcher::stop_reason(self, tp)
    }
}

/// A queue between the dispatcher and one partition task.
pub(super) fn partition_queue<F: Pausable + ?Sized>(
    tp: TopicPartition,
    fetcher: Arc<F>,
) -> (QueueSender<F>, QueueReceiver<F>) {
    let (tx, rx) = mpsc::unbounded_channel();
    // The count and the pause/resume calls change under one lock, so a
    // resume can never overtake the pause it answers.
    let queued = Arc::new(Mutex::new(0usize));
    (
        QueueSender {
            tp: tp.clone(),
            tx,
            queued: Arc::clone(&queued),
            fetcher: Arc::clone(&fetcher),
        },
        QueueReceiver {
            tp,
            rx,
            queued,
            fetcher,
        },
    )
}

pub(super) struct QueueSender<F: Pausable + ?Sized> {
    tp: TopicPartition,
    tx: mpsc::UnboundedSender<PartitionData>,
    queued: Arc<Mutex<usize>>,
    fetcher: Arc<F>,
}

impl<F: Pausable + ?Sized> Clone for QueueSender<F> {
    fn clone(&self) -> Self {
        Self {
            tp: self.tp.clone(),
            tx: self.tx.clone(),
            queued: Arc::clone(&self.queued),
            fetcher: Arc::clone(&self.fetcher),
        }
    }
}

impl<F: Pausable + ?Sized> QueueSender<F> {
    /// Hands `data` to the task without waiting; pauses the partition when
    /// `PAUSE_AT` fetches are queued. Data for a finished task is dropped
    /// (and its budget freed).
    pub(super) fn push(&self, data: PartitionData) {
        let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
        if self.tx.send(data).is_err() {
            return;
        }
        *queued += 1;
        if *queued == PAUSE_AT {
            self.fetcher.pause(&self.tp);
        }
    }
}

pub(super) struct QueueReceiver<F: Pausable + ?Sized> {
    tp: TopicPartition,
    rx: mpsc::UnboundedReceiver<PartitionData>,
    queued: Arc<Mutex<usize>>,
    fetcher: Arc<F>,
}

impl<F: Pausable + ?Sized> QueueReceiver<F> {
    /// The next fetch for this partition; resumes fetching when the queue
    /// drops below `PAUSE_AT`. `None` once every sender is gone. Cancel-safe.
    pub(super) async fn recv(&mut self) -> Option<PartitionData> {
        let data = self.rx.recv().await?;
        let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
        *queued = queued.saturating_sub(1);
        if *queued + 1 == PAUSE_AT {
            self.fetcher.resume(&self.tp);
        }
        Some(data)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use bytes::Bytes;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<&'static str>>);

    impl Pausable for Recorder {
        fn pause(&self, _: &TopicPartition) {
            self.0.lock().unwrap().push("pause");
        }
        fn resume(&self, _: &TopicPartition) {
            self.0.lock().unwrap().push("resume");
        }
    }

    fn data(offset: i64) -> PartitionData {
        PartitionData {
            tp: TopicPartition::new("t", 0),
            fetch_offset: offset,
            records: Bytes::new(),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: Vec::new(),
            error: None,
        }
    }

    #[tokio::test]
    async fn pauses_at_the_limit_and_resumes_below_it_in_order() {
        let fetcher = Arc::new(Recorder::default());
        let (tx, mut rx) = partition_queue(TopicPartition::new("t", 0), Arc::clone(&fetcher));
        tx.push(data(0));
        assert!(
            fetcher.0.lock().unwrap().is_empty(),
            "one queued: keep fetching"
        );
        tx.push(data(1));
        tx.push(data(2));
        assert_eq!(
            *fetcher.0.lock().unwrap(),
            ["pause"],
            "paused once, at the limit"
        );
        assert_eq!(rx.recv().await.unwrap().fetch_offset, 0);
        assert_eq!(*fetcher.0.lock().unwrap(), ["pause"], "still 2 queued");
        assert_eq!(rx.recv().await.unwrap().fetch_offset, 1);
        assert_eq!(*fetcher.0.lock().unwrap(), ["pause", "resume"]);
        assert_eq!(rx.recv().await.unwrap().fetch_offset, 2);
        tx.push(data(3));
        tx.push(data(4));
        assert_eq!(*fetcher.0.lock().unwrap(), ["pause", "resume", "pause"]);
    }

    #[tokio::test]
    async fn data_for_a_finished_task_is_dropped_without_pausing() {
        let fetcher = Arc::new(Recorder::default());
        let (tx, rx) = partition_queue(TopicPartition::new("t", 0), Arc::clone(&fetcher));
        drop(rx);
        for o in 0..5 {
            tx.push(data(o));
        }
        assert!(fetcher.0.lock().unwrap().is_empty());
    }
}
