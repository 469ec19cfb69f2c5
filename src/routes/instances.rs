//! `GET /v1/starrocks`, `GET /v1/starrocks/{id}`, `DELETE /v1/starrocks/{id}`: a team's
//! instances, with live state from the cloud.
#![expect(
    unused_qualifications,
    reason = "utoipa's expansion of `params(ListQuery, …)` on a handler without a route macro"
)]

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::paging;
use crate::domain::InvalidInput;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::JsonBody;
use crate::http::extract::{ActingTeam, QueryParams};
use crate::http::request_id::RequestId;
use crate::pipeline::authenticate::Employee;
use crate::policy::MAX_LEASE_DAYS;
use crate::service::Gateway;
use crate::service::delete::DeleteAccepted;
use crate::service::instances::{InstanceDetail, InstanceSummary};
use crate::service::leases::LeaseExtended;

#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceList {
    pub instances: Vec<InstanceSummary>,
    /// Whether the cloud answered for every target on this page.
    pub cloud: CloudCompleteness,
    /// Pass as `page` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
}

/// Whether the states on a page are the cloud's word of now.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "unavailable", "targets": ["analytics-prod"], "regions": ["cn-east-3"]}))]
pub struct CloudCompleteness {
    pub status: CloudAnswer,
    /// With `unavailable`: the targets the cloud could not list. Their instances show the
    /// state last observed, with `observed_at`, or `unknown`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// With `unavailable`: the regions of those targets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloudAnswer {
    /// Every state is what the cloud said just now.
    Complete,
    /// The cloud could not list some targets (down, throttled, or the gateway's budget of
    /// calls was spent): a partial answer.
    Unavailable,
}

impl CloudCompleteness {
    fn of(targets: Vec<String>, regions: Vec<String>) -> Self {
        Self {
            status: if targets.is_empty() {
                CloudAnswer::Complete
            } else {
                CloudAnswer::Unavailable
            },
            targets,
            regions,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Admins: one team's instances (all teams when absent). Others: one of their teams.
    #[serde(default, deserialize_with = "crate::http::extract::empty_as_none")]
    pub team: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_page` of the previous answer.
    #[serde(default)]
    #[param(pattern = r"^[0-9]{1,18}\.[!-~]{1,255}$")]
    pub page: Option<String>,
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

/// The instances of your team.
///
/// From the gateway's records, with the live state merged from the cloud (one list call per
/// target, whatever the number of instances). Newest first, paginated with `next_page`.
#[utoipa::path(get, path = "/starrocks", tag = "instances",
    params(ListQuery, ("X-Team" = Option<String>, Header, description = "The team to list, when you are in several")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of instances", body = InstanceList),
        (status = 400, description = "A bad parameter, or several teams and none named (`invalid_parameter`, `team_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member of the named team (`not_team_member`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unreachable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_instances(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    request_id: RequestId,
    team: ActingTeam,
    query: QueryParams<ListQuery>,
) -> Result<web::Json<InstanceList>, ApiError> {
    let query = query.0;
    let limit = paging::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let before = query.page.as_deref().map(paging::decode).transpose()?;
    let page = gateway
        .list(
            &employee,
            query.team.or(team.0),
            limit,
            before,
            request_id.as_str(),
        )
        .await?;
    Ok(web::Json(InstanceList {
        instances: page.instances,
        cloud: CloudCompleteness::of(page.unavailable_targets, page.unavailable_regions),
        next_page: page.next.map(|(at, id)| paging::encode(at, &id)),
    }))
}

/// One instance, with live detail and job progress.
///
/// The cloud's view (status, FE/BE node groups, version, port, pending actions) and the
/// progress of its latest create or delete job, summarized as one `state`: `creating`,
/// `ready`, `failed` (with the cloud's reason; its quota is released), `deleting`, `deleted`.
#[utoipa::path(get, path = "/starrocks/{id}", tag = "instances",
    params(("id" = String, Path, description = "StarRocks instance id (`…in17`)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The instance", body = InstanceDetail),
        (status = 404, description = "No such instance in your teams (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Throttled, nothing was done: too many requests from you (`rate_limited`, with `RateLimit-Policy` and `RateLimit`), or the cloud limits the gateway's account (`upstream_throttled`). Try again after `Retry-After` seconds", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 502, description = "The cloud failed the call (`upstream_error`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cloud or the gateway's database is unreachable (`upstream_unavailable`, `storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The cloud did not answer in time (`upstream_timeout`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_instance(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    request_id: RequestId,
    id: web::Path<String>,
) -> Result<web::Json<InstanceDetail>, ApiError> {
    let detail = gateway.detail(&employee, &id, request_id.as_str()).await?;
    Ok(web::Json(detail))
}

/// Delete an instance.
///
/// Deletes it in the cloud (pay-per-use). Its quota is released once the cloud confirms it
/// gone; follow with `GET /v1/starrocks/{id}` until `deleted`. Needs the instance's team
/// (or a platform admin); the decision log records who deleted what.
#[utoipa::path(delete, path = "/starrocks/{id}", tag = "instances",
    params(("id" = String, Path, description = "StarRocks instance id (`…in17`)")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The deletion is under way", body = DeleteAccepted),
        (status = 404, description = "No such instance in your teams (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already being deleted, or the cloud reports another operation in progress (`instance_deleting`, `upstream_busy`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Throttled, nothing was done: too many requests from you (`rate_limited`, with `RateLimit-Policy` and `RateLimit`), or the cloud limits the gateway's account (`upstream_throttled`). Try again after `Retry-After` seconds", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 502, description = "The cloud refused or failed the call (`upstream_error`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cloud or the gateway's database is unreachable (`upstream_unavailable`, `storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The cloud did not answer in time (`upstream_timeout`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_instance(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    request_id: RequestId,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let accepted = gateway.delete(&employee, &id, request_id.as_str()).await?;
    Ok(HttpResponse::Accepted().json(accepted))
}

/// How long from now an instance should live.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendLeaseRequest {
    /// Days from now (fractions allowed), up to the team's `max_lease_days` for the size.
    #[schema(exclusive_minimum = 0, maximum = 3650)]
    pub lease_days: f64,
}

/// Extend an instance's lease.
///
/// Moves the end of its lease to `lease_days` from now, within the team's maximum for its
/// size counted from now (longer needs an exception). Needs the instance's team (or a
/// platform admin); the decision log records it as `extend`.
#[utoipa::path(post, path = "/starrocks/{id}/extend", tag = "instances",
    params(("id" = String, Path, description = "StarRocks instance id (`…in17`)")),
    request_body = ExtendLeaseRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The lease's new end", body = LeaseExtended),
        (status = 400, description = "Malformed body or a bad `lease_days` (`malformed_body`, `invalid_field`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Longer than the team's maximum from now (`policy_denied`, rule `lease.max`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance in your teams (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Being deleted, or without a lease (`instance_deleting`, `no_lease`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unreachable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn extend_lease(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    request_id: RequestId,
    id: web::Path<String>,
    body: JsonBody<ExtendLeaseRequest>,
) -> Result<web::Json<LeaseExtended>, ApiError> {
    let days = body.0.lease_days;
    if !(days > 0.0 && days <= MAX_LEASE_DAYS) {
        return Err(InvalidInput::field(
            "lease_days",
            format!("must be more than 0 and at most {MAX_LEASE_DAYS} days"),
        )
        .into());
    }
    let extended = gateway
        .extend(&employee, &id, days, request_id.as_str())
        .await?;
    Ok(web::Json(extended))
}
