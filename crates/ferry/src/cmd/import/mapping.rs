//! MM2 dedicated-mode settings → a ferry config draft and a report.
//!
//! MM2 keys come in three scopes: top level (`topics`), per cluster
//! (`<alias>.bootstrap.servers`, `<alias>.consumer.fetch.max.bytes`) and
//! per flow (`A->B.topics`); a narrower scope overrides the top level.
//! `rules::RULES` says, for every key known here, which scope it belongs
//! to and what it becomes.

use std::collections::HashMap;

use super::draft::{ClusterDraft, Draft, FlowDraft, strings};
use super::flows::{self as f, MM2_TOPICS_EXCLUDE};
use super::report::{Origin, Report, Verdict};
use super::rules::{ClusterFn, FlowFn, Rule, rule};
use super::security as s;

/// One MM2 setting and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub at: Origin,
}

impl Setting {
    pub fn new(key: impl Into<String>, value: impl Into<String>, at: Origin) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            at,
        }
    }
}

/// The effective values of other keys, in the scope a handler runs in.
#[derive(Debug)]
pub struct Lookup<'a> {
    live: &'a HashMap<&'a str, usize>,
    settings: &'a [Setting],
    /// `A->B.` or `<alias>.`, or empty at the top level.
    prefix: String,
    /// The key being handled, without its scope.
    pub key: &'a str,
}

impl<'a> Lookup<'a> {
    /// `rest` in this scope, else at the top level.
    pub fn get(&self, rest: &str) -> Option<&'a str> {
        let scoped = format!("{}{rest}", self.prefix);
        self.live
            .get(scoped.as_str())
            .or_else(|| self.live.get(rest))
            .map(|&i| self.settings[i].value.as_str())
    }
}

/// Where a key applies.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Top,
    Cluster(String),
    Flow(String, String),
    /// `X->Y.` with an alias not in `clusters`.
    UnknownFlow(String, String),
}

fn scope<'k>(key: &'k str, aliases: &[String]) -> (Scope, &'k str) {
    if let Some((source, tail)) = key.split_once("->") {
        let (target, rest) = tail.split_once('.').unwrap_or((tail, ""));
        let known = |a: &str| aliases.iter().any(|x| x == a);
        let s = if known(source) && known(target) {
            Scope::Flow(source.to_owned(), target.to_owned())
        } else {
            Scope::UnknownFlow(source.to_owned(), target.to_owned())
        };
        return (s, rest);
    }
    let cluster = aliases
        .iter()
        .filter(|a| {
            key.len() > a.len() && key.starts_with(a.as_str()) && key.as_bytes()[a.len()] == b'.'
        })
        .max_by_key(|a| a.len());
    match cluster {
        Some(a) => (Scope::Cluster(a.clone()), &key[a.len() + 1..]),
        None => (Scope::Top, key),
    }
}

