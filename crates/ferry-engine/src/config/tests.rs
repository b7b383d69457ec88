#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::time::Duration;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, no_env)
}

/// The single problem of an invalid config, as "path: message".
fn problem(text: &str) -> String {
    match load(text) {
        Ok(_) => panic!("config should be invalid:\n{text}"),
        Err(ConfigError::Invalid(p)) => {
            assert_eq!(p.len(), 1, "expected one problem, got {p:#?}");
            p[0].to_string()
        }
        Err(e) => panic!("expected an invalid config, got {e}"),
    }
}

const TWO_CLUSTERS: &str = r#"
[clusters.east]
bootstrap_servers = ["10.0.0.1:9092"]
[clusters.west]
bootstrap_servers = ["10.0.1.1:9092"]
"#;

fn with_flows(flows: &str) -> String {
    format!("{TWO_CLUSTERS}\n{flows}")
}

const MINIMAL_FLOW: &str = "[[flows]]\nsource = \"east\"\ntarget = \"west\"\n";

#[test]
fn minimal_config_gets_every_default() {
    let c = load(&with_flows(MINIMAL_FLOW)).unwrap();
    let east = c.cluster("east").unwrap();
    assert_eq!(east.bootstrap_servers, ["10.0.0.1:9092"]);
    assert_eq!(east.client_id, "ferry");
    assert_eq!(east.request_timeout, Duration::from_secs(30));
    assert_eq!(east.connect_timeout, Duration::from_secs(10));
    assert_eq!(east.max_frame_size, ByteSize::mib(100));
    let f = &c.flows[0];
    assert_eq!(f.name, "east-to-west");
    assert_eq!(f.topics, [".*"]);
    assert!(f.exclude.is_empty());
    assert_eq!(f.naming, Naming::Prefix);
    assert_eq!(f.start, StartPosition::Earliest);
    assert_eq!(f.discovery_interval, Duration::from_secs(30));
    assert_eq!(f.exclude_configs, DEFAULT_EXCLUDE_CONFIGS);
    assert_eq!(f.replication_factor, -1);
    assert_eq!(f.tuning, Tuning::default());
    assert_eq!(f.tuning.memory_budget, ByteSize::mib(64));
    assert_eq!(f.tuning.fetch_max_bytes, ByteSize::mib(50));
    assert_eq!(f.tuning.partition_fetch_max_bytes, ByteSize::mib(1));
    assert_eq!(f.tuning.fetch_max_wait, Duration::from_millis(500));
    assert_eq!(f.tuning.max_in_flight_per_partition, 5);
    assert!(f.tuning.verify_crc);
    assert_eq!(f.tuning.checkpoint_interval, Duration::from_secs(5));
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // Built in code, the same config.
    let built = Config::new(
        [
            ("east", ClusterConfig::new(["10.0.0.1:9092"])),
            ("west", ClusterConfig::new(["10.0.1.1:9092"])),
        ],
        vec![FlowConfig::new("east", "west")],
    )
    .unwrap();
    assert_eq!(built, c);
}

#[test]
fn full_config_with_environment() {
    let text = r#"
[clusters.east]
bootstrap_servers = ["10.0.0.1:9092", "[::1]:9093"]
client_id = "ferry-${REGION}"
request_timeout = "1m"
connect_timeout = "2s"
max_frame_size = "200MiB"

[clusters.west]
bootstrap_servers = ["${WEST_BOOTSTRAP}"]

[[flows]]
name = "orders"
source = "east"
target = "west"
topics = ["orders\\..*", "payments"]
exclude = [".*-tmp"]
naming = "identity"
start = { timestamp = "2026-11-20T10:00:00Z" }
discovery_interval = "10s"
exclude_configs = ["min\\.insync\\.replicas"]
replication_factor = 3

[flows.tuning]
memory_budget = "256MiB"
fetch_max_bytes = "64MB"
partition_fetch_max_bytes = "512KiB"
fetch_max_wait = "250ms"
max_in_flight_per_partition = 1
verify_crc = false
checkpoint_interval = "1s"

[[flows]]
source = "west"
target = "east"
topics = ["audit"]
start = "latest"
"#;
    let env = |name: &str| match name {
        "REGION" => Some("eu".to_owned()),
        "WEST_BOOTSTRAP" => Some("west-kafka:9092".to_owned()),
        _ => None,
    };
    // identity east->west and prefix west->east form a loop: check it is refused...
    let err = Config::from_toml_str(text, env).unwrap_err().to_string();
    assert!(err.contains("replication loop"), "{err}");
    // ...and accept the config with prefix naming on the first flow.
    let text = text.replace("naming = \"identity\"", "naming = \"prefix\"");
    let c = Config::from_toml_str(&text, env).unwrap();
    let east = c.cluster("east").unwrap();
    assert_eq!(east.client_id, "ferry-eu");
    assert_eq!(east.request_timeout, Duration::from_secs(60));
    assert_eq!(east.connect_timeout, Duration::from_secs(2));
    assert_eq!(east.max_frame_size, ByteSize::mib(200));
    assert_eq!(
        c.cluster("west").unwrap().bootstrap_servers,
        ["west-kafka:9092"]
    );
    let f = &c.flows[0];
    assert_eq!(f.name, "orders");
    assert_eq!(f.topics, ["orders\\..*", "payments"]);
    assert_eq!(f.exclude, [".*-tmp"]);
    assert_eq!(
        f.start,
        StartPosition::Timestamp(Timestamp::from_unix_millis(1_795_168_800_000).unwrap())
    );
    assert_eq!(f.discovery_interval, Duration::from_secs(10));
    assert_eq!(f.exclude_configs, ["min\\.insync\\.replicas"]);
    assert_eq!(f.replication_factor, 3);
    let t = &f.tuning;
    assert_eq!(t.memory_budget, ByteSize::mib(256));
    assert_eq!(t.fetch_max_bytes, ByteSize(64_000_000));
    assert_eq!(t.partition_fetch_max_bytes, ByteSize::kib(512));
    assert_eq!(t.fetch_max_wait, Duration::from_millis(250));
    assert_eq!(t.max_in_flight_per_partition, 1);
    assert!(!t.verify_crc);
    assert_eq!(t.checkpoint_interval, Duration::from_secs(1));
    let back = &c.flows[1];
    assert_eq!(back.name, "west-to-east");
    assert_eq!(back.start, StartPosition::Latest);
    let policy = f.topic_policy(false).unwrap();
    assert_eq!(policy.map("orders.eu").unwrap(), "east.orders.eu");
    assert!(policy.map("orders.eu-tmp").is_err());
}

