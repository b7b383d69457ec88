//! TLS for broker connections, with rustls.
//!
//! [`TlsConfig`] says what to trust and who we are; [`TlsConfig::connector`]
//! turns it into a rustls client config (the files are read then, so a
//! rotated certificate is picked up by the next connection). The broker's
//! certificate is always verified, against the system's roots or the
//! configured CA bundle, unless `insecure_skip_verify` is set, which is for
//! tests only and logged as a warning on every connection.
//!
//! TLS failures become [`ClientError::Tls`] with a sentence that says what
//! went wrong (unknown CA, name mismatch, expired certificate, client
//! certificate refused, not a TLS listener) and what to change.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::error::{ClientError, Result};

/// TLS settings for every connection to one cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file with the CA certificates that may sign the brokers'
    /// certificates. `None`: the system's root certificates.
    pub ca_file: Option<PathBuf>,
    /// PEM file with our certificate chain (leaf first), for mutual TLS.
    /// Set together with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM file with the private key of `cert_file`: PKCS#8
    /// (`BEGIN PRIVATE KEY`), RSA (`BEGIN RSA PRIVATE KEY`) or EC
    /// (`BEGIN EC PRIVATE KEY`), unencrypted.
    pub key_file: Option<PathBuf>,
    /// The name the brokers' certificates are checked against, instead of
    /// the host of each broker's address.
    pub server_name: Option<String>,
    /// Accept any certificate. For tests only: anyone on the path can read
    /// and change the traffic. Logged as a warning on every connection.
    pub insecure_skip_verify: bool,
}

impl TlsConfig {
    /// Reads the configured files and builds the rustls connector.
    pub fn connector(&self) -> Result<tokio_rustls::TlsConnector> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| setup("the TLS provider", e.to_string()))?;
        let builder = if self.insecure_skip_verify {
            tracing::warn!(
                "tls.insecure_skip_verify is set: broker certificates are NOT verified, \
                 anyone on the network path can read and change this traffic. For tests only"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        let config = match (&self.cert_file, &self.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certificates(cert, "tls.cert_file")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    setup(
                        "tls.key_file",
                        format!(
                            "cannot read a private key from {}: {e}; it must be an unencrypted \
                             PEM key (BEGIN PRIVATE KEY, BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY)",
                            key.display()
                        ),
                    )
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    setup(
                        "tls.cert_file / tls.key_file",
                        format!("the key does not fit the certificate: {e}"),
                    )
                })?
            }
            _ => {
                return Err(setup(
                    "tls.cert_file / tls.key_file",
                    "set both (mutual TLS) or neither".to_owned(),
                ));
            }
        };
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }

    /// The name the certificate of the broker at `address` must carry.
    pub(crate) fn server_name(&self, address: &str) -> Result<ServerName<'static>> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => host_of(address).to_owned(),
        };
        ServerName::try_from(name.clone()).map_err(|_| {
            setup(
                "tls.server_name",
                format!("{name:?} is neither a DNS name nor an IP address"),
            )
        })
    }

    fn roots(&self) -> Result<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for cert in read_certificates(path, "tls.ca_file")? {
                    roots.add(cert).map_err(|e| {
                        setup(
                            "tls.ca_file",
                            format!("{} holds an unusable CA certificate: {e}", path.display()),
                        )
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for e in &found.errors {
                    tracing::debug!(error = %e, "skipping an unreadable system root certificate");
                }
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(setup(
                        "tls.ca_file",
                        "no system root certificates were found; set tls.ca_file to the PEM \
                         bundle of the CA that signed the brokers' certificates"
                            .to_owned(),
                    ));
                }
            }
        }
        Ok(roots)
    }
}

fn setup(setting: &str, reason: String) -> ClientError {
    ClientError::TlsSetup {
        setting: setting.to_owned(),
        reason,
    }
}

