//! One HTTPS POST of a form, for the credential endpoints SASL mechanisms
//! need (an OIDC token endpoint, AWS STS): hyper's HTTP/1 client over our
//! rustls connector, the answer capped in size.

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::tls::TlsConfig;

/// The most of an answer read.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// POSTs `form` (`application/x-www-form-urlencoded`) to `url` (`https://`
/// only), trusting `ca_file` (else the system's roots). Returns the status
/// and body, or what went wrong and whether trying again may help.
pub(crate) async fn post_form(
    url: &str,
    ca_file: Option<&Path>,
    authorization: Option<String>,
    form: String,
) -> std::result::Result<(u16, Bytes), (String, bool)> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| (format!("not a URL: {e}"), false))?;
    if uri.scheme_str() != Some("https") {
        return Err(("the URL must be https://".to_owned(), false));
    }
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let tls = TlsConfig {
        ca_file: ca_file.map(Path::to_path_buf),
        ..TlsConfig::default()
    };
    let connector = tls.connector().map_err(|e| (e.to_string(), false))?;
    let name = ServerName::try_from(host.clone())
        .map_err(|_| (format!("{host:?} is not a host name"), false))?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| (format!("cannot connect: {e}"), true))?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| (format!("TLS failed: {e}"), false))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| (format!("HTTP failed: {e}"), true))?;
    let driver = tokio::spawn(connection);
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = hyper::Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    let request = request
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| (format!("cannot build the request: {e}"), false))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| (format!("HTTP failed: {e}"), true))?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| {
            (
                format!("cannot read the answer (at most {MAX_RESPONSE_BYTES} bytes): {e}"),
                true,
            )
        })?
        .to_bytes();
    driver.abort();
    Ok((status, body))
}
