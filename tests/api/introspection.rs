//! Opaque access tokens, validated by RFC 7662 introspection against a small endpoint that
//! answers as told and counts its calls.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use secrecy::SecretString;
use serde_json::{Value, json};
use starrocks_gateway::config::IntrospectionSettings;

use crate::helpers::{TestApp, now, problem};

const CLIENT_ID: &str = "starrocks-gateway";
const CLIENT_SECRET: &str = "introspection-test-secret";

/// The endpoint's state: its answer (`None`: `500`) and the calls it took.
#[derive(Default)]
struct Endpoint {
    answer: Mutex<Option<Value>>,
    calls: AtomicU64,
    authorized: AtomicU64,
}

impl Endpoint {
    fn answer(&self, answer: Option<Value>) {
        *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = answer;
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn introspect(
    endpoint: web::Data<Endpoint>,
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    endpoint.calls.fetch_add(1, Ordering::SeqCst);
    let expected = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{CLIENT_ID}:{CLIENT_SECRET}")
        )
    );
    if request
        .headers()
        .get("authorization")
        .is_some_and(|value| value.as_bytes() == expected.as_bytes())
        && form
            .iter()
            .any(|(name, value)| name == "token" && value == "opaque-token")
    {
        endpoint.authorized.fetch_add(1, Ordering::SeqCst);
    }
    let answer = endpoint
        .answer
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    match answer {
        Some(answer) => HttpResponse::Ok().json(answer),
        None => HttpResponse::InternalServerError().finish(),
    }
}

/// Starts the endpoint; returns its state and URL.
fn endpoint() -> (Arc<Endpoint>, String) {
    let state = Arc::new(Endpoint::default());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/introspect",
        listener.local_addr().expect("address")
    );
    let data = web::Data::from(state.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/introspect", web::post().to(introspect))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    (state, url)
}

fn active(app: &TestApp, exp: i64) -> Value {
    json!({
        "active": true, "sub": "alice", "team": "analytics", "email": "alice@example.com",
        "iss": app.stack.idp.issuer(), "aud": "starrocks-gateway", "exp": exp, "iat": now(),
    })
}

async fn gateway(url: &str, cache_secs: u64) -> TestApp {
    TestApp::builder()
        .settings(|s| {
            s.auth.introspection = Some(IntrospectionSettings {
                endpoint: url.parse().expect("URL"),
                client_id: CLIENT_ID.into(),
                client_secret: SecretString::from(CLIENT_SECRET),
                timeout_ms: 1_000,
            });
            s.auth.introspection_cache_secs = cache_secs;
        })
        .spawn()
        .await
}

#[tokio::test]
async fn an_active_opaque_token_is_accepted_and_its_answer_remembered() {
    let (endpoint, url) = endpoint();
    let app = gateway(&url, 60).await;
    endpoint.answer(Some(active(&app, now() + 600)));

    let first = app.me("opaque-token").await;
    let second = app.me("opaque-token").await;

    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.expect("JSON");
    assert_eq!(body["subject"], "alice");
    assert_eq!(second.status(), 200);
    assert_eq!(
        endpoint.calls(),
        1,
        "the second request used the remembered answer"
    );
    assert_eq!(
        endpoint.authorized.load(Ordering::SeqCst),
        1,
        "the gateway authenticated as its client and sent the token"
    );
    // A JWT still goes the JWT way.
    assert_eq!(app.me(&app.alice()).await.status(), 200);
    assert_eq!(endpoint.calls(), 1);
}

#[tokio::test]
async fn an_inactive_token_is_401() {
    let (endpoint, url) = endpoint();
    let app = gateway(&url, 60).await;
    endpoint.answer(Some(json!({"active": false})));

    let response = app.me("opaque-token").await;

    assert_eq!(response.status(), 401);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let body = problem(response).await;
    assert_eq!(body["code"], "unauthenticated");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("not active")),
        "{body}"
    );
}

#[tokio::test]
async fn a_revoked_token_stops_working_once_the_cache_time_has_passed() {
    let (endpoint, url) = endpoint();
    let app = gateway(&url, 1).await;
    endpoint.answer(Some(active(&app, now() + 600)));
    assert_eq!(app.me("opaque-token").await.status(), 200);

    endpoint.answer(Some(json!({"active": false})));
    let within = app.me("opaque-token").await.status();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let after = app.me("opaque-token").await.status();

    assert_eq!(within, 200, "remembered for introspection_cache_secs");
    assert_eq!(after, 401);
    assert_eq!(endpoint.calls(), 2);
}

#[tokio::test]
async fn an_answer_for_another_audience_or_an_expired_token_is_401() {
    let (endpoint, url) = endpoint();
    let app = gateway(&url, 60).await;
    let mut elsewhere = active(&app, now() + 600);
    elsewhere["aud"] = json!("another-service");
    endpoint.answer(Some(elsewhere));
    let wrong_audience = app.me("opaque-token").await;
    assert_eq!(wrong_audience.status(), 401);
    assert!(
        problem(wrong_audience).await["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("audience"))
    );

    endpoint.answer(Some(active(&app, now() - 3_600)));
    let expired = app.me("another-opaque-token").await;
    assert_eq!(expired.status(), 401);
    assert!(
        problem(expired).await["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("expired"))
    );
}

#[tokio::test]
async fn an_unreachable_or_failing_endpoint_is_503_and_not_remembered() {
    let (endpoint, url) = endpoint();
    let app = gateway(&url, 60).await;
    endpoint.answer(None);

    let failing = app.me("opaque-token").await;
    assert_eq!(failing.status(), 503);
    assert_eq!(
        problem(failing).await["code"],
        "identity_provider_unavailable"
    );
    endpoint.answer(Some(active(&app, now() + 600)));
    assert_eq!(
        app.me("opaque-token").await.status(),
        200,
        "a failure is not remembered"
    );

    let nowhere = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!(
            "http://{}/introspect",
            listener.local_addr().expect("address")
        )
    };
    let unreachable = gateway(&nowhere, 60).await;
    let response = unreachable.me("opaque-token").await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        problem(response).await["code"],
        "identity_provider_unavailable"
    );
}
