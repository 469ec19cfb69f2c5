use serde_json::json;

use crate::helpers::{TestApp, problem, small_instance};

const SPECIALS: &str = "~!@#$%^*-_=+?,()&|.";

#[tokio::test]
async fn a_valid_create_sends_the_full_upstream_body_and_returns_201() {
    let app = TestApp::spawn().await;

    let response = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(response.status(), 201);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let created: serde_json::Value = response.json().await.expect("JSON");
    let creates = app.sim_creates().await;
    assert_eq!(creates.len(), 1);
    let sent = &creates[0];
    assert_eq!(sent.status, 201);
    assert_eq!(sent.instance_id, "40dc4c5729f14aad893e2dcd5baf6a15in07");
    let home = app.stack.settings.cloud.topology().expect("the cloud");
    assert_eq!(
        sent.project_id,
        home.regions[&home.default_region].project_id
    );
    assert_eq!(sent.request_id.as_deref(), Some(request_id.as_str()));
    let password = created["root_password"]
        .as_str()
        .expect("a generated password is returned");
    assert_eq!(
        sent.body,
        json!({
            "name": "sales-cube",
            "engine": {"type": "star-rocks", "version": "3.1"},
            "ha": {"mode": "Single"},
            "fe_flavor_id": "afef3bfd-ac7c-32e1-ba44-c388acbb196a",
            "be_flavor_id": "de565db8-0a96-37ea-9388-61167624712c",
            "db_root_pwd": password,
            "fe_count": 1,
            "be_count": 1,
            "az_mode": "single",
            "fe_volume": {"io_type": "ESSD", "capacity_in_gb": 50},
            "be_volume": {"io_type": "ESSD", "capacity_in_gb": 100},
            "az_code": "cn-north-4a",
            "time_zone": "UTC+08:00",
            "tags_info": {"sys_tags": [
                {"key": "_sys_enterprise_project_id", "value": "0"},
            ]},
        })
    );
    assert!((8..=32).contains(&password.len()));
    let classes = [
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| SPECIALS.contains(c)),
    ];
    assert!(classes.iter().filter(|c| **c).count() >= 3);
    assert!(
        created["id"]
            .as_str()
            .is_some_and(|id| id.ends_with("in17"))
    );
    assert_eq!(created["status"], "creating");
    assert!(created["job_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(created["request_id"], request_id.as_str());
    assert_eq!(created["team"], "analytics");
}

#[tokio::test]
async fn a_given_root_password_is_forwarded_and_never_returned() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "sales-cube", "target": "analytics-prod", "size": "small",
        "root_password": "Given-Pa55word"});

    let response = app.create(&app.alice(), &body).await;

    assert_eq!(response.status(), 201);
    let text = response.text().await.expect("body");
    assert!(!text.contains("Given-Pa55word"));
    assert!(!text.contains("root_password"));
    assert_eq!(
        app.sim_creates().await[0].body["db_root_pwd"],
        "Given-Pa55word"
    );
}

#[tokio::test]
async fn a_team_cluster_profile_and_requested_version_and_time_zone_are_expanded() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "cube2", "target": "analytics-dev", "size": "medium",
        "version": "3.3", "time_zone": "UTC-05:00"});

    let response = app.create(&app.alice(), &body).await;

    assert_eq!(response.status(), 201);
    let sent = &app.sim_creates().await[0];
    assert_eq!(sent.instance_id, "5b1e7d2c9a8f4e3db6c05a1f2e3d4c5bin07");
    assert_eq!(sent.body["ha"]["mode"], "Cluster");
    assert_eq!(
        (
            sent.body["fe_count"].as_u64(),
            sent.body["be_count"].as_u64()
        ),
        (Some(3), Some(3))
    );
    assert_eq!(sent.body["engine"]["version"], "3.3");
    assert_eq!(sent.body["time_zone"], "UTC-05:00");
}

#[tokio::test]
async fn a_caller_request_id_is_echoed_and_forwarded_upstream() {
    let app = TestApp::spawn().await;

    let response = app
        .client
        .post(format!("{}/v1/starrocks", app.stack.gateway_url))
        .bearer_auth(app.alice())
        .header("x-request-id", "ci-run-42.step-7")
        .json(&small_instance())
        .send()
        .await
        .expect("answer");

    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-request-id"], "ci-run-42.step-7");
    assert_eq!(
        app.sim_creates().await[0].request_id.as_deref(),
        Some("ci-run-42.step-7")
    );
}