#[test]
fn bare_toml_datetime_and_sizes_as_integers() {
    let c = load(&with_flows(
        "[[flows]]\nsource = \"east\"\ntarget = \"west\"\n\
         start = { timestamp = 2026-11-20T11:00:00+01:00 }\n\
         [flows.tuning]\nfetch_max_bytes = 1048576\npartition_fetch_max_bytes = 1024\n",
    ))
    .unwrap();
    assert_eq!(
        c.flows[0].start.to_string(),
        "timestamp 2026-11-20T10:00:00Z"
    );
    assert_eq!(c.flows[0].tuning.fetch_max_bytes, ByteSize::mib(1));
}

#[test]
fn the_example_file_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/ferry.toml");
    let text = std::fs::read_to_string(path).unwrap();
    // The example reads one variable; give it a value.
    let c = Config::from_toml_str(&text, |name| {
        (name == "WEST_BOOTSTRAP").then(|| "10.1.0.1:9092".to_owned())
    })
    .unwrap();
    assert!(c.clusters.len() >= 2);
    assert!(c.flows.len() >= 2);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn syntax_errors_have_a_line() {
    let err = load("[clusters.east\nbootstrap_servers = []").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)));
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn unknown_keys_are_refused_everywhere() {
    assert_eq!(
        problem(&with_flows("[ferry]\nx = 1\n")),
        "ferry: unknown field `ferry`, expected one of `clusters`, `flows`, `metrics`"
    );
    let p = problem(&with_flows(&format!(
        "{MINIMAL_FLOW}[flows.tuning]\nmax_inflight = 3\n"
    )));
    assert!(
        p.starts_with("flows[0].tuning.max_inflight: unknown field `max_inflight`"),
        "{p}"
    );
    let p = problem(&format!(
        "{TWO_CLUSTERS}bootstrap = \"x:1\"\n{MINIMAL_FLOW}"
    ));
    assert!(
        p.starts_with("clusters.west.bootstrap: unknown field `bootstrap`"),
        "{p}"
    );
    let p = problem(&with_flows(
        "[[flows]]\nsource = \"east\"\ntarget = \"west\"\nstart = { time = \"x\" }\n",
    ));
    assert!(p.contains("flows[0].start: unknown field `time`"), "{p}");
}

#[test]
fn missing_required_fields_are_named() {
    assert_eq!(
        problem(&format!(
            "[clusters.east]\nclient_id = \"x\"\n{MINIMAL_FLOW}"
        )),
        "clusters.east.bootstrap_servers: is required"
    );
    assert_eq!(
        problem(&with_flows("[[flows]]\nsource = \"east\"\n")),
        "flows[0].target: is required"
    );
    assert_eq!(
        problem(TWO_CLUSTERS),
        "flows: at least one flow is required ([[flows]] with source and target)"
    );
    assert_eq!(
        problem(&with_flows(
            "[[flows]]\nsource = \"east\"\ntarget = \"west\"\nstart = {}\n"
        )),
        "flows[0].start.timestamp: is required"
    );
}

