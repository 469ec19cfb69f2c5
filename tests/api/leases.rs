//! Leases: instances that end on time. A lease from policy, `expiring` before its end, deleted
//! at the end through the delete path (logged `expire`, quota given back), extended within
//! the maximum; with two replicas on one PostgreSQL, each instance is deleted exactly once.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use starrocks_gateway::demo::EXAMPLE_POLICY;
use starrocks_gateway::policy::{Policy, PolicyStore};

use crate::helpers::{
    Db, TestApp, decisions, instances_used, json_of, problem, sample, scrape_until, small_instance,
};

on_both_engines!(a_short_lease_shows_expiring_then_ends_and_gives_the_quota_back);

/// The example policy with analytics' instances living `days` by default, `expiring` from
/// `warning_hours` before their end.
fn short_leases(days: &str, warning_hours: &str) -> String {
    EXAMPLE_POLICY
        .replace(
            "default_lease_days = 30",
            &format!("default_lease_days = {days}"),
        )
        .replace(
            "lease_warning_hours = 24",
            &format!("lease_warning_hours = {warning_hours}"),
        )
}

/// A stack whose sweeps (leases, reconciliation) run every second, and whose simulated cloud
/// creates and deletes in a second.
async fn fast(db: Db, policy: String) -> TestApp {
    TestApp::builder()
        .database(db)
        .policy(policy)
        .simulator(|sim| {
            sim.create_duration = Duration::from_secs(1);
            sim.delete_duration = Duration::from_secs(1);
        })
        .settings(|settings| {
            settings.leases.sweep_interval_secs = 1;
            settings.reconcile.interval_secs = 1;
        })
        .spawn()
        .await
}

async fn instance(app: &TestApp, token: &str, id: &str) -> Value {
    json_of(
        app.authed(Method::GET, &format!("/v1/starrocks/{id}"), token)
            .send()
            .await
            .expect("answer"),
    )
    .await
}

/// Polls instance `id` (up to 20 s) until its state is `state`.
async fn wait_for_state(app: &TestApp, token: &str, id: &str, state: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = instance(app, token, id).await;
        if last["state"] == state {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("instance {id} never became {state}: {last}");
}

async fn create(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app.create(token, body).await;
    assert_eq!(response.status(), 201);
    json_of(response).await
}

fn millis(rfc3339: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().expect("a time"))
        .expect("RFC 3339")
        .timestamp_millis()
}

fn days_from_now(days: f64) -> i64 {
    chrono::Utc::now().timestamp_millis() + (days * 86_400_000.0) as i64
}

