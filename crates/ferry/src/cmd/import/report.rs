//! What became of every MM2 setting: mapped (to which ferry field),
//! ignored as unnecessary (why), unsupported (what to do instead), or an
//! error that stops the import.

use std::fmt::{self, Write as _};

/// Where a setting came from: a properties line or a field of a Strimzi
/// resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Line(usize),
    Yaml(String),
    /// Something the importer adds (e.g. MM2's defaults made explicit).
    Import,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Yaml(path) => f.write_str(path),
            Self::Import => f.write_str("(import)"),
        }
    }
}

/// The outcome for one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Carried over to these ferry fields; `todo` is what the operator must
    /// still do (e.g. convert a keystore).
    Mapped { to: String, todo: Option<String> },
    /// Not needed by ferry; why.
    Ignored(String),
    /// Ferry has no equivalent; what to do instead.
    Unsupported(String),
    /// The config cannot be imported; why.
    Error(String),
}

impl Verdict {
    pub fn mapped(to: impl Into<String>) -> Self {
        Self::Mapped {
            to: to.into(),
            todo: None,
        }
    }

    pub fn mapped_todo(to: impl Into<String>, todo: impl Into<String>) -> Self {
        Self::Mapped {
            to: to.into(),
            todo: Some(todo.into()),
        }
    }

    pub fn ignored(why: impl Into<String>) -> Self {
        Self::Ignored(why.into())
    }

    pub fn unsupported(todo: impl Into<String>) -> Self {
        Self::Unsupported(todo.into())
    }

    pub fn error(why: impl Into<String>) -> Self {
        Self::Error(why.into())
    }

    fn severity(&self) -> u8 {
        match self {
            Self::Ignored(_) => 0,
            Self::Mapped { todo: None, .. } => 1,
            Self::Mapped { todo: Some(_), .. } => 2,
            Self::Unsupported(_) => 3,
            Self::Error(_) => 4,
        }
    }

    /// Combines the outcomes of one setting used in several places (e.g. a
    /// top-level key used by two flows): mapped targets add up, the most
    /// severe other outcome wins.
    pub fn merge(self, other: Self) -> Self {
        match (self, other) {
            (Self::Mapped { to: a, todo: ta }, Self::Mapped { to: b, todo: tb }) => Self::Mapped {
                to: if a == b { a } else { format!("{a}, {b}") },
                todo: ta.or(tb),
            },
            (a, b) if b.severity() > a.severity() => b,
            (a, _) => a,
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: Origin,
    pub key: String,
    /// The value as shown: secrets are replaced by `<redacted>`.
    pub shown_value: String,
    pub verdict: Verdict,
}

/// The report of one import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub entries: Vec<Entry>,
    /// Environment variables the generated config reads, with what to put
    /// in each.
    pub env_vars: Vec<(String, String)>,
}

impl Report {
    pub fn push(&mut self, at: Origin, key: &str, value: &str, verdict: Verdict) {
        self.entries.push(Entry {
            at,
            key: key.to_owned(),
            shown_value: shown(key, value),
            verdict,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e.verdict, Verdict::Error(_)))
    }

    /// The report as text, one setting per line, then a summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let (mut mapped, mut todo, mut ignored, mut unsupported, mut errors) = (0, 0, 0, 0, 0);
        for e in &self.entries {
            let (word, text) = match &e.verdict {
                Verdict::Mapped { to, todo: None } => {
                    mapped += 1;
                    ("mapped", format!("-> {to}"))
                }
                Verdict::Mapped { to, todo: Some(t) } => {
                    todo += 1;
                    ("mapped", format!("-> {to}; TO DO: {t}"))
                }
                Verdict::Ignored(why) => {
                    ignored += 1;
                    ("ignored", why.clone())
                }
                Verdict::Unsupported(what) => {
                    unsupported += 1;
                    ("UNSUPPORTED", what.clone())
                }
                Verdict::Error(why) => {
                    errors += 1;
                    ("ERROR", why.clone())
                }
            };
            let _ = writeln!(
                out,
                "  {:<10} {} = {}\n      {word}: {text}",
                e.at.to_string(),
                e.key,
                e.shown_value
            );
        }
        if !self.env_vars.is_empty() {
            out.push_str("\nThe generated config reads these environment variables; set them before `ferry check` / `ferry run`:\n");
            for (name, what) in &self.env_vars {
                let _ = writeln!(out, "  {name}: {what}");
            }
        }
        let _ = writeln!(
            out,
            "\n{mapped} mapped, {todo} mapped with something left to do, {ignored} ignored, \
             {unsupported} unsupported, {errors} errors"
        );
        out
    }
}

/// The value as the report may show it: never a secret.
fn shown(key: &str, value: &str) -> String {
    let k = key.to_ascii_lowercase();
    let secret = k.ends_with("password")
        || k.ends_with("jaas.config")
        || k.ends_with("ssl.keystore.key")
        || k.contains("secret");
    if secret && !value.is_empty() {
        "<redacted>".to_owned()
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_never_shown() {
        for key in [
            "A.sasl.jaas.config",
            "B.ssl.truststore.password",
            "ssl.key.password",
            "A.ssl.keystore.key",
        ] {
            assert_eq!(shown(key, "hunter2"), "<redacted>", "{key}");
        }
        assert_eq!(shown("A.bootstrap.servers", "a:1"), "a:1");
    }

    #[test]
    fn merge_keeps_the_most_severe() {
        let m = Verdict::mapped("flows[0].topics").merge(Verdict::mapped("flows[1].topics"));
        assert_eq!(m, Verdict::mapped("flows[0].topics, flows[1].topics"));
        let e = Verdict::mapped("x").merge(Verdict::error("bad"));
        assert_eq!(e, Verdict::error("bad"));
        let u = Verdict::unsupported("do y").merge(Verdict::mapped("x"));
        assert_eq!(u, Verdict::unsupported("do y"));
    }
}