#[test]
fn bad_durations_and_sizes_name_the_field() {
    let p = problem(&with_flows(&format!(
        "{MINIMAL_FLOW}discovery_interval = \"30 seconds\"\n"
    )));
    assert!(
        p.starts_with("flows[0].discovery_interval: invalid duration \"30 seconds\""),
        "{p}"
    );
    let p = problem(&with_flows(&format!(
        "{MINIMAL_FLOW}discovery_interval = 30\n"
    )));
    assert!(
        p.starts_with("flows[0].discovery_interval: a duration needs a unit"),
        "{p}"
    );
    let p = problem(&with_flows(&format!(
        "{MINIMAL_FLOW}[flows.tuning]\nmemory_budget = \"64 megs\"\n"
    )));
    assert!(
        p.starts_with("flows[0].tuning.memory_budget: invalid size \"64 megs\""),
        "{p}"
    );
    assert_eq!(
        problem(&with_flows(&format!(
            "{MINIMAL_FLOW}[flows.tuning]\nmemory_budget = -5\n"
        ))),
        "flows[0].tuning.memory_budget: a size cannot be negative, got -5"
    );
    assert_eq!(
        problem(&with_flows(&format!(
            "{MINIMAL_FLOW}start = \"2026-11-20\"\n"
        ))),
        "flows[0].start: expected \"earliest\", \"latest\" or { timestamp = \"2026-11-20T10:00:00Z\" }, got \"2026-11-20\""
    );
    let p = problem(&with_flows(&format!(
        "{MINIMAL_FLOW}start = {{ timestamp = \"2026-11-20 10:00\" }}\n"
    )));
    assert!(p.starts_with("flows[0].start: invalid timestamp"), "{p}");
    assert_eq!(
        problem(&with_flows(&format!("{MINIMAL_FLOW}naming = \"suffix\"\n"))),
        "flows[0].naming: unknown variant `suffix`, expected `prefix` or `identity`"
    );
}

#[test]
fn out_of_range_values_name_the_field() {
    let second_flow = "[[flows]]\nname = \"two\"\nsource = \"east\"\ntarget = \"west\"\n\
                       topics = [\"b\"]\n[flows.tuning]\nmax_in_flight_per_partition = 9\n";
    assert_eq!(
        problem(&with_flows(&format!(
            "{MINIMAL_FLOW}topics = [\"a\"]\n{second_flow}"
        ))),
        "flows[1].tuning.max_in_flight_per_partition: must be between 1 and 5, got 9 \
         (the idempotent producer keeps order only up to 5 requests in flight)"
    );
    assert_eq!(
        problem(&with_flows(&format!(
            "{MINIMAL_FLOW}[flows.tuning]\ncheckpoint_interval = \"10ms\"\n"
        ))),
        "flows[0].tuning.checkpoint_interval: must be between 100ms and 1h, got 10ms"
    );
    assert_eq!(
        problem(&with_flows(&format!(
            "{MINIMAL_FLOW}[flows.tuning]\nmemory_budget = \"16MiB\"\n"
        ))),
        "flows[0].tuning.memory_budget: must be at least fetch_max_bytes (50MiB) so one fetch \
         response fits, got 16MiB"
    );
    assert_eq!(
        problem(&with_flows(&format!(
            "{MINIMAL_FLOW}replication_factor = 0\n"
        ))),
        "flows[0].replication_factor: must be -1 (the target broker's default) or between 1 \
         and 32767, got 0"
    );
    let p = problem(
        "[clusters.east]\nbootstrap_servers = [\"a:1\"]\nrequest_timeout = \"400ms\"\n\
         [clusters.west]\nbootstrap_servers = [\"b:1\"]\n[[flows]]\nsource = \"west\"\ntarget = \"east\"\n",
    );
    assert_eq!(
        p,
        "clusters.east.request_timeout: must be between 1s and 1h, got 400ms"
    );
    // Fetch settings against the source cluster's limits.
    let err = load(&format!(
        "[clusters.east]\nbootstrap_servers = [\"a:1\"]\nrequest_timeout = \"1s\"\n\
         max_frame_size = \"8MiB\"\n[clusters.west]\nbootstrap_servers = [\"b:1\"]\n\
         {MINIMAL_FLOW}[flows.tuning]\nfetch_max_wait = \"2s\"\nfetch_max_bytes = \"8MiB\"\n"
    ))
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(
            "flows[0].tuning.fetch_max_wait: must be shorter than clusters.east.request_timeout (1s), got 2s"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "flows[0].tuning.fetch_max_bytes: must be smaller than clusters.east.max_frame_size (8MiB), got 8MiB"
        ),
        "{text}"
    );
}

