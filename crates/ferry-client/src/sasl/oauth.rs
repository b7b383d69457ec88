//! `OAUTHBEARER` (RFC 7628, KIP-255, KIP-342 extensions): one client message
//! carrying a bearer token, where the token comes from a file, an environment
//! variable or an OIDC token endpoint ([`super::oidc`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::oidc::OidcClient;
use super::{Failure, Mechanism, Step};
use crate::error::{ClientError, Result};
use crate::secret::Secret;

/// Where OAUTHBEARER tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A file holding the token, read at every authentication, so a token
    /// rotated by another process (a sidecar, a Kubernetes projected volume)
    /// is picked up at the next re-authentication.
    File(PathBuf),
    /// An environment variable holding the token.
    Env(String),
    /// OIDC client credentials: fetched, cached and refreshed before expiry.
    ClientCredentials(Arc<OidcClient>),
}

/// OAUTHBEARER settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// Where tokens come from.
    pub token: TokenSource,
    /// SASL extensions sent with the token (KIP-342), e.g. Confluent Cloud's
    /// `logicalCluster` and `identityPoolId`. Keys are letters only.
    pub extensions: Vec<(String, String)>,
}

/// A token and what ferry knows about it without verifying it.
#[derive(Clone)]
pub(crate) struct Token {
    pub(crate) value: Secret,
    /// The JWT `sub` claim, if the token is a JWT: who the broker will see.
    pub(crate) principal: Option<String>,
    /// When it stops being valid (JWT `exp`, or the endpoint's `expires_in`).
    pub(crate) expires: Option<SystemTime>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("principal", &self.principal)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Reads `sub` and `exp` from a JWT's payload, if it is one (no
    /// signature check: the broker does that; this only names the principal
    /// and refuses to send a token that has visibly expired).
    pub(crate) fn parse(value: Secret) -> Self {
        let claims = value
            .expose()
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p.trim_end_matches('='))
                    .ok()
            })
            .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok());
        let principal = claims
            .as_ref()
            .and_then(|c| c.get("sub"))
            .and_then(|s| s.as_str())
            .map(str::to_owned);
        let expires = claims
            .as_ref()
            .and_then(|c| c.get("exp"))
            .and_then(serde_json::Value::as_u64)
            .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
        Self {
            value,
            principal,
            expires,
        }
    }

    pub(crate) fn expired_at(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

impl OAuthConfig {
    /// The token to send now.
    pub(crate) async fn token(&self) -> Result<Token> {
        let (token, origin) = match &self.token {
            TokenSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ClientError::SaslSetup {
                    reason: format!(
                        "cannot read the OAUTHBEARER token file {}: {e}",
                        path.display()
                    ),
                })?;
                (
                    Token::parse(Secret::new(text.trim())),
                    format!("token file {}", path.display()),
                )
            }
            TokenSource::Env(var) => {
                let value = std::env::var(var).map_err(|_| ClientError::SaslSetup {
                    reason: format!("the OAUTHBEARER token variable {var} is not set"),
                })?;
                (
                    Token::parse(Secret::new(value.trim())),
                    format!("token variable {var}"),
                )
            }
            TokenSource::ClientCredentials(client) => return client.token().await,
        };
        if token.value.is_empty() {
            return Err(ClientError::SaslSetup {
                reason: format!("the OAUTHBEARER {origin} is empty"),
            });
        }
        if token.expired_at(SystemTime::now()) {
            return Err(ClientError::SaslSetup {
                reason: format!(
                    "the OAUTHBEARER token from the {origin} expired at {} (JWT exp); put a fresh token there",
                    seconds(token.expires)
                ),
            });
        }
        Ok(token)
    }

    /// The principal to name in messages before a token is known.
    pub(crate) fn label(&self) -> String {
        match &self.token {
            TokenSource::File(path) => format!("token file {}", path.display()),
            TokenSource::Env(var) => format!("token variable {var}"),
            TokenSource::ClientCredentials(client) => format!("client {}", client.client_id()),
        }
    }
}

fn seconds(t: Option<SystemTime>) -> String {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or_else(
            || "?".to_owned(),
            |d| format!("{} (unix seconds)", d.as_secs()),
        )
}

/// The client's first message (RFC 7628 §3.1, KIP-342):
/// `n,,\x01auth=Bearer <token>\x01key=value\x01...\x01\x01`.
pub(crate) fn first_message(token: &Secret, extensions: &[(String, String)]) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + token.expose().len());
    m.extend_from_slice(b"n,,\x01auth=Bearer ");
    m.extend_from_slice(token.expose().as_bytes());
    m.push(1);
    for (key, value) in extensions {
        m.extend_from_slice(key.as_bytes());
        m.push(b'=');
        m.extend_from_slice(value.as_bytes());
        m.push(1);
    }
    m.push(1);
    m
}

/// Extension keys are letters only (RFC 7628 `key = 1*(ALPHA)`); `auth` is
/// the token's own key. Values may not hold the separator.
pub fn check_extension(key: &str, value: &str) -> std::result::Result<(), String> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!("extension key {key:?} must be letters only"));
    }
    if key == "auth" {
        return Err("extension key \"auth\" is reserved for the token".to_owned());
    }
    if value.chars().any(|c| c == '\x01' || c.is_control()) {
        return Err(format!(
            "extension {key} has a control character in its value"
        ));
    }
    Ok(())
}

