//! OpenID Connect sign-in for browsers: the authorization-code flow with PKCE (RFC 7636,
//! `S256` only) for public clients such as the portal and Swagger UI. `GET /authorize` shows
//! a page for choosing one of the offered employees (the demo has no passwords); choosing
//! one redirects back with a one-time code, which `POST /token` exchanges, given the
//! verifier, for an access token (and an ID token).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::DemoIdp;

/// How long a code may wait for its exchange.
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// Lifetime of tokens issued to browsers.
const TOKEN_TTL_SECS: u64 = 3_600;

/// An employee the sign-in page offers.
#[derive(Debug, Clone)]
pub struct LoginChoice {
    pub sub: String,
    pub teams: Vec<String>,
    pub roles: Vec<String>,
    /// Shown beside the name: why this employee is interesting.
    pub note: String,
}

/// A public client: who may ask for codes, and where they may be sent.
#[derive(Debug, Clone)]
struct PublicClient {
    redirect_uris: Vec<String>,
}

#[derive(Debug)]
struct IssuedCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    scope: String,
    login: LoginChoice,
    issued: Instant,
}

/// The sign-in state: offered employees, registered clients, codes waiting for exchange.
#[derive(Debug, Default)]
pub(super) struct Flows {
    logins: Vec<LoginChoice>,
    clients: HashMap<String, PublicClient>,
    codes: HashMap<String, IssuedCode>,
}

impl Flows {
    pub(super) fn offer(&mut self, logins: Vec<LoginChoice>) {
        self.logins = logins;
    }

    pub(super) fn register(&mut self, client_id: &str, redirect_uris: Vec<String>) {
        self.clients
            .insert(client_id.to_owned(), PublicClient { redirect_uris });
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct AuthorizeRequest {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// Set by the sign-in page's form: the chosen employee.
    login: Option<String>,
}

/// A page of this provider. Its forms post here and are then redirected to `client_origin`,
/// which `form-action` must allow too (browsers enforce it along redirects).
fn page(
    status: actix_web::http::StatusCode,
    title: &str,
    body: &str,
    client_origin: &str,
) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((
            "Content-Security-Policy",
            format!(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {client_origin}; \
                 frame-ancestors 'none'"
            ),
        ))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
            title = html_escape::encode_text(title),
        ))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1b1f24}\
