//! What the portal (and Swagger UI) need before anyone is signed in: how to sign in, and the
//! identity provider's discovery document, relayed so the browser need not fetch it across
//! origins. Both are public.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use moka::future::Cache;
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::Settings;
use crate::error::ErrorCode;
use crate::http::error::{ApiError, Problem};

/// How long a fetched discovery document is served before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(300);

/// How the portal signs employees in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PortalConfig {
    /// `null` when sign-in is not configured: paste a token instead.
    pub sign_in: Option<SignIn>,
}

/// OpenID Connect sign-in: authorization code with PKCE (S256), as a public client.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignIn {
    /// The identity provider (tokens' `iss`).
    #[schema(example = "https://login.example.com/realms/acme")]
    pub issuer: String,
    /// The portal's client at the identity provider.
    #[schema(example = "starrocks-portal")]
    pub client_id: String,
    #[schema(example = json!(["openid", "profile", "email"]))]
    pub scopes: Vec<String>,
    /// The path on this gateway the provider sends the browser back to.
    #[schema(example = "/")]
    pub redirect_path: String,
    /// The provider's discovery document, relayed by the gateway.
    #[schema(example = "/v1/portal/openid-configuration")]
    pub discovery: &'static str,
}

/// The portal's sign-in settings and the relayed discovery document.
#[derive(Debug)]
pub struct Portal {
    config: PortalConfig,
    http: reqwest::Client,
    discovery: Cache<(), Arc<serde_json::Value>>,
}

impl Portal {
    pub fn new(settings: &Settings, http: reqwest::Client) -> Self {
        let sign_in = settings.portal.client_id.as_ref().map(|client_id| SignIn {
            issuer: settings.auth.issuer.clone(),
            client_id: client_id.clone(),
            scopes: settings.portal.scopes.clone(),
            redirect_path: settings.portal.redirect_path.clone(),
            discovery: DISCOVERY_PATH,
        });
        Self {
            config: PortalConfig { sign_in },
            http,
            discovery: Cache::builder()
                .max_capacity(1)
                .time_to_live(DISCOVERY_TTL)
                .build(),
        }
    }

    async fn fetch_discovery(&self, issuer: &str) -> Result<Arc<serde_json::Value>, ApiError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let unavailable = |error: reqwest::Error| {
            tracing::warn!(url, error = %error, "fetching the identity provider's discovery document failed");
            ApiError::new(
                ErrorCode::IdentityProviderUnavailable,
                "the identity provider's discovery document is unavailable; try again shortly",
            )
        };
        let document = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        Ok(Arc::new(document))
    }
}

/// Where the gateway relays the provider's discovery document.
pub const DISCOVERY_PATH: &str = "/v1/portal/openid-configuration";

/// How to sign in to the portal.
#[utoipa::path(get, path = "/v1/portal/config", tag = "portal",
    responses((status = 200, description = "The portal's sign-in settings", body = PortalConfig)))]
pub async fn portal_config(portal: web::Data<Portal>) -> web::Json<PortalConfig> {
    web::Json(portal.config.clone())
}

/// The identity provider's OpenID Connect discovery document, as it serves it.
#[utoipa::path(get, path = "/v1/portal/openid-configuration", tag = "portal",
    responses(
        (status = 200, description = "The provider's `/.well-known/openid-configuration`", body = Object),
        (status = 404, description = "Sign-in is not configured (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider did not answer (`identity_provider_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn openid_configuration(
    portal: web::Data<Portal>,
) -> Result<web::Json<serde_json::Value>, ApiError> {
    let Some(sign_in) = &portal.config.sign_in else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "portal sign-in is not configured (portal.client_id)",
        ));
    };
    let document = portal
        .discovery
        .try_get_with((), portal.fetch_discovery(&sign_in.issuer))
        .await
        .map_err(Arc::unwrap_or_clone)?;
    Ok(web::Json(document.as_ref().clone()))
}
