//! `POST /v3/auth/tokens`: project-scoped tokens for the password method.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;

use super::{IssuedToken, Simulator};

#[derive(Deserialize)]
struct AuthRequest {
    auth: Auth,
}

#[derive(Deserialize)]
struct Auth {
    identity: Identity,
    scope: Option<Scope>,
}

#[derive(Deserialize)]
struct Identity {
    methods: Vec<String>,
    password: Option<PasswordIdentity>,
}

#[derive(Deserialize)]
struct PasswordIdentity {
    user: User,
}

#[derive(Deserialize)]
struct User {
    name: String,
    password: String,
    domain: Domain,
}

#[derive(Deserialize)]
struct Domain {
    name: String,
}

#[derive(Deserialize)]
struct Scope {
    project: Option<ProjectScope>,
}

#[derive(Deserialize)]
struct ProjectScope {
    id: Option<String>,
    name: Option<String>,
}

/// IAM's own error shape, which differs from TaurusDB's.
fn iam_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": {"code": status.as_u16().to_string(), "message": message, "title": status.canonical_reason()}
    }))
}

/// Real tokens are PKI blobs of several KB; a long random one keeps header sizes honest.
fn new_token() -> String {
    let mut bytes = vec![0u8; 1536];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "MIIST{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

pub(super) async fn issue_token(simulator: web::Data<Simulator>, body: web::Bytes) -> HttpResponse {
    let Ok(request) = serde_json::from_slice::<AuthRequest>(&body) else {
        return iam_error(
            StatusCode::BAD_REQUEST,
            "The request body is not a valid auth request.",
        );
    };
    let auth = request.auth;
    let config = &simulator.config;
    let Some(password) = auth
        .identity
        .password
        .filter(|_| auth.identity.methods.iter().any(|m| m == "password"))
    else {
        return iam_error(
            StatusCode::BAD_REQUEST,
            "Only the password method is supported by this simulator.",
        );
    };
    let user = password.user;
    let refused = {
        let faults = &mut simulator.state().faults;
        let refused = faults.refuse_next_tokens > 0;
        faults.refuse_next_tokens = faults.refuse_next_tokens.saturating_sub(1);
        refused
    };
    if refused
        || user.name != config.user
        || user.password != config.password
        || user.domain.name != config.domain
    {
        return iam_error(
            StatusCode::UNAUTHORIZED,
            "The username or password is wrong.",
        );
    }
    let Some(project) = auth.scope.and_then(|s| s.project) else {
        return iam_error(
            StatusCode::BAD_REQUEST,
            "A project scope is required for TaurusDB.",
        );
    };
    let scoped = project.id.as_deref() == Some(config.project_id.as_str())
        || project.name.as_deref() == Some(config.region.as_str());
    if !scoped {
        return iam_error(
            StatusCode::UNAUTHORIZED,
            "The project in the scope does not exist.",
        );
    }

    let issued_at = chrono::Utc::now();
    let lifetime =
        chrono::Duration::from_std(config.token_lifetime).unwrap_or(chrono::Duration::hours(24));
    let expires_at = issued_at + lifetime;
    let token = new_token();
    {
        let mut state = simulator.state();
        state.tokens_issued += 1;
        state.tokens.insert(
            token.clone(),
            IssuedToken {
                project_id: config.project_id.clone(),
                expires_at,
            },
        );
    }
    let format = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    HttpResponse::Created()
        .insert_header(("X-Subject-Token", token))
        .json(json!({
            "token": {
                "expires_at": format(expires_at),
                "issued_at": format(issued_at),
                "methods": ["password"],
                "project": {
                    "id": config.project_id,
                    "name": config.region,
                    "domain": {"id": "d0000000000000000000000000000001", "name": config.domain},
                },
                "roles": [{"id": "0", "name": "te_admin"}],
                "user": {
                    "id": "u0000000000000000000000000000001",
                    "name": config.user,
                    "domain": {"id": "d0000000000000000000000000000001", "name": config.domain},
                    "password_expires_at": "",
                },
                "catalog": [],
            }
        }))
}
