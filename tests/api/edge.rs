//! The edge under abuse: clients that send part of a request and go silent, and probes that
//! must keep answering meanwhile.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, small_instance};

const SILENT_CLIENTS: usize = 2_000;

/// Opens a connection to the gateway at `url`, sends a create's head and the start of its
/// body, and goes silent.
async fn silent_partial_create(url: &str, token: &str) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .ok()?;
    let head = format!(
        "POST /v1/starrocks HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"name\": \"slow"
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    Some(stream)
}

/// What the server sent before closing, within `wait`.
async fn answer_of(mut stream: TcpStream, wait: Duration) -> String {
    let mut answer = Vec::new();
    drop(tokio::time::timeout(wait, stream.read_to_end(&mut answer)).await);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn thousands_of_silent_partial_requests_neither_stop_others_nor_stay_held() {
    starrocks_gateway::startup::raise_descriptor_limit();
    let app = TestApp::builder()
        .settings(|s| s.server.body_timeout_ms = 2_000)
        .spawn()
        .await;
    let token = app.alice();

    let mut held = Vec::with_capacity(SILENT_CLIENTS);
    for batch in 0..SILENT_CLIENTS / 250 {
        let opened =
            join_all((0..250).map(|_| silent_partial_create(&app.stack.gateway_url, &token))).await;
        held.extend(opened.into_iter().flatten());
        assert_eq!(held.len(), (batch + 1) * 250, "every silent client got in");
    }
    let health = app.get("/healthz").await;
    let dry_run = app
        .authed(Method::POST, "/v1/starrocks/dry-run", &token)
        .json(&small_instance())
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("a normal client is answered while the silent ones are held");
    let created = app.create(&token, &small_instance()).await;
    let answers = join_all(
        held.into_iter()
            .map(|stream| answer_of(stream, Duration::from_secs(15))),
    )
    .await;

    assert_eq!(health.status(), 200);
    assert_eq!(dry_run.status(), 200);
    assert_eq!(created.status(), 201);
    let timed_out = answers
        .iter()
        .filter(|answer| answer.starts_with("HTTP/1.1 408") && answer.contains("request_timeout"))
        .count();
    assert_eq!(
        timed_out,
        SILENT_CLIENTS,
        "each silent client is answered 408 once its body is overdue: {:?}",
        answers.iter().find(|a| !a.starts_with("HTTP/1.1 408"))
    );
}

#[tokio::test]
async fn probes_on_the_operations_listener_answer_while_every_connection_is_held() {
    const CAP: usize = 40;
    let app = TestApp::builder()
        .settings(|s| {
            s.server.max_connections = CAP;
            s.server.body_timeout_ms = 6_000;
            s.server.ops_listen = Some(([127, 0, 0, 1], 0).into());
        })
        .spawn()
        .await;
    let ops_url = app.stack.ops_url.clone().expect("an operations listener");
    let token = app.alice();
    let probe = |url: String| app.client.get(url).timeout(Duration::from_secs(1)).send();

    let held: Vec<TcpStream> =
        join_all((0..CAP).map(|_| silent_partial_create(&app.stack.gateway_url, &token)))
            .await
            .into_iter()
            .flatten()
            .collect();
    let main_while_held = probe(format!("{}/healthz", app.stack.gateway_url)).await;
    let mut ops_answers = Vec::new();
    for path in ["/healthz", "/readyz", "/metrics"] {
        ops_answers.push((path, probe(format!("{ops_url}{path}")).await));
    }
    let api_on_ops = probe(format!("{ops_url}/v1/me")).await;
    let answers = join_all(
        held.into_iter()
            .map(|stream| answer_of(stream, Duration::from_secs(15))),
    )
    .await;
    let main_after = app.get("/healthz").await;

    assert!(
        main_while_held.is_err(),
        "the main listener is full, so its own probe waits: {main_while_held:?}"
    );
    for (path, answer) in ops_answers {
        let answer = answer.unwrap_or_else(|e| panic!("{path} on the operations listener: {e}"));
        assert_eq!(answer.status(), 200, "{path}");
    }
    assert_eq!(
        api_on_ops
            .expect("the operations listener answers")
            .status(),
        404,
        "the operations listener serves no API"
    );
    assert!(answers.iter().all(|a| a.starts_with("HTTP/1.1 408")));
    assert_eq!(
        main_after.status(),
        200,
        "once they are gone the main listener answers again"
    );
}
