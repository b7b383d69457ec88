//! Secure test clusters: certificates generated at test time and harness
//! clusters with TLS and SASL listeners next to the plaintext one.
//!
//! The PLAINTEXT listener stays the inter-broker listener and, with ACLs on,
//! its `User:ANONYMOUS` principal is a super user: tests set clusters up
//! through it (topics, ACLs), and check ferry through the secure listeners.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};

/// Certificates and keys (PEM files) for one test run.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA that signed everything below.
    pub ca: PathBuf,
    /// Another CA that signed nothing the brokers use (the "wrong CA").
    pub other_ca: PathBuf,
    /// The broker's key and certificate chain in one file (Kafka's PEM
    /// keystore), valid for 127.0.0.1 and localhost.
    pub server: PathBuf,
    /// Like `server`, but expired in 2001.
    pub expired_server: PathBuf,
    /// Ferry's client certificate (`CN=ferry`, so principal `User:CN=ferry`).
    pub client_cert: PathBuf,
    /// Its PKCS#8 key.
    pub client_key: PathBuf,
    /// The same key as an SEC1 `EC PRIVATE KEY`.
    pub client_key_sec1: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().expect("generate a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let pem = params.self_signed(&key).expect("self-sign the CA").pem();
    (params, key, pem)
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    names: &[&str],
    expired: bool,
) -> (String, KeyPair) {
    let key = KeyPair::generate().expect("generate a key");
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.not_before = date_time_ymd(2000, 1, 1);
    params.not_after = if expired {
        date_time_ymd(2001, 1, 1)
    } else {
        date_time_ymd(2100, 1, 1)
    };
    let cert = params.signed_by(&key, issuer).expect("sign a certificate");
    (cert.pem(), key)
}

impl Pki {
    /// Generates a fresh PKI into `dir` (created if needed).
    ///
    /// # Panics
    /// If a certificate cannot be generated or written.
    pub fn generate(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("create the PKI directory");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write a PEM file");
            path
        };
        let (ca_params, ca_key, ca_pem) = ca("ferry test CA");
        let (_, _, other_pem) = ca("some other CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let (server_pem, server_key) = leaf(&issuer, "broker", &["127.0.0.1", "localhost"], false);
        let (expired_pem, expired_key) = leaf(&issuer, "broker", &["127.0.0.1", "localhost"], true);
        let (client_pem, client_key) = leaf(&issuer, "ferry", &[], false);
        let sec1 = sec1_pem(&client_key);
        Self {
            ca: write("ca.pem", &ca_pem),
            other_ca: write("other-ca.pem", &other_pem),
            server: write(
                "server.pem",
                &format!("{}{server_pem}{ca_pem}", server_key.serialize_pem()),
            ),
            expired_server: write(
                "expired-server.pem",
                &format!("{}{expired_pem}{ca_pem}", expired_key.serialize_pem()),
            ),
            client_cert: write("client.pem", &format!("{client_pem}{ca_pem}")),
            client_key: write("client-key.pem", &client_key.serialize_pem()),
            client_key_sec1: write("client-key-sec1.pem", &sec1),
        }
    }
}

/// The key as SEC1 (`EC PRIVATE KEY`): the PKCS#8 wrapper around rcgen's
/// P-256 key holds the SEC1 structure as its private-key octet string.
fn sec1_pem(key: &KeyPair) -> String {
    let der = key.serialize_der();
    // PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, OCTET STRING { ECPrivateKey } }
    let inner = find_octet_string(&der).expect("a PKCS#8 EC key");
    pem("EC PRIVATE KEY", inner)
}

fn find_octet_string(der: &[u8]) -> Option<&[u8]> {
    // The elements of the outer SEQUENCE: version, algorithm, private key.
    let (_, body, _) = tlv(der)?;
    let mut rest = body;
    while !rest.is_empty() {
        let (tag, value, len) = tlv(rest)?;
        if tag == 0x04 {
            return Some(value);
        }
        rest = rest.get(len..)?;
    }
    None
}

