//! A tiny OIDC identity provider for tests, over HTTPS: `GET /jwks` serves
//! the public key a broker's `OAuthBearerValidatorCallbackHandler` checks
//! tokens with, and `POST /token` grants client credentials (HTTP Basic) as
//! ES256-signed JWTs with a short life.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The audience every token carries (`sasl.oauthbearer.expected.audience`).
pub const AUDIENCE: &str = "ferry-test";
/// The largest request the provider reads.
const MAX_REQUEST: usize = 64 * 1024;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

struct State {
    key: EcdsaKeyPair,
    client_id: String,
    client_secret: String,
    lifetime: Duration,
    issuer: String,
    tokens_issued: AtomicU64,
    refused: AtomicU64,
}

/// A running provider; it stops when dropped.
pub struct IdentityProvider {
    /// `https://127.0.0.1:<port>`: the issuer (`iss`) and the base URL.
    pub issuer: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl IdentityProvider {
    /// Starts a provider on a free port with the TLS key and certificate
    /// chain in `server_pem` (as [`crate::secure::Pki::server`] writes it),
    /// granting tokens valid for `lifetime` to `client_id`/`client_secret`.
    ///
    /// # Panics
    /// If the key cannot be made or the port bound.
    pub async fn start(
        server_pem: &Path,
        client_id: &str,
        client_secret: &str,
        lifetime: Duration,
    ) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate a key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("read the key");
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(server_pem)
            .expect("read the certificates")
            .collect::<Result<_, _>>()
            .expect("parse the certificates");
        let tls_key = PrivateKeyDer::from_pem_file(server_pem).expect("read the TLS key");
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, tls_key)
        .expect("TLS server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let issuer = format!("https://127.0.0.1:{port}");
        let state = Arc::new(State {
            key,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            lifetime,
            issuer: issuer.clone(),
            tokens_issued: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let served = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let state = Arc::clone(&served);
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        // One request per connection: enough for both clients.
                        if let Some(request) = read_request(&mut tls).await {
                            let (status, body) = state.answer(&request);
                            let response = format!(
                                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = tls.write_all(response.as_bytes()).await;
                            let _ = tls.shutdown().await;
                        }
                    }
                });
            }
        });
        Self {
            issuer,
            state,
            task,
        }
    }

    /// The JWKS URL (`sasl.oauthbearer.jwks.endpoint.url`).
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// The fake AWS STS endpoint (`AWS_ENDPOINT_URL_STS`).
    pub fn sts_url(&self) -> String {
        format!("{}/sts", self.issuer)
    }

    /// The token endpoint URL.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// How many tokens were granted so far.
    pub fn tokens_issued(&self) -> u64 {
        self.state.tokens_issued.load(Ordering::Relaxed)
    }

    /// How many token requests were refused (wrong client or secret).
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::Relaxed)
    }

    /// A token for `subject` that expired `ago`, signed by this provider.
    pub fn expired_token(&self, subject: &str, ago: Duration) -> String {
        let now = unix_now();
        self.state.sign(
            subject,
            now.saturating_sub(ago.as_secs() + 60),
            now.saturating_sub(ago.as_secs()),
        )
    }
}

impl std::fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProvider")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Drop for IdentityProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    body: String,
}

async fn read_request<S: AsyncReadExt + Unpin>(io: &mut S) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = io.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > MAX_REQUEST {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let mut length = 0usize;
    let mut authorization = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authorization" => authorization = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    if length > MAX_REQUEST {
        return None;
    }
    while buf.len() < head_end + length {
        let n = io.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    Some(Request {
        method,
        path,
        authorization,
        body,
    })
}

impl State {
    fn answer(&self, request: &Request) -> (&'static str, String) {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/jwks") => ("200 OK", self.jwks()),
            ("POST", "/token") => self.grant(request),
            ("POST", "/sts") => self.assume_role(request),
            _ => ("404 Not Found", r#"{"error":"not_found"}"#.to_owned()),
        }
    }

    fn jwks(&self) -> String {
        // An uncompressed P-256 point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = self.key.public_key().as_ref();
        format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","use":"sig","alg":"ES256","kid":"ferry-test-key","x":"{}","y":"{}"}}]}}"#,
            b64(&point[1..33]),
            b64(&point[33..65])
        )
    }

    fn grant(&self, request: &Request) -> (&'static str, String) {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.client_id, self.client_secret))
        );
        if request.authorization.as_deref() != Some(expected.as_str()) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return (
                "401 Unauthorized",
                r#"{"error":"invalid_client","error_description":"client authentication failed (test provider)"}"#
                    .to_owned(),
            );
        }
        if !request
            .body
            .split('&')
            .any(|kv| kv == "grant_type=client_credentials")
        {
            return (
                "400 Bad Request",
                r#"{"error":"unsupported_grant_type"}"#.to_owned(),
            );
        }
        let now = unix_now();
        let token = self.sign(&self.client_id, now, now + self.lifetime.as_secs());
        self.tokens_issued.fetch_add(1, Ordering::Relaxed);
        (
            "200 OK",
            format!(
                r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
                self.lifetime.as_secs()
            ),
        )
    }

    /// AWS STS `AssumeRoleWithWebIdentity` (for EKS IRSA tests): grants
    /// fixed temporary credentials (`ASIAFERRYTEST`, session token
    /// `sts-session-token`) for any non-empty web identity token.
    fn assume_role(&self, request: &Request) -> (&'static str, String) {
        let has = |k: &str| {
            request
                .body
                .split('&')
                .any(|kv| kv.starts_with(k) && kv.len() > k.len())
        };
        if !request.body.contains("Action=AssumeRoleWithWebIdentity")
            || !has("WebIdentityToken=")
            || !has("RoleArn=")
        {
            return (
                "400 Bad Request",
                "<ErrorResponse><Error><Code>InvalidParameterValue</Code><Message>missing parameters</Message></Error></ErrorResponse>".to_owned(),
            );
        }
        self.tokens_issued.fetch_add(1, Ordering::Relaxed);
        (
            "200 OK",
            "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
             <AccessKeyId>ASIAFERRYTEST</AccessKeyId><SecretAccessKey>sts-secret</SecretAccessKey>\
             <SessionToken>sts-session-token</SessionToken><Expiration>2100-01-01T00:00:00Z</Expiration>\
             </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
                .to_owned(),
        )
    }

    fn sign(&self, subject: &str, issued_at: u64, expires: u64) -> String {
        let header = b64(r#"{"alg":"ES256","typ":"JWT","kid":"ferry-test-key"}"#);
        let claims = b64(format!(
            r#"{{"iss":"{}","sub":"{subject}","aud":"{AUDIENCE}","iat":{issued_at},"exp":{expires},"scope":"kafka"}}"#,
            self.issuer
        ));
        let signing_input = format!("{header}.{claims}");
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .expect("sign a JWT");
        format!("{signing_input}.{}", b64(signature.as_ref()))
    }
}
