//! What is not an API operation: problem+json for unknown paths (instead of actix's empty
//! bodies), the portal page, the OpenAPI document and Swagger UI. Each answers `GET` and
//! `HEAD`, and any other method with `405` and `Allow`.

use std::sync::Arc;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, Resource, web};
use utoipa_swagger_ui::{Config, oauth};

use super::error::ApiError;
use crate::config::PortalSettings;
use crate::error::ErrorCode;

pub async fn not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::NotFound,
        format!("no resource at {}", request.path()),
    ))
}

/// `path`, read-only: `GET` and `HEAD` reach `handler`; other methods get `405`.
fn read_only<F, Args>(path: &str, handler: F) -> Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(|request: HttpRequest| async move {
            Err::<HttpResponse, _>(ApiError::method_not_allowed(
                request.method().as_str(),
                request.path(),
                "GET, HEAD".into(),
            ))
        }))
}

/// `GET /`: the self-service portal page, compiled in so the binary serves it from anywhere.
/// Its scripts may reach only this gateway and the identity provider at `issuer` (the token
/// exchange of a sign-in).
pub fn portal(issuer: &str) -> Resource {
    let identity_provider = url::Url::parse(issuer)
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_default();
    let policy = format!(
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
         connect-src 'self' {identity_provider}; img-src 'self' data:; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    read_only("/", move || {
        let policy = policy.clone();
        async move {
            HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .insert_header(("Content-Security-Policy", policy))
                .insert_header(("Referrer-Policy", "no-referrer"))
                .body(include_str!("../../static/index.html"))
        }
    })
}

/// `GET /openapi.json`: the document, serialized once.
pub fn openapi_json(document: &utoipa::openapi::OpenApi) -> Resource {
    let json = web::Bytes::from(serde_json::to_vec(document).unwrap_or_default());
    read_only("/openapi.json", move || {
        let json = json.clone();
        async move {
            HttpResponse::Ok()
                .insert_header((CONTENT_TYPE, "application/json"))
                .body(json)
        }
    })
}

/// Swagger UI's responses table (code, description, links) is wider than a 375 px phone:
/// it scrolls inside its box instead of widening the page.
const SWAGGER_UI_NARROW: &str =
    "\n/* starrocks-gateway */\n.swagger-ui .responses-wrapper { overflow-x: auto; }\n";

/// `GET /swagger-ui/…`: the vendored Swagger UI, pointed at `/openapi.json`; a file it does
/// not have is a problem+json `404`. With the portal's client configured, "Authorize" signs
/// in through the identity provider (authorization code with PKCE).
pub fn swagger_ui(sign_in: &PortalSettings) -> Resource {
    let config = match &sign_in.client_id {
        Some(client_id) => Config::with_oauth_config(
            ["/openapi.json"],
            oauth::Config::new()
                .client_id(client_id)
                .scopes(sign_in.scopes.clone())
                .use_pkce_with_authorization_code_grant(true),
        ),
        None => Config::new(["/openapi.json"]),
    };
    let config = Arc::new(config);
    read_only(
        "/swagger-ui/{file:.*}",
        move |request: HttpRequest, file: web::Path<String>| {
            let config = Arc::clone(&config);
            async move {
                match utoipa_swagger_ui::serve(&file, config) {
                    Ok(Some(found)) => {
                        let mut body = found.bytes.into_owned();
                        if file.as_str() == "index.css" {
                            body.extend_from_slice(SWAGGER_UI_NARROW.as_bytes());
                        }
                        Ok(HttpResponse::Ok()
                            .content_type(found.content_type)
                            .insert_header((CACHE_CONTROL, "no-cache"))
                            .body(body))
                    }
                    Ok(None) => Err(ApiError::new(
                        ErrorCode::NotFound,
                        format!("no resource at {}", request.path()),
                    )),
                    Err(error) => {
                        tracing::error!(error = %error, "serving Swagger UI failed");
                        Err(ApiError::new(
                            ErrorCode::Internal,
                            "Swagger UI could not be served",
                        ))
                    }
                }
            }
        },
    )
}
