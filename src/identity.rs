//! The identity provider's signing keys: where they come from and how they are kept fresh.
//!
//! Sources: a JWKS URL, OIDC discovery from the issuer (`/.well-known/openid-configuration`
//! → `jwks_uri`), or a static file (PEM or JWKS) for closed networks.
//!
//! Fetched key sets are refreshed in the background every `jwks_refresh_secs`. A token with an
//! unknown `kid` may force one early refetch, single-flight and at most once per
//! `jwks_min_refetch_interval_secs`, so a flood of forged ids cannot flood the IdP. When a
//! refresh fails the last good set keeps serving for `jwks_max_stale_secs`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use crate::config::AuthSettings;

/// One verification key, with the constraints its JWK declares.
pub struct VerificationKey {
    pub kid: Option<String>,
    /// The JWK's own `alg`; `None` when the IdP omits it (Azure AD does).
    pub algorithm: Option<Algorithm>,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// Keeps signature keys of the asymmetric families only: a JWKS `oct` key would turn a
    /// public document into an HMAC secret. JWE-only algorithms drop the key.
    fn from_jwk(jwk: &Jwk) -> Option<Self> {
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return None;
        }
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|key_use| *key_use != PublicKeyUse::Signature)
        {
            return None;
        }
        let algorithm = match jwk.common.key_algorithm {
            Some(alg) => Some(alg.to_string().parse::<Algorithm>().ok()?),
            None => None,
        };
        Some(Self {
            kid: jwk.common.key_id.clone(),
            algorithm,
            key: DecodingKey::from_jwk(jwk).ok()?,
        })
    }

    /// Whether this key may verify a token signed with `algorithm`: the JWK's own `alg` when
    /// it has one, and always the same key family.
    pub fn accepts(&self, algorithm: Algorithm) -> bool {
        self.algorithm.is_none_or(|own| own == algorithm) && self.key.family() == algorithm.family()
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
    min_refetch_interval: Duration,
    /// Held while fetching: concurrent refreshes wait and reuse the result.
    refreshing: Mutex<()>,
    last_forced_refetch: std::sync::Mutex<Option<Instant>>,
    /// When the last fetch ended and whether it succeeded.
    last_attempt: std::sync::Mutex<Option<(Instant, bool)>>,
    /// Key sets loaded so far.
    generations: AtomicU64,
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
            min_refetch_interval: Duration::from_secs(settings.jwks_min_refetch_interval_secs),
            refreshing: Mutex::new(()),
            last_forced_refetch: std::sync::Mutex::new(None),
            last_attempt: std::sync::Mutex::new(None),
            generations: AtomicU64::new(0),
        };
        if let Some(keys) = initial {
            store.install(keys);
        }
        Ok(store)
    }

    fn install(&self, keys: Vec<VerificationKey>) {
        self.current.store(Some(Arc::new(KeySnapshot {
            keys,
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
            fetched_at: Instant::now(),
        })));
    }

    /// Refreshes in the background until the store is dropped.
    pub fn spawn_refresher(self: &Arc<Self>) {
        if matches!(self.source, Source::Static) {
            return;
        }
        let store: Weak<Self> = Arc::downgrade(self);
        let every = self.refresh_every;
        tokio::spawn(async move {
            let mut delay = every;
            loop {
                tokio::time::sleep(delay).await;
                let Some(store) = store.upgrade() else { return };
                // Retry a failed refresh sooner, but never hammer the IdP.
                delay = match store.refresh().await {
                    Ok(()) => every,
                    Err(_) => (every / 4).max(Duration::from_secs(1)),
                };
            }
        });
    }

    /// The keys to verify with. The background refresher keeps them fresh; a set older than
    /// its refresh interval plus the stale allowance is refreshed inline (at most once per
    /// minimum interval), and refused when that fails.
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

    /// After an unknown `kid`: refetch once, unless a forced refetch already happened within
    /// the minimum interval. Returns whether the key set may have changed.
    pub async fn refetch_for_unknown_kid(&self) -> bool {
        if matches!(self.source, Source::Static) || !self.may_force_refetch() {
            return false;
        }
        self.refresh().await.is_ok()
    }

    fn may_force_refetch(&self) -> bool {
        let mut last = self
            .last_forced_refetch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < self.min_refetch_interval) {
            return false;
        }
        *last = Some(Instant::now());
        true
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
            Ok(keys) => {
                tracing::info!(
                    jwks.keys = keys.len(),
                    "loaded the identity provider's keys"
                );
                self.install(keys);
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

    async fn fetch(&self) -> Result<Vec<VerificationKey>, KeysError> {
        let jwks_url = match &self.source {
            Source::Jwks(url) => url.clone(),
            Source::Discovery(url) => self.get::<Discovery>(url).await?.jwks_uri,
            Source::Static => return Err(KeysError::Unavailable),
        };
        let set: JwkSet = self.get(&jwks_url).await?;
        let keys: Vec<_> = set
            .keys
            .iter()
            .filter_map(VerificationKey::from_jwk)
            .collect();
        if keys.is_empty() {
            return Err(KeysError::Empty(jwks_url.to_string()));
        }
        Ok(keys)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: &Url) -> Result<T, KeysError> {
        self.client
            .get(url.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|source| KeysError::Fetch {
                url: url.to_string(),
                source,
            })?
            .json()
            .await
            .map_err(|source| KeysError::Parse {
                url: url.to_string(),
                source,
            })
    }
}

