//! Backoff and retry, and counts of retries by cause ([`RetryCounts`]).
//!
//! Delays double from `initial` up to `max`, with no jitter: the same
//! failure count always gives the same delay, so tests can assert exact
//! waits. (Jitter spreads reconnect storms across many clients; ferry runs
//! one fetch loop per broker, so the herd it could form is small.)

use std::future::Future;
use std::time::Duration;

use crate::error::Result;

mod counts;

pub use counts::RetryCounts;

/// Exponential backoff: `initial`, `2 × initial`, `4 × initial`, … capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub initial: Duration,
    /// The longest delay, however many failures in a row.
    pub max: Duration,
}

impl Default for Backoff {
    /// 100 ms doubling to 1 s: Kafka's consumer defaults (`retry.backoff.ms`,
    /// `retry.backoff.max.ms`).
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(1))
    }
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The delay after `failures` consecutive failures (`failures >= 1`;
    /// 0 means no failure and gives no delay).
    pub fn delay(&self, failures: u32) -> Duration {
        let Some(doublings) = failures.checked_sub(1) else {
            return Duration::ZERO;
        };
        // 2^31 × anything overflows long before the cap matters; stop early.
        let factor = 1u32.checked_shl(doublings.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// Consecutive failures of one activity (a fetch loop, a partition), and
/// the delay they call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryState {
    backoff: Backoff,
    failures: u32,
}

impl RetryState {
    pub const fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            failures: 0,
        }
    }

    /// Records a failure and returns how long to wait before trying again.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.backoff.delay(self.failures)
    }

    /// Records a success: the next failure starts from `initial` again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay the current failure count calls for (zero after a success).
    pub fn current_delay(&self) -> Duration {
        self.backoff.delay(self.failures)
    }
}

/// Runs `op` until it succeeds, fails with an error that is not
/// [retriable](crate::ClientError::is_retriable), or has been tried `attempts`
/// times, sleeping [`Backoff::delay`] between tries. `op` gets the attempt
/// number (0-based), e.g. to refresh metadata before every retry.
/// Returns the last error.
pub async fn retry<T, F, Fut>(backoff: Backoff, attempts: u32, mut op: F) -> Result<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(e) if !e.is_retriable() || attempt.saturating_add(1) >= attempts => return Err(e),
            Err(e) => {
                attempt += 1;
                let delay = backoff.delay(attempt);
                tracing::debug!(attempt, ?delay, error = %e, "retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use kafka_protocol::messages::ApiKey;

    use super::*;
    use crate::{ClientError, KafkaCode};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::default();
        let delays: Vec<_> = (0..7).map(|f| b.delay(f)).collect();
        assert_eq!(
            delays,
            [
                ms(0),
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000)
            ]
        );
        assert_eq!(b.delay(u32::MAX), ms(1000));
    }

    #[test]
    fn a_cap_below_initial_wins() {
        let b = Backoff::new(ms(500), ms(50));
        assert_eq!(b.delay(1), ms(50));
        assert_eq!(b.delay(9), ms(50));
    }

    #[test]
    fn state_counts_and_resets() {
        let mut s = RetryState::new(Backoff::default());
        assert_eq!(s.current_delay(), Duration::ZERO);
        assert_eq!(s.failed(), ms(100));
        assert_eq!(s.failed(), ms(200));
        assert_eq!(s.failures(), 2);
        s.succeeded();
        assert_eq!(s.failed(), ms(100));
    }

    fn kafka(code: KafkaCode) -> ClientError {
        ClientError::Kafka {
            broker: "b:1".into(),
            api: ApiKey::ListOffsets,
            code,
            context: String::new(),
        }
    }

    #[tokio::test]
    async fn retries_retriable_errors_then_gives_up() {
        let calls = AtomicU32::new(0);
        let started = std::time::Instant::now();
        let r: Result<()> = retry(Backoff::new(ms(10), ms(15)), 3, |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(kafka(KafkaCode::NOT_LEADER_OR_FOLLOWER)) }
        })
        .await;
        assert_eq!(
            r.unwrap_err().kafka_code(),
            Some(KafkaCode::NOT_LEADER_OR_FOLLOWER)
        );
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        // 10 ms + 15 ms (capped) of sleep between the three calls.
        assert!(started.elapsed() >= ms(25));
    }

    #[tokio::test]
    async fn stops_at_once_on_a_permanent_error_and_returns_success() {
        let calls = AtomicU32::new(0);
        let r: Result<()> = retry(Backoff::default(), 5, |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(kafka(KafkaCode::TOPIC_AUTHORIZATION_FAILED)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 1);

        let r = retry(Backoff::new(ms(1), ms(1)), 5, |attempt| async move {
            if attempt < 2 {
                Err(kafka(KafkaCode::LEADER_NOT_AVAILABLE))
            } else {
                Ok(attempt)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
    }
}
