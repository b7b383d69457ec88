//! One module per subcommand.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use ferry_client::Client;
use ferry_engine::config::{Config, ConfigError};

pub mod check;
pub mod import;
pub mod inspect;
pub mod offsets;
pub mod replay;
pub mod run;
pub mod status;
pub mod verify;

/// sysexits' EX_USAGE: the config is wrong.
const EXIT_INVALID_CONFIG: u8 = 64;
/// sysexits' EX_NOINPUT: the config file cannot be read.
const EXIT_NO_INPUT: u8 = 66;

/// Loads and validates a config file; on failure prints every problem
/// (naming the field) and returns the exit status to use.
pub fn load_config(path: &Path) -> Result<Config, ExitCode> {
    let shown = path.display();
    match Config::load(path) {
        Ok(config) => Ok(config),
        Err(e @ ConfigError::Read { .. }) => {
            eprintln!("ferry: {e}");
            Err(ExitCode::from(EXIT_NO_INPUT))
        }
        Err(ConfigError::Invalid(problems)) => {
            eprintln!("ferry: invalid config {shown}:");
            for p in problems {
                eprintln!("  {p}");
            }
            Err(ExitCode::from(EXIT_INVALID_CONFIG))
        }
        Err(e) => {
            eprintln!("ferry: invalid config {shown}: {e}");
            Err(ExitCode::from(EXIT_INVALID_CONFIG))
        }
    }
}

/// Connects to the cluster with this alias, as configured.
pub async fn connect(config: &Config, alias: &str) -> anyhow::Result<Client> {
    let cluster = config
        .cluster(alias)
        .with_context(|| format!("cluster {alias} is not configured"))?;
    Client::connect(&cluster.bootstrap_servers, cluster.client_config())
        .await
        .with_context(|| format!("cluster {alias}"))
}
