//! The published OpenAPI document: the operations come from the route list in
//! [`crate::http::router`], so a path is written once, in its handler's `#[utoipa::path]`.

use actix_web::App;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    Http, HttpAuthScheme, OpenIdConnect, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::error::{ErrorCode, FieldError, Violation};
use crate::http::error::{PROBLEM_JSON, Problem};
use crate::http::router;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "starrocks-gateway",
        description = "Self-service StarRocks (HTAP) instances on Huawei Cloud TaurusDB. \
            Authenticate with the JWT your identity provider issued (`Authorization: Bearer …`); \
            org policy decides what your team may order. Every error is RFC 9457 \
            problem+json with a stable `code`.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(Problem, ErrorCode, FieldError, Violation)),
    modifiers(&BearerSecurity),
    tags(
        (name = "instances", description = "StarRocks instances of your team"),
        (name = "exceptions", description = "Asking for, and approving, exceptions to policy denials"),
        (name = "admin", description = "For platform admins"),
        (name = "portal", description = "Signing in from a browser"),
        (name = "operations", description = "Probes for the platform team"),
    )
)]
struct ApiDoc;

struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        scheme.description = Some("A JWT from your organisation's identity provider.".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        let mut oidc = OpenIdConnect::new(crate::routes::portal::DISCOVERY_PATH);
        oidc.description = Some(
            "Sign in through your organisation's identity provider (authorization code with \
             PKCE), when the gateway's portal client is configured."
                .into(),
        );
        components.add_security_scheme("oidc", SecurityScheme::OpenIdConnect(oidc));
    }
}

/// Every operation of the document.
fn operations(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

/// A problem+json body.
fn problem_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build()
}

/// The answers every operation behind the bearer token shares, declared once.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let unauthenticated = ResponseBuilder::new()
            .description("Missing or invalid bearer token (`unauthenticated`)")
            .content(PROBLEM_JSON, problem_content())
            .build();
        let header = |schema: Type, description: &str| {
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(schema))
                .description(Some(description))
                .build()
        };
        let rate_limited = ResponseBuilder::new()
            .description(
                "Too many requests from you (`rate_limited`): wait `Retry-After` seconds. \
                 Creates and other requests are limited apart, per employee",
            )
            .header(
                "Retry-After",
                header(Type::Integer, "Seconds to wait before trying again"),
            )
            .header(
                "RateLimit-Policy",
                header(
                    Type::String,
                    "The limit (IETF draft): its name, the burst `q` and the seconds `w` a spent burst takes to refill",
                ),
            )
            .header(
                "RateLimit",
                header(
                    Type::String,
                    "What is left (IETF draft): `r` requests, whole again in `t` seconds",
                ),
            )
            .content(PROBLEM_JSON, problem_content())
            .build();
        for operation in operations(openapi) {
            let secured = operation.security.iter().flatten().any(|requirement| {
                serde_json::to_value(requirement).is_ok_and(|v| v.get("bearer").is_some())
            });
            if secured {
                // Either way in: a pasted bearer token, or a browser sign-in.
                operation
                    .security
                    .get_or_insert_with(Vec::new)
                    .push(SecurityRequirement::new("oidc", Vec::<String>::new()));
                let responses = &mut operation.responses.responses;
                responses.insert("401".into(), unauthenticated.clone().into());
                // An operation that also passes on the cloud's throttling declares its own.
                responses
                    .entry("429".into())
                    .or_insert_with(|| rate_limited.clone().into());
            }
        }
    }
}

/// Gives every problem+json response an example of its own: the first code its description
/// names (in backticks) that answers with the response's status. Without it, every error
/// would show the `Problem` schema's one example.
struct ProblemExamples;

impl Modify for ProblemExamples {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let responses =
            operations(openapi).flat_map(|operation| operation.responses.responses.iter_mut());
        for (status, response) in responses {
            let RefOr::T(response) = response else {
                continue;
            };
            let Some(code) = example_code(status, &response.description) else {
                continue;
            };
            if let Some(content) = response.content.get_mut(PROBLEM_JSON)
                && content.example.is_none()
            {
                content.example = Some(problem_example(code));
            }
        }
    }
}

/// The first code named in `description` whose status is `status`.
fn example_code(status: &str, description: &str) -> Option<ErrorCode> {
    description
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|name| ErrorCode::ALL.iter().find(|code| code.as_str() == name))
        .find(|code| code.status().to_string() == status)
        .copied()
}

fn problem_example(code: ErrorCode) -> serde_json::Value {
    let status = actix_web::http::StatusCode::from_u16(code.status())
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let meaning = code
        .meaning()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    serde_json::json!({
        "type": format!("https://starrocks-gateway.dev/problems/{}", code.as_str()),
        "title": status,
        "status": code.status(),
        "detail": if meaning.is_empty() { code.as_str().replace('_', " ") } else { meaning },
        "code": code.as_str(),
        "request_id": "5f0c6f1e-8f0e-4a53-9d53-1b8c1d0e2a11",
    })
}

/// What no route declares: info, shared schemas, security schemes, tags. The router adds
/// the operations.
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Completes the document the router collected on top of [`base`].
pub fn finish(mut document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    CommonResponses.modify(&mut document);
    ProblemExamples.modify(&mut document);
    document
}

/// The document, as served at `/openapi.json` and committed under `openapi/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    let app = App::new().into_utoipa_app().openapi(base());
    let (_, document) = router::routes(app).split_for_parts();
    finish(document)
}

/// [`document`] as pretty JSON with a final newline.
pub fn pretty_json() -> String {
    let mut json = document()
        .to_pretty_json()
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"));
    json.push('\n');
    json
}
