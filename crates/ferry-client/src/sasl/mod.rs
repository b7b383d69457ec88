//! SASL authentication (SaslHandshake v1 + SaslAuthenticate, KIP-152) with
//! PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER, and re-authentication
//! before the session the broker granted runs out (KIP-368).
//!
//! A mechanism is a small state machine ([`Mechanism`]): given the broker's
//! last message (none at first) it produces the next message or says it is
//! done. The exchange around it ([`authenticate`]) is the same for every
//! mechanism; OAUTHBEARER's token is obtained (possibly over HTTPS) before
//! its exchange starts, so the state machines stay free of I/O.

mod aws;
mod https;
mod oauth;
mod oidc;
mod scram;

pub use aws::{AwsCredentials, AwsMskIam};
pub use oauth::{OAuthConfig, TokenSource, check_extension};
pub use oidc::OidcClient;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;

use crate::connection::{decode_bounded, encode_request};
use crate::error::{ClientError, KafkaCode, Result};
use crate::secret::Secret;
use crate::versions::BrokerVersions;
use ferry_wire::responses::sasl::{
    decode_sasl_authenticate_response, decode_sasl_handshake_response,
};

/// A SASL mechanism ferry speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaslMechanism {
    /// `PLAIN`: username and password in the clear; use it over TLS only.
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `OAUTHBEARER`: a bearer token (RFC 7628, KIP-255).
    OAuthBearer,
    /// `AWS_MSK_IAM`: Amazon MSK's IAM access control (a SigV4 signature).
    AwsMskIam,
}

impl SaslMechanism {
    /// The name Kafka knows it by (`sasl.enabled.mechanisms`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OAuthBearer => "OAUTHBEARER",
            Self::AwsMskIam => "AWS_MSK_IAM",
        }
    }
}

/// Where the password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    /// The password itself.
    Value(Secret),
    /// A file holding the password (one trailing newline is ignored). It is
    /// read at every authentication, so a rotated password is picked up.
    File(PathBuf),
}

impl Password {
    /// The value; a file is read now. `setting` names it in errors.
    pub(crate) fn read(&self, setting: &str) -> Result<Secret> {
        match self {
            Password::Value(secret) => Ok(secret.clone()),
            Password::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ClientError::SaslSetup {
                    reason: format!("cannot read the {setting} {}: {e}", path.display()),
                })?;
                let value = text
                    .strip_suffix('\n')
                    .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
                Ok(Secret::new(value))
            }
        }
    }
}

/// SASL settings for every connection to one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslConfig {
    /// The mechanism; it must be in the listener's `sasl.enabled.mechanisms`.
    pub mechanism: SaslMechanism,
    /// The user to log in as (PLAIN, SCRAM).
    pub username: String,
    /// The user's password (PLAIN, SCRAM).
    pub password: Password,
    /// Where tokens come from (OAUTHBEARER; required for it).
    pub oauth: Option<OAuthConfig>,
    /// Region and credentials (AWS_MSK_IAM; required for it).
    pub aws: Option<Arc<AwsMskIam>>,
}

impl SaslConfig {
    /// PLAIN or SCRAM settings.
    pub fn password_based(
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: Password,
    ) -> Self {
        Self {
            mechanism,
            username: username.into(),
            password,
            oauth: None,
            aws: None,
        }
    }

    /// OAUTHBEARER settings.
    pub fn oauth_bearer(oauth: OAuthConfig) -> Self {
        Self {
            mechanism: SaslMechanism::OAuthBearer,
            username: String::new(),
            password: Password::Value(Secret::default()),
            oauth: Some(oauth),
            aws: None,
        }
    }

    /// AWS_MSK_IAM settings.
    pub fn aws_msk_iam(aws: AwsMskIam) -> Self {
        Self {
            mechanism: SaslMechanism::AwsMskIam,
            username: String::new(),
            password: Password::Value(Secret::default()),
            oauth: None,
            aws: Some(Arc::new(aws)),
        }
    }

    fn password(&self) -> Result<Secret> {
        self.password.read("password file")
    }

