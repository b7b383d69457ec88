//! `ferry import mm2`: a MirrorMaker 2 config (a dedicated-mode
//! `.properties` file or a Strimzi `KafkaMirrorMaker2` resource) as an
//! equivalent ferry.toml, with a report of what became of every setting.

mod draft;
mod flows;
mod mapping;
mod properties;
mod regex;
mod report;
mod rules;
mod security;
mod strimzi;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

pub use mapping::{Setting, map};
pub use report::{Origin, Report, Verdict};

use draft::Draft;

/// sysexits' EX_USAGE: the MM2 config cannot be imported.
const EXIT_CANNOT_IMPORT: u8 = 64;
/// sysexits' EX_NOINPUT.
const EXIT_NO_INPUT: u8 = 66;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    from: From,
}

#[derive(Debug, Subcommand)]
enum From {
    /// Print a ferry.toml equivalent to a MirrorMaker 2 config, and a report
    /// on stderr of every MM2 setting: mapped, ignored (why) or unsupported
    /// (what to do). Exit 64, writing nothing, if something essential
    /// cannot be mapped.
    Mm2(Mm2Args),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["file", "strimzi"])))]
struct Mm2Args {
    /// The MM2 dedicated-mode properties file (connect-mirror-maker.properties).
    file: Option<PathBuf>,
    /// A Strimzi `KafkaMirrorMaker2` resource (YAML) instead of a properties file.
    #[arg(long, value_name = "RESOURCE.yaml", conflicts_with = "file")]
    strimzi: Option<PathBuf>,
    /// Write the config to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// The outcome of an import: the config text (when nothing stops it) and
/// the report.
#[derive(Debug)]
pub struct Imported {
    pub toml: Option<String>,
    pub report: Report,
}

/// Why the input could not be read as MM2 config at all.
#[derive(Debug)]
pub struct Unreadable(pub String);

/// Imports MM2 properties text.
pub fn import_properties(text: &str, name: &str) -> Result<Imported, Unreadable> {
    let props = properties::parse(text).map_err(|e| Unreadable(format!("{name}: {e}")))?;
    let settings: Vec<Setting> = props
        .into_iter()
        .map(|p| Setting::new(p.key, p.value, Origin::Line(p.line)))
        .collect();
    let (draft, report) = map(&settings);
    Ok(finish(draft, report, name))
}

/// Imports a Strimzi `KafkaMirrorMaker2` resource.
pub fn import_strimzi(text: &str, name: &str) -> Result<Imported, Unreadable> {
    let (draft, report) = strimzi::import(text).map_err(|e| Unreadable(format!("{name}: {e}")))?;
    Ok(finish(draft, report, name))
}

/// Renders the draft and checks it with ferry's own config loader: what
/// ferry would refuse is an import error too.
fn finish(draft: Draft, mut report: Report, name: &str) -> Imported {
    if report.has_errors() {
        return Imported { toml: None, report };
    }
    let toml = draft.to_toml(name);
    // Variables get a dummy value and files named in the config may not
    // exist here (keystores still to convert): neither is the import's problem.
    let problems = match ferry_engine::config::Config::from_toml_str(&toml, |_| Some("x".into())) {
        Ok(_) => Vec::new(),
        Err(e) => {
            let mut p: Vec<String> = e
                .problems()
                .iter()
                .filter(|p| !p.message.contains("is not a readable file"))
                .map(ToString::to_string)
                .collect();
            if e.problems().is_empty() {
                p.push(e.to_string());
            }
            p
        }
    };
    for p in &problems {
        report.push(
            Origin::Import,
            "(generated config)",
            "",
            Verdict::error(format!("ferry would refuse the result: {p}")),
        );
    }
    Imported {
        toml: problems.is_empty().then_some(toml),
        report,
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let From::Mm2(a) = &args.from;
    let (path, strimzi) = match (&a.file, &a.strimzi) {
        (_, Some(p)) => (p, true),
        (Some(p), None) => (p, false),
        // clap's argument group requires one of the two.
        (None, None) => {
            eprintln!("ferry: give an MM2 properties file or --strimzi RESOURCE.yaml");
            return Ok(ExitCode::from(EXIT_CANNOT_IMPORT));
        }
    };
    let name = path.display().to_string();
    let text = match read(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ferry: cannot read {name}: {e}");
            return Ok(ExitCode::from(EXIT_NO_INPUT));
        }
    };
    let imported = if strimzi {
        import_strimzi(&text, &name)
    } else {
        import_properties(&text, &name)
    };
    let imported = match imported {
        Ok(i) => i,
        Err(Unreadable(e)) => {
            eprintln!("ferry: {e}");
            return Ok(ExitCode::from(EXIT_CANNOT_IMPORT));
        }
    };
    eprintln!("ferry import mm2: {name}");
    eprint!("{}", imported.report.render());
    let Some(toml) = imported.toml else {
        eprintln!("ferry: {name} cannot be imported (errors above); nothing written");
        return Ok(ExitCode::from(EXIT_CANNOT_IMPORT));
    };
    match &a.output {
        Some(out) => {
            std::fs::write(out, &toml).with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "wrote {}; next: ferry check --config {}",
                out.display(),
                out.display()
            );
        }
        None => print!("{toml}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The file as text: UTF-8, or else ISO-8859-1 as Java reads properties.
fn read(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    })
}
