//! `POST /v1/starrocks` and `POST /v1/starrocks/dry-run`: create a StarRocks instance for the
//! caller's team, or see exactly what a create would do.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cloud::CloudError;
use crate::domain::{InstanceName, InvalidValue, RootPassword, TimeZone};
use crate::error::{ErrorCode, FieldError, Problem};
use crate::extract::JsonBody;
use crate::pipeline::authenticate::Employee;
use crate::pipeline::authorize::select_team;
use crate::pipeline::evaluate::{self, CreateRequest, Decision, Evaluation};
use crate::pipeline::settle::Settlement;
use crate::pipeline::{forward, record, reserve, settle};
use crate::policy::{Policy, Quota};
use crate::request_id::RequestId;
use crate::startup::GatewayState;
use crate::storage::idempotency::Claim;
use crate::storage::ledger::{Cost, NewReservation};

/// The header naming the team to act for, for employees in several teams.
pub const TEAM_HEADER: &str = "x-team";
const REDACTED: &str = "[REDACTED]";

/// What an employee asks for; everything else comes from policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "sales-cube", "target": "analytics-prod", "size": "small",
    "labels": {"owner": "alice", "env": "dev"}}))]
pub struct CreateInstanceRequest {
    /// 4–64 characters, starting with a letter; letters, digits, `-` and `_`.
    #[schema(
        min_length = 4,
        max_length = 64,
        pattern = "^[A-Za-z][A-Za-z0-9_-]{3,63}$"
    )]
    pub name: String,
    /// Alias of the TaurusDB instance to attach to, as listed in your catalog.
    #[schema(min_length = 1)]
    pub target: String,
    /// A size profile your team may use, e.g. `small`.
    #[schema(min_length = 1)]
    pub size: String,
    /// Engine major version; the policy default when absent.
    #[schema(min_length = 1)]
    pub version: Option<String>,
    /// Availability zone; the policy default when absent.
    #[schema(min_length = 1)]
    pub az: Option<String>,
    /// Time zone like `UTC+08:00`; the policy default when absent.
    #[schema(pattern = "^UTC[+-][0-9]{2}:[0-9]{2}$")]
    pub time_zone: Option<String>,
    /// The team to act for when you are in several (same as the `X-Team` header).
    pub team: Option<String>,
    /// Labels kept by the gateway (owner, app, ...), as your team's policy allows. They are
    /// never sent to the cloud and can never set a system tag.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// 8–32 characters with at least three of upper, lower, digit and `~!@#$%^*-_=+?,()&|.`.
    /// When absent a strong one is generated and returned once.
    #[schema(value_type = Option<String>, format = Password, min_length = 8, max_length = 32)]
    pub root_password: Option<SecretString>,
}

/// The created instance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedInstanceResponse {
    /// StarRocks instance id (`…in17`).
    pub id: String,
    pub name: String,
    /// Upstream status, `creating` at first.
    pub status: String,
    /// Id of the cloud workflow building the instance (absent when replayed after
    /// reconciliation found the instance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub team: String,
    pub target: String,
    pub size: String,
    pub labels: BTreeMap<String, String>,
    pub decision_id: String,
    pub request_id: String,
    /// The generated root password, present only when none was given. Shown once: it is
    /// not stored anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_password: Option<String>,
}

/// The call a create would make.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamCall {
    pub method: String,
    pub path: String,
    /// The exact body, with `db_root_pwd` redacted.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

/// A dry-run's answer: the decision, and the upstream call when it allows.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunResponse {
    pub decision: Decision,
    /// Absent when the decision denies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamCall>,
    /// Whether the team's quota would admit it; absent when the decision denies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaPreview>,
    /// The caller labels the gateway would record, keys lower-cased.
    pub labels: BTreeMap<String, String>,
}

fn field_error(field: &str) -> impl Fn(InvalidValue) -> FieldError + '_ {
    move |error| FieldError {
        field: field.to_owned(),
        message: error.0,
    }
}

fn required(field: &str, value: Option<&str>) -> Option<FieldError> {
    value.filter(|v| v.trim().is_empty()).map(|_| FieldError {
        field: field.into(),
        message: "must not be empty".into(),
    })
}

