//! [`Client`]: a handle on one cluster. It bootstraps, caches metadata, and
//! keeps one [`Connection`] per broker, opened on first use.
//!
//! A call goes to the leader named by the cached metadata and any failure is
//! returned to the caller, which retries what can heal
//! ([`ClientError::is_retriable`], [`crate::retry`]) after
//! [`Client::refresh_metadata`]: the admin calls, the fetcher and the
//! producer each do, with the backoff that fits them.

use crate::util::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use kafka_protocol::messages::{ApiKey, MetadataRequest};

use crate::connection::{Connection, ConnectionConfig, check_address, encode_request};
use crate::error::{ClientError, Result};
use crate::metadata::{ClusterMetadata, LeaderInfo, metadata_request, parse_metadata};

/// Settings for a [`Client`].
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// Settings for every broker connection.
    pub connection: ConnectionConfig,
}

/// A handle on one Kafka cluster. Cheap to clone; clones share connections
/// and the metadata cache.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    bootstrap: Vec<String>,
    metadata: RwLock<Arc<ClusterMetadata>>,
    /// Connections by node id.
    brokers: Mutex<HashMap<i32, Connection>>,
    /// The connection made while bootstrapping; used for metadata until a
    /// broker connection exists.
    seed: Mutex<Option<Connection>>,
}

impl Client {
    /// Connects to the first reachable bootstrap broker (`host:port` each)
    /// and loads the broker list. Topic metadata is loaded on demand.
    pub async fn connect<S: AsRef<str>>(bootstrap: &[S], config: ClientConfig) -> Result<Self> {
        let bootstrap: Vec<String> = bootstrap
            .iter()
            .map(|s| s.as_ref().trim().to_owned())
            .collect();
        if bootstrap.is_empty() {
            return Err(ClientError::NoBootstrapBrokers);
        }
        for address in &bootstrap {
            check_address(address)?;
        }
        let client = Self {
            inner: Arc::new(Inner {
                config,
                bootstrap,
                metadata: RwLock::new(Arc::new(ClusterMetadata::default())),
                brokers: Mutex::new(HashMap::new()),
                seed: Mutex::new(None),
            }),
        };
        client.refresh_metadata(Some(&[])).await?;
        Ok(client)
    }

    /// The cached metadata.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        Arc::clone(
            &self
                .inner
                .metadata
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Asks the cluster for fresh metadata about `topics` (`None`: all
    /// topics; an empty slice: brokers only), folds it into the cache, and
    /// returns the updated cache.
    pub async fn refresh_metadata(&self, topics: Option<&[&str]>) -> Result<Arc<ClusterMetadata>> {
        let conn = self.any_connection().await?;
        let version = conn.versions().version_for::<MetadataRequest>()?;
        // Decoded by ferry-wire's bounded decoder, not kafka-protocol's:
        // metadata of every topic is read at each discovery interval.
        let version = version.min(ferry_wire::responses::metadata::MAX_METADATA_RESPONSE_VERSION);
        let body = encode_request(
            &metadata_request(topics, version),
            ApiKey::Metadata,
            version,
            conn.broker(),
        )?;
        let raw = conn.send_raw(ApiKey::Metadata, version, vec![body]).await?;
        let response = ferry_wire::responses::metadata::decode_metadata_response(raw, version)
            .map_err(|e| ClientError::Decode {
                broker: conn.broker().to_owned(),
                api: ApiKey::Metadata,
                version,
                detail: e.to_string(),
            })?;
        let fresh = parse_metadata(response, conn.broker())?;
        let mut cache = self
            .inner
            .metadata
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut merged = ClusterMetadata::clone(&cache);
        merged.merge(fresh, topics.is_none());
        *cache = Arc::new(merged);
        Ok(Arc::clone(&cache))
    }

    /// The leader of `topic`/`partition`, from cached metadata, refreshed
    /// once if the topic is not cached yet.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<LeaderInfo> {
        let mut metadata = self.metadata();
        if metadata.topic(topic).is_none() {
            metadata = self.refresh_metadata(Some(&[topic])).await?;
        }
        metadata.leader(topic, partition)
    }

    /// The connection to broker `node_id`, opened if there is none or the
    /// last one was poisoned.
    pub async fn broker_connection(&self, node_id: i32) -> Result<Connection> {
        if let Some(conn) = lock(&self.inner.brokers).get(&node_id) {
            if conn.poisoned().is_none() {
                return Ok(conn.clone());
            }
        }
        let metadata = self.metadata();
        let broker = metadata
            .brokers
            .get(&node_id)
            .ok_or_else(|| ClientError::UnknownBroker {
                broker: metadata.source.clone(),
                node_id,
            })?;
        // Connect without holding the lock so one slow broker does not block
        // the others. Two callers racing here both connect; the later one wins
        // the slot and the other connection closes when its caller drops it.
        let conn = Connection::connect(&broker.address(), &self.inner.config.connection).await?;
        lock(&self.inner.brokers).insert(node_id, conn.clone());
        Ok(conn)
    }

    /// Any usable connection, for requests any broker can answer (Metadata,
    /// admin requests): a live broker connection, else the bootstrap one,
    /// else a new connection to the first bootstrap broker that answers.
    pub async fn any_connection(&self) -> Result<Connection> {
        let live = lock(&self.inner.brokers)
            .values()
            .find(|c| c.poisoned().is_none())
            .cloned();
        if let Some(conn) = live {
            return Ok(conn);
        }
        if let Some(conn) = lock(&self.inner.seed).as_ref() {
            if conn.poisoned().is_none() {
                return Ok(conn.clone());
            }
        }
        let mut last = None;
        for address in &self.inner.bootstrap {
            match Connection::connect(address, &self.inner.config.connection).await {
                Ok(conn) => {
                    *lock(&self.inner.seed) = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) => {
                    tracing::debug!(broker = %address, error = %e, "bootstrap broker unusable");
                    last = Some(e);
                }
            }
        }
        Err(match last {
            Some(last) => ClientError::Bootstrap {
                brokers: self.inner.bootstrap.join(", "),
                last: Box::new(last),
            },
            None => ClientError::NoBootstrapBrokers,
        })
    }
}
