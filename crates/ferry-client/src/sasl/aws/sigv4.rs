//! AWS Signature Version 4, the parts a presigned GET needs: canonical
//! request, string to sign, signing key. Pure functions over strings, checked
//! against AWS's published test vectors.
//!
//! Written here rather than taken from `aws-sigv4`: that crate brings 18
//! packages (a second `http`, the smithy runtime types, RustCrypto hashes
//! beside our `ring`) and, under our MSRV (1.85), only an older release; the
//! algorithm is a page long and `ring` already does HMAC-SHA256.

use ring::{digest, hmac};

/// SHA-256 of the empty payload.
pub(crate) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
pub(crate) fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A request to sign.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    /// Already in canonical form (`/` for none).
    pub path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(String, String)],
    /// Headers to sign: lower-case names.
    pub headers: &'a [(String, String)],
    pub payload_hash: &'a str,
}

/// The canonical query string: encoded, sorted by key then value.
pub(crate) fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical request and its signed-headers list.
pub(crate) fn canonical_request(r: &Request<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let text = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed}\n{}",
        r.method,
        r.path,
        canonical_query(r.query),
        r.payload_hash
    );
    (text, signed)
}

/// `<date>/<region>/<service>/aws4_request`.
pub(crate) fn scope(amz_date: &str, region: &str, service: &str) -> String {
    format!(
        "{}/{region}/{service}/aws4_request",
        &amz_date[..8.min(amz_date.len())]
    )
}

pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// The hex signature of `string_to_sign` with the key derived from `secret`.
pub(crate) fn signature(
    secret: &str,
    amz_date: &str,
    region: &str,
    service: &str,
    string_to_sign: &str,
) -> String {
    let date = &amz_date[..8.min(amz_date.len())];
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(k_date.as_ref(), region.as_bytes());
    let k_service = hmac_sha256(k_region.as_ref(), service.as_bytes());
    let k_signing = hmac_sha256(k_service.as_ref(), b"aws4_request");
    hex(hmac_sha256(k_signing.as_ref(), string_to_sign.as_bytes()).as_ref())
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the Unix epoch (UTC).
pub(crate) fn amz_date(unix_secs: u64) -> String {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(0);
    let secs = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    // AWS's SigV4 test suite: credentials AKIDEXAMPLE /
    // wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, us-east-1, service `service`,
    // 20150830T123600Z, host example.amazonaws.com.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20150830T123600Z";

    fn vector(method: &str, query: &[(&str, &str)]) -> (String, String) {
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let headers = vec![
            ("Host".to_owned(), "example.amazonaws.com".to_owned()),
            ("X-Amz-Date".to_owned(), DATE.to_owned()),
        ];
        let (creq, _) = canonical_request(&Request {
            method,
            path: "/",
            query: &query,
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        });
        let sts = string_to_sign(DATE, &scope(DATE, "us-east-1", "service"), &creq);
        (creq, signature(SECRET, DATE, "us-east-1", "service", &sts))
    }

    #[test]
    fn get_vanilla() {
        let (creq, sig) = vector("GET", &[]);
        assert_eq!(
            creq,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(creq.as_bytes()),
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(
            sig,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn post_vanilla() {
        assert_eq!(
            vector("POST", &[]).1,
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        assert_eq!(
            vector("GET", &[("Param2", "value2"), ("Param1", "value1")]).1,
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    /// The presigned-URL example of the S3 SigV4 documentation (query-string
    /// authentication, the form AWS_MSK_IAM uses): GET /test.txt on
    /// examplebucket, 24 May 2013, 86400 s.
    #[test]
    fn presigned_url_example() {
        let amz_date = amz_date(1_369_353_600);
        assert_eq!(amz_date, "20130524T000000Z");
        let scope = scope(&amz_date, "us-east-1", "s3");
        let query: Vec<(String, String)> = [
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", &format!("AKIAIOSFODNN7EXAMPLE/{scope}")),
            ("X-Amz-Date", &amz_date),
            ("X-Amz-Expires", "86400"),
            ("X-Amz-SignedHeaders", "host"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let headers = vec![(
            "host".to_owned(),
            "examplebucket.s3.amazonaws.com".to_owned(),
        )];
        let (creq, signed) = canonical_request(&Request {
            method: "GET",
            path: "/test.txt",
            query: &query,
            headers: &headers,
            payload_hash: "UNSIGNED-PAYLOAD",
        });
        assert_eq!(signed, "host");
        assert_eq!(
            sha256_hex(creq.as_bytes()),
            "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04"
        );
        let sts = string_to_sign(&amz_date, &scope, &creq);
        assert_eq!(
            signature(
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                &amz_date,
                "us-east-1",
                "s3",
                &sts
            ),
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(
            uri_encode("kafka-cluster:Connect a/b~"),
            "kafka-cluster%3AConnect%20a%2Fb~"
        );
    }
}
