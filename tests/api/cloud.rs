use futures_util::future::join_all;
use serde_json::json;
use starrocks_gateway::demo::EXAMPLE_POLICY;
use starrocks_gateway::storage::sql::query;

use crate::helpers::{
    TestApp, closed_url, decisions, home_account, home_region, instances_used, metric, problem,
    small_instance,
};

/// Why each reservation settled, oldest first.
async fn settle_reasons(app: &TestApp) -> Vec<Option<String>> {
    query("SELECT settle_reason FROM reservations ORDER BY created_at")
        .fetch_all(app.stack.store.db())
        .await
        .expect("query")
        .iter()
        .map(|row| row.try_get("settle_reason").expect("settle_reason"))
        .collect()
}

#[tokio::test]
async fn a_throttled_create_is_429_with_retry_after_and_gives_the_quota_back() {
    let app = TestApp::spawn().await;
    app.set_faults(json!({"throttle_next_calls": 1})).await;

    let response = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "5");
    let problem = problem(response).await;
    assert_eq!(problem["code"], "upstream_throttled");
    assert_eq!(problem["upstream_code"], "APIGW.0308");
    assert_eq!(instances_used(&app, &app.alice()).await, 0);
    assert_eq!(
        settle_reasons(&app).await,
        vec![Some(
            "the cloud throttled the create (429 APIGW.0308)".to_owned()
        )]
    );
    let decisions = decisions(&app, "").await;
    assert_eq!(decisions["decisions"][0]["outcome"], "failed");
    assert_eq!(decisions["decisions"][0]["error_code"], "APIGW.0308");
    assert_eq!(decisions["decisions"][0]["upstream_status"], 429);
}

#[tokio::test]
async fn fifty_concurrent_creates_fetch_exactly_one_iam_token() {
    let roomy = EXAMPLE_POLICY
        .replacen("instances = 5", "instances = 100", 1)
        .replacen("nodes = 30", "nodes = 1000", 1);
    let app = TestApp::builder().policy(&roomy).spawn().await;
    let token = app.alice();
    let bodies: Vec<_> = (0..50)
        .map(|i| json!({"name": format!("cube-{i:02}"), "target": "analytics-prod", "size": "small"}))
        .collect();

    let responses = join_all(bodies.iter().map(|body| app.create(&token, body))).await;

    assert!(responses.iter().all(|r| r.status() == 201));
    let stats = app.sim_stats().await;
    assert_eq!(stats.tokens_issued, 1);
    assert_eq!(stats.instances, 50);
}

#[tokio::test]
async fn an_expired_iam_token_is_evicted_refetched_and_the_create_retried_once() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        201
    );
    app.expire_cloud_tokens().await;

    let response = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(response.status(), 201);
    let stats = app.sim_stats().await;
    assert_eq!(stats.tokens_issued, 2);
    let statuses: Vec<u16> = app.sim_creates().await.iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![201, 401, 201]);
}

#[tokio::test]
async fn a_cloud_slower_than_the_timeout_is_504() {
    let app = TestApp::builder()
        .settings(|s| s.cloud.request_timeout_ms = 300)
        .spawn()
        .await;
    app.set_faults(json!({"latency_ms": 1500})).await;

    let response = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(response.status(), 504);
    assert_eq!(problem(response).await["code"], "upstream_timeout");
}

#[tokio::test]
async fn a_cloud_5xx_is_502_carrying_the_upstream_code() {
    let app = TestApp::spawn().await;
    app.set_faults(json!({"fail_next_creates": 1, "fail_status": 503}))
        .await;

    let response = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(response.status(), 502);
    let problem = problem(response).await;
    assert_eq!(problem["code"], "upstream_error");
    assert_eq!(problem["upstream_code"], "DBS.200000");
    assert_eq!(problem["upstream_status"], 503);
    assert_eq!(
        app.sim_stats().await.creates_received,
        1,
        "a 5xx create is never retried blindly"
    );
}

#[tokio::test]
async fn a_cloud_4xx_is_502_carrying_the_upstream_code() {
    // A storage type the cloud does not offer gets past policy but not past the cloud.
    let policy = EXAMPLE_POLICY.replacen("io_type = \"ESSD\"", "io_type = \"NVME\"", 1);
    let app = TestApp::builder().policy(&policy).spawn().await;

    let response = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(response.status(), 502);
    let problem = problem(response).await;
    assert_eq!(problem["upstream_code"], "DBS.200001");
    assert_eq!(problem["upstream_status"], 400);
}

#[tokio::test]
async fn an_unreachable_cloud_is_503() {
    let app = TestApp::builder()
        .settings(|s| {
            let url = closed_url();
            home_account(s).iam_url = Some(url.clone());
            home_region(s).endpoint = url;
        })
        .spawn()
        .await;

    let response = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
    assert_eq!(problem(response).await["code"], "upstream_unavailable");
    assert_eq!(instances_used(&app, &app.alice()).await, 0);
    assert_eq!(
        settle_reasons(&app).await,
        vec![Some(
            "the cloud could not be reached; nothing was sent".to_owned()
        )]
    );
}

