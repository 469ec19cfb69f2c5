//! `POST /v1/starrocks` and `POST /v1/starrocks/dry-run`: create a StarRocks instance for the
//! caller's team, or see exactly what a create would do.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{InstanceName, InvalidValue, RootPassword, TimeZone};
use crate::error::{ErrorCode, FieldError, Problem};
use crate::extract::JsonBody;
use crate::pipeline::authenticate::Employee;
use crate::pipeline::authorize::select_team;
use crate::pipeline::evaluate::{self, CreateRequest, Decision, Evaluation};
use crate::pipeline::forward;
use crate::request_id::RequestId;
use crate::startup::GatewayState;

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
    pub name: String,
    /// Alias of the TaurusDB instance to attach to, as listed in your catalog.
    pub target: String,
    /// A size profile your team may use, e.g. `small`.
    pub size: String,
    /// Engine major version; the policy default when absent.
    pub version: Option<String>,
    /// Availability zone; the policy default when absent.
    pub az: Option<String>,
    /// Time zone like `UTC+08:00`; the policy default when absent.
    pub time_zone: Option<String>,
    /// The team to act for when you are in several (same as the `X-Team` header).
    pub team: Option<String>,
    /// Labels kept by the gateway (owner, app, ...), as your team's policy allows. They are
    /// never sent to the cloud and can never set a system tag.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// 8–32 characters with at least three of upper, lower, digit and `~!@#$%^*-_=+?,()&|.`.
    /// When absent a strong one is generated and returned once.
    #[schema(value_type = Option<String>, format = Password)]
    pub root_password: Option<SecretString>,
}

/// The created instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInstanceResponse {
    /// StarRocks instance id (`…in17`).
    pub id: String,
    pub name: String,
    /// Upstream status, `creating` at first.
    pub status: String,
    /// Id of the cloud workflow building the instance.
    pub job_id: String,
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

/// Create a StarRocks instance.
///
/// Authenticates the caller, checks the request against the team's policy, expands the size
/// profile into the full Huawei Cloud body (injecting the team's system tags) and forwards
/// it with the gateway's own IAM token.
#[utoipa::path(
    post,
    path = "/v1/starrocks",
    tag = "instances",
    request_body = CreateInstanceRequest,
    params(("X-Team" = Option<String>, Header, description = "The team to act for, when you are in several")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Instance accepted by the cloud and being created", body = CreatedInstanceResponse),
        (status = 400, description = "Malformed body, a field breaking the upstream's rules, or no team chosen (`malformed_body`, `invalid_field`, `team_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid bearer token (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Refused by org policy, every failed rule listed (`policy_denied`), or not a member of the named team (`not_team_member`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The cloud refused or failed the call; `upstream_code` carries its code (`upstream_error`, `upstream_auth_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cloud or the identity provider is unreachable (`upstream_unavailable`, `identity_provider_unavailable`)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The cloud did not answer in time (`upstream_timeout`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_instance(
    request: HttpRequest,
    employee: web::ReqData<Employee>,
    state: web::Data<GatewayState>,
    body: JsonBody<CreateInstanceRequest>,
) -> HttpResponse {
    match create(&request, &employee, &state, body.0).await {
        Ok(created) => HttpResponse::Created().json(created),
        Err(problem) => problem.response_for(&request),
    }
}

async fn create(
    request: &HttpRequest,
    employee: &Employee,
    state: &GatewayState,
    body: CreateInstanceRequest,
) -> Result<CreatedInstanceResponse, Problem> {
    let Prepared {
        evaluation,
        target,
        size,
        generated_password,
    } = prepare(request, employee, state, body)?;
    let Evaluation { decision, plan } = evaluation;
    let Some(plan) = plan else {
        return Err(decision.denial());
    };
    let request_id = request_id(request);
    let answer = forward::create(&state.cloud, &plan, &request_id).await.map_err(|error| {
        tracing::warn!(decision.id = %decision.decision_id, error = ?error, "create failed upstream");
        Problem::from(&*error)
    })?;
    tracing::info!(
        decision.id = %decision.decision_id,
        instance.id = %answer.instance.id,
        job.id = %answer.job_id,
        "instance creation accepted upstream"
    );
    Ok(CreatedInstanceResponse {
        id: answer.instance.id,
        name: answer.instance.name,
        status: answer.instance.status,
        job_id: answer.job_id,
        team: decision.team,
        target,
        size,
        labels: plan.labels,
        decision_id: decision.decision_id,
        request_id,
        root_password: generated_password.map(|p| p.expose().to_owned()),
    })
}

/// Evaluate a create without side effects.
///
/// Returns the full policy decision (every rule, its mode and outcome, the values filled in)
/// and, when allowed, the exact call a create would send, password redacted. Nothing is sent
/// to the cloud.
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
        (status = 503, description = "The identity provider is unreachable (`identity_provider_unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn dry_run(
    request: HttpRequest,
    employee: web::ReqData<Employee>,
    state: web::Data<GatewayState>,
    body: JsonBody<CreateInstanceRequest>,
) -> HttpResponse {
    let prepared = match prepare(&request, &employee, &state, body.0) {
        Ok(prepared) => prepared,
        Err(problem) => return problem.response_for(&request),
    };
    let Evaluation { decision, plan } = prepared.evaluation;
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
