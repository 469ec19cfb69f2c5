//! The published OpenAPI document, derived from the handlers' annotations.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorCode, FieldError, Problem, Violation};
use crate::routes::{admin, catalog, health, instances, starrocks};

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
    paths(
        starrocks::create_instance,
        starrocks::dry_run,
        instances::list_instances,
        instances::get_instance,
        instances::delete_instance,
        catalog::catalog,
        catalog::me,
        admin::reload_policy,
        admin::reconcile_now,
        admin::decisions,
        health::healthz,
        health::readyz,
        crate::metrics::serve,
    ),
    components(schemas(Problem, ErrorCode, FieldError, Violation)),
    modifiers(&BearerSecurity),
    tags(
        (name = "instances", description = "StarRocks instances of your team"),
        (name = "admin", description = "For platform admins"),
        (name = "operations", description = "Probes for the platform team"),
    )
)]
pub struct ApiDoc;

struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        scheme.description = Some("A JWT from your organisation's identity provider.".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document as committed under `openapi/openapi.json`.
pub fn pretty_json() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"));
    json.push('\n');
    json
}
