//! `security_protocol`, `[clusters.<alias>.tls]` and `[clusters.<alias>.sasl]`:
//! how ferry secures and authenticates its connections to one cluster.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use ferry_client::{
    AwsMskIam, OAuthConfig, OidcClient, Password, SaslConfig, SaslMechanism, Secret, TlsConfig,
    TokenSource, check_extension,
};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::Problem;

/// How connections to a cluster are secured; Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No TLS, no authentication (the default).
    #[default]
    Plaintext,
    /// TLS; with `tls.cert_file`, mutual TLS.
    Ssl,
    /// SASL authentication, no TLS.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether connections use TLS.
    pub fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// The name in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }
}

/// `[clusters.<alias>.tls]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsSettings {
    /// PEM bundle of the CAs that sign the brokers' certificates. Default:
    /// the system's root certificates.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain for mutual TLS; set with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (PKCS#8, RSA or EC; unencrypted).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name broker certificates are checked against, instead of each
    /// broker's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any broker certificate. For tests only; warned about.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Mechanism {
    /// `PLAIN`.
    #[serde(rename = "PLAIN")]
    Plain,
    /// `SCRAM-SHA-256`.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// `SCRAM-SHA-512`.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// `OAUTHBEARER`.
    #[serde(rename = "OAUTHBEARER")]
    OAuthBearer,
    /// `AWS_MSK_IAM`.
    #[serde(rename = "AWS_MSK_IAM")]
    AwsMskIam,
}

impl Mechanism {
    fn client(self) -> SaslMechanism {
        match self {
            Self::Plain => SaslMechanism::Plain,
            Self::ScramSha256 => SaslMechanism::ScramSha256,
            Self::ScramSha512 => SaslMechanism::ScramSha512,
            Self::OAuthBearer => SaslMechanism::OAuthBearer,
            Self::AwsMskIam => SaslMechanism::AwsMskIam,
        }
    }
}

/// `[clusters.<alias>.sasl]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SaslSettings {
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER` or `AWS_MSK_IAM`.
    pub mechanism: Mechanism,
    /// The user ferry logs in as (PLAIN, SCRAM; required for them).
    #[serde(default)]
    pub username: String,
    /// The password (usually `"${VAR}"`); never printed. Set this or
    /// `password_file`.
    #[serde(default, deserialize_with = "deserialize_secret")]
    pub password: Option<Secret>,
    /// A file holding the password, read at every login.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// OAUTHBEARER: a file holding the token, read at every (re-)login.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// OAUTHBEARER: an environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// OAUTHBEARER: the OIDC token endpoint (`https://`), for client
    /// credentials; set `client_id` and `client_secret` (or `_file`) with it.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// OAUTHBEARER: the OIDC client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAUTHBEARER: the OIDC client secret (usually `"${VAR}"`); never printed.
    #[serde(default, deserialize_with = "deserialize_secret")]
    pub client_secret: Option<Secret>,
    /// OAUTHBEARER: a file holding the client secret, read at every fetch.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// OAUTHBEARER: the `scope` asked for. Default: none.
    #[serde(default)]
    pub scope: Option<String>,
    /// OAUTHBEARER: PEM CAs for the token endpoint's certificate. Default:
    /// the cluster's `tls.ca_file`, else the system's roots.
    #[serde(default)]
    pub token_endpoint_ca_file: Option<PathBuf>,
    /// OAUTHBEARER: SASL extensions (KIP-342), e.g. Confluent Cloud's
    /// `logicalCluster` and `identityPoolId`. Default: none.
    #[serde(default)]
    pub extensions: BTreeMap<String, String>,
    /// AWS_MSK_IAM: the cluster's region. Default: `AWS_REGION`, else
    /// `AWS_DEFAULT_REGION`, else the region in the MSK broker host name.
    #[serde(default)]
    pub aws_region: Option<String>,
    /// AWS_MSK_IAM: the shared-credentials profile. Default: `AWS_PROFILE`,
    /// else `default`.
    #[serde(default)]
    pub aws_profile: Option<String>,
}

impl SaslSettings {
    /// SASL settings with an inline password.
    pub fn new(mechanism: Mechanism, username: impl Into<String>, password: Secret) -> Self {
        Self {
            mechanism,
            username: username.into(),
            password: Some(password),
            ..Self::oauth_bearer()
        }
    }

