//! The mapping of every documented MM2 setting, one row each, and the
//! fixtures under testdata/mm2 through the whole import (the generated
//! config must load with ferry's own config loader).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use ferry_engine::config::{Config, Naming};

use super::*;

const BASE: &str = "clusters = A, B\nA.bootstrap.servers = a:9092\nB.bootstrap.servers = b:9092\nA->B.enabled = true\n";

fn kind(v: &Verdict) -> &'static str {
    match v {
        Verdict::Mapped { todo: None, .. } => "mapped",
        Verdict::Mapped { todo: Some(_), .. } => "mapped+todo",
        Verdict::Ignored(_) => "ignored",
        Verdict::Unsupported(_) => "unsupported",
        Verdict::Error(_) => "error",
    }
}

fn import(extra: &str) -> Imported {
    import_properties(&format!("{BASE}{extra}\n"), "test.properties").unwrap()
}

/// Loads generated TOML the way `ferry check` would, with the variables
/// set and the PEM files it names (still to be converted or mounted)
/// standing in as an existing file.
fn load(toml: &str) -> Config {
    let existing = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let files = ::regex::Regex::new(r#"(?m)^((?:ca|cert|key)_file) = "[^"]*""#).unwrap();
    let toml = files.replace_all(toml, format!("$1 = {existing:?}"));
    Config::from_toml_str(&toml, |_| Some("secret".into()))
        .unwrap_or_else(|e| panic!("{e}\n{toml}"))
}

#[test]
fn every_documented_setting_has_its_mapping() {
    // (MM2 line, its verdict, a fragment the generated TOML must hold, or "" for none)
    let rows: &[(&str, &str, &str)] = &[
        (
            "A->B.topics = orders.*, payments",
            "mapped",
            r#"topics = ["orders.*", "payments"]"#,
        ),
        ("topics = orders.*", "mapped", r#"topics = ["orders.*"]"#),
        // `\\.` in a properties file is `\.` (Java unescapes `\.` to `.`)
        (
            r"topics.exclude = .*\\.tmp",
            "mapped",
            r"exclude = ['.*\.tmp']",
        ),
        (
            r"topics.blacklist = .*\\.tmp",
            "mapped",
            r"exclude = ['.*\.tmp']",
        ),
        (
            "groups = billing-.*",
            "mapped",
            r#"include = ["billing-.*"]"#,
        ),
        (
            "groups.exclude = test-.*",
            "mapped",
            r#"exclude = ["test-.*"]"#,
        ),
        (
            "groups.blacklist = test-.*",
            "mapped",
            r#"exclude = ["test-.*"]"#,
        ),
        (
            "replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
            "mapped",
            r#"naming = "identity""#,
        ),
        (
            "replication.policy.class = org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
            "mapped",
            "",
        ),
        (
            "replication.policy.class = com.example.MyPolicy",
            "error",
            "",
        ),
        ("replication.policy.separator = .", "mapped", ""),
        ("replication.policy.separator = _", "unsupported", ""),
        ("sync.group.offsets.enabled = true", "mapped", ""),
        (
            "sync.group.offsets.enabled = false",
            "mapped",
            "enabled = false",
        ),
        (
            "sync.group.offsets.interval.seconds = 30",
            "mapped",
            r#"interval = "30s""#,
        ),
        (
            "sync.group.offsets.interval.seconds = 7200",
            "mapped+todo",
            r#"interval = "3600s""#,
        ),
        ("emit.checkpoints.enabled = false", "ignored", ""),
        ("emit.checkpoints.enabled = true", "unsupported", ""),
        ("emit.checkpoints.interval.seconds = 60", "unsupported", ""),
        (
            "refresh.topics.interval.seconds = 60",
            "mapped",
            r#"discovery_interval = "60s""#,
        ),
        ("refresh.topics.enabled = false", "unsupported", ""),
        ("refresh.groups.interval.seconds = 60", "ignored", ""),
        (
            r"config.properties.exclude = retention\\.ms, segment\\..*",
            "mapped",
            r"exclude_configs = ['retention\.ms', 'segment\..*']",
        ),
        (
            "config.properties.exclude = (?!retention).*",
            "unsupported",
            "",
        ),
        (
            "sync.topic.configs.enabled = false",
            "mapped",
            r#"exclude_configs = [".*"]"#,
        ),
        ("sync.topic.configs.enabled = true", "mapped+todo", ""),
        ("sync.topic.acls.enabled = true", "unsupported", ""),
        ("sync.topic.acls.enabled = false", "ignored", ""),
        ("replication.factor = 3", "mapped", "replication_factor = 3"),
        (
            "replication.factor = -1",
            "mapped",
            "replication_factor = -1",
        ),
        ("tasks.max = 8", "ignored", ""),
        ("offset-syncs.topic.location = target", "ignored", ""),
        ("offset.lag.max = 1", "ignored", ""),
        ("emit.heartbeats.enabled = false", "ignored", ""),
        ("emit.heartbeats.interval.seconds = 5", "unsupported", ""),
        ("heartbeats.topic.replication.factor = 3", "unsupported", ""),
        ("exactly.once.source.support = enabled", "unsupported", ""),
        (
            "A.consumer.fetch.max.bytes = 52428800",
            "mapped",
            "fetch_max_bytes = 52428800",
        ),
        (
            "A.consumer.max.partition.fetch.bytes = 4194304",
            "mapped",
            "partition_fetch_max_bytes = 4194304",
        ),
        (
            "A.consumer.fetch.max.wait.ms = 100",
            "mapped",
            r#"fetch_max_wait = "100ms""#,
        ),
        (
            "A.consumer.auto.offset.reset = latest",
            "mapped",
            r#"start = "latest""#,
        ),
        (
            "A.consumer.isolation.level = read_uncommitted",
            "unsupported",
            "",
        ),
        ("A.consumer.max.poll.records = 10000", "ignored", ""),
        (
            "B.producer.max.in.flight.requests.per.connection = 1",
            "mapped",
            "max_in_flight_per_partition = 1",
        ),
        ("B.producer.compression.type = zstd", "unsupported", ""),
        ("B.producer.linger.ms = 20", "ignored", ""),
        ("A.client.id = mirror", "mapped", r#"client_id = "mirror""#),
        (
            "A.request.timeout.ms = 60000",
            "mapped",
            r#"request_timeout = "60000ms""#,
        ),
        (
            "A.security.protocol = SSL",
            "mapped",
            r#"security_protocol = "ssl""#,
        ),
        (
            "A.ssl.endpoint.identification.algorithm =",
            "unsupported",
            "",
        ),
        ("A.ssl.enabled.protocols = TLSv1.3", "ignored", ""),
        (
            "A.ssl.truststore.certificates = -----BEGIN CERTIFICATE-----",
            "unsupported",
            "",
        ),
        ("offset.storage.replication.factor = 3", "ignored", ""),
        ("B.plugin.discovery = service_load", "ignored", ""),
        (
            "key.converter = org.apache.kafka.connect.converters.ByteArrayConverter",
            "ignored",
            "",
        ),
        ("transforms = route", "unsupported", ""),
        ("no.such.setting = 1", "unsupported", ""),
    ];
    for (line, expected, fragment) in rows {
        let key = line.split(['=']).next().unwrap().trim();
        let imported = import(line);
        let entry = imported
            .report
            .entries
            .iter()
            .find(|e| e.key == key)
            .unwrap();
        assert_eq!(
            kind(&entry.verdict),
            *expected,
            "{line}: {:?}",
            entry.verdict
        );
        if *expected == "error" {
            assert!(imported.toml.is_none(), "{line}: nothing is written");
            continue;
        }
        let toml = imported
            .toml
            .as_deref()
            .unwrap_or_else(|| panic!("{line}: {}", imported.report.render()));
        assert!(
            toml.contains(fragment),
            "{line}: no {fragment:?} in\n{toml}"
        );
        load(toml);
    }
}

#[test]
fn every_key_in_the_rules_table_is_recognized() {
    for (key, _) in super::rules::RULES {
        // A prefix entry (`metrics.*`) stands for any key under it.
        let key = match key.strip_suffix('*') {
            Some(prefix) => format!("{prefix}x"),
            None => (*key).to_owned(),
        };
        let key = key.as_str();
        if ["clusters", "enabled", "bootstrap.servers"].contains(&key) {
            continue;
        }
        let imported = import(&format!("{key} = 1"));
        let entry = imported
            .report
            .entries
            .iter()
            .find(|e| e.key == key)
            .unwrap();
        assert!(
            !matches!(&entry.verdict, Verdict::Unsupported(w) if w.contains("importer knows")),
            "{key}: {:?}",
            entry.verdict
        );
    }
}

#[test]
fn flow_scoped_settings_override_top_level_ones() {
    let imported = import(
        "B->A.enabled = true\ntopics = all.*\nA->B.topics = only-a.*\nA->B.replication.policy.class = org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
    );
    let config = load(imported.toml.as_deref().unwrap());
    let ab = config.flows.iter().find(|f| f.source == "A").unwrap();
    let ba = config.flows.iter().find(|f| f.source == "B").unwrap();
    assert_eq!(ab.topics, vec!["only-a.*"]);
    assert_eq!(ba.topics, vec!["all.*"]);
    assert_eq!(
        imported
            .report
            .entries
            .iter()
            .find(|e| e.key == "topics")
            .map(|e| &e.verdict),
        Some(&Verdict::mapped("flows[1].topics"))
    );
}

#[test]
fn a_repeated_key_keeps_its_last_value() {
    let imported = import("topics = first\ntopics = second");
    let config = load(imported.toml.as_deref().unwrap());
    assert_eq!(config.flows[0].topics, vec!["second"]);
    assert!(
        matches!(&imported.report.entries.iter().find(|e| e.key == "topics").unwrap().verdict,
        Verdict::Ignored(why) if why.contains("overridden by line 6"))
    );
}

#[test]
fn mm2_defaults_that_differ_from_ferrys_are_written_out() {
    let imported = import("");
    let config = load(imported.toml.as_deref().unwrap());
    let flow = &config.flows[0];
    assert!(
        !flow.groups.enabled,
        "MM2 syncs no group offsets by default"
    );
    assert_eq!(flow.exclude, vec![r".*[\-\.]internal", r".*\.replica"]);
    assert_eq!(flow.naming, Naming::Prefix);
    let implicit: Vec<&str> = imported
        .report
        .entries
        .iter()
        .filter(|e| e.at == Origin::Import)
        .map(|e| e.key.as_str())
        .collect();
    assert_eq!(implicit.len(), 3, "{implicit:?}");
}

#[test]
fn sasl_passwords_become_environment_references_never_copies() {
    let imported = import(
        "A.security.protocol = SASL_PLAINTEXT\nA.sasl.mechanism = SCRAM-SHA-256\n\
         A.sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule required username=\"mirror\" password=\"hunter2\";",
    );
    let toml = imported.toml.as_deref().unwrap();
    assert!(
        toml.contains(r#"password = "${FERRY_A_PASSWORD}""#),
        "{toml}"
    );
    assert!(!toml.contains("hunter2") && !imported.report.render().contains("hunter2"));
    assert_eq!(imported.report.env_vars[0].0, "FERRY_A_PASSWORD");
    let config = load(toml);
    let sasl = config.cluster("A").unwrap().sasl.as_ref().unwrap();
    assert_eq!(sasl.username, "mirror");
}

#[test]
fn logins_ferry_cannot_do_stop_the_import() {
    for (extra, key) in [
        (
            "A.security.protocol = SASL_SSL\nA.sasl.mechanism = GSSAPI",
            "A.sasl.mechanism",
        ),
        ("A.security.protocol = SASL_SSL", "A.sasl.mechanism"),
        (
            "A.security.protocol = SASL_SSL\nA.sasl.mechanism = PLAIN\nA.sasl.jaas.config = org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
            "A.sasl.jaas.config",
        ),
    ] {
        let imported = import(extra);
        assert!(imported.toml.is_none(), "{extra}");
        let v = &imported
            .report
            .entries
            .iter()
            .find(|e| e.key == key)
            .unwrap()
            .verdict;
        assert_eq!(kind(v), "error", "{extra}: {v:?}");
    }
}

#[test]
fn keystores_become_pem_placeholders_with_the_commands_to_convert() {
    let imported = import(
        "A.security.protocol = SSL\nA.ssl.truststore.location = /ssl/a.jks\nA.ssl.keystore.type = PKCS12\nA.ssl.keystore.location = /ssl/a.p12\nB.security.protocol = SSL\nB.ssl.truststore.type = PEM\nB.ssl.truststore.location = /ssl/b-ca.pem",
    );
    let toml = imported.toml.as_deref().unwrap();
    assert!(
        toml.contains(r#"ca_file = "/etc/ferry/A/ca.pem""#),
        "{toml}"
    );
    assert!(
        toml.contains(r#"key_file = "/etc/ferry/A/key.pem""#),
        "{toml}"
    );
    assert!(
        toml.contains(r#"ca_file = "/ssl/b-ca.pem""#),
        "a PEM truststore is used as it is: {toml}"
    );
    let report = imported.report.render();
    assert!(
        report.contains("keytool -exportcert -rfc -keystore /ssl/a.jks"),
        "{report}"
    );
    assert!(
        report.contains("openssl pkcs12 -in /ssl/a.p12 -nocerts -nodes"),
        "{report}"
    );
}

#[test]
fn essential_problems_exit_64_naming_the_line() {
    for (text, at, what) in [
        ("A.bootstrap.servers = a:9092\n", "(import)", "missing"),
        (
            "clusters = A, B\nA.bootstrap.servers = a:1\nB.bootstrap.servers = b:1\nA->C.enabled = true\n",
            "line 4",
            "unknown cluster alias C",
        ),
        (
            "clusters = A, B\nA.bootstrap.servers = a:1\nA->B.enabled = true\n",
            "(import)",
            "B.bootstrap.servers",
        ),
        (
            "clusters = A, B.x\nA.bootstrap.servers = a:1\n",
            "line 1",
            "ferry aliases",
        ),
        (
            "clusters = A, B\nA.bootstrap.servers = a:1\nB.bootstrap.servers = b:1\nA->B.enabled = true\nB->A.enabled = true\nA->B.replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy\n",
            "line 5",
            "loop",
        ),
        (
            "clusters = A, B\nA.bootstrap.servers = a:1\nB.bootstrap.servers = b:1\nA->B.enabled = yes\n",
            "line 4",
            "true or false",
        ),
    ] {
        let imported = import_properties(text, "t").unwrap();
        assert!(imported.toml.is_none(), "{text}");
        let rendered = imported.report.render();
        let error = imported
            .report
            .entries
            .iter()
            .find(|e| matches!(e.verdict, Verdict::Error(_)))
            .unwrap();
        assert_eq!(error.at.to_string(), at, "{text}\n{rendered}");
        assert!(rendered.contains(what), "{text}\n{rendered}");
    }
    // A three-cluster ring with prefix naming: ferry's own validation refuses it.
    let ring = "clusters = A, B, C\nA.bootstrap.servers = a:1\nB.bootstrap.servers = b:1\nC.bootstrap.servers = c:1\nA->B.enabled = true\nB->C.enabled = true\nC->A.enabled = true\n";
    let imported = import_properties(ring, "t").unwrap();
    assert!(imported.toml.is_none());
    assert!(
        imported
            .report
            .render()
            .contains("ferry would refuse the result"),
        "{}",
        imported.report.render()
    );
}

fn fixture(name: &str) -> (String, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/mm2")
        .join(name);
    (
        std::fs::read_to_string(&path).unwrap(),
        path.display().to_string(),
    )
}

#[test]
fn fixtures_import_to_configs_ferry_loads() {
    for name in [
        "kafka-connect-mirror-maker.properties",
        "harness-example.properties",
        "groups-vs-mm2.properties",
        "bench-e2e.properties",
        "secure.properties",
        "strimzi-v1beta2-tls.yaml",
        "strimzi-v1-identity.yaml",
        "strimzi-v1beta2-auth.yaml",
    ] {
        let (text, shown) = fixture(name);
        let imported = if name.ends_with(".yaml") {
            import_strimzi(&text, &shown)
        } else {
            import_properties(&text, &shown)
        }
        .unwrap();
        let report = imported.report.render();
        let toml = imported.toml.unwrap_or_else(|| panic!("{name}:\n{report}"));
        let config = load(&toml);
        assert!(!config.flows.is_empty(), "{name}");
        for secret in [
            "do-not-copy-me",
            "truststore-secret",
            "keystore-secret",
            "key-secret",
        ] {
            assert!(
                !toml.contains(secret) && !report.contains(secret),
                "{name} leaks {secret}"
            );
        }
    }
}

#[test]
fn fixtures_map_as_mm2_ran_them() {
    let (text, _) = fixture("kafka-connect-mirror-maker.properties");
    let config = load(&import_properties(&text, "k").unwrap().toml.unwrap());
    assert_eq!(
        config.flows.len(),
        2,
        "A->B and B->A, prefix naming both ways"
    );
    assert!(
        config
            .flows
            .iter()
            .all(|f| f.naming == Naming::Prefix && f.replication_factor == 1)
    );
    assert_eq!(config.cluster("A").unwrap().bootstrap_servers.len(), 3);

    let (text, _) = fixture("harness-example.properties");
    let config = load(&import_properties(&text, "h").unwrap().toml.unwrap());
    assert_eq!(config.flows.len(), 1, "B->A is off");
    assert_eq!(config.flows[0].naming, Naming::Identity);
    assert_eq!(
        config.flows[0].discovery_interval,
        std::time::Duration::from_secs(5)
    );

    let (text, _) = fixture("groups-vs-mm2.properties");
    let config = load(&import_properties(&text, "g").unwrap().toml.unwrap());
    let groups = &config.flows[0].groups;
    assert!(groups.enabled);
    assert_eq!(groups.include, vec!["groups-vs-mm2-group"]);
    assert_eq!(groups.interval, std::time::Duration::from_secs(1));

    let (text, _) = fixture("strimzi-v1beta2-auth.yaml");
    let imported = import_strimzi(&text, "s").unwrap();
    let config = load(imported.toml.as_deref().unwrap());
    let source = config.cluster("my-cluster-source").unwrap();
    assert_eq!(source.sasl.as_ref().unwrap().username, "my-source-user");
    let target = config.cluster("my-cluster-target").unwrap();
    assert!(target.tls.as_ref().unwrap().key_file.is_some());
    assert_eq!(config.flows[0].exclude, vec![".*-internal", r".*\.replica"]);
    assert_eq!(
        imported.report.env_vars[0].0,
        "FERRY_MY_CLUSTER_SOURCE_PASSWORD"
    );
}

#[test]
fn bad_fixtures_name_the_line() {
    let (text, shown) = fixture("bad-syntax.properties");
    let Unreadable(e) = import_properties(&text, &shown).unwrap_err();
    assert!(e.contains("line 6"), "{e}");
    for (name, line) in [
        ("bad-unknown-alias.properties", "line 5"),
        ("bad-identity-loop.properties", "line 6"),
    ] {
        let (text, shown) = fixture(name);
        let imported = import_properties(&text, &shown).unwrap();
        assert!(imported.toml.is_none(), "{name}");
        assert!(
            imported
                .report
                .entries
                .iter()
                .any(|e| matches!(e.verdict, Verdict::Error(_)) && e.at.to_string() == line),
            "{name}: {}",
            imported.report.render()
        );
    }
    let err = import_strimzi("kind: KafkaConnect\nspec: {}\n", "k").unwrap_err();
    assert!(err.0.contains("expected KafkaMirrorMaker2"), "{}", err.0);
    let err = import_strimzi("kind: [unclosed\n", "k").unwrap_err();
    assert!(err.0.contains("invalid YAML"), "{}", err.0);
}

#[test]
fn a_pem_keystore_is_used_as_it_is() {
    let pem = import(
        "A.security.protocol = SSL\nA.ssl.keystore.type = PEM\nA.ssl.keystore.location = /ssl/a.pem",
    );
    let toml = pem.toml.as_deref().unwrap();
    assert!(toml.contains(r#"cert_file = "/ssl/a.pem""#), "{toml}");
    assert!(toml.contains(r#"key_file = "/ssl/a.pem""#), "{toml}");
    let encrypted = import(
        "A.security.protocol = SSL\nA.ssl.keystore.type = PEM\nA.ssl.keystore.location = /ssl/a.pem\nA.ssl.key.password = pw",
    );
    let v = &encrypted
        .report
        .entries
        .iter()
        .find(|e| e.key == "A.ssl.keystore.location")
        .unwrap()
        .verdict;
    assert_eq!(kind(v), "mapped+todo", "{v:?}");
}
