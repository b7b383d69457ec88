//! `AWS_MSK_IAM`: the SASL mechanism of Amazon MSK's IAM access control, as
//! the `aws-msk-iam-auth` library defines it. The client sends one JSON
//! object: the query parameters and `host` header of a SigV4-presigned
//! `GET https://<broker host>/?Action=kafka-cluster:Connect` (service
//! `kafka-cluster`, 900 s expiry, empty-payload hash), lower-cased, plus
//! `version` and `user-agent`. The broker answers with a JSON object
//! (`version`, `request-id`) and the session lifetime.

mod credentials;
pub(crate) mod sigv4;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use credentials::AwsCredentials;

use super::{Failure, Mechanism, Step};
use crate::error::{ClientError, Result};

/// The payload version `aws-msk-iam-auth` sends.
pub(crate) const VERSION: &str = "2020_10_22";
const SERVICE: &str = "kafka-cluster";
const ACTION: &str = "kafka-cluster:Connect";
/// How long the signature is valid (the library's 15 minutes).
const EXPIRES_SECS: u64 = 900;
/// Temporary credentials are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// `AWS_MSK_IAM` settings: where the region and credentials come from.
pub struct AwsMskIam {
    /// The AWS region of the cluster. `None`: `AWS_REGION`, else
    /// `AWS_DEFAULT_REGION`, else the region in the broker's MSK host name.
    pub region: Option<String>,
    /// The shared-credentials profile. `None`: `AWS_PROFILE`, else `default`.
    pub profile: Option<String>,
    /// Variables read instead of the process environment, when set.
    environment: Option<BTreeMap<String, String>>,
    cached: Mutex<Option<AwsCredentials>>,
}

impl std::fmt::Debug for AwsMskIam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsMskIam")
            .field("region", &self.region)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl PartialEq for AwsMskIam {
    fn eq(&self, other: &Self) -> bool {
        self.region == other.region && self.profile == other.profile
    }
}

impl Eq for AwsMskIam {}

impl AwsMskIam {
    /// Settings with the given region and profile (`None`: from the
    /// environment, see the fields).
    pub fn new(region: Option<String>, profile: Option<String>) -> Self {
        Self {
            region,
            profile,
            environment: None,
            cached: Mutex::new(None),
        }
    }

    /// Reads the `AWS_*` variables (and `HOME`) from `vars` instead of the
    /// process environment: for tests, and for programs that embed ferry
    /// with several identities.
    #[must_use]
    pub fn with_environment(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.environment = Some(vars.into_iter().collect());
        self
    }

