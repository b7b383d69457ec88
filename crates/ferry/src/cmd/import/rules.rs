//! Every MM2 key the importer knows, in one table: which scope it belongs
//! to and what it becomes. The handlers live in `flows.rs` (connector
//! settings and client overrides that tune a flow) and `security.rs`.

use super::draft::{ClusterDraft, FlowDraft};
use super::flows as f;
use super::mapping::Lookup;
use super::report::Verdict;
use super::security as s;

pub type FlowFn = fn(&mut FlowDraft, &str, &Lookup<'_>) -> Verdict;
pub type ClusterFn = fn(&mut ClusterDraft, &str, &Lookup<'_>) -> Verdict;

/// What a key is and what it becomes.
#[derive(Clone, Copy)]
pub enum Rule {
    /// `clusters`, `A->B.enabled`, `<alias>.bootstrap.servers`: read while
    /// building the draft's skeleton.
    Skeleton,
    /// A connector setting: top level or `A->B.`, applied to each flow.
    Flow(FlowFn),
    /// A client setting: top level or `<alias>.`, applied to each cluster.
    Cluster(ClusterFn),
    /// `<alias>.consumer.*`: applied to the flows reading from the cluster.
    Consumer(FlowFn),
    /// `<alias>.producer.*`: applied to the flows writing to the cluster.
    Producer(FlowFn),
    Ignored(&'static str),
    Unsupported(&'static str),
}

const CONNECT: &str = "a Kafka Connect setting: ferry is not a Connect connector and has no \
                       workers, tasks or Connect topics (it keeps its state in `__ferry_*` \
                       topics on the target)";
const OFFSET_SYNCS: &str = "ferry writes no offset syncs: it records every mirrored batch's \
                            offsets in its exact offset map on the target, and writes nothing \
                            to the source";
const CLIENT: &str = "a Java client setting with no ferry equivalent";
const TLS_ENGINE: &str = "ferry uses rustls: TLS 1.2 and 1.3 with its safe default cipher \
                          suites";
const NOT_COPIED: &str = "not copied: ferry reads PEM files without a password (the private \
                          key must be unencrypted)";
const NOT_SASL: &str = "ferry logs in with SASL PLAIN or SCRAM (username and password) only; \
                        OAUTHBEARER, GSSAPI and cloud IAM are tracked in issue 20";

/// Every MM2 key the importer knows. A key ending in `*` matches every key
/// starting with what precedes it; an exact key wins over a prefix, a longer
/// prefix over a shorter one.
#[rustfmt::skip]
pub const RULES: &[(&str, Rule)] = &[
    ("clusters", Rule::Skeleton),
    ("enabled", Rule::Skeleton),
    ("bootstrap.servers", Rule::Skeleton),
    // what is mirrored, and under which name
    ("topics", Rule::Flow(f::topics)),
    ("topics.exclude", Rule::Flow(f::topics_exclude)),
    ("topics.blacklist", Rule::Flow(f::topics_exclude)),
    ("groups", Rule::Flow(f::groups)),
    ("groups.exclude", Rule::Flow(f::groups_exclude)),
    ("groups.blacklist", Rule::Flow(f::groups_exclude)),
    ("replication.policy.class", Rule::Flow(f::policy)),
    ("replication.policy.separator", Rule::Flow(f::separator)),
    ("topic.filter.class", Rule::Flow(f::filter_class)),
    ("group.filter.class", Rule::Flow(f::filter_class)),
    ("config.property.filter.class", Rule::Flow(f::filter_class)),
    ("refresh.topics.interval.seconds", Rule::Flow(f::refresh_topics_interval)),
    ("refresh.topics.enabled", Rule::Flow(f::refresh_topics_enabled)),
    ("refresh.groups.interval.seconds", Rule::Ignored("ferry finds groups at every group sync ([flows.groups] interval)")),
    ("refresh.groups.enabled", Rule::Ignored("ferry finds groups at every group sync ([flows.groups] interval)")),
    // topic creation and configs
    ("replication.factor", Rule::Flow(f::replication_factor)),
    ("config.properties.exclude", Rule::Flow(f::config_exclude)),
    ("config.properties.blacklist", Rule::Flow(f::config_exclude)),
    ("sync.topic.configs.enabled", Rule::Flow(f::sync_configs)),
    ("sync.topic.configs.interval.seconds", Rule::Ignored("ferry copies topic configs when it creates a topic, not periodically")),
    ("use.incremental.alter.configs", Rule::Ignored("ferry copies topic configs when it creates a topic, not periodically")),
    ("sync.topic.acls.enabled", Rule::Flow(f::sync_acls)),
    ("sync.topic.acls.interval.seconds", Rule::Ignored("ferry copies no ACLs")),
    // consumer groups
    ("sync.group.offsets.enabled", Rule::Flow(f::sync_groups)),
    ("sync.group.offsets.interval.seconds", Rule::Flow(f::sync_groups_interval)),
    ("emit.checkpoints.enabled", Rule::Flow(f::checkpoints)),
    ("emit.checkpoints.interval.seconds", Rule::Flow(f::checkpoints)),
    ("checkpoints.topic.replication.factor", Rule::Flow(f::checkpoints)),
    ("offset-syncs.topic.location", Rule::Ignored(OFFSET_SYNCS)),
    ("offset-syncs.topic.replication.factor", Rule::Ignored(OFFSET_SYNCS)),
    ("offset.lag.max", Rule::Ignored(OFFSET_SYNCS)),
    ("emit.offset-syncs.enabled", Rule::Ignored(OFFSET_SYNCS)),
    // heartbeats
    ("emit.heartbeats.enabled", Rule::Flow(f::heartbeats)),
    ("emit.heartbeats.interval.seconds", Rule::Flow(f::heartbeats)),
    ("heartbeats.topic.replication.factor", Rule::Flow(f::heartbeats)),
    // how MM2 runs
    ("tasks.max", Rule::Ignored("ferry fetches every partition from its leader in one process with several requests in flight: there are no tasks to split the work into")),
    ("exactly.once.source.support", Rule::Flow(f::exactly_once)),
    ("consumer.poll.timeout.ms", Rule::Ignored(CLIENT)),
    ("admin.timeout.ms", Rule::Ignored(CLIENT)),
    ("replication.policy.internal.topic.separator.enabled", Rule::Ignored("ferry names no MM2 internal topics")),
    ("add.source.alias.to.metrics", Rule::Ignored("ferry's metrics are labelled by flow")),
    ("metric.reporters", Rule::Ignored("ferry exposes Prometheus metrics at [metrics] listen")),
    ("metrics.*", Rule::Ignored("ferry exposes Prometheus metrics at [metrics] listen")),
    ("config.providers*", Rule::Ignored("ferry reads secrets from ${VAR} environment references or password_file")),
    ("name", Rule::Ignored(CONNECT)),
    ("connector.class", Rule::Ignored(CONNECT)),
    ("source.cluster.alias", Rule::Ignored(CONNECT)),
    ("target.cluster.alias", Rule::Ignored(CONNECT)),
    ("source.cluster.*", Rule::Ignored("Connect-mode client settings: write them per cluster (<alias>.)")),
    ("target.cluster.*", Rule::Ignored("Connect-mode client settings: write them per cluster (<alias>.)")),
    ("key.converter*", Rule::Ignored(CONNECT)),
    ("value.converter*", Rule::Ignored(CONNECT)),
    ("header.converter*", Rule::Ignored(CONNECT)),
    ("group.id", Rule::Ignored(CONNECT)),
    ("offset.storage.*", Rule::Ignored(CONNECT)),
    ("config.storage.*", Rule::Ignored(CONNECT)),
    ("status.storage.*", Rule::Ignored(CONNECT)),
    ("offset.flush.*", Rule::Ignored(CONNECT)),
    ("plugin.path", Rule::Ignored(CONNECT)),
    ("plugin.discovery", Rule::Ignored(CONNECT)),
    ("listeners", Rule::Ignored(CONNECT)),
    ("rest.*", Rule::Ignored(CONNECT)),
    ("admin.listeners", Rule::Ignored(CONNECT)),
    ("dedicated.mode.*", Rule::Ignored(CONNECT)),
    ("scheduled.rebalance.max.delay.ms", Rule::Ignored(CONNECT)),
    ("connect.protocol", Rule::Ignored(CONNECT)),
    ("session.timeout.ms", Rule::Ignored(CONNECT)),
    ("heartbeat.interval.ms", Rule::Ignored(CONNECT)),
    ("rebalance.timeout.ms", Rule::Ignored(CONNECT)),
    ("task.shutdown.graceful.timeout.ms", Rule::Ignored(CONNECT)),
    ("errors.*", Rule::Ignored(CONNECT)),
    ("transforms*", Rule::Unsupported("ferry forwards batches unchanged: single message transforms cannot be applied")),
    // per-cluster client settings
    ("client.id", Rule::Cluster(client_id)),
    ("request.timeout.ms", Rule::Cluster(request_timeout)),
    ("security.protocol", Rule::Cluster(s::protocol)),
    ("ssl.truststore.location", Rule::Cluster(s::truststore)),
    ("ssl.truststore.type", Rule::Ignored("tells how to read ssl.truststore.location (see that line)")),
    ("ssl.keystore.location", Rule::Cluster(s::keystore)),
    ("ssl.keystore.type", Rule::Ignored("tells how to read ssl.keystore.location (see that line)")),
    ("ssl.truststore.password", Rule::Ignored(NOT_COPIED)),
    ("ssl.keystore.password", Rule::Ignored(NOT_COPIED)),
    ("ssl.key.password", Rule::Ignored(NOT_COPIED)),
    ("ssl.truststore.certificates", Rule::Unsupported("write the PEM certificates to a file and set tls.ca_file to it")),
    ("ssl.keystore.certificate.chain", Rule::Unsupported("write the PEM chain to a file and set tls.cert_file to it")),
    ("ssl.keystore.key", Rule::Unsupported("not copied: write the unencrypted PEM key to a file and set tls.key_file to it")),
    ("ssl.endpoint.identification.algorithm", Rule::Cluster(s::endpoint_identification)),
    ("ssl.*", Rule::Ignored(TLS_ENGINE)),
    ("sasl.mechanism", Rule::Cluster(s::mechanism)),
    ("sasl.jaas.config", Rule::Cluster(s::jaas)),
    ("sasl.*", Rule::Unsupported(NOT_SASL)),
    // consumer overrides: the flows reading from the cluster
    ("consumer.fetch.max.bytes", Rule::Consumer(f::fetch_max_bytes)),
    ("consumer.max.partition.fetch.bytes", Rule::Consumer(f::partition_fetch_bytes)),
    ("consumer.fetch.max.wait.ms", Rule::Consumer(f::fetch_max_wait)),
    ("consumer.isolation.level", Rule::Consumer(f::isolation)),
    ("consumer.auto.offset.reset", Rule::Consumer(f::offset_reset)),
    ("consumer.*", Rule::Ignored("a Kafka consumer setting: ferry's fetcher is not a consumer (its settings are in [flows.tuning])")),
    // producer overrides: the flows writing to the cluster
    ("producer.max.in.flight.requests.per.connection", Rule::Producer(f::in_flight)),
    ("producer.compression.type", Rule::Producer(f::compression)),
    ("producer.acks", Rule::Ignored("ferry always produces with acks=all, idempotently")),
    ("producer.enable.idempotence", Rule::Ignored("ferry always produces with acks=all, idempotently")),
    ("producer.*", Rule::Ignored("a Kafka producer setting: ferry forwards the source's batches as they are (no batching, linger or buffer); memory is bounded by [flows.tuning] memory_budget")),
    ("admin.*", Rule::Ignored("an admin client setting: ferry's admin requests use the cluster's settings")),
];

pub fn rule(rest: &str) -> Option<Rule> {
    if let Some((_, r)) = RULES.iter().find(|(k, _)| *k == rest) {
        return Some(*r);
    }
    RULES
        .iter()
        .filter_map(|(k, r)| k.strip_suffix('*').map(|p| (p, r)))
        .filter(|(p, _)| rest.starts_with(p))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, r)| *r)
}

fn client_id(c: &mut ClusterDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    c.main.set("client_id", v.trim(), "client.id");
    Verdict::mapped("client_id")
}

fn request_timeout(c: &mut ClusterDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    match v.trim().parse::<u64>() {
        Ok(ms) if (1000..=3_600_000).contains(&ms) => {
            c.main
                .set("request_timeout", format!("{ms}ms"), "request.timeout.ms");
            Verdict::mapped("request_timeout")
        }
        _ => Verdict::unsupported(format!("{v:?}: ferry accepts 1s..=1h")),
    }
}
