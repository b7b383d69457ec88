//! The client layer's error type, and Kafka error codes as data.
//!
//! [`ClientError`] is what a call failed with: every variant names the broker
//! it was talking to (and the API, where one was involved) and says what to do
//! about it. [`KafkaCode`] is an error code a broker put in a response; it is
//! plain data, because most codes are per partition and the caller decides
//! what they mean (retry, refresh metadata, give up).

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use ferry_wire::WireError;
use kafka_protocol::messages::ApiKey;

/// Result alias for this crate.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Everything a client call can fail with.
///
/// Cloneable so one connection failure can be handed to every request that
/// was waiting on that connection.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// An address was not `host:port`.
    #[error("invalid broker address {address:?}: {reason}; use host:port, e.g. 127.0.0.1:9092")]
    InvalidAddress {
        address: String,
        reason: &'static str,
    },

    /// The bootstrap list was empty.
    #[error("no bootstrap brokers given; pass at least one host:port")]
    NoBootstrapBrokers,

    /// None of the bootstrap brokers could be used.
    #[error("none of the bootstrap brokers ({brokers}) could be used; last error: {last}")]
    Bootstrap {
        brokers: String,
        last: Box<ClientError>,
    },

    /// The TCP connection could not be established.
    #[error(
        "could not connect to broker {broker}: {source}; check the address and that the broker is listening"
    )]
    Connect {
        broker: String,
        #[source]
        source: Arc<io::Error>,
    },

    /// The TCP connection was not established in time.
    #[error(
        "connecting to broker {broker} timed out after {after:?}; check that it is reachable \
         (firewalls, advertised.listeners) or raise the connect timeout"
    )]
    ConnectTimeout { broker: String, after: Duration },

    /// The TLS settings cannot be used (a file is missing or holds no
    /// usable certificate or key).
    #[error("invalid TLS setting {setting}: {reason}")]
    TlsSetup { setting: String, reason: String },

    /// The TLS handshake with a broker failed, or the broker ended the TLS
    /// session; `problem` says why and what to change.
    #[error("TLS with broker {broker} failed: {problem}")]
    Tls { broker: String, problem: String },

    /// The SASL settings cannot be used (e.g. the password file is unreadable).
    #[error("invalid SASL setting: {reason}")]
    SaslSetup { reason: String },

    /// The OIDC token endpoint did not give ferry a token.
    #[error("cannot get an OAUTHBEARER token for client {client_id:?} from {endpoint}: {detail}")]
    TokenEndpoint {
        endpoint: String,
        client_id: String,
        detail: String,
        /// The endpoint was unreachable or busy (as opposed to refusing the client).
        retriable: bool,
    },

    /// The broker's listener does not offer the configured mechanism.
    #[error(
        "broker {broker} does not accept SASL mechanism {mechanism} on this listener{}; \
         set sasl.mechanism to one it enables, or enable {mechanism} in the listener's sasl.enabled.mechanisms",
        enabled_list(.enabled)
    )]
    SaslMechanismNotEnabled {
        broker: String,
        mechanism: &'static str,
        enabled: Vec<String>,
    },

    /// The broker refused the credentials. Not retriable: retrying with the
    /// same password fails the same way (and may lock the user out).
    #[error(
        "authentication as {}{username:?} with {mechanism} failed at broker {broker}: {detail}; {}",
        if matches!(*mechanism, "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512") { "user " } else { "" },
        authentication_hint(mechanism)
    )]
    SaslAuthentication {
        broker: String,
        mechanism: &'static str,
        username: String,
        detail: String,
    },

    /// The SASL exchange went wrong in a way that is not a plain refusal
    /// (e.g. the SCRAM server signature did not verify).
    #[error("SASL {mechanism} authentication with broker {broker} failed: {detail}")]
    SaslProtocol {
        broker: String,
        mechanism: &'static str,
        detail: String,
    },

    /// Reading from or writing to the socket failed.
    #[error(
        "I/O error on the connection to broker {broker}: {source}; the connection was closed, reconnect"
    )]
    Io {
        broker: String,
        #[source]
        source: Arc<io::Error>,
    },

    /// No response arrived in time. The connection is closed as well, because
    /// a broker answers one connection's requests in order: everything sent
    /// after this request is stuck behind it.
    #[error(
        "{api:?} request to broker {broker} got no response within {after:?}; the connection was closed. \
         Raise the request timeout if the broker is only slow"
    )]
    Timeout {
        broker: String,
        api: ApiKey,
        after: Duration,
    },

    /// The broker sent bytes that are not a valid frame (too large, negative
    /// size, too short for a response header).
    #[error(
        "invalid frame from broker {broker}: {source}; the connection was closed. \
         For an oversized frame raise max_frame_size or lower the fetch max_bytes"
    )]
    Frame {
        broker: String,
        #[source]
        source: WireError,
    },

    /// A response frame did not decode as the version we asked for.
    #[error(
        "could not decode the {api:?} v{version} response from broker {broker}: {detail}; \
         this is a protocol mismatch or a client bug, report it with the broker's version"
    )]
    Decode {
        broker: String,
        api: ApiKey,
        version: i16,
        detail: String,
    },

    /// A request could not be encoded at the chosen version.
    #[error(
        "could not encode a {api:?} v{version} request for broker {broker}: {detail}; this is a client bug"
    )]
    Encode {
        broker: String,
        api: ApiKey,
        version: i16,
        detail: String,
    },

    /// The broker closed the connection.
    #[error(
        "broker {broker} closed the connection{}; reconnect. If it happens right after a request, \
         the broker may not accept that request's version (Kafka 4 closes the connection on removed versions), \
         or the listener wants SASL authentication that is not configured (security_protocol): \
         check the broker log",
        if *.mid_frame { " in the middle of a response" } else { "" }
    )]
    Closed { broker: String, mid_frame: bool },

    /// A response carried another correlation id than the oldest request's
    /// (Kafka answers a connection's requests in order). The byte stream can
    /// no longer be trusted, so the connection is closed.
    #[error(
        "broker {broker} sent a response with correlation id {correlation_id}{}; \
         the connection was closed, reconnect",
        match expected {
            Some(id) => format!(" where the answer to request {id} was due (Kafka answers in order)"),
            None => ", which no request is waiting for".to_owned(),
        }
    )]
    UnexpectedCorrelationId {
        broker: String,
        correlation_id: i32,
        /// The oldest request's id; `None`: no request was waiting.
        expected: Option<i32>,
    },

    /// A request type's API key is not in kafka-protocol's key table.
    #[error(
        "cannot send a request with API key {key} to broker {broker}: kafka-protocol does not know that key"
    )]
    UnknownApiKey { broker: String, key: i16 },

    /// The broker does not offer an API at all.
    #[error("broker {broker} does not support the {api:?} API; ferry needs Kafka 2.1 or newer")]
    ApiNotSupported { broker: String, api: ApiKey },

    /// The broker's version range and ours do not overlap.
    #[error(
        "broker {broker} supports {api:?} v{broker_min}..=v{broker_max}, ferry speaks v{our_min}..=v{our_max}; \
         upgrade the broker (ferry needs Kafka 2.1 or newer)"
    )]
    UnsupportedVersion {
        broker: String,
        api: ApiKey,
        broker_min: i16,
        broker_max: i16,
        our_min: i16,
        our_max: i16,
    },

    /// The broker answered with an error code for the whole request, or for
    /// the one resource the call was about.
    #[error("broker {broker} answered {api:?}{context} with {code}{}", hint(*.code, *.api))]
    Kafka {
        broker: String,
        api: ApiKey,
        code: KafkaCode,
        /// Where the code applied, e.g. ` for topic "t" partition 0`; may be empty.
        context: String,
    },

    /// The topic exists but has no such partition.
    #[error(
        "topic {topic:?} has {partitions} partitions, so partition {partition} does not exist \
         (metadata from broker {broker})"
    )]
    UnknownPartition {
        broker: String,
        topic: String,
        partition: i32,
        partitions: usize,
    },

    /// The partition has no leader right now (an election is under way).
    #[error(
        "topic {topic:?} partition {partition} has no leader right now (metadata from broker {broker}); \
         retry after refreshing metadata"
    )]
    NoLeader {
        broker: String,
        topic: String,
        partition: i32,
    },

    /// Metadata named a leader that is not in its own broker list.
    #[error(
        "metadata from broker {broker} names node {node_id} as a leader but does not list that broker; \
         refresh metadata and retry"
    )]
    UnknownBroker { broker: String, node_id: i32 },

    /// A response was well formed but did not contain what the request asked for.
    #[error(
        "broker {broker} sent a {api:?} response without {missing}; this is a broker or client bug"
    )]
    IncompleteResponse {
        broker: String,
        api: ApiKey,
        missing: String,
    },

    /// A setting is out of range.
    #[error("invalid setting {setting}: {reason}")]
    InvalidConfig {
        setting: &'static str,
        reason: String,
    },

    /// The idempotent producer gave up on a batch the broker did not refuse:
    /// its delivery timeout passed, an earlier batch of the partition failed,
    /// or the producer stopped. `reason` says which, and whether the batch
    /// may have been written anyway.
    #[error(
        "batch for topic {topic:?} partition {partition}{} was not delivered: {reason}",
        sequence_note(*.base_sequence)
    )]
    NotDelivered {
        topic: String,
        partition: i32,
        /// The batch's base sequence; `None` if it never got one.
        base_sequence: Option<i32>,
        reason: String,
    },
}

