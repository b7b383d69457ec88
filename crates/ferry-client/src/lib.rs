//! # ferry-client
//!
//! The network side of ferry: talking to Kafka brokers over tokio, with the
//! record data kept as [`bytes::Bytes`] slices of what came off the socket.
//!
//! - [`connection`]: one pipelined connection to one broker. Requests are
//!   matched to responses by correlation id, frames are size-checked before
//!   any memory is reserved for them, and a protocol error *poisons* the
//!   connection so nothing after it is trusted. [`Connection::send`] sends
//!   a kafka-protocol request and reads the answer with ferry-wire's bounded
//!   decoder for it ([`responses`] pairs them); [`Connection::send_raw`]
//!   writes pre-encoded chunks with vectored writes (for the zero-copy
//!   Produce encoder).
//! - [`versions`]: ApiVersions negotiation and the version to use per API,
//!   never below the floor ferry needs (Kafka 2.1 → 4.x).
//! - [`metadata`]: brokers, topics (with ids), partitions and leaders.
//! - [`fetch`]: one partition's raw record batches, zero-copy.
//! - [`produce`]: one pre-built batch to a partition, zero-copy.
//! - [`Client`]: a cluster handle tying these together: bootstrap, a
//!   metadata cache, one connection per broker.
//! - [`error`]: [`ClientError`], whose messages name the broker and say
//!   what to do, and [`KafkaCode`], broker error codes as data.
//! - [`fetcher`]: the source side: many partitions fetched through one
//!   incremental fetch session (KIP-227) per leader, following leader moves.
//! - [`producer`]: the target side: an idempotent producer that keeps order
//!   per partition with up to 5 batches in flight, payloads never copied.
//! - [`admin`]: topics (create, grow, configs) and offsets (ListOffsets).
//! - [`groups`]: consumer groups (list, describe, coordinator lookup) and
//!   their committed offsets (fetch, and commit as an admin).
//! - [`retry`]: backoff shared by the above.
//! - [`tls`] and [`sasl`]: secure connections: TLS with rustls (CA bundle or
//!   system roots, mutual TLS), SASL PLAIN and SCRAM-SHA-256/512 with
//!   re-authentication (KIP-368); passwords held as [`Secret`]s, which
//!   never print.
//!
//! ```no_run
//! use ferry_client::{Client, ClientConfig, FetchOptions};
//!
//! # async fn run() -> Result<(), ferry_client::ClientError> {
//! let client = Client::connect(&["127.0.0.1:9092"], ClientConfig::default()).await?;
//! let fetched = client.fetch_raw("orders", 0, 0, &FetchOptions::default()).await?;
//! if let Some(code) = fetched.error {
//!     eprintln!("partition error: {code}");
//! }
//! println!(
//!     "{} bytes of record batches, high watermark {}",
//!     fetched.records.len(),
//!     fetched.high_watermark
//! );
//! # Ok(())
//! # }
//! ```

pub mod admin;
mod client;
pub mod connection;
pub mod error;
pub mod fetcher;
pub mod groups;
pub mod metadata;
pub mod producer;
pub mod responses;
pub mod retry;
pub mod sasl;
mod secret;
pub mod tls;
mod topic;
pub mod util;
pub mod versions;

pub use admin::{ConfigEntry, NewTopic, OffsetSpec};
pub use client::{Client, ClientConfig};
pub use connection::{Connection, ConnectionConfig};
pub use error::{ClientError, KafkaCode, Result};
pub use fetcher::raw::{AbortedTxn, FetchOptions, FetchedPartition, Isolation};
pub use fetcher::{FetcherConfig, LogDivergence, PartitionData, SourceFetcher, StopReason};
pub use groups::{GroupDescription, GroupListing};
pub use metadata::{BrokerInfo, ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use producer::single::{ProduceOptions, Produced};
pub use producer::{Ack, AckFuture, IdempotentProducer, ProducerConfig};
pub use responses::BoundedRequest;
pub use retry::Backoff;
pub use retry::RetryCounts;
pub use sasl::{
    AwsCredentials, AwsMskIam, OAuthConfig, OidcClient, Password, SaslConfig, SaslMechanism,
    TokenSource, check_extension,
};
pub use secret::Secret;
pub use tls::TlsConfig;
pub use topic::TopicPartition;
pub use versions::BrokerVersions;
