//! RFC 7662 token introspection, for access tokens that are not JWTs (opaque tokens).
//!
//! The gateway asks the identity provider's introspection endpoint about each new token,
//! authenticating as its own client (HTTP Basic, `client_secret_basic`). Answers are
//! remembered by the token's SHA-256: an active token until its `exp`, and at most
//! `introspection_cache_secs`, so a revoked token stops working within that time; an
//! inactive one for `introspection_cache_secs`, so replaying a dead token costs the IdP
//! nothing. Concurrent requests with the same new token share one call.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::Expiry;
use moka::future::Cache;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use crate::config::IntrospectionSettings;

/// What the identity provider said about a token.
#[derive(Debug)]
pub enum Introspected {
    /// `active: true`, with the answer's other members as the token's claims.
    Active(Map<String, Value>),
    Inactive,
}

#[derive(Debug, thiserror::Error)]
pub enum IntrospectionError {
    #[error("the introspection endpoint {url} is unreachable: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the introspection endpoint {url} answered {status}")]
    Refused { url: String, status: u16 },
    #[error("the introspection endpoint {url} did not answer an RFC 7662 response")]
    Invalid { url: String },
}

/// How long an answer is remembered.
struct UntilStale {
    at_most: Duration,
}

impl Expiry<[u8; 32], Arc<Introspected>> for UntilStale {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Introspected>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let until_exp = match value.as_ref() {
            Introspected::Active(claims) => claims.get("exp").and_then(Value::as_u64).map(|exp| {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                Duration::from_secs(exp.saturating_sub(now))
            }),
            Introspected::Inactive => None,
        };
        Some(until_exp.map_or(self.at_most, |left| left.min(self.at_most)))
    }
}

#[derive(Debug)]
pub struct Introspector {
    settings: IntrospectionSettings,
    client: reqwest::Client,
    answers: Cache<[u8; 32], Arc<Introspected>>,
}

impl Introspector {
    pub fn new(
        settings: IntrospectionSettings,
        cache_for: Duration,
        cache_size: u64,
        client: reqwest::Client,
    ) -> Self {
        let answers = Cache::builder()
            .name("introspected_tokens")
            .max_capacity(cache_size)
            .expire_after(UntilStale { at_most: cache_for })
            .build();
        Self {
            settings,
            client,
            answers,
        }
    }

    /// The provider's answer for `token` (whose SHA-256 is `digest`), remembered or asked.
    pub async fn introspect(
        &self,
        digest: [u8; 32],
        token: &str,
    ) -> Result<Arc<Introspected>, Arc<IntrospectionError>> {
        self.answers
            .try_get_with(digest, async { self.ask(token).await.map(Arc::new) })
            .await
    }

    async fn ask(&self, token: &str) -> Result<Introspected, IntrospectionError> {
        let url = &self.settings.endpoint;
        let response = self
            .client
            .post(url.clone())
            .basic_auth(
                &self.settings.client_id,
                Some(self.settings.client_secret.expose_secret()),
            )
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|source| IntrospectionError::Unreachable {
                url: url.to_string(),
                source,
            })?;
        crate::metrics::METRICS
            .introspections
            .with_label_values(&[response.status().as_str()])
            .inc();
        if !response.status().is_success() {
            return Err(IntrospectionError::Refused {
                url: url.to_string(),
                status: response.status().as_u16(),
            });
        }
        let invalid = || IntrospectionError::Invalid {
            url: url.to_string(),
        };
        let mut answer: Map<String, Value> = response.json().await.map_err(|_| invalid())?;
        match answer.remove("active") {
            Some(Value::Bool(true)) => Ok(Introspected::Active(answer)),
            Some(Value::Bool(false)) => Ok(Introspected::Inactive),
            _ => Err(invalid()),
        }
    }
}
