//! Waiting for a condition in a real-broker test: one place instead of a
//! hand-written deadline loop in every test.
//!
//! A probe answers `Ok(value)` when the condition holds, or `Err(state)`
//! describing what it saw; when time runs out the test fails with the last
//! state seen, so a failure says how far things got.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often probes are tried when the caller does not say.
pub const POLL: Duration = Duration::from_millis(200);

/// Polls `probe` every [`POLL`] until it answers `Ok`, and returns its value.
///
/// # Panics
/// When `timeout` passes first: with `what` and the last `Err` state.
pub async fn eventually<T, S, F, Fut>(timeout: Duration, what: impl Display, probe: F) -> T
where
    S: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, S>>,
{
    eventually_every(timeout, POLL, what, probe).await
}

/// [`eventually`] with a polling interval of the caller's.
///
/// # Panics
/// When `timeout` passes first: with `what` and the last `Err` state.
pub async fn eventually_every<T, S, F, Fut>(
    timeout: Duration,
    every: Duration,
    what: impl Display,
    mut probe: F,
) -> T
where
    S: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, S>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(state) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last seen: {state}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// [`eventually_every`] for synchronous probes (log files, child processes),
/// sleeping the thread between tries.
///
/// # Panics
/// When `timeout` passes first: with `what` and the last `Err` state.
pub fn eventually_blocking<T, S: Display>(
    timeout: Duration,
    every: Duration,
    what: impl Display,
    mut probe: impl FnMut() -> Result<T, S>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(state) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last seen: {state}")
            }
            Err(_) => std::thread::sleep(every),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn returns_the_value_once_the_probe_holds() {
        let tries = Cell::new(0);
        let got = eventually(Duration::from_secs(5), "three tries", || {
            tries.set(tries.get() + 1);
            let n = tries.get();
            async move {
                if n >= 3 {
                    Ok(n)
                } else {
                    Err(format!("try {n}"))
                }
            }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[test]
    #[should_panic(expected = "never: not within 50ms; last seen: still 7")]
    fn fails_with_the_last_state_seen() {
        eventually_blocking(
            Duration::from_millis(50),
            Duration::from_millis(5),
            "never",
            || Err::<(), _>("still 7"),
        );
    }
}
