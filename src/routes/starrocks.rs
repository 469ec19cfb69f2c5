//! `POST /v1/starrocks`: create a StarRocks instance for the caller's team.

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{InstanceName, InvalidValue, RootPassword, TimeZone};
use crate::error::{ErrorCode, FieldError, Problem};
use crate::extract::JsonBody;
use crate::pipeline::authenticate::Employee;
use crate::pipeline::evaluate::{self, CreateRequest};
use crate::pipeline::forward;
use crate::request_id::RequestId;
use crate::startup::GatewayState;

/// What an employee asks for; everything else comes from policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "sales-cube", "target": "analytics-prod", "size": "small"}))]
pub struct CreateInstanceRequest {
    /// 4–64 characters, starting with a letter; letters, digits, `-` and `_`.
    pub name: String,
    /// Alias of the TaurusDB instance to attach to, as listed for your team.
    pub target: String,
    /// A size profile your team may use, e.g. `small`.
    pub size: String,
    /// Engine major version; the policy default when absent.
    pub version: Option<String>,
    /// Time zone like `UTC+08:00`; the policy default when absent.
    pub time_zone: Option<String>,
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
    pub decision_id: String,
    pub request_id: String,
    /// The generated root password, present only when none was given. Shown once: it is
    /// not stored anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_password: Option<String>,
}

fn field_error(field: &str) -> impl Fn(InvalidValue) -> FieldError + '_ {
    move |error| FieldError {
        field: field.to_owned(),
        message: error.0,
    }
}

fn required(field: &str, value: &str) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        Err(FieldError {
            field: field.into(),
            message: "must not be empty".into(),
        })
    } else {
        Ok(())
    }
}

/// Parses the wire body into domain values, reporting every bad field at once.
fn parse(body: CreateInstanceRequest) -> Result<(CreateRequest, Option<RootPassword>), Problem> {
    let mut errors = Vec::new();
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
    for check in [
        required("target", &body.target),
        required("size", &body.size),
        body.version
            .as_deref()
            .map_or(Ok(()), |v| required("version", v)),
    ] {
        errors.extend(check.err());
    }
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
        time_zone,
    };
    Ok((request, password))
}

/// Create a StarRocks instance.
///
/// Authenticates the caller, checks the request against the team's policy, expands the size
/// profile into the full Huawei Cloud body (injecting the team's enterprise project tag) and
/// forwards it with the gateway's own IAM token.
#[utoipa::path(
    post,
    path = "/v1/starrocks",
    tag = "instances",
    request_body = CreateInstanceRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Instance accepted by the cloud and being created", body = CreatedInstanceResponse),
        (status = 400, description = "Malformed body or a field breaking the upstream's rules (`malformed_body`, `invalid_field`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid bearer token (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Refused by org policy; every failed rule is listed (`policy_denied`)", body = Problem, content_type = "application/problem+json"),
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
    let request_id = RequestId::of(&request)
        .map(|id| id.to_string())
        .unwrap_or_default();
    match create(&employee, &state, body.0, &request_id).await {
        Ok(created) => HttpResponse::Created().json(created),
        Err(problem) => problem.response_for(&request),
    }
}

async fn create(
    employee: &Employee,
    state: &GatewayState,
    body: CreateInstanceRequest,
    request_id: &str,
) -> Result<CreatedInstanceResponse, Problem> {
    let (request, given_password) = parse(body)?;
    let generated = given_password.is_none();
    let password = given_password.unwrap_or_else(RootPassword::generate);

    let policy = state.policy.load();
    let (decision, plan) = evaluate::evaluate(employee, &request, password.clone(), &policy);
    let Some(plan) = plan else {
        tracing::info!(decision.id = %decision.id, policy.revision = %decision.policy_revision, "create denied by policy");
        return Err(decision.denial());
    };

    let answer = forward::create(&state.cloud, &plan, request_id)
        .await
        .map_err(|error| {
            tracing::warn!(decision.id = %decision.id, error = ?error, "create failed upstream");
            Problem::from(&*error)
        })?;
    tracing::info!(
        decision.id = %decision.id,
        instance.id = %answer.instance.id,
        job.id = %answer.job_id,
        "instance creation accepted upstream"
    );
    Ok(CreatedInstanceResponse {
        id: answer.instance.id,
        name: answer.instance.name,
        status: answer.instance.status,
        job_id: answer.job_id,
        team: employee.team.clone(),
        target: request.target,
        size: request.size,
        decision_id: decision.id,
        request_id: request_id.to_owned(),
        root_password: generated.then(|| password.expose().to_owned()),
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
