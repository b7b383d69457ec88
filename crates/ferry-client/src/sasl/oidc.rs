//! OIDC client credentials (RFC 6749 §4.4): POST to the token endpoint over
//! HTTPS, cache the access token, fetch a new one once 80% of its lifetime
//! has passed (so every re-authentication, scheduled at 85% of a session that
//! ends with the token, sends a fresh one).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;

use super::oauth::Token;
use super::{Password, https};
use crate::error::{ClientError, Result};
use crate::secret::Secret;

/// How long one token request may take, connect to last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Fetch a new token once this share of the current one's life has passed.
const REFRESH_AT: f64 = 0.8;

/// An OIDC client-credentials client with its token cache.
pub struct OidcClient {
    endpoint: String,
    client_id: String,
    client_secret: Password,
    scope: Option<String>,
    ca_file: Option<PathBuf>,
    cached: Mutex<Option<Cached>>,
}

#[derive(Clone)]
struct Cached {
    token: Token,
    refresh_at: SystemTime,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl PartialEq for OidcClient {
    fn eq(&self, other: &Self) -> bool {
        self.endpoint == other.endpoint
            && self.client_id == other.client_id
            && self.client_secret == other.client_secret
            && self.scope == other.scope
            && self.ca_file == other.ca_file
    }
}

impl Eq for OidcClient {}

impl OidcClient {
    /// A client for `endpoint` (an `https://` URL). `ca_file`: the CAs that
    /// may sign the endpoint's certificate; `None`: the system's roots.
    pub fn new(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Password,
        scope: Option<String>,
        ca_file: Option<PathBuf>,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            client_secret,
            scope,
            ca_file,
            cached: Mutex::new(None),
        }
    }

    /// The client id (not secret; names the client in messages).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The token endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Gets a token (or uses the cached one) and returns who it names (the
    /// JWT `sub`, if the token is a JWT): checks the endpoint, the client
    /// and its secret without a broker.
    pub async fn principal(&self) -> Result<Option<String>> {
        Ok(self.token().await?.principal)
    }

    /// A valid token: the cached one while it is young enough, else a new one.
    pub(crate) async fn token(&self) -> Result<Token> {
        let now = SystemTime::now();
        let cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(c) = cached.filter(|c| now < c.refresh_at) {
            return Ok(c.token);
        }
        let fetched_at = SystemTime::now();
        let token = self.fetch().await?;
        let lifetime = token
            .expires
            .and_then(|e| e.duration_since(fetched_at).ok())
            .unwrap_or_default();
        let cached = Cached {
            refresh_at: fetched_at + lifetime.mul_f64(REFRESH_AT),
            token: token.clone(),
        };
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cached);
        tracing::debug!(endpoint = %self.endpoint, client_id = %self.client_id, ?lifetime, "fetched an OAUTHBEARER token");
        Ok(token)
    }

    fn error(&self, detail: impl Into<String>, retriable: bool) -> ClientError {
        ClientError::TokenEndpoint {
            endpoint: self.endpoint.clone(),
            client_id: self.client_id.clone(),
            detail: detail.into(),
            retriable,
        }
    }

    fn secret(&self) -> Result<Secret> {
        self.client_secret.read("client_secret_file")
    }

    async fn fetch(&self) -> Result<Token> {
        let secret = self.secret()?;
        let form = form_body(self.scope.as_deref());
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                form_encode(&self.client_id),
                form_encode(secret.expose())
            ))
        );
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, self.post(form, basic))
            .await
            .map_err(|_| self.error(format!("no answer within {REQUEST_TIMEOUT:?}"), true))??;
        let fetched_at = SystemTime::now();
        parse_token_response(status, &body, fetched_at)
            .map_err(|(detail, retriable)| self.error(detail, retriable))
    }

    async fn post(&self, form: String, authorization: String) -> Result<(u16, Bytes)> {
        https::post_form(
            &self.endpoint,
            self.ca_file.as_deref(),
            Some(authorization),
            form,
        )
        .await
        .map_err(|(detail, retriable)| self.error(detail, retriable))
    }
}

/// `grant_type=client_credentials[&scope=...]`.
fn form_body(scope: Option<&str>) -> String {
    let mut form = "grant_type=client_credentials".to_owned();
    if let Some(scope) = scope.filter(|s| !s.is_empty()) {
        form.push_str("&scope=");
        form.push_str(&form_encode(scope));
    }
    form
}

/// `application/x-www-form-urlencoded` (RFC 6749 appendix B).
pub(crate) fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The token from a 200 answer, or what the endpoint said and whether
/// asking again may help (5xx and 429 may; 4xx means the settings are wrong).
fn parse_token_response(
    status: u16,
    body: &[u8],
    fetched_at: SystemTime,
) -> std::result::Result<Token, (String, bool)> {
    let json = serde_json::from_slice::<serde_json::Value>(body).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(|v| v.as_str())
    };
    if status != 200 {
        let retriable = status >= 500 || status == 429;
        let said = match (field("error"), field("error_description")) {
            (Some(e), Some(d)) => format!("{e}: {d}"),
            (Some(e), None) => e.to_owned(),
            _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        };
        return Err((format!("HTTP {status}: {said}"), retriable));
    }
    let Some(access_token) = field("access_token").filter(|t| !t.is_empty()) else {
        return Err(("the answer has no access_token".to_owned(), false));
    };
    let mut token = Token::parse(Secret::new(access_token));
    let expires_in = json
        .as_ref()
        .and_then(|j| j.get("expires_in"))
        .and_then(serde_json::Value::as_u64);
    if let Some(secs) = expires_in {
        let by_endpoint = fetched_at + Duration::from_secs(secs);
        token.expires = Some(token.expires.map_or(by_endpoint, |e| e.min(by_endpoint)));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(
            form_body(Some("kafka read")),
            "grant_type=client_credentials&scope=kafka+read"
        );
        assert_eq!(form_body(None), "grant_type=client_credentials");
    }

    #[test]
    fn token_answers() {
        let now = SystemTime::now();
        let ok = parse_token_response(
            200,
            br#"{"access_token":"opaque","token_type":"Bearer","expires_in":20}"#,
            now,
        );
        let token = ok.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(token.value.expose(), "opaque");
        assert_eq!(token.expires, Some(now + Duration::from_secs(20)));

        let (said, retriable) = parse_token_response(
            401,
            br#"{"error":"invalid_client","error_description":"bad secret"}"#,
            now,
        )
        .err()
        .unwrap_or_default();
        assert_eq!(said, "HTTP 401: invalid_client: bad secret");
        assert!(!retriable);
        let (_, retriable) = parse_token_response(503, b"busy", now)
            .err()
            .unwrap_or_default();
        assert!(retriable);
        assert!(parse_token_response(200, b"{}", now).is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = OidcClient::new(
            "https://idp/token",
            "app",
            Password::Value(Secret::new("hunter2")),
            None,
            None,
        );
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
