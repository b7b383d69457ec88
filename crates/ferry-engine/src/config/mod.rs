//! Ferry's configuration: clusters and the flows between them, loaded from
//! TOML (or built in code) and validated as a whole.
//!
//! ```toml
//! [clusters.east]
//! bootstrap_servers = ["10.0.0.1:9092"]
//!
//! [clusters.west]
//! bootstrap_servers = ["${WEST_BOOTSTRAP}"]
//!
//! [[flows]]
//! source = "east"
//! target = "west"
//! topics = ["orders.*"]
//! ```
//!
//! Loading goes in three steps, each of which names the exact field of
//! every problem (`flows[1].tuning.max_in_flight_per_partition: must be
//! between 1 and 5, got 9`):
//!
//! 1. `${VAR}` in any string value is replaced from the environment; an
//!    unset variable is an error naming the field and the variable.
//! 2. The document becomes typed config: unknown keys are refused
//!    everywhere, sizes (`"64MiB"`) and durations (`"500ms"`) are parsed.
//! 3. [`Config::validate`] checks ranges and the config as a whole: flows
//!    name existing clusters, flow names are unique, regexes compile, and no
//!    set of flows can send topics around in a loop.
//!
//! Flow indexes in paths count from 0, in file order. The file format is
//! documented field by field in `docs/configuration.md`.

mod batching;
mod cluster;
mod env;
mod flow;
mod groups;
mod metrics;

mod security;
mod units;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use batching::Batching;
pub use cluster::ClusterConfig;
pub use flow::{
    ConfigFilter, DEFAULT_EXCLUDE_CONFIGS, FlowConfig, Naming, StartPosition, Tuning,
    default_flow_name,
};
pub use groups::{DEFAULT_EXCLUDE_GROUPS, GroupSync};
pub use metrics::MetricsConfig;

pub use security::{Mechanism, SaslSettings, SecurityProtocol, TlsSettings};
pub use units::{ByteSize, Timestamp, format_duration, parse_duration};

/// The whole configuration: clusters by alias, and the flows between them.
///
/// A `Config` from [`Config::load`], [`Config::from_toml_str`] or
/// [`Config::new`] has been validated. After changing fields of one, call
/// [`Config::validate`] again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Clusters by alias (`[clusters.<alias>]`). At least one; aliases are
    /// letters, digits, `_` and `-` (no `.`: it separates the prefix of a
    /// mirrored topic from its name).
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterConfig>,
    /// The flows (`[[flows]]`), at least one.
    #[serde(default)]
    pub flows: Vec<FlowConfig>,
    /// The HTTP metrics and health endpoint (`[metrics]`); off by default.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// One problem in a config: the field it is about and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field, e.g. `flows[1].tuning.fetch_max_wait`; empty for the
    /// document as a whole.
    pub path: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not valid TOML; the message has the line and column.
    #[error("invalid TOML: {0}")]
    Syntax(String),
    /// Valid TOML, but not a valid ferry config: every problem found, one
    /// per line.
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// The problems of an [`Invalid`](Self::Invalid) config; empty otherwise.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid(p) => p,
            Self::Read { .. } | Self::Syntax(_) => &[],
        }
    }
}

impl Config {
    /// A validated config from clusters by alias and flows.
    pub fn new<A: Into<String>>(
        clusters: impl IntoIterator<Item = (A, ClusterConfig)>,
        flows: Vec<FlowConfig>,
    ) -> Result<Self, ConfigError> {
        let config = Self {
            clusters: clusters.into_iter().map(|(a, c)| (a.into(), c)).collect(),
            flows,
            metrics: MetricsConfig::default(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads and validates the config file at `path`; `${VAR}` references
    /// are filled from the process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, |name| std::env::var(name).ok())
    }

    /// Parses and validates a config from TOML text; `${VAR}` references are
    /// filled by `env` (for tests and embedding: no process environment needed).
    pub fn from_toml_str(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
        let mut document = toml::Value::Table(table);
        let mut problems = Vec::new();
        env::substitute(&mut document, "", &env, &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        let mut config: Self = serde_path_to_error::deserialize(document)
            .map_err(|e| ConfigError::Invalid(vec![deserialize_problem(&e)]))?;
        for flow in &mut config.flows {
            if flow.name.is_empty() {
                flow.name = default_flow_name(&flow.source, &flow.target);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every field and the config as a whole; all problems found are
    /// reported together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = validate::problems(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Things that are allowed but probably not meant, e.g. two flows that
    /// may write the same target topic (see `docs/configuration.md`).
    pub fn warnings(&self) -> Vec<Problem> {
        validate::warnings(self)
    }

    /// The cluster with this alias.
    pub fn cluster(&self, alias: &str) -> Option<&ClusterConfig> {
        self.clusters.get(alias)
    }
}

/// A TOML syntax error as line, column and message, without toml's quote
/// of the offending line: that line may hold a password.
fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim();
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            ConfigError::Syntax(format!("line {line}, column {column}: {message}"))
        }
        None => ConfigError::Syntax(message.to_owned()),
    }
}

/// A typed-deserialization error as a [`Problem`]: serde's "missing field
/// `x`" at `a.b` becomes "is required" at `a.b.x`.
fn deserialize_problem(e: &serde_path_to_error::Error<toml::de::Error>) -> Problem {
    let path = match e.path().to_string() {
        p if p == "." => String::new(),
        p => p,
    };
    let message = operator_words(e.inner().message().trim());
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        let path = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return Problem::new(path, "is required");
    }
    Problem::new(path, message)
}

/// Serde's type names in TOML's words ("expected a sequence" → "expected
/// a list"); Rust struct names mean nothing to an operator.
fn operator_words(message: &str) -> String {
    let mut m = message
        .replace("expected a sequence", "expected a list")
        .replace("expected a map", "expected a table")
        .replace("expected u32", "expected a whole number");
    if let Some(at) = m.find("expected struct ") {
        m.truncate(at);
        m.push_str("expected a table");
    }
    m
}
