//! KIP-368 re-authentication with short sessions and long-poll fetches in
//! flight (issue 14 item 17): a broker with `connections.max.reauth.ms` of
//! 3 s closes any connection whose next request arrives after its session
//! ended, and a Fetch with 500 ms max wait holds the connection (the broker
//! reads one request at a time) for up to 500 ms. ferry must re-authenticate
//! early enough that the SaslHandshake queued behind such fetches still
//! arrives in time: the connection is never closed and no fetch fails.

mod source_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_client::{
    Client, ClientConfig, ConnectionConfig, FetchOptions, Password, SaslConfig, SaslMechanism,
    Secret,
};
use ferry_testkit::secure::{SecureCluster, can_start_clusters};
use ferry_testkit::unique;
use source_support::create_topic;

const SESSION: Duration = Duration::from_secs(3);
const LONG_POLL: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_never_outlive_a_short_session() {
    if !can_start_clusters() {
        return;
    }
    let password = format!("Pw-{}-reauth", std::process::id());
    let overrides = [
        "listener.name.short.sasl.enabled.mechanisms=PLAIN".to_owned(),
        format!(
            "listener.name.short.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule \
             required user_ferry=\"{password}\";"
        ),
        format!("connections.max.reauth.ms={}", SESSION.as_millis()),
    ];
    let cluster = SecureCluster::start(
        &unique("cloud-auth-reauth"),
        &["SHORT:SASL_PLAINTEXT"],
        &[],
        &overrides,
    );
    let admin = source_support::connect(&cluster.plaintext).await;
    let topic = unique("reauth-topic");
    create_topic(&admin, &topic, 1, &[]).await;

    let client = Client::connect(
        &[cluster.listener("SHORT").as_str()],
        ClientConfig {
            connection: ConnectionConfig {
                connect_timeout: Duration::from_secs(10),
                request_timeout: Duration::from_secs(10),
                sasl: Some(SaslConfig::password_based(
                    SaslMechanism::Plain,
                    "ferry",
                    Password::Value(Secret::new(password)),
                )),
                ..ConnectionConfig::default()
            },
        },
    )
    .await
    .unwrap_or_else(|e| panic!("connect: {e}"));
    let leader = client
        .leader(&topic, 0)
        .await
        .unwrap_or_else(|e| panic!("leader: {e}"));
    let conn = client
        .broker_connection(leader.broker.node_id)
        .await
        .unwrap_or_else(|e| panic!("connection: {e}"));

    // Two fetchers long-polling the empty partition back to back, so that
    // at any moment one or two 500 ms fetches are queued at the broker.
    let options = FetchOptions {
        max_wait: LONG_POLL,
        min_bytes: 1,
        ..FetchOptions::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let fetches = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (client, topic, options) = (client.clone(), topic.clone(), options.clone());
        let (stop, fetches) = (Arc::clone(&stop), Arc::clone(&fetches));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let got = client.fetch_raw(&topic, 0, 0, &options).await;
                match got {
                    Ok(p) if p.error.is_none() => fetches.fetch_add(1, Ordering::Relaxed),
                    Ok(p) => return Err(format!("partition error {:?}", p.error)),
                    Err(e) => return Err(e.to_string()),
                };
            }
            Ok(())
        }));
    }
    let started = Instant::now();
    let run_for = SESSION * 7;
    let mut failure = None;
    while started.elapsed() < run_for {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(e) = conn.poisoned() {
            failure = Some(format!(
                "the connection closed after {:?}: {e}",
                started.elapsed()
            ));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        if let Err(e) = task.await.expect("fetcher task") {
            failure.get_or_insert(format!("a fetch failed: {e}"));
        }
    }
    let reauths = conn.reauthentications();
    println!(
        "{} fetches, {reauths} re-authentications in {:?}",
        fetches.load(Ordering::Relaxed),
        started.elapsed()
    );
    drop(cluster);
    if let Some(failure) = failure {
        panic!("{failure}");
    }
    assert!(reauths >= 5, "re-authenticated {reauths} times");
}