/// Maps MM2 settings (in file order) to a ferry config draft; every
/// setting gets a line in the report.
pub fn map(settings: &[Setting]) -> (Draft, Report) {
    let mut report = Report::default();
    let mut verdicts: Vec<Option<Verdict>> = vec![None; settings.len()];
    // The last value of a repeated key wins, as in Java.
    let mut live: HashMap<&str, usize> = HashMap::new();
    for (i, st) in settings.iter().enumerate() {
        if let Some(earlier) = live.insert(st.key.as_str(), i) {
            verdicts[earlier] = Some(Verdict::ignored(format!(
                "overridden by {} (the last value wins)",
                st.at
            )));
        }
    }
    let mut draft = Draft::default();
    let Some(&ci) = live.get("clusters") else {
        report.push(
            Origin::Import,
            "clusters",
            "",
            Verdict::error("missing: list the cluster aliases, e.g. `clusters = A, B`"),
        );
        push_all(&mut report, settings, verdicts);
        return (draft, report);
    };
    let aliases = super::regex::list(&settings[ci].value);
    verdicts[ci] = Some(match aliases.iter().find(|a| !valid_alias(a)) {
        Some(bad) => Verdict::error(format!(
            "alias {bad:?}: ferry aliases are letters, digits, `_` and `-` (the alias is the \
             prefix of mirrored topic names, so renaming it renames them)"
        )),
        None if aliases.is_empty() => Verdict::error("no cluster aliases"),
        None => Verdict::mapped(format!("[clusters.{}]", aliases.join("], [clusters."))),
    });
    for a in &aliases {
        draft.clusters.push(ClusterDraft {
            alias: a.clone(),
            ..ClusterDraft::default()
        });
    }
    let scoped: Vec<(Scope, &str)> = settings.iter().map(|st| scope(&st.key, &aliases)).collect();

    // The skeleton: bootstrap servers and enabled flows.
    for (i, st) in settings.iter().enumerate() {
        if verdicts[i].is_some() || live.get(st.key.as_str()) != Some(&i) {
            continue;
        }
        match &scoped[i] {
            (Scope::Cluster(a), "bootstrap.servers") => {
                let servers = super::regex::list(&st.value);
                if let Some(c) = draft.cluster_mut(a) {
                    c.main.set(
                        "bootstrap_servers",
                        strings(&servers),
                        format!("{} ({})", st.key, st.at),
                    );
                }
                verdicts[i] = Some(Verdict::mapped(format!("clusters.{a}.bootstrap_servers")));
            }
            (Scope::Flow(src, dst), "enabled") => {
                match st.value.trim().to_ascii_lowercase().as_str() {
                    "true" => {
                        verdicts[i] = Some(Verdict::mapped(format!(
                            "flows[{}] ({src} -> {dst})",
                            draft.flows.len()
                        )));
                        draft.flows.push(new_flow(src, dst, st));
                    }
                    "false" => verdicts[i] = Some(Verdict::ignored("the flow is off")),
                    _ => verdicts[i] = Some(Verdict::error("expected true or false")),
                }
            }
            (Scope::UnknownFlow(src, dst), rest) => {
                let unknown: Vec<&str> = [src.as_str(), dst.as_str()]
                    .into_iter()
                    .filter(|a| !aliases.iter().any(|x| x == a))
                    .collect();
                let why = format!(
                    "unknown cluster alias {} (clusters = {})",
                    unknown.join(", "),
                    aliases.join(", ")
                );
                verdicts[i] = Some(
                    if *rest == "enabled" && st.value.trim().eq_ignore_ascii_case("true") {
                        Verdict::error(why)
                    } else {
                        Verdict::ignored(format!("{why}: MM2 ignores it"))
                    },
                );
            }
            (Scope::Top, "enabled") => {
                verdicts[i] = Some(Verdict::ignored("MM2 reads only A->B.enabled"));
            }
            (Scope::Top, rest) if rest.ends_with(".bootstrap.servers") => {
                let alias = rest.trim_end_matches(".bootstrap.servers");
                verdicts[i] = Some(Verdict::ignored(format!(
                    "cluster {alias} is not in `clusters` ({}): MM2 ignores it",
                    aliases.join(", ")
                )));
            }
            (Scope::Top, "bootstrap.servers") => {
                verdicts[i] = Some(Verdict::ignored("MM2 reads <alias>.bootstrap.servers"));
            }
            _ => {}
        }
    }

    // Every other key, by its rule.
    for i in 0..settings.len() {
        if verdicts[i].is_some() {
            continue;
        }
        let (sc, rest) = &scoped[i];
        let verdict = match rule(rest) {
            None => Verdict::unsupported(
                "not a MirrorMaker 2 setting this importer knows: ferry has no such setting; \
                 check what it did for MM2",
            ),
            Some(Rule::Skeleton) => Verdict::ignored("not used in this scope"),
            Some(Rule::Ignored(why)) => Verdict::ignored(why),
            Some(Rule::Unsupported(what)) => Verdict::unsupported(what),
            Some(Rule::Flow(handler)) => {
                apply_flows(&mut draft, settings, &live, i, sc, rest, handler, |_, _| {
                    true
                })
            }
            Some(Rule::Consumer(handler)) => apply_flows(
                &mut draft,
                settings,
                &live,
                i,
                sc,
                rest,
                handler,
                |fl, a| fl.source == a,
            ),
            Some(Rule::Producer(handler)) => apply_flows(
                &mut draft,
                settings,
                &live,
                i,
                sc,
                rest,
                handler,
                |fl, a| fl.target == a,
            ),
            Some(Rule::Cluster(handler)) => {
                apply_clusters(&mut draft, settings, &live, i, sc, rest, handler)
            }
        };
        verdicts[i] = Some(verdict);
    }
    check_whole(&draft, settings, &live, &mut verdicts, &mut report);
    push_all(&mut report, settings, verdicts);
    if !draft.flows.is_empty() {
        implicit_defaults(&draft, settings, &live, &mut report);
    }
    for c in &draft.clusters {
        if c.sasl.get("password").is_some() {
            let user = c
                .sasl
                .get("username")
                .and_then(toml::Value::as_str)
                .unwrap_or_default();
            report.env_vars.push((
                s::password_variable(&c.alias),
                format!("the password of SASL user {user:?} on cluster {}", c.alias),
            ));
        }
    }
    (draft, report)
}

