//! Phase 1, **authenticate**: verify the bearer JWT and turn its claims into an [`Employee`].
//!
//! Checks, in order: size, compact JWS shape, an accepted algorithm, no `crit`, the expected
//! `typ`, a configured key (by `kid`, pinned to its JWK's own `alg` or its key type, honouring
//! `use`), then signature, `exp`, `nbf` (explicit leeway), `iss`, `aud`, numeric claims and
//! the longest allowed lifetime. Keys embedded in or pointed to by the token (`jwk`, `jku`,
//! `x5u`, `x5c`) are never used: keys come only from [`crate::identity::KeyStore`].
//! A verified token is remembered (by its SHA-256) until it expires.
//!
//! The header is read here rather than by `jsonwebtoken::decode`, whose `Algorithm` cannot
//! name RFC 9864's `Ed25519`; jsonwebtoken still verifies every signature
//! ([`jsonwebtoken::crypto::verify`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use moka::Expiry;
use moka::future::Cache;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{AuthSettings, ClaimSettings};
use crate::identity::introspection::{Introspected, IntrospectionError, Introspector};
use crate::identity::{KeyStore, KeysError, SigningAlgorithm, VerificationKey};
use crate::metrics::METRICS;

/// Most keys tried for a token without `kid`; real key sets hold two or three.
const MAX_KEYS_WITHOUT_KID: usize = 8;

/// An authenticated employee, as the gateway sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employee {
    pub subject: String,
    pub email: Option<String>,
    /// Teams from the configured claim, prefix stripped, in token order.
    pub teams: Vec<String>,
    /// Member of the platform team (the configured admin claim and value).
    pub admin: bool,
    /// Values of the configured groups claim: what `group:NAME` approvers match.
    pub groups: Vec<String>,
}

/// Why a bearer token was refused. Every variant is a `401` except unavailable keys.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token in the Authorization header")]
    MissingToken,
    #[error("the bearer token is larger than the accepted size")]
    TooLarge,
    #[error("the bearer token is malformed")]
    Malformed,
    #[error("the token's signing algorithm is not accepted: it is {arrived}; accepted: {accepted}")]
    AlgorithmNotAllowed { arrived: String, accepted: String },
    #[error("the token has critical header parameters the gateway does not understand")]
    UnsupportedCritical,
    #[error("the token's type (typ) is not the expected one")]
    WrongType,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token is signed with {arrived}, but its key verifies {key_verifies} only")]
    AlgorithmNotForKey {
        arrived: SigningAlgorithm,
        key_verifies: String,
    },
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by an unexpected issuer")]
    WrongIssuer,
    #[error("the token is not meant for this gateway (audience)")]
    WrongAudience,
    #[error("the token lives longer than the gateway accepts")]
    LifetimeTooLong,
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(String),
    #[error("the token's claim `{0}` has the wrong type")]
    InvalidClaim(String),
    #[error("the identity provider's keys are unavailable")]
    KeysUnavailable(#[source] KeysError),
    #[error("the token is not active (the identity provider's introspection says so)")]
    Inactive,
    #[error("the identity provider's token introspection is unavailable")]
    IntrospectionUnavailable(#[source] Arc<IntrospectionError>),
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A verified token's employee, when the token expires, and the key set that verified it.
#[derive(Debug, Clone)]
struct Verified {
    employee: Arc<Employee>,
    exp: u64,
    key_generation: u64,
}

/// Forgets each verified token when it expires.
struct UntilTokenExpiry;

impl Expiry<[u8; 32], Verified> for UntilTokenExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Verified,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(value.exp.saturating_sub(now_secs())))
    }
}