fn enabled_list(enabled: &[String]) -> String {
    if enabled.is_empty() {
        " (it enables none: is this a SASL listener? If not, set security_protocol to plaintext or ssl)"
            .to_owned()
    } else {
        format!(" (it enables {})", enabled.join(", "))
    }
}

/// The ACL operation a request needs, for authorization errors.
fn operation(api: ApiKey) -> &'static str {
    match api {
        ApiKey::Fetch => "Read on the topic",
        ApiKey::Produce => "Write on the topic",
        ApiKey::Metadata | ApiKey::ListOffsets | ApiKey::OffsetForLeaderEpoch => {
            "Describe on the topic"
        }
        ApiKey::CreateTopics => "Create on the topic (or the cluster)",
        ApiKey::CreatePartitions => "Alter on the topic",
        ApiKey::DeleteTopics => "Delete on the topic",
        ApiKey::DescribeConfigs => "DescribeConfigs on the topic",
        ApiKey::AlterConfigs | ApiKey::IncrementalAlterConfigs => "AlterConfigs on the topic",
        ApiKey::InitProducerId => "IdempotentWrite on the cluster (or Write on a topic)",
        _ => "the operation this request needs",
    }
}

fn sequence_note(base_sequence: Option<i32>) -> String {
    base_sequence.map_or_else(String::new, |s| format!(" (base sequence {s})"))
}