fn push_all(report: &mut Report, settings: &[Setting], verdicts: Vec<Option<Verdict>>) {
    for (st, v) in settings.iter().zip(verdicts) {
        let v = v.unwrap_or_else(|| Verdict::ignored("not used"));
        report.push(st.at.clone(), &st.key, &st.value, v);
    }
}

fn valid_alias(a: &str) -> bool {
    !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A flow as MM2 runs it with nothing else set: MM2's defaults that differ
/// from ferry's are written out.
fn new_flow(src: &str, dst: &str, enabled: &Setting) -> FlowDraft {
    let mut fl = FlowDraft {
        source: src.to_owned(),
        target: dst.to_owned(),
        enabled_at: format!("{} = {} ({})", enabled.key, enabled.value, enabled.at),
        ..FlowDraft::default()
    };
    let from = format!("{} ({})", enabled.key, enabled.at);
    fl.main.set("source", src, from.as_str());
    fl.main.set("target", dst, from.as_str());
    let exclude: Vec<String> = MM2_TOPICS_EXCLUDE.iter().map(|s| (*s).to_owned()).collect();
    fl.main
        .set("exclude", strings(&exclude), "MM2's default topics.exclude");
    fl.groups.set(
        "enabled",
        false,
        "MM2's default sync.group.offsets.enabled = false (ferry's sync is exact: consider true)",
    );
    fl
}

/// Applies a flow-level handler to every flow where setting `i` is the
/// effective value of its key; `applies` picks the flows of a cluster-scoped
/// consumer/producer key.
#[allow(clippy::too_many_arguments)]
fn apply_flows(
    draft: &mut Draft,
    settings: &[Setting],
    live: &HashMap<&str, usize>,
    i: usize,
    sc: &Scope,
    rest: &str,
    handler: FlowFn,
    applies: fn(&FlowDraft, &str) -> bool,
) -> Verdict {
    let cluster_rule = matches!(rule(rest), Some(Rule::Consumer(_) | Rule::Producer(_)));
    let mut verdict: Option<Verdict> = None;
    let mut overridden_by = None;
    for (n, fl) in draft.flows.iter_mut().enumerate() {
        let (narrow_key, fits) = match sc {
            Scope::Top if cluster_rule => {
                let a = if matches!(rule(rest), Some(Rule::Consumer(_))) {
                    &fl.source
                } else {
                    &fl.target
                };
                (format!("{a}.{rest}"), true)
            }
            Scope::Top => (format!("{}->{}.{rest}", fl.source, fl.target), true),
            Scope::Cluster(a) if cluster_rule => (String::new(), applies(fl, a)),
            Scope::Flow(src, dst) if !cluster_rule => {
                (String::new(), *src == fl.source && *dst == fl.target)
            }
            _ => (String::new(), false),
        };
        if !fits {
            continue;
        }
        if let Some(&j) = live.get(narrow_key.as_str()) {
            overridden_by = Some(settings[j].at.clone());
            continue;
        }
        let prefix = format!("{}->{}.", fl.source, fl.target);
        let lookup = Lookup {
            live,
            settings,
            prefix,
            key: rest,
        };
        let before = [fl.main.clone(), fl.tuning.clone(), fl.groups.clone()];
        let v = match handler(fl, &settings[i].value, &lookup) {
            Verdict::Mapped { to, todo } => Verdict::Mapped {
                to: format!("flows[{n}].{to}"),
                todo,
            },
            other => other,
        };
        let written = format!("{} ({})", settings[i].key, settings[i].at);
        for (t, b) in [&mut fl.main, &mut fl.tuning, &mut fl.groups]
            .into_iter()
            .zip(&before)
        {
            relabel(t, b, &written);
        }
        verdict = Some(match verdict {
            Some(acc) => acc.merge(v),
            None => v,
        });
    }
    verdict.unwrap_or_else(|| match (sc, overridden_by) {
        (_, Some(at)) => Verdict::ignored(format!("overridden by {at} in every flow it applies to")),
        (Scope::Cluster(_), None) if !cluster_rule => Verdict::ignored(
            "MM2 does not read connector settings per cluster: write it at the top level or as A->B.<key>",
        ),
        (Scope::Flow(..), None) if cluster_rule => {
            Verdict::ignored("write client overrides per cluster (<alias>.consumer./<alias>.producer.)")
        }
        (Scope::Flow(src, dst), None) => Verdict::ignored(format!("flow {src}->{dst} is not enabled")),
        _ => Verdict::ignored("no enabled flow uses it"),
    })
}

fn apply_clusters(
    draft: &mut Draft,
    settings: &[Setting],
    live: &HashMap<&str, usize>,
    i: usize,
    sc: &Scope,
    rest: &str,
    handler: ClusterFn,
) -> Verdict {
    let mut verdict: Option<Verdict> = None;
    for c in &mut draft.clusters {
        let fits = match sc {
            Scope::Top => !live.contains_key(format!("{}.{rest}", c.alias).as_str()),
            Scope::Cluster(a) => *a == c.alias,
            _ => false,
        };
        if !fits {
            continue;
        }
        let lookup = Lookup {
            live,
            settings,
            prefix: format!("{}.", c.alias),
            key: rest,
        };
        let alias = c.alias.clone();
        let before = [c.main.clone(), c.tls.clone(), c.sasl.clone()];
        let v = match handler(c, &settings[i].value, &lookup) {
            Verdict::Mapped { to, todo } => Verdict::Mapped {
                to: format!("clusters.{alias}.{to}"),
                todo,
            },
            other => other,
        };
        let written = format!("{} ({})", settings[i].key, settings[i].at);
        for (t, b) in [&mut c.main, &mut c.tls, &mut c.sasl]
            .into_iter()
            .zip(&before)
        {
            relabel(t, b, &written);
        }
        verdict = Some(match verdict {
            Some(acc) => acc.merge(v),
            None => v,
        });
    }
    verdict.unwrap_or_else(|| match sc {
        Scope::Flow(..) => {
            Verdict::ignored("MM2 reads client settings per cluster (<alias>.), not per flow")
        }
        _ => Verdict::ignored("overridden per cluster everywhere"),
    })
}

/// Handlers start a field's comment with the key they map, without its
/// scope (`topics`); the config names it as written (`A->B.topics (line
/// 9)`). Only the fields the handler just set are touched.
fn relabel(table: &mut super::draft::Table, before: &super::draft::Table, written: &str) {
    for field in &mut table.0 {
        if before.0.contains(field) {
            continue;
        }
        let tail = field.from.find(' ').map_or("", |at| &field.from[at..]);
        field.from = format!("{written}{tail}");
    }
}

/// MM2 features on by default that ferry does not provide: reported even
/// when the file does not mention them.
const MM2_DEFAULTS_ON: &[(&str, FlowFn)] = &[
    ("emit.checkpoints.enabled", f::checkpoints),
    ("emit.heartbeats.enabled", f::heartbeats),
    ("sync.topic.acls.enabled", f::sync_acls),
];

fn implicit_defaults(
    draft: &Draft,
    settings: &[Setting],
    live: &HashMap<&str, usize>,
    report: &mut Report,
) {
    for (key, handler) in MM2_DEFAULTS_ON {
        let unset: Vec<String> = draft
            .flows
            .iter()
            .map(|f| format!("{}->{}", f.source, f.target))
            .filter(|flow| {
                !live.contains_key(format!("{flow}.{key}").as_str()) && !live.contains_key(key)
            })
            .collect();
        if unset.is_empty() {
            continue;
        }
        let lookup = Lookup {
            live,
            settings,
            prefix: String::new(),
            key,
        };
        let v = handler(&mut FlowDraft::default(), "true", &lookup);
        report.push(
            Origin::Import,
            &format!("{key} (not set for {}: MM2's default)", unset.join(", ")),
            "true",
            v,
        );
    }
}

/// Checks that need the whole draft: clusters without addresses, security
/// left incomplete, identity loops.
fn check_whole(
    draft: &Draft,
    settings: &[Setting],
    live: &HashMap<&str, usize>,
    verdicts: &mut [Option<Verdict>],
    report: &mut Report,
) {
    let errors_already = verdicts
        .iter()
        .flatten()
        .any(|v| matches!(v, Verdict::Error(_)));
    let mut fail = |key: String, why: String| {
        let at = live.get(key.as_str()).map(|&i| settings[i].at.clone());
        match (at, live.get(key.as_str())) {
            (Some(_), Some(&i)) => {
                let v = verdicts[i].take().unwrap_or_else(|| Verdict::ignored(""));
                verdicts[i] = Some(v.merge(Verdict::error(why)));
            }
            _ => report.push(Origin::Import, &key, "", Verdict::error(why)),
        }
    };
    if draft.flows.is_empty() && !errors_already {
        fail(
            "(enabled flows)".into(),
            "no flow is enabled: set `<source>-><target>.enabled = true`".into(),
        );
    }
    for c in &draft.clusters {
        let used = draft
            .flows
            .iter()
            .any(|f| f.source == c.alias || f.target == c.alias);
        if used && c.main.get("bootstrap_servers").is_none() {
            fail(
                format!("{}.bootstrap.servers", c.alias),
                format!("missing: cluster {} is used by a flow", c.alias),
            );
        }
        let protocol = c
            .main
            .get("security_protocol")
            .and_then(toml::Value::as_str)
            .unwrap_or("plaintext");
        if used && protocol.starts_with("sasl") && c.sasl.get("username").is_none() {
            let key = if c.sasl.get("mechanism").is_none() {
                format!("{}.sasl.mechanism", c.alias)
            } else {
                format!("{}.sasl.jaas.config", c.alias)
            };
            fail(
                key,
                format!(
                    "cluster {} uses {protocol} but has no SASL PLAIN/SCRAM login (sasl.mechanism and sasl.jaas.config; Kafka's default mechanism is GSSAPI, which ferry does not support)",
                    c.alias
                ),
            );
        }
    }
    for (i, a) in draft.flows.iter().enumerate() {
        for b in &draft.flows[i + 1..] {
            if a.source == b.target && a.target == b.source && (a.identity() || b.identity()) {
                fail(
                    format!("{}->{}.enabled", b.source, b.target),
                    format!(
                        "{}->{} and {}->{} with identity naming form a loop: a mirrored topic \
                         keeps its name and would be copied back and forth forever (MM2 has no \
                         cycle detection with IdentityReplicationPolicy either); use prefix \
                         naming (DefaultReplicationPolicy) or drop one direction",
                        a.source, a.target, b.source, b.target
                    ),
                );
            }
        }
    }
}
