//! Producing pre-built record batches, zero-copy: the batch chunks (a
//! rewritten header and the original payload slice) go to the socket as they
//! are, framed by ferry-wire's hand-written Produce encoder.
//!
//! One request, without idempotence: a building block for tools and tests;
//! mirrored data goes through [`crate::IdempotentProducer`], which adds
//! sequences, pipelining and many partitions per request.

use bytes::Bytes;
use ferry_wire::produce::{
    FIRST_TOPIC_ID_VERSION, MAX_PRODUCE_VERSION, MIN_PRODUCE_VERSION, PartitionRecords,
    ProduceRequestParams, TopicRecords, TopicRef, encode_produce_body,
};
use ferry_wire::responses::produce::decode_produce_response;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

use crate::Client;
use crate::error::{ClientError, KafkaCode, Result};

/// Settings of one produce call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceOptions {
    /// -1 (all in-sync replicas, the default) or 1 (leader only). 0 is refused:
    /// every request must get a response on a pipelined connection.
    pub acks: i16,
    /// How long the broker may wait for the acks, in milliseconds.
    pub timeout_ms: i32,
}

impl Default for ProduceOptions {
    fn default() -> Self {
        Self {
            acks: -1,
            timeout_ms: 30_000,
        }
    }
}

/// Where the target broker stored a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// Offset the broker assigned to the batch's first record.
    pub base_offset: i64,
    /// The append time for LogAppendTime topics, else -1.
    pub log_append_time_ms: i64,
}

impl Client {
    /// Produces one record batch (given as chunks to write back to back) to
    /// `topic`/`partition` on its leader. A partition error comes back as
    /// [`ClientError::Kafka`] naming the topic and partition.
    pub async fn produce_batch(
        &self,
        topic: &str,
        partition: i32,
        batch: Vec<Bytes>,
        options: &ProduceOptions,
    ) -> Result<Produced> {
        let leader = self.leader(topic, partition).await?;
        let conn = self.broker_connection(leader.broker.node_id).await?;
        let mut ours = VersionRange {
            min: MIN_PRODUCE_VERSION,
            max: MAX_PRODUCE_VERSION,
        };
        if leader.topic_id.is_none() {
            ours.max = FIRST_TOPIC_ID_VERSION - 1;
        }
        let version = conn.versions().pick(ApiKey::Produce, ours)?;
        let id_bytes;
        let topic_ref = match leader.topic_id {
            Some(id) if version >= FIRST_TOPIC_ID_VERSION => {
                id_bytes = *id.as_bytes();
                TopicRef::Id(id_bytes)
            }
            _ => TopicRef::Name(topic),
        };
        if options.acks == 0 {
            return Err(ClientError::Encode {
                broker: conn.broker().to_owned(),
                api: ApiKey::Produce,
                version,
                detail: "acks=0 gets no response; use 1 or -1".into(),
            });
        }
        let params = ProduceRequestParams {
            version,
            correlation_id: 0,
            client_id: None,
            transactional_id: None,
            acks: options.acks,
            timeout_ms: options.timeout_ms,
        };
        let topics = [TopicRecords {
            topic: topic_ref,
            partitions: vec![PartitionRecords {
                partition,
                records: batch,
            }],
        }];
        let body = encode_produce_body(&params, &topics).map_err(|e| ClientError::Encode {
            broker: conn.broker().to_owned(),
            api: ApiKey::Produce,
            version,
            detail: e.to_string(),
        })?;
        let response = conn.send_raw(ApiKey::Produce, version, body.chunks).await?;
        // Ours, not kafka-protocol's: it bounds every count by the bytes present.
        let decoded =
            decode_produce_response(response, version).map_err(|e| ClientError::Decode {
                broker: conn.broker().to_owned(),
                api: ApiKey::Produce,
                version,
                detail: e.to_string(),
            })?;
        let missing = || ClientError::IncompleteResponse {
            broker: conn.broker().to_owned(),
            api: ApiKey::Produce,
            missing: format!("a result for topic {topic:?} partition {partition}"),
        };
        let p = decoded
            .topics
            .first()
            .and_then(|t| t.partitions.iter().find(|p| p.partition == partition))
            .ok_or_else(missing)?;
        if let Some(code) = KafkaCode::from_code(p.error_code) {
            let message = p.error_message.clone().unwrap_or_default();
            return Err(ClientError::Kafka {
                broker: conn.broker().to_owned(),
                api: ApiKey::Produce,
                code,
                context: if message.is_empty() {
                    format!(" for topic {topic:?} partition {partition}")
                } else {
                    format!(" for topic {topic:?} partition {partition} ({message})")
                },
            });
        }
        Ok(Produced {
            base_offset: p.base_offset,
            log_append_time_ms: p.log_append_time_ms,
        })
    }
}
