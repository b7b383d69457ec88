//! `ferry run`: mirror until SIGTERM or SIGINT, then drain and checkpoint.
//!
//! Exit status: 0 after a clean shutdown; 64/66 for an invalid/unreadable
//! config; 1 if any flow failed (each failure is logged with its cause).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ferry_engine::Engine;

use crate::logging::{self, LogFormat};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file (TOML; see docs/configuration.md).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Log lines as human-readable text or as one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let config = match super::load_config(&args.config) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    // RUST_LOG as usual (e.g. RUST_LOG=info,ferry_client=debug); info by default.
    logging::init(args.log_format);
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcomes = runtime.block_on(async {
        // Handlers go in before anything else: a SIGTERM during start-up must
        // still mean "drain and checkpoint", not the default instant death.
        let shutdown = shutdown_signal().context("cannot install the SIGTERM/SIGINT handlers")?;
        let listen = config.metrics.listen;
        let engine = Engine::new(config);
        if let Some(addr) = listen {
            let bound = crate::http::serve(addr, engine.metrics().clone())
                .await
                .with_context(|| format!("cannot listen on {addr} for [metrics] listen"))?;
            tracing::info!(address = %bound, "serving /metrics, /health and /ready");
        }
        Ok::<_, anyhow::Error>(engine.run(shutdown).await)
    });
    let outcomes = outcomes?;
    let mut failed = false;
    for o in outcomes {
        match o.result {
            Ok(stats) => tracing::info!(flow = %o.flow, "stopped: {}", stats.summary()),
            Err(e) => {
                failed = true;
                tracing::error!(flow = %o.flow, "failed: {e}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A future that completes on SIGTERM (what orchestrators send) or SIGINT
/// (Ctrl-C). The handlers are installed when this is called, not when the
/// future is first polled.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutdown requested: draining in-flight batches");
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested: draining in-flight batches");
    })
}