/// What to do about a code, for the error message.
fn hint(code: KafkaCode, api: ApiKey) -> String {
    match code {
        KafkaCode::TOPIC_AUTHORIZATION_FAILED
        | KafkaCode::CLUSTER_AUTHORIZATION_FAILED
        | KafkaCode::GROUP_AUTHORIZATION_FAILED
        | KafkaCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED => format!(
            "; authorization denied: grant this client's principal the ACL for {} \
             (see \"Least privilege\" in the README)",
            operation(api)
        ),
        _ => static_hint(code).to_owned(),
    }
}

fn static_hint(code: KafkaCode) -> &'static str {
    match code {
        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION => {
            "; the topic does not exist (or is still being created): create it, or retry shortly after creating it"
        }
        KafkaCode::NOT_LEADER_OR_FOLLOWER
        | KafkaCode::LEADER_NOT_AVAILABLE
        | KafkaCode::FENCED_LEADER_EPOCH
        | KafkaCode::UNKNOWN_LEADER_EPOCH => {
            "; leadership moved or is moving: refresh metadata and retry"
        }
        KafkaCode::UNSUPPORTED_VERSION => {
            "; the broker rejects this request version: check the broker's Kafka version"
        }
        KafkaCode::OFFSET_OUT_OF_RANGE => {
            "; the offset is before the log start or past the end: reset the position (ListOffsets)"
        }
        c if c.is_retriable() => "; this is retriable: retry after a backoff",
        _ => "",
    }
}

/// What to check after a refused login, by mechanism.
fn authentication_hint(mechanism: &str) -> String {
    match mechanism {
        "OAUTHBEARER" => "check that the token is current and that the broker's validator accepts \
                          its issuer, audience, signing key and scope"
            .to_owned(),
        "AWS_MSK_IAM" => "check the AWS credentials, the region, and that the IAM policy allows \
                          kafka-cluster:Connect on this cluster"
            .to_owned(),
        m => format!(
            "check sasl.username and the password, and that the user exists for {m} on the cluster"
        ),
    }
}

