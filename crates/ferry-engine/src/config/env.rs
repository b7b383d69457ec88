//! `${VAR}` substitution in every string value of the parsed TOML document,
//! before it is turned into typed config, so each failure can name the field.
//!
//! `$${` stands for a literal `${`. Substituted text is not expanded again,
//! so a variable's value can never pull in another variable.

use super::Problem;

/// Replaces `${NAME}` in every string of `value` (recursively) with
/// `env(NAME)`. Every unset variable or malformed reference becomes a
/// problem naming the field.
pub(crate) fn substitute(
    value: &mut toml::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    match value {
        toml::Value::String(s) => match expand(s, env) {
            Ok(Some(expanded)) => *s = expanded,
            Ok(None) => {}
            Err(message) => problems.push(Problem::new(path, message)),
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, &format!("{path}[{i}]"), env, problems);
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                substitute(item, &child, env, problems);
            }
        }
        toml::Value::Integer(_)
        | toml::Value::Float(_)
        | toml::Value::Boolean(_)
        | toml::Value::Datetime(_) => {}
    }
}

/// The expanded string, `None` if `s` holds no `$`, or an error naming every
/// unset variable.
fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
    if !s.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(s.len());
    let mut unset: Vec<&str> = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or_else(|| {
                format!("unterminated \"${{\" in {s:?} (write \"$${{\" for a literal \"${{\")")
            })?;
            let name = &tail[..end];
            if !is_variable_name(name) {
                return Err(format!(
                    "invalid environment variable name {name:?} in {s:?}: \
                     use letters, digits and underscores, not starting with a digit"
                ));
            }
            match env(name) {
                Some(v) => out.push_str(&v),
                None => unset.push(name),
            }
            rest = &tail[end + 1..];
        } else {
            // A `$` not followed by `{` is ordinary text (e.g. a regex anchor).
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    match unset.as_slice() {
        [] => Ok(Some(out)),
        [one] => Err(format!("environment variable {one} is not set")),
        many => Err(format!(
            "environment variables {} are not set",
            many.join(", ")
        )),
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("10.0.0.1".into()),
            "PORT" => Some("9092".into()),
            "SELF" => Some("${HOST}".into()),
            _ => None,
        }
    }

    #[test]
    fn expansion() {
        let e = |s| expand(s, &env);
        assert_eq!(e("plain"), Ok(None));
        assert_eq!(e("${HOST}:${PORT}"), Ok(Some("10.0.0.1:9092".into())));
        assert_eq!(e("orders$"), Ok(Some("orders$".into())));
        assert_eq!(e("$${HOST}"), Ok(Some("${HOST}".into())));
        assert_eq!(e("${SELF}"), Ok(Some("${HOST}".into())), "no re-expansion");
        assert_eq!(
            e("${NOPE}:${PORT}"),
            Err("environment variable NOPE is not set".into())
        );
        assert_eq!(
            e("${A}${B}"),
            Err("environment variables A, B are not set".into())
        );
        assert!(e("${HOST").unwrap_err().contains("unterminated"));
        assert!(
            e("${1X}")
                .unwrap_err()
                .contains("invalid environment variable name")
        );
        assert!(
            e("${}")
                .unwrap_err()
                .contains("invalid environment variable name")
        );
    }

    #[test]
    fn problems_name_the_field() {
        let mut doc: toml::Value = toml::from_str(
            "[clusters.west]\nbootstrap_servers = [\"a:1\", \"${WEST}\"]\nclient_id = \"${HOST}\"\n",
        )
        .unwrap();
        let mut problems = Vec::new();
        substitute(&mut doc, "", &env, &mut problems);
        assert_eq!(
            problems,
            vec![Problem::new(
                "clusters.west.bootstrap_servers[1]",
                "environment variable WEST is not set"
            )]
        );
        assert_eq!(
            doc["clusters"]["west"]["client_id"].as_str(),
            Some("10.0.0.1")
        );
    }
}