/// Parses the wire body into domain values, reporting every bad field at once.
pub(crate) fn parse(
    body: CreateInstanceRequest,
) -> Result<(CreateRequest, Option<RootPassword>, Option<String>), Problem> {
    let name = InstanceName::parse(&body.name).map_err(field_error("name"));
    let password = body
        .root_password
        .as_ref()
        .map(|p| RootPassword::parse(p.expose_secret()))
        .transpose()
        .map_err(field_error("root_password"));
    let time_zone = body
        .time_zone
        .as_deref()
        .map(TimeZone::parse)
        .transpose()
        .map_err(field_error("time_zone"));
    let mut errors: Vec<FieldError> = [
        required("target", Some(&body.target)),
        required("size", Some(&body.size)),
        required("version", body.version.as_deref()),
        required("az", body.az.as_deref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (name, password, time_zone) = match (name, password, time_zone) {
        (Ok(name), Ok(password), Ok(time_zone)) if errors.is_empty() => (name, password, time_zone),
        (name, password, time_zone) => {
            errors.extend(
                [name.err(), password.err(), time_zone.err()]
                    .into_iter()
                    .flatten(),
            );
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            let detail = errors
                .iter()
                .map(|e| format!("`{}` {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Problem::new(ErrorCode::InvalidField, detail).with_field_errors(errors));
        }
    };
    let request = CreateRequest {
        name,
        target: body.target,
        size: body.size,
        version: body.version,
        az: body.az,
        time_zone,
        labels: body.labels,
    };
    Ok((request, password, body.team))
}

/// The team named by the `X-Team` header or the body; both must agree when both are given.
pub fn requested_team(
    request: &HttpRequest,
    body_team: Option<String>,
) -> Result<Option<String>, Problem> {
    let header = request
        .headers()
        .get(TEAM_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match (header, body_team) {
        (Some(header), Some(body)) if header != body => Err(Problem::new(
            ErrorCode::InvalidField,
            "the X-Team header and the `team` field name different teams",
        )
        .with_field_errors(vec![FieldError {
            field: "team".into(),
            message: "differs from the X-Team header".into(),
        }])),
        (header, body) => Ok(header.or(body)),
    }
}

/// Parse, choose the team, evaluate: everything a create and a dry-run share.
struct Prepared {
    /// The policy that decided; its quota limits apply too, even if a reload lands meanwhile.
    policy: Arc<Policy>,
    evaluation: Evaluation,
    target: String,
    size: String,
    generated_password: Option<RootPassword>,
}

fn prepare(
    request: &HttpRequest,
    employee: &Employee,
    state: &GatewayState,
    body: CreateInstanceRequest,
) -> Result<Prepared, Problem> {
    let (create, given_password, body_team) = parse(body)?;
    let policy = state.policy.current();
    let team = select_team(
        employee,
        requested_team(request, body_team)?.as_deref(),
        &policy,
    )?;
    let (password, generated_password) = match given_password {
        Some(given) => (given, None),
        None => {
            let generated = RootPassword::generate();
            (generated.clone(), Some(generated))
        }
    };
    let decision_id = uuid::Uuid::new_v4().to_string();
    let evaluation = evaluate::evaluate(employee, &team, &create, password, &policy, decision_id);
    let decision = &evaluation.decision;
    tracing::info!(
        decision.id = %decision.decision_id,
        decision.allowed = decision.allowed,
        decision.audit_failures = decision.audit_failures().count(),
        employee.team = %team,
        policy.revision = %decision.policy_revision,
        "policy evaluated"
    );
    Ok(Prepared {
        policy,
        evaluation,
        target: create.target,
        size: create.size,
        generated_password,
    })
}

fn request_id(request: &HttpRequest) -> String {
    RequestId::of(request)
        .map(|id| id.to_string())
        .unwrap_or_default()
}

/// The longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The caller's `Idempotency-Key`, if any, checked.
fn idempotency_key(request: &HttpRequest) -> Result<Option<String>, Problem> {
    let Some(value) = request.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty()
        || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS
        || !key.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(Problem::new(
            ErrorCode::InvalidIdempotencyKey,
            format!(
                "the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"
            ),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// Identifies "the same request" for an idempotency key: the body and the team header. The
/// root password is left out, so no digest of it is ever stored.
fn fingerprint(request: &HttpRequest, body: &CreateInstanceRequest) -> String {
    let canonical = serde_json::json!({
        "name": body.name, "target": body.target, "size": body.size, "version": body.version,
        "az": body.az, "time_zone": body.time_zone, "team": body.team, "labels": body.labels,
        "password_given": body.root_password.is_some(),
        "x_team": request.headers().get(TEAM_HEADER).and_then(|v| v.to_str().ok()),
    });
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.to_string().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// One create's result, and what an idempotency key should remember of it.
struct Attempt {
    result: Result<CreatedInstanceResponse, Problem>,
    reservation_id: Option<String>,
    /// Worth replaying: the instance exists, or may (pending). Everything else had no effect
    /// upstream, so a retry may simply run again.
    remember: bool,
}

/// Create a StarRocks instance.
///
/// Authenticates the caller, checks the request against the team's policy, reserves the cost
/// in the team's quota, expands the size profile into the full Huawei Cloud body (injecting
/// the team's system tags) and forwards it with the gateway's own IAM token. With an
/// `Idempotency-Key`, a retry of the same request replays the first answer instead of
/// creating again (a generated root password is not replayed: it is never stored).
#[utoipa::path(
    post,
    path = "/v1/starrocks",
    tag = "instances",
    request_body = CreateInstanceRequest,
    params(
        ("X-Team" = Option<String>, Header, description = "The team to act for, when you are in several"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; a retry with the same key and body replays the first answer for 24 h", min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Instance accepted by the cloud and being created", body = CreatedInstanceResponse),
        (status = 400, description = "Malformed body, a field breaking the upstream's rules, no team chosen, or a bad Idempotency-Key (`malformed_body`, `invalid_field`, `team_required`, `invalid_idempotency_key`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid bearer token (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Refused by org policy, every failed rule listed (`policy_denied`), over quota (`quota_exceeded`), or not a member of the named team (`not_team_member`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this Idempotency-Key is still in flight (`idempotency_key_in_flight`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "This Idempotency-Key was used with a different body (`idempotency_key_reused`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The cloud refused or failed the call; `upstream_code` carries its code (`upstream_error`, `upstream_auth_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cloud, the identity provider or the gateway's database is unreachable (`upstream_unavailable`, `identity_provider_unavailable`, `storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The cloud did not answer in time; the instance may still appear (`upstream_timeout`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_instance(
    request: HttpRequest,
    employee: web::ReqData<Employee>,
    state: web::Data<GatewayState>,
    body: JsonBody<CreateInstanceRequest>,
) -> HttpResponse {
    let key = match idempotency_key(&request) {
        Ok(key) => key,
        Err(problem) => return problem.response_for(&request),
    };
    let Some(key) = key else {
        let attempt = create(&request, &employee, &state, body.0).await;
        return respond(&request, attempt.result);
    };
    let store = &state.store;
    let fingerprint = fingerprint(&request, &body.0);
    match store
        .claim_idempotency_key(
            &employee.subject,
            &key,
            &fingerprint,
            state.idempotency_ttl_ms,
        )
        .await
    {
        Err(error) => return Problem::from(&error).response_for(&request),
        Ok(Claim::InFlight) => {
            return Problem::new(
                ErrorCode::IdempotencyKeyInFlight,
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )
            .response_for(&request);
        }
        Ok(Claim::Mismatch) => {
            return Problem::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used with a different request body",
            )
            .response_for(&request);
        }
        Ok(Claim::Replay {
            status,
            response,
            reservation_id,
        }) => {
            return replay(&state, status, &response, reservation_id.as_deref()).await;
        }
        Ok(Claim::Claimed) => {}
    }
    let attempt = create(&request, &employee, &state, body.0).await;
    let kept = if attempt.remember {
        let (status, stored) = match &attempt.result {
            // The generated password is shown once, never stored, so never replayed.
            Ok(created) => (
                201,
                serde_json::to_string(&CreatedInstanceResponse {
                    root_password: None,
                    ..created.clone()
                }),
            ),
            Err(problem) => (problem.status, serde_json::to_string(problem)),
        };
        match stored {
            Ok(stored) => {
                store
                    .finish_idempotency_key(
                        &employee.subject,
                        &key,
                        status,
                        &stored,
                        attempt.reservation_id.as_deref(),
                    )
                    .await
            }
            Err(error) => Err(crate::storage::StorageError::Corrupt(error.to_string())),
        }
    } else {
        store.forget_idempotency_key(&employee.subject, &key).await
    };
    if let Err(error) = kept {
        tracing::error!(error = ?error, "storing the idempotency record failed");
    }
    respond(&request, attempt.result)
}

fn respond(
    request: &HttpRequest,
    result: Result<CreatedInstanceResponse, Problem>,
) -> HttpResponse {
    match result {
        Ok(created) => HttpResponse::Created().json(created),
        Err(problem) => problem.response_for(request),
    }
}

/// The first answer again. An ambiguous first answer is replaced by the instance when
/// reconciliation has found it since.
async fn replay(
    state: &GatewayState,
    status: u16,
    stored: &str,
    reservation_id: Option<&str>,
) -> HttpResponse {
    if status != 201
        && let Some(id) = reservation_id
        && let Ok(Some(reservation)) = state.store.reservation(id).await
        && reservation.state == "committed"
        && let Some(instance_id) = reservation.instance_id
    {
        return HttpResponse::Created()
            .insert_header((REPLAYED_HEADER, "true"))
            .json(CreatedInstanceResponse {
                id: instance_id,
                name: reservation.name,
                status: "creating".into(),
                job_id: reservation.job_id,
                team: reservation.team,
                target: reservation.target,
                size: reservation.size,
                labels: reservation.labels,
                decision_id: reservation.decision_id,
                request_id: String::new(),
                root_password: None,
            });
    }
    let content_type = if status == 201 {
        "application/json"
    } else {
        crate::error::PROBLEM_JSON
    };
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK),
    )
    .insert_header((REPLAYED_HEADER, "true"))
    .content_type(content_type)
    .body(stored.to_owned())
}

async fn create(
    request: &HttpRequest,
    employee: &Employee,
    state: &GatewayState,
    body: CreateInstanceRequest,
) -> Attempt {
    let fail = |problem: Problem| Attempt {
        result: Err(problem),
        reservation_id: None,
        remember: false,
    };
    let started = Instant::now();
    let Prepared {
        policy,
        evaluation,
        target,
        size,
        generated_password,
    } = match prepare(request, employee, state, body) {
        Ok(prepared) => prepared,
        Err(problem) => return fail(problem),
    };
    let request_id = request_id(request);
    let context = record::Context {
        action: "create",
        request_id: &request_id,
        target: &target,
        size: &size,
        started,
    };
    let Evaluation { decision, plan } = evaluation;
    let Some(plan) = plan else {
        let denial = decision.denial();
        record::record(
            &state.store,
            context,
            &decision,
            record::Outcome {
                outcome: "denied",
                error_code: Some(denial.code.as_str().into()),
                ..record::Outcome::default()
            },
        )
        .await;
        return fail(denial);
    };

    let cost = reserve::cost_of(&plan);
    let reservation_id = uuid::Uuid::new_v4().to_string();
    let limit = policy.team(&decision.team).and_then(|team| team.quota);
    let new = NewReservation {
        id: &reservation_id,
        team: &decision.team,
        subject: &employee.subject,
        cost,
        project_id: state.cloud.project_id(),
        target: &target,
        target_instance_id: &plan.target_instance_id,
        name: &plan.body.name,
        size: &size,
        labels: &plan.labels,
        decision_id: &decision.decision_id,
        request_id: &request_id,
    };
    let (before, after) = match reserve::reserve(&state.store, &new, limit.as_ref()).await {
        Ok(Ok(usage)) => usage,
        Ok(Err((over_quota, used))) => {
            // The ledger measured usage inside its lock; no second read.
            let used = Some(used);
            record::record(
                &state.store,
                context,
                &decision,
                record::Outcome {
                    outcome: "denied",
                    quota_before: used,
                    quota_after: used,
                    error_code: Some(over_quota.code.as_str().into()),
                    ..record::Outcome::default()
                },
            )
            .await;
            return fail(over_quota);
        }
        Err(error) => {
            tracing::error!(error = ?error, "the quota ledger is unavailable; nothing is sent upstream");
            return fail(Problem::from(&error));
        }
    };

    let answer = forward::create(&state.cloud, &plan, &request_id).await;
    let settlement = settle::settle(&state.store, &reservation_id, &answer).await;
    let quota_after = if settlement == Settlement::Released {
        before
    } else {
        after
    };
    let (upstream_status, error_code) = match &answer {
        Ok(_) => (Some(201), None),
        Err(error) => match &**error {
            CloudError::Rejected { status, code, .. } => (Some(*status), code.clone()),
            other => (None, Some(Problem::from(other).code.as_str().to_owned())),
        },
    };
    let outcome = record::Outcome {
        outcome: settlement.outcome(),
        quota_before: Some(before),
        quota_after: Some(quota_after),
        upstream_status,
        error_code,
        instance_id: answer.as_ref().ok().map(|a| a.instance.id.clone()),
        job_id: answer.as_ref().ok().map(|a| a.job_id.clone()),
    };
    record::record(&state.store, context, &decision, outcome).await;
    let remember = settlement != Settlement::Released;
    let result = match answer {
        Ok(answer) => {
            tracing::info!(decision.id = %decision.decision_id, instance.id = %answer.instance.id, job.id = %answer.job_id, "instance creation accepted upstream");
            Ok(CreatedInstanceResponse {
                id: answer.instance.id,
                name: answer.instance.name,
                status: answer.instance.status,
                job_id: Some(answer.job_id),
                team: decision.team,
                target,
                size,
                labels: plan.labels,
                decision_id: decision.decision_id,
                request_id,
                root_password: generated_password.map(|p| p.expose().to_owned()),
            })
        }
        Err(error) => {
            tracing::warn!(decision.id = %decision.decision_id, reservation.state = settlement.outcome(), error = ?error, "create failed upstream");
            Err(Problem::from(&*error))
        }
    };
    Attempt {
        result,
        reservation_id: Some(reservation_id),
        remember,
    }
}

/// A dry-run's view of the team's quota.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaPreview {
    /// What the create would cost.
    pub cost: Cost,
    /// What the team uses now.
    pub used: Cost,
    /// The team's limits; absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Quota>,
    /// Whether the create would fit right now.
    pub fits: bool,
}

/// Evaluate a create without side effects.
///
/// Returns the full policy decision (every rule, its mode and outcome, the values filled in),
/// whether the team's quota would admit it, and, when allowed, the exact call a create would
/// send, password redacted. Nothing is reserved and nothing is sent to the cloud.
#[utoipa::path(
    post,
    path = "/v1/starrocks/dry-run",
    tag = "instances",
    request_body = CreateInstanceRequest,
    params(("X-Team" = Option<String>, Header, description = "The team to act for, when you are in several")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The decision, allowed or not, and the call a create would make", body = DryRunResponse),
        (status = 400, description = "Malformed body, an invalid field, or no team chosen (`malformed_body`, `invalid_field`, `team_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid bearer token (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member of the named team (`not_team_member`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The identity provider or the gateway's database is unreachable (`identity_provider_unavailable`, `storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn dry_run(
    request: HttpRequest,
    employee: web::ReqData<Employee>,
    state: web::Data<GatewayState>,
    body: JsonBody<CreateInstanceRequest>,
) -> HttpResponse {
    let started = Instant::now();
    let Prepared {
        policy,
        evaluation,
        target,
        size,
        ..
    } = match prepare(&request, &employee, &state, body.0) {
        Ok(prepared) => prepared,
        Err(problem) => return problem.response_for(&request),
    };
    let Evaluation { decision, plan } = evaluation;
    let quota = match &plan {
        Some(plan) => match state.store.usage(&decision.team).await {
            Ok(used) => {
                let cost = reserve::cost_of(plan);
                let limit = policy.team(&decision.team).and_then(|t| t.quota);
                let fits = limit.is_none_or(|limit| used.plus(cost).within(&limit));
                Some(QuotaPreview {
                    cost,
                    used,
                    limit,
                    fits,
                })
            }
            Err(error) => return Problem::from(&error).response_for(&request),
        },
        None => None,
    };
    let request_id = request_id(&request);
    let context = record::Context {
        action: "dry_run",
        request_id: &request_id,
        target: &target,
        size: &size,
        started,
    };
    let outcome = if decision.allowed && quota.as_ref().is_none_or(|q| q.fits) {
        "allowed"
    } else {
        "denied"
    };
    record::record(
        &state.store,
        context,
        &decision,
        record::Outcome {
            outcome,
            quota_before: quota.as_ref().map(|q| q.used),
            ..record::Outcome::default()
        },
    )
    .await;
    let labels = plan.as_ref().map(|p| p.labels.clone()).unwrap_or_default();
    let upstream = plan.map(|plan| {
        let mut body = serde_json::to_value(&plan.body).unwrap_or_default();
        body["db_root_pwd"] = REDACTED.into();
        UpstreamCall {
            method: "POST".into(),
            path: format!(
                "/v3/{}/instances/{}/starrocks",
                state.cloud.project_id(),
                plan.target_instance_id
            ),
            body,
        }
    });
    HttpResponse::Ok().json(DryRunResponse {
        decision,
        upstream,
        quota,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> CreateInstanceRequest {
        serde_json::from_value(json).expect("well-formed body")
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let problem = parse(body(serde_json::json!({
            "name": "1bad", "target": "", "size": "small", "root_password": "weak"
        })))
        .expect_err("three fields are bad");
        let fields: Vec<_> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["name", "root_password", "target"]);
        assert_eq!(problem.code, ErrorCode::InvalidField);
    }

    #[test]
    fn a_rejected_password_is_never_echoed() {
        let problem = parse(body(serde_json::json!({
            "name": "good-name", "target": "t", "size": "small", "root_password": "onlylowercase"
        })))
        .expect_err("weak password");
        assert!(!problem.detail.contains("onlylowercase"));
        assert!(!format!("{problem:?}").contains("onlylowercase"));
    }
}