#[test]
fn bad_addresses_and_aliases() {
    assert_eq!(
        problem(&format!(
            "[clusters.east]\nbootstrap_servers = [\"a:1,b:2\"]\n[clusters.west]\n\
             bootstrap_servers = [\"c:1\"]\n{MINIMAL_FLOW}"
        )),
        "clusters.east.bootstrap_servers[0]: \"a:1,b:2\" holds several addresses: write one \
         \"host:port\" per list entry"
    );
    assert_eq!(
        problem(&format!(
            "[clusters.east]\nbootstrap_servers = []\n[clusters.west]\n\
             bootstrap_servers = [\"c:1\"]\n{MINIMAL_FLOW}"
        )),
        "clusters.east.bootstrap_servers: must list at least one \"host:port\""
    );
    let p = problem(&format!(
        "{TWO_CLUSTERS}[clusters.\"us.east\"]\nbootstrap_servers = [\"c:1\"]\n{MINIMAL_FLOW}"
    ));
    assert!(
        p.starts_with("clusters.us.east: invalid cluster alias \"us.east\""),
        "{p}"
    );
}

#[test]
fn bad_regexes_name_the_flow_and_the_pattern() {
    assert_eq!(
        problem(&with_flows(&format!(
            "{MINIMAL_FLOW}topics = [\"orders\", \"(pay\"]\n"
        ))),
        "flows[0].topics[1]: invalid regex \"(pay\" in flow \"east-to-west\": unclosed group"
    );
    let p = problem(&with_flows(&format!("{MINIMAL_FLOW}exclude = [\"[a-\"]\n")));
    assert!(
        p.starts_with("flows[0].exclude[0]: invalid regex \"[a-\" in flow \"east-to-west\""),
        "{p}"
    );
    let p = problem(&with_flows(&format!(
        "{MINIMAL_FLOW}exclude_configs = [\"*\"]\n"
    )));
    assert!(
        p.starts_with("flows[0].exclude_configs[0]: invalid regex"),
        "{p}"
    );
    assert_eq!(
        problem(&with_flows(&format!("{MINIMAL_FLOW}topics = []\n"))),
        "flows[0].topics: must list at least one pattern (\".*\" selects every topic)"
    );
}

#[test]
fn flows_must_name_existing_distinct_clusters_and_be_unique() {
    assert_eq!(
        problem(&with_flows(
            "[[flows]]\nsource = \"eest\"\ntarget = \"west\"\n"
        )),
        "flows[0].source: unknown cluster \"eest\" (clusters defined: east, west)"
    );
    assert_eq!(
        problem(&with_flows(
            "[[flows]]\nsource = \"east\"\ntarget = \"east\"\n"
        )),
        "flows[0].target: must differ from source (\"east\"): a flow copies between two clusters"
    );
    let p = problem(&with_flows(&format!(
        "{MINIMAL_FLOW}topics = [\"a\"]\n{MINIMAL_FLOW}topics = [\"b\"]\n"
    )));
    assert_eq!(
        p,
        "flows[1].name: \"east-to-west\" is already the name of flows[0]; flow names must be \
         unique (flows between the same clusters need explicit names)"
    );
    assert_eq!(
        problem(&with_flows(&format!("{MINIMAL_FLOW}name = \"\"\n"))),
        "flows[0].name: must not be empty (leave it out for the default \"<source>-to-<target>\")"
    );
    assert!(
        problem(&with_flows(&format!("{MINIMAL_FLOW}name = \"a b\"\n")))
            .starts_with("flows[0].name: invalid flow name \"a b\"")
    );
}

#[test]
fn replication_loops_are_refused() {
    let pair = |a: &str, b: &str| {
        with_flows(&format!(
            "[[flows]]\nsource = \"east\"\ntarget = \"west\"\nnaming = \"{a}\"\n\
             [[flows]]\nsource = \"west\"\ntarget = \"east\"\nnaming = \"{b}\"\n"
        ))
    };
    // Prefix both ways: the topic policy refuses what comes back.
    load(&pair("prefix", "prefix")).unwrap();
    for (a, b) in [
        ("identity", "prefix"),
        ("prefix", "identity"),
        ("identity", "identity"),
    ] {
        let p = problem(&pair(a, b));
        assert!(p.contains("replication loop"), "{a}/{b}: {p}");
        assert!(p.contains("identity naming"), "{p}");
    }
    assert_eq!(
        problem(&pair("identity", "prefix")),
        "flows[0]: replication loop: flows[0] \"east-to-west\" (east -> west, identity naming), \
         flows[1] \"west-to-east\" (west -> east, prefix naming): with identity naming a \
         mirrored topic keeps its name, so it would be copied back and forth forever; use \
         prefix naming or drop one direction"
    );
    // A ring of three clusters, all prefix.
    let ring = "[clusters.a]\nbootstrap_servers = [\"a:1\"]\n[clusters.b]\nbootstrap_servers = [\"b:1\"]\n\
                [clusters.c]\nbootstrap_servers = [\"c:1\"]\n\
                [[flows]]\nsource = \"a\"\ntarget = \"b\"\n[[flows]]\nsource = \"b\"\ntarget = \"c\"\n\
                [[flows]]\nsource = \"c\"\ntarget = \"a\"\n";
    let p = problem(ring);
    assert!(p.starts_with("flows[0]: replication loop: flows[0]"), "{p}");
    assert!(p.contains("ring of three or more clusters"), "{p}");
    // A chain, and a hub with prefix naming both ways, are fine.
    let chain = ring.replace(
        "source = \"c\"\ntarget = \"a\"",
        "source = \"a\"\ntarget = \"c\"",
    );
    load(&chain).unwrap();
    let hub = "[clusters.a]\nbootstrap_servers = [\"a:1\"]\n[clusters.b]\nbootstrap_servers = [\"b:1\"]\n\
               [clusters.c]\nbootstrap_servers = [\"c:1\"]\n\
               [[flows]]\nsource = \"a\"\ntarget = \"b\"\n[[flows]]\nsource = \"b\"\ntarget = \"a\"\n\
               [[flows]]\nsource = \"b\"\ntarget = \"c\"\n[[flows]]\nsource = \"c\"\ntarget = \"b\"\n";
    load(hub).unwrap();
}

