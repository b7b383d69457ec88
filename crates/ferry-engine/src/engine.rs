//! Running every flow of a configuration in-process: the embedding API.
//!
//! ```no_run
//! use ferry_engine::config::Config;
//! use ferry_engine::Engine;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load("ferry.toml")?;
//! let engine = Engine::new(config);
//! // Runs until the future completes (e.g. on SIGTERM), then drains every
//! // in-flight batch and writes final checkpoints.
//! let outcomes = engine.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! for o in outcomes {
//!     println!("{}: {:?}", o.flow, o.result.map(|s| s.summary()));
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use ferry_client::Client;
use tokio::sync::watch;

use crate::EngineError;
use crate::config::Config;
use crate::flow::{FlowSpec, FlowStats, run_flow};
use crate::metrics::Metrics;
use crate::topics::TopicNaming;

/// What one flow ended with.
#[derive(Debug)]
pub struct FlowOutcome {
    pub flow: String,
    pub result: Result<Arc<FlowStats>, EngineError>,
}

/// Runs the flows of one configuration.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    naming: HashMap<String, Arc<dyn TopicNaming>>,
    metrics: Metrics,
}

impl Engine {
    /// An engine for a validated configuration.
    pub fn new(config: Config) -> Self {
        let metrics = Metrics::new(config.metrics.per_partition);
        for flow in &config.flows {
            // Every configured flow counts for readiness from the start.
            drop(metrics.flow(&flow.name));
        }
        Self {
            config,
            naming: HashMap::new(),
            metrics,
        }
    }

    /// The engine's metrics and readiness: register them in a Prometheus
    /// registry ([`Metrics::register`]) and ask [`Metrics::is_ready`]. Take
    /// a clone before [`run`](Self::run).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Replaces the topic naming of flow `flow` (custom naming or filtering
    /// beyond the config's regexes).
    pub fn with_topic_naming(mut self, flow: &str, naming: Arc<dyn TopicNaming>) -> Self {
        self.naming.insert(flow.to_owned(), naming);
        self
    }

    /// Runs every flow until `shutdown` completes; then each flow stops
    /// taking data, waits for its in-flight batches and writes its final
    /// checkpoint. A flow that fails does not stop the others.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Vec<FlowOutcome> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut outcomes = Vec::new();
        let mut flows = tokio::task::JoinSet::new();
        for flow in &self.config.flows {
            let spec = match FlowSpec::from_config(
                &self.config,
                flow,
                self.naming.get(&flow.name).cloned(),
            ) {
                Ok(mut spec) => {
                    spec.metrics = self.metrics.flow(&flow.name);
                    spec
                }
                Err(e) => {
                    outcomes.push(FlowOutcome {
                        flow: flow.name.clone(),
                        result: Err(e),
                    });
                    continue;
                }
            };
            let endpoints = [&flow.source, &flow.target].map(|alias| {
                self.config.cluster(alias).map(|c| {
                    (
                        alias.clone(),
                        c.bootstrap_servers.clone(),
                        c.client_config(),
                    )
                })
            });
            let [Some(source), Some(target)] = endpoints else {
                outcomes.push(FlowOutcome {
                    flow: flow.name.clone(),
                    result: Err(EngineError::Config {
                        flow: flow.name.clone(),
                        detail: "names a cluster that is not configured".into(),
                    }),
                });
                continue;
            };
            let name = flow.name.clone();
            let stop = stop_rx.clone();
            flows.spawn(async move {
                let result = run_retrying_start(spec, (source, target), stop).await;
                FlowOutcome { flow: name, result }
            });
        }
        tokio::pin!(shutdown);
        let mut stopping = false;
        loop {
            tokio::select! {
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    let _ = stop_tx.send(true);
                }
                done = flows.join_next() => match done {
                    None => break,
                    Some(Ok(outcome)) => {
                        if let Err(e) = &outcome.result {
                            tracing::error!(flow = %outcome.flow, error = %e, "flow failed");
                        }
                        outcomes.push(outcome);
                    }
                    Some(Err(e)) => tracing::error!(error = %e, "flow task panicked"),
                },
            }
        }
        outcomes
    }
}

type Endpoint = (String, Vec<String>, ferry_client::ClientConfig);

