//! What every TaurusDB call checks first: the token, the project, the TaurusDB instance.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::{Simulator, dbs_error};

pub(super) const INSTANCE_NOT_FOUND: &str = "DBS.05000044";
const TOKEN_INVALID: &str = "APIGW.0301";

/// The caller's IAM token (`X-Auth-Token`).
pub(super) fn request_token(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
}

/// What every TaurusDB call checks first: the token, the project, the TaurusDB instance.
pub(super) fn check_access(
    simulator: &Simulator,
    token: Option<&str>,
    project_id: &str,
    instance_id: &str,
) -> Result<(), HttpResponse> {
    check_project(simulator, token, project_id)?;
    if !simulator
        .config
        .taurusdb_instances
        .iter()
        .any(|i| i == instance_id)
    {
        return Err(dbs_error(
            StatusCode::BAD_REQUEST,
            INSTANCE_NOT_FOUND,
            format!("The instance {instance_id} does not exist."),
        ));
    }
    Ok(())
}

/// The token and the project, for calls about the project rather than one instance.
pub(super) fn check_project(
    simulator: &Simulator,
    token: Option<&str>,
    project_id: &str,
) -> Result<(), HttpResponse> {
    let config = &simulator.config;
    let state = simulator.state();
    let token = token
        .and_then(|t| state.tokens.get(t))
        .filter(|t| t.expires_at > chrono::Utc::now());
    let Some(token) = token else {
        return Err(dbs_error(
            StatusCode::UNAUTHORIZED,
            TOKEN_INVALID,
            "Incorrect IAM authentication information: the token is missing, invalid or expired.",
        ));
    };
    if project_id != config.project_id || token.project_id != project_id {
        return Err(dbs_error(
            StatusCode::NOT_FOUND,
            "APIGW.0101",
            "The API does not exist or has not been published in the environment.",
        ));
    }
    Ok(())
}
