//! `POST /v1/starrocks/dry-run`.

use actix_web::web;

use super::wire::CreateInstanceRequest;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ActingTeam, JsonBody};
use crate::http::request_id::RequestId;
use crate::pipeline::authenticate::Employee;
use crate::service::Gateway;
use crate::service::dry_run::DryRunResponse;

/// Evaluate a create without side effects.
///
/// Returns the full policy decision (every rule, its mode and outcome, the values filled in),
/// whether the team's quota would admit it, and, when allowed, the exact call a create would
/// send, password redacted. Nothing is reserved and nothing is sent to the cloud.
#[utoipa::path(
    post,
    path = "/starrocks/dry-run",
    tag = "instances",
    request_body = CreateInstanceRequest,
    params(("X-Team" = Option<String>, Header, description = "The team to act for, when you are in several")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The decision, allowed or not, and the call a create would make", body = DryRunResponse),
        (status = 400, description = "Malformed body, an invalid field, or no team chosen (`malformed_body`, `invalid_field`, `team_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member of the named team (`not_team_member`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The identity provider or the gateway's database is unreachable (`identity_provider_unavailable`, `storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn dry_run(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    request_id: RequestId,
    team: ActingTeam,
    body: JsonBody<CreateInstanceRequest>,
) -> Result<web::Json<DryRunResponse>, ApiError> {
    let input = body.0.into_input(team.0.as_deref())?;
    let answer = gateway
        .dry_run(&employee, input, request_id.as_str())
        .await?;
    Ok(web::Json(answer))
}
