//! Clusters a test starts for itself through `harness/kafka_harness.py`,
//! for faults the shared `FERRY_KAFKA_A`/`_B` clusters must not see
//! (restarts, a broker behind a [`FaultProxy`](crate::proxy::FaultProxy)).

use std::path::PathBuf;
use std::process::Command;

use crate::proxy::FaultProxy;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `kafka_harness.py args...` and returns its trimmed stdout.
///
/// # Panics
/// If the harness fails (its output is in the message).
pub fn harness(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(repo_root().join("harness/kafka_harness.py"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "kafka_harness.py {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A single-node cluster of the test's own; stopped and wiped when dropped,
/// even when the test fails.
#[derive(Debug)]
pub struct OwnCluster {
    /// The harness name (`faults-<what>-<pid>`).
    pub name: String,
    /// The broker's own listener (what the harness printed).
    pub direct: String,
    /// What clients should bootstrap from: the proxy when there is one.
    pub bootstrap: String,
}

impl OwnCluster {
    /// Starts `faults-<what>-<pid>` with `overrides` (`key=value`).
    ///
    /// # Panics
    /// If the harness cannot start it.
    pub fn start(what: &str, overrides: &[String]) -> Self {
        let name = format!("faults-{what}-{}", std::process::id());
        // A leftover of an earlier run with the same pid would keep its ports.
        let _ = harness(&["wipe", &name]);
        let mut args = vec!["start".to_owned(), name.clone()];
        for o in overrides {
            args.push("--override".to_owned());
            args.push(o.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let direct = harness(&args).lines().last().unwrap_or_default().to_owned();
        Self {
            name,
            bootstrap: direct.clone(),
            direct,
        }
    }

    /// Starts a cluster that advertises `proxy`'s address, and points the
    /// proxy at it: every client connection goes through the proxy.
    pub fn behind(what: &str, proxy: &FaultProxy) -> Self {
        let mut c = Self::start(
            what,
            &[format!(
                "advertised.listeners=PLAINTEXT://127.0.0.1:{}",
                proxy.port()
            )],
        );
        proxy.set_upstream(&c.direct);
        c.bootstrap = proxy.addr().to_string();
        c
    }

    /// `harness restart`: SIGTERM (controlled shutdown), start again on the
    /// same ports with the same data.
    pub fn restart(&self) {
        harness(&["restart", &self.name]);
    }

    /// `harness stop`.
    pub fn stop(&self) {
        harness(&["stop", &self.name]);
    }

    /// `harness stop --kill`: SIGKILL, no controlled shutdown (a crash of
    /// the broker process; what it wrote is in the page cache, so only a
    /// crash of the machine could lose it).
    pub fn kill(&self) {
        harness(&["stop", "--kill", &self.name]);
    }

    /// `harness start` again after [`stop`](Self::stop) or [`kill`](Self::kill).
    pub fn start_again(&self) {
        harness(&["start", &self.name]);
    }
}

/// Starts `{name}-src` and `{name}-dst` side by side, each behind a proxy
/// of its own: (source proxy, target proxy, source, target).
pub fn proxied_pair(name: &str) -> (FaultProxy, FaultProxy, OwnCluster, OwnCluster) {
    let start = || FaultProxy::start().expect("a fault proxy on loopback");
    let (src_proxy, dst_proxy) = (start(), start());
    let (src, dst) = std::thread::scope(|s| {
        let src = s.spawn(|| OwnCluster::behind(&format!("{name}-src"), &src_proxy));
        let dst = s.spawn(|| OwnCluster::behind(&format!("{name}-dst"), &dst_proxy));
        (
            src.join().expect("source cluster"),
            dst.join().expect("target cluster"),
        )
    });
    (src_proxy, dst_proxy, src, dst)
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("python3")
            .arg(repo_root().join("harness/kafka_harness.py"))
            .args(["wipe", &self.name])
            .current_dir(repo_root())
            .output();
    }
}
