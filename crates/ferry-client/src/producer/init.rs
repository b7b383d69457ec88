//! InitProducerId for an idempotent (non-transactional) producer.
//!
//! With a null `transactional_id` any broker answers, and it always hands
//! out a *new* producer id with epoch 0: the coordinator ignores the
//! `producer_id`/`producer_epoch` fields of v3+ (KIP-360) unless there is a
//! transactional id (`TransactionCoordinator.handleInitProducerId`). So an
//! idempotent producer bumps its epoch itself, as Java's does, and calls
//! this only to start and when an epoch runs out.

use std::time::Duration;

use kafka_protocol::messages::{ApiKey, InitProducerIdRequest};
use tokio::time::Instant;

use super::sequence::{ProducerIdentity, backoff};
use crate::Client;
use crate::error::{ClientError, KafkaCode, Result};

/// Gets a fresh producer id, retrying retriable failures (a coordinator
/// still loading, a lost connection) with backoff until `deadline`.
pub(crate) async fn init_producer_id(
    client: &Client,
    deadline: Instant,
    retry_backoff: Duration,
) -> Result<ProducerIdentity> {
    let mut failures = 0u32;
    loop {
        match request_producer_id(client).await {
            Ok(identity) => return Ok(identity),
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = backoff(retry_backoff, failures);
                if !e.is_retriable() || Instant::now() + wait >= deadline {
                    return Err(e);
                }
                tracing::debug!(error = %e, ?wait, "InitProducerId failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

async fn request_producer_id(client: &Client) -> Result<ProducerIdentity> {
    let conn = client.any_connection().await?;
    let version = conn.versions().version_for::<InitProducerIdRequest>()?;
    // The default transactional id is "" (which brokers refuse); null asks
    // for an idempotent producer id. Java sends Integer.MAX_VALUE as the
    // (unused) transaction timeout.
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::MAX);
    let response = conn.send(&request, version).await?;
    if let Some(code) = KafkaCode::from_code(response.error_code) {
        let context = if code == KafkaCode::CLUSTER_AUTHORIZATION_FAILED {
            // Before Kafka 2.8 (KIP-679) idempotence needs the cluster ACL.
            " for an idempotent producer id (brokers before 2.8 need IDEMPOTENT_WRITE on the cluster, \
             later ones WRITE on any topic)"
        } else {
            " for an idempotent producer id"
        };
        return Err(ClientError::Kafka {
            broker: conn.broker().to_owned(),
            api: ApiKey::InitProducerId,
            code,
            context: context.to_owned(),
        });
    }
    if response.producer_id < 0 || response.producer_epoch < 0 {
        return Err(ClientError::IncompleteResponse {
            broker: conn.broker().to_owned(),
            api: ApiKey::InitProducerId,
            missing: format!(
                "a producer id (got id {} epoch {})",
                response.producer_id, response.producer_epoch
            ),
        });
    }
    tracing::debug!(
        broker = conn.broker(),
        producer_id = response.producer_id,
        epoch = response.producer_epoch,
        "got an idempotent producer id"
    );
    Ok(ProducerIdentity {
        producer_id: response.producer_id,
        epoch: response.producer_epoch,
    })
}
