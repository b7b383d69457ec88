//! `ferry run` and `ferry check` through a SASL_SSL listener that takes
//! OAUTHBEARER tokens validated by the broker's own JWT validator
//! (`OAuthBearerValidatorCallbackHandler`), with the JWKS and the token
//! endpoint served over HTTPS by the test's identity provider, tokens living
//! 20 s. ferry fetches tokens with client credentials, re-authenticates on
//! the same connections as they expire, and mirrors with no loss and no
//! duplicates; a wrong client secret makes `ferry check` exit non-zero
//! naming the token endpoint's error; an expired static token is refused
//! with a clear message.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Background, client, compare, create, unique, wait_caught_up};
use ferry_testkit::oidc::{AUDIENCE, IdentityProvider};
use ferry_testkit::secure::{Pki, SecureCluster, can_start_clusters};

const CLIENT_ID: &str = "ferry-app";
const TOKEN_LIFETIME: Duration = Duration::from_secs(20);

fn write_config(
    dir: &Path,
    name: &str,
    src: &str,
    dst: &str,
    sasl: &str,
    ca: &Path,
    pattern: &str,
) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[clusters.src]
bootstrap_servers = ["{src}"]
security_protocol = "sasl_ssl"
[clusters.src.tls]
ca_file = "{ca}"
[clusters.src.sasl]
mechanism = "OAUTHBEARER"
{sasl}

[clusters.dst]
bootstrap_servers = ["{dst}"]

[[flows]]
name = "{name}"
source = "src"
target = "dst"
topics = ["{pattern}"]
discovery_interval = "1s"
[flows.tuning]
checkpoint_interval = "500ms"
memory_budget = "64MiB"
"#,
            ca = ca.display(),
        ),
    )
    .unwrap();
    path
}

fn client_credentials(idp: &IdentityProvider, secret_file: &Path) -> String {
    format!(
        "token_endpoint = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{}\"\nscope = \"kafka\"\n\
         [clusters.src.sasl.extensions]\ntraceId = \"ferryTest\"\n",
        idp.token_url(),
        secret_file.display()
    )
}

fn ferry_check(config: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["check", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("ferry check:\n{text}");
    (out.status.code(), text)
}

fn ferry_run(config: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info,ferry_client::connection=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_mirror_reauthenticates_with_fresh_tokens() {
    if !can_start_clusters() {
        return;
    }
    let dir = std::env::temp_dir().join(unique("ferry-oauth-mirror"));
    let pki = Pki::generate(&dir);
    let secret = format!("Cl13nt-{}-s3cret", std::process::id());
    let idp = IdentityProvider::start(&pki.server, CLIENT_ID, &secret, TOKEN_LIFETIME).await;
    let jaas = format!(
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
         unsecuredLoginStringClaim_sub=\"broker\" \
         ssl.truststore.type=\"PEM\" ssl.truststore.location=\"{}\";",
        pki.ca.display()
    );
    let overrides = [
        "listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER".to_owned(),
        format!("listener.name.oauth.oauthbearer.sasl.jaas.config={jaas}"),
        "listener.name.oauth.oauthbearer.sasl.server.callback.handler.class=\
         org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
            .to_owned(),
        format!("sasl.oauthbearer.jwks.endpoint.url={}", idp.jwks_url()),
        format!("sasl.oauthbearer.expected.audience={AUDIENCE}"),
        format!("sasl.oauthbearer.expected.issuer={}", idp.issuer),
        // Sessions end with the token (20 s), well before this.
        "connections.max.reauth.ms=600000".to_owned(),
        "listener.name.oauth.ssl.keystore.type=PEM".to_owned(),
        format!(
            "listener.name.oauth.ssl.keystore.location={}",
            pki.server.display()
        ),
    ];
    let jvm = [format!(
        "org.apache.kafka.sasl.oauthbearer.allowed.urls={}",
        idp.jwks_url()
    )];
    let cluster = SecureCluster::start_with_jvm_props(
        &unique("cloud-auth-oauth"),
        &["OAUTH:SASL_SSL"],
        &[],
        &overrides,
        &jvm,
    );
    let oauth_addr = cluster.listener("OAUTH");
    let plain = cluster.plaintext.clone();
    let secret_file = dir.join("client-secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();

    // `ferry check` authenticates and names the mechanism and client.
    let topic = unique("oauth-topic");
    let config = write_config(
        &dir,
        "oauth",
        &oauth_addr,
        &plain,
        &client_credentials(&idp, &secret_file),
        &pki.ca,
        &format!("{topic}.*"),
    );
    let admin = client(&plain).await;
    create(&admin, &topic, 2).await;
    let (code, text) = ferry_check(&config);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("OAUTHBEARER as client \"ferry-app\"")
            && text.contains("authenticated as ferry-app with OAUTHBEARER"),
        "{text}"
    );
    assert!(!text.contains(&secret), "the secret leaked: {text}");

    // Mirror for more than two token lifetimes while producing.
    let log = dir.join("ferry.log");
    let mut ferry = ferry_run(&config, &log);
    let producer = Background::start(
        client(&plain).await,
        topic.clone(),
        2,
        Duration::from_millis(200),
        7,
    );
    let started = Instant::now();
    while started.elapsed() < TOKEN_LIFETIME * 2 + Duration::from_secs(8) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            ferry.try_wait().unwrap().is_none(),
            "ferry exited:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let batches = producer.stop().await;
    let target = format!("src.{topic}");
    let dst = client(&plain).await;
    wait_caught_up(&admin, &dst, &topic, &target, 2, Duration::from_secs(60)).await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(ferry.id().to_string())
        .status();
    let status = ferry.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "ferry exited with {status}:\n{text}");
    let c = compare(&admin, &dst, &topic, &target, 2).await;
    println!(
        "{batches} batches produced; {c:?}; {} tokens issued",
        idp.tokens_issued()
    );
    assert_eq!((c.missing, c.duplicates), (0, 0), "{c:?}");
    assert!(c.source_records > 0);
    let reauths = text.matches("re-authenticated").count();
    println!("{reauths} re-authentications");
    assert!(
        reauths >= 2,
        "connections re-authenticated as tokens expired:\n{text}"
    );
    assert!(
        idp.tokens_issued() >= 3,
        "a fresh token for each re-authentication"
    );
    assert!(!text.contains(&secret), "the secret leaked into the log");
    for bad in ["ERROR", "WARN"] {
        assert!(!text.contains(bad), "{bad} in the log:\n{text}");
    }

    // A wrong client secret: `ferry check` fails naming the endpoint's error.
    std::fs::write(&secret_file, "Wr0ng-s3cret\n").unwrap();
    let (code, text) = ferry_check(&config);
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains(&idp.token_url()) && text.contains("invalid_client"),
        "{text}"
    );
    assert!(!text.contains("Wr0ng-s3cret"), "{text}");

    // An expired static token is refused before it is sent.
    let token_file = dir.join("token");
    std::fs::write(
        &token_file,
        idp.expired_token(CLIENT_ID, Duration::from_secs(30)),
    )
    .unwrap();
    let expired = write_config(
        &dir,
        "expired",
        &oauth_addr,
        &plain,
        &format!("token_file = \"{}\"\n", token_file.display()),
        &pki.ca,
        &format!("{topic}.*"),
    );
    let (code, text) = ferry_check(&expired);
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains("expired") && text.contains("token file"),
        "{text}"
    );

    // A token the broker's validator refuses: its error challenge is shown.
    std::fs::write(&token_file, "not-a-jwt").unwrap();
    let (code, text) = ferry_check(&expired);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("invalid_token"), "{text}");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
