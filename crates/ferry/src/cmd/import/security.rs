//! Per-cluster security settings: `security.protocol`, Java keystores
//! (which ferry cannot read: it wants PEM files), `sasl.mechanism` and
//! `sasl.jaas.config` (whose password is never copied: the config reads it
//! from an environment variable instead).

use super::draft::ClusterDraft;
use super::mapping::Lookup;
use super::report::Verdict;

pub fn protocol(c: &mut ClusterDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    let name = match v.trim().to_ascii_uppercase().as_str() {
        "PLAINTEXT" => "plaintext",
        "SSL" => "ssl",
        "SASL_PLAINTEXT" => "sasl_plaintext",
        "SASL_SSL" => "sasl_ssl",
        other => return Verdict::error(format!("unknown security protocol {other:?}")),
    };
    c.main.set("security_protocol", name, "security.protocol");
    Verdict::mapped("security_protocol")
}

/// Where the PEM files converted from a keystore are expected.
fn pem_path(alias: &str, file: &str) -> String {
    format!("/etc/ferry/{alias}/{file}")
}

pub fn truststore(c: &mut ClusterDraft, location: &str, l: &Lookup<'_>) -> Verdict {
    let kind = l
        .get("ssl.truststore.type")
        .unwrap_or("JKS")
        .to_ascii_uppercase();
    if kind == "PEM" {
        c.tls
            .set("ca_file", location, "ssl.truststore.location (PEM)");
        return Verdict::mapped("tls.ca_file");
    }
    let ca = pem_path(&c.alias, "ca.pem");
    c.tls.set(
        "ca_file",
        ca.as_str(),
        "ssl.truststore.location, converted to PEM",
    );
    let how = if kind == "PKCS12" {
        format!("openssl pkcs12 -in {location} -nokeys -out {ca}")
    } else {
        format!(
            "keytool -exportcert -rfc -keystore {location} -alias <CA alias> -file {ca} \
             (`keytool -list -keystore {location}` shows the aliases; repeat with >> for several CAs)"
        )
    };
    Verdict::mapped_todo(
        "tls.ca_file",
        format!("ferry reads PEM, not {kind}: convert the truststore: {how}"),
    )
}

pub fn keystore(c: &mut ClusterDraft, location: &str, l: &Lookup<'_>) -> Verdict {
    let kind = l
        .get("ssl.keystore.type")
        .unwrap_or("JKS")
        .to_ascii_uppercase();
    if kind == "PEM" {
        // ferry reads the chain and the key from one file as well as from two.
        c.tls
            .set("cert_file", location, "ssl.keystore.location (PEM)");
        c.tls
            .set("key_file", location, "ssl.keystore.location (PEM)");
        let to = "tls.cert_file, tls.key_file";
        return match l.get("ssl.key.password") {
            None => Verdict::mapped(to),
            Some(_) => Verdict::mapped_todo(
                to,
                format!(
                    "the key in {location} is encrypted (ssl.key.password) and ferry reads only \
                     unencrypted keys: `openssl pkey -in {location} -out <key.pem>`, then point \
                     key_file at it"
                ),
            ),
        };
    }
    let (cert, key) = (
        pem_path(&c.alias, "cert.pem"),
        pem_path(&c.alias, "key.pem"),
    );
    let from = "ssl.keystore.location, converted to PEM";
    c.tls.set("cert_file", cert.as_str(), from);
    c.tls.set("key_file", key.as_str(), from);
    let (p12, to_p12) = if kind == "PKCS12" {
        (location.to_owned(), String::new())
    } else {
        let p12 = format!("/etc/ferry/{}/keystore.p12", c.alias);
        let step = format!(
            "keytool -importkeystore -srckeystore {location} -destkeystore {p12} \
             -deststoretype PKCS12; then "
        );
        (p12, step)
    };
    Verdict::mapped_todo(
        "tls.cert_file, tls.key_file",
        format!(
            "ferry reads PEM, not {kind}: {to_p12}openssl pkcs12 -in {p12} -clcerts -nokeys \
             -out {cert}; openssl pkcs12 -in {p12} -nocerts -nodes -out {key} (the key must \
             be unencrypted: keep the file readable only by ferry)"
        ),
    )
}

