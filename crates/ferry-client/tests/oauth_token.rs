//! OIDC client credentials against the test identity provider (HTTPS with
//! its own CA, no broker): the token is fetched once and cached, and a wrong
//! secret fails with the endpoint's own error, never showing the secret.

use std::time::Duration;

use ferry_client::{OidcClient, Password, Secret};
use ferry_testkit::oidc::IdentityProvider;
use ferry_testkit::secure::Pki;
use ferry_testkit::unique;

#[tokio::test]
async fn client_credentials_are_cached_and_refusals_are_named() {
    let dir = std::env::temp_dir().join(unique("ferry-oauth-token"));
    let pki = Pki::generate(&dir);
    let idp = IdentityProvider::start(
        &pki.server,
        "ferry-app",
        "right-s3cret",
        Duration::from_secs(20),
    )
    .await;
    let client = |secret: &str, ca: Option<std::path::PathBuf>| {
        OidcClient::new(
            idp.token_url(),
            "ferry-app",
            Password::Value(Secret::new(secret)),
            Some("kafka".to_owned()),
            ca,
        )
    };

    let good = client("right-s3cret", Some(pki.ca.clone()));
    for _ in 0..3 {
        let who = good.principal().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(who.as_deref(), Some("ferry-app"));
    }
    assert_eq!(idp.tokens_issued(), 1, "a young token is reused");

    let bad = client("wrong-s3cret", Some(pki.ca.clone()));
    let err = bad
        .principal()
        .await
        .expect_err("a wrong secret is refused");
    let message = err.to_string();
    println!("{message}");
    assert!(
        message.contains(&idp.token_url())
            && message.contains("HTTP 401")
            && message.contains("invalid_client"),
        "{message}"
    );
    assert!(!err.is_retriable(), "a refused client is not retried");
    for shown in [message.clone(), format!("{err:?}"), format!("{bad:?}")] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    // Without the test CA the endpoint's certificate is not trusted.
    let untrusted = client("right-s3cret", None);
    let message = untrusted
        .principal()
        .await
        .expect_err("an unknown CA is refused")
        .to_string();
    assert!(message.contains("TLS"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}
