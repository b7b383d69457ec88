//! `ferry run`'s text logs written to a file (not a terminal) carry no ANSI
//! escape sequences; `--log-format json` lines stay JSON.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn temp(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("ferry-logs-{nanos}-{name}"))
}

/// Runs `ferry run` against an unreachable cluster with stderr redirected to a
/// file until it has logged a few lines, then stops it and returns the log.
fn captured_log(extra: &[&str], env: &[(&str, &str)]) -> String {
    let config = temp("config.toml");
    std::fs::write(
        &config,
        "[clusters.a]\nbootstrap_servers = [\"127.0.0.1:1\"]\n\
         [clusters.b]\nbootstrap_servers = [\"127.0.0.1:1\"]\n\
         [[flows]]\nname = \"logs\"\nsource = \"a\"\ntarget = \"b\"\ntopics = [\"logs-.*\"]\n",
    )
    .unwrap();
    let log = temp("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args(extra)
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&config);
    println!("{text}");
    assert!(!text.is_empty(), "ferry run logged nothing");
    text
}

#[test]
fn text_logs_in_a_file_have_no_escape_sequences() {
    let text = captured_log(&[], &[]);
    assert!(!text.contains('\x1b'), "ANSI escapes in a file: {text:?}");
}

#[test]
fn json_logs_in_a_file_are_json_lines() {
    let text = captured_log(&["--log-format", "json"], &[]);
    assert!(!text.contains('\x1b'));
    for line in text.lines() {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    }
}
