//! The one error envelope of the public API: RFC 9457 problem+json with a stable `code`.
//!
//! Every machine code is declared once in [`ErrorCode`] together with its HTTP status.
//! Each pipeline boundary has its own error enum that converts into a [`Problem`].

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::request_id::RequestId;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Stable machine codes. Clients match on these, so a code is never renamed or reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON or does not have the expected shape.
    MalformedBody,
    /// One or more fields were refused; `errors` names each.
    InvalidField,
    /// The request body must be `application/json`.
    UnsupportedMediaType,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    /// A path or query parameter could not be parsed.
    InvalidParameter,
    /// No bearer token, or one that failed verification.
    Unauthenticated,
    /// The employee is in several teams and must name one (`X-Team`).
    TeamRequired,
    /// The named team is not one of the employee's teams.
    NotTeamMember,
    /// The operation is reserved to platform admins.
    AdminRequired,
    /// A new policy file was refused; the previous policy stays in force.
    PolicyInvalid,
    /// The policy did not come from a file, so it cannot be reloaded.
    PolicyNotReloadable,
    /// The identity provider's signing keys could not be fetched.
    IdentityProviderUnavailable,
    /// Org policy refuses the request; `violations` lists every failed rule.
    PolicyDenied,
    NotFound,
    MethodNotAllowed,
    /// The cloud refused or failed the call; `upstream_code` carries its error code.
    UpstreamError,
    /// The cloud reports another operation in progress on the instance; try again later.
    UpstreamBusy,
    /// The instance is already being deleted.
    InstanceDeleting,
    /// The gateway's own cloud credentials were refused by IAM.
    UpstreamAuthFailed,
    /// The cloud did not answer in time; the outcome of the call is unknown.
    UpstreamTimeout,
    /// The cloud could not be reached at all.
    UpstreamUnavailable,
    /// The gateway's database is unreachable; nothing was sent to the cloud.
    StorageUnavailable,
    /// The team's quota cannot admit the request; each dimension says requested, used, allowed.
    QuotaExceeded,
    /// The `Idempotency-Key` header is empty or longer than 255 characters.
    InvalidIdempotencyKey,
    /// A request with the same `Idempotency-Key` is still being processed.
    IdempotencyKeyInFlight,
    /// The `Idempotency-Key` was already used with a different body.
    IdempotencyKeyReused,
    /// A fault of the gateway itself; details are in its log under the request id.
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            Self::MalformedBody
            | Self::InvalidField
            | Self::InvalidParameter
            | Self::TeamRequired => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::PolicyDenied | Self::NotTeamMember | Self::AdminRequired => StatusCode::FORBIDDEN,
            Self::PolicyInvalid => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PolicyNotReloadable => StatusCode::CONFLICT,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UpstreamError | Self::UpstreamAuthFailed => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamBusy | Self::InstanceDeleting => StatusCode::CONFLICT,
            Self::UpstreamUnavailable | Self::IdentityProviderUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::QuotaExceeded => StatusCode::FORBIDDEN,
            Self::InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            Self::IdempotencyKeyInFlight => StatusCode::CONFLICT,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedBody => "malformed_body",
            Self::InvalidField => "invalid_field",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InvalidParameter => "invalid_parameter",
            Self::Unauthenticated => "unauthenticated",
            Self::TeamRequired => "team_required",
            Self::NotTeamMember => "not_team_member",
            Self::AdminRequired => "admin_required",
            Self::PolicyInvalid => "policy_invalid",
            Self::PolicyNotReloadable => "policy_not_reloadable",
            Self::IdentityProviderUnavailable => "identity_provider_unavailable",
            Self::PolicyDenied => "policy_denied",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UpstreamError => "upstream_error",
            Self::UpstreamAuthFailed => "upstream_auth_failed",
            Self::UpstreamBusy => "upstream_busy",
            Self::InstanceDeleting => "instance_deleting",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::Internal => "internal",
            Self::StorageUnavailable => "storage_unavailable",
            Self::QuotaExceeded => "quota_exceeded",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyKeyInFlight => "idempotency_key_in_flight",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
        }
    }
}

/// A field the caller must fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name in the request body, e.g. `name` or `root_password`.
    pub field: String,
    pub message: String,
}

/// One policy rule that refused the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Violation {
    /// Stable rule id, e.g. `size.allowed`.
    pub rule: String,
    pub message: String,
}

/// One quota dimension of a `quota_exceeded` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct QuotaDimension {
    /// `instances`, `nodes` or `storage_gb`.
    pub dimension: String,
    pub requested: i64,
    pub used: i64,
    pub allowed: i64,
    /// Whether this dimension is the one (or one of those) over the limit.
    pub exceeded: bool,
}

/// RFC 9457 problem details, the body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "https://starrocks-gateway.dev/problems/policy_denied",
    "title": "Forbidden",
    "status": 403,
    "detail": "team `analytics` may not use size `xlarge`",
    "code": "policy_denied",
    "request_id": "5f0c6f1e-8f0e-4a53-9d53-1b8c1d0e2a11",
    "violations": [{"rule": "size.allowed", "message": "team `analytics` may not use size `xlarge`"}]
}))]
pub struct Problem {
    /// A URI naming the problem type; it ends with the `code`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The HTTP reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    pub code: ErrorCode,
    /// Quote this id when asking the platform team for help.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
    /// The id of the policy decision that refused the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    /// With `quota_exceeded`: each dimension's request, current use and limit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quota: Vec<QuotaDimension>,
    /// The cloud's own error code, e.g. `DBS.200001`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_code: Option<String>,
    /// The HTTP status the cloud answered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
}

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        let status = code.status();
        Self {
            problem_type: format!("https://starrocks-gateway.dev/problems/{}", code.as_str()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            request_id: None,
            errors: Vec::new(),
            violations: Vec::new(),
            decision_id: None,
            quota: Vec::new(),
            upstream_code: None,
            upstream_status: None,
        }
    }

    pub fn with_field_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.code.status());
        builder.content_type(PROBLEM_JSON);
        if self.code == ErrorCode::Unauthenticated {
            builder.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"starrocks-gateway\""),
            ));
        }
        builder.json(self)
    }

    /// The response for a request, tagged with its request id.
    pub fn response_for(mut self, request: &HttpRequest) -> HttpResponse {
        self.request_id = RequestId::of(request).map(|id| id.to_string());
        self.response()
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_type_ends_with_its_code() {
        let problem = Problem::new(ErrorCode::PolicyDenied, "nope");
        assert!(problem.problem_type.ends_with("/policy_denied"));
        assert_eq!(problem.status, 403);
        assert_eq!(problem.title, "Forbidden");
    }

    #[test]
    fn an_unauthenticated_problem_carries_a_bearer_challenge() {
        let response = Problem::new(ErrorCode::Unauthenticated, "missing token").response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
