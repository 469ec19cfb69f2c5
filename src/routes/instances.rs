//! `GET /v1/starrocks`, `GET /v1/starrocks/{id}`, `DELETE /v1/starrocks/{id}`: a team's
//! instances from the gateway's records, with live state from the cloud. An instance of
//! another team answers exactly like a missing one, so ids cannot be probed.
#![expect(
    unused_qualifications,
    reason = "utoipa's expansion of `params(ListQuery, …)` on a handler without a route macro"
)]

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::paging;
use super::starrocks::TEAM_HEADER;
use crate::cloud::model::{Job, StarRocksDetail};
use crate::error::{ErrorCode, Problem};
use crate::extract::QueryParams;
use crate::lifecycle::{CloudView, LifecycleState, summarize};
use crate::pipeline::authenticate::Employee;
use crate::pipeline::authorize::select_team;
use crate::pipeline::evaluate::Decision;
use crate::pipeline::record;
use crate::request_id::RequestId;
use crate::startup::GatewayState;
use crate::storage::ledger::Reservation;

/// One instance as the caller sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstanceSummary {
    /// StarRocks instance id (`…in17`).
    pub id: String,
    pub name: String,
    pub team: String,
    pub target: String,
    pub size: String,
    pub labels: BTreeMap<String, String>,
    /// The employee who created it.
    pub created_by: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub state: LifecycleState,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The cloud's own status (`creating`, `normal`, ...), when it knows the instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceList {
    pub instances: Vec<InstanceSummary>,
    /// Pass as `page` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
}

/// One instance with the cloud's detail and its latest job.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceDetail {
    #[serde(flatten)]
    pub summary: InstanceSummary,
    /// The cloud's detail: node groups, version, port, pending actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<StarRocksDetail>,
    /// The latest create or delete job, as the cloud reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
}