impl ClientError {
    /// The broker address the error is about, where there is one.
    pub fn broker(&self) -> Option<&str> {
        match self {
            Self::InvalidAddress { .. }
            | Self::NoBootstrapBrokers
            | Self::Bootstrap { .. }
            | Self::InvalidConfig { .. }
            | Self::TlsSetup { .. }
            | Self::SaslSetup { .. }
            | Self::TokenEndpoint { .. }
            | Self::NotDelivered { .. } => None,
            Self::Connect { broker, .. }
            | Self::ConnectTimeout { broker, .. }
            | Self::Tls { broker, .. }
            | Self::SaslMechanismNotEnabled { broker, .. }
            | Self::SaslAuthentication { broker, .. }
            | Self::SaslProtocol { broker, .. }
            | Self::Io { broker, .. }
            | Self::Timeout { broker, .. }
            | Self::Frame { broker, .. }
            | Self::Decode { broker, .. }
            | Self::Encode { broker, .. }
            | Self::Closed { broker, .. }
            | Self::UnexpectedCorrelationId { broker, .. }
            | Self::UnknownApiKey { broker, .. }
            | Self::ApiNotSupported { broker, .. }
            | Self::UnsupportedVersion { broker, .. }
            | Self::Kafka { broker, .. }
            | Self::UnknownPartition { broker, .. }
            | Self::NoLeader { broker, .. }
            | Self::UnknownBroker { broker, .. }
            | Self::IncompleteResponse { broker, .. } => Some(broker),
        }
    }

    /// Whether the same call may succeed if made again later, on a fresh
    /// connection or after a metadata refresh. TLS, SASL and authorization
    /// failures are not: the same settings fail the same way, and retrying
    /// them in a loop only floods the broker's log.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::Io { .. }
            | Self::Timeout { .. }
            | Self::Closed { .. }
            | Self::NoLeader { .. }
            | Self::UnknownBroker { .. } => true,
            // A garbled response: the connection that carried it is closed,
            // and a new one may well be fine (a faulty proxy, a bit flip).
            Self::Frame { .. } | Self::UnexpectedCorrelationId { .. } | Self::Decode { .. } => true,
            Self::Kafka { code, .. } => code.is_retriable(),
            Self::Bootstrap { last, .. } => last.is_retriable(),
            Self::TokenEndpoint { retriable, .. } => *retriable,
            _ => false,
        }
    }

    /// Whether the broker's bytes made no sense (a bad frame, a response
    /// out of order, one that does not decode, a frame cut short): the
    /// connection is closed and the problem logged as a warning.
    pub fn is_protocol_violation(&self) -> bool {
        matches!(
            self,
            Self::Frame { .. }
                | Self::UnexpectedCorrelationId { .. }
                | Self::Decode { .. }
                | Self::Closed {
                    mid_frame: true,
                    ..
                }
        )
    }

    /// The Kafka error code, if the broker sent one.
    pub fn kafka_code(&self) -> Option<KafkaCode> {
        match self {
            Self::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A non-zero Kafka error code from a response.
///
/// Codes this crate does not know (newer brokers add some) are kept as they
/// are: [`name`](Self::name) is `None` for them and they are not retriable,
/// which is also how the Java client treats unknown codes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaCode(i16);

impl KafkaCode {
    /// The code from a response's `error_code` field; `None` for 0 (no error).
    pub const fn from_code(code: i16) -> Option<Self> {
        if code == 0 { None } else { Some(Self(code)) }
    }

    /// The numeric code.
    pub const fn code(self) -> i16 {
        self.0
    }
}

impl fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "unknown error code {}", self.0),
        }
    }
}

impl fmt::Debug for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KafkaCode({self})")
    }
}

