//! The one error envelope of the public API, RFC 9457 problem+json with a stable `code`, and
//! the one place an error becomes an HTTP answer.
//!
//! Handlers return `Result<_, ApiError>` and use `?`: any [`Coded`] domain error converts.
//! The request id is stamped on the body later, in one place, by
//! [`super::request_id::assign_request_id`].

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Coded, Details, ErrorCode, FieldError, QuotaDimension, Violation};

pub const PROBLEM_JSON: &str = "application/problem+json";

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

fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>, details: Details) -> Self {
        let status = status_of(code);
        Self {
            problem_type: format!("https://starrocks-gateway.dev/problems/{}", code.as_str()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            request_id: None,
            errors: details.errors,
            violations: details.violations,
            decision_id: details.decision_id,
            quota: details.quota,
            upstream_code: details.upstream_code,
            upstream_status: details.upstream_status,
        }
    }
}

/// An error answered as problem+json.
#[derive(Debug, Clone)]
pub struct ApiError {
    problem: Box<Problem>,
    /// With `405`: the methods the resource answers, for the `Allow` header.
    allow: Option<String>,
    /// Seconds for the `Retry-After` header (`429`, `503`, some `409`s).
    retry_after_secs: Option<u64>,
    /// A sent token was refused (`401`): the challenge names `invalid_token`.
    invalid_token: bool,
}

impl ApiError {
    /// An error of the HTTP edge itself (body, query string, route), not of a use case.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::with_details(code, detail, Details::default())
    }

    pub fn with_details(code: ErrorCode, detail: impl Into<String>, details: Details) -> Self {
        let (retry_after_secs, invalid_token) = (details.retry_after_secs, details.invalid_token);
        Self {
            problem: Box::new(Problem::new(code, detail, details)),
            allow: None,
            retry_after_secs,
            invalid_token,
        }
    }

    /// A bad query or path parameter, named.
    pub fn invalid_parameter(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::with_details(
            ErrorCode::InvalidParameter,
            format!("`{field}` {message}"),
            Details {
                errors: vec![FieldError {
                    field: field.to_owned(),
                    message,
                }],
                ..Details::default()
            },
        )
    }

    /// `405` with the `Allow` header RFC 9110 requires.
    pub fn method_not_allowed(method: &str, path: &str, allow: String) -> Self {
        let mut error = Self::new(
            ErrorCode::MethodNotAllowed,
            format!("{method} is not supported on {path}; use {allow}"),
        );
        error.allow = Some(allow);
        error
    }

    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// The `WWW-Authenticate` challenge of a `401` (RFC 6750 §3): the realm, and for a token
    /// that was sent and refused, `invalid_token` with the reason.
    fn challenge(&self) -> HeaderValue {
        const REALM: &str = "Bearer realm=\"starrocks-gateway\"";
        if !self.invalid_token {
            return HeaderValue::from_static(REALM);
        }
        // RFC 6750 allows printable ASCII in the description, except `"` and `\`.
        let description: String = self
            .problem
            .detail
            .chars()
            .map(|c| match c {
                ' ' | '!' | '#'..='[' | ']'..='~' => c,
                _ => '\'',
            })
            .collect();
        HeaderValue::from_str(&format!(
            "{REALM}, error=\"invalid_token\", error_description=\"{description}\""
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(REALM))
    }

    /// The answer, its body naming `request_id`.
    pub fn response_with_id(&self, request_id: Option<&str>) -> HttpResponse {
        let mut problem = (*self.problem).clone();
        problem.request_id = request_id.map(str::to_owned);
        let mut builder = HttpResponse::build(status_of(problem.code));
        builder.content_type(PROBLEM_JSON);
        if problem.code == ErrorCode::Unauthenticated {
            builder.insert_header((header::WWW_AUTHENTICATE, self.challenge()));
        }
        if let Some(allow) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            builder.insert_header((header::ALLOW, allow));
        }
        if let Some(secs) = self.retry_after_secs {
            builder.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        builder.json(problem)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.problem.code.as_str(), self.problem.detail)
    }
}

impl<E: Coded> From<E> for ApiError {
    fn from(error: E) -> Self {
        Self::with_details(error.code(), error.detail(), error.details())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.problem.code)
    }

    fn error_response(&self) -> HttpResponse {
        self.response_with_id(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_type_ends_with_its_code() {
        let problem = Problem::new(ErrorCode::PolicyDenied, "nope", Details::default());
        assert!(problem.problem_type.ends_with("/policy_denied"));
        assert_eq!(problem.status, 403);
        assert_eq!(problem.title, "Forbidden");
    }

    #[test]
    fn an_unauthenticated_answer_carries_a_bearer_challenge() {
        let response = ApiError::new(ErrorCode::Unauthenticated, "missing token").error_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn a_method_not_allowed_answer_names_the_allowed_methods() {
        let response = ApiError::method_not_allowed("PUT", "/v1/me", "GET".into()).error_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            response
                .headers()
                .get(header::ALLOW)
                .map(HeaderValue::as_bytes),
            Some(&b"GET"[..])
        );
    }
}
