//! The identity provider's signing keys: where they come from and how they are kept fresh.
//!
//! Sources: a JWKS URL, OIDC discovery from the issuer (`/.well-known/openid-configuration`
//! → `jwks_uri`), or a static file (PEM or JWKS) for closed networks.
//!
//! Fetched key sets are refreshed in the background every `jwks_refresh_secs`, or sooner when
//! the JWKS response's `Cache-Control: max-age` says so. A token with an unknown `kid` may
//! force an early refetch, single-flight, from a token bucket of `jwks_refetch_burst`
//! refetches refilled one per `jwks_min_refetch_interval_secs`: two rotations in a row are
//! both picked up at once, and a flood of forged ids costs the IdP at most that budget. When
//! a refresh fails the last good set keeps serving for `jwks_max_stale_secs`.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{AlgorithmFamily, DecodingKey};
use serde::Deserialize;
use tokio::sync::{Mutex, Notify};
use url::Url;

use crate::config::AuthSettings;

mod algorithm;
pub mod introspection;
pub use algorithm::{SigningAlgorithm, UnsupportedAlgorithm};

/// One verification key, with the algorithms it may verify.
pub struct VerificationKey {
    pub kid: Option<String>,
    /// The JWK's own `alg` when it names one; otherwise every algorithm of its key type (and
    /// curve), so a key never verifies a signature of another kind.
    pub algorithms: Vec<SigningAlgorithm>,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// Keeps signature keys of the asymmetric families only: a JWKS `oct` key would turn a
    /// public document into an HMAC secret. A key whose `alg` or curve the gateway cannot
    /// verify (ES512, Ed448, an encryption algorithm), or whose `alg` contradicts its type,
    /// is left out; the rest of the set still loads.
    fn from_jwk(value: &serde_json::Value) -> Option<Self> {
        let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|key_use| *key_use != PublicKeyUse::Signature)
        {
            return None;
        }
        let by_type: &[SigningAlgorithm] = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => &SigningAlgorithm::RSA,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => &[SigningAlgorithm::Es256],
                EllipticCurve::P384 => &[SigningAlgorithm::Es384],
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
                EllipticCurve::Ed25519 => &SigningAlgorithm::ED25519,
                _ => return None,
            },
            AlgorithmParameters::OctetKey(_) => return None,
        };
        // Read from the document itself: jsonwebtoken's JWK type has no `Ed25519` alg.
        let algorithms = match value.get("alg").and_then(serde_json::Value::as_str) {
            None => by_type.to_vec(),
            Some(name) => {
                let declared: SigningAlgorithm = name.parse().ok()?;
                if !by_type.contains(&declared) {
                    return None;
                }
                if SigningAlgorithm::ED25519.contains(&declared) {
                    SigningAlgorithm::ED25519.to_vec()
                } else {
                    vec![declared]
                }
            }
        };
        Some(Self {
            kid: jwk.common.key_id.clone(),
            algorithms,
            key: DecodingKey::from_jwk(&jwk).ok()?,
        })
    }

    /// A PEM key carries no `alg`: it may verify what its family signs.
    fn from_pem(key: DecodingKey) -> Self {
        let algorithms = match key.family() {
            AlgorithmFamily::Rsa => SigningAlgorithm::RSA.to_vec(),
            AlgorithmFamily::Ec => vec![SigningAlgorithm::Es256, SigningAlgorithm::Es384],
            AlgorithmFamily::Ed => SigningAlgorithm::ED25519.to_vec(),
            AlgorithmFamily::Hmac => Vec::new(),
        };
        Self {
            kid: None,
            algorithms,
            key,
        }
    }

    /// Whether this key may verify a token signed with `algorithm`.
    pub fn accepts(&self, algorithm: SigningAlgorithm) -> bool {
        self.algorithms.contains(&algorithm)
    }
}

/// The usable keys of a JWKS document, each parsed on its own, so one key of a kind the
/// gateway does not verify does not take the others with it.
#[derive(Deserialize)]
struct KeySetDocument {
    keys: Vec<serde_json::Value>,
}

impl KeySetDocument {
    fn usable_keys(&self) -> Vec<VerificationKey> {
        self.keys
            .iter()
            .filter_map(VerificationKey::from_jwk)
            .collect()
    }
}

/// A key set and when it was obtained.
#[derive(Debug)]
pub struct KeySnapshot {
    pub keys: Vec<VerificationKey>,
    /// Grows with every set loaded: what a verified token was checked against, so a cached
    /// verification is trusted only while that very set is.
    pub generation: u64,
    fetched_at: Instant,
    /// The JWKS response's `Cache-Control: max-age`, when it sent one.
    max_age: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("fetching {url} failed: {source}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} did not serve a valid document: {source}")]
    Parse {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the key set at {0} holds no usable signing key")]
    Empty(String),
    #[error("reading key file {path}: {message}")]
    File { path: String, message: String },
    #[error("no key set is loaded and the last refresh failed")]
    Unavailable,
}

