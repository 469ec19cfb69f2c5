//! problem+json answers for unknown paths and wrong methods, instead of actix's empty bodies.

use actix_web::{HttpRequest, HttpResponse};

use crate::error::{ErrorCode, Problem};

pub async fn not_found(request: HttpRequest) -> HttpResponse {
    Problem::new(
        ErrorCode::NotFound,
        format!("no resource at {}", request.path()),
    )
    .response_for(&request)
}

pub async fn method_not_allowed(request: HttpRequest) -> HttpResponse {
    Problem::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "{} is not supported on {}",
            request.method(),
            request.path()
        ),
    )
    .response_for(&request)
}
