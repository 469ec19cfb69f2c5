//! AK/SK callers: `Authorization: SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…`,
//! checked the way Huawei's API gateway does, from the request as it arrived. Written apart
//! from the gateway's signer (its own parsing and hashing, on the RustCrypto crates), so a
//! mistake in one is not repeated in the other.

use actix_web::HttpRequest;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

const SCHEME: &str = "SDK-HMAC-SHA256";
/// How far `X-Sdk-Date` may be from the simulator's clock.
const MAX_SKEW_SECS: i64 = 15 * 60;
/// Left unescaped in path segments and query parts: letters, digits and `-_.~`.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A request's `Authorization`, when it carries an AK/SK signature.
pub(super) struct Signed<'a> {
    pub(super) access_key: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

/// The signature parts of `request`, if it is AK/SK signed.
pub(super) fn signed(request: &HttpRequest) -> Option<Result<Signed<'_>, String>> {
    let value = request.headers().get("authorization")?.to_str().ok()?;
    let rest = value.strip_prefix(SCHEME)?.trim_start();
    let mut access_key = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Access", v)) => access_key = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v.split(';').collect()),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Some(Err(format!("unexpected part `{part}` in Authorization"))),
        }
    }
    Some(match (access_key, signed_headers, signature) {
        (Some(access_key), Some(signed_headers), Some(signature)) => Ok(Signed {
            access_key,
            signed_headers,
            signature,
        }),
        _ => Err("Authorization lacks Access, SignedHeaders or Signature".into()),
    })
}

impl Signed<'_> {
    /// Checks the signature against `secret`, the clock (`now`) and the signed headers'
    /// presence.
    pub(super) fn verify(
        &self,
        request: &HttpRequest,
        body: &[u8],
        secret: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), String> {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        };
        if !self.signed_headers.contains(&"x-sdk-date") || !self.signed_headers.contains(&"host") {
            return Err("host and x-sdk-date must be signed".into());
        }
        let date = header("x-sdk-date").ok_or("X-Sdk-Date is missing")?;
        let at = chrono::NaiveDateTime::parse_from_str(&date, "%Y%m%dT%H%M%SZ")
            .map_err(|_| format!("X-Sdk-Date `{date}` is not yyyyMMddTHHmmssZ"))?
            .and_utc();
        if (now - at).num_seconds().abs() > MAX_SKEW_SECS {
            return Err("the request is expired (X-Sdk-Date is more than 15 minutes off)".into());
        }
        let mut headers = String::new();
        for name in &self.signed_headers {
            let value = header(name).ok_or_else(|| format!("signed header {name} is missing"))?;
            headers.push_str(&format!("{name}:{value}\n"));
        }
        let payload = match header("x-sdk-content-sha256") {
            Some(stand_in) if !body.is_empty() => stand_in,
            _ => hex::encode(Sha256::digest(body)),
        };
        let canonical = [
            request.method().as_str().to_owned(),
            canonical_path(request.path()),
            canonical_query(request.query_string()),
            headers,
            self.signed_headers.join(";"),
            payload,
        ]
        .join("\n");
        let to_sign = format!(
            "{SCHEME}\n{date}\n{}",
            hex::encode(Sha256::digest(canonical))
        );
        let expected = hex::decode(self.signature).map_err(|_| "the signature is not hex")?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|_| "the secret key cannot key an HMAC")?;
        mac.update(to_sign.as_bytes());
        mac.verify_slice(&expected)
            .map_err(|_| "verify aksk signature fail".to_owned())
    }
}

fn canonical_path(raw: &str) -> String {
    let mut segments: Vec<String> = raw
        .split('/')
        .map(|segment| {
            let decoded = percent_decode_str(segment).decode_utf8_lossy();
            utf8_percent_encode(&decoded, KEEP).to_string()
        })
        .collect();
    if segments.last().is_none_or(|last| !last.is_empty()) {
        segments.push(String::new());
    }
    segments.join("/")
}

fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(&k, KEEP),
                utf8_percent_encode(&v, KEEP)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    //! The official Python SDK's signatures (the gateway's signer is tested against the same
    //! file): each verifies here, and a changed body or header does not.

    use actix_web::test::TestRequest;
    use serde_json::Value;

    use super::*;

    fn vectors() -> Value {
        serde_json::from_str(include_str!("../../../tests/fixtures/sdk-hmac-sha256.json"))
            .expect("the vectors parse")
    }

    fn request_of(vectors: &Value, case: &Value, body: &str) -> HttpRequest {
        // The SDK leaves the path as given; on the wire it is percent-encoded.
        let uri = case["uri"].as_str().expect("the URI the SDK sends");
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        const ON_THE_WIRE: &AsciiSet = &percent_encoding::CONTROLS.add(b' ');
        let path = utf8_percent_encode(path, ON_THE_WIRE);
        let uri = if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        };
        let mut request = TestRequest::default()
            .method(
                case["method"]
                    .as_str()
                    .and_then(|m| m.parse().ok())
                    .expect("a method"),
            )
            .uri(&uri)
            .insert_header(("Host", case["host"].as_str().expect("a host")))
            .insert_header(("X-Sdk-Date", vectors["sdk_date"].as_str().expect("a date")))
            .insert_header((
                "Authorization",
                case["authorization"].as_str().expect("signed"),
            ));
        for (name, value) in case["headers"].as_object().expect("headers") {
            request = request.insert_header((name.as_str(), value.as_str().expect("a value")));
        }
        if case["headers"].as_object().is_some_and(|h| {
            h.get("Content-Type")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.starts_with("application/json"))
        }) {
            request = request.insert_header(("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD"));
        }
        request.set_payload(body.to_owned()).to_http_request()
    }

    #[test]
    fn the_official_sdks_signatures_verify_and_tampered_ones_do_not() {
        let vectors = vectors();
        let secret = vectors["secret_key"].as_str().expect("a secret");
        let now = chrono::NaiveDateTime::parse_from_str(
            vectors["sdk_date"].as_str().expect("a date"),
            "%Y%m%dT%H%M%SZ",
        )
        .expect("the date parses")
        .and_utc();
        let cases = vectors["cases"].as_array().expect("cases");
        assert!(cases.len() >= 10);
        for case in cases {
            let name = case["name"].as_str().unwrap_or_default();
            let body = case["body"].as_str().unwrap_or_default();
            let request = request_of(&vectors, case, body);
            let signed = signed(&request).expect("signed").expect("well-formed");
            assert_eq!(signed.access_key, vectors["access_key"]);
            assert_eq!(
                signed.verify(&request, body.as_bytes(), secret, now),
                Ok(()),
                "{name}"
            );
            assert!(
                signed
                    .verify(&request, body.as_bytes(), "another-secret", now)
                    .is_err(),
                "{name}: another secret"
            );
            let later = now + chrono::Duration::minutes(16);
            assert!(
                signed
                    .verify(&request, body.as_bytes(), secret, later)
                    .is_err(),
                "{name}: a stale date"
            );
            if !body.is_empty() && case["headers"]["Content-Type"] == "application/json" {
                let tampered = body.replacen('0', "1", 1);
                let request = request_of(&vectors, case, &tampered);
                assert!(
                    signed
                        .verify(&request, tampered.as_bytes(), secret, now)
                        .is_err(),
                    "{name}: a changed body"
                );
            }
        }
    }
}