    /// Who ferry authenticates as, for messages (never a secret).
    pub fn principal(&self) -> String {
        match (&self.mechanism, &self.oauth) {
            (SaslMechanism::OAuthBearer, Some(oauth)) => oauth.label(),
            (SaslMechanism::AwsMskIam, _) => "AWS credentials".to_owned(),
            _ => self.username.clone(),
        }
    }

    fn session(&self, password: Secret) -> Result<Box<dyn Mechanism>> {
        let scram = |hash| {
            scram::Scram::new(hash, &self.username, password.clone())
                .map(|s| Box::new(s) as Box<dyn Mechanism>)
                .map_err(|f| ClientError::SaslSetup { reason: f.detail })
        };
        match self.mechanism {
            SaslMechanism::Plain => Ok(Box::new(Plain {
                username: self.username.clone(),
                password,
                sent: false,
            })),
            SaslMechanism::ScramSha256 => scram(scram::Hash::Sha256),
            SaslMechanism::ScramSha512 => scram(scram::Hash::Sha512),
            SaslMechanism::OAuthBearer | SaslMechanism::AwsMskIam => Err(ClientError::SaslSetup {
                reason: format!("{} needs its own settings", self.mechanism.name()),
            }),
        }
    }

    /// The mechanism's state machine for one exchange, with the credential
    /// it needs fetched first; also returns the principal to name in errors.
    async fn start(&self, broker: &str) -> Result<(Box<dyn Mechanism>, String)> {
        if let (SaslMechanism::AwsMskIam, Some(aws)) = (&self.mechanism, &self.aws) {
            let env = |name: &str| aws.var(name);
            let host = broker
                .rsplit_once(':')
                .map_or(broker, |(host, _)| host)
                .trim_matches(['[', ']']);
            let region = aws.region_for(host, &env)?;
            let creds = aws.credentials(&region, &env).await?;
            let principal = format!("access key {} ({})", creds.access_key_id, creds.source);
            let payload = aws::payload(host, &region, &creds, aws::now_unix(), &aws::user_agent());
            return Ok((Box::new(aws::MskIam::new(payload)), principal));
        }
        match (&self.mechanism, &self.oauth) {
            (SaslMechanism::OAuthBearer, Some(oauth)) => {
                let token = oauth.token().await?;
                let principal = token.principal.clone().unwrap_or_else(|| oauth.label());
                Ok((
                    Box::new(oauth::OAuthBearer::new(&token, &oauth.extensions)),
                    principal,
                ))
            }
            _ => Ok((self.session(self.password()?)?, self.username.clone())),
        }
    }
}

/// What a mechanism does next.
pub(crate) enum Step {
    /// Send these bytes in a SaslAuthenticate request.
    Send(Vec<u8>),
    /// Authenticated.
    Done,
}

/// Why a mechanism gave up.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The broker refused the credentials (as opposed to a protocol problem).
    rejected: bool,
    detail: String,
}

impl Failure {
    fn rejected(detail: impl Into<String>) -> Self {
        Self {
            rejected: true,
            detail: detail.into(),
        }
    }

    fn protocol(detail: impl Into<String>) -> Self {
        Self {
            rejected: false,
            detail: detail.into(),
        }
    }

    fn local(detail: impl Into<String>) -> Self {
        Self::protocol(detail)
    }
}

/// One authentication's client side.
pub(crate) trait Mechanism: Send {
    /// The next message, given the broker's last one (`None` before the first).
    fn step(&mut self, server: Option<&[u8]>) -> std::result::Result<Step, Failure>;

    /// What the broker said in an error challenge, if the mechanism has them.
    fn server_error(&self) -> Option<String> {
        None
    }
}

/// `PLAIN` (RFC 4616): `authzid NUL authcid NUL passwd`, no authzid.
struct Plain {
    username: String,
    password: Secret,
    sent: bool,
}

impl Mechanism for Plain {
    fn step(&mut self, _server: Option<&[u8]>) -> std::result::Result<Step, Failure> {
        if self.sent {
            return Ok(Step::Done);
        }
        self.sent = true;
        let mut message =
            Vec::with_capacity(2 + self.username.len() + self.password.expose().len());
        message.push(0);
        message.extend_from_slice(self.username.as_bytes());
        message.push(0);
        message.extend_from_slice(self.password.expose().as_bytes());
        Ok(Step::Send(message))
    }
}

