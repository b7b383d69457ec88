//! Java `.properties` files, as `java.util.Properties.load` reads them:
//! `key=value`, `key: value` or `key value`; `#`/`!` comments; a line ending
//! in an odd number of `\` continues on the next; escapes `\t \n \r \f
//! \uXXXX` and `\<any>` for that character.
//!
//! Written here rather than taken from crates.io: the one maintained crate
//! (`java-properties` 2.0) refuses `\uD83D\uDE00` surrogate pairs Java reads,
//! and pulls in `encoding_rs`; the format is small enough to own.

use std::fmt;

/// One `key = value` of the file, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// Why a file is not a properties file MM2 could use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Every property of `text`, in file order (a repeated key appears twice;
/// the later one is what Java keeps).
///
/// One departure from Java: a line with a key and no separator and no value
/// (`clusters`) is an error rather than an empty value, because in an MM2
/// file it is always a mangled line.
pub fn parse(text: &str) -> Result<Vec<Property>, SyntaxError> {
    let mut out = Vec::new();
    // Java ends a line at \n, \r\n or a lone \r.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines = text.split('\n').enumerate().map(|(i, l)| (i + 1, l));
    while let Some((line, natural)) = lines.next() {
        let start = natural.trim_start_matches([' ', '\t', '\x0c']);
        if start.is_empty() || start.starts_with('#') || start.starts_with('!') {
            continue;
        }
        let mut logical = String::from(start);
        while ends_in_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start_matches([' ', '\t', '\x0c'])),
                None => break,
            }
        }
        let (raw_key, raw_value, separated) = split(&logical);
        let key = unescape(raw_key, line)?;
        let value = unescape(raw_value, line)?;
        if !separated && value.is_empty() {
            return Err(SyntaxError {
                line,
                message: format!("{key:?} has no value: expected key=value"),
            });
        }
        out.push(Property { key, value, line });
    }
    Ok(out)
}

/// Whether the line ends in an odd number of backslashes.
fn ends_in_continuation(line: &str) -> bool {
    line.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Key, value and whether a separator (`=`, `:` or whitespace) was found.
fn split(line: &str) -> (&str, &str, bool) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (&line[..i], line[i + 1..].trim_start_matches(is_space), true),
            ' ' | '\t' | '\x0c' => {
                let rest = line[i..].trim_start_matches(is_space);
                let rest = rest
                    .strip_prefix(['=', ':'])
                    .map_or(rest, |r| r.trim_start_matches(is_space));
                return (&line[..i], rest, true);
            }
            _ => {}
        }
    }
    (line, "", false)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

fn unescape(s: &str, line: usize) -> Result<String, SyntaxError> {
    let error = |message: String| SyntaxError { line, message };
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    let mut pending_high: Option<u16> = None;
    while let Some(c) = chars.next() {
        if c != '\\' {
            if pending_high.is_some() {
                return Err(error("\\u escape: lone UTF-16 high surrogate".into()));
            }
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else { break };
        if e != 'u' && pending_high.is_some() {
            return Err(error("\\u escape: lone UTF-16 high surrogate".into()));
        }
        match e {
            't' => out.push('\t'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            'f' => out.push('\x0c'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                let unit = (hex.len() == 4)
                    .then(|| u16::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| {
                        error(format!(
                            "malformed \\uXXXX escape \"\\u{hex}\": expected 4 hex digits"
                        ))
                    })?;
                match (pending_high.take(), unit) {
                    (None, 0xD800..=0xDBFF) => pending_high = Some(unit),
                    (Some(high), 0xDC00..=0xDFFF) => {
                        let c = char::decode_utf16([high, unit])
                            .next()
                            .and_then(Result::ok)
                            .ok_or_else(|| error("\\u escape: invalid surrogate pair".into()))?;
                        out.push(c);
                    }
                    (None, _) => out
                        .push(char::from_u32(u32::from(unit)).ok_or_else(|| {
                            error(format!("\\u{hex}: lone UTF-16 low surrogate"))
                        })?),
                    (Some(_), _) => {
                        return Err(error("\\u escape: lone UTF-16 high surrogate".into()));
                    }
                }
            }
            other => out.push(other),
        }
    }
    if pending_high.is_some() {
        return Err(error("\\u escape: lone UTF-16 high surrogate".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pairs(text: &str) -> Vec<(String, String, usize)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value, p.line))
            .collect()
    }

    fn kv(k: &str, v: &str, line: usize) -> (String, String, usize) {
        (k.to_owned(), v.to_owned(), line)
    }

    #[test]
    fn separators_comments_and_whitespace() {
        let text = "# comment\n! also\n\n  a=1\nb: 2\nc 3\nd  =  4 \ne\t:\tfive six\nf=\n";
        assert_eq!(
            pairs(text),
            vec![
                kv("a", "1", 4),
                kv("b", "2", 5),
                kv("c", "3", 6),
                kv("d", "4 ", 7),
                kv("e", "five six", 8),
                kv("f", "", 9),
            ]
        );
    }

    #[test]
    fn continuations_and_escapes() {
        let text = "topics = a, \\\n    b, \\\n  c\nk\\=ey\\:x = v\\=1\\\\\nu = \\u0041\\t\\n\\uD83D\\uDE00\n# not \\\ncontinued = yes\nA->B.enabled=true\n";
        assert_eq!(
            pairs(text),
            vec![
                kv("topics", "a, b, c", 1),
                kv("k=ey:x", "v=1\\", 4),
                kv("u", "A\t\n\u{1F600}", 5),
                kv("continued", "yes", 7),
                kv("A->B.enabled", "true", 8),
            ]
        );
        // CRLF line ends
        assert_eq!(
            pairs("a=1\r\nb=2\r\n"),
            vec![kv("a", "1", 1), kv("b", "2", 2)]
        );
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, what) in [
            ("a=1\nb=\\u12\n", 2, "malformed"),
            ("a=1\n\nb=\\uzzzz\n", 3, "malformed"),
            ("x=\\uD83D\n", 1, "surrogate"),
            ("a=1\nclusters\n", 2, "no value"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(what), "{text:?}: {e}");
        }
    }
}
