//! `[metrics]`: the HTTP endpoint of `ferry run` (Prometheus `/metrics`,
//! Kubernetes probes `/health` and `/ready`).

use std::net::SocketAddr;

use serde::Deserialize;

/// `[metrics]`. Absent: no HTTP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// Address of the HTTP endpoint, e.g. `"127.0.0.1:9464"` (or
    /// `"0.0.0.0:9464"` in a container). Default: none (no endpoint).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Export per-partition series (offsets, lag, per-partition counters).
    /// Default `true`; switch off for tens of thousands of partitions, where
    /// the per-flow series remain.
    #[serde(default = "default_per_partition")]
    pub per_partition: bool,
}

fn default_per_partition() -> bool {
    true
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: None,
            per_partition: default_per_partition(),
        }
    }
}