/// Sends one request and returns its response body (header stripped). The
/// connection implements it for the first authentication, the writer task
/// for re-authentication (when nothing else may be sent in between).
pub(crate) trait Transport {
    async fn round_trip(&mut self, api: ApiKey, version: i16, body: Bytes) -> Result<Bytes>;
}

/// A cluster's SASL settings plus the versions one broker speaks.
#[derive(Debug, Clone)]
pub(crate) struct Authenticator {
    config: SaslConfig,
    handshake_version: i16,
    authenticate_version: i16,
}

impl Authenticator {
    pub(crate) fn new(config: &SaslConfig, versions: &BrokerVersions) -> Result<Self> {
        Ok(Self {
            config: config.clone(),
            // v0 means the SASL tokens follow as raw frames, without
            // SaslAuthenticate (and so without session lifetimes); ferry
            // only speaks the framed form, v1 (KIP-152, Kafka 1.0+).
            handshake_version: versions.pick(
                ApiKey::SaslHandshake,
                kafka_protocol::protocol::VersionRange { min: 1, max: 1 },
            )?,
            authenticate_version: versions.version_for::<SaslAuthenticateRequest>()?,
        })
    }
}

/// Runs one SASL authentication.
pub(crate) async fn authenticate<T: Transport>(
    transport: &mut T,
    broker: &str,
    auth: &Authenticator,
) -> Result<Authenticated> {
    let config = &auth.config;
    let mechanism = config.mechanism.name();
    let version = auth.handshake_version;
    let request =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    let body = encode_request(&request, ApiKey::SaslHandshake, version, broker)?;
    let reply = transport
        .round_trip(ApiKey::SaslHandshake, version, body)
        .await?;
    let response = decode_bounded(
        reply,
        ApiKey::SaslHandshake,
        version,
        broker,
        decode_sasl_handshake_response,
    )?;
    if let Some(code) = KafkaCode::from_code(response.error_code) {
        let enabled = response.mechanisms;
        return Err(match code {
            KafkaCode::UNSUPPORTED_SASL_MECHANISM | KafkaCode::ILLEGAL_SASL_STATE => {
                ClientError::SaslMechanismNotEnabled {
                    broker: broker.to_owned(),
                    mechanism,
                    enabled,
                }
            }
            code => ClientError::Kafka {
                broker: broker.to_owned(),
                api: ApiKey::SaslHandshake,
                code,
                context: format!(" for mechanism {mechanism}"),
            },
        });
    }

    let (mut session, principal) = config.start(broker).await?;
    let failed = |f: Failure| {
        if f.rejected {
            ClientError::SaslAuthentication {
                broker: broker.to_owned(),
                mechanism,
                username: principal.clone(),
                detail: f.detail,
            }
        } else {
            ClientError::SaslProtocol {
                broker: broker.to_owned(),
                mechanism,
                detail: f.detail,
            }
        }
    };
    let mut server: Option<Bytes> = None;
    let mut lifetime_ms = 0i64;
    let version = auth.authenticate_version;
    loop {
        let message = match session.step(server.as_deref()).map_err(failed)? {
            Step::Done => break,
            Step::Send(message) => message,
        };
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
        let body = encode_request(&request, ApiKey::SaslAuthenticate, version, broker)?;
        let reply = transport
            .round_trip(ApiKey::SaslAuthenticate, version, body)
            .await?;
        let response = decode_bounded(
            reply,
            ApiKey::SaslAuthenticate,
            version,
            broker,
            decode_sasl_authenticate_response,
        )?;
        if let Some(code) = KafkaCode::from_code(response.error_code) {
            let said = response
                .error_message
                .as_ref()
                .map_or_else(|| code.to_string(), ToString::to_string);
            // The broker's message for a refused token is its challenge's
            // raw JSON: the decoded challenge says the same, readably.
            let said = session.server_error().unwrap_or(said);
            return Err(failed(if code == KafkaCode::SASL_AUTHENTICATION_FAILED {
                Failure::rejected(said)
            } else {
                Failure::protocol(format!("{code}: {said}"))
            }));
        }
        lifetime_ms = response.session_lifetime_ms;
        server = Some(response.auth_bytes);
    }
    tracing::debug!(broker, mechanism, %principal, lifetime_ms, "authenticated");
    Ok(Authenticated {
        lifetime: u64::try_from(lifetime_ms)
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis),
        principal: format!("{principal} with {mechanism}"),
    })
}