/// A deletion under way.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteAccepted {
    pub id: String,
    /// `deleting`, or `deleted` when the cloud no longer knew the instance.
    pub state: LifecycleState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub request_id: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Admins: one team's instances (all teams when absent). Others: one of their teams.
    #[serde(default, deserialize_with = "crate::extract::empty_as_none")]
    pub team: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default, deserialize_with = "crate::extract::empty_as_none")]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_page` of the previous answer.
    #[serde(default, deserialize_with = "crate::extract::empty_as_none")]
    pub page: Option<String>,
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

fn request_id(request: &HttpRequest) -> String {
    RequestId::of(request)
        .map(|id| id.to_string())
        .unwrap_or_default()
}

fn summary(
    reservation: &Reservation,
    state: LifecycleState,
    reason: Option<String>,
    cloud_status: Option<String>,
) -> InstanceSummary {
    InstanceSummary {
        id: reservation.instance_id.clone().unwrap_or_default(),
        name: reservation.name.clone(),
        team: reservation.team.clone(),
        target: reservation.target.clone(),
        size: reservation.size.clone(),
        labels: reservation.labels.clone(),
        created_by: reservation.subject.clone(),
        created_at: chrono::DateTime::from_timestamp_millis(reservation.created_at)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default(),
        state,
        reason,
        cloud_status,
    }
}

/// Writes what the cloud revealed back to the ledger: a failed create gives its quota back,
/// a finished deletion too.
async fn settle_observed(
    state: &GatewayState,
    reservation: &Reservation,
    observed: LifecycleState,
    reason: Option<&str>,
) {
    let transition = match (reservation.state.as_str(), observed) {
        ("committed", LifecycleState::Failed) => Some((
            "committed",
            "released",
            reason.unwrap_or("the create failed"),
        )),
        ("committed", LifecycleState::Deleted) => {
            Some(("committed", "deleted", "gone from the cloud"))
        }
        ("deleting", LifecycleState::Deleted) => {
            Some(("deleting", "deleted", "deletion confirmed by the cloud"))
        }
        _ => None,
    };
    if let Some((from, to, why)) = transition
        && let Err(error) = state
            .store
            .transition(&reservation.id, from, to, why, None)
            .await
    {
        tracing::warn!(reservation.id = %reservation.id, error = ?error, "recording an observed state failed; it is retried on the next read");
    }
}

fn not_found(id: &str) -> Problem {
    Problem::new(
        ErrorCode::NotFound,
        format!("no StarRocks instance `{id}` is visible to you"),
    )
}

/// The ledger row of `id`, if the caller may see it: their own team's, or any for admins.
async fn visible(
    state: &GatewayState,
    employee: &Employee,
    id: &str,
) -> Result<Reservation, Problem> {
    let reservation = state
        .store
        .reservation_by_instance(id)
        .await
        .map_err(|e| Problem::from(&e))?;
    reservation
        .filter(|r| employee.admin || employee.teams.contains(&r.team))
        .ok_or_else(|| not_found(id))
}

/// The instances of your team.
///
/// From the gateway's records, with the live state merged from the cloud (one list call per
/// target, whatever the number of instances). Newest first, paginated with `next_page`.
#[utoipa::path(get, path = "/v1/starrocks", tag = "instances",
    params(ListQuery, ("X-Team" = Option<String>, Header, description = "The team to list, when you are in several")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of instances", body = InstanceList),
        (status = 400, description = "A bad parameter, or several teams and none named (`invalid_parameter`, `team_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid bearer token (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member of the named team (`not_team_member`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unreachable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_instances(
    request: HttpRequest,
    employee: web::ReqData<Employee>,
    state: web::Data<GatewayState>,
    query: QueryParams<ListQuery>,
) -> HttpResponse {
    match list(&request, &employee, &state, query.0).await {
        Ok(list) => HttpResponse::Ok().json(list),
        Err(problem) => problem.response_for(&request),
    }
}

async fn list(
    request: &HttpRequest,
    employee: &Employee,
    state: &GatewayState,
    query: ListQuery,
) -> Result<InstanceList, Problem> {
    let limit = paging::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let before = query.page.as_deref().map(paging::decode).transpose()?;
    let header_team = request
        .headers()
        .get(TEAM_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let team = match (employee.admin, query.team.or(header_team)) {
        (true, team) => team,
        (false, named) => Some(select_team(
            employee,
            named.as_deref(),
            &state.policy.current(),
        )?),
    };
    let (rows, more) = state
        .store
        .instances(team.as_deref(), limit, before)
        .await
        .map_err(|e| Problem::from(&e))?;

    let request_id = request_id(request);
    let mut statuses: HashMap<String, Option<HashMap<String, String>>> = HashMap::new();
    for target in rows.iter().map(|r| r.target_instance_id.clone()) {
        if statuses.contains_key(&target) {
            continue;
        }
        let listing = match state.cloud.list_htap(&target, &request_id).await {
            Ok(list) => Some(
                list.instances
                    .into_iter()
                    .map(|i| {
                        (
                            i.id,
                            i.instance_state
                                .and_then(|s| s.instance_status)
                                .unwrap_or_default(),
                        )
                    })
                    .collect(),
            ),
            Err(error) => {
                tracing::warn!(target = %target, error = ?error, "cannot list HTAP instances; showing the last known state");
                None
            }
        };
        statuses.insert(target, listing);
    }
    let mut instances = Vec::with_capacity(rows.len());
    for row in &rows {
        let instance_id = row.instance_id.clone().unwrap_or_default();
        let item = match statuses.get(&row.target_instance_id) {
            Some(Some(listing)) => {
                let status = listing.get(&instance_id).map(String::as_str);
                let view = CloudView {
                    status,
                    pending_actions: usize::from(status == Some("creating")),
                    job: None,
                };
                let (observed, reason) = summarize(&row.state, row.settle_reason.as_deref(), view);
                settle_observed(state, row, observed, reason.as_deref()).await;
                summary(row, observed, reason, status.map(str::to_owned))
            }
            _ => {
                let last_known = if row.state == "deleting" {
                    LifecycleState::Deleting
                } else {
                    LifecycleState::Creating
                };
                summary(row, last_known, None, None)
            }
        };
        instances.push(item);
    }
    let next_page = more
        .then(|| rows.last().map(|r| paging::encode(r.created_at, &r.id)))
        .flatten();
    Ok(InstanceList {
        instances,
        next_page,
    })
}

/// One instance, with live detail and job progress.
///
/// The cloud's view (status, FE/BE node groups, version, port, pending actions) and the
/// progress of its latest create or delete job, summarized as one `state`: `creating`,
/// `ready`, `failed` (with the cloud's reason; its quota is released), `deleting`, `deleted`.
#[utoipa::path(get, path = "/v1/starrocks/{id}", tag = "instances",
    params(("id" = String, Path, description = "StarRocks instance id (`…in17`)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The instance", body = InstanceDetail),
        (status = 401, description = "Missing or invalid bearer token (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance in your teams (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The cloud failed the call (`upstream_error`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cloud or the gateway's database is unreachable (`upstream_unavailable`, `storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The cloud did not answer in time (`upstream_timeout`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_instance(
    request: HttpRequest,
    employee: web::ReqData<Employee>,
    state: web::Data<GatewayState>,
    id: web::Path<String>,
) -> HttpResponse {
    match detail(&request, &employee, &state, &id).await {
        Ok(detail) => HttpResponse::Ok().json(detail),
        Err(problem) => problem.response_for(&request),
    }
}

async fn detail(
    request: &HttpRequest,
    employee: &Employee,
    state: &GatewayState,
    id: &str,
) -> Result<InstanceDetail, Problem> {
    let reservation = visible(state, employee, id).await?;
    if matches!(reservation.state.as_str(), "deleted" | "released") {
        let (observed, reason) = summarize(
            &reservation.state,
            reservation.settle_reason.as_deref(),
            CloudView {
                status: None,
                pending_actions: 0,
                job: None,
            },
        );
        return Ok(InstanceDetail {
            summary: summary(&reservation, observed, reason, None),
            cloud: None,
            job: None,
        });
    }
    let request_id = request_id(request);
    let (cloud, job) = futures_util::join!(
        state
            .cloud
            .get_starrocks(&reservation.target_instance_id, id, &request_id),
        async {
            match reservation.job_id.as_deref() {
                Some(job_id) => state.cloud.job(job_id, &request_id).await.map(Some),
                None => Ok(None),
            }
        }
    );
    let cloud = cloud.map_err(|e| Problem::from(&*e))?;
    // A job the cloud cannot report is not fatal: the instance's own status still tells.
    let job = job.unwrap_or_else(|error| {
        tracing::warn!(error = ?error, "cannot read the instance's job");
        None
    });
    let view = CloudView {
        status: cloud.as_ref().map(|c| c.status.as_str()),
        pending_actions: cloud.as_ref().map_or(0, |c| c.actions.len()),
        job: job.as_ref(),
    };
    let (observed, reason) = summarize(
        &reservation.state,
        reservation.settle_reason.as_deref(),
        view,
    );
    settle_observed(state, &reservation, observed, reason.as_deref()).await;
    let cloud_status = cloud.as_ref().map(|c| c.status.clone());
    Ok(InstanceDetail {
        summary: summary(&reservation, observed, reason, cloud_status),
        cloud,
        job,
    })
}

/// Delete an instance.
///
/// Deletes it in the cloud (pay-per-use). Its quota is released once the cloud confirms it
/// gone; follow with `GET /v1/starrocks/{id}` until `deleted`. Needs the instance's team
/// (or a platform admin); the decision log records who deleted what.
#[utoipa::path(delete, path = "/v1/starrocks/{id}", tag = "instances",
    params(("id" = String, Path, description = "StarRocks instance id (`…in17`)")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The deletion is under way", body = DeleteAccepted),
        (status = 401, description = "Missing or invalid bearer token (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance in your teams (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already being deleted, or the cloud reports another operation in progress (`instance_deleting`, `upstream_busy`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The cloud refused or failed the call (`upstream_error`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cloud or the gateway's database is unreachable (`upstream_unavailable`, `storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The cloud did not answer in time (`upstream_timeout`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_instance(
    request: HttpRequest,
    employee: web::ReqData<Employee>,
    state: web::Data<GatewayState>,
    id: web::Path<String>,
) -> HttpResponse {
    match delete(&request, &employee, &state, &id).await {
        Ok(accepted) => HttpResponse::Accepted().json(accepted),
        Err(problem) => problem.response_for(&request),
    }
}

async fn delete(
    request: &HttpRequest,
    employee: &Employee,
    state: &GatewayState,
    id: &str,
) -> Result<DeleteAccepted, Problem> {
    let started = Instant::now();
    let reservation = visible(state, employee, id).await?;
    let deleting = || {
        Problem::new(
            ErrorCode::InstanceDeleting,
            format!("instance `{id}` is already being deleted"),
        )
    };
    match reservation.state.as_str() {
        "committed" => {}
        "deleting" => return Err(deleting()),
        _ => return Err(not_found(id)),
    }
    if !state
        .store
        .transition(
            &reservation.id,
            "committed",
            "deleting",
            "delete requested",
            None,
        )
        .await
        .map_err(|e| Problem::from(&e))?
    {
        return Err(deleting());
    }
    let request_id = request_id(request);
    let answer = state
        .cloud
        .delete_starrocks(&reservation.target_instance_id, id, &request_id)
        .await;
    let (observed, outcome, upstream_status, error_code) = match &answer {
        Ok(job_id) => {
            let stored = state
                .store
                .transition(
                    &reservation.id,
                    "deleting",
                    "deleting",
                    "deletion accepted by the cloud",
                    job_id.as_deref(),
                )
                .await;
            if let Err(error) = stored {
                tracing::warn!(error = ?error, "recording the deletion job failed");
            }
            (LifecycleState::Deleting, "deleting", Some(202), None)
        }
        Err(error) if error.is_not_found() => {
            let stored = state
                .store
                .transition(
                    &reservation.id,
                    "deleting",
                    "deleted",
                    "already gone from the cloud",
                    None,
                )
                .await;
            if let Err(error) = stored {
                tracing::warn!(error = ?error, "recording the deletion failed");
            }
            (LifecycleState::Deleted, "deleted", Some(404), None)
        }
        Err(error) => {
            // The instance stays: back to committed, so the caller can try again.
            if let Err(storage) = state
                .store
                .transition(
                    &reservation.id,
                    "deleting",
                    "committed",
                    "delete failed",
                    None,
                )
                .await
            {
                tracing::error!(error = ?storage, "reverting a failed deletion failed");
            }
            let status = match &**error {
                crate::cloud::CloudError::Rejected { status, .. } => Some(*status),
                _ => None,
            };
            (
                LifecycleState::Creating,
                "failed",
                status,
                Some(Problem::from(&**error).code.as_str().to_owned()),
            )
        }
    };
    let decision = Decision {
        decision_id: uuid::Uuid::new_v4().to_string(),
        allowed: true,
        subject: employee.subject.clone(),
        team: reservation.team.clone(),
        policy_revision: state.policy.current().revision.clone(),
        rules: Vec::new(),
        mutations: Vec::new(),
    };
    let context = record::Context {
        action: "delete",
        request_id: &request_id,
        target: &reservation.target,
        size: &reservation.size,
        started,
    };
    record::record(
        &state.store,
        context,
        &decision,
        record::Outcome {
            outcome,
            upstream_status,
            error_code,
            instance_id: Some(id.to_owned()),
            job_id: answer.as_ref().ok().cloned().flatten(),
            ..record::Outcome::default()
        },
    )
    .await;
    let job_id = match answer {
        Ok(job_id) => job_id,
        Err(error) if error.is_not_found() => None,
        Err(error) => return Err(Problem::from(&*error)),
    };
    tracing::info!(instance.id = id, employee.subject = %employee.subject, "instance deletion accepted");
    Ok(DeleteAccepted {
        id: id.to_owned(),
        state: observed,
        job_id,
        request_id,
    })
}
