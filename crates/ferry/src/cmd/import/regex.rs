//! MM2's regex lists (`topics`, `groups`, `config.properties.exclude`) in
//! ferry's terms. Both match whole names, so a Java pattern that means the
//! same in Rust's `regex` carries over as it is; `\Q…\E` quoting is turned
//! into escapes; constructs Rust's engine lacks (look-around, atomic groups,
//! possessive quantifiers, back-references) cannot be carried over.

/// MM2's list syntax: comma-separated, whitespace around items dropped,
/// empty items skipped (Kafka's `ConfigDef.Type.LIST`).
pub fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The Java pattern as an equivalent Rust pattern, or why there is none.
pub fn translate(java: &str) -> Result<String, String> {
    let unquoted = unquote(java);
    if let Some(what) = java_only(&unquoted) {
        return Err(format!(
            "{java:?} uses {what}, which ferry's regex engine does not have: rewrite it \
             without, e.g. list the names, or select with topics and remove with exclude"
        ));
    }
    match ::regex::Regex::new(&format!("^(?:{unquoted})$")) {
        Ok(_) => Ok(unquoted),
        Err(e) => Err(format!(
            "{java:?} is not a valid regex for ferry: {}",
            e.to_string().lines().last().unwrap_or_default().trim()
        )),
    }
}

/// `\Q…\E` spans replaced by escaped text.
fn unquote(java: &str) -> String {
    let mut out = String::new();
    let mut rest = java;
    while let Some(at) = rest.find("\\Q") {
        // `\\Q` is an escaped backslash followed by Q, not a quote start.
        let backslashes = rest[..at].bytes().rev().take_while(|&b| b == b'\\').count();
        if backslashes % 2 == 1 {
            out.push_str(&rest[..at + 2]);
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let quoted = &rest[at + 2..];
        let (literal, after) = quoted.split_once("\\E").unwrap_or((quoted, ""));
        out.push_str(&::regex::escape(literal));
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The first Java-only construct in `p`, if any.
fn java_only(p: &str) -> Option<&'static str> {
    let bytes = p.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match b {
            b'\\' => {
                match next {
                    Some(b'1'..=b'9') if !in_class => return Some("a back-reference"),
                    Some(b'k') => return Some("a named back-reference"),
                    Some(b'G') => return Some("\\G"),
                    Some(b'Z') => return Some("\\Z"),
                    _ => {}
                }
                i += 2;
                continue;
            }
            b'[' => in_class = true,
            b']' => in_class = false,
            b'(' if !in_class && next == Some(b'?') => {
                let tail = &p[i + 2..];
                if tail.starts_with('=') || tail.starts_with('!') {
                    return Some("a look-ahead");
                }
                if tail.starts_with("<=") || tail.starts_with("<!") {
                    return Some("a look-behind");
                }
                if tail.starts_with('>') {
                    return Some("an atomic group");
                }
            }
            b'*' | b'+' | b'?' | b'}' if !in_class && next == Some(b'+') => {
                return Some("a possessive quantifier");
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn lists_split_like_kafka() {
        assert_eq!(list(" foo.* , bar,,baz "), vec!["foo.*", "bar", "baz"]);
        assert!(list("").is_empty());
    }

    #[test]
    fn java_patterns() {
        for (java, rust) in [
            (".*", ".*"),
            ("orders-[0-9]+", "orders-[0-9]+"),
            (r"\Qa.b\E.*", r"a\.b.*"),
            (r".*[\-\.]internal", r".*[\-\.]internal"),
            ("(?i)Orders", "(?i)Orders"),
        ] {
            assert_eq!(translate(java).unwrap(), rust, "{java}");
        }
        for (java, why) in [
            ("(?!tmp).*", "look-ahead"),
            ("(?<!x)y", "look-behind"),
            ("a*+", "possessive"),
            ("(?>ab)", "atomic"),
            (r"(a)\1", "back-reference"),
            ("(unclosed", "not a valid regex"),
        ] {
            let e = translate(java).unwrap_err();
            assert!(e.contains(why), "{java}: {e}");
        }
    }
}
