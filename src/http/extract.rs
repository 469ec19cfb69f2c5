//! Everything a handler takes from a request, in one place, each failure a problem+json
//! naming what is at fault: the JSON body, the query string, the `X-Team` and
//! `Idempotency-Key` headers.
//!
//! actix's own `Json` answers `text/plain` and loses the path of a type error; [`JsonBody`]
//! checks the content type, bounds the size, and parses with `serde_path_to_error`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::domain::IdempotencyKey;
use crate::error::{Details, ErrorCode, FieldError};

/// Largest body accepted when no limit is configured in app data.
const DEFAULT_LIMIT: usize = 16 * 1024;

/// The configured body size limit, stored as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// How long a body may take to arrive, stored as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// When no deadline is configured in app data.
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn is_json(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        })
}

/// A serde message without its `at line 1 column 5` suffix, which means nothing to a caller.
fn without_position(message: &str) -> &str {
    message
        .find(" at line ")
        .map_or(message, |at| &message[..at])
}

/// The field a top-level serde error is about (`missing field `name``, `unknown field `x``).
fn named_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next().map(str::to_owned)
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json(request, payload, false);
        Box::pin(async move {
            body.await?
                .map(JsonBody)
                .ok_or_else(|| ApiError::new(ErrorCode::MalformedBody, "the body is empty"))
        })
    }
}

/// A JSON body that may be left out: an empty body, or `null`, is `T::default()`; one that
/// is sent is checked like [`JsonBody`].
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // JSON `null` is a body left out too.
        let body = read_json::<Option<T>>(request, payload, true);
        Box::pin(async move { Ok(OptionalJsonBody(body.await?.flatten().unwrap_or_default())) })
    }
}

/// Reads and parses a JSON body within the configured size and time; `None` for an empty
/// body when `may_be_empty`.
fn read_json<T: DeserializeOwned + 'static>(
    request: &HttpRequest,
    payload: &mut Payload,
    may_be_empty: bool,
) -> Pin<Box<dyn Future<Output = Result<Option<T>, ApiError>>>> {
    let request = request.clone();
    let limit = request
        .app_data::<BodyLimit>()
        .map_or(DEFAULT_LIMIT, |l| l.0);
    let deadline = request
        .app_data::<BodyTimeout>()
        .map_or(DEFAULT_BODY_TIMEOUT, |t| t.0);
    let json = is_json(&request);
    let body = web::Bytes::from_request(&request, payload);
    Box::pin(async move {
        if !json && !may_be_empty {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the body must be application/json",
            ));
        }
        let body = tokio::time::timeout(deadline, body).await.map_err(|_| {
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the body did not arrive whole within {} ms",
                    deadline.as_millis()
                ),
            )
        })?;
        let bytes = body.map_err(|error| {
            let too_large = matches!(
                error.as_error::<PayloadError>(),
                Some(PayloadError::Overflow)
            );
            if too_large {
                too_large_for(limit)
            } else {
                ApiError::new(ErrorCode::MalformedBody, "the body could not be read")
            }
        })?;
        if bytes.len() > limit {
            return Err(too_large_for(limit));
        }
        if may_be_empty && bytes.is_empty() {
            return Ok(None);
        }
        if !json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the body must be application/json",
            ));
        }
        let deserializer = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(deserializer)
            .map(Some)
            .map_err(|error| {
                let message = without_position(&error.inner().to_string()).to_owned();
                refused(
                    ErrorCode::MalformedBody,
                    &error.path().to_string(),
                    message,
                    ("field", "the body is not a valid request"),
                )
            })
    })
}

/// A query string parsed like [`JsonBody`]: a bad parameter is a problem+json naming it.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned> FromRequest for QueryParams<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pairs = form_urlencoded::parse(request.query_string().as_bytes());
        let deserializer = serde_urlencoded::Deserializer::new(pairs);
        std::future::ready(
            serde_path_to_error::deserialize(deserializer)
                .map(QueryParams)
                .map_err(|error| {
                    refused(
                        ErrorCode::InvalidParameter,
                        &error.path().to_string(),
                        error.inner().to_string(),
                        ("query parameter", "bad query string"),
                    )
                }),
        )
    }
}

/// A deserialization failure at `path` (`.` for the top level), naming the field when serde
/// says which: `what` is how the detail calls a field, and what it says without one.
fn refused(code: ErrorCode, path: &str, message: String, what: (&str, &str)) -> ApiError {
    let (a_field, unnamed) = what;
    let field = if path == "." {
        named_field(&message)
    } else {
        Some(path.to_owned())
    };
    match field {
        Some(field) => ApiError::with_details(
            code,
            format!("{a_field} `{field}`: {message}"),
            Details {
                errors: vec![FieldError { field, message }],
                ..Details::default()
            },
        ),
        None => ApiError::new(code, format!("{unnamed}: {message}")),
    }
}

fn too_large_for(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the body exceeds {limit} bytes"),
    )
}

/// The header naming the team to act for, for employees in several teams.
pub const TEAM_HEADER: &str = "x-team";
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// The `X-Team` header, when present and readable.
#[derive(Debug, Clone, Default)]
pub struct ActingTeam(pub Option<String>);

impl FromRequest for ActingTeam {
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let team = request
            .headers()
            .get(TEAM_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        std::future::ready(Ok(Self(team)))
    }
}

/// The `Idempotency-Key` header: absent, or a well-formed key (`400` otherwise).
#[derive(Debug, Clone)]
pub struct IdempotencyKeyHeader(pub Option<IdempotencyKey>);

impl FromRequest for IdempotencyKeyHeader {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = request.headers().get(IDEMPOTENCY_HEADER).map(|value| {
            IdempotencyKey::parse(value.to_str().unwrap_or_default())
                .map_err(|error| ApiError::new(ErrorCode::InvalidIdempotencyKey, error.0))
        });
        std::future::ready(key.transpose().map(Self))
    }
}

/// For free-text query filters (`?team=`): an empty value counts as absent, as browsers and
/// generated clients send it for blank fields. Typed parameters (numbers, times, page
/// tokens) are refused when empty, as the OpenAPI document says.
pub fn empty_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let raw: Option<String> = serde::Deserialize::deserialize(deserializer)?;
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => value.parse().map(Some).map_err(serde::de::Error::custom),
    }
}