#[derive(Debug, Clone)]
enum Source {
    Jwks(Url),
    Discovery(Url),
    Static,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: Url,
}

#[derive(Debug)]
pub struct KeyStore {
    source: Source,
    client: reqwest::Client,
    current: ArcSwapOption<KeySnapshot>,
    refresh_every: Duration,
    max_stale: Duration,
    /// Early refetches (unknown `kid`, a set gone stale); `None` when unlimited.
    forced_refetches: Option<DefaultDirectRateLimiter>,
    /// Held while fetching: concurrent refreshes wait and reuse the result.
    refreshing: Mutex<()>,
    /// When the last fetch ended and whether it succeeded.
    last_attempt: std::sync::Mutex<Option<(Instant, bool)>>,
    /// Key sets loaded so far.
    generations: AtomicU64,
    /// Woken by every set loaded, so the refresher reschedules from the newest one.
    installed: Arc<Notify>,
}

impl KeyStore {
    /// A store for the configured source. A key file is read now, so a bad file stops start-up.
    pub fn new(settings: &AuthSettings, client: reqwest::Client) -> Result<Self, KeysError> {
        let (source, initial) = match (
            &settings.jwks_url,
            settings.oidc_discovery,
            &settings.keys_file,
        ) {
            (Some(url), _, _) => (Source::Jwks(url.clone()), None),
            (None, true, _) => {
                let base = format!(
                    "{}/.well-known/openid-configuration",
                    settings.issuer.trim_end_matches('/')
                );
                let url = base.parse().map_err(|e| KeysError::File {
                    path: base.clone(),
                    message: format!("the issuer is not a URL: {e}"),
                })?;
                (Source::Discovery(url), None)
            }
            (None, false, Some(path)) => (Source::Static, Some(load_file(path)?)),
            (None, false, None) => {
                return Err(KeysError::File {
                    path: String::new(),
                    message: "no key source configured".into(),
                });
            }
        };
        let store = Self {
            source,
            client,
            current: ArcSwapOption::empty(),
            refresh_every: Duration::from_secs(settings.jwks_refresh_secs),
            max_stale: Duration::from_secs(settings.jwks_max_stale_secs),
            forced_refetches: Quota::with_period(Duration::from_secs(
                settings.jwks_min_refetch_interval_secs,
            ))
            .map(|quota| {
                let burst = NonZeroU32::new(settings.jwks_refetch_burst).unwrap_or(NonZeroU32::MIN);
                RateLimiter::direct(quota.allow_burst(burst))
            }),
            refreshing: Mutex::new(()),
            last_attempt: std::sync::Mutex::new(None),
            generations: AtomicU64::new(0),
            installed: Arc::new(Notify::new()),
        };
        if let Some(keys) = initial {
            store.install(keys, None);
        }
        Ok(store)
    }

    fn install(&self, keys: Vec<VerificationKey>, max_age: Option<Duration>) {
        self.current.store(Some(Arc::new(KeySnapshot {
            keys,
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
            fetched_at: Instant::now(),
            max_age,
        })));
        self.installed.notify_waiters();
    }

    /// When to refresh next: the configured interval, or the IdP's `max-age` when shorter
    /// (never more often than once a second).
    fn next_refresh(&self) -> Duration {
        self.current
            .load()
            .as_ref()
            .and_then(|snapshot| snapshot.max_age)
            .map_or(self.refresh_every, |max_age| {
                max_age.clamp(MIN_REFRESH, self.refresh_every.max(MIN_REFRESH))
            })
    }

    /// Refreshes in the background until the store is dropped.
    pub fn spawn_refresher(self: &Arc<Self>) {
        if matches!(self.source, Source::Static) {
            return;
        }
        let store: Weak<Self> = Arc::downgrade(self);
        let installed = self.installed.clone();
        let mut delay = self.next_refresh();
        tokio::spawn(async move {
            loop {
                let due = tokio::select! {
                    () = tokio::time::sleep(delay) => true,
                    // A set fetched meanwhile (for an unknown `kid`) restarts the wait.
                    () = installed.notified() => false,
                };
                let Some(store) = store.upgrade() else { return };
                delay = if !due {
                    store.next_refresh()
                } else {
                    // Retry a failed refresh sooner, but never hammer the IdP.
                    match store.refresh().await {
                        Ok(()) => store.next_refresh(),
                        Err(_) => (store.refresh_every / 4).max(MIN_REFRESH),
                    }
                };
            }
        });
    }

