//! `GET /v1/catalog` and `GET /v1/me`: what the caller may order, and who the gateway thinks
//! they are.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::starrocks::requested_team;
use crate::error::Problem;
use crate::pipeline::authenticate::Employee;
use crate::pipeline::authorize::select_team;
use crate::policy::{HaMode, Policy, Quota};
use crate::startup::GatewayState;
use crate::storage::ledger::Cost;

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeGroup {
    pub flavor_id: String,
    pub count: u32,
    pub volume_gb: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SizeOffer {
    pub name: String,
    pub description: String,
    pub ha_mode: HaMode,
    pub fe: NodeGroup,
    pub be: NodeGroup,
    pub io_type: String,
    /// FE plus BE nodes: what the size costs against the `nodes` quota.
    pub nodes: u32,
    /// All volumes together: what the size costs against the `storage_gb` quota.
    pub storage_gb: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelOffer {
    pub max_count: usize,
    /// Allowed key → the pattern its value must match whole.
    pub allowed: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Catalog {
    pub team: String,
    pub policy_revision: String,
    pub sizes: Vec<SizeOffer>,
    /// Target aliases to use as `target`.
    pub targets: Vec<String>,
    pub versions: Vec<String>,
    pub default_version: String,
    pub azs: Vec<String>,
    pub default_az: String,
    /// Allowed time zones; absent when any valid one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zones: Option<Vec<String>>,
    pub default_time_zone: String,
    pub labels: LabelOffer,
    /// System tags injected into every instance of the team.
    pub sys_tags: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// What the team uses now, next to `quota`.
    pub usage: Cost,
}

fn catalog_of(policy: &Policy, team_name: &str, usage: Cost) -> Option<Catalog> {
    let team = policy.team(team_name)?;
    let defaults = &policy.file.defaults;
    let sizes = team
        .allowed_sizes
        .iter()
        .filter_map(|name| policy.size(name).map(|size| (name, size)))
        .map(|(name, size)| SizeOffer {
            name: name.clone(),
            description: size.description.clone(),
            ha_mode: size.ha_mode,
            fe: NodeGroup {
                flavor_id: size.fe_flavor_id.clone(),
                count: size.fe_count,
                volume_gb: size.fe_volume_gb,
            },
            be: NodeGroup {
                flavor_id: size.be_flavor_id.clone(),
                count: size.be_count,
                volume_gb: size.be_volume_gb,
            },
            io_type: size.io_type(defaults).to_owned(),
            nodes: size.nodes(),
            storage_gb: size.storage_gb(),
        })
        .collect();
    Some(Catalog {
        team: team_name.to_owned(),
        policy_revision: policy.revision.clone(),
        sizes,
        targets: team.targets.keys().cloned().collect(),
        versions: team
            .versions(defaults)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        default_version: defaults.engine_version.clone(),
        azs: team.azs(defaults).into_iter().map(str::to_owned).collect(),
        default_az: defaults.az_code.clone(),
        time_zones: team.allowed_time_zones.clone(),
        default_time_zone: defaults.time_zone.clone(),
        labels: LabelOffer {
            max_count: team.labels.max_count,
            allowed: team.labels.allowed.clone(),
        },
        sys_tags: team.injected_tags().into_iter().collect(),
        quota: team.quota,
        usage,
    })
}

/// What your team may order.
///
/// Sizes with their FE/BE shape and storage, engine versions, AZs, time zones, targets,
/// label rules and quota limits, from the policy in force.
#[utoipa::path(get, path = "/v1/catalog", tag = "instances",
    params(("X-Team" = Option<String>, Header, description = "The team to show, when you are in several")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your team's catalog", body = Catalog),
        (status = 400, description = "You are in several teams and named none (`team_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid bearer token (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member of the named team (`not_team_member`), or the team is not in the policy (`policy_denied`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The identity provider or the gateway's database is unreachable (`identity_provider_unavailable`, `storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn catalog(
    request: HttpRequest,
    employee: web::ReqData<Employee>,
    state: web::Data<GatewayState>,
) -> HttpResponse {
    let policy = state.policy.current();
    let team = match requested_team(&request, None)
        .and_then(|t| select_team(&employee, t.as_deref(), &policy))
    {
        Ok(team) => team,
        Err(problem) => return problem.response_for(&request),
    };
    let usage = match state.store.usage(&team).await {
        Ok(usage) => usage,
        Err(error) => return Problem::from(&error).response_for(&request),
    };
    match catalog_of(&policy, &team, usage) {
        Some(catalog) => HttpResponse::Ok().json(catalog),
        None => Problem::new(
            crate::error::ErrorCode::PolicyDenied,
            format!("team `{team}` is not declared in the policy"),
        )
        .response_for(&request),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMembership {
    pub name: String,
    /// Whether the policy declares this team (only declared teams can order).
    pub known: bool,
    /// The team's limits, when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// What the team uses now (declared teams only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Cost>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub teams: Vec<TeamMembership>,
    pub admin: bool,
    pub policy_revision: String,
}

/// Who you are, as the gateway sees you.
#[utoipa::path(get, path = "/v1/me", tag = "instances",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your identity, teams (with quota and usage) and admin status", body = Me),
        (status = 401, description = "Missing or invalid bearer token (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The identity provider or the gateway's database is unreachable (`identity_provider_unavailable`, `storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn me(
    request: HttpRequest,
    employee: web::ReqData<Employee>,
    state: web::Data<GatewayState>,
) -> HttpResponse {
    let policy = state.policy.current();
    let employee = employee.into_inner();
    let mut teams = Vec::new();
    for name in &employee.teams {
        let team = policy.team(name);
        let usage = match team {
            Some(_) => match state.store.usage(name).await {
                Ok(usage) => Some(usage),
                Err(error) => return Problem::from(&error).response_for(&request),
            },
            None => None,
        };
        teams.push(TeamMembership {
            name: name.clone(),
            known: team.is_some(),
            quota: team.and_then(|t| t.quota),
            usage,
        });
    }
    HttpResponse::Ok().json(Me {
        teams,
        subject: employee.subject,
        email: employee.email,
        admin: employee.admin,
        policy_revision: policy.revision.clone(),
    })
}