fn token_digest(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// Verifies bearer tokens against the configured issuer, audience and key source.
#[derive(Debug)]
pub struct Authenticator {
    settings: AuthSettings,
    keys: Arc<KeyStore>,
    verified: Cache<[u8; 32], Verified>,
    /// For tokens that are not JWTs, when configured.
    introspector: Option<Introspector>,
}

impl Authenticator {
    pub fn new(settings: AuthSettings, keys: Arc<KeyStore>) -> Self {
        let verified = Cache::builder()
            .name("verified_tokens")
            .max_capacity(settings.verified_token_cache_size)
            .expire_after(UntilTokenExpiry)
            .build();
        Self {
            settings,
            keys,
            verified,
            introspector: None,
        }
    }

    /// Also accepts opaque tokens (anything but a three-part compact JWS), by introspection.
    #[must_use]
    pub fn with_introspector(mut self, introspector: Introspector) -> Self {
        self.introspector = Some(introspector);
        self
    }

    /// Whether a usable key set is loaded (fetching it if needed); for readiness.
    /// Sets the key-set gauges of `/metrics`.
    pub fn export_metrics(&self) {
        let (keys, age) = self
            .keys
            .loaded()
            .map_or((0, -1.0), |(keys, age)| (keys, age.as_secs_f64()));
        METRICS
            .jwks_keys
            .set(i64::try_from(keys).unwrap_or(i64::MAX));
        METRICS.jwks_age_seconds.set(age);
    }

    pub async fn keys_available(&self) -> bool {
        self.keys.keys().await.is_ok()
    }

    pub async fn verify(&self, token: &str) -> Result<Arc<Employee>, AuthError> {
        if token.len() > self.settings.max_token_bytes {
            return Err(AuthError::TooLarge);
        }
        let digest = token_digest(token);
        if let Some(verified) = self.verified.get(&digest).await
            && verified.exp > now_secs()
        {
            // Remembered only while the key set that verified it is the one trusted now: a
            // key that left the set, or a set gone stale, takes the token's trust with it.
            let keys = self.keys.keys().await.map_err(AuthError::KeysUnavailable)?;
            if keys.generation == verified.key_generation {
                return Ok(verified.employee);
            }
        }
        if let Some(introspector) = &self.introspector
            && token.split('.').count() != 3
        {
            return self.introspect(introspector, digest, token).await;
        }
        let jws = CompactJws::parse(token)?;
        let header = &jws.header;
        let algorithm = header
            .alg
            .parse::<SigningAlgorithm>()
            .ok()
            .filter(|algorithm| self.accepted().contains(algorithm))
            .ok_or_else(|| self.algorithm_not_allowed(&header.alg))?;
        // RFC 7515 §4.1.11: critical parameters the recipient does not implement must be
        // rejected, and this gateway implements none.
        if header.crit.is_some() {
            return Err(AuthError::UnsupportedCritical);
        }
        if let Some(expected) = &self.settings.expected_typ
            && !header
                .typ
                .as_deref()
                .is_some_and(|typ| typ.eq_ignore_ascii_case(expected))
        {
            return Err(AuthError::WrongType);
        }
        let key_generation = self.verify_signature(&jws, algorithm).await?;
        let claims = jws.claims()?;
        let exp = self.validate_claims(&claims)?;
        self.check_lifetime(&claims, exp)?;
        let employee = Arc::new(employee_from(&self.settings.claims, &claims)?);
        self.verified
            .insert(
                digest,
                Verified {
                    employee: employee.clone(),
                    exp,
                    key_generation,
                },
            )
            .await;
        Ok(employee)
    }

    /// An opaque token's employee, from the provider's introspection answer; its claims are
    /// checked as a JWT's are.
    async fn introspect(
        &self,
        introspector: &Introspector,
        digest: [u8; 32],
        token: &str,
    ) -> Result<Arc<Employee>, AuthError> {
        let answer = introspector
            .introspect(digest, token)
            .await
            .map_err(AuthError::IntrospectionUnavailable)?;
        match answer.as_ref() {
            Introspected::Inactive => Err(AuthError::Inactive),
            Introspected::Active(claims) => {
                self.validate_claims(claims)?;
                Ok(Arc::new(employee_from(&self.settings.claims, claims)?))
            }
        }
    }

    /// The configured allow-list, or every supported algorithm.
    fn accepted(&self) -> &[SigningAlgorithm] {
        self.settings
            .algorithms
            .as_deref()
            .unwrap_or(&SigningAlgorithm::ALL)
    }

    /// Verifies the signature with a configured key; returns the generation of the key set
    /// that verified it.
    async fn verify_signature(
        &self,
        jws: &CompactJws<'_>,
        algorithm: SigningAlgorithm,
    ) -> Result<u64, AuthError> {
        let kid = jws.header.kid.as_deref();
        let mut snapshot = self.keys.keys().await.map_err(AuthError::KeysUnavailable)?;
        if candidates(&snapshot.keys, kid, algorithm).is_empty()
            && kid.is_some()
            && self.keys.refetch_for_unknown_kid().await
        {
            snapshot = self.keys.keys().await.map_err(AuthError::KeysUnavailable)?;
        }
        let candidates = candidates(&snapshot.keys, kid, algorithm);
        if candidates.is_empty() {
            // A key named by the token but pinned to another algorithm is worth saying so.
            return Err(
                match snapshot
                    .keys
                    .iter()
                    .find(|key| kid.is_some() && key.kid.as_deref() == kid)
                {
                    Some(key) => AuthError::AlgorithmNotForKey {
                        arrived: algorithm,
                        key_verifies: SigningAlgorithm::list(&key.algorithms),
                    },
                    None => AuthError::UnknownKey,
                },
            );
        }
        for key in candidates {
            match jsonwebtoken::crypto::verify(
                jws.signature,
                jws.signed.as_bytes(),
                key,
                algorithm.verifier(),
            ) {
                Ok(true) => return Ok(snapshot.generation),
                Err(error)
                    if matches!(error.kind(), jsonwebtoken::errors::ErrorKind::Base64(_)) =>
                {
                    return Err(AuthError::Malformed);
                }
                // A key that cannot take this algorithm did not sign the token either.
                Ok(false) | Err(_) => {}
            }
        }
        Err(AuthError::BadSignature)
    }

    /// Checks `exp`, `nbf`, `iss` and `aud` (RFC 7519 §4.1) with the configured leeway;
    /// returns `exp`.
    fn validate_claims(&self, claims: &Map<String, Value>) -> Result<u64, AuthError> {
        let now = now_secs();
        let leeway = self.settings.leeway_secs;
        let exp =
            numeric_claim(claims, "exp")?.ok_or_else(|| AuthError::MissingClaim("exp".into()))?;
        if exp.saturating_add(leeway) < now {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = numeric_claim(claims, "nbf")?
            && nbf > now.saturating_add(leeway)
        {
            return Err(AuthError::NotYetValid);
        }
        match claims.get("iss") {
            None => return Err(AuthError::MissingClaim("iss".into())),
            Some(Value::String(issuer)) if *issuer == self.settings.issuer => {}
            Some(Value::String(_)) => return Err(AuthError::WrongIssuer),
            Some(_) => return Err(AuthError::InvalidClaim("iss".into())),
        }
        let audience = self.settings.audience.as_str();
        let for_us = match claims.get("aud") {
            None => return Err(AuthError::MissingClaim("aud".into())),
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(auds)) => {
                if !auds.iter().all(Value::is_string) {
                    return Err(AuthError::InvalidClaim("aud".into()));
                }
                auds.iter().any(|aud| aud.as_str() == Some(audience))
            }
            Some(_) => return Err(AuthError::InvalidClaim("aud".into())),
        };
        if !for_us {
            return Err(AuthError::WrongAudience);
        }
        Ok(exp)
    }

    fn algorithm_not_allowed(&self, arrived: &str) -> AuthError {
        // The header is the caller's text: echo it only when it looks like an algorithm name.
        let printable = !arrived.is_empty()
            && arrived.len() <= 20
            && arrived
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+'));
        AuthError::AlgorithmNotAllowed {
            arrived: if printable {
                format!("`{arrived}`")
            } else {
                "not a registered name".into()
            },
            accepted: SigningAlgorithm::list(self.accepted()),
        }
    }

    fn check_lifetime(&self, claims: &Map<String, Value>, exp: u64) -> Result<(), AuthError> {
        let max = self.settings.max_token_lifetime_secs;
        if max == 0 {
            return Ok(());
        }
        let iat = match claims.get("iat") {
            Some(value) => value
                .as_u64()
                .ok_or_else(|| AuthError::InvalidClaim("iat".into()))?,
            None => return Err(AuthError::MissingClaim("iat".into())),
        };
        if iat > now_secs() + self.settings.leeway_secs {
            return Err(AuthError::NotYetValid);
        }
        if exp.saturating_sub(iat) > max {
            return Err(AuthError::LifetimeTooLong);
        }
        Ok(())
    }
}

fn candidates<'k>(
    keys: &'k [VerificationKey],
    kid: Option<&str>,
    algorithm: SigningAlgorithm,
) -> Vec<&'k DecodingKey> {
    keys.iter()
        .filter(|key| {
            // A key published without an id (a PEM file) may verify any token; one with an
            // id only tokens naming it.
            kid.is_none_or(|kid| key.kid.as_deref().is_none_or(|own| own == kid))
        })
        .filter(|key| key.accepts(algorithm))
        .take(MAX_KEYS_WITHOUT_KID)
        .map(|key| &key.key)
        .collect()
}

