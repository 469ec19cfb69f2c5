//! `GET /v1/catalog` and `GET /v1/me`: what the caller may order, and who the gateway thinks
//! they are.

use actix_web::web;

use crate::http::error::{ApiError, Problem};
use crate::http::extract::ActingTeam;
use crate::pipeline::authenticate::Employee;
use crate::service::Gateway;
use crate::service::catalog::{Catalog, Me};

/// What your team may order.
///
/// Sizes with their FE/BE shape and storage, engine versions, AZs, time zones, targets,
/// label rules and quota limits, from the policy in force.
#[utoipa::path(get, path = "/catalog", tag = "instances",
    params(("X-Team" = Option<String>, Header, description = "The team to show, when you are in several")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your team's catalog", body = Catalog),
        (status = 400, description = "You are in several teams and named none (`team_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member of the named team (`not_team_member`), or the team is not in the policy (`policy_denied`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The identity provider or the gateway's database is unreachable (`identity_provider_unavailable`, `storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn catalog(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    team: ActingTeam,
) -> Result<web::Json<Catalog>, ApiError> {
    let catalog = gateway.catalog(&employee, team.0.as_deref()).await?;
    Ok(web::Json(catalog))
}

/// Who you are, as the gateway sees you.
#[utoipa::path(get, path = "/me", tag = "instances",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your identity, teams (with quota and usage) and admin status", body = Me),
        (status = 503, description = "The identity provider or the gateway's database is unreachable (`identity_provider_unavailable`, `storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn me(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
) -> Result<web::Json<Me>, ApiError> {
    Ok(web::Json(gateway.me(&employee).await?))
}
