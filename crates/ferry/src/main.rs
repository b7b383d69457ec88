//! The `ferry` command line.

mod alloc;
mod cmd;
mod http;
mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ferry replicates Kafka topics between clusters, forwarding record batches
/// without decompressing them.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse raw fetched partition data (a `records.bin` file or a testdata
    /// case directory) and show what ferry would do with each batch.
    Inspect(cmd::inspect::Args),
    /// Produce captured partition data (testdata cases) into fresh topics on a
    /// real cluster through the fast and slow paths, read it back and check
    /// every record and every forwarded payload byte.
    Replay(cmd::replay::Args),
    /// Validate a config file, connect to every cluster and broker, and show
    /// what each flow would mirror (exit 64 if the config is invalid).
    Check(cmd::check::Args),
    /// Mirror the configured flows until SIGTERM/SIGINT, then drain
    /// in-flight batches and write final checkpoints.
    Run(cmd::run::Args),
    /// Translate source offsets to target offsets with the flows' exact
    /// offset map.
    Offsets(cmd::offsets::Args),
    /// One screen per flow: state, lag, rate and errors, from the running
    /// instance (`[metrics] listen`) or else from the clusters' checkpoints.
    Status(cmd::status::Args),
    /// Compare every mirrored partition with its source, record by record,
    /// aligned by the flows' checkpoints (exit 1 on any difference).
    Verify(cmd::verify::Args),
    /// Turn another replicator's config into a ferry.toml (`ferry import
    /// mm2 FILE` or `--strimzi RESOURCE.yaml`), reporting every setting.
    Import(cmd::import::Args),
}

fn main() -> ExitCode {
    alloc::return_large_buffers_to_the_os();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            // Usage errors exit 64 (EX_USAGE); --help and --version exit 0.
            return if usage {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Inspect(args) => cmd::inspect::run(&args),
        Command::Replay(args) => cmd::replay::run(&args),
        Command::Check(args) => cmd::check::run(&args),
        Command::Run(args) => cmd::run::run(&args),
        Command::Verify(args) => cmd::verify::run(&args),
        Command::Status(args) => cmd::status::run(&args),
        Command::Offsets(args) => cmd::offsets::run(&args),
        Command::Import(args) => cmd::import::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ferry: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line. Our error types already put their
/// cause in their own message, so a cause whose text is already there is not
/// repeated.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