    /// The keys to verify with. The background refresher keeps them fresh; a set older than
    /// its refresh interval plus the stale allowance is refreshed inline (at most once per
    /// minimum interval), and refused when that fails.
    /// How many keys are in use and how old their set is, without fetching; `None` before
    /// the first load.
    pub fn loaded(&self) -> Option<(usize, Duration)> {
        self.current
            .load()
            .as_ref()
            .map(|snapshot| (snapshot.keys.len(), snapshot.fetched_at.elapsed()))
    }

    pub async fn keys(&self) -> Result<Arc<KeySnapshot>, KeysError> {
        match self.current.load_full() {
            Some(snapshot)
                if matches!(self.source, Source::Static)
                    || snapshot.fetched_at.elapsed() < self.refresh_every + self.max_stale =>
            {
                Ok(snapshot)
            }
            Some(_) => {
                if self.may_force_refetch() {
                    self.refresh().await?;
                }
                self.current
                    .load_full()
                    .filter(|s| s.fetched_at.elapsed() < self.refresh_every + self.max_stale)
                    .ok_or(KeysError::Unavailable)
            }
            None => {
                self.refresh().await?;
                self.current.load_full().ok_or(KeysError::Unavailable)
            }
        }
    }

    /// After an unknown `kid`: refetch, when the refetch budget allows. Returns whether the
    /// key set may have changed.
    pub async fn refetch_for_unknown_kid(&self) -> bool {
        if matches!(self.source, Source::Static) || !self.may_force_refetch() {
            return false;
        }
        self.refresh().await.is_ok()
    }

    fn may_force_refetch(&self) -> bool {
        self.forced_refetches
            .as_ref()
            .is_none_or(|bucket| bucket.check().is_ok())
    }

    /// Fetches a new set; callers that queued behind a fetch take its outcome instead of
    /// fetching again. On failure the current set is kept.
    async fn refresh(&self) -> Result<(), KeysError> {
        let requested_at = Instant::now();
        let _guard = self.refreshing.lock().await;
        let last = *self
            .last_attempt
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, succeeded)) = last
            && at > requested_at
        {
            return if succeeded {
                Ok(())
            } else {
                Err(KeysError::Unavailable)
            };
        }
        let outcome = self.fetch().await;
        let result = if outcome.is_ok() { "ok" } else { "error" };
        crate::metrics::METRICS
            .jwks_fetches
            .with_label_values(&[result])
            .inc();
        *self
            .last_attempt
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), outcome.is_ok()));
        match outcome {
            Ok((keys, max_age)) => {
                tracing::info!(
                    jwks.keys = keys.len(),
                    jwks.max_age_secs = max_age.map(|age| age.as_secs()),
                    "loaded the identity provider's keys"
                );
                self.install(keys, max_age);
                Ok(())
            }
            Err(error) => {
                tracing::warn!(
                    error = %error,
                    serving_last_good = self.current.load().is_some(),
                    "refreshing the identity provider's keys failed"
                );
                Err(error)
            }
        }
    }

    /// The usable keys, and the JWKS response's `max-age`.
    async fn fetch(&self) -> Result<(Vec<VerificationKey>, Option<Duration>), KeysError> {
        let jwks_url = match &self.source {
            Source::Jwks(url) => url.clone(),
            Source::Discovery(url) => self.get::<Discovery>(url).await?.0.jwks_uri,
            Source::Static => return Err(KeysError::Unavailable),
        };
        let (set, max_age): (KeySetDocument, _) = self.get(&jwks_url).await?;
        let keys = set.usable_keys();
        if keys.is_empty() {
            return Err(KeysError::Empty(jwks_url.to_string()));
        }
        Ok((keys, max_age))
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
    ) -> Result<(T, Option<Duration>), KeysError> {
        let response = self
            .client
            .get(url.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|source| KeysError::Fetch {
                url: url.to_string(),
                source,
            })?;
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(max_age);
        let document = response.json().await.map_err(|source| KeysError::Parse {
            url: url.to_string(),
            source,
        })?;
        Ok((document, max_age))
    }
}

/// Refreshes never run more often than this, whatever `max-age` says.
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// The `max-age` directive of a `Cache-Control` value (RFC 9111 §5.2.2.1). `no-cache`, which
/// some IdPs (Keycloak) send on their JWKS, is not read as "refetch on every use": the
/// configured interval then applies.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| value.trim().trim_matches('"').parse().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

