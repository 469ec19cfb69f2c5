//! problem+json answers for unknown paths, instead of actix's empty bodies, and the portal
//! page, which is not an API operation.

use actix_web::{HttpRequest, HttpResponse, Resource, web};

use super::error::ApiError;
use crate::error::ErrorCode;

pub async fn not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::NotFound,
        format!("no resource at {}", request.path()),
    ))
}

/// `GET /`: the self-service portal page, compiled in so the binary serves it from anywhere.
pub fn portal() -> Resource {
    web::resource("/")
        .route(web::get().to(|| async {
            HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .body(include_str!("../../static/index.html"))
        }))
        .default_service(web::to(|request: HttpRequest| async move {
            Err::<HttpResponse, _>(ApiError::method_not_allowed(
                request.method().as_str(),
                request.path(),
                "GET".into(),
            ))
        }))
}
