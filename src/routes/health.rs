//! Liveness and readiness probes, and the metrics.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cloud::breaker::BreakerState;
use crate::config::ReadyWhen;
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
    /// The regions' credentials are usable as `ready_when` asks.
    pub cloud: bool,
    /// Which regions must be usable: every region that holds a policy target, or any one.
    pub ready_when: ReadyWhen,
    /// Each configured region.
    pub regions: BTreeMap<String, RegionReadiness>,
    /// The gateway's database is the one opened at start, answers and takes a write.
    pub database: bool,
    /// Revision of the policy in force.
    pub policy_revision: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegionReadiness {
    /// An IAM token for the region's (account, project) is cached or could be fetched; an
    /// account with an access key has nothing to fetch.
    pub credentials: bool,
    /// A policy target is in this region (only those count for readiness).
    pub holds_targets: bool,
    /// Targets that name no region are in this one.
    pub default: bool,
    /// Each cloud operation's circuit breaker here. An open breaker does not make the gateway
    /// unready: every replica shares the cloud, and the others would fare no better.
    pub breakers: BTreeMap<&'static str, BreakerState>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// The gateway can serve creates: signing keys are at hand, the regions' credentials work
/// (IAM tokens are cached, so probing is cheap once warm; `cloud.ready_when` says whether
/// every region holding targets must, or any one) and the database takes a write.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "A dependency is unavailable", body = Readiness),
    ))]
pub async fn readyz(
    gateway: web::Data<Gateway>,
    authenticator: web::Data<Authenticator>,
) -> HttpResponse {
    let policy = gateway.policy.current();
    let clouds = &gateway.clouds;
    let with_targets: Vec<&str> = policy
        .file
        .teams
        .values()
        .flat_map(|team| team.targets.values())
        .map(|target| target.region.as_deref().unwrap_or(clouds.default_region()))
        .collect();
    let regions = futures_util::future::join_all(
        clouds
            .iter()
            .map(|(name, cloud)| async move { (name, cloud, cloud.credentials().await.is_ok()) }),
    );
    let (keys, regions, database) = futures_util::join!(
        authenticator.keys_available(),
        regions,
        gateway.store.ping()
    );
    let regions: BTreeMap<String, RegionReadiness> = regions
        .into_iter()
        .map(|(name, cloud, credentials)| {
            let readiness = RegionReadiness {
                credentials,
                holds_targets: with_targets.contains(&name),
                default: name == clouds.default_region(),
                breakers: cloud.breakers.states(),
            };
            (name.to_owned(), readiness)
        })
        .collect();
    let mut counted = regions.values().filter(|r| r.holds_targets).peekable();
    let cloud = match clouds.ready_when {
        // A policy without targets in any region leaves nothing to wait for.
        _ if counted.peek().is_none() => true,
        ReadyWhen::EveryTargetRegion => counted.all(|r| r.credentials),
        ReadyWhen::AnyTargetRegion => counted.any(|r| r.credentials),
    };
    let ready = keys && cloud && database.is_ok();
    let readiness = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        identity_provider_keys: keys,
        cloud,
        ready_when: clouds.ready_when,
        regions,
        database: database.is_ok(),
        policy_revision: policy.revision.clone(),
    };
    if ready {
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
