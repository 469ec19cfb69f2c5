//! The `x-request-id` of each request: taken from the caller when it is well formed, made
//! otherwise, echoed on the response, stamped on every problem+json body, put on every log
//! line and forwarded to the cloud.

use std::fmt;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use tracing::Span;
use tracing_actix_web::{RootSpan, RootSpanBuilder};

use super::error::ApiError;
use crate::metrics::METRICS;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A request's correlation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Accepts a caller's id of 1–128 characters from `[A-Za-z0-9._:-]`; anything else could
    /// smuggle text into logs, so it is replaced by a fresh UUID.
    fn from_header(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                (1..=128).contains(&v.len())
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
            })
            .map_or_else(
                || Self(uuid::Uuid::new_v4().to_string()),
                |v| Self(v.to_owned()),
            )
    }

    pub fn of(request: &HttpRequest) -> Option<Self> {
        request.extensions().get::<Self>().cloned()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id [`assign_request_id`] gave the request (empty outside that middleware).
impl FromRequest for RequestId {
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Self::of(request).unwrap_or(Self(String::new()))))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Outermost middleware: assigns the id, writes the access log line, echoes the header, and
/// puts the id into the body of every [`ApiError`] answer.
pub async fn assign_request_id(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = RequestId::from_header(request.headers().get(REQUEST_ID_HEADER));
    request.extensions_mut().insert(id.clone());
    let method = request.method().clone();
    let path = request.path().to_owned();
    let mut response = next.call(request).await?;
    let status = response.status().as_u16();
    // The route pattern, not the path: ids in paths would explode the label set.
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    METRICS
        .http_requests
        .with_label_values(&[route.as_str(), method.as_str(), &status.to_string()])
        .inc();
    METRICS
        .http_duration
        .with_label_values(&[route.as_str(), method.as_str()])
        .observe(started.elapsed().as_secs_f64());
    let log = || {
        tracing::info!(
            request_id = %id,
            http.method = %method,
            http.path = %path,
            http.status_code = status,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request finished"
        );
    };
    // Inside the request's span, so the line carries what the request learned on the way
    // (subject, team, decision id).
    let root = response.request().extensions().get::<RootSpan>().cloned();
    match root {
        Some(root) => root.in_scope(log),
        None => log(),
    }
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(stamped(response, &id))
}

/// An error answer rebuilt with the request id in its body; any other answer as it is.
fn stamped<B>(response: ServiceResponse<B>, id: &RequestId) -> ServiceResponse<EitherBody<B>> {
    let Some(error) = response
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
        .cloned()
    else {
        return response.map_into_left_body();
    };
    let (request, original) = response.into_parts();
    let mut rebuilt = error.response_with_id(Some(id.as_str()));
    for (name, value) in original.headers() {
        if !rebuilt.headers().contains_key(name) {
            rebuilt.headers_mut().append(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(request, rebuilt).map_into_right_body()
}

/// The root span of each request carries our request id instead of tracing-actix-web's own.
#[derive(Debug)]
pub struct GatewayRootSpan;

impl RootSpanBuilder for GatewayRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info_span!(
            "http_request",
            request_id = %request_id,
            http.method = %request.method(),
            http.route = request.match_pattern().unwrap_or_default(),
            http.status_code = tracing::field::Empty,
            employee.subject = tracing::field::Empty,
            employee.team = tracing::field::Empty,
            decision_id = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    /// Records the status. A server error is logged with its message; a refusal (`4xx`) is
    /// not: it is an answer, already in the request's log line and in the decision log, and
    /// logging each one with its whole error would let any caller flood the log.
    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let (status, error) = match outcome {
            Ok(response) => (response.status(), response.response().error()),
            Err(error) => (error.as_response_error().status_code(), Some(error)),
        };
        span.record("http.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            if let Some(error) = error {
                tracing::error!(parent: &span, error = %error, "request failed");
            }
        }
    }
}
