//! Phase 1, **authenticate**: verify the bearer JWT and turn its claims into an [`Employee`].
//!
//! Checks, in order: size, header shape, pinned algorithm, no `crit`, a configured key (by
//! `kid`, honouring the JWK's own `alg` and `use`, never a key of another family), then
//! signature, `iss`, `aud`, `exp` and `nbf` with an explicit leeway. Keys embedded in or
//! pointed to by the token (`jwk`, `jku`, `x5u`, `x5c`) are never used.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use moka::future::Cache;
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use crate::config::AuthSettings;
use crate::error::{ErrorCode, Problem};

/// Tokens larger than this are refused unread; real ID/access tokens are a few KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// An authenticated employee, as the gateway sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employee {
    pub subject: String,
    pub email: Option<String>,
    pub team: String,
}

/// Why a bearer token was refused. Every variant is a `401` except an unreachable IdP.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token in the Authorization header")]
    MissingToken,
    #[error("the bearer token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("the bearer token is malformed")]
    Malformed,
    #[error("the token's signing algorithm is not accepted")]
    AlgorithmNotAllowed,
    #[error("the token has critical header parameters the gateway does not understand")]
    UnsupportedCritical,
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
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(String),
    #[error("the token's claim `{0}` has the wrong type")]
    InvalidClaim(String),
    #[error("the identity provider's keys could not be fetched")]
    KeysUnavailable(#[source] Arc<JwksError>),
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::KeysUnavailable(_) => Problem::new(
                ErrorCode::IdentityProviderUnavailable,
                "the identity provider's signing keys are unavailable; try again shortly",
            ),
            other => Problem::new(ErrorCode::Unauthenticated, other.to_string()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("fetching the JWKS failed")]
    Fetch(#[source] reqwest::Error),
    #[error("the JWKS is not a valid key set")]
    Parse(#[source] reqwest::Error),
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    email: Option<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// One verification key from the JWKS, with the constraints its JWK declares.
struct VerificationKey {
    kid: Option<String>,
    /// The JWK's own `alg`; `None` when the IdP omits it (Azure AD does).
    algorithm: Option<Algorithm>,
    key: DecodingKey,
}

impl VerificationKey {
    /// Keeps signature keys of the asymmetric families only: a JWKS `oct` key would turn a
    /// public document into an HMAC secret.
    fn from_jwk(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Self> {
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return None;
        }
        if let Some(key_use) = &jwk.common.public_key_use
            && *key_use != PublicKeyUse::Signature
        {
            return None;
        }
        let algorithm = match jwk.common.key_algorithm {
            // JWE algorithms (`RSA-OAEP`, …) have no signing counterpart and drop the key.
            Some(alg) => Some(alg.to_string().parse::<Algorithm>().ok()?),
            None => None,
        };
        Some(Self {
            kid: jwk.common.key_id.clone(),
            algorithm,
            key: DecodingKey::from_jwk(jwk).ok()?,
        })
    }

    fn accepts(&self, algorithm: Algorithm) -> bool {
        self.algorithm.is_none_or(|own| own == algorithm) && self.key.family() == algorithm.family()
    }
}

/// The IdP's key set: cached, fetched once however many requests miss at the same time,
/// refetched early on an unknown `kid` but at most once per `min_refetch_interval`.
pub struct JwksCache {
    url: Url,
    client: reqwest::Client,
    keys: Cache<(), Arc<Vec<VerificationKey>>>,
    min_refetch_interval: Duration,
    last_forced_refetch: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    pub fn new(settings: &AuthSettings, client: reqwest::Client) -> Self {
        Self {
            url: settings.jwks_url.clone(),
            client,
            keys: Cache::builder()
                .name("jwks")
                .max_capacity(1)
                .time_to_live(Duration::from_secs(settings.jwks_cache_ttl_secs))
                .build(),
            min_refetch_interval: Duration::from_secs(settings.jwks_min_refetch_interval_secs),
            last_forced_refetch: Mutex::new(None),
        }
    }

    async fn current(&self) -> Result<Arc<Vec<VerificationKey>>, Arc<JwksError>> {
        self.keys.try_get_with((), self.fetch()).await
    }

    async fn fetch(&self) -> Result<Arc<Vec<VerificationKey>>, JwksError> {
        let set: JwkSet = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(JwksError::Fetch)?
            .json()
            .await
            .map_err(JwksError::Parse)?;
        let keys: Vec<_> = set
            .keys
            .iter()
            .filter_map(VerificationKey::from_jwk)
            .collect();
        tracing::info!(jwks.url = %self.url, jwks.keys = keys.len(), "fetched the identity provider's keys");
        Ok(Arc::new(keys))
    }

    /// Drops the cached set when no forced refetch happened within the minimum interval.
    async fn allow_refetch(&self) -> bool {
        let mut last = self.last_forced_refetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.min_refetch_interval) {
            return false;
        }
        *last = Some(Instant::now());
        self.keys.invalidate(&()).await;
        true
    }

    async fn decoding_key(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<DecodingKey, AuthError> {
        let keys = self.current().await.map_err(AuthError::KeysUnavailable)?;
        if let Some(key) = pick(&keys, kid, algorithm) {
            return Ok(key);
        }
        if kid.is_some() && self.allow_refetch().await {
            let keys = self.current().await.map_err(AuthError::KeysUnavailable)?;
            if let Some(key) = pick(&keys, kid, algorithm) {
                return Ok(key);
            }
        }
        Err(AuthError::UnknownKey)
    }
}

/// With a `kid`, only that key; without one, the only key that fits (ambiguity is refused).
fn pick(keys: &[VerificationKey], kid: Option<&str>, algorithm: Algorithm) -> Option<DecodingKey> {
    let mut candidates = keys
        .iter()
        .filter(|key| kid.is_none_or(|kid| key.kid.as_deref() == Some(kid)))
        .filter(|key| key.accepts(algorithm));
    let first = candidates.next()?;
    match (kid, candidates.next()) {
        (None, Some(_)) => None,
        _ => Some(first.key.clone()),
    }
}

/// Verifies bearer tokens against the configured issuer, audience and key set.
#[derive(Debug)]
pub struct Authenticator {
    settings: AuthSettings,
    jwks: JwksCache,
}

impl Authenticator {
    pub fn new(settings: AuthSettings, client: reqwest::Client) -> Self {
        let jwks = JwksCache::new(&settings, client);
        Self { settings, jwks }
    }

    /// Whether a usable key set is loaded (fetching it if needed); for readiness.
    pub async fn keys_available(&self) -> bool {
        self.jwks.current().await.is_ok_and(|keys| !keys.is_empty())
    }

    pub async fn verify(&self, token: &str) -> Result<Employee, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        // RFC 7515 §4.1.11: a recipient must reject critical parameters it does not implement,
        // and this gateway implements none.
        if header.crit.is_some() {
            return Err(AuthError::UnsupportedCritical);
        }
        let key = self
            .jwks
            .decoding_key(header.kid.as_deref(), header.alg)
            .await?;

        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|error| match error.into_kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::InvalidAudience => AuthError::WrongAudience,
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim),
                ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim(claim),
                ErrorKind::InvalidAlgorithm => AuthError::AlgorithmNotAllowed,
                _ => AuthError::Malformed,
            })?
            .claims;
        self.employee(claims)
    }

    fn employee(&self, claims: Claims) -> Result<Employee, AuthError> {
        let claim = &self.settings.team_claim;
        let team = match claims.other.get(claim) {
            Some(serde_json::Value::String(team)) => team.clone(),
            Some(serde_json::Value::Array(teams)) => match teams.as_slice() {
                [serde_json::Value::String(team)] => team.clone(),
                _ => return Err(AuthError::InvalidClaim(claim.clone())),
            },
            Some(_) => return Err(AuthError::InvalidClaim(claim.clone())),
            None => return Err(AuthError::MissingClaim(claim.clone())),
        };
        if claims.sub.is_empty() {
            return Err(AuthError::MissingClaim("sub".into()));
        }
        Ok(Employee {
            subject: claims.sub,
            email: claims.email,
            team,
        })
    }
}

/// Middleware on `/v1`: verifies the bearer token and stores the [`Employee`] in the request.
pub async fn require_employee(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let outcome = match request.app_data::<web::Data<Authenticator>>() {
        Some(authenticator) => match bearer_token(&request) {
            Some(token) => authenticator.verify(token).await,
            None => Err(AuthError::MissingToken),
        },
        None => {
            return Err(actix_web::error::ErrorInternalServerError(
                "authenticator missing",
            ));
        }
    };
    match outcome {
        Ok(employee) => {
            let span = tracing::Span::current();
            span.record("employee.subject", employee.subject.as_str());
            span.record("employee.team", employee.team.as_str());
            request.extensions_mut().insert(employee);
            next.call(request)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(error) => {
            tracing::info!(error = %error, "request refused by authentication");
            let response = Problem::from(error).response_for(request.request());
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}

fn bearer_token(request: &ServiceRequest) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
