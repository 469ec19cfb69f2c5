//! Liveness and readiness probes, and the metrics.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cloud::breaker::BreakerState;
use crate::metrics::METRICS;
use crate::pipeline::authenticate::Authenticator;
use crate::service::Gateway;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the check passed.
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when every dependency answered, `not_ready` otherwise.
    pub status: &'static str,
    /// The identity provider's keys are loaded.
    pub identity_provider_keys: bool,
    /// An IAM token for the project is cached or could be fetched.
    pub cloud_token: bool,
    /// The gateway's database is the one opened at start, answers and takes a write.
    pub database: bool,
    /// Revision of the policy in force.
    pub policy_revision: String,
    /// Each cloud operation's circuit breaker. An open breaker does not make the gateway
    /// unready: every replica shares the cloud, and the others would fare no better.
    pub cloud_breakers: BTreeMap<&'static str, BreakerState>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// The gateway can serve creates: signing keys and an IAM token are at hand (both cached,
/// so probing is cheap once warm) and the database takes a write.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "A dependency is unavailable", body = Readiness),
    ))]
pub async fn readyz(
    gateway: web::Data<Gateway>,
    authenticator: web::Data<Authenticator>,
) -> HttpResponse {
    let (keys, token, database) = futures_util::join!(
        authenticator.keys_available(),
        gateway.cloud.token(),
        gateway.store.ping()
    );
    let ready = keys && token.is_ok() && database.is_ok();
    let readiness = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        identity_provider_keys: keys,
        cloud_token: token.is_ok(),
        database: database.is_ok(),
        policy_revision: gateway.policy.current().revision.clone(),
        cloud_breakers: gateway.cloud.breakers.states(),
    };
    if readiness.status == "ready" {
        HttpResponse::Ok().json(readiness)
    } else {
        HttpResponse::ServiceUnavailable().json(readiness)
    }
}

/// Prometheus metrics.
///
/// Requests by route and status, decisions by action and outcome, calls to Huawei Cloud by
/// operation and result with latency, breakers and rate limits, identity-provider key and IAM
/// token fetches; read when scraped: each team's quota used and limit, pending reservations
/// and the oldest one's age, the IAM token's remaining lifetime, the key set's size and age.
/// Every metric is listed in `docs/metrics.md`.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "serve",
    responses((status = 200, description = "Metrics in the Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(
    gateway: web::Data<Gateway>,
    authenticator: web::Data<Authenticator>,
) -> HttpResponse {
    authenticator.export_metrics();
    if let Err(error) = gateway.export_metrics().await {
        // The rest is still worth scraping; the database's state shows in `/readyz`.
        tracing::warn!(error = ?error, "reading the ledger for /metrics failed");
    }
    match METRICS.encode() {
        Ok((body, content_type)) => HttpResponse::Ok().content_type(content_type).body(body),
        Err(error) => HttpResponse::InternalServerError().body(error.to_string()),
    }
}