    /// OAUTHBEARER settings with no token source yet.
    pub fn oauth_bearer() -> Self {
        Self {
            mechanism: Mechanism::OAuthBearer,
            username: String::new(),
            password: None,
            password_file: None,
            token_file: None,
            token_env: None,
            token_endpoint: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            scope: None,
            token_endpoint_ca_file: None,
            extensions: BTreeMap::new(),
            aws_region: None,
            aws_profile: None,
        }
    }
}

/// A string as a [`Secret`]. Type errors never quote the value (serde's
/// default message would: "invalid type: integer `1234`").
fn deserialize_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    struct SecretVisitor;
    impl Visitor<'_> for SecretVisitor {
        type Value = Secret;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
            Ok(Secret::new(v))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
            Err(E::custom("expected a string (in quotes)"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
            Err(E::custom("expected a string (in quotes)"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
            Err(E::custom("expected a string (in quotes)"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
            Err(E::custom("expected a string (in quotes)"))
        }
    }
    d.deserialize_str(SecretVisitor).map(Some)
}

/// The client's TLS settings for a cluster (`None`: no TLS).
pub(crate) fn tls_config(
    protocol: SecurityProtocol,
    tls: Option<&TlsSettings>,
) -> Option<TlsConfig> {
    if !protocol.tls() {
        return None;
    }
    let tls = tls.cloned().unwrap_or_default();
    Some(TlsConfig {
        ca_file: tls.ca_file,
        cert_file: tls.cert_file,
        key_file: tls.key_file,
        server_name: tls.server_name,
        insecure_skip_verify: tls.insecure_skip_verify,
    })
}

/// The client's SASL settings for a cluster (`None`: no SASL).
pub(crate) fn sasl_config(
    protocol: SecurityProtocol,
    sasl: Option<&SaslSettings>,
    tls: Option<&TlsSettings>,
) -> Option<SaslConfig> {
    let sasl = sasl.filter(|_| protocol.sasl())?;
    if sasl.mechanism == Mechanism::OAuthBearer {
        return Some(SaslConfig::oauth_bearer(oauth_config(sasl, tls)));
    }
    if sasl.mechanism == Mechanism::AwsMskIam {
        return Some(SaslConfig::aws_msk_iam(AwsMskIam::new(
            sasl.aws_region.clone(),
            sasl.aws_profile.clone(),
        )));
    }
    let password = match (&sasl.password, &sasl.password_file) {
        (_, Some(file)) => Password::File(file.clone()),
        (Some(secret), None) => Password::Value(secret.clone()),
        // Validation refuses this; an empty password fails at the broker.
        (None, None) => Password::Value(Secret::default()),
    };
    Some(SaslConfig::password_based(
        sasl.mechanism.client(),
        sasl.username.clone(),
        password,
    ))
}

fn oauth_config(sasl: &SaslSettings, tls: Option<&TlsSettings>) -> OAuthConfig {
    let token = match (&sasl.token_file, &sasl.token_env, &sasl.token_endpoint) {
        (Some(file), _, _) => TokenSource::File(file.clone()),
        (None, Some(var), _) => TokenSource::Env(var.clone()),
        (None, None, endpoint) => {
            let secret = match (&sasl.client_secret_file, &sasl.client_secret) {
                (Some(file), _) => Password::File(file.clone()),
                (None, Some(secret)) => Password::Value(secret.clone()),
                (None, None) => Password::Value(Secret::default()),
            };
            let ca_file = sasl
                .token_endpoint_ca_file
                .clone()
                .or_else(|| tls.and_then(|t| t.ca_file.clone()));
            TokenSource::ClientCredentials(Arc::new(OidcClient::new(
                endpoint.clone().unwrap_or_default(),
                sasl.client_id.clone().unwrap_or_default(),
                secret,
                sasl.scope.clone(),
                ca_file,
            )))
        }
    };
    OAuthConfig {
        token,
        extensions: sasl
            .extensions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// Checks the OAUTHBEARER fields: exactly one token source, complete.
fn check_oauth(sasl: &SaslSettings, at: &dyn Fn(&str) -> String, p: &mut Vec<Problem>) {
    let sources = [
        sasl.token_file.is_some(),
        sasl.token_env.is_some(),
        sasl.token_endpoint.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        p.push(Problem::new(
            at("sasl"),
            "OAUTHBEARER needs exactly one of token_file, token_env or token_endpoint \
             (with client_id and client_secret)",
        ));
    }
    if !sasl.username.is_empty() || sasl.password.is_some() || sasl.password_file.is_some() {
        p.push(Problem::new(
            at("sasl"),
            "username/password do not apply to OAUTHBEARER; use client_id and client_secret",
        ));
    }
    if let Some(file) = &sasl.token_file {
        if !file.is_file() {
            p.push(Problem::new(
                at("sasl.token_file"),
                format!("{} is not a readable file", file.display()),
            ));
        }
    }
    if sasl.token_env.as_deref().is_some_and(str::is_empty) {
        p.push(Problem::new(at("sasl.token_env"), "must not be empty"));
    }
    if let Some(endpoint) = &sasl.token_endpoint {
        if !endpoint.starts_with("https://") {
            p.push(Problem::new(
                at("sasl.token_endpoint"),
                format!("{endpoint:?} must be an https:// URL"),
            ));
        }
        if sasl.client_id.as_deref().is_none_or(str::is_empty) {
            p.push(Problem::new(
                at("sasl.client_id"),
                "is required with token_endpoint",
            ));
        }
        match (&sasl.client_secret, &sasl.client_secret_file) {
            (Some(_), Some(_)) => p.push(Problem::new(
                at("sasl"),
                "set client_secret or client_secret_file, not both",
            )),
            (None, None) => p.push(Problem::new(
                at("sasl"),
                "set client_secret (e.g. \"${FERRY_CLIENT_SECRET}\") or client_secret_file",
            )),
            (Some(secret), None) if secret.is_empty() => {
                p.push(Problem::new(at("sasl.client_secret"), "must not be empty"));
            }
            (None, Some(file)) if !file.is_file() => p.push(Problem::new(
                at("sasl.client_secret_file"),
                format!("{} is not a readable file", file.display()),
            )),
            _ => {}
        }
        if let Some(file) = &sasl.token_endpoint_ca_file {
            if !file.is_file() {
                p.push(Problem::new(
                    at("sasl.token_endpoint_ca_file"),
                    format!("{} is not a readable file", file.display()),
                ));
            }
        }
    } else if sasl.client_id.is_some()
        || sasl.client_secret.is_some()
        || sasl.client_secret_file.is_some()
        || sasl.scope.is_some()
        || sasl.token_endpoint_ca_file.is_some()
    {
        p.push(Problem::new(
            at("sasl"),
            "client_id, client_secret(_file), scope and token_endpoint_ca_file need token_endpoint",
        ));
    }
    for (key, value) in &sasl.extensions {
        if let Err(why) = check_extension(key, value) {
            p.push(Problem::new(at(&format!("sasl.extensions.{key}")), why));
        }
    }
}

/// Checks that only AWS_MSK_IAM settings use the AWS fields.
fn check_no_aws_fields(sasl: &SaslSettings, at: &dyn Fn(&str) -> String, p: &mut Vec<Problem>) {
    if sasl.aws_region.is_some() || sasl.aws_profile.is_some() {
        p.push(Problem::new(
            at("sasl"),
            "aws_region and aws_profile apply to mechanism \"AWS_MSK_IAM\" only",
        ));
    }
}

/// Checks that only OAUTHBEARER settings use OAUTHBEARER fields.
fn check_no_oauth_fields(sasl: &SaslSettings, at: &dyn Fn(&str) -> String, p: &mut Vec<Problem>) {
    let oauth_set = sasl.token_file.is_some()
        || sasl.token_env.is_some()
        || sasl.token_endpoint.is_some()
        || sasl.client_id.is_some()
        || sasl.client_secret.is_some()
        || sasl.client_secret_file.is_some()
        || sasl.scope.is_some()
        || sasl.token_endpoint_ca_file.is_some()
        || !sasl.extensions.is_empty();
    if oauth_set {
        p.push(Problem::new(
            at("sasl"),
            "token and OIDC settings apply to mechanism \"OAUTHBEARER\" only",
        ));
    }
}

/// Checks the security settings of cluster `alias`.
pub(crate) fn check(
    alias: &str,
    protocol: SecurityProtocol,
    tls: Option<&TlsSettings>,
    sasl: Option<&SaslSettings>,
    p: &mut Vec<Problem>,
) {
    let at = |field: &str| format!("clusters.{alias}.{field}");
    let name = protocol.name();
    match (tls, protocol.tls()) {
        (Some(_), false) => p.push(Problem::new(
            at("tls"),
            format!(
                "TLS settings need security_protocol \"ssl\" or \"sasl_ssl\" (it is \"{name}\")"
            ),
        )),
        (Some(tls), true) => {
            for (field, file) in [
                ("tls.ca_file", &tls.ca_file),
                ("tls.cert_file", &tls.cert_file),
                ("tls.key_file", &tls.key_file),
            ] {
                if let Some(file) = file {
                    if !file.is_file() {
                        p.push(Problem::new(
                            at(field),
                            format!("{} is not a readable file", file.display()),
                        ));
                    }
                }
            }
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                p.push(Problem::new(
                    at("tls"),
                    "set cert_file and key_file together (mutual TLS), or neither",
                ));
            }
            if tls.server_name.as_deref().is_some_and(str::is_empty) {
                p.push(Problem::new(at("tls.server_name"), "must not be empty"));
            }
        }
        (None, _) => {}
    }
    match (sasl, protocol.sasl()) {
        (Some(_), false) => p.push(Problem::new(
            at("sasl"),
            format!(
                "SASL settings need security_protocol \"sasl_plaintext\" or \"sasl_ssl\" \
                 (it is \"{name}\")"
            ),
        )),
        (None, true) => p.push(Problem::new(
            at("sasl"),
            format!(
                "is required with security_protocol \"{name}\": add [clusters.{alias}.sasl] \
                 with mechanism, username and password (or password_file)"
            ),
        )),
        (Some(sasl), true) if sasl.mechanism == Mechanism::OAuthBearer => {
            check_oauth(sasl, &at, p);
            check_no_aws_fields(sasl, &at, p);
        }
        (Some(sasl), true) if sasl.mechanism == Mechanism::AwsMskIam => {
            check_no_oauth_fields(sasl, &at, p);
            if !sasl.username.is_empty() || sasl.password.is_some() || sasl.password_file.is_some()
            {
                p.push(Problem::new(
                    at("sasl"),
                    "username/password do not apply to AWS_MSK_IAM: credentials come from the \
                     AWS environment variables, web identity or the shared credentials file",
                ));
            }
            for (field, value) in [
                ("aws_region", &sasl.aws_region),
                ("aws_profile", &sasl.aws_profile),
            ] {
                if value.as_deref().is_some_and(str::is_empty) {
                    p.push(Problem::new(
                        at(&format!("sasl.{field}")),
                        "must not be empty",
                    ));
                }
            }
        }
        (Some(sasl), true) => {
            check_no_oauth_fields(sasl, &at, p);
            check_no_aws_fields(sasl, &at, p);
            if sasl.username.is_empty() {
                p.push(Problem::new(at("sasl.username"), "must not be empty"));
            }
            match (&sasl.password, &sasl.password_file) {
                (Some(_), Some(_)) => p.push(Problem::new(
                    at("sasl"),
                    "set password or password_file, not both",
                )),
                (None, None) => p.push(Problem::new(
                    at("sasl"),
                    "set password (e.g. \"${FERRY_PASSWORD}\") or password_file",
                )),
                (Some(secret), None) if secret.is_empty() => {
                    p.push(Problem::new(at("sasl.password"), "must not be empty"));
                }
                (None, Some(file)) if !file.is_file() => p.push(Problem::new(
                    at("sasl.password_file"),
                    format!("{} is not a readable file", file.display()),
                )),
                _ => {}
            }
        }
        (None, false) => {}
    }
}

/// Things allowed but risky.
pub(crate) fn warnings(
    alias: &str,
    protocol: SecurityProtocol,
    tls: Option<&TlsSettings>,
    sasl: Option<&SaslSettings>,
    w: &mut Vec<Problem>,
) {
    if protocol.tls() && tls.is_some_and(|t| t.insecure_skip_verify) {
        w.push(Problem::new(
            format!("clusters.{alias}.tls.insecure_skip_verify"),
            "broker certificates are not verified: anyone on the network path can read and \
             change the traffic and collect the credentials. For tests only",
        ));
    }
    if protocol == SecurityProtocol::SaslPlaintext
        && sasl.is_some_and(|s| s.mechanism == Mechanism::Plain)
    {
        w.push(Problem::new(
            format!("clusters.{alias}.sasl.mechanism"),
            "PLAIN over sasl_plaintext sends the password unencrypted; use sasl_ssl or SCRAM",
        ));
    }
}