#[test]
fn unset_environment_variables_name_field_and_variable() {
    let text = format!(
        "[clusters.east]\nbootstrap_servers = [\"a:1\"]\n[clusters.west]\n\
         bootstrap_servers = [\"${{WEST_BOOTSTRAP}}\"]\n{MINIMAL_FLOW}"
    );
    assert_eq!(
        problem(&text),
        "clusters.west.bootstrap_servers[0]: environment variable WEST_BOOTSTRAP is not set"
    );
    let c =
        Config::from_toml_str(&text, |n| (n == "WEST_BOOTSTRAP").then(|| "w:1".into())).unwrap();
    assert_eq!(c.cluster("west").unwrap().bootstrap_servers, ["w:1"]);
}

#[test]
fn several_problems_are_reported_together() {
    let err = load(&with_flows(
        "[[flows]]\nsource = \"nope\"\ntarget = \"west\"\ntopics = [\"(\"]\n\
         [flows.tuning]\nmax_in_flight_per_partition = 0\n",
    ))
    .unwrap_err();
    let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "flows[0].source",
            "flows[0].topics[0]",
            "flows[0].tuning.max_in_flight_per_partition"
        ]
    );
    assert_eq!(err.to_string().lines().count(), 3);
}

#[test]
fn warnings_for_possible_collisions_and_shared_clusters() {
    let c = load(&format!(
        "{TWO_CLUSTERS}[clusters.north]\nbootstrap_servers = [\"10.0.2.1:9092\"]\n\
         [[flows]]\nsource = \"east\"\ntarget = \"west\"\nnaming = \"identity\"\n\
         [[flows]]\nsource = \"north\"\ntarget = \"west\"\nnaming = \"identity\"\n"
    ))
    .unwrap();
    let w = c.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].path, "flows[0], flows[1]");
    assert!(w[0].message.contains("both write into cluster \"west\""));
    let same = load(
        "[clusters.a]\nbootstrap_servers = [\"k:9092\"]\n[clusters.a2]\nbootstrap_servers = [\"k:9092\"]\n\
         [[flows]]\nsource = \"a\"\ntarget = \"a2\"\n",
    )
    .unwrap();
    let w = same.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].message
            .contains("share the bootstrap address \"k:9092\"")
    );
}

#[test]
fn code_built_configs_are_validated_too() {
    let mut flow = FlowConfig::new("east", "west");
    flow.tuning.max_in_flight_per_partition = 9;
    flow.name = String::new();
    let err = Config::new(
        [
            ("east", ClusterConfig::new(["a:1"])),
            ("west", ClusterConfig::new(["b:1"])),
        ],
        vec![flow],
    )
    .unwrap_err();
    let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "flows[0].name",
            "flows[0].tuning.max_in_flight_per_partition"
        ]
    );
}

#[test]
fn wrong_types_are_named_in_toml_words() {
    assert_eq!(
        problem(&format!(
            "[clusters.east]\nbootstrap_servers = \"a:1\"\n[clusters.west]\n\
             bootstrap_servers = [\"b:1\"]\n{MINIMAL_FLOW}"
        )),
        "clusters.east.bootstrap_servers: invalid type: string \"a:1\", expected a list"
    );
    assert_eq!(
        problem(&format!("[clusters]\neast = \"a:1\"\n{MINIMAL_FLOW}")),
        "clusters.east: invalid type: string \"a:1\", expected a table"
    );
}