/// Declares the known codes once: a constant each, plus `name` and
/// `is_retriable` lookups generated from the same list so they cannot drift.
macro_rules! kafka_codes {
    ($($name:ident = $code:literal, $retriable:literal;)*) => {
        impl KafkaCode {
            $(
                #[doc = concat!("`", stringify!($name), "` (", stringify!($code), ")")]
                pub const $name: Self = Self($code);
            )*

            /// The code's name as Kafka spells it (`NOT_LEADER_OR_FOLLOWER`).
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($code => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// Whether Kafka classes the code as retriable: the same request
            /// may succeed later, possibly after a metadata refresh.
            pub const fn is_retriable(self) -> bool {
                match self.0 {
                    $($code => $retriable,)*
                    _ => false,
                }
            }
        }
    };
}

// Names and retriability follow Kafka's `Errors` table (retriable = the
// exception is a `RetriableException`).
kafka_codes! {
    UNKNOWN_SERVER_ERROR = -1, false;
    OFFSET_OUT_OF_RANGE = 1, false;
    CORRUPT_MESSAGE = 2, true;
    UNKNOWN_TOPIC_OR_PARTITION = 3, true;
    INVALID_FETCH_SIZE = 4, false;
    LEADER_NOT_AVAILABLE = 5, true;
    NOT_LEADER_OR_FOLLOWER = 6, true;
    REQUEST_TIMED_OUT = 7, true;
    BROKER_NOT_AVAILABLE = 8, false;
    REPLICA_NOT_AVAILABLE = 9, true;
    MESSAGE_TOO_LARGE = 10, false;
    STALE_CONTROLLER_EPOCH = 11, false;
    OFFSET_METADATA_TOO_LARGE = 12, false;
    NETWORK_EXCEPTION = 13, true;
    COORDINATOR_LOAD_IN_PROGRESS = 14, true;
    COORDINATOR_NOT_AVAILABLE = 15, true;
    NOT_COORDINATOR = 16, true;
    INVALID_TOPIC_EXCEPTION = 17, false;
    RECORD_LIST_TOO_LARGE = 18, false;
    NOT_ENOUGH_REPLICAS = 19, true;
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20, true;
    INVALID_REQUIRED_ACKS = 21, false;
    ILLEGAL_GENERATION = 22, false;
    INCONSISTENT_GROUP_PROTOCOL = 23, false;
    INVALID_GROUP_ID = 24, false;
    UNKNOWN_MEMBER_ID = 25, false;
    INVALID_SESSION_TIMEOUT = 26, false;
    REBALANCE_IN_PROGRESS = 27, false;
    INVALID_COMMIT_OFFSET_SIZE = 28, false;
    TOPIC_AUTHORIZATION_FAILED = 29, false;
    GROUP_AUTHORIZATION_FAILED = 30, false;
    CLUSTER_AUTHORIZATION_FAILED = 31, false;
    INVALID_TIMESTAMP = 32, false;
    UNSUPPORTED_SASL_MECHANISM = 33, false;
    ILLEGAL_SASL_STATE = 34, false;
    UNSUPPORTED_VERSION = 35, false;
    TOPIC_ALREADY_EXISTS = 36, false;
    INVALID_PARTITIONS = 37, false;
    INVALID_REPLICATION_FACTOR = 38, false;
    INVALID_REPLICA_ASSIGNMENT = 39, false;
    INVALID_CONFIG = 40, false;
    NOT_CONTROLLER = 41, true;
    INVALID_REQUEST = 42, false;
    UNSUPPORTED_FOR_MESSAGE_FORMAT = 43, false;
    POLICY_VIOLATION = 44, false;
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45, false;
    DUPLICATE_SEQUENCE_NUMBER = 46, false;
    INVALID_PRODUCER_EPOCH = 47, false;
    INVALID_TXN_STATE = 48, false;
    INVALID_PRODUCER_ID_MAPPING = 49, false;
    INVALID_TRANSACTION_TIMEOUT = 50, false;
    CONCURRENT_TRANSACTIONS = 51, false;
    TRANSACTION_COORDINATOR_FENCED = 52, false;
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53, false;
    SECURITY_DISABLED = 54, false;
    OPERATION_NOT_ATTEMPTED = 55, false;
    KAFKA_STORAGE_ERROR = 56, true;
    LOG_DIR_NOT_FOUND = 57, false;
    SASL_AUTHENTICATION_FAILED = 58, false;
    UNKNOWN_PRODUCER_ID = 59, false;
    REASSIGNMENT_IN_PROGRESS = 60, false;
    DELEGATION_TOKEN_AUTH_DISABLED = 61, false;
    DELEGATION_TOKEN_NOT_FOUND = 62, false;
    DELEGATION_TOKEN_OWNER_MISMATCH = 63, false;
    DELEGATION_TOKEN_REQUEST_NOT_ALLOWED = 64, false;
    DELEGATION_TOKEN_AUTHORIZATION_FAILED = 65, false;
    DELEGATION_TOKEN_EXPIRED = 66, false;
    INVALID_PRINCIPAL_TYPE = 67, false;
    NON_EMPTY_GROUP = 68, false;
    GROUP_ID_NOT_FOUND = 69, false;
    FETCH_SESSION_ID_NOT_FOUND = 70, true;
    INVALID_FETCH_SESSION_EPOCH = 71, true;
    LISTENER_NOT_FOUND = 72, true;
    TOPIC_DELETION_DISABLED = 73, false;
    FENCED_LEADER_EPOCH = 74, true;
    UNKNOWN_LEADER_EPOCH = 75, true;
    UNSUPPORTED_COMPRESSION_TYPE = 76, false;
    STALE_BROKER_EPOCH = 77, false;
    OFFSET_NOT_AVAILABLE = 78, true;
    MEMBER_ID_REQUIRED = 79, false;
    PREFERRED_LEADER_NOT_AVAILABLE = 80, true;
    GROUP_MAX_SIZE_REACHED = 81, false;
    FENCED_INSTANCE_ID = 82, false;
    ELIGIBLE_LEADERS_NOT_AVAILABLE = 83, true;
    ELECTION_NOT_NEEDED = 84, true;
    NO_REASSIGNMENT_IN_PROGRESS = 85, false;
    GROUP_SUBSCRIBED_TO_TOPIC = 86, false;
    INVALID_RECORD = 87, false;
    UNSTABLE_OFFSET_COMMIT = 88, true;
    THROTTLING_QUOTA_EXCEEDED = 89, true;
    PRODUCER_FENCED = 90, false;
    RESOURCE_NOT_FOUND = 91, false;
    DUPLICATE_RESOURCE = 92, false;
    UNACCEPTABLE_CREDENTIAL = 93, false;
    INCONSISTENT_VOTER_SET = 94, false;
    INVALID_UPDATE_VERSION = 95, false;
    FEATURE_UPDATE_FAILED = 96, false;
    PRINCIPAL_DESERIALIZATION_FAILURE = 97, false;
    SNAPSHOT_NOT_FOUND = 98, false;
    POSITION_OUT_OF_RANGE = 99, false;
    UNKNOWN_TOPIC_ID = 100, true;
    DUPLICATE_BROKER_REGISTRATION = 101, false;
    BROKER_ID_NOT_REGISTERED = 102, false;
    INCONSISTENT_TOPIC_ID = 103, true;
    INCONSISTENT_CLUSTER_ID = 104, false;
    TRANSACTIONAL_ID_NOT_FOUND = 105, false;
    FETCH_SESSION_TOPIC_ID_ERROR = 106, true;
    INELIGIBLE_REPLICA = 107, false;
    NEW_LEADER_ELECTED = 108, false;
    OFFSET_MOVED_TO_TIERED_STORAGE = 109, false;
    FENCED_MEMBER_EPOCH = 110, false;
    UNRELEASED_INSTANCE_ID = 111, false;
    UNSUPPORTED_ASSIGNOR = 112, false;
    STALE_MEMBER_EPOCH = 113, false;
    MISMATCHED_ENDPOINT_TYPE = 114, false;
    UNSUPPORTED_ENDPOINT_TYPE = 115, false;
    UNKNOWN_CONTROLLER_ID = 116, false;
    UNKNOWN_SUBSCRIPTION_ID = 117, false;
    TELEMETRY_TOO_LARGE = 118, false;
    INVALID_REGISTRATION = 119, false;
    TRANSACTION_ABORTABLE = 120, false;
    INVALID_RECORD_STATE = 121, false;
    SHARE_SESSION_NOT_FOUND = 122, true;
    INVALID_SHARE_SESSION_EPOCH = 123, true;
    FENCED_STATE_EPOCH = 124, false;
    INVALID_VOTER_KEY = 125, false;
    DUPLICATE_VOTER = 126, false;
    VOTER_NOT_FOUND = 127, false;
    INVALID_REGULAR_EXPRESSION = 128, false;
    REBOOTSTRAP_REQUIRED = 129, false;
    STREAMS_INVALID_TOPOLOGY = 130, false;
    STREAMS_INVALID_TOPOLOGY_EPOCH = 131, false;
    STREAMS_TOPOLOGY_FENCED = 132, false;
    SHARE_SESSION_LIMIT_REACHED = 133, true;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_not_an_error() {
        assert_eq!(KafkaCode::from_code(0), None);
        assert_eq!(
            KafkaCode::from_code(6),
            Some(KafkaCode::NOT_LEADER_OR_FOLLOWER)
        );
    }

    #[test]
    fn names_and_retriability() {
        let c = KafkaCode::NOT_LEADER_OR_FOLLOWER;
        assert_eq!(c.name(), Some("NOT_LEADER_OR_FOLLOWER"));
        assert!(c.is_retriable());
        assert_eq!(c.to_string(), "NOT_LEADER_OR_FOLLOWER (6)");
        assert!(!KafkaCode::INVALID_RECORD.is_retriable());
        assert!(!KafkaCode::OFFSET_OUT_OF_RANGE.is_retriable());
        assert!(KafkaCode::FENCED_LEADER_EPOCH.is_retriable());
        assert!(KafkaCode::UNKNOWN_LEADER_EPOCH.is_retriable());
        assert!(!KafkaCode::TOPIC_AUTHORIZATION_FAILED.is_retriable());
    }

    #[test]
    fn unknown_codes_are_kept_and_not_retriable() {
        let c = KafkaCode::from_code(9999).unwrap();
        assert_eq!(c.code(), 9999);
        assert_eq!(c.name(), None);
        assert!(!c.is_retriable());
        assert_eq!(c.to_string(), "unknown error code 9999");
    }

    /// Our table must agree with kafka-protocol's (generated from Kafka's own
    /// `Errors` list) on which codes are retriable, for every code both know.
    #[test]
    fn retriability_agrees_with_kafka_protocol() {
        for code in -1..=200i16 {
            let Some(ours) = KafkaCode::from_code(code) else {
                continue;
            };
            let Some(theirs) = kafka_protocol::ResponseError::try_from_code(code) else {
                continue;
            };
            if matches!(theirs, kafka_protocol::ResponseError::Unknown(_)) {
                assert_eq!(
                    ours.name(),
                    None,
                    "we name code {code}, kafka-protocol does not"
                );
                continue;
            }
            assert!(
                ours.name().is_some(),
                "code {code} ({theirs}) missing from our table"
            );
            assert_eq!(
                ours.is_retriable(),
                theirs.is_retriable(),
                "retriability of {ours} disagrees with kafka-protocol"
            );
        }
    }

    #[test]
    fn messages_carry_the_broker_and_what_to_do() {
        let e = ClientError::Kafka {
            broker: "b1:9092".into(),
            api: ApiKey::Fetch,
            code: KafkaCode::NOT_LEADER_OR_FOLLOWER,
            context: " for topic \"t\" partition 0".into(),
        };
        let s = e.to_string();
        assert!(
            s.contains("b1:9092") && s.contains("Fetch") && s.contains("retry"),
            "{s}"
        );
        assert!(e.is_retriable());
        assert_eq!(e.broker(), Some("b1:9092"));
    }

    #[test]
    fn authorization_errors_name_the_topic_and_the_operation() {
        let e = ClientError::Kafka {
            broker: "b1:9092".into(),
            api: ApiKey::Fetch,
            code: KafkaCode::TOPIC_AUTHORIZATION_FAILED,
            context: " for topic \"orders\" partition 0".into(),
        };
        let s = e.to_string();
        assert!(
            s.contains("\"orders\"") && s.contains("Read on the topic") && s.contains("denied"),
            "{s}"
        );
        assert!(!e.is_retriable());
    }

    #[test]
    fn security_failures_are_not_retriable() {
        let e = ClientError::SaslAuthentication {
            broker: "b".into(),
            mechanism: "SCRAM-SHA-512",
            username: "ferry".into(),
            detail: "invalid credentials".into(),
        };
        assert!(!e.is_retriable());
        let e = ClientError::Bootstrap {
            brokers: "b".into(),
            last: Box::new(ClientError::Tls {
                broker: "b".into(),
                problem: "unknown CA".into(),
            }),
        };
        assert!(!e.is_retriable());
    }
}
