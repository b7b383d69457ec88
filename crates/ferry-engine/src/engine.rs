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
                let result = async {
                    let source = connect(&name, source).await?;
                    let target = connect(&name, target).await?;
                    run_flow(spec, source, target, stop).await
                }
                .await;
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