#[tokio::test]
async fn wrong_gateway_credentials_are_502_upstream_auth_failed_and_never_leak() {
    let app = TestApp::builder()
        .settings(|s| {
            home_account(s).password = Some("Wrong-Passw0rd!".to_owned().into());
        })
        .spawn()
        .await;

    let response = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(response.status(), 502);
    let text = response.text().await.expect("body");
    assert!(!text.contains("Wrong-Passw0rd!"));
    let problem: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(problem["code"], "upstream_auth_failed");
    assert_eq!(app.sim_stats().await.creates_received, 0);
}

#[tokio::test]
async fn the_iam_token_is_refreshed_before_it_expires() {
    // Tokens live 8 s and are replaced 5 s early: a token is reused for about three seconds,
    // room enough for two creates on a loaded machine.
    let app = TestApp::builder()
        .simulator(|sim| sim.token_lifetime = std::time::Duration::from_secs(8))
        .settings(|s| s.cloud.token_refresh_margin_secs = 5)
        .spawn()
        .await;
    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        201
    );
    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        201
    );
    assert_eq!(
        app.sim_stats().await.tokens_issued,
        1,
        "a fresh token is reused"
    );

    tokio::time::sleep(std::time::Duration::from_millis(3_200)).await;
    let response = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(response.status(), 201);
    let stats = app.sim_stats().await;
    assert_eq!(
        stats.tokens_issued, 2,
        "the token was replaced before expiring"
    );
    assert!(
        app.sim_creates().await.iter().all(|c| c.status == 201),
        "no create met an expired token"
    );
}

#[tokio::test]
async fn a_cloud_operation_that_keeps_failing_opens_its_breaker_and_fails_fast() {
    let app = TestApp::builder()
        .settings(|s| {
            s.cloud.breaker_failures = 2;
            s.cloud.breaker_open_secs = 60;
            s.cloud.read_cache_ms = 0;
        })
        .spawn()
        .await;
    let alice = app.alice();
    assert_eq!(app.create(&alice, &small_instance()).await.status(), 201);
    let list = || async {
        let answer: serde_json::Value = app
            .authed(reqwest::Method::GET, "/v1/starrocks", &alice)
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("JSON");
        answer["cloud"]["status"].clone()
    };
    let rejections =
        r#"starrocks_gateway_cloud_breaker_rejections_total{operation="list",region="cn-north-4"}"#;
    let rejected_before = metric(&app, rejections).await;
    app.set_faults(json!({"fail_next_reads": 2, "fail_status": 503}))
        .await;

    let failing = [list().await, list().await];
    let lists_after_failures = app.sim_stats().await.lists_received;
    let while_open = list().await;
    let lists_while_open = app.sim_stats().await.lists_received;
    let ready: serde_json::Value = app.get("/readyz").await.json().await.expect("JSON");
    let metrics = app.get("/metrics").await.text().await.expect("text");
    let create = app
        .create(
            &alice,
            &json!({"name": "cube-other", "target": "analytics-prod", "size": "small"}),
        )
        .await;

    assert_eq!(failing, [json!("unavailable"), json!("unavailable")]);
    assert_eq!(while_open, json!("unavailable"));
    assert_eq!(
        lists_while_open, lists_after_failures,
        "an open breaker sends nothing"
    );
    assert_eq!(
        ready["status"], "ready",
        "an open breaker is not unreadiness"
    );
    let breakers = &ready["regions"]["cn-north-4"]["breakers"];
    assert_eq!(breakers["list"], "open");
    assert_eq!(breakers["create"], "closed");
    assert_eq!(
        ready["regions"]["cn-east-3"]["breakers"]["list"], "closed",
        "another region's breakers are its own"
    );
    assert!(
        metrics.contains(
            "starrocks_gateway_cloud_breaker_state{operation=\"list\",region=\"cn-north-4\"} 2"
        ),
        "{metrics}"
    );
    assert_eq!(create.status(), 201, "each operation has its own breaker");
    assert!(
        metric(&app, rejections).await >= rejected_before + 1.0,
        "the call the open breaker refused is counted"
    );
}

#[tokio::test]
async fn an_open_breaker_answers_503_with_retry_after_and_sends_nothing() {
    let app = TestApp::builder()
        .settings(|s| {
            s.cloud.breaker_failures = 1;
            s.cloud.breaker_open_secs = 30;
        })
        .spawn()
        .await;
    app.set_faults(json!({"fail_next_creates": 1, "fail_status": 503}))
        .await;
    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        502
    );

    let refused = app
        .create(
            &app.alice(),
            &json!({"name": "cube-second", "target": "analytics-prod", "size": "small"}),
        )
        .await;

    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "30");
    assert_eq!(problem(refused).await["code"], "upstream_unavailable");
    assert_eq!(app.sim_stats().await.creates_received, 1);
    assert_eq!(
        settle_reasons(&app).await[1],
        Some(
            "the cloud kept failing and its circuit breaker was open; nothing was sent".to_owned()
        )
    );
}