async fn a_short_lease_shows_expiring_then_ends_and_gives_the_quota_back(db: Db) {
    // Six seconds of life, `expiring` from the start.
    let app = fast(db, short_leases("0.00007", "1")).await;
    let token = app.alice();

    let created = create(&app, &token, &small_instance()).await;
    let id = created["id"].as_str().expect("id").to_owned();

    let expiring = wait_for_state(&app, &token, &id, "expiring").await;
    let ends = millis(&expiring["expires_at"]);
    assert!((ends - days_from_now(0.00007)).abs() < 7_000, "{expiring}");
    let series = r#"starrocks_gateway_instances_expiring{team="analytics"}"#;
    let text = scrape_until(&app, |text| sample(text, series) == Some(1.0)).await;
    assert_eq!(sample(&text, series), Some(1.0), "{text}");
    wait_for_state(&app, &token, &id, "deleted").await;

    assert_eq!(
        instances_used(&app, &token).await,
        0,
        "the quota is given back"
    );
    assert_eq!(app.sim_stats().await.deletes_received, 1);
    let log = decisions(&app, "?limit=500").await;
    let expired: Vec<&Value> = log["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["action"] == "expire" && d["instance_id"] == id.as_str())
        .collect();
    assert_eq!(expired.len(), 1, "{log}");
    assert_eq!(expired[0]["subject"], "starrocks-gateway");
    assert_eq!(expired[0]["outcome"], "deleting");
}

#[tokio::test]
async fn a_create_takes_its_lease_from_policy_or_asks_within_the_maximum() {
    let app = TestApp::spawn().await;
    let token = app.alice();

    let defaulted = create(&app, &token, &small_instance()).await;
    let asked = create(
        &app,
        &token,
        &json!({"name": "short-cube", "target": "analytics-prod", "size": "small", "lease_days": 2}),
    )
    .await;
    let medium = create(
        &app,
        &token,
        &json!({"name": "medium-cube", "target": "analytics-prod", "size": "medium"}),
    )
    .await;
    let too_long = app
        .create(
            &token,
            &json!({"name": "long-cube", "target": "analytics-prod", "size": "medium", "lease_days": 31}),
        )
        .await;
    let payments = create(
        &app,
        &app.token_for("bob", "payments"),
        &json!({"name": "ledger-cube", "target": "payments-ledger", "size": "small"}),
    )
    .await;

    for (created, days) in [(&defaulted, 30.0), (&asked, 2.0), (&medium, 14.0)] {
        let shown = instance(&app, &token, created["id"].as_str().expect("id")).await;
        let ends = millis(&shown["expires_at"]);
        assert!(
            (ends - days_from_now(days)).abs() < 60_000,
            "{days}: {shown}"
        );
    }
    assert_eq!(too_long.status(), 403);
    let denied = problem(too_long).await;
    assert_eq!(denied["violations"][0]["rule"], "lease.max", "{denied}");
    let unleased = instance(
        &app,
        &app.token_for("bob", "payments"),
        payments["id"].as_str().expect("id"),
    )
    .await;
    assert!(
        unleased.get("expires_at").is_none(),
        "payments has no leases: {unleased}"
    );
    let bad = app
        .create(
            &token,
            &json!({"name": "zero-cube", "target": "analytics-prod", "size": "small", "lease_days": 0}),
        )
        .await;
    assert_eq!(problem(bad).await["errors"][0]["field"], "lease_days");
}

#[tokio::test]
async fn a_lease_is_extended_within_the_maximum_and_refused_beyond_it() {
    let app = TestApp::spawn().await;
    let token = app.alice();
    let id = create(&app, &token, &small_instance()).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let extend = |token: String, id: String, body: Value| {
        let request = app.authed(Method::POST, &format!("/v1/starrocks/{id}/extend"), &token);
        async move { request.json(&body).send().await.expect("answer") }
    };

    let within = extend(token.clone(), id.clone(), json!({"lease_days": 60})).await;
    assert_eq!(within.status(), 200);
    let within = json_of(within).await;
    assert!(
        (millis(&within["expires_at"]) - days_from_now(60.0)).abs() < 60_000,
        "{within}"
    );
    assert_eq!(within["expiring"], false);
    let shown = instance(&app, &token, &id).await;
    assert_eq!(shown["expires_at"], within["expires_at"]);

    let beyond = extend(token.clone(), id.clone(), json!({"lease_days": 91})).await;
    assert_eq!(beyond.status(), 403);
    let beyond = problem(beyond).await;
    assert_eq!(beyond["code"], "policy_denied");
    assert_eq!(beyond["violations"][0]["rule"], "lease.max");
    assert_eq!(
        instance(&app, &token, &id).await["expires_at"],
        within["expires_at"],
        "a refused extension changes nothing"
    );

    let zero = problem(extend(token.clone(), id.clone(), json!({"lease_days": 0})).await).await;
    assert_eq!(zero["errors"][0]["field"], "lease_days");
    let bob = app.token_for("bob", "payments");
    assert_eq!(
        extend(bob.clone(), id.clone(), json!({"lease_days": 1}))
            .await
            .status(),
        404
    );
    let ledger = create(
        &app,
        &bob,
        &json!({"name": "ledger-cube", "target": "payments-ledger", "size": "small"}),
    )
    .await;
    let no_lease = extend(
        bob,
        ledger["id"].as_str().expect("id").to_owned(),
        json!({"lease_days": 1}),
    )
    .await;
    assert_eq!(problem(no_lease).await["code"], "no_lease");

    let log = decisions(&app, "?subject=alice&limit=50").await;
    let extends: Vec<(String, String)> = log["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["action"] == "extend")
        .map(|d| {
            (
                d["outcome"].as_str().unwrap_or_default().to_owned(),
                d["instance_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        extends,
        vec![
            ("denied".to_owned(), id.clone()),
            ("extended".to_owned(), id.clone())
        ]
    );
}

#[tokio::test]
async fn an_extension_into_the_warning_period_shows_expiring_and_later_ones_clear_it() {
    let app = fast(Db::Sqlite, short_leases("30", "48")).await;
    let token = app.alice();
    let id = create(&app, &token, &small_instance()).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_for_state(&app, &token, &id, "ready").await;

    let short = app
        .authed(Method::POST, &format!("/v1/starrocks/{id}/extend"), &token)
        .json(&json!({"lease_days": 1}))
        .send()
        .await
        .expect("answer");
    assert_eq!(json_of(short).await["expiring"], true);
    wait_for_state(&app, &token, &id, "expiring").await;
    let long = app
        .authed(Method::POST, &format!("/v1/starrocks/{id}/extend"), &token)
        .json(&json!({"lease_days": 10}))
        .send()
        .await
        .expect("answer");
    assert_eq!(json_of(long).await["expiring"], false);
    wait_for_state(&app, &token, &id, "ready").await;
}

#[tokio::test]
async fn two_gateways_on_one_postgresql_expire_each_instance_exactly_once() {
    let app = fast(Db::Postgres, short_leases("0.00005", "1")).await;
    let policy = PolicyStore::fixed(Policy::parse(&short_leases("0.00005", "1")).expect("valid"));
    let second = app
        .stack
        .start_another_gateway(policy)
        .await
        .expect("a second replica");
    let token = app.alice();
    let urls = [app.stack.gateway_url.clone(), second];

    let created = join_all((0..4).map(|i| {
        app.client
            .post(format!("{}/v1/starrocks", urls[i % 2]))
            .bearer_auth(&token)
            .json(
                &json!({"name": format!("lease-{i}"), "target": "analytics-prod", "size": "small"}),
            )
            .send()
    }))
    .await;
    let mut ids = Vec::new();
    for response in created {
        let response = response.expect("answer");
        assert_eq!(response.status(), 201);
        ids.push(
            json_of(response).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    for id in &ids {
        wait_for_state(&app, &token, id, "deleted").await;
    }

    assert_eq!(
        app.sim_stats().await.deletes_received,
        4,
        "one delete per instance"
    );
    let log = decisions(&app, "?limit=500").await;
    for id in &ids {
        let expiries = log["decisions"]
            .as_array()
            .expect("decisions")
            .iter()
            .filter(|d| d["action"] == "expire" && d["instance_id"] == id.as_str())
            .count();
        assert_eq!(expiries, 1, "{id}");
    }
    assert_eq!(instances_used(&app, &token).await, 0);
}

#[tokio::test]
async fn an_extension_beyond_the_maximum_is_asked_for_and_approved_as_an_exception() {
    let app = TestApp::spawn().await;
    let token = app.alice();
    let id = create(&app, &token, &small_instance()).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let ask = |body: Value| {
        let request = app.authed(Method::POST, "/v1/requests/extensions", &token);
        async move { request.json(&body).send().await.expect("answer") }
    };
    let reason = "Quarter-end reporting runs until the audit closes.";

    let within =
        problem(ask(json!({"instance_id": id, "lease_days": 10, "justification": reason})).await)
            .await;
    assert_eq!(within["code"], "exception_not_needed", "{within}");
    let elsewhere = problem(
        ask(json!({"instance_id": "00000000000000000000000000000000in17", "lease_days": 120, "justification": reason}))
            .await,
    )
    .await;
    assert_eq!(elsewhere["code"], "not_found");
    let asked = ask(json!({"instance_id": id, "lease_days": 120, "justification": reason})).await;
    assert_eq!(asked.status(), 202);
    let asked = json_of(asked).await;
    assert_eq!(asked["waives"], json!(["lease.max"]), "{asked}");
    assert_eq!(asked["extension"]["instance_id"], id.as_str());
    assert!(asked.get("instance").is_none());

    let carol = app.token_with(
        "carol",
        &["analytics"],
        &[starrocks_gateway::demo::DEMO_APPROVER_GROUP],
    );
    let request = asked["id"].as_str().expect("a request");
    let approved = app
        .authed(
            Method::POST,
            &format!("/v1/requests/{request}/approve"),
            &carol,
        )
        .send()
        .await
        .expect("answer");
    let approved = json_of(approved).await;

    assert_eq!(approved["status"], "extended", "{approved}");
    assert_eq!(approved["instance_id"], id.as_str());
    let ends = millis(&instance(&app, &token, &id).await["expires_at"]);
    assert!((ends - days_from_now(120.0)).abs() < 60_000);
    let log = decisions(&app, "?subject=alice&limit=50").await;
    let extension = log["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .find(|d| d["action"] == "extend" && d["exception_id"] == request)
        .cloned()
        .expect("the approved extension is logged");
    assert_eq!(extension["outcome"], "extended");
    assert_eq!(extension["rules"][0]["waived"], true);
}