pub fn endpoint_identification(c: &mut ClusterDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    if v.trim().eq_ignore_ascii_case("https") {
        return Verdict::ignored("ferry always checks the broker's host name (same as https)");
    }
    let _ = c;
    Verdict::unsupported(
        "ferry always checks broker certificates against the host name: if the certificates \
         name another host, set tls.server_name to it (insecure_skip_verify is for tests only)",
    )
}

pub fn mechanism(c: &mut ClusterDraft, v: &str, _: &Lookup<'_>) -> Verdict {
    let m = v.trim().to_ascii_uppercase();
    match m.as_str() {
        "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" => {
            c.sasl.set("mechanism", m.as_str(), "sasl.mechanism");
            Verdict::mapped("sasl.mechanism")
        }
        _ => Verdict::error(format!(
            "ferry supports SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, not {m} (cloud and \
             Kerberos mechanisms are tracked in issue 20); keep MM2 for this cluster or give \
             ferry a SCRAM user"
        )),
    }
}

/// The login module and user of a JAAS line; the password is not read.
pub fn jaas(c: &mut ClusterDraft, v: &str, l: &Lookup<'_>) -> Verdict {
    let module = v.split_whitespace().next().unwrap_or_default();
    let expected = match module.rsplit('.').next().unwrap_or_default() {
        "PlainLoginModule" => "PLAIN",
        "ScramLoginModule" => "SCRAM",
        other => {
            return Verdict::error(format!(
                "login module {other:?} is not supported: ferry logs in with PLAIN or SCRAM \
                 (username and password) only"
            ));
        }
    };
    let mechanism = l
        .get("sasl.mechanism")
        .unwrap_or("GSSAPI")
        .to_ascii_uppercase();
    if !mechanism.starts_with(expected) {
        return Verdict::error(format!(
            "{module} does not go with sasl.mechanism {mechanism}"
        ));
    }
    let Some(username) = option(v, "username") else {
        return Verdict::error("no username=\"...\" in the JAAS line");
    };
    let var = password_variable(&c.alias);
    c.sasl.set(
        "username",
        username.as_str(),
        "sasl.jaas.config, its username",
    );
    c.sasl.set(
        "password",
        format!("${{{var}}}"),
        "sasl.jaas.config, its password not copied: read from the environment",
    );
    Verdict::mapped("sasl.username, sasl.password (as ${".to_owned() + &var + "})")
}

/// The environment variable the config reads cluster `alias`'s password from.
pub fn password_variable(alias: &str) -> String {
    let upper: String = alias
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("FERRY_{upper}_PASSWORD")
}

/// The value of `name=value` or `name="value"` in a JAAS line.
fn option(jaas: &str, name: &str) -> Option<String> {
    let mut rest = jaas;
    while let Some(at) = rest.find(name) {
        let before_ok = at == 0 || rest[..at].ends_with(char::is_whitespace);
        let after = rest[at + name.len()..].trim_start();
        rest = &rest[at + name.len()..];
        let Some(value) = after.strip_prefix('=').filter(|_| before_ok) else {
            continue;
        };
        let value = value.trim_start();
        if let Some(quoted) = value.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    '"' => return Some(out),
                    c => out.push(c),
                }
            }
            return None;
        }
        let end = value
            .find(|c: char| c.is_whitespace() || c == ';')
            .unwrap_or(value.len());
        return Some(value[..end].to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn jaas_options() {
        let line = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="mirror \"x\"" password="s3cr=t";"#;
        assert_eq!(option(line, "username").unwrap(), "mirror \"x\"");
        assert_eq!(option(line, "password").unwrap(), "s3cr=t");
        let bare = "org.apache.kafka.common.security.plain.PlainLoginModule required username=alice password=pw;";
        assert_eq!(option(bare, "username").unwrap(), "alice");
        assert_eq!(option(bare, "nope"), None);
        assert_eq!(password_variable("east-1"), "FERRY_EAST_1_PASSWORD");
    }
}
