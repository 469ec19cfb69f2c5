//! The gateway's own IAM tokens: one cache per account, holding a token per project (so one
//! token per (account, project)), each kept until shortly before its `expires_at` and fetched
//! once however many requests miss at the same time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use moka::Expiry;
use moka::future::Cache;
use moka::ops::compute::Op;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::CloudError;
use crate::config::PasswordLogin;

/// An IAM token; it prints as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct IamToken {
    pub value: SecretString,
    pub expires_at: DateTime<Utc>,
}

/// Expires each cached token `margin` before its own `expires_at`.
struct RefreshBeforeExpiry {
    margin: Duration,
}

impl Expiry<String, Arc<IamToken>> for RefreshBeforeExpiry {
    fn expire_after_create(
        &self,
        _project: &String,
        token: &Arc<IamToken>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let remaining = (token.expires_at - Utc::now()).to_std().unwrap_or_default();
        Some(remaining.saturating_sub(self.margin))
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    token: TokenBody,
}

#[derive(Deserialize)]
struct TokenBody {
    expires_at: DateTime<Utc>,
}

/// The tokens of one account, by project.
pub struct IamTokenCache {
    http: reqwest::Client,
    account: String,
    login: PasswordLogin,
    tokens: Cache<String, Arc<IamToken>>,
}

impl std::fmt::Debug for IamTokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamTokenCache")
            .field("account", &self.account)
            .field("iam_url", &self.login.iam_url.as_str())
            .finish_non_exhaustive()
    }
}

impl IamTokenCache {
    pub fn new(
        http: reqwest::Client,
        account: &str,
        login: PasswordLogin,
        margin: Duration,
    ) -> Self {
        Self {
            http,
            account: account.to_owned(),
            login,
            tokens: Cache::builder()
                .name("iam_tokens")
                .max_capacity(64)
                .expire_after(RefreshBeforeExpiry { margin })
                .build(),
        }
    }

    /// The cached token of `project_id`, fetching it (once) when absent or due for refresh.
    pub async fn token(&self, project_id: &str) -> Result<Arc<IamToken>, Arc<CloudError>> {
        self.tokens
            .try_get_with_by_ref(project_id, self.fetch(project_id))
            .await
    }

    /// The cached token of `project_id`, without fetching one.
    pub async fn cached(&self, project_id: &str) -> Option<Arc<IamToken>> {
        self.tokens.get(project_id).await
    }

    /// Drops `rejected` if it is still the cached token, so concurrent callers that saw the
    /// same rejection cause one refetch, not one each.
    pub async fn evict(&self, project_id: &str, rejected: &IamToken) {
        self.tokens
            .entry_by_ref(project_id)
            .and_compute_with(|entry| {
                let same = entry.is_some_and(|entry| {
                    entry.value().value.expose_secret() == rejected.value.expose_secret()
                });
                std::future::ready(if same { Op::Remove } else { Op::Nop })
            })
            .await;
    }

    async fn fetch(&self, project_id: &str) -> Result<Arc<IamToken>, CloudError> {
        let fetched = self.fetch_once(project_id).await;
        let result = if fetched.is_ok() { "ok" } else { "error" };
        crate::metrics::METRICS
            .iam_token_fetches
            .with_label_values(&[result])
            .inc();
        fetched
    }

    async fn fetch_once(&self, project_id: &str) -> Result<Arc<IamToken>, CloudError> {
        let mut url =
            self.login.iam_url.join("v3/auth/tokens").map_err(|e| {
                CloudError::InvalidResponse(format!("cannot build the IAM URL: {e}"))
            })?;
        url.set_query(Some("nocatalog=true"));
        let body = json!({
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {
                        "name": self.login.user,
                        "password": self.login.password.expose_secret(),
                        "domain": {"name": self.login.domain},
                    }},
                },
                "scope": {"project": {"id": project_id}},
            }
        });
        let started = Instant::now();
        let response = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(CloudError::from_transport)?;
        let status = response.status();
        if !status.is_success() {
            let code = response
                .bytes()
                .await
                .ok()
                .and_then(|body| super::model::parse_error(&body))
                .map(|(code, _)| code);
            tracing::error!(iam.account = %self.account, iam.status = status.as_u16(), iam.code = ?code, "IAM refused the gateway's credentials");
            return Err(CloudError::IamRejected {
                status: status.as_u16(),
                code,
            });
        }
        let value = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(|v| SecretString::from(v.to_owned()))
            .ok_or_else(|| {
                CloudError::InvalidResponse("IAM answer has no X-Subject-Token".into())
            })?;
        let parsed: TokenResponse = response.json().await.map_err(|e| {
            CloudError::InvalidResponse(format!("IAM answer has no token.expires_at: {e}"))
        })?;
        tracing::info!(
            iam.account = %self.account,
            iam.project_id = project_id,
            iam.expires_at = %parsed.token.expires_at,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "fetched an IAM token"
        );
        Ok(Arc::new(IamToken {
            value,
            expires_at: parsed.token.expires_at,
        }))
    }
}