/// What one authentication established.
pub(crate) struct Authenticated {
    /// The session lifetime the broker granted (`connections.max.reauth.ms`,
    /// or the token's remaining life), if it set one.
    pub(crate) lifetime: Option<Duration>,
    /// Who ferry authenticated as and how, e.g. `ferry-app with OAUTHBEARER`
    /// (never a secret).
    pub(crate) principal: String,
}

/// The share of a session kept in reserve at least (Kafka's own clients
/// re-authenticate between 85% and 95% of it).
const MIN_MARGIN: f64 = 0.15;
/// The most of a session kept in reserve: even with long requests in
/// flight, a session is used for a quarter of its life before the next
/// re-authentication, so a slow broker cannot cause a re-authentication storm.
const MAX_MARGIN: f64 = 0.75;
/// Allowance for the network and the broker's own handling of the
/// SaslHandshake, on top of the requests queued before it.
const SLACK: Duration = Duration::from_millis(100);

/// When to start re-authenticating a session that the broker ends at
/// `expires` (lasting `lifetime`), when `in_flight` requests will be ahead
/// of the SaslHandshake, each holding the connection for up to
/// `longest_request` (a 500 ms long-poll Fetch holds it 500 ms: the broker
/// reads a connection's next request only after answering the previous
/// one, and closes the connection if that next request comes after the
/// session ended, even when it is the SaslHandshake).
///
/// The margin is the larger of 15% of the session and the time those
/// requests take plus [`SLACK`], capped at 75% of the session.
pub(crate) fn reauth_at(
    expires: Instant,
    lifetime: Duration,
    in_flight: usize,
    longest_request: Duration,
) -> Instant {
    let queued = longest_request.saturating_mul(u32::try_from(in_flight).unwrap_or(u32::MAX));
    let margin = lifetime
        .mul_f64(MIN_MARGIN)
        .max(queued.saturating_add(SLACK))
        .min(lifetime.mul_f64(MAX_MARGIN));
    expires.checked_sub(margin).unwrap_or(expires)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_message() {
        let mut p = Plain {
            username: "ferry".into(),
            password: Secret::new("pw"),
            sent: false,
        };
        match p.step(None) {
            Ok(Step::Send(m)) => assert_eq!(m, b"\0ferry\0pw"),
            _ => panic!("PLAIN sends one message"),
        }
        assert!(matches!(p.step(Some(b"")), Ok(Step::Done)));
    }

    #[test]
    fn password_files_lose_one_newline() {
        let dir = std::env::temp_dir().join(format!("ferry-sasl-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("pw");
        let _ = std::fs::write(&file, "s3cret\n");
        let config =
            SaslConfig::password_based(SaslMechanism::Plain, "u", Password::File(file.clone()));
        assert_eq!(
            config.password().ok().as_ref().map(Secret::expose),
            Some("s3cret")
        );
        let missing = SaslConfig {
            password: Password::File(dir.join("nope")),
            ..config
        };
        let err = missing
            .password()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("password file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reauth_before_expiry() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let ms = Duration::from_millis;
        // Idle, or short requests: 85% of the session, as Kafka's clients.
        assert_eq!(
            reauth_at(t0 + secs(100), secs(100), 0, ms(0)),
            t0 + secs(85)
        );
        assert_eq!(
            reauth_at(t0 + secs(100), secs(100), 3, ms(200)),
            t0 + secs(85)
        );
        // Issue 14 item 17: a 3 s session with two 500 ms long polls ahead
        // of the handshake. 85% (2.55 s) leaves 450 ms, less than one poll;
        // the margin covers both polls and the slack.
        assert_eq!(reauth_at(t0 + secs(3), secs(3), 2, ms(500)), t0 + ms(1900));
        // Never earlier than a quarter into the session.
        assert_eq!(reauth_at(t0 + secs(3), secs(3), 64, ms(500)), t0 + ms(750));
        assert_eq!(
            reauth_at(t0 + secs(3), secs(3), usize::MAX, Duration::MAX),
            t0 + ms(750)
        );
    }
}
