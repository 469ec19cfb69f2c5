//! Browser sign-in: the portal's settings, the relayed discovery document, and the demo
//! identity provider's authorization-code flow with PKCE, as the portal and Swagger UI run it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use starrocks_gateway::demo::DEMO_PORTAL_CLIENT;

use crate::helpers::{TestApp, json_of, problem};

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ))
}

const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";

/// The form fields of an authorization request from the portal.
fn authorize_fields(app: &TestApp, challenge: &str, method: &str) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", DEMO_PORTAL_CLIENT),
        ("redirect_uri", &format!("{}/", app.stack.gateway_url)),
        ("scope", "openid profile email"),
        ("state", "the-state"),
        ("nonce", "the-nonce"),
        ("code_challenge", challenge),
        ("code_challenge_method", method),
    ]
    .iter()
    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
    .collect()
}

/// Chooses `login` on the sign-in page; the redirect's query.
async fn choose(app: &TestApp, fields: &[(String, String)], login: &str) -> url::Url {
    let mut form = fields.to_vec();
    form.push(("login".into(), login.into()));
    let response = browser()
        .post(format!("{}/authorize", app.stack.idp_url))
        .form(&form)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 303);
    response.headers()["location"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a URL")
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

async fn exchange(app: &TestApp, code: &str, verifier: &str) -> reqwest::Response {
    browser()
        .post(format!("{}/token", app.stack.idp_url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &format!("{}/", app.stack.gateway_url)),
            ("client_id", DEMO_PORTAL_CLIENT),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("answer")
}

#[tokio::test]
async fn the_portal_learns_how_to_sign_in_and_where_the_provider_is() {
    let app = TestApp::spawn().await;

    let config = json_of(app.get("/v1/portal/config").await).await;
    let discovery = app.get("/v1/portal/openid-configuration").await;

    let sign_in = &config["sign_in"];
    assert_eq!(sign_in["client_id"], DEMO_PORTAL_CLIENT);
    assert_eq!(sign_in["issuer"], app.stack.idp_url);
    assert_eq!(sign_in["redirect_path"], "/");
    assert_eq!(sign_in["discovery"], "/v1/portal/openid-configuration");
    assert_eq!(discovery.status(), 200);
    let discovery: Value = discovery.json().await.expect("JSON");
    assert_eq!(
        discovery["authorization_endpoint"],
        format!("{}/authorize", app.stack.idp_url)
    );
    assert_eq!(discovery["code_challenge_methods_supported"][0], "S256");

    let page = app.get("/").await;
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        policy.contains(&format!("connect-src 'self' {}", app.stack.idp_url)),
        "{policy}"
    );
}

#[tokio::test]
async fn without_a_portal_client_sign_in_is_off() {
    let app = TestApp::builder()
        .settings(|s| s.portal.client_id = None)
        .spawn()
        .await;

    let config = json_of(app.get("/v1/portal/config").await).await;
    let discovery = app.get("/v1/portal/openid-configuration").await;

    assert_eq!(config["sign_in"], Value::Null);
    assert_eq!(discovery.status(), 404);
}

/// A provider that does not answer is a clear `503` naming what is missing.
#[tokio::test]
async fn an_unreachable_provider_makes_the_relayed_discovery_a_503() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address");
    let app = TestApp::builder()
        .settings(move |s| s.auth.issuer = format!("http://{closed_port}"))
        .spawn()
        .await;

    let first = app.get("/v1/portal/openid-configuration").await;
    let status = first.status();
    let body = problem(first).await;

    assert_eq!(status, 503);
    assert_eq!(body["code"], "identity_provider_unavailable", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("discovery document")),
        "{body}"
    );
}

#[tokio::test]
async fn an_employee_signs_in_with_pkce_and_the_token_works_at_the_gateway() {
    let app = TestApp::spawn().await;
    let fields = authorize_fields(&app, &challenge_of(VERIFIER), "S256");

    let page = browser()
        .get(format!("{}/authorize", app.stack.idp_url))
        .query(&fields)
        .send()
        .await
        .expect("the sign-in page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("HTML");
    assert!(
        html.contains("Continue as <strong>alice</strong>"),
        "{html}"
    );
    let back = choose(&app, &fields, "erin").await;
    assert!(
        back.as_str()
            .starts_with(&format!("{}/?", app.stack.gateway_url))
    );
    assert_eq!(param(&back, "state").as_deref(), Some("the-state"));
    let code = param(&back, "code").expect("a code");
    let answer = exchange(&app, &code, VERIFIER).await;
    assert_eq!(answer.status(), 200);
    let tokens: Value = answer.json().await.expect("JSON");
    let access = tokens["access_token"].as_str().expect("an access token");

    let me = json_of(
        app.authed(reqwest::Method::GET, "/v1/me", access)
            .send()
            .await
            .expect("me"),
    )
    .await;
    assert_eq!(me["subject"], "erin");
    assert_eq!(me["admin"], true, "the chosen employee's roles come along");
    assert!(tokens["id_token"].is_string());
    let reused = exchange(&app, &code, VERIFIER).await;
    assert_eq!(reused.status(), 400, "a code is used once");
}

#[tokio::test]
async fn a_wrong_verifier_plain_pkce_and_unregistered_redirects_are_refused() {
    let app = TestApp::spawn().await;
    let fields = authorize_fields(&app, &challenge_of(VERIFIER), "S256");

    let code = param(&choose(&app, &fields, "alice").await, "code").expect("a code");
    let wrong = exchange(
        &app,
        &code,
        "another-verifier-of-at-least-forty-three-characters-000",
    )
    .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(json_of(wrong).await["error"], "invalid_grant");

    let plain = authorize_fields(&app, &challenge_of(VERIFIER), "plain");
    let refused = choose(&app, &plain, "alice").await;
    assert_eq!(param(&refused, "error").as_deref(), Some("invalid_request"));
    assert_eq!(param(&refused, "code"), None);

    let mut elsewhere = fields.clone();
    elsewhere[2].1 = "https://attacker.example/".into();
    let page = browser()
        .get(format!("{}/authorize", app.stack.idp_url))
        .query(&elsewhere)
        .send()
        .await
        .expect("answer");
    assert_eq!(
        page.status(),
        400,
        "never redirected to an unregistered URI"
    );
    assert!(page.headers().get("location").is_none());
}

#[tokio::test]
async fn swagger_ui_signs_in_with_pkce_and_the_spec_offers_it() {
    let app = TestApp::spawn().await;

    let initializer = app
        .get("/swagger-ui/swagger-initializer.js")
        .await
        .text()
        .await
        .expect("text");
    let spec = json_of(app.get("/openapi.json").await).await;

    assert!(
        initializer.contains("\"usePkceWithAuthorizationCodeGrant\": true"),
        "{initializer}"
    );
    assert!(initializer.contains(DEMO_PORTAL_CLIENT), "{initializer}");
    assert_eq!(
        spec["components"]["securitySchemes"]["oidc"]["openIdConnectUrl"],
        "/v1/portal/openid-configuration"
    );
    let me = &spec["paths"]["/v1/me"]["get"]["security"];
    assert!(
        me.as_array()
            .is_some_and(|all| all.iter().any(|r| r.get("oidc").is_some())),
        "{me}"
    );
}