/// Connects and runs one flow until `stop`. A flow that fails before it
/// runs (a cluster unreachable, InitProducerId refused, ferry's topics not
/// usable on the target) is tried again with backoff (1 s doubling to
/// 60 s) until it starts or the engine stops; meanwhile `/ready` says why.
/// What cannot heal without a change of configuration (credentials, TLS,
/// a bad config) is not retried: `ferry run` reports it and exits.
async fn run_retrying_start(
    spec: FlowSpec,
    (source, target): (Endpoint, Endpoint),
    mut stop: watch::Receiver<bool>,
) -> Result<Arc<FlowStats>, EngineError> {
    let name = spec.name.clone();
    let mut failures = 0u32;
    let mut logged: Option<String> = None;
    loop {
        let result = async {
            let source = connect(&name, source.clone()).await?;
            let target = connect(&name, target.clone()).await?;
            run_flow(spec.clone(), source, target, stop.clone()).await
        }
        .await;
        let error = match result {
            Ok(stats) => return Ok(stats),
            Err(e) if *stop.borrow() || !start_can_heal(&e) => return Err(e),
            Err(e) => e,
        };
        failures = failures.saturating_add(1);
        let wait = crate::flow::restart_backoff(failures);
        let text = error.to_string();
        if logged.as_deref() != Some(text.as_str()) {
            tracing::error!(flow = %name, error = %text, "flow cannot start; retrying with backoff (logged again when the error changes)");
            logged = Some(text.clone());
        }
        spec.metrics
            .set_not_ready(format!("cannot start ({failures} attempts): {text}"));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return Err(error),
        }
    }
}

/// Whether a start-up failure can heal by itself (or by an operator's
/// change on a cluster, such as an ACL): retried then.
fn start_can_heal(error: &EngineError) -> bool {
    use crate::compacted::StoreError;
    match error {
        EngineError::Cluster { source, .. } => client_can_heal(source),
        EngineError::Checkpoint(StoreError::Client { source, .. }) => client_can_heal(source),
        EngineError::Checkpoint(StoreError::Fetch { code, .. }) => {
            code.is_retriable() || is_authorization(*code)
        }
        _ => false,
    }
}

fn client_can_heal(error: &ferry_client::ClientError) -> bool {
    error.is_retriable() || error.kafka_code().is_some_and(is_authorization)
}

fn is_authorization(code: ferry_client::KafkaCode) -> bool {
    use ferry_client::KafkaCode;
    matches!(
        code,
        KafkaCode::TOPIC_AUTHORIZATION_FAILED
            | KafkaCode::CLUSTER_AUTHORIZATION_FAILED
            | KafkaCode::GROUP_AUTHORIZATION_FAILED
            | KafkaCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    )
}

async fn connect(
    flow: &str,
    (alias, bootstrap, config): (String, Vec<String>, ferry_client::ClientConfig),
) -> Result<Client, EngineError> {
    Client::connect(&bootstrap, config)
        .await
        .map_err(|e| EngineError::Cluster {
            flow: flow.to_owned(),
            cluster: alias,
            source: Box::new(e),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn start_up_errors_that_need_a_config_change_are_not_retried() {
        use crate::compacted::StoreError;
        assert!(!start_can_heal(&EngineError::Config {
            flow: "f".into(),
            detail: "x".into()
        }));
        assert!(!start_can_heal(&EngineError::Checkpoint(
            StoreError::Malformed {
                topic: "__ferry_checkpoints",
                offset: 0,
                detail: "unknown field".into()
            }
        )));
        let cluster = |source| EngineError::Cluster {
            flow: "f".into(),
            cluster: "a".into(),
            source: Box::new(source),
        };
        assert!(!start_can_heal(&cluster(
            ferry_client::ClientError::SaslSetup {
                reason: "no password".into()
            }
        )));
        assert!(start_can_heal(&cluster(
            ferry_client::ClientError::ConnectTimeout {
                broker: "b:9092".into(),
                after: std::time::Duration::from_secs(1)
            }
        )));
    }

    /// Issue 14 item 3: a flow whose cluster cannot be reached is retried
    /// (it used to end at once), `/ready` says why, and it stops cleanly
    /// on shutdown.
    #[tokio::test]
    async fn a_flow_that_cannot_start_is_retried_and_says_why() {
        let config = Config::from_toml_str(
            r#"
[clusters.a]
bootstrap_servers = ["127.0.0.1:1"]
connect_timeout = "200ms"
[clusters.b]
bootstrap_servers = ["127.0.0.1:1"]
connect_timeout = "200ms"
[[flows]]
name = "down"
source = "a"
target = "b"
"#,
            |_| None,
        )
        .unwrap();
        let engine = Engine::new(config);
        let metrics = engine.metrics().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(engine.run(async {
            let _ = rx.await;
        }));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let why = metrics.not_ready().join(", ");
            if why.contains("cannot start (2 attempts)") {
                break;
            }
            assert!(!run.is_finished(), "the flow ended instead of retrying");
            assert!(Instant::now() < deadline, "no retry reported: {why:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            metrics.not_ready()[0].contains("127.0.0.1:1"),
            "{:?}",
            metrics.not_ready()
        );
        tx.send(()).unwrap();
        let outcomes = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(outcomes.len(), 1);
        assert!(outcomes[0].result.is_err());
    }
}
