//! A JSON body extractor whose every failure is problem+json naming the field at fault.
//!
//! actix's own `Json` answers `text/plain` and loses the path of a type error; this one checks
//! the content type, bounds the size, and parses with `serde_path_to_error`.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::{InternalError, PayloadError};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use crate::error::{ErrorCode, FieldError, Problem};

/// Largest body accepted when no limit is configured in app data.
const DEFAULT_LIMIT: usize = 16 * 1024;

/// The configured body size limit, stored as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn reject(request: &HttpRequest, problem: Problem) -> actix_web::Error {
    let response = problem.clone().response_for(request);
    InternalError::from_response(problem, response).into()
}

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
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let request = request.clone();
        let limit = request
            .app_data::<BodyLimit>()
            .map_or(DEFAULT_LIMIT, |l| l.0);
        let json = is_json(&request);
        let body = web::Bytes::from_request(&request, payload);
        Box::pin(async move {
            if !json {
                return Err(reject(
                    &request,
                    Problem::new(
                        ErrorCode::UnsupportedMediaType,
                        "the body must be application/json",
                    ),
                ));
            }
            let bytes = body.await.map_err(|error| {
                let too_large = matches!(
                    error.as_error::<PayloadError>(),
                    Some(PayloadError::Overflow)
                );
                let problem = if too_large {
                    Problem::new(
                        ErrorCode::PayloadTooLarge,
                        format!("the body exceeds {limit} bytes"),
                    )
                } else {
                    Problem::new(ErrorCode::MalformedBody, "the body could not be read")
                };
                reject(&request, problem)
            })?;
            if bytes.len() > limit {
                return Err(reject(
                    &request,
                    Problem::new(
                        ErrorCode::PayloadTooLarge,
                        format!("the body exceeds {limit} bytes"),
                    ),
                ));
            }
            let deserializer = &mut serde_json::Deserializer::from_slice(&bytes);
            serde_path_to_error::deserialize(deserializer)
                .map(JsonBody)
                .map_err(|error| {
                    let path = error.path().to_string();
                    let message = without_position(&error.inner().to_string()).to_owned();
                    let mut problem = Problem::new(
                        ErrorCode::MalformedBody,
                        format!("the body is not a valid request: {message}"),
                    );
                    let field = if path == "." {
                        named_field(&message)
                    } else {
                        Some(path)
                    };
                    if let Some(field) = field {
                        problem.detail = format!("field `{field}`: {message}");
                        problem = problem.with_field_errors(vec![FieldError { field, message }]);
                    }
                    reject(&request, problem)
                })
        })
    }
}

/// A query string parsed like [`JsonBody`]: a bad parameter is a problem+json naming it.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned> FromRequest for QueryParams<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pairs = form_urlencoded::parse(request.query_string().as_bytes());
        let deserializer = serde_urlencoded::Deserializer::new(pairs);
        std::future::ready(
            serde_path_to_error::deserialize(deserializer)
                .map(QueryParams)
                .map_err(|error| {
                    let path = error.path().to_string();
                    let message = error.inner().to_string();
                    let field = if path == "." {
                        named_field(&message)
                    } else {
                        Some(path)
                    };
                    let detail = match &field {
                        Some(field) => format!("query parameter `{field}`: {message}"),
                        None => format!("bad query string: {message}"),
                    };
                    let errors = field
                        .map(|field| FieldError { field, message })
                        .into_iter()
                        .collect();
                    reject(
                        request,
                        Problem::new(ErrorCode::InvalidParameter, detail).with_field_errors(errors),
                    )
                }),
        )
    }
}

/// For query parameters: an empty value (`?since=`) counts as absent, as browsers and
/// generated clients send it for blank fields.
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
