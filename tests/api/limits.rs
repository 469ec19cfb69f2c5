//! Rate limits: per employee for creates and for everything else, and the gateway's budget of
//! calls to the cloud.

use reqwest::Method;
use serde_json::json;
use starrocks_gateway::config::LimitSettings;

use crate::helpers::{TestApp, decisions, instances_used, metric, problem};

fn named(i: usize) -> serde_json::Value {
    json!({"name": format!("cube-{i:02}"), "target": "analytics-prod", "size": "small"})
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn an_employee_over_the_create_limit_gets_429_and_nothing_is_sent_or_recorded() {
    let app = TestApp::builder()
        .settings(|s| {
            s.limits = LimitSettings {
                creates_burst: 2,
                creates_per_minute: 1,
                ..LimitSettings::off()
            };
        })
        .spawn()
        .await;
    let alice = app.alice();
    let refusals = r#"starrocks_gateway_rate_limited_total{limit="creates"}"#;
    let refused_before = metric(&app, refusals).await;

    let first = app.create(&alice, &named(1)).await;
    let first_policy = header(&first, "ratelimit-policy");
    let first_state = header(&first, "ratelimit");
    let second = app.create(&alice, &named(2)).await;
    let refused = app.create(&alice, &named(3)).await;
    let colleague = app
        .create(&app.token_for("alice2", "analytics"), &named(4))
        .await;

    assert_eq!(first.status(), 201);
    assert_eq!(first_policy, "\"creates\";q=2;w=120");
    assert_eq!(first_state, "\"creates\";r=1;t=60");
    assert_eq!(second.status(), 201);
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = header(&refused, "retry-after")
        .parse()
        .expect("Retry-After");
    assert!((50..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        header(&refused, "ratelimit"),
        format!("\"creates\";r=0;t={retry_after}")
    );
    let refused = problem(refused).await;
    assert_eq!(refused["code"], "rate_limited");
    assert!(
        metric(&app, refusals).await >= refused_before + 1.0,
        "the refusal is counted"
    );
    assert_eq!(colleague.status(), 201, "each employee has their own limit");
    assert_eq!(app.sim_stats().await.creates_received, 3);
    let decisions = decisions(&app, "").await;
    assert_eq!(
        decisions["decisions"].as_array().map(Vec::len),
        Some(3),
        "a refused burst writes nothing"
    );
    assert_eq!(
        instances_used(&app, &alice).await,
        3,
        "reads are not creates: alice may still look"
    );
}

#[tokio::test]
async fn reads_have_their_own_limit() {
    let app = TestApp::builder()
        .settings(|s| {
            s.limits = LimitSettings {
                requests_burst: 3,
                requests_per_second: 1,
                creates_burst: 5,
                creates_per_minute: 10,
                ..LimitSettings::off()
            };
        })
        .spawn()
        .await;
    let alice = app.alice();

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let me = app
            .authed(Method::GET, "/v1/me", &alice)
            .send()
            .await
            .expect("answer");
        statuses.push(me.status().as_u16());
        if me.status() == 429 {
            assert_eq!(header(&me, "retry-after"), "1");
            assert_eq!(header(&me, "ratelimit-policy"), "\"requests\";q=3;w=3");
        }
    }
    let create = app.create(&alice, &named(1)).await;

    assert_eq!(statuses, vec![200, 200, 200, 429]);
    assert_eq!(create.status(), 201, "creates are counted apart");
}

#[tokio::test]
async fn the_cloud_call_budget_holds_for_the_whole_gateway_and_gives_the_quota_back() {
    let app = TestApp::builder()
        .settings(|s| {
            s.limits = LimitSettings {
                cloud_calls_burst: 2,
                cloud_calls_per_second: 1,
                cloud_budget_wait_ms: 0,
                ..LimitSettings::off()
            };
        })
        .spawn()
        .await;

    let mut statuses = Vec::new();
    for (i, who) in ["alice", "alice2", "alice3"].into_iter().enumerate() {
        let token = app.token_for(who, "analytics");
        statuses.push(app.create(&token, &named(i)).await);
    }
    let over = statuses.pop().expect("three answers");

    assert!(statuses.iter().all(|r| r.status() == 201));
    assert_eq!(over.status(), 429);
    assert_eq!(header(&over, "retry-after"), "1");
    assert_eq!(problem(over).await["code"], "upstream_throttled");
    assert_eq!(
        app.sim_stats().await.creates_received,
        2,
        "nothing was sent"
    );
    assert_eq!(instances_used(&app, &app.alice()).await, 2);
}