/// The broker's error challenge (RFC 7628 §3.2.2), e.g.
/// `{"status":"invalid_token","scope":"...","openid-configuration":"..."}`,
/// as a sentence.
pub(crate) fn describe_server_error(bytes: &[u8]) -> String {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return format!("the broker answered {:?}", String::from_utf8_lossy(bytes));
    };
    let field = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let mut out = format!(
        "the broker refused the token: status {}",
        field("status").unwrap_or_else(|| "?".to_owned())
    );
    if let Some(scope) = field("scope") {
        out.push_str(&format!(", required scope {scope:?}"));
    }
    if let Some(config) = field("openid-configuration") {
        out.push_str(&format!(", openid-configuration {config}"));
    }
    out
}

/// One OAUTHBEARER exchange.
pub(crate) struct OAuthBearer {
    message: Option<Vec<u8>>,
    /// The broker's error challenge, once it sent one.
    server_error: Option<String>,
}

impl OAuthBearer {
    pub(crate) fn new(token: &Token, extensions: &[(String, String)]) -> Self {
        Self {
            message: Some(first_message(&token.value, extensions)),
            server_error: None,
        }
    }
}

impl Mechanism for OAuthBearer {
    fn step(&mut self, server: Option<&[u8]>) -> std::result::Result<Step, Failure> {
        if let Some(message) = self.message.take() {
            return Ok(Step::Send(message));
        }
        match server {
            // Success: the broker's final message is empty.
            None | Some([]) => Ok(Step::Done),
            Some(_) if self.server_error.is_some() => Err(Failure::protocol(
                "the broker sent a second message after its error",
            )),
            Some(challenge) => {
                // RFC 7628 §3.2.3: answer an error with a lone separator; the
                // broker then fails the exchange with an error code.
                self.server_error = Some(describe_server_error(challenge));
                Ok(Step::Send(vec![1]))
            }
        }
    }

    fn server_error(&self) -> Option<String> {
        self.server_error.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", enc(r#"{"alg":"none"}"#), enc(claims))
    }

    #[test]
    fn first_message_per_rfc_7628_with_extensions() {
        let m = first_message(
            &Secret::new("abc.def.ghi"),
            &[
                ("logicalCluster".into(), "lkc-1".into()),
                ("identityPoolId".into(), "pool-2".into()),
            ],
        );
        assert_eq!(
            m,
            b"n,,\x01auth=Bearer abc.def.ghi\x01logicalCluster=lkc-1\x01identityPoolId=pool-2\x01\x01"
        );
        assert_eq!(
            first_message(&Secret::new("t"), &[]),
            b"n,,\x01auth=Bearer t\x01\x01"
        );
    }

    #[test]
    fn extension_keys_are_letters() {
        assert!(check_extension("logicalCluster", "lkc-1").is_ok());
        assert!(check_extension("logical_cluster", "x").is_err());
        assert!(check_extension("auth", "x").is_err());
        assert!(check_extension("a", "x\x01y").is_err());
    }

    #[test]
    fn jwt_claims_name_the_principal_and_expiry() {
        let t = Token::parse(Secret::new(jwt(r#"{"sub":"ferry-app","exp":1700000000}"#)));
        assert_eq!(t.principal.as_deref(), Some("ferry-app"));
        assert_eq!(
            t.expires,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert!(t.expired_at(SystemTime::now()));
        let opaque = Token::parse(Secret::new("opaque-token"));
        assert_eq!(opaque.principal, None);
        assert!(!opaque.expired_at(SystemTime::now()));
        assert!(!format!("{t:?}").contains("eyJ"), "{t:?}");
    }

    #[test]
    fn server_error_is_answered_and_kept() {
        let token = Token::parse(Secret::new("t"));
        let mut m = OAuthBearer::new(&token, &[]);
        assert!(matches!(m.step(None), Ok(Step::Send(_))));
        let challenge = br#"{"status":"invalid_token","scope":"kafka","openid-configuration":"https://idp/.well-known"}"#;
        match m.step(Some(challenge)) {
            Ok(Step::Send(reply)) => assert_eq!(reply, vec![1]),
            _ => panic!("an error challenge is answered with %x01"),
        }
        let said = m.server_error().unwrap_or_default();
        assert!(
            said.contains("invalid_token") && said.contains("kafka"),
            "{said}"
        );

        let mut ok = OAuthBearer::new(&token, &[]);
        let _ = ok.step(None);
        assert!(matches!(ok.step(Some(b"")), Ok(Step::Done)));
    }

    #[tokio::test]
    async fn static_tokens_from_a_file_are_reread_and_expiry_is_refused() {
        let dir = std::env::temp_dir().join(format!("ferry-oauth-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("token");
        let config = OAuthConfig {
            token: TokenSource::File(file.clone()),
            extensions: vec![],
        };
        let later = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 3600;
        let _ = std::fs::write(
            &file,
            jwt(&format!(r#"{{"sub":"one","exp":{later}}}"#)) + "\n",
        );
        let first = config.token().await.ok().and_then(|t| t.principal);
        assert_eq!(first.as_deref(), Some("one"));
        let _ = std::fs::write(&file, jwt(&format!(r#"{{"sub":"two","exp":{later}}}"#)));
        let second = config.token().await.ok().and_then(|t| t.principal);
        assert_eq!(second.as_deref(), Some("two"));
        let _ = std::fs::write(&file, jwt(r#"{"sub":"old","exp":1000}"#));
        let err = config
            .token()
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("expired") && err.contains("token file"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