/// Tag, value and whole length of the DER element at the start of `der`.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], usize)> {
    let tag = *der.first()?;
    let first = *der.get(1)?;
    let (len, start) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        let mut len = 0usize;
        for b in der.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    Some((tag, der.get(start..start + len)?, start + len))
}

fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Whether secure-cluster tests can run here: they start their own
/// clusters, which needs `java`. Without it they are skipped (and fail
/// when `FERRY_REQUIRE_BROKERS=1`).
///
/// # Panics
/// If `FERRY_REQUIRE_BROKERS=1` and `java` is missing.
pub fn can_start_clusters() -> bool {
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !java {
        assert!(
            std::env::var("FERRY_REQUIRE_BROKERS").as_deref() != Ok("1"),
            "FERRY_REQUIRE_BROKERS=1 but java is missing: secure-cluster tests need it"
        );
        println!("skipped: java is not installed (secure-cluster tests start their own brokers)");
    }
    java
}

fn harness() -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../harness/kafka_harness.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script);
    cmd
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run the harness");
    assert!(
        out.status.success(),
        "harness failed: {cmd:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A harness cluster with extra listeners; stopped and wiped when dropped.
#[derive(Debug)]
pub struct SecureCluster {
    /// The harness name.
    pub name: String,
    /// The PLAINTEXT listener (admin: a super user when ACLs are on).
    pub plaintext: String,
}

impl SecureCluster {
    /// Starts cluster `name` (it should start with `sec-` and be unique)
    /// with `listeners` (`NAME:PROTOCOL`), SCRAM users created at format
    /// time (`SCRAM-SHA-512=[name=u,password=p]`) and broker `overrides`.
    ///
    /// # Panics
    /// If the cluster does not start.
    pub fn start(name: &str, listeners: &[&str], scram: &[String], overrides: &[String]) -> Self {
        Self::start_with_jvm_props(name, listeners, scram, overrides, &[])
    }

    /// [`start`](Self::start) with broker JVM system properties
    /// (`KEY=VALUE`), for settings Kafka reads only from there (e.g.
    /// `org.apache.kafka.sasl.oauthbearer.allowed.urls`).
    ///
    /// # Panics
    /// If the cluster does not start.
    pub fn start_with_jvm_props(
        name: &str,
        listeners: &[&str],
        scram: &[String],
        overrides: &[String],
        jvm_props: &[String],
    ) -> Self {
        let mut cmd = harness();
        cmd.args(["start", name]);
        for p in jvm_props {
            cmd.args(["--jvm-prop", p]);
        }
        for l in listeners {
            cmd.args(["--listener", l]);
        }
        for s in scram {
            cmd.args(["--add-scram", s]);
        }
        for o in overrides {
            cmd.args(["--override", o]);
        }
        // Made first so that a cluster that fails to start is wiped too.
        let mut cluster = Self {
            name: name.to_owned(),
            plaintext: String::new(),
        };
        cluster.plaintext = run(&mut cmd).lines().last().unwrap_or_default().to_owned();
        cluster
    }

    /// The address of listener `name`.
    ///
    /// # Panics
    /// If the cluster has no such listener.
    pub fn listener(&self, name: &str) -> String {
        run(harness().args(["bootstrap", &self.name, "--listener", name]))
    }
}

impl Drop for SecureCluster {
    fn drop(&mut self) {
        // FERRY_KEEP_CLUSTERS=1 stops the cluster but keeps its logs, to
        // study a failure.
        let keep = std::env::var("FERRY_KEEP_CLUSTERS").as_deref() == Ok("1");
        let _ = harness()
            .args([if keep { "stop" } else { "wipe" }, &self.name])
            .output();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_base64() {
        assert_eq!(
            pem("X", b"foobar!"),
            "-----BEGIN X-----\nZm9vYmFyIQ==\n-----END X-----\n"
        );
    }
}