fn read_certificates(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<std::result::Result<Vec<_>, _>>)
        .map_err(|e| setup(setting, format!("cannot read {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(setup(
            setting,
            format!(
                "{} holds no PEM certificate (BEGIN CERTIFICATE)",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// The host part of `host:port`, without the brackets of an IPv6 address.
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The error for an I/O failure on a TLS connection: a [`ClientError::Tls`]
/// that says what went wrong when rustls knows, else `None` (a plain I/O
/// error). `server_name` is the name the certificate was checked against.
pub(crate) fn classify(broker: &str, server_name: &str, e: &io::Error) -> Option<ClientError> {
    let problem = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(err) => describe(err, server_name),
        None if e.kind() == io::ErrorKind::UnexpectedEof => {
            "the broker closed the connection during the TLS handshake; is this a TLS listener \
             (SSL or SASL_SSL)? For a PLAINTEXT or SASL_PLAINTEXT listener set security_protocol \
             accordingly"
                .to_owned()
        }
        None => return None,
    };
    Some(ClientError::Tls {
        broker: broker.to_owned(),
        problem,
    })
}

fn describe(err: &rustls::Error, server_name: &str) -> String {
    match err {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "the broker's certificate is not signed by a trusted CA (unknown CA); \
                 set tls.ca_file to the PEM bundle of the CA that issued it"
                    .to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                let presented = match c {
                    CertificateError::NotValidForNameContext { presented, .. } => {
                        format!(" (it is valid for {})", presented.join(", "))
                    }
                    _ => String::new(),
                };
                format!(
                    "the broker's certificate is not valid for the name {server_name:?}{presented} \
                     (host name mismatch); connect by a name the certificate lists, or set \
                     tls.server_name to one"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the broker's certificate has expired; renew it on the broker (or check this \
                 machine's clock)"
                    .to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the broker's certificate is not valid yet; check this machine's clock".to_owned()
            }
            other => format!("the broker's certificate was rejected: {other:?}"),
        },
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::BadCertificate
            | AlertDescription::CertificateRequired
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::AccessDenied),
        ) => format!(
            "the broker refused ferry's client certificate (TLS alert {alert:?}); the listener wants \
             mutual TLS: set tls.cert_file and tls.key_file to a certificate signed by a CA in the \
             broker's ssl.truststore"
        ),
        rustls::Error::AlertReceived(alert) => {
            format!("the broker ended the TLS handshake with alert {alert:?}")
        }
        rustls::Error::InvalidMessage(_) => {
            "the broker did not answer in TLS; is this a TLS listener (SSL or SASL_SSL)? For a \
             PLAINTEXT or SASL_PLAINTEXT listener set security_protocol accordingly"
                .to_owned()
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

/// Accepts every certificate (`insecure_skip_verify`); handshake signatures
/// are still checked, so the peer must at least hold the key it presents.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_of("kafka-1.example.com:9093"), "kafka-1.example.com");
        assert_eq!(host_of("[::1]:9093"), "::1");
        assert_eq!(host_of("10.0.0.1:9093"), "10.0.0.1");
    }

    #[test]
    fn server_name_override() {
        let tls = TlsConfig {
            server_name: Some("kafka.internal".into()),
            ..TlsConfig::default()
        };
        let name = tls.server_name("10.0.0.1:9093").ok();
        assert_eq!(
            name.map(|n| n.to_str().into_owned()).as_deref(),
            Some("kafka.internal")
        );
        let ip = TlsConfig::default().server_name("[::1]:9093").ok();
        assert!(matches!(ip, Some(ServerName::IpAddress(_))));
    }

    #[test]
    fn missing_files_name_the_setting() {
        let tls = TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsConfig::default()
        };
        let err = tls
            .connector()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("tls.ca_file") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
        let half = TlsConfig {
            cert_file: Some("/x.pem".into()),
            ..TlsConfig::default()
        };
        let err = half
            .connector()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("both"), "{err}");
    }

    #[test]
    fn messages_say_what_failed() {
        let unknown = describe(
            &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            "h",
        );
        assert!(unknown.contains("unknown CA") && unknown.contains("tls.ca_file"));
        let name = describe(
            &rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
            "wrong.example",
        );
        assert!(name.contains("\"wrong.example\"") && name.contains("mismatch"));
        let expired = describe(
            &rustls::Error::InvalidCertificate(CertificateError::Expired),
            "h",
        );
        assert!(expired.contains("expired"));
    }
}