    /// A variable from the configured environment.
    pub(crate) fn var(&self, name: &str) -> Option<String> {
        match &self.environment {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }

    /// The region for `host`.
    pub(crate) fn region_for(
        &self,
        host: &str,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<String> {
        self.region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .filter(|r| !r.is_empty())
            .or_else(|| region_from_host(host))
            .ok_or_else(|| ClientError::SaslSetup {
                reason: format!(
                    "AWS_MSK_IAM needs a region: set sasl.aws_region or AWS_REGION \
                     ({host} is not an MSK host name that names one)"
                ),
            })
    }

    /// Credentials, first found: environment variables, web identity
    /// (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`, through STS), the
    /// shared credentials file's profile.
    pub(crate) async fn credentials(
        &self,
        region: &str,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<AwsCredentials> {
        if let Some(c) = credentials::from_env(env) {
            return Ok(c);
        }
        if let Some(web) = credentials::WebIdentity::from_env(env, region) {
            let cached = self
                .cached
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let fresh = |c: &AwsCredentials| {
                c.expires
                    .is_none_or(|e| e > SystemTime::now() + RENEW_BEFORE)
            };
            if let Some(c) = cached.filter(fresh) {
                return Ok(c);
            }
            let c = web
                .assume_role()
                .await
                .map_err(|reason| ClientError::SaslSetup { reason })?;
            *self
                .cached
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(c.clone());
            return Ok(c);
        }
        let profile = self
            .profile
            .clone()
            .or_else(|| env("AWS_PROFILE"))
            .unwrap_or_else(|| "default".to_owned());
        let file: Option<PathBuf> = credentials::credentials_file(env);
        let found = file.as_ref().and_then(|f| {
            std::fs::read_to_string(f)
                .ok()
                .and_then(|text| credentials::from_profile(&text, &profile, f))
        });
        found.ok_or_else(|| ClientError::SaslSetup {
            reason: format!(
                "AWS_MSK_IAM found no AWS credentials: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (EKS IRSA), \
                 or profile {profile:?} in {}",
                file.map_or_else(|| "~/.aws/credentials".to_owned(), |f| f.display().to_string())
            ),
        })
    }
}

/// The region in an MSK broker host name:
/// `b-1.name.abc123.c2.kafka.us-east-1.amazonaws.com` (also
/// `kafka-serverless`).
pub(crate) fn region_from_host(host: &str) -> Option<String> {
    let labels: Vec<&str> = host.split('.').collect();
    let at = labels
        .iter()
        .position(|l| *l == "kafka" || *l == "kafka-serverless")?;
    let region = labels.get(at + 1)?;
    (labels.get(at + 2) == Some(&"amazonaws")).then(|| (*region).to_owned())
}

/// The authentication payload for `host` (no port) at `unix_secs`.
pub(crate) fn payload(
    host: &str,
    region: &str,
    creds: &AwsCredentials,
    unix_secs: u64,
    user_agent: &str,
) -> Vec<u8> {
    let amz_date = sigv4::amz_date(unix_secs);
    let scope = sigv4::scope(&amz_date, region, SERVICE);
    let credential = format!("{}/{scope}", creds.access_key_id);
    let mut query: Vec<(String, String)> = vec![
        ("Action".into(), ACTION.into()),
        ("X-Amz-Algorithm".into(), sigv4::ALGORITHM.into()),
        ("X-Amz-Credential".into(), credential),
        ("X-Amz-Date".into(), amz_date.clone()),
        ("X-Amz-Expires".into(), EXPIRES_SECS.to_string()),
        ("X-Amz-SignedHeaders".into(), "host".into()),
    ];
    if let Some(token) = &creds.session_token {
        query.push(("X-Amz-Security-Token".into(), token.expose().to_owned()));
    }
    let headers = vec![("host".to_owned(), host.to_owned())];
    let (canonical, _) = sigv4::canonical_request(&sigv4::Request {
        method: "GET",
        path: "/",
        query: &query,
        headers: &headers,
        payload_hash: sigv4::EMPTY_SHA256,
    });
    let to_sign = sigv4::string_to_sign(&amz_date, &scope, &canonical);
    let signature = sigv4::signature(
        creds.secret_access_key.expose(),
        &amz_date,
        region,
        SERVICE,
        &to_sign,
    );
    let mut json = serde_json::Map::new();
    for (key, value) in query {
        json.insert(key.to_ascii_lowercase(), value.into());
    }
    json.insert("version".into(), VERSION.into());
    json.insert("host".into(), host.into());
    json.insert("user-agent".into(), user_agent.into());
    json.insert("x-amz-signature".into(), signature.into());
    serde_json::to_vec(&serde_json::Value::Object(json)).unwrap_or_default()
}

/// The user agent sent in the payload.
pub(crate) fn user_agent() -> String {
    format!("ferry/{}", env!("CARGO_PKG_VERSION"))
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One AWS_MSK_IAM exchange.
pub(crate) struct MskIam {
    payload: Option<Vec<u8>>,
}

impl MskIam {
    pub(crate) fn new(payload: Vec<u8>) -> Self {
        Self {
            payload: Some(payload),
        }
    }
}

impl Mechanism for MskIam {
    fn step(&mut self, server: Option<&[u8]>) -> std::result::Result<Step, Failure> {
        if let Some(payload) = self.payload.take() {
            return Ok(Step::Send(payload));
        }
        // The broker's answer: `{"version":"2020_10_22","request-id":"…"}`.
        match server.map(serde_json::from_slice::<serde_json::Value>) {
            Some(Ok(answer)) if answer.get("version").is_some() => Ok(Step::Done),
            Some(Ok(_)) | None => Ok(Step::Done),
            Some(Err(_)) => Err(Failure::protocol(
                "the broker's AWS_MSK_IAM answer is not JSON",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn creds(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
            expires: None,
            source: "test".into(),
        }
    }

    const HOST: &str = "b-1.ferry.abc123.c2.kafka.us-east-1.amazonaws.com";

    /// The payload at a fixed clock with fixed credentials. The expected
    /// signature was computed independently (Python's hmac/hashlib over the
    /// canonical request spelled out below, which follows
    /// aws-msk-iam-auth's AWS4SignedPayloadGenerator: GET, path `/`,
    /// `Action=kafka-cluster:Connect`, presigned for 900 s, host only).
    #[test]
    fn payload_at_a_fixed_clock() {
        // 2020-10-22T10:10:10Z
        let bytes = payload(HOST, "us-east-1", &creds(None), 1_603_361_410, "ferry/test");
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let field = |k: &str| {
            json.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(field("version"), "2020_10_22");
        assert_eq!(field("host"), HOST);
        assert_eq!(field("user-agent"), "ferry/test");
        assert_eq!(field("action"), "kafka-cluster:Connect");
        assert_eq!(field("x-amz-algorithm"), "AWS4-HMAC-SHA256");
        assert_eq!(
            field("x-amz-credential"),
            "AKIAIOSFODNN7EXAMPLE/20201022/us-east-1/kafka-cluster/aws4_request"
        );
        assert_eq!(field("x-amz-date"), "20201022T101010Z");
        assert_eq!(field("x-amz-expires"), "900");
        assert_eq!(field("x-amz-signedheaders"), "host");
        assert!(json.get("x-amz-security-token").is_none());
        assert_eq!(json.as_object().map(serde_json::Map::len), Some(10));
        assert_eq!(field("x-amz-signature"), EXPECTED_SIGNATURE);

        let with_token = payload(
            HOST,
            "us-east-1",
            &creds(Some("FQoG/token+=")),
            1_603_361_410,
            "ferry/test",
        );
        let json: serde_json::Value = serde_json::from_slice(&with_token).unwrap_or_default();
        assert_eq!(
            json.get("x-amz-security-token").and_then(|v| v.as_str()),
            Some("FQoG/token+=")
        );
        assert_eq!(
            json.get("x-amz-signature").and_then(|v| v.as_str()),
            Some(EXPECTED_SIGNATURE_WITH_TOKEN)
        );
    }

    const EXPECTED_SIGNATURE: &str =
        "111b46895b4874e17e4eb0294bbe3dda74b30cebf37552a1ac0a6bdd8fdf3cb6";
    const EXPECTED_SIGNATURE_WITH_TOKEN: &str =
        "c30bea8877a8037df4575687b2888f5bd41e5bb2feaddcfbeb73634ac4eba3b6";

    #[test]
    fn regions_from_msk_host_names() {
        assert_eq!(region_from_host(HOST).as_deref(), Some("us-east-1"));
        assert_eq!(
            region_from_host("boot-abc.c1.kafka-serverless.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_from_host("kafka.internal"), None);
        let iam = AwsMskIam::new(None, None);
        let none = |_: &str| None;
        assert_eq!(
            iam.region_for(HOST, &none).ok().as_deref(),
            Some("us-east-1")
        );
        let err = iam
            .region_for("10.0.0.1", &none)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("AWS_REGION"), "{err}");
    }

    #[test]
    fn the_broker_answer_ends_the_exchange() {
        let mut m = MskIam::new(b"{}".to_vec());
        assert!(matches!(m.step(None), Ok(Step::Send(_))));
        assert!(matches!(
            m.step(Some(br#"{"version":"2020_10_22","request-id":"abc"}"#)),
            Ok(Step::Done)
        ));
    }
}
