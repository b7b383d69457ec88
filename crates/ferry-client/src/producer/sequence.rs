//! Producer identity and sequence-number arithmetic, exactly as the broker
//! does it.

use std::fmt;
use std::time::Duration;

/// A producer id and epoch: what the broker keys its idempotence state on,
/// per partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ProducerIdentity {
    pub producer_id: i64,
    pub epoch: i16,
}

impl fmt::Display for ProducerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "producer id {} epoch {}", self.producer_id, self.epoch)
    }
}

impl ProducerIdentity {
    /// The same producer id with the next epoch, or `None` once the epoch is
    /// exhausted (a new producer id is needed then).
    pub fn bumped(self) -> Option<Self> {
        self.epoch
            .checked_add(1)
            .map(|epoch| Self { epoch, ..self })
    }
}

/// `sequence + increment`, wrapping from `i32::MAX` to 0 the way Kafka's
/// `DefaultRecordBatch.incrementSequence` does. `increment` is a batch's
/// record count (`lastOffsetDelta + 1`), so it is positive.
pub(crate) fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        // Kafka: increment - (Integer.MAX_VALUE - sequence) - 1
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// The delay before retry number `failures` (1 for the first retry):
/// `base`, doubling per failure, capped at one second (or at `base` if it is
/// longer): Kafka's `retry.backoff.ms` / `retry.backoff.max.ms` defaults.
pub(crate) fn backoff(base: Duration, failures: u32) -> Duration {
    let cap = base.max(Duration::from_secs(1));
    let doublings = failures.saturating_sub(1).min(16);
    base.saturating_mul(1u32 << doublings).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(increment_sequence(0, 5), 5);
        assert_eq!(increment_sequence(i32::MAX - 5, 5), i32::MAX);
        // Kafka: incrementSequence(MAX - 1, 2) == 0, (MAX, 1) == 0, (MAX - 2, 5) == 2.
        assert_eq!(increment_sequence(i32::MAX - 1, 2), 0);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 2, 5), 2);
    }

    #[test]
    fn epochs_bump_until_exhausted() {
        let id = ProducerIdentity {
            producer_id: 7,
            epoch: 0,
        };
        assert_eq!(id.bumped().map(|i| i.epoch), Some(1));
        let last = ProducerIdentity {
            producer_id: 7,
            epoch: i16::MAX,
        };
        assert_eq!(last.bumped(), None);
    }

    #[test]
    fn backoff_doubles_to_a_second() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 0), base);
        assert_eq!(backoff(base, 1), base);
        assert_eq!(backoff(base, 2), Duration::from_millis(200));
        assert_eq!(backoff(base, 4), Duration::from_millis(800));
        assert_eq!(backoff(base, 5), Duration::from_secs(1));
        assert_eq!(backoff(base, u32::MAX), Duration::from_secs(1));
        let long = Duration::from_secs(3);
        assert_eq!(backoff(long, 9), long);
    }
}
