//! `[clusters.<alias>]`: how to reach one Kafka cluster.

use std::time::Duration;

use ferry_client::{ClientConfig, ConnectionConfig};
use serde::Deserialize;

use super::security::{self, SaslSettings, SecurityProtocol, TlsSettings};
use super::units::{ByteSize, deserialize_duration};

/// One Kafka cluster, under its alias (the key of its `[clusters.<alias>]`
/// table). The alias names the cluster in flows and is the prefix of topics
/// mirrored from it with `prefix` naming.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// Brokers to bootstrap from, `host:port` each (IPv6 as `[::1]:9092`).
    /// Required, non-empty. One is enough; more help when one is down.
    pub bootstrap_servers: Vec<String>,
    /// Sent in every request; brokers log it and apply quotas by it.
    /// Default `"ferry"`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// How long a request may wait for its response. Default `30s`, range
    /// 1s..=1h; must be longer than the `fetch_max_wait` of every flow
    /// reading from this cluster.
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub request_timeout: Duration,
    /// How long to wait for a TCP connection. Default `10s`, range 100ms..=10m.
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub connect_timeout: Duration,
    /// Largest response frame accepted from a broker; a larger one closes
    /// the connection before any memory is reserved for it. Default `100MiB`
    /// (Kafka's `socket.request.max.bytes`), range 1MiB..=2GiB-1; must be
    /// larger than the `fetch_max_bytes` of every flow reading from this cluster.
    #[serde(default = "default_max_frame_size")]
    pub max_frame_size: ByteSize,
    /// `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[serde(default)]
    pub security_protocol: SecurityProtocol,
    /// TLS settings, for `ssl` and `sasl_ssl`; without them the brokers'
    /// certificates are checked against the system's roots.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    /// SASL settings, required for `sasl_plaintext` and `sasl_ssl`.
    #[serde(default)]
    pub sasl: Option<SaslSettings>,
}

pub(crate) fn default_client_id() -> String {
    "ferry".to_owned()
}

pub(crate) fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

pub(crate) fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

pub(crate) fn default_max_frame_size() -> ByteSize {
    ByteSize::mib(100)
}

impl ClusterConfig {
    /// A cluster reached through `bootstrap_servers`, every other setting at
    /// its default.
    pub fn new<S: Into<String>>(bootstrap_servers: impl IntoIterator<Item = S>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into_iter().map(Into::into).collect(),
            client_id: default_client_id(),
            request_timeout: default_request_timeout(),
            connect_timeout: default_connect_timeout(),
            max_frame_size: default_max_frame_size(),
            security_protocol: SecurityProtocol::default(),
            tls: None,
            sasl: None,
        }
    }

    /// The client settings for this cluster; anything the config file does
    /// not cover keeps the client's default.
    // The struct update keeps working as the client gains settings (TLS, SASL).
    #[allow(clippy::needless_update)]
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            connection: ConnectionConfig {
                client_id: self.client_id.clone(),
                connect_timeout: self.connect_timeout,
                request_timeout: self.request_timeout,
                max_frame_size: self.max_frame_size.as_usize(),
                tls: security::tls_config(self.security_protocol, self.tls.as_ref()),
                sasl: security::sasl_config(
                    self.security_protocol,
                    self.sasl.as_ref(),
                    self.tls.as_ref(),
                ),
                ..ConnectionConfig::default()
            },
            ..ClientConfig::default()
        }
    }
}

/// Checks one `host:port` bootstrap address; the error says what is wrong.
pub(crate) fn check_address(address: &str) -> Result<(), String> {
    if address.contains(',') {
        return Err(format!(
            "{address:?} holds several addresses: write one \"host:port\" per list entry"
        ));
    }
    if address.trim() != address || address.contains(char::is_whitespace) {
        return Err(format!("{address:?} contains whitespace"));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("{address:?} has no port: expected \"host:port\""));
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("{address:?} has no host: expected \"host:port\""));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "{address:?}: write an IPv6 address in brackets, e.g. \"[::1]:9092\""
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!(
            "{address:?}: the port must be a number from 1 to 65535"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for ok in ["10.0.0.1:9092", "kafka-1.example.com:9093", "[::1]:9092"] {
            assert_eq!(check_address(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("10.0.0.1", "no port"),
            (":9092", "no host"),
            ("a:0", "port"),
            ("a:http", "port"),
            ("a:1,b:2", "several addresses"),
            (" a:1", "whitespace"),
            ("::1:9092", "brackets"),
        ] {
            let err = check_address(bad).err().unwrap_or_default();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn client_config_carries_the_settings() {
        let mut c = ClusterConfig::new(["a:1"]);
        c.client_id = "mirror-7".into();
        c.max_frame_size = ByteSize::mib(8);
        let cc = c.client_config();
        assert_eq!(cc.connection.client_id, "mirror-7");
        assert_eq!(cc.connection.max_frame_size, 8 << 20);
        assert_eq!(cc.connection.request_timeout, Duration::from_secs(30));
    }
}