/// A compact JWS, split and its header read; the signature not yet checked.
struct CompactJws<'t> {
    header: JoseHeader,
    /// `header.payload`, the signed bytes.
    signed: &'t str,
    payload: &'t str,
    signature: &'t str,
}

/// The header parameters the gateway acts on; any others (`jwk`, `jku`, `x5u`, `x5c`, …) are
/// ignored, never followed.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<Value>,
}

impl<'t> CompactJws<'t> {
    fn parse(token: &'t str) -> Result<Self, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let header: JoseHeader = decode_json(header)?;
        Ok(Self {
            header,
            signed: &token[..token.len() - signature.len() - 1],
            payload,
            signature,
        })
    }

    /// The payload as a JSON object; read only once the signature verified.
    fn claims(&self) -> Result<Map<String, Value>, AuthError> {
        decode_json(self.payload)
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// A NumericDate claim: absent, or a non-negative integer.
fn numeric_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| AuthError::InvalidClaim(name.to_owned())),
    }
}

/// A claim that may be a string or an array of strings, as IdPs send groups and roles.
fn strings(claims: &Map<String, Value>, name: &str) -> Result<Vec<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(value)) => Ok(vec![value.clone()]),
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| AuthError::InvalidClaim(name.to_owned()))
            })
            .collect(),
        Some(_) => Err(AuthError::InvalidClaim(name.to_owned())),
    }
}