/// Reads PEM public keys (RSA or EC, any number of blocks) or a JWKS document.
fn load_file(path: &Path) -> Result<Vec<VerificationKey>, KeysError> {
    let error = |message: String| KeysError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let keys: Vec<VerificationKey> = if text.trim_start().starts_with('{') {
        let set: KeySetDocument =
            serde_json::from_str(&text).map_err(|e| error(format!("not a JWKS: {e}")))?;
        set.usable_keys()
    } else {
        let blocks = pem::parse_many(&text).map_err(|e| error(format!("not PEM: {e}")))?;
        blocks
            .iter()
            .map(|block| {
                let encoded = pem::encode(block);
                DecodingKey::from_rsa_pem(encoded.as_bytes())
                    .or_else(|_| DecodingKey::from_ec_pem(encoded.as_bytes()))
                    .or_else(|_| DecodingKey::from_ed_pem(encoded.as_bytes()))
                    .map(VerificationKey::from_pem)
                    .map_err(|e| {
                        error(format!(
                            "PEM block `{}` is not a public key: {e}",
                            block.tag()
                        ))
                    })
            })
            .collect::<Result<_, _>>()?
    };
    if keys.is_empty() {
        return Err(error("holds no usable signing key".into()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
    // A P-256 point and an Ed25519 public key, as published (RFC 7515 A.3, RFC 8037 A.2).
    const P256_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const P256_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    use SigningAlgorithm::{Ed25519, EdDsa, Es256, Es384, Ps256, Rs256, Rs512};

    fn key(value: serde_json::Value) -> Option<VerificationKey> {
        VerificationKey::from_jwk(&value)
    }

    #[test]
    fn an_oct_key_in_a_jwks_is_never_used() {
        assert!(key(json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"})).is_none());
    }

    #[test]
    fn an_encryption_key_is_never_used_for_signatures() {
        assert!(
            key(json!({"kty": "RSA", "n": N, "e": "AQAB", "use": "enc", "kid": "e"})).is_none()
        );
    }

    #[test]
    fn a_key_is_pinned_to_its_own_alg() {
        let pinned = key(json!({"kty": "RSA", "n": N, "e": "AQAB", "alg": "RS256", "kid": "p"}))
            .expect("usable");
        assert!(pinned.accepts(Rs256));
        assert!(!pinned.accepts(Rs512), "the JWK's alg is honoured");
        assert!(!pinned.accepts(Ps256));
    }

    #[test]
    fn a_key_without_alg_is_pinned_to_its_type_and_curve() {
        let rsa = key(json!({"kty": "RSA", "n": N, "e": "AQAB", "kid": "u"})).expect("usable");
        assert!(rsa.accepts(Ps256) && rsa.accepts(Rs512));
        assert!(!rsa.accepts(Es256), "never a key of another family");
        let p256 =
            key(json!({"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y})).expect("usable");
        assert_eq!(p256.algorithms, vec![Es256], "a P-256 key signs ES256 only");
        assert!(!p256.accepts(Es384));
        let ed = key(json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X})).expect("usable");
        assert_eq!(ed.algorithms, vec![EdDsa, Ed25519]);
    }

    #[test]
    fn the_fully_specified_ed25519_alg_is_read_from_the_document() {
        let ed = key(json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X, "alg": "Ed25519"}))
            .expect("usable");
        assert!(
            ed.accepts(Ed25519) && ed.accepts(EdDsa),
            "one signature, two names"
        );
    }

    #[test]
    fn keys_the_gateway_cannot_verify_are_left_out_and_the_rest_load() {
        let document: KeySetDocument = serde_json::from_value(json!({"keys": [
            {"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y, "alg": "ES512", "kid": "a"},
            {"kty": "RSA", "n": N, "e": "AQAB", "alg": "ES256", "kid": "b"},
            {"kty": "OKP", "crv": "X25519", "x": ED_X, "kid": "c"},
            {"kty": "RSA", "n": N, "e": "AQAB", "alg": "RSA-OAEP", "kid": "d"},
            {"kty": "unheard-of", "kid": "e"},
            {"kty": "RSA", "n": N, "e": "AQAB", "alg": "PS256", "kid": "ok"},
        ]}))
        .expect("a document");
        let kids: Vec<_> = document
            .usable_keys()
            .into_iter()
            .filter_map(|key| key.kid)
            .collect();
        assert_eq!(kids, vec!["ok"]);
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("Max-Age = \"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }

    #[test]
    fn a_key_file_of_garbage_is_refused_at_start() {
        let path =
            std::env::temp_dir().join(format!("srgw-garbage-keys-{}.pem", std::process::id()));
        std::fs::write(
            &path,
            "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
        )
        .expect("write");
        let error = load_file(&path).expect_err("not a key");
        drop(std::fs::remove_file(&path));
        assert!(error.to_string().contains("not a public key"), "{error}");
    }
}