#[test]
fn group_sync_settings_are_checked_and_default_like_mirrormaker() {
    let config = Config::from_toml_str(&with_flows(MINIMAL_FLOW), |_| None).unwrap();
    let groups = &config.flows[0].groups;
    assert!(groups.enabled);
    assert_eq!(groups.include, [".*"]);
    assert_eq!(
        groups.exclude,
        ["console-consumer-.*", "connect-.*", "__.*"]
    );
    assert_eq!(groups.interval, std::time::Duration::from_secs(5));
    let p = problem(&with_flows(&format!(
        "{MINIMAL_FLOW}[flows.groups]\ninclude = [\"(app\"]\n"
    )));
    assert!(
        p.starts_with("flows[0].groups.include[0]: invalid regex \"(app\""),
        "{p}"
    );
    let p = problem(&with_flows(&format!(
        "{MINIMAL_FLOW}[flows.groups]\ninterval = \"100ms\"\n"
    )));
    assert!(p.starts_with("flows[0].groups.interval: "), "{p}");
}

fn secure_cluster(security: &str) -> String {
    format!(
        "[clusters.east]\nbootstrap_servers = [\"10.0.0.1:9093\"]\n{security}\n\
         [clusters.west]\nbootstrap_servers = [\"10.0.1.1:9092\"]\n{MINIMAL_FLOW}"
    )
}

