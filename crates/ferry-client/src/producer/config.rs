//! [`ProducerConfig`]: the idempotent producer's settings, with Kafka's
//! defaults for an idempotent Java producer.

use std::time::Duration;

use crate::error::{ClientError, Result};

/// The most batches per partition the broker deduplicates: it remembers the
/// last five batches of each producer (`ProducerStateEntry.NUM_BATCHES_TO_RETAIN`),
/// so a retry of anything older could be written twice.
pub const MAX_IN_FLIGHT_LIMIT: usize = 5;

/// Longest timeout accepted: Kafka's timeouts are `i32` milliseconds too.
const MAX_MILLIS: u128 = i32::MAX.unsigned_abs() as u128;

/// Settings of an [`IdempotentProducer`](super::IdempotentProducer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// Acknowledgements the leader waits for: `-1` (all in-sync replicas,
    /// the default and the only setting that survives a leader failure) or
    /// `1` (the leader only). `0` is refused: an unacknowledged batch cannot
    /// be deduplicated or reported.
    pub acks: i16,
    /// How long one Produce request may take: sent to the broker as its
    /// `timeout_ms` (how long it waits for the in-sync replicas) and enforced
    /// here on the response. Default 30 s (`request.timeout.ms`). The
    /// connection's own request timeout ([`ConnectionConfig`](crate::ConnectionConfig))
    /// applies too and closes the connection when it fires; keep it at least
    /// this long.
    pub request_timeout: Duration,
    /// How long a batch may take from [`send`](super::IdempotentProducer::send)
    /// to its acknowledgement, retries included. A batch still unacknowledged
    /// then fails ([`ClientError::NotDelivered`]) and stops its partition.
    /// Default 120 s (`delivery.timeout.ms`); must be at least `request_timeout`.
    pub delivery_timeout: Duration,
    /// Batches per partition in flight at once (and the most Produce
    /// requests in flight per broker connection); as many more may wait
    /// queued, and `send` waits while a partition has twice this many.
    /// Default 5, the most the broker deduplicates ([`MAX_IN_FLIGHT_LIMIT`]);
    /// larger values are refused.
    pub max_in_flight_per_partition: usize,
    /// Largest Produce request: one request carries at most one batch per
    /// partition, of as many partitions as fit. A single batch larger than
    /// this still goes, alone. Default 16 MiB (well under the broker's
    /// `socket.request.max.bytes`, 100 MiB).
    pub max_request_bytes: usize,
    /// Wait before the first retry of a partition, doubling per consecutive
    /// failure up to 1 s (or up to this value, if it is longer). Default
    /// 100 ms (`retry.backoff.ms`, `retry.backoff.max.ms`).
    pub retry_backoff: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: -1,
            request_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(120),
            max_in_flight_per_partition: MAX_IN_FLIGHT_LIMIT,
            max_request_bytes: 16 * 1024 * 1024,
            retry_backoff: Duration::from_millis(100),
        }
    }
}

impl ProducerConfig {
    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let invalid = |setting, reason: &str| {
            Err(ClientError::InvalidConfig {
                setting,
                reason: reason.to_owned(),
            })
        };
        if !matches!(self.acks, -1 | 1) {
            return invalid(
                "acks",
                "use -1 (all in-sync replicas) or 1 (leader only); an idempotent producer needs acknowledgements",
            );
        }
        if !(1..=MAX_IN_FLIGHT_LIMIT).contains(&self.max_in_flight_per_partition) {
            return invalid(
                "max_in_flight_per_partition",
                "must be 1 to 5: the broker deduplicates only a producer's last 5 batches per partition",
            );
        }
        if self.request_timeout.is_zero() || self.timeout_ms().is_none() {
            return invalid(
                "request_timeout",
                "must be more than zero and at most i32::MAX milliseconds",
            );
        }
        if self.delivery_timeout < self.request_timeout {
            return invalid(
                "delivery_timeout",
                "must be at least request_timeout, or every batch whose first request is slow would fail",
            );
        }
        if self.delivery_timeout.as_millis() > MAX_MILLIS {
            return invalid("delivery_timeout", "must be at most i32::MAX milliseconds");
        }
        if self.max_request_bytes == 0 {
            return invalid("max_request_bytes", "must be more than zero");
        }
        if self.retry_backoff.is_zero() || self.retry_backoff > self.delivery_timeout {
            return invalid(
                "retry_backoff",
                "must be more than zero (or a failing partition would be retried in a tight loop) \
                 and at most delivery_timeout",
            );
        }
        Ok(())
    }

    /// Batches per partition queued or in flight: twice the in-flight
    /// limit, so the next batch is already queued when an answer frees a slot.
    pub(crate) fn window(&self) -> usize {
        self.max_in_flight_per_partition.saturating_mul(2)
    }

    /// `request_timeout` as the Produce request's `timeout_ms`.
    pub(crate) fn timeout_ms(&self) -> Option<i32> {
        i32::try_from(self.request_timeout.as_millis()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let c = ProducerConfig::default();
        c.validate().unwrap();
        assert_eq!(c.acks, -1);
        assert_eq!(c.max_in_flight_per_partition, 5);
        // Five in flight, five more queued behind them.
        assert_eq!(c.window(), 10);
        assert_eq!(c.timeout_ms(), Some(30_000));
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = [
            ProducerConfig {
                acks: 0,
                ..ProducerConfig::default()
            },
            ProducerConfig {
                max_in_flight_per_partition: 6,
                ..ProducerConfig::default()
            },
            ProducerConfig {
                max_in_flight_per_partition: 0,
                ..ProducerConfig::default()
            },
            ProducerConfig {
                delivery_timeout: Duration::from_secs(1),
                ..ProducerConfig::default()
            },
            ProducerConfig {
                request_timeout: Duration::from_secs(u64::MAX / 4),
                delivery_timeout: Duration::from_secs(u64::MAX / 2),
                ..ProducerConfig::default()
            },
            ProducerConfig {
                retry_backoff: Duration::ZERO,
                ..ProducerConfig::default()
            },
            ProducerConfig {
                delivery_timeout: Duration::MAX,
                ..ProducerConfig::default()
            },
            ProducerConfig {
                retry_backoff: Duration::from_secs(121),
                ..ProducerConfig::default()
            },
        ];
        let names = [
            "acks",
            "max_in_flight_per_partition",
            "max_in_flight_per_partition",
            "delivery_timeout",
            "request_timeout",
            "retry_backoff",
            "delivery_timeout",
            "retry_backoff",
        ];
        for (config, name) in bad.iter().zip(names) {
            match config.validate() {
                Err(ClientError::InvalidConfig { setting, .. }) => assert_eq!(setting, name),
                other => panic!("{config:?}: expected InvalidConfig({name}), got {other:?}"),
            }
        }
    }
}