/// Maps verified claims to an [`Employee`] as configured.
pub fn employee_from(
    mapping: &ClaimSettings,
    claims: &Map<String, Value>,
) -> Result<Employee, AuthError> {
    let subject = match claims.get(&mapping.subject) {
        Some(Value::String(subject)) if !subject.is_empty() => subject.clone(),
        Some(Value::String(_)) | None => {
            return Err(AuthError::MissingClaim(mapping.subject.clone()));
        }
        Some(_) => return Err(AuthError::InvalidClaim(mapping.subject.clone())),
    };
    let email = match claims.get(&mapping.email) {
        Some(Value::String(email)) => Some(email.clone()),
        None | Some(Value::Null) => None,
        Some(_) => return Err(AuthError::InvalidClaim(mapping.email.clone())),
    };
    let mut teams: Vec<String> = Vec::new();
    for value in strings(claims, &mapping.teams)? {
        if let Some(team) = value.strip_prefix(mapping.team_prefix.as_str())
            && !team.is_empty()
            && !teams.iter().any(|t| t == team)
        {
            teams.push(team.to_owned());
        }
    }
    let admin = match (&mapping.admin_claim, &mapping.admin_value) {
        (Some(claim), Some(value)) => strings(claims, claim)?.iter().any(|v| v == value),
        _ => false,
    };
    let groups = strings(claims, &mapping.groups)?;
    Ok(Employee {
        subject,
        email,
        teams,
        admin,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn teams_may_be_a_string_or_an_array_and_the_prefix_filters_them() {
        let mapping = ClaimSettings {
            teams: "groups".into(),
            team_prefix: "team:".into(),
            ..ClaimSettings::default()
        };
        let employee = employee_from(
            &mapping,
            &claims(json!({"sub": "a", "groups": ["team:analytics", "staff", "team:payments", "team:analytics"]})),
        )
        .expect("valid");
        assert_eq!(employee.teams, vec!["analytics", "payments"]);
        let single = employee_from(
            &mapping,
            &claims(json!({"sub": "a", "groups": "team:analytics"})),
        )
        .expect("valid");
        assert_eq!(single.teams, vec!["analytics"]);
    }

    #[test]
    fn a_team_claim_of_the_wrong_type_is_refused() {
        let error = employee_from(
            &ClaimSettings::default(),
            &claims(json!({"sub": "a", "team": 7})),
        );
        assert!(matches!(error, Err(AuthError::InvalidClaim(claim)) if claim == "team"));
    }

    #[test]
    fn admins_are_recognised_by_the_configured_claim_and_value() {
        let mapping = ClaimSettings {
            admin_claim: Some("roles".into()),
            admin_value: Some("platform-admin".into()),
            ..ClaimSettings::default()
        };
        let admin = employee_from(
            &mapping,
            &claims(json!({"sub": "a", "roles": ["x", "platform-admin"]})),
        )
        .expect("valid");
        let other =
            employee_from(&mapping, &claims(json!({"sub": "b", "roles": "x"}))).expect("valid");
        assert!(admin.admin);
        assert!(!other.admin);
    }

    #[test]
    fn the_subject_claim_is_configurable_and_required() {
        let mapping = ClaimSettings {
            subject: "preferred_username".into(),
            ..ClaimSettings::default()
        };
        let employee = employee_from(&mapping, &claims(json!({"preferred_username": "alice"})))
            .expect("valid");
        assert_eq!(employee.subject, "alice");
        assert!(employee_from(&mapping, &claims(json!({"sub": "alice"}))).is_err());
    }
}
