//! Phase 1, **authenticate**: verify the bearer JWT and turn its claims into an [`Employee`].
//!
//! Checks, in order: size, header shape, pinned algorithm, no `crit`, the expected `typ`, a
//! configured key (by `kid`, honouring the JWK's own `alg` and `use`, never a key of another
//! family), then signature, `iss`, `aud`, `exp`, `nbf` (explicit leeway), numeric claims and
//! the longest allowed lifetime. Keys embedded in or pointed to by the token (`jwk`, `jku`,
//! `x5u`, `x5c`) are never used: keys come only from [`crate::identity::KeyStore`].
//! A verified token is remembered (by its SHA-256) until it expires.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use moka::Expiry;
use moka::future::Cache;
use serde_json::{Map, Value};

use crate::config::{AuthSettings, ClaimSettings};
use crate::identity::{KeyStore, KeysError, VerificationKey};

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
    #[error(
        "the token's signing algorithm is not accepted: it is {arrived:?}; accepted: {accepted}"
    )]
    AlgorithmNotAllowed {
        arrived: Algorithm,
        accepted: String,
    },
    #[error("the token has critical header parameters the gateway does not understand")]
    UnsupportedCritical,
    #[error("the token's type (typ) is not the expected one")]
    WrongType,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
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
        }
    }

    /// Whether a usable key set is loaded (fetching it if needed); for readiness.
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
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(self.algorithm_not_allowed(header.alg));
        }
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
        let (claims, key_generation) = self
            .verify_signature_and_claims(token, header.kid.as_deref(), header.alg)
            .await?;
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| AuthError::InvalidClaim("exp".into()))?;
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

    /// The token's claims, and the generation of the key set that verified them.
    async fn verify_signature_and_claims(
        &self,
        token: &str,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<(Map<String, Value>, u64), AuthError> {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.settings.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);

        let mut snapshot = self.keys.keys().await.map_err(AuthError::KeysUnavailable)?;
        if candidates(&snapshot.keys, kid, algorithm).is_empty()
            && kid.is_some()
            && self.keys.refetch_for_unknown_kid().await
        {
            snapshot = self.keys.keys().await.map_err(AuthError::KeysUnavailable)?;
        }
        let candidates = candidates(&snapshot.keys, kid, algorithm);
        if candidates.is_empty() {
            return Err(AuthError::UnknownKey);
        }
        let mut outcome = Err(AuthError::BadSignature);
        for key in candidates {
            outcome = decode::<Map<String, Value>>(token, key, &validation)
                .map(|data| data.claims)
                .map_err(|error| classify(error, || self.algorithm_not_allowed(algorithm)));
            if !matches!(outcome, Err(AuthError::BadSignature)) {
                break;
            }
        }
        outcome.map(|claims| (claims, snapshot.generation))
    }

    fn algorithm_not_allowed(&self, arrived: Algorithm) -> AuthError {
        let accepted: Vec<String> = self
            .settings
            .algorithms
            .iter()
            .map(|algorithm| format!("{algorithm:?}"))
            .collect();
        AuthError::AlgorithmNotAllowed {
            arrived,
            accepted: accepted.join(", "),
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
    algorithm: Algorithm,
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

/// The refusal a verification error means; `not_allowed` names the algorithm's refusal.
fn classify(
    error: jsonwebtoken::errors::Error,
    not_allowed: impl FnOnce() -> AuthError,
) -> AuthError {
    match error.into_kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim),
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim(claim),
        ErrorKind::InvalidAlgorithm => not_allowed(),
        _ => AuthError::Malformed,
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
    Ok(Employee {
        subject,
        email,
        teams,
        admin,
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
