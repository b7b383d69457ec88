//! AWS_MSK_IAM through ferry's real connection code against a fake SASL peer
//! (no MSK here): the SaslHandshake names the mechanism, the SaslAuthenticate
//! bytes are the aws-msk-iam-auth JSON payload signed for the broker's host,
//! a new signature is sent at each re-authentication, and web-identity
//! credentials (EKS IRSA) are exchanged with STS over HTTPS first. The
//! signature itself is checked against AWS's SigV4 test vectors and a
//! fixed-clock payload in the unit tests (`sasl::aws`).

use std::time::Duration;

use ferry_client::{AwsMskIam, Connection, ConnectionConfig, SaslConfig};
use ferry_testkit::oidc::IdentityProvider;
use ferry_testkit::sasl_peer::SaslPeer;
use ferry_testkit::secure::Pki;
use ferry_testkit::unique;

const ANSWER: &[u8] = br#"{"version":"2020_10_22","request-id":"ferry-test"}"#;

fn config(iam: AwsMskIam) -> ConnectionConfig {
    ConnectionConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        sasl: Some(SaslConfig::aws_msk_iam(iam)),
        ..ConnectionConfig::default()
    }
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The payload's fields, checked against the aws-msk-iam-auth format.
fn check_payload(bytes: &[u8], access_key: &str, token: &str, secret: &str) {
    let text = String::from_utf8_lossy(bytes);
    println!("{text}");
    assert!(!text.contains(secret), "the secret key is never sent");
    let json: serde_json::Value = serde_json::from_slice(bytes).expect("a JSON payload");
    let field = |k: &str| {
        json.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no {k} in {text}"))
            .to_owned()
    };
    assert_eq!(field("version"), "2020_10_22");
    assert_eq!(field("host"), "127.0.0.1");
    assert_eq!(field("action"), "kafka-cluster:Connect");
    assert_eq!(field("x-amz-algorithm"), "AWS4-HMAC-SHA256");
    assert_eq!(field("x-amz-signedheaders"), "host");
    assert_eq!(field("x-amz-expires"), "900");
    assert!(field("user-agent").starts_with("ferry/"));
    let credential = field("x-amz-credential");
    let date = field("x-amz-date");
    assert!(
        date.len() == 16
            && date.starts_with("20")
            && date.as_bytes()[8] == b'T'
            && date.ends_with('Z'),
        "{date}"
    );
    assert_eq!(
        credential,
        format!(
            "{access_key}/{}/eu-west-1/kafka-cluster/aws4_request",
            &date[..8]
        )
    );
    assert_eq!(field("x-amz-security-token"), token);
    let signature = field("x-amz-signature");
    assert!(
        signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()),
        "{signature}"
    );
}

#[tokio::test]
async fn environment_credentials_sign_each_authentication() {
    let peer = SaslPeer::start("AWS_MSK_IAM", ANSWER, 1500).await;
    let iam = AwsMskIam::new(Some("eu-west-1".to_owned()), None).with_environment(vars(&[
        ("AWS_ACCESS_KEY_ID", "AKIDFERRYTEST"),
        ("AWS_SECRET_ACCESS_KEY", "env-s3cret-key"),
        ("AWS_SESSION_TOKEN", "env-session-token"),
    ]));
    let conn = Connection::connect(&peer.address, &config(iam))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    // Sessions of 1.5 s: re-authenticated on the same connection.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(conn.poisoned().is_none());
    assert_eq!(
        conn.authenticated_as().as_deref(),
        Some("access key AKIDFERRYTEST (environment variables) with AWS_MSK_IAM")
    );
    assert!(conn.reauthentications() >= 1, "re-authenticated");
    let seen = peer.seen();
    assert!(
        seen.mechanisms.iter().all(|m| m == "AWS_MSK_IAM"),
        "{seen:?}"
    );
    assert!(seen.auth_bytes.len() >= 2, "{seen:?}");
    for bytes in &seen.auth_bytes {
        check_payload(
            bytes,
            "AKIDFERRYTEST",
            "env-session-token",
            "env-s3cret-key",
        );
    }
}

#[tokio::test]
async fn web_identity_is_exchanged_with_sts_first() {
    let dir = std::env::temp_dir().join(unique("ferry-msk-iam"));
    let pki = Pki::generate(&dir);
    let sts =
        IdentityProvider::start(&pki.server, "unused", "unused", Duration::from_secs(60)).await;
    let token_file = dir.join("irsa-token");
    std::fs::write(&token_file, "eyJ.projected.token\n").expect("write the token");
    let peer = SaslPeer::start("AWS_MSK_IAM", ANSWER, 0).await;
    let iam = AwsMskIam::new(Some("eu-west-1".to_owned()), None).with_environment(vars(&[
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/ferry"),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            &token_file.display().to_string(),
        ),
        ("AWS_ENDPOINT_URL_STS", &sts.sts_url()),
        ("AWS_CA_BUNDLE", &pki.ca.display().to_string()),
    ]));
    // One config, two connections: they share the STS credentials.
    let config_once = config(iam);
    for _ in 0..2 {
        Connection::connect(&peer.address, &config_once)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
    }
    assert_eq!(sts.tokens_issued(), 1, "STS credentials are cached");
    let seen = peer.seen();
    assert_eq!(seen.auth_bytes.len(), 2);
    for bytes in &seen.auth_bytes {
        check_payload(bytes, "ASIAFERRYTEST", "sts-session-token", "sts-secret");
    }

    // No credentials anywhere: a message that says where ferry looked.
    let none = AwsMskIam::new(Some("eu-west-1".to_owned()), None)
        .with_environment(vars(&[("HOME", "/nonexistent")]));
    let err = Connection::connect(&peer.address, &config(none))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("AWS_ACCESS_KEY_ID") && err.contains("AWS_WEB_IDENTITY_TOKEN_FILE"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