main{max-width:32rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:.5rem}\
h1{font-size:1.4rem}ul{list-style:none;padding:0}li{margin:.5rem 0}\
button{width:100%;text-align:left;padding:.75rem;font:inherit;border:1px solid #5b6672;border-radius:.4rem;background:#fff;cursor:pointer}\
button:hover,button:focus-visible{background:#e8f0fe;outline:3px solid #1a56db;outline-offset:2px}\
.note{display:block;color:#4a5560;font-size:.9rem}";

/// A refusal shown to the person, for requests that must not be redirected (an unknown
/// client or redirect URI: RFC 6749 §4.1.2.1).
fn refuse(message: &str) -> HttpResponse {
    page(
        actix_web::http::StatusCode::BAD_REQUEST,
        "Sign-in refused",
        &format!(
            "<h1>Sign-in refused</h1><p>{}</p>",
            html_escape::encode_text(message)
        ),
        "",
    )
}

/// The client's redirect URI with `params` appended.
fn redirect(redirect_uri: &str, params: &[(&str, &str)]) -> HttpResponse {
    let mut target = match Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => return refuse("the redirect URI is not a URL"),
    };
    target.query_pairs_mut().extend_pairs(params);
    HttpResponse::SeeOther()
        .insert_header((LOCATION, target.as_str()))
        .insert_header((CACHE_CONTROL, "no-store"))
        .finish()
}

/// Checks what must hold before anything may be redirected; the client's redirect URI.
fn registered_redirect(flows: &Flows, request: &AuthorizeRequest) -> Result<String, HttpResponse> {
    let client_id = request.client_id.as_deref().unwrap_or_default();
    let Some(client) = flows.clients.get(client_id) else {
        return Err(refuse(&format!(
            "the client `{client_id}` is not registered"
        )));
    };
    let redirect_uri = request.redirect_uri.as_deref().unwrap_or_default();
    if !client.redirect_uris.iter().any(|uri| uri == redirect_uri) {
        return Err(refuse(&format!(
            "`{redirect_uri}` is not a redirect URI of the client `{client_id}`"
        )));
    }
    Ok(redirect_uri.to_owned())
}

/// The errors RFC 6749 §4.1.2.1 and RFC 7636 §4.4.1 send back to the client.
fn invalid(
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> HttpResponse {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect(redirect_uri, &params)
}

fn checked(request: &AuthorizeRequest, redirect_uri: &str) -> Result<String, HttpResponse> {
    let state = request.state.as_deref();
    if request.response_type.as_deref() != Some("code") {
        return Err(invalid(
            redirect_uri,
            state,
            "unsupported_response_type",
            "only the authorization code flow (response_type=code) is supported",
        ));
    }
    if request.code_challenge_method.as_deref() != Some("S256") {
        return Err(invalid(
            redirect_uri,
            state,
            "invalid_request",
            "PKCE is required, with code_challenge_method=S256",
        ));
    }
    let challenge = request.code_challenge.as_deref().unwrap_or_default();
    let well_formed = (43..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(invalid(
            redirect_uri,
            state,
            "invalid_request",
            "code_challenge must be a base64url SHA-256 digest",
        ));
    }
    Ok(challenge.to_owned())
}

/// `GET /authorize`: the employee chooser.
pub(super) async fn authorize(
    idp: web::Data<DemoIdp>,
    request: web::Query<AuthorizeRequest>,
) -> HttpResponse {
    let flows = idp.flows();
    let redirect_uri = match registered_redirect(&flows, &request) {
        Ok(uri) => uri,
        Err(refusal) => return refusal,
    };
    if let Err(refusal) = checked(&request, &redirect_uri) {
        return refusal;
    }
    let hidden: String = [
        ("response_type", &request.response_type),
        ("client_id", &request.client_id),
        ("redirect_uri", &request.redirect_uri),
        ("scope", &request.scope),
        ("state", &request.state),
        ("nonce", &request.nonce),
        ("code_challenge", &request.code_challenge),
        ("code_challenge_method", &request.code_challenge_method),
    ]
    .iter()
    .filter_map(|(name, value)| {
        value.as_deref().map(|value| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                html_escape::encode_double_quoted_attribute(value)
            )
        })
    })
    .collect();
    let choices: String = flows
        .logins
        .iter()
        .map(|login| {
            format!(
                "<li><form method=\"post\" action=\"authorize\">{hidden}\
                 <button type=\"submit\" name=\"login\" value=\"{sub}\">Continue as <strong>{sub}</strong>\
                 <span class=\"note\">{note}</span></button></form></li>",
                sub = html_escape::encode_double_quoted_attribute(&login.sub),
                note = html_escape::encode_text(&login.note),
            )
        })
        .collect();
    let client_origin = Url::parse(&redirect_uri)
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_default();
    page(
        actix_web::http::StatusCode::OK,
        "Sign in to the demo",
        &format!(
            "<h1>Sign in to the demo</h1><p>The demo identity provider has no passwords: \
             choose who you are.</p><ul>{choices}</ul>"
        ),
        &client_origin,
    )
}

/// `POST /authorize`: the choice made; redirects back with a one-time code.
pub(super) async fn choose(
    idp: web::Data<DemoIdp>,
    request: web::Form<AuthorizeRequest>,
) -> HttpResponse {
    let mut flows = idp.flows();
    let redirect_uri = match registered_redirect(&flows, &request) {
        Ok(uri) => uri,
        Err(refusal) => return refusal,
    };
    let challenge = match checked(&request, &redirect_uri) {
        Ok(challenge) => challenge,
        Err(refusal) => return refusal,
    };
    let Some(login) = flows
        .logins
        .iter()
        .find(|login| Some(login.sub.as_str()) == request.login.as_deref())
        .cloned()
    else {
        return invalid(
            &redirect_uri,
            request.state.as_deref(),
            "access_denied",
            "no such employee",
        );
    };
    flows
        .codes
        .retain(|_, code| code.issued.elapsed() < CODE_LIFETIME);
    let code = random_token();
    flows.codes.insert(
        code.clone(),
        IssuedCode {
            client_id: request.client_id.clone().unwrap_or_default(),
            redirect_uri: redirect_uri.clone(),
            challenge,
            nonce: request.nonce.clone(),
            scope: request.scope.clone().unwrap_or_default(),
            login,
            issued: Instant::now(),
        },
    );
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = request.state.as_deref() {
        params.push(("state", state));
    }
    redirect(&redirect_uri, &params)
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
}

/// RFC 6749 §5.2 error answers.
fn token_error(error: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(json!({"error": error, "error_description": description}))
}

/// `POST /token`: a code and its verifier for tokens.
pub(super) async fn exchange(
    idp: web::Data<DemoIdp>,
    request: web::Form<TokenRequest>,
) -> HttpResponse {
    if request.grant_type.as_deref() != Some("authorization_code") {
        return token_error(
            "unsupported_grant_type",
            "only grant_type=authorization_code is supported",
        );
    }
    // A code is used once, whatever the outcome (RFC 6749 §4.1.2).
    let issued = idp
        .flows()
        .codes
        .remove(request.code.as_deref().unwrap_or_default());
    let Some(issued) = issued.filter(|code| code.issued.elapsed() < CODE_LIFETIME) else {
        return token_error("invalid_grant", "the code is unknown, used or expired");
    };
    if request.client_id.as_deref() != Some(issued.client_id.as_str())
        || request.redirect_uri.as_deref() != Some(issued.redirect_uri.as_str())
    {
        return token_error(
            "invalid_grant",
            "the code was issued to another client or redirect URI",
        );
    }
    let verifier = request.code_verifier.as_deref().unwrap_or_default();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    if !(43..=128).contains(&verifier.len()) || URL_SAFE_NO_PAD.encode(digest) != issued.challenge {
        return token_error(
            "invalid_grant",
            "the code_verifier does not match the code_challenge",
        );
    }
    let login = &issued.login;
    let teams: Vec<&str> = login.teams.iter().map(String::as_str).collect();
    let roles: Vec<&str> = login.roles.iter().map(String::as_str).collect();
    let email = format!("{}@example.com", login.sub);
    let tokens = idp
        .mint_for(&login.sub, &email, &teams, &roles, TOKEN_TTL_SECS)
        .and_then(|access| {
            let id = idp.id_token(
                &login.sub,
                &email,
                &issued.client_id,
                issued.nonce.as_deref(),
            )?;
            Ok((access, id))
        });
    match tokens {
        Ok((access_token, id_token)) => HttpResponse::Ok()
            .insert_header((CACHE_CONTROL, "no-store"))
            .json(json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": TOKEN_TTL_SECS,
                "id_token": id_token,
                "scope": issued.scope,
            })),
        Err(error) => HttpResponse::InternalServerError().json(json!({
            "error": "server_error", "error_description": error.to_string(),
        })),
    }
}
