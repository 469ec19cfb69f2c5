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
    /// Checks the signature against `secret`, the clock and the signed headers' presence.
    pub(super) fn verify(
        &self,
        request: &HttpRequest,
        body: &[u8],
        secret: &str,
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
        if (chrono::Utc::now() - at).num_seconds().abs() > MAX_SKEW_SECS {
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
