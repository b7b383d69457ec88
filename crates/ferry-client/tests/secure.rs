//! Secure connections against a real broker: one harness cluster with a
//! listener per security mode, ACLs on, certificates generated here.
//!
//! - `SASLSSL`  SASL_SSL, SCRAM-SHA-512 and PLAIN
//! - `MTLS`     SSL with client certificates required
//! - `SASLPLAIN` SASL_PLAINTEXT, SCRAM-SHA-256, sessions of 4 s (re-authentication)
//! - `EXPIRED`  SSL with an expired broker certificate
//!
//! `ferry` (SCRAM, PLAIN) and `CN=ferry` (mTLS) are super users; `noacl`
//! has no ACLs at all. Everything runs in one test so the cluster starts once.

mod source_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_client::{
    Client, ClientConfig, ClientError, Connection, ConnectionConfig, FetchOptions, Password,
    SaslConfig, SaslMechanism, Secret, TlsConfig,
};
use ferry_testkit::secure::{Pki, SecureCluster, can_start_clusters};
use ferry_testkit::unique;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use source_support::{batch, create_topic, now_ms, produce};

struct Setup {
    pki: Pki,
    password: String,
    dir: PathBuf,
}

impl Setup {
    fn tls(&self) -> TlsConfig {
        TlsConfig {
            ca_file: Some(self.pki.ca.clone()),
            ..TlsConfig::default()
        }
    }

    fn sasl(&self, mechanism: SaslMechanism, user: &str) -> SaslConfig {
        SaslConfig::password_based(
            mechanism,
            user,
            Password::Value(Secret::new(self.password.clone())),
        )
    }
}

fn config(tls: Option<TlsConfig>, sasl: Option<SaslConfig>) -> ClientConfig {
    ClientConfig {
        connection: ConnectionConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(20),
            tls,
            sasl,
            ..ConnectionConfig::default()
        },
    }
}

/// Connects, expecting failure; returns the message, after checking that
/// it came fast, is not retriable and does not hold the password.
async fn refused(setup: &Setup, addr: &str, config: ClientConfig, wrong_password: &str) -> String {
    let started = Instant::now();
    let err = match Client::connect(&[addr], config).await {
        Ok(_) => panic!("connecting to {addr} should have failed"),
        Err(e) => e,
    };
    let message = err.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failing took {:?}: {message}",
        started.elapsed()
    );
    assert!(!err.is_retriable(), "not retriable: {message}");
    for secret in [setup.password.as_str(), wrong_password] {
        assert!(!message.contains(secret), "the password leaked: {message}");
        assert!(
            !format!("{err:?}").contains(secret),
            "the password leaked: {err:?}"
        );
    }
    println!("{addr}: {message}");
    message
}

