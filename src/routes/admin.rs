//! Platform-admin endpoints.

use actix_web::{HttpResponse, web};
use futures_util::TryStreamExt;

use super::paging;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::QueryParams;
use crate::pipeline::authenticate::Employee;
use crate::pipeline::authorize::require_admin;
use crate::pipeline::reconcile::ReconcileReport;
use crate::policy::Reloaded;
use crate::service::Gateway;
use crate::storage::decisions::{DecisionFilter, DecisionPage, DecisionQuery, ExportQuery};

/// Reload the policy file.
///
/// The new file is validated completely before it replaces the policy in force; a broken file
/// leaves the last good policy serving and its error is returned here.
#[utoipa::path(post, path = "/admin/policy/reload", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The file is valid and in force", body = Reloaded),
        (status = 403, description = "Platform admins only (`admin_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The policy was not loaded from a file (`policy_not_reloadable`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The file is invalid; the previous policy stays in force (`policy_invalid`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reload_policy(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
) -> Result<web::Json<Reloaded>, ApiError> {
    Ok(web::Json(gateway.reload_policy(&employee)?))
}

/// Reconcile pending creates now.
///
/// Creates whose outcome was unknown (a timeout or `5xx` after sending) are checked against
/// the cloud's HTAP instance lists: found → committed, absent after the grace period → released.
#[utoipa::path(post, path = "/admin/reconcile", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What the pass did", body = ReconcileReport),
        (status = 403, description = "Platform admins only (`admin_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unavailable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reconcile_now(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
) -> Result<web::Json<ReconcileReport>, ApiError> {
    Ok(web::Json(gateway.reconcile(&employee).await?))
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

fn parse_time(field: &str, value: Option<&String>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|e| {
                    ApiError::invalid_parameter(field, format!("is not an RFC 3339 time: {e}"))
                })
        })
        .transpose()
}

/// The decision log.
///
/// Every create, dry-run, denial and delete: who, which team, target and size, each rule's
/// outcome, the policy revision, quota before and after, the cloud's answer and latency.
/// Newest first; filter by team, subject, outcome and time; follow `next_page`.
#[utoipa::path(get, path = "/admin/decisions", tag = "admin",
    params(DecisionQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of decisions, newest first", body = DecisionPage),
        (status = 400, description = "A bad filter (`invalid_parameter`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Platform admins only (`admin_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unavailable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn decisions(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    query: QueryParams<DecisionQuery>,
) -> Result<web::Json<DecisionPage>, ApiError> {
    // Admins only, before a filter is even read.
    require_admin(&employee, "the decision log")?;
    let query = query.0;
    let filter = DecisionFilter {
        since_ms: parse_time("since", query.since.as_ref())?,
        until_ms: parse_time("until", query.until.as_ref())?,
        limit: paging::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?,
        before: query.page.as_deref().map(paging::decode).transpose()?,
        team: query.team,
        subject: query.subject,
        outcome: query.outcome,
    };
    let (decisions, more) = gateway.decisions(&employee, &filter).await?;
    let next_page = more
        .then(|| decisions.last().map(|d| paging::encode(d.at_ms, &d.id)))
        .flatten();
    Ok(web::Json(DecisionPage {
        decisions,
        next_page,
    }))
}

/// Export the decision log.
///
/// Every decision at or after `since` and before `until` (both optional, RFC 3339; an empty
/// range exports nothing), newest
/// first, as NDJSON: one JSON object per line, each the fields of a decision plus `schema`
/// (`starrocks-gateway.decision.v1`, documented in `docs/decisions.md`), the same lines
/// `audit.stream` writes. Streamed a page at a time, so a SIEM can backfill any range.
#[utoipa::path(get, path = "/admin/decisions/export", tag = "admin",
    params(ExportQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One decision per line, newest first", body = String, content_type = "application/x-ndjson"),
        (status = 400, description = "A time that is not RFC 3339 (`invalid_parameter`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Platform admins only (`admin_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unreachable (`storage_unavailable`); a failure after the first page ends the stream early", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn export_decisions(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    query: QueryParams<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&employee, "the decision log")?;
    let since = parse_time("since", query.0.since.as_ref())?;
    let until = parse_time("until", query.0.until.as_ref())?;
    let lines = gateway
        .export_decisions(&employee, since, until)
        .await?
        .map_ok(web::Bytes::from)
        .inspect_err(|error| {
            // The status is sent: the client sees the stream end early.
            tracing::error!(error = ?error, "the decision export stopped: reading the log failed");
        });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(lines))
}
