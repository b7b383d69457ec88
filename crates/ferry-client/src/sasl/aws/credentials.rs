//! AWS credentials without the SDK: environment variables, a web-identity
//! token exchanged with STS (EKS IRSA), the shared credentials file.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::sasl::https;
use crate::sasl::oidc::form_encode;
use crate::secret::Secret;

/// One set of AWS credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// The access key id (an identifier, not a secret).
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    /// When temporary credentials stop working.
    pub expires: Option<SystemTime>,
    /// Where they came from, for messages.
    pub source: String,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("source", &self.source)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
pub(crate) fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<AwsCredentials> {
    let id = env("AWS_ACCESS_KEY_ID").filter(|v| !v.is_empty())?;
    let secret = env("AWS_SECRET_ACCESS_KEY").filter(|v| !v.is_empty())?;
    Some(AwsCredentials {
        access_key_id: id,
        secret_access_key: Secret::new(secret),
        session_token: env("AWS_SESSION_TOKEN")
            .filter(|v| !v.is_empty())
            .map(Secret::new),
        expires: None,
        source: "environment variables".to_owned(),
    })
}

/// The shared credentials file: `AWS_SHARED_CREDENTIALS_FILE`, else
/// `~/.aws/credentials`.
pub(crate) fn credentials_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".aws").join("credentials")))
}

/// The `[profile]` section of a shared credentials file (INI).
pub(crate) fn from_profile(text: &str, profile: &str, file: &Path) -> Option<AwsCredentials> {
    let mut in_section = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name.trim() == profile;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim().to_owned();
            match key.trim() {
                "aws_access_key_id" => id = Some(value),
                "aws_secret_access_key" => secret = Some(value),
                "aws_session_token" => token = Some(value),
                _ => {}
            }
        }
    }
    Some(AwsCredentials {
        access_key_id: id?,
        secret_access_key: Secret::new(secret?),
        session_token: token.map(Secret::new),
        expires: None,
        source: format!("profile {profile:?} of {}", file.display()),
    })
}

/// Web identity settings (EKS IRSA): `AWS_ROLE_ARN` and
/// `AWS_WEB_IDENTITY_TOKEN_FILE`, optionally `AWS_ROLE_SESSION_NAME`.
pub(crate) struct WebIdentity {
    pub role_arn: String,
    pub token_file: PathBuf,
    pub session_name: String,
    /// `AWS_ENDPOINT_URL_STS`, else the regional STS endpoint.
    pub sts_url: String,
    /// `AWS_CA_BUNDLE`: CAs for STS's certificate, else the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl WebIdentity {
    pub(crate) fn from_env(env: &dyn Fn(&str) -> Option<String>, region: &str) -> Option<Self> {
        let role_arn = env("AWS_ROLE_ARN").filter(|v| !v.is_empty())?;
        let token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE").filter(|v| !v.is_empty())?;
        Some(Self {
            role_arn,
            token_file: PathBuf::from(token_file),
            session_name: env("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "ferry".to_owned()),
            sts_url: env("AWS_ENDPOINT_URL_STS")
                .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com/")),
            ca_file: env("AWS_CA_BUNDLE").map(PathBuf::from),
        })
    }

    /// Exchanges the token file's token for temporary credentials
    /// (STS `AssumeRoleWithWebIdentity`, which needs no signature).
    pub(crate) async fn assume_role(&self) -> Result<AwsCredentials, String> {
        let token = std::fs::read_to_string(&self.token_file).map_err(|e| {
            format!(
                "cannot read AWS_WEB_IDENTITY_TOKEN_FILE {}: {e}",
                self.token_file.display()
            )
        })?;
        let form = format!(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
            form_encode(&self.role_arn),
            form_encode(&self.session_name),
            form_encode(token.trim())
        );
        let (status, body) = https::post_form(&self.sts_url, self.ca_file.as_deref(), None, form)
            .await
            .map_err(|(detail, _)| format!("STS {}: {detail}", self.sts_url))?;
        let body = String::from_utf8_lossy(&body);
        if status != 200 {
            let code = xml_value(&body, "Code").unwrap_or_default();
            let message = xml_value(&body, "Message").unwrap_or_default();
            return Err(format!(
                "STS {} refused AssumeRoleWithWebIdentity for {}: HTTP {status} {code}: {message}",
                self.sts_url, self.role_arn
            ));
        }
        parse_assume_role_response(&body, &self.role_arn)
    }
}

/// The text of the first `<tag>…</tag>`.
fn xml_value<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim())
}

pub(crate) fn parse_assume_role_response(
    xml: &str,
    role_arn: &str,
) -> Result<AwsCredentials, String> {
    let field = |tag: &str| {
        xml_value(xml, tag)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("the STS answer has no {tag}"))
    };
    Ok(AwsCredentials {
        access_key_id: field("AccessKeyId")?.to_owned(),
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: Some(Secret::new(field("SessionToken")?)),
        expires: xml_value(xml, "Expiration").and_then(parse_iso8601),
        source: format!("web identity (role {role_arn})"),
    })
}

/// `2026-12-06T03:04:05Z` (fractions allowed) to a time.
fn parse_iso8601(s: &str) -> Option<SystemTime> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let h: u64 = t.next()?.parse().ok()?;
    let min: u64 = t.next()?.parse().ok()?;
    let sec: u64 = t.next()?.split('.').next()?.parse().ok()?;
    // Days from civil (inverse of sigv4::civil_from_days).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + min * 60 + sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn environment() {
        let e = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
        ]);
        let c = from_env(&e).unwrap_or_else(|| panic!("credentials"));
        assert_eq!(c.access_key_id, "AKIDEXAMPLE");
        assert_eq!(c.session_token, None);
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(from_env(&env(&[("AWS_ACCESS_KEY_ID", "x")])).is_none());
    }

    #[test]
    fn profiles() {
        let text = "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = d\n\n\
                    # comment\n[prod]\naws_access_key_id=AKIDPROD\naws_secret_access_key=p\naws_session_token = t\n";
        let file = Path::new("/creds");
        let d = from_profile(text, "default", file).unwrap_or_else(|| panic!("default"));
        assert_eq!(
            (d.access_key_id.as_str(), d.session_token.is_none()),
            ("AKIDDEFAULT", true)
        );
        let p = from_profile(text, "prod", file).unwrap_or_else(|| panic!("prod"));
        assert_eq!(p.access_key_id, "AKIDPROD");
        assert_eq!(p.session_token.as_ref().map(Secret::expose), Some("t"));
        assert!(from_profile(text, "missing", file).is_none());
    }

    #[test]
    fn sts_answer() {
        let xml = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
                   <SessionToken>tok</SessionToken><SecretAccessKey>sec</SecretAccessKey>\
                   <Expiration>2026-12-06T04:00:00Z</Expiration><AccessKeyId>ASIAEXAMPLE</AccessKeyId>\
                   </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
        let c = parse_assume_role_response(xml, "arn:aws:iam::1:role/r")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.secret_access_key.expose(), "sec");
        assert_eq!(
            c.expires,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_529_600))
        );
        assert!(parse_assume_role_response("<x/>", "r").is_err());
    }
}
