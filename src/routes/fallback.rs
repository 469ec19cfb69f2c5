//! problem+json answers for unknown paths and wrong methods, instead of actix's empty bodies.

use actix_web::http::header::ALLOW;
use actix_web::{HttpRequest, HttpResponse, Resource, web};

use crate::error::{ErrorCode, Problem};

pub async fn not_found(request: HttpRequest) -> HttpResponse {
    Problem::new(
        ErrorCode::NotFound,
        format!("no resource at {}", request.path()),
    )
    .response_for(&request)
}

/// A resource at `path` answering any method but `allow` with `405` and an `Allow` header
/// (RFC 9110 requires it).
pub fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move |request: HttpRequest| async move {
        let mut response = Problem::new(
            ErrorCode::MethodNotAllowed,
            format!(
                "{} is not supported on {}; use {allow}",
                request.method(),
                request.path()
            ),
        )
        .response_for(&request);
        response.headers_mut().insert(
            ALLOW,
            actix_web::http::header::HeaderValue::from_static(allow),
        );
        response
    }))
}
