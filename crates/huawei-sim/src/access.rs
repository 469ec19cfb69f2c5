//! What every TaurusDB call checks first: the caller (an IAM token, or an AK/SK signature),
//! the project, the TaurusDB instance.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::{Simulator, dbs_error, signature};

pub(super) const INSTANCE_NOT_FOUND: &str = "DBS.05000044";
const CREDENTIALS_INVALID: &str = "APIGW.0301";
const NO_SUCH_API: &str = "APIGW.0101";

/// What every TaurusDB call checks first: the caller, the project, the TaurusDB instance.
/// `body` is the request's body, which an AK/SK signature covers.
pub(super) fn check_access(
    simulator: &Simulator,
    request: &HttpRequest,
    body: &[u8],
    project_id: &str,
    instance_id: &str,
) -> Result<(), HttpResponse> {
    check_project(simulator, request, body, project_id)?;
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

/// The caller and the project, for calls about the project rather than one instance.
pub(super) fn check_project(
    simulator: &Simulator,
    request: &HttpRequest,
    body: &[u8],
    project_id: &str,
) -> Result<(), HttpResponse> {
    let no_such_api = || {
        dbs_error(
            StatusCode::NOT_FOUND,
            NO_SUCH_API,
            "The API does not exist or has not been published in the environment.",
        )
    };
    let refused = |why: &str| {
        dbs_error(
            StatusCode::UNAUTHORIZED,
            CREDENTIALS_INVALID,
            format!("Incorrect IAM authentication information: {why}."),
        )
    };
    let config = &simulator.config;
    let scoped_to = match signature::signed(request) {
        Some(signed) => {
            let signed = signed.map_err(|why| refused(&why))?;
            let secret = config
                .access_keys
                .iter()
                .find(|(id, _)| id == signed.access_key)
                .map(|(_, secret)| secret.as_str())
                .ok_or_else(|| refused("the access key does not exist"))?;
            if let Err(why) = signed.verify(request, body, secret, chrono::Utc::now()) {
                simulator.state().signatures_refused += 1;
                return Err(refused(&why));
            }
            simulator.state().signed_calls += 1;
            request
                .headers()
                .get("x-project-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(&config.project_id)
                .to_owned()
        }
        None => {
            let state = simulator.state();
            let token = request
                .headers()
                .get("x-auth-token")
                .and_then(|v| v.to_str().ok())
                .and_then(|t| state.tokens.get(t))
                .filter(|t| t.expires_at > chrono::Utc::now())
                .ok_or_else(|| refused("the token is missing, invalid or expired"))?;
            token.project_id.clone()
        }
    };
    if project_id != config.project_id || scoped_to != project_id {
        return Err(no_such_api());
    }
    Ok(())
}
