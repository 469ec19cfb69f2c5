//! Platform-admin endpoints.

use actix_web::{HttpRequest, HttpResponse, web};

use super::paging;
use crate::error::{ErrorCode, FieldError, Problem};
use crate::extract::QueryParams;
use crate::pipeline::authenticate::Employee;
use crate::pipeline::reconcile::ReconcileReport;
use crate::policy::{PolicyError, Reloaded};
use crate::startup::GatewayState;
use crate::storage::decisions::{DecisionFilter, DecisionPage, DecisionQuery};

/// `Some(403)` unless the caller is a platform admin.
fn require_admin(request: &HttpRequest, employee: &Employee, what: &str) -> Option<HttpResponse> {
    (!employee.admin).then(|| {
        Problem::new(
            ErrorCode::AdminRequired,
            format!("{what} is reserved to platform admins"),
        )
        .response_for(request)
    })
}

/// Reload the policy file.
///
/// The new file is validated completely before it replaces the policy in force; a broken file
/// leaves the last good policy serving and its error is returned here.
#[utoipa::path(post, path = "/v1/admin/policy/reload", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The file is valid and in force", body = Reloaded),
        (status = 401, description = "Missing or invalid bearer token (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Platform admins only (`admin_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The policy was not loaded from a file (`policy_not_reloadable`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The file is invalid; the previous policy stays in force (`policy_invalid`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reload_policy(
    request: HttpRequest,
    employee: web::ReqData<Employee>,
    state: web::Data<GatewayState>,
) -> HttpResponse {
    if let Some(refusal) = require_admin(&request, &employee, "reloading the policy") {
        return refusal;
    }
    match state.policy.reload() {
        Ok(reloaded) => {
            tracing::info!(
                employee.subject = %employee.subject,
                policy.revision = %reloaded.revision,
                policy.previous_revision = %reloaded.previous_revision,
                "policy reloaded by an admin"
            );
            HttpResponse::Ok().json(reloaded)
        }
        Err(PolicyError::NotReloadable) => Problem::new(
            ErrorCode::PolicyNotReloadable,
            PolicyError::NotReloadable.to_string(),
        )
        .response_for(&request),
        Err(error) => {
            tracing::error!(error = %error, "policy reload refused; the previous policy stays in force");
            Problem::new(
                ErrorCode::PolicyInvalid,
                format!("{error}; the previous policy stays in force"),
            )
            .response_for(&request)
        }
    }
}

/// Reconcile pending creates now.
///
/// Creates whose outcome was unknown (a timeout or `5xx` after sending) are checked against
/// the cloud's HTAP instance lists: found → committed, absent after the grace period → released.
#[utoipa::path(post, path = "/v1/admin/reconcile", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What the pass did", body = ReconcileReport),
        (status = 401, description = "Missing or invalid bearer token (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Platform admins only (`admin_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unavailable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reconcile_now(
    request: HttpRequest,
    employee: web::ReqData<Employee>,
    state: web::Data<GatewayState>,
) -> HttpResponse {
    if let Some(refusal) = require_admin(&request, &employee, "reconciling") {
        return refusal;
    }
    match crate::pipeline::reconcile::reconcile(
        &state.store,
        &state.cloud,
        state.reconcile_grace,
        None,
    )
    .await
    {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(error) => Problem::from(&error).response_for(&request),
    }
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

fn parse_time(field: &str, value: Option<&String>) -> Result<Option<i64>, Problem> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|e| {
                    Problem::new(
                        ErrorCode::InvalidParameter,
                        format!("`{field}` is not an RFC 3339 time: {e}"),
                    )
                    .with_field_errors(vec![FieldError {
                        field: field.into(),
                        message: e.to_string(),
                    }])
                })
        })
        .transpose()
}

/// The decision log.
///
/// Every create, dry-run, denial and delete: who, which team, target and size, each rule's
/// outcome, the policy revision, quota before and after, the cloud's answer and latency.
/// Newest first; filter by team, subject, outcome and time; follow `next_page`.
#[utoipa::path(get, path = "/v1/admin/decisions", tag = "admin",
    params(DecisionQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of decisions, newest first", body = DecisionPage),
        (status = 400, description = "A bad filter (`invalid_parameter`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid bearer token (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Platform admins only (`admin_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unavailable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn decisions(
    request: HttpRequest,
    employee: web::ReqData<Employee>,
    state: web::Data<GatewayState>,
    query: QueryParams<DecisionQuery>,
) -> HttpResponse {
    if let Some(refusal) = require_admin(&request, &employee, "the decision log") {
        return refusal;
    }
    let query = query.0;
    let filter = (|| {
        Ok::<_, Problem>(DecisionFilter {
            team: query.team.clone(),
            subject: query.subject.clone(),
            outcome: query.outcome.clone(),
            since_ms: parse_time("since", query.since.as_ref())?,
            until_ms: parse_time("until", query.until.as_ref())?,
            limit: paging::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?,
            before: query.page.as_deref().map(paging::decode).transpose()?,
        })
    })();
    let filter = match filter {
        Ok(filter) => filter,
        Err(problem) => return problem.response_for(&request),
    };
    match state.store.decisions(&filter).await {
        Ok((decisions, more)) => {
            let next_page = more
                .then(|| decisions.last().map(|d| paging::encode(d.at_ms, &d.id)))
                .flatten();
            HttpResponse::Ok().json(DecisionPage {
                decisions,
                next_page,
            })
        }
        Err(error) => Problem::from(&error).response_for(&request),
    }
}