#[tokio::test]
async fn a_size_the_team_may_not_use_is_403_naming_the_rule_and_nothing_is_sent() {
    let app = TestApp::spawn().await;
    let bob = app.token_for("bob", "payments");
    let body = json!({"name": "ledger-cube", "target": "payments-ledger", "size": "medium"});

    let response = app.create(&bob, &body).await;

    assert_eq!(response.status(), 403);
    let problem = problem(response).await;
    assert_eq!(problem["code"], "policy_denied");
    assert_eq!(problem["violations"][0]["rule"], "size.allowed");
    assert_eq!(problem["violations"].as_array().map(Vec::len), Some(1));
    assert!(problem["decision_id"].is_string());
    assert_eq!(app.sim_stats().await.creates_received, 0);
}

#[tokio::test]
async fn another_teams_target_is_403_naming_the_rule_and_nothing_is_sent() {
    let app = TestApp::spawn().await;
    let bob = app.token_for("bob", "payments");
    let body = json!({"name": "sneaky", "target": "analytics-prod", "size": "small"});

    let response = app.create(&bob, &body).await;

    assert_eq!(response.status(), 403);
    let problem = problem(response).await;
    assert_eq!(problem["violations"][0]["rule"], "target.allowed");
    assert_eq!(app.sim_stats().await.creates_received, 0);
}

#[tokio::test]
async fn a_team_missing_from_the_policy_is_403() {
    let app = TestApp::spawn().await;
    let mallory = app.token_for("mallory", "marketing");

    let response = app.create(&mallory, &small_instance()).await;

    assert_eq!(response.status(), 403);
    assert_eq!(
        problem(response).await["violations"][0]["rule"],
        "team.known"
    );
    assert_eq!(app.sim_stats().await.creates_received, 0);
}

#[tokio::test]
async fn a_bad_name_is_400_naming_the_field_and_nothing_is_sent() {
    let app = TestApp::spawn().await;
    for name in ["1starts-with-digit", "abc", "has space", "dots.are.bad"] {
        let body = json!({"name": name, "target": "analytics-prod", "size": "small"});

        let response = app.create(&app.alice(), &body).await;

        assert_eq!(response.status(), 400, "{name}");
        let problem = problem(response).await;
        assert_eq!(problem["code"], "invalid_field");
        assert_eq!(problem["errors"][0]["field"], "name");
    }
    assert_eq!(app.sim_stats().await.creates_received, 0);
    assert_eq!(app.sim_stats().await.tokens_issued, 0);
}

#[tokio::test]
async fn a_weak_password_is_400_naming_the_field_without_echoing_it() {
    let app = TestApp::spawn().await;
    for password in [
        "short1A",
        "alllowercase1",
        "ALLUPPER-ONLY",
        "NoSpecials/Slash1",
        "Password1",
    ] {
        let body = json!({"name": "sales-cube", "target": "analytics-prod", "size": "small",
            "root_password": password});

        let response = app.create(&app.alice(), &body).await;

        assert_eq!(response.status(), 400, "{password}");
        let text = response.text().await.expect("body");
        assert!(!text.contains(password), "the password is echoed: {text}");
        let problem: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(problem["errors"][0]["field"], "root_password");
    }
    assert_eq!(app.sim_stats().await.creates_received, 0);
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"name": "sales-cube", "target": "analytics-prod"}),
            "size",
        ),
        (
            json!({"name": 42, "target": "analytics-prod", "size": "small"}),
            "name",
        ),
        (
            json!({"name": "sales-cube", "target": "analytics-prod", "size": "small", "flavor": "x"}),
            "flavor",
        ),
    ];
    for (body, field) in cases {
        let response = app.create(&app.alice(), &body).await;

        assert_eq!(response.status(), 400, "{body}");
        let problem = problem(response).await;
        assert_eq!(problem["code"], "malformed_body");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    assert_eq!(app.sim_stats().await.creates_received, 0);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_400_and_a_wrong_media_type_is_415() {
    let app = TestApp::spawn().await;
    let url = format!("{}/v1/starrocks", app.stack.gateway_url);

    let broken = app
        .client
        .post(&url)
        .bearer_auth(app.alice())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answer");
    let text = app
        .client
        .post(&url)
        .bearer_auth(app.alice())
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("answer");

    assert_eq!(broken.status(), 400);
    assert_eq!(problem(broken).await["code"], "malformed_body");
    assert_eq!(text.status(), 415);
    assert_eq!(problem(text).await["code"], "unsupported_media_type");
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "x".repeat(64 * 1024), "target": "analytics-prod", "size": "small"});

    let response = app.create(&app.alice(), &body).await;

    assert_eq!(response.status(), 413);
    assert_eq!(problem(response).await["code"], "payload_too_large");
}