#[test]
fn sasl_ssl_with_the_password_from_the_environment() {
    let text = secure_cluster(
        "security_protocol = \"sasl_ssl\"\n\
         [clusters.east.tls]\nserver_name = \"kafka.internal\"\n\
         [clusters.east.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"ferry\"\n\
         password = \"${EAST_PASSWORD}\"\n",
    );
    let c = Config::from_toml_str(&text, |name| {
        (name == "EAST_PASSWORD").then(|| "hunter2-from-env".to_owned())
    })
    .unwrap();
    let east = c.cluster("east").unwrap();
    assert_eq!(east.security_protocol, SecurityProtocol::SaslSsl);
    let client = east.client_config();
    let tls = client.connection.tls.as_ref().unwrap();
    assert_eq!(tls.server_name.as_deref(), Some("kafka.internal"));
    assert_eq!(tls.ca_file, None);
    let sasl = client.connection.sasl.as_ref().unwrap();
    assert_eq!(sasl.username, "ferry");
    assert_eq!(
        sasl.password,
        ferry_client::Password::Value(ferry_client::Secret::new("hunter2-from-env"))
    );
    // Never printed.
    for shown in [format!("{c:?}"), format!("{client:?}"), format!("{c:#?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // The plaintext cluster gets neither.
    let west = c.cluster("west").unwrap().client_config();
    assert!(west.connection.tls.is_none() && west.connection.sasl.is_none());
}

#[test]
fn security_settings_must_fit_the_protocol() {
    assert_eq!(
        problem(&secure_cluster("security_protocol = \"sasl_ssl\"\n")),
        "clusters.east.sasl: is required with security_protocol \"sasl_ssl\": add \
         [clusters.east.sasl] with mechanism, username and password (or password_file)"
    );
    assert!(
        problem(&secure_cluster(
            "[clusters.east.tls]\nserver_name = \"x\"\n"
        ))
        .starts_with("clusters.east.tls: TLS settings need security_protocol")
    );
    assert!(
        problem(&secure_cluster(
            "security_protocol = \"ssl\"\n[clusters.east.sasl]\nmechanism = \"PLAIN\"\n\
             username = \"u\"\npassword = \"p\"\n"
        ))
        .starts_with("clusters.east.sasl: SASL settings need security_protocol")
    );
    assert_eq!(
        problem(&secure_cluster(
            "security_protocol = \"ssl\"\n[clusters.east.tls]\ncert_file = \"/etc/hostname\"\n"
        )),
        "clusters.east.tls: set cert_file and key_file together (mutual TLS), or neither"
    );
    assert_eq!(
        problem(&secure_cluster(
            "security_protocol = \"ssl\"\n[clusters.east.tls]\nca_file = \"/nonexistent/ca.pem\"\n"
        )),
        "clusters.east.tls.ca_file: /nonexistent/ca.pem is not a readable file"
    );
    assert_eq!(
        problem(&secure_cluster(
            "security_protocol = \"sasl_plaintext\"\n[clusters.east.sasl]\n\
             mechanism = \"SCRAM-SHA-256\"\nusername = \"u\"\n"
        )),
        "clusters.east.sasl: set password (e.g. \"${FERRY_PASSWORD}\") or password_file"
    );
    assert!(
        problem(&secure_cluster(
            "security_protocol = \"sasl_plaintext\"\n[clusters.east.sasl]\n\
             mechanism = \"GSSAPI\"\nusername = \"u\"\npassword = \"p\"\n"
        ))
        .starts_with("clusters.east.sasl.mechanism: unknown variant `GSSAPI`")
    );
    assert!(
        problem(&secure_cluster("security_protocol = \"tls\"\n"))
            .starts_with("clusters.east.security_protocol: unknown variant `tls`")
    );
}

#[test]
fn passwords_never_appear_in_errors() {
    // A number where a string belongs: serde would quote it.
    let m = problem(&secure_cluster(
        "security_protocol = \"sasl_ssl\"\n[clusters.east.sasl]\nmechanism = \"PLAIN\"\n\
         username = \"u\"\npassword = 987654321\n",
    ));
    assert!(
        !m.contains("987654321") && m.contains("expected a string"),
        "{m}"
    );
    // A syntax error on the password's line: toml would quote the line.
    let err = load(&secure_cluster(
        "security_protocol = \"sasl_ssl\"\n[clusters.east.sasl]\nmechanism = \"PLAIN\"\n\
         username = \"u\"\npassword = \"unterminated-s3cret\n",
    ))
    .unwrap_err();
    let m = err.to_string();
    assert!(!m.contains("s3cret") && m.contains("line 7"), "{m}");
}

#[test]
fn risky_security_settings_are_warned_about() {
    let c = load(&secure_cluster(
        "security_protocol = \"sasl_plaintext\"\n[clusters.east.sasl]\nmechanism = \"PLAIN\"\n\
         username = \"u\"\npassword_file = \"/etc/hostname\"\n",
    ))
    .unwrap();
    let w: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert!(w.iter().any(|w| w.contains("unencrypted")), "{w:?}");
    let c = load(&secure_cluster(
        "security_protocol = \"ssl\"\n[clusters.east.tls]\ninsecure_skip_verify = true\n",
    ))
    .unwrap();
    let w: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert!(
        w.iter()
            .any(|w| w.starts_with("clusters.east.tls.insecure_skip_verify")),
        "{w:?}"
    );
}

#[test]
fn batching_is_off_by_default_and_sizes_are_checked() {
    let c = load(&with_flows(MINIMAL_FLOW)).unwrap();
    assert_eq!(c.flows[0].batching, Batching::default());
    assert_eq!(c.flows[0].batching.coalesce_below, None);
    assert_eq!(c.flows[0].batching.coalesce_max, ByteSize::kib(256));
    let c = load(&with_flows(&format!(
        "{MINIMAL_FLOW}[flows.batching]\ncoalesce_below = \"16KiB\"\ncoalesce_max = \"1MiB\"\n"
    )))
    .unwrap();
    assert_eq!(c.flows[0].batching.coalesce_below, Some(ByteSize::kib(16)));
    assert_eq!(c.flows[0].batching.coalesce_max, ByteSize::mib(1));
    assert_eq!(
        problem(&with_flows(&format!(
            "{MINIMAL_FLOW}[flows.batching]\ncoalesce_below = \"512KiB\"\n"
        ))),
        "flows[0].batching.coalesce_below: must be between 1B and 256KiB, got 512KiB"
    );
    assert_eq!(
        problem(&with_flows(&format!(
            "{MINIMAL_FLOW}[flows.batching]\ncoalesce_max = \"64MiB\"\n"
        ))),
        "flows[0].batching.coalesce_max: must be between 1KiB and 16MiB, got 64MiB"
    );
    assert!(
        problem(&with_flows(&format!(
            "{MINIMAL_FLOW}[flows.batching]\ncoalesce_below = \"lots\"\n"
        )))
        .contains("coalesce_below")
    );
}

#[test]
fn oauthbearer_client_credentials_with_extensions() {
    let text = secure_cluster(
        "security_protocol = \"sasl_ssl\"\n\
         [clusters.east.sasl]\nmechanism = \"OAUTHBEARER\"\n\
         token_endpoint = \"https://idp.example.com/oauth2/token\"\n\
         client_id = \"ferry-app\"\nclient_secret = \"${EAST_SECRET}\"\nscope = \"kafka\"\n\
         [clusters.east.sasl.extensions]\nlogicalCluster = \"lkc-123\"\nidentityPoolId = \"pool-9\"\n",
    );
    let c = Config::from_toml_str(&text, |name| {
        (name == "EAST_SECRET").then(|| "client-s3cret-from-env".to_owned())
    })
    .unwrap();
    let client = c.cluster("east").unwrap().client_config();
    let sasl = client.connection.sasl.as_ref().unwrap();
    assert_eq!(sasl.mechanism, ferry_client::SaslMechanism::OAuthBearer);
    let oauth = sasl.oauth.as_ref().unwrap();
    assert_eq!(
        oauth.extensions,
        vec![
            ("identityPoolId".to_owned(), "pool-9".to_owned()),
            ("logicalCluster".to_owned(), "lkc-123".to_owned())
        ]
    );
    match &oauth.token {
        ferry_client::TokenSource::ClientCredentials(oidc) => {
            assert_eq!(oidc.endpoint(), "https://idp.example.com/oauth2/token");
            assert_eq!(oidc.client_id(), "ferry-app");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sasl.principal(), "client ferry-app");
    for shown in [format!("{c:?}"), format!("{client:?}"), format!("{c:#?}")] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

#[test]
fn oauthbearer_settings_are_checked() {
    let oauth = |fields: &str| {
        secure_cluster(&format!(
            "security_protocol = \"sasl_ssl\"\n[clusters.east.sasl]\nmechanism = \"OAUTHBEARER\"\n{fields}"
        ))
    };
    assert!(
        problem(&oauth("")).starts_with(
            "clusters.east.sasl: OAUTHBEARER needs exactly one of token_file, token_env or token_endpoint"
        )
    );
    assert_eq!(
        problem(&oauth(
            "token_env = \"T\"\ntoken_file = \"/etc/hostname\"\n"
        )),
        "clusters.east.sasl: OAUTHBEARER needs exactly one of token_file, token_env or \
         token_endpoint (with client_id and client_secret)"
    );
    assert_eq!(
        problem(&oauth(
            "token_endpoint = \"http://idp/token\"\nclient_id = \"a\"\nclient_secret = \"s\"\n"
        )),
        "clusters.east.sasl.token_endpoint: \"http://idp/token\" must be an https:// URL"
    );
    assert_eq!(
        problem(&oauth(
            "token_endpoint = \"https://idp/token\"\nclient_id = \"a\"\n"
        )),
        "clusters.east.sasl: set client_secret (e.g. \"${FERRY_CLIENT_SECRET}\") or client_secret_file"
    );
    assert_eq!(
        problem(&oauth(
            "token_endpoint = \"https://idp/token\"\nclient_secret = \"s\"\n"
        )),
        "clusters.east.sasl.client_id: is required with token_endpoint"
    );
    assert_eq!(
        problem(&oauth("token_env = \"T\"\nusername = \"u\"\n")),
        "clusters.east.sasl: username/password do not apply to OAUTHBEARER; use client_id and client_secret"
    );
    assert_eq!(
        problem(&oauth(
            "token_env = \"T\"\n[clusters.east.sasl.extensions]\nlogical_cluster = \"x\"\n"
        )),
        "clusters.east.sasl.extensions.logical_cluster: extension key \"logical_cluster\" must be letters only"
    );
    assert_eq!(
        problem(&secure_cluster(
            "security_protocol = \"sasl_ssl\"\n[clusters.east.sasl]\nmechanism = \"PLAIN\"\n\
             username = \"u\"\npassword = \"p\"\ntoken_env = \"T\"\n"
        )),
        "clusters.east.sasl: token and OIDC settings apply to mechanism \"OAUTHBEARER\" only"
    );
    // A static token from a variable is valid on its own.
    let c = load(&oauth("token_env = \"KAFKA_TOKEN\"\n")).unwrap();
    let sasl = c
        .cluster("east")
        .unwrap()
        .client_config()
        .connection
        .sasl
        .unwrap();
    assert_eq!(sasl.principal(), "token variable KAFKA_TOKEN");
}

#[test]
fn aws_msk_iam_settings() {
    let iam = |fields: &str| {
        secure_cluster(&format!(
            "security_protocol = \"sasl_ssl\"\n[clusters.east.sasl]\nmechanism = \"AWS_MSK_IAM\"\n{fields}"
        ))
    };
    let c = load(&iam(
        "aws_region = \"eu-west-1\"\naws_profile = \"mirror\"\n",
    ))
    .unwrap();
    let sasl = c
        .cluster("east")
        .unwrap()
        .client_config()
        .connection
        .sasl
        .unwrap();
    assert_eq!(sasl.mechanism, ferry_client::SaslMechanism::AwsMskIam);
    let aws = sasl.aws.as_ref().unwrap();
    assert_eq!(aws.region.as_deref(), Some("eu-west-1"));
    assert_eq!(aws.profile.as_deref(), Some("mirror"));
    // Region and profile may come from the environment instead.
    assert!(load(&iam("")).is_ok());
    assert_eq!(
        problem(&iam("username = \"u\"\n")),
        "clusters.east.sasl: username/password do not apply to AWS_MSK_IAM: credentials come \
         from the AWS environment variables, web identity or the shared credentials file"
    );
    assert_eq!(
        problem(&iam("token_env = \"T\"\n")),
        "clusters.east.sasl: token and OIDC settings apply to mechanism \"OAUTHBEARER\" only"
    );
    assert_eq!(
        problem(&secure_cluster(
            "security_protocol = \"sasl_ssl\"\n[clusters.east.sasl]\nmechanism = \"PLAIN\"\n\
             username = \"u\"\npassword = \"p\"\naws_region = \"eu-west-1\"\n"
        )),
        "clusters.east.sasl: aws_region and aws_profile apply to mechanism \"AWS_MSK_IAM\" only"
    );
}
