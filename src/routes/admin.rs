//! Platform-admin endpoints.

use actix_web::{HttpRequest, HttpResponse, post, web};

use crate::error::{ErrorCode, Problem};
use crate::pipeline::authenticate::Employee;
use crate::policy::{PolicyError, Reloaded};
use crate::startup::GatewayState;

/// Reload the policy file.
///
/// The new file is validated completely before it replaces the policy in force; a broken file
/// leaves the last good policy serving and its error is returned here.
#[utoipa::path(post, path = "/v1/admin/policy/reload", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The file is valid and in force", body = Reloaded),
        (status = 401, description = "Missing or invalid bearer token (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Platform admins only (`admin_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The policy was not loaded from a file (`policy_not_reloadable`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The file is invalid; the previous policy stays in force (`policy_invalid`)", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/admin/policy/reload")]
pub async fn reload_policy(
    request: HttpRequest,
    employee: web::ReqData<Employee>,
    state: web::Data<GatewayState>,
) -> HttpResponse {
    if !employee.admin {
        return Problem::new(
            ErrorCode::AdminRequired,
            "reloading the policy is reserved to platform admins",
        )
        .response_for(&request);
    }
    match state.policy.reload() {
        Ok(reloaded) => {
            tracing::info!(
                employee.subject = %employee.subject,
                policy.revision = %reloaded.revision,
                policy.previous_revision = %reloaded.previous_revision,
                "policy reloaded by an admin"
            );
            HttpResponse::Ok().json(reloaded)
        }
        Err(PolicyError::NotReloadable) => Problem::new(
            ErrorCode::PolicyNotReloadable,
            PolicyError::NotReloadable.to_string(),
        )
        .response_for(&request),
        Err(error) => {
            tracing::error!(error = %error, "policy reload refused; the previous policy stays in force");
            Problem::new(
                ErrorCode::PolicyInvalid,
                format!("{error}; the previous policy stays in force"),
            )
            .response_for(&request)
        }
    }
}