/// Reads PEM public keys (RSA or EC, any number of blocks) or a JWKS document.
fn load_file(path: &Path) -> Result<Vec<VerificationKey>, KeysError> {
    let error = |message: String| KeysError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let keys: Vec<VerificationKey> = if text.trim_start().starts_with('{') {
        let set: JwkSet =
            serde_json::from_str(&text).map_err(|e| error(format!("not a JWKS: {e}")))?;
        set.keys
            .iter()
            .filter_map(VerificationKey::from_jwk)
            .collect()
    } else {
        let blocks = pem::parse_many(&text).map_err(|e| error(format!("not PEM: {e}")))?;
        blocks
            .iter()
            .map(|block| {
                let encoded = pem::encode(block);
                DecodingKey::from_rsa_pem(encoded.as_bytes())
                    .or_else(|_| DecodingKey::from_ec_pem(encoded.as_bytes()))
                    .or_else(|_| DecodingKey::from_ed_pem(encoded.as_bytes()))
                    .map(|key| VerificationKey {
                        kid: None,
                        algorithm: None,
                        key,
                    })
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

    fn jwk(value: serde_json::Value) -> Jwk {
        serde_json::from_value(value).expect("a JWK")
    }

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn an_oct_key_in_a_jwks_is_never_used() {
        assert!(
            VerificationKey::from_jwk(&jwk(json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"})))
                .is_none()
        );
    }

    #[test]
    fn an_encryption_key_is_never_used_for_signatures() {
        let key = jwk(json!({"kty": "RSA", "n": N, "e": "AQAB", "use": "enc", "kid": "e"}));
        assert!(VerificationKey::from_jwk(&key).is_none());
    }

    #[test]
    fn a_key_honours_its_own_alg_and_family() {
        let pinned = VerificationKey::from_jwk(&jwk(
            json!({"kty": "RSA", "n": N, "e": "AQAB", "alg": "RS256", "kid": "p"}),
        ))
        .expect("usable");
        assert!(pinned.accepts(Algorithm::RS256));
        assert!(
            !pinned.accepts(Algorithm::RS512),
            "the JWK's alg is honoured"
        );
        assert!(
            !pinned.accepts(Algorithm::ES256),
            "never a key of another family"
        );
        let unpinned =
            VerificationKey::from_jwk(&jwk(json!({"kty": "RSA", "n": N, "e": "AQAB", "kid": "u"})))
                .expect("usable");
        assert!(unpinned.accepts(Algorithm::PS256));
        assert!(!unpinned.accepts(Algorithm::ES256));
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