#[tokio::test]
async fn secure_listeners() {
    if !can_start_clusters() {
        return;
    }
    let dir = std::env::temp_dir().join(unique("ferry-sec-client"));
    let pki = Pki::generate(&dir);
    let password = format!("Pw-{}-s3cr3t", std::process::id());
    let setup = Setup { pki, password, dir };
    let pw = &setup.password;
    let keystore = |listener: &str, file: &PathBuf| {
        vec![
            format!("listener.name.{listener}.ssl.keystore.type=PEM"),
            format!(
                "listener.name.{listener}.ssl.keystore.location={}",
                file.display()
            ),
        ]
    };
    let scram_jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
    let mut overrides = vec![
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_owned(),
        "super.users=User:ANONYMOUS;User:ferry;User:CN=ferry".to_owned(),
        "listener.name.saslssl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN".to_owned(),
        format!("listener.name.saslssl.scram-sha-512.sasl.jaas.config={scram_jaas}"),
        format!(
            "listener.name.saslssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule \
             required user_ferry=\"{pw}\" user_noacl=\"{pw}\";"
        ),
        "listener.name.saslplain.sasl.enabled.mechanisms=SCRAM-SHA-256".to_owned(),
        format!("listener.name.saslplain.scram-sha-256.sasl.jaas.config={scram_jaas}"),
        "connections.max.reauth.ms=4000".to_owned(),
        "listener.name.mtls.ssl.truststore.type=PEM".to_owned(),
        format!(
            "listener.name.mtls.ssl.truststore.location={}",
            setup.pki.ca.display()
        ),
        "listener.name.mtls.ssl.client.auth=required".to_owned(),
    ];
    overrides.extend(keystore("saslssl", &setup.pki.server));
    overrides.extend(keystore("mtls", &setup.pki.server));
    overrides.extend(keystore("expired", &setup.pki.expired_server));
    let cluster = SecureCluster::start(
        &unique("sec-client"),
        &[
            "SASLSSL:SASL_SSL",
            "MTLS:SSL",
            "SASLPLAIN:SASL_PLAINTEXT",
            "EXPIRED:SSL",
        ],
        &[
            format!("SCRAM-SHA-512=[name=ferry,password={pw}]"),
            format!("SCRAM-SHA-256=[name=ferry,password={pw}]"),
        ],
        &overrides,
    );
    let sasl_ssl = cluster.listener("SASLSSL");
    let mtls = cluster.listener("MTLS");
    let sasl_plain = cluster.listener("SASLPLAIN");
    let expired = cluster.listener("EXPIRED");

    // Set up through the plaintext (super user) listener.
    let admin = source_support::connect(&cluster.plaintext).await;
    let topic = unique("sec-topic");
    create_topic(&admin, &topic, 1, &[]).await;
    produce(&admin, &topic, 0, batch("plain", 5, now_ms(), 0)).await;

    let fetch = FetchOptions::default();
    let read = |client: Client, what: &'static str| {
        let topic = topic.clone();
        let fetch = fetch.clone();
        async move {
            let got = client
                .fetch_raw(&topic, 0, 0, &fetch)
                .await
                .unwrap_or_else(|e| panic!("{what}: fetch: {e}"));
            assert_eq!(got.error, None, "{what}");
            assert!(got.high_watermark >= 5, "{what}: {got:?}");
            assert!(!got.records.is_empty(), "{what}: no records");
        }
    };

    // SASL_SSL + SCRAM-SHA-512: read and write.
    let scram = Client::connect(
        &[sasl_ssl.as_str()],
        config(
            Some(setup.tls()),
            Some(setup.sasl(SaslMechanism::ScramSha512, "ferry")),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("SASL_SSL SCRAM-SHA-512: {e}"));
    produce(&scram, &topic, 0, batch("scram", 3, now_ms(), 0)).await;
    read(scram, "SASL_SSL SCRAM-SHA-512").await;

    // The password can come from a file.
    let pw_file = setup.dir.join("password");
    std::fs::write(&pw_file, format!("{pw}\n")).expect("write the password file");
    let from_file = SaslConfig {
        password: Password::File(pw_file),
        ..setup.sasl(SaslMechanism::ScramSha512, "ferry")
    };
    let client = Client::connect(
        &[sasl_ssl.as_str()],
        config(Some(setup.tls()), Some(from_file)),
    )
    .await
    .unwrap_or_else(|e| panic!("password file: {e}"));
    read(client, "password file").await;

    // SASL_SSL + PLAIN.
    let plain = Client::connect(
        &[sasl_ssl.as_str()],
        config(
            Some(setup.tls()),
            Some(setup.sasl(SaslMechanism::Plain, "ferry")),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("SASL_SSL PLAIN: {e}"));
    read(plain, "SASL_SSL PLAIN").await;

    // SSL with a client certificate (PKCS#8 key, then SEC1 EC key).
    for key in [&setup.pki.client_key, &setup.pki.client_key_sec1] {
        let tls = TlsConfig {
            cert_file: Some(setup.pki.client_cert.clone()),
            key_file: Some(key.clone()),
            ..setup.tls()
        };
        let client = Client::connect(&[mtls.as_str()], config(Some(tls), None))
            .await
            .unwrap_or_else(|e| panic!("mTLS with {}: {e}", key.display()));
        produce(&client, &topic, 0, batch("mtls", 2, now_ms(), 0)).await;
        read(client, "mTLS").await;
    }

    // SASL_PLAINTEXT + SCRAM-SHA-256, with 4 s sessions: the connection
    // re-authenticates while in use and while idle.
    let conn = Connection::connect(
        &sasl_plain,
        &config(None, Some(setup.sasl(SaslMechanism::ScramSha256, "ferry"))).connection,
    )
    .await
    .unwrap_or_else(|e| panic!("SASL_PLAINTEXT SCRAM-SHA-256: {e}"));
    let busy_until = Instant::now() + Duration::from_secs(9);
    while Instant::now() < busy_until {
        api_versions(&conn)
            .await
            .unwrap_or_else(|e| panic!("request on a re-authenticating connection: {e}"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let busy = conn.reauthentications();
    assert!(
        busy >= 2,
        "re-authenticated {busy} times in 9 s of 4 s sessions"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    api_versions(&conn)
        .await
        .unwrap_or_else(|e| panic!("request after 6 s idle: {e}"));
    assert!(
        conn.reauthentications() > busy,
        "re-authenticated while idle"
    );
    // A client on it works too.
    let client = Client::connect(
        &[sasl_plain.as_str()],
        config(None, Some(setup.sasl(SaslMechanism::ScramSha256, "ferry"))),
    )
    .await
    .unwrap_or_else(|e| panic!("SASL_PLAINTEXT client: {e}"));
    read(client, "SASL_PLAINTEXT SCRAM-SHA-256").await;

    // Failures, each fast and with its own message.
    let wrong = "Wr0ng-password-42";
    let bad_password = |mechanism| SaslConfig {
        password: Password::Value(Secret::new(wrong)),
        ..setup.sasl(mechanism, "ferry")
    };
    for mechanism in [SaslMechanism::ScramSha512, SaslMechanism::Plain] {
        let m = refused(
            &setup,
            &sasl_ssl,
            config(Some(setup.tls()), Some(bad_password(mechanism))),
            wrong,
        )
        .await;
        assert!(
            m.contains("authentication as user \"ferry\"") && m.contains(mechanism.name()),
            "{m}"
        );
    }
    let m = refused(
        &setup,
        &sasl_plain,
        config(None, Some(bad_password(SaslMechanism::ScramSha256))),
        wrong,
    )
    .await;
    assert!(m.contains("authentication as user \"ferry\""), "{m}");

    let m = refused(
        &setup,
        &sasl_ssl,
        config(
            Some(setup.tls()),
            Some(setup.sasl(SaslMechanism::ScramSha256, "ferry")),
        ),
        wrong,
    )
    .await;
    assert!(
        m.contains("does not accept SASL mechanism SCRAM-SHA-256")
            && m.contains("SCRAM-SHA-512, PLAIN"),
        "{m}"
    );

    let wrong_ca = TlsConfig {
        ca_file: Some(setup.pki.other_ca.clone()),
        ..TlsConfig::default()
    };
    let m = refused(&setup, &mtls, config(Some(wrong_ca), None), wrong).await;
    assert!(m.contains("unknown CA"), "{m}");

    let wrong_name = TlsConfig {
        server_name: Some("wrong.example".into()),
        ..setup.tls()
    };
    let m = refused(&setup, &sasl_ssl, config(Some(wrong_name), None), wrong).await;
    assert!(
        m.contains("not valid for the name \"wrong.example\"") && m.contains("mismatch"),
        "{m}"
    );

    let m = refused(&setup, &expired, config(Some(setup.tls()), None), wrong).await;
    assert!(m.contains("expired"), "{m}");

    let m = refused(&setup, &mtls, config(Some(setup.tls()), None), wrong).await;
    assert!(m.contains("refused ferry's client certificate"), "{m}");

    let m = refused(
        &setup,
        &cluster.plaintext,
        config(Some(setup.tls()), None),
        wrong,
    )
    .await;
    assert!(m.contains("TLS listener"), "{m}");

    // Plaintext against TLS and SASL listeners.
    let m = refused(&setup, &mtls, config(None, None), wrong).await;
    assert!(m.contains("set security_protocol"), "{m}");
    // The broker just closes the connection here: retriable in general,
    // so only the message is checked.
    let m = match Client::connect(&[sasl_plain.as_str()], config(None, None)).await {
        Ok(_) => panic!("no SASL against a SASL listener should fail"),
        Err(e) => e.to_string(),
    };
    assert!(m.contains("wants SASL authentication"), "{m}");
    let m = refused(
        &setup,
        &cluster.plaintext,
        config(None, Some(setup.sasl(SaslMechanism::ScramSha512, "ferry"))),
        wrong,
    )
    .await;
    assert!(m.contains("is this a SASL listener"), "{m}");

    // Authenticated, but no ACLs: the error names the topic and the operation.
    let noacl = Client::connect(
        &[sasl_ssl.as_str()],
        config(
            Some(setup.tls()),
            Some(setup.sasl(SaslMechanism::Plain, "noacl")),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("noacl connects: {e}"));
    let err = match noacl.fetch_raw(&topic, 0, 0, &fetch).await {
        Ok(got) => panic!("noacl read {topic}: {got:?}"),
        Err(e) => e,
    };
    let m = err.to_string();
    println!("noacl: {m}");
    assert!(
        m.contains(&topic)
            && m.contains("TOPIC_AUTHORIZATION_FAILED")
            && m.contains("on the topic"),
        "{m}"
    );
    assert!(!err.is_retriable());
    assert!(matches!(err, ClientError::Kafka { .. }), "{err:?}");

    drop(cluster);
    let _ = std::fs::remove_dir_all(&setup.dir);
}

/// One ApiVersions v3 round trip (a request any listener answers).
async fn api_versions(conn: &Connection) -> ferry_client::Result<()> {
    use kafka_protocol::protocol::Encodable;
    let mut body = bytes::BytesMut::new();
    ApiVersionsRequest::default()
        .encode(&mut body, 3)
        .expect("encode ApiVersions");
    conn.send_raw(ApiKey::ApiVersions, 3, vec![body.freeze()])
        .await
        .map(drop)
}
