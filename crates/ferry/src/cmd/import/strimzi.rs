//! A Strimzi `KafkaMirrorMaker2` resource as MM2 settings: clusters,
//! mirrors and connector configs become the keys a dedicated-mode file
//! would have (`A->B.topics`, …), each naming the YAML field it came from,
//! and go through the same mapping. Both API shapes are read: v1beta2
//! (`spec.clusters` + `connectCluster`) and v1 (`spec.target` +
//! `mirrors[].source`). TLS and authentication point at Kubernetes
//! Secrets, which the report says where to mount.

use saphyr::{LoadableYamlNode, Scalar, Yaml};

use super::draft::Draft;
use super::mapping::{Setting, map};
use super::report::{Origin, Report, Verdict};

/// Where Secrets are expected to be mounted for ferry.
fn secret_path(alias: &str, secret: &str, key: &str) -> String {
    format!("/etc/ferry/{alias}/{secret}/{key}")
}

const DEPLOYMENT: &str = "how Strimzi deploys MM2 on Kubernetes: run ferry as its own \
                          Deployment (deploy/ has a manifest), one replica";

pub fn import(text: &str) -> Result<(Draft, Report), String> {
    let docs = Yaml::load_from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    let [doc] = docs.as_slice() else {
        return Err(format!("expected one YAML document, found {}", docs.len()));
    };
    let kind = get(doc, "kind").and_then(scalar).unwrap_or_default();
    if kind != "KafkaMirrorMaker2" {
        return Err(format!("kind is {kind:?}, expected KafkaMirrorMaker2"));
    }
    let spec = get(doc, "spec").ok_or("no spec")?;
    let mut b = Builder::default();

    let mut clusters: Vec<(String, &Yaml<'_>, String)> = Vec::new();
    let mut target_alias = None;
    if let Some(list) = get(spec, "clusters").and_then(Yaml::as_sequence) {
        for (i, c) in list.iter().enumerate() {
            let alias = get(c, "alias").and_then(scalar).unwrap_or_default();
            clusters.push((alias, c, format!("spec.clusters[{i}]")));
        }
    }
    if let Some(t) = get(spec, "target") {
        let alias = get(t, "alias").and_then(scalar).unwrap_or_default();
        target_alias = Some(alias.clone());
        clusters.push((alias, t, "spec.target".to_owned()));
    }
    let mirrors = get(spec, "mirrors")
        .and_then(Yaml::as_sequence)
        .cloned()
        .unwrap_or_default();
    for (i, m) in mirrors.iter().enumerate() {
        if let Some(src) = get(m, "source") {
            let alias = get(src, "alias").and_then(scalar).unwrap_or_default();
            if !clusters.iter().any(|(a, ..)| *a == alias) {
                clusters.push((alias, src, format!("spec.mirrors[{i}].source")));
            }
        }
    }
    let aliases: Vec<&str> = clusters.iter().map(|(a, ..)| a.as_str()).collect();
    b.set("clusters", aliases.join(", "), "spec.clusters[].alias");

    for (key, value) in entries(spec) {
        let at = format!("spec.{key}");
        match key.as_str() {
            "clusters" | "target" | "mirrors" => {}
            "connectCluster" => b.note(
                &at,
                &value,
                Verdict::ignored("the Connect cluster MM2 runs on (the target): ferry needs none"),
            ),
            _ => b.note(&at, &value, Verdict::ignored(DEPLOYMENT)),
        }
    }
    for (alias, c, at) in &clusters {
        b.cluster(alias, c, at);
    }
    for (i, m) in mirrors.iter().enumerate() {
        let at = format!("spec.mirrors[{i}]");
        let source = get(m, "sourceCluster").and_then(scalar).or_else(|| {
            get(m, "source")
                .and_then(|s| get(s, "alias"))
                .and_then(scalar)
        });
        let target = get(m, "targetCluster")
            .and_then(scalar)
            .or_else(|| target_alias.clone());
        let (Some(s), Some(t)) = (source, target) else {
            b.note(
                &at,
                "",
                Verdict::error(
                    "a mirror needs sourceCluster and targetCluster (or source and spec.target)",
                ),
            );
            continue;
        };
        b.mirror(&s, &t, m, &at);
    }
    let (mut draft, mut report) = map(&b.settings);
    for (alias, cert, key, at) in &b.client_certs {
        if let Some(c) = draft.cluster_mut(alias) {
            c.tls.set("cert_file", cert.as_str(), at.as_str());
            c.tls.set("key_file", key.as_str(), at.as_str());
        }
    }
    // The notes first: they explain the synthesized settings below them.
    let mut notes = std::mem::take(&mut b.notes);
    notes.append(&mut report.entries);
    report.entries = notes;
    Ok((draft, report))
}

#[derive(Default)]
struct Builder {
    settings: Vec<Setting>,
    notes: Vec<super::report::Entry>,
    /// (alias, cert_file, key_file, from) for `authentication.type: tls`.
    client_certs: Vec<(String, String, String, String)>,
}

impl Builder {
    fn set(&mut self, key: impl Into<String>, value: impl Into<String>, at: &str) {
        self.settings
            .push(Setting::new(key, value, Origin::Yaml(at.to_owned())));
    }

    fn note(&mut self, at: &str, value: &str, verdict: Verdict) {
        let mut r = Report::default();
        r.push(
            Origin::Yaml(at.to_owned()),
            at.rsplit('.').next().unwrap_or(at),
            value,
            verdict,
        );
        self.notes.append(&mut r.entries);
    }

    fn cluster(&mut self, alias: &str, c: &Yaml<'_>, at: &str) {
        if let Some(servers) = get(c, "bootstrapServers").and_then(scalar) {
            self.set(
                format!("{alias}.bootstrap.servers"),
                servers,
                &format!("{at}.bootstrapServers"),
            );
        }
        for (key, value) in get(c, "config").map(entries).unwrap_or_default() {
            self.set(
                format!("{alias}.{key}"),
                value,
                &format!("{at}.config.{key}"),
            );
        }
        for (key, value) in entries(c) {
            if [
                "groupId",
                "configStorageTopic",
                "offsetStorageTopic",
                "statusStorageTopic",
            ]
            .contains(&key.as_str())
            {
                self.note(&format!("{at}.{key}"), &value, Verdict::ignored("a Kafka Connect topic or group: ferry keeps its state in `__ferry_*` topics on the target"));
            }
        }
        let tls = get(c, "tls");
        let auth = get(c, "authentication");
        let auth_type = auth
            .and_then(|a| get(a, "type"))
            .and_then(scalar)
            .unwrap_or_default();
        let sasl = ["scram-sha-512", "scram-sha-256", "plain", "oauth", "custom"]
            .contains(&auth_type.as_str());
        let protocol = match (tls.is_some(), sasl) {
            (true, true) => Some("SASL_SSL"),
            (true, false) => Some("SSL"),
            (false, true) => Some("SASL_PLAINTEXT"),
            (false, false) => None,
        };
        if let Some(p) = protocol {
            self.set(
                format!("{alias}.security.protocol"),
                p,
                &format!("{at}.tls/authentication"),
            );
        }
        if let Some(tls) = tls {
            self.trusted(alias, tls, &format!("{at}.tls.trustedCertificates"));
        }
        if let Some(auth) = auth {
            self.authentication(alias, auth, &auth_type, &format!("{at}.authentication"));
        }
    }

    fn trusted(&mut self, alias: &str, tls: &Yaml<'_>, at: &str) {
        let certs = get(tls, "trustedCertificates")
            .and_then(Yaml::as_sequence)
            .cloned()
            .unwrap_or_default();
        let files: Vec<String> = certs
            .iter()
            .map(|c| {
                let secret = get(c, "secretName").and_then(scalar).unwrap_or_default();
                let key = get(c, "certificate")
                    .and_then(scalar)
                    .or_else(|| get(c, "pattern").and_then(scalar))
                    .unwrap_or_default();
                (secret, key)
            })
            .map(|(s, k)| format!("Secret {s} key {k}"))
            .collect();
        let Some(first) = certs.first() else {
            return self.note(
                at,
                "",
                Verdict::ignored(
                    "no trusted certificates: ferry checks brokers against the system's roots",
                ),
            );
        };
        let pattern = get(first, "pattern").is_some();
        let path = if certs.len() == 1 && !pattern {
            let secret = get(first, "secretName")
                .and_then(scalar)
                .unwrap_or_default();
            let key = get(first, "certificate")
                .and_then(scalar)
                .unwrap_or_else(|| "ca.crt".into());
            secret_path(alias, &secret, &key)
        } else {
            format!("/etc/ferry/{alias}/ca-bundle.pem")
        };
        self.set(format!("{alias}.ssl.truststore.type"), "PEM", at);
        self.set(
            format!("{alias}.ssl.truststore.location"),
            path.as_str(),
            at,
        );
        let todo = if certs.len() == 1 && !pattern {
            format!(
                "mount {} so that it is {path} (or change ca_file)",
                files.join("")
            )
        } else {
            format!("concatenate {} into {path}", files.join(", "))
        };
        self.note(
            at,
            "",
            Verdict::mapped_todo(format!("clusters.{alias}.tls.ca_file"), todo),
        );
    }

    fn authentication(&mut self, alias: &str, auth: &Yaml<'_>, kind: &str, at: &str) {
        match kind {
            "tls" => {
                let ck = get(auth, "certificateAndKey");
                let field = |k: &str| {
                    ck.and_then(|c| get(c, k))
                        .and_then(scalar)
                        .unwrap_or_default()
                };
                let secret = field("secretName");
                let (cert, key) = (
                    secret_path(alias, &secret, &field("certificate")),
                    secret_path(alias, &secret, &field("key")),
                );
                self.client_certs.push((
                    alias.to_owned(),
                    cert.clone(),
                    key.clone(),
                    format!("{at}.certificateAndKey"),
                ));
                self.note(
                    at,
                    kind,
                    Verdict::mapped_todo(
                        format!("clusters.{alias}.tls.cert_file, clusters.{alias}.tls.key_file"),
                        format!("mount Secret {secret} so that its keys are {cert} and {key}"),
                    ),
                );
            }
            "scram-sha-512" | "scram-sha-256" | "plain" => {
                let mechanism = kind.to_ascii_uppercase();
                let module = if kind == "plain" {
                    "org.apache.kafka.common.security.plain.PlainLoginModule"
                } else {
                    "org.apache.kafka.common.security.scram.ScramLoginModule"
                };
                let user = get(auth, "username").and_then(scalar).unwrap_or_default();
                let ps = get(auth, "passwordSecret");
                let secret = ps
                    .and_then(|p| get(p, "secretName"))
                    .and_then(scalar)
                    .unwrap_or_default();
                let key = ps
                    .and_then(|p| get(p, "password"))
                    .and_then(scalar)
                    .unwrap_or_default();
                self.set(
                    format!("{alias}.sasl.mechanism"),
                    mechanism,
                    &format!("{at}.type"),
                );
                self.set(
                    format!("{alias}.sasl.jaas.config"),
                    format!(
                        "{module} required username=\"{}\";",
                        user.replace('"', "\\\"")
                    ),
                    &format!("{at}.username"),
                );
                self.note(
                    &format!("{at}.passwordSecret"),
                    "",
                    Verdict::mapped_todo(
                        format!("clusters.{alias}.sasl.password"),
                        format!(
                            "set {} from Secret {secret} key {key} (env valueFrom.secretKeyRef)",
                            super::security::password_variable(alias)
                        ),
                    ),
                );
            }
            other => {
                self.set(
                    format!("{alias}.sasl.mechanism"),
                    "OAUTHBEARER",
                    &format!("{at}.type"),
                );
                self.note(at, other, Verdict::error(format!(
                    "authentication type {other:?}: ferry logs in with TLS certificates or SASL PLAIN/SCRAM only (issue 20 tracks OAuth)"
                )));
            }
        }
    }

    fn mirror(&mut self, s: &str, t: &str, m: &Yaml<'_>, at: &str) {
        let flow = format!("{s}->{t}");
        if get(m, "sourceConnector").is_none() {
            return self.note(at, "", Verdict::ignored("no sourceConnector: Strimzi copies no data for this mirror, so no flow is made"));
        }
        self.set(format!("{flow}.enabled"), "true", at);
        for (field, key) in [
            ("topicsPattern", "topics"),
            ("topicsExcludePattern", "topics.exclude"),
            ("topicsBlacklistPattern", "topics.exclude"),
            ("groupsPattern", "groups"),
            ("groupsExcludePattern", "groups.exclude"),
            ("groupsBlacklistPattern", "groups.exclude"),
        ] {
            if let Some(v) = get(m, field).and_then(scalar) {
                self.set(format!("{flow}.{key}"), v, &format!("{at}.{field}"));
            }
        }
        // Strimzi runs the heartbeat connector only when it is specified.
        if get(m, "heartbeatConnector").is_none() {
            self.set(
                format!("{flow}.emit.heartbeats.enabled"),
                "false",
                &format!("{at}.heartbeatConnector (absent)"),
            );
        }
        for connector in [
            "sourceConnector",
            "checkpointConnector",
            "heartbeatConnector",
        ] {
            let Some(c) = get(m, connector) else { continue };
            let cat = format!("{at}.{connector}");
            for (key, value) in entries(c) {
                match key.as_str() {
                    "config" => {}
                    "tasksMax" if connector == "sourceConnector" => {
                        self.set(format!("{flow}.tasks.max"), value, &format!("{cat}.tasksMax"));
                    }
                    _ => self.note(&format!("{cat}.{key}"), &value, Verdict::ignored("a Kafka Connect connector setting: ferry is one process that restarts failed partitions itself")),
                }
            }
            for (key, value) in get(c, "config").map(entries).unwrap_or_default() {
                self.set(
                    format!("{flow}.{key}"),
                    value,
                    &format!("{cat}.config.{key}"),
                );
            }
        }
    }
}

fn get<'a>(y: &'a Yaml<'a>, key: &str) -> Option<&'a Yaml<'a>> {
    match y {
        Yaml::Tagged(_, inner) => get(inner, key),
        Yaml::Mapping(_) => y.as_mapping_get(key),
        _ => None,
    }
}

/// A scalar as text (`-1`, `"false"`, `.*`); `None` for collections and nulls.
fn scalar(y: &Yaml<'_>) -> Option<String> {
    match y {
        Yaml::Value(Scalar::String(s)) => Some(s.to_string()),
        Yaml::Value(Scalar::Integer(i)) => Some(i.to_string()),
        Yaml::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        Yaml::Value(Scalar::FloatingPoint(f)) => Some(f.to_string()),
        Yaml::Representation(s, ..) => Some(s.to_string()),
        Yaml::Tagged(_, inner) => scalar(inner),
        _ => None,
    }
}

/// A mapping's entries with scalar keys, values as text (collections shown
/// as `{…}`/`[…]`).
fn entries(y: &Yaml<'_>) -> Vec<(String, String)> {
    let Some(m) = y.as_mapping() else {
        return Vec::new();
    };
    m.iter()
        .filter_map(|(k, v)| {
            let value = scalar(v).unwrap_or_else(|| match v {
                Yaml::Sequence(_) => "[…]".to_owned(),
                Yaml::Mapping(_) => "{…}".to_owned(),
                _ => String::new(),
            });
            scalar(k).map(|k| (k, value))
        })
        .collect()
}
