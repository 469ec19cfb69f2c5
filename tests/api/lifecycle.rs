//! Listing, following and deleting instances.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, instances_used, json_of, problem, small_instance};

/// A stack whose simulated instances build and delete in a few hundred milliseconds.
async fn quick_app() -> TestApp {
    TestApp::builder()
        .simulator(|sim| {
            sim.create_duration = Duration::from_millis(300);
            sim.delete_duration = Duration::from_millis(300);
        })
        .spawn()
        .await
}

async fn get(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.authed(Method::GET, &format!("/v1/starrocks/{id}"), token)
        .send()
        .await
        .expect("answer")
}

/// Polls the instance until `state`, for at most five seconds.
async fn wait_for(app: &TestApp, token: &str, id: &str, state: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..50 {
        last = json_of(get(app, token, id).await).await;
        if last["state"] == state {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("instance {id} never reached {state}: {last}");
}

async fn created_id(app: &TestApp, token: &str, body: &Value) -> String {
    let response = app.create(token, body).await;
    assert_eq!(response.status(), 201);
    json_of(response).await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[tokio::test]
async fn create_poll_until_ready_delete_poll_until_deleted_gives_the_quota_back() {
    let app = quick_app().await;
    let alice = app.alice();
    assert_eq!(instances_used(&app, &alice).await, 0);

    let id = created_id(&app, &alice, &small_instance()).await;
    let creating = json_of(get(&app, &alice, &id).await).await;
    let ready = wait_for(&app, &alice, &id, "ready").await;
    let used_while_ready = instances_used(&app, &alice).await;
    let deleted = app
        .authed(Method::DELETE, &format!("/v1/starrocks/{id}"), &alice)
        .send()
        .await
        .expect("answer");
    let deleted_status = deleted.status();
    let accepted = json_of(deleted).await;
    let gone = wait_for(&app, &alice, &id, "deleted").await;

    assert_eq!(creating["state"], "creating");
    assert_eq!(creating["job"]["status"], "Running");
    assert_eq!(ready["cloud"]["status"], "normal");
    assert_eq!(ready["cloud"]["port_info"]["mysql_port"], 3306);
    assert!(
        ready["cloud"]["groups"]
            .as_array()
            .is_some_and(|g| g.len() == 2)
    );
    assert_eq!(ready["created_by"], "alice");
    assert_eq!(ready["size"], "small");
    assert_eq!(used_while_ready, 1);
    assert_eq!(deleted_status, 202);
    assert_eq!(accepted["state"], "deleting");
    assert!(accepted["job_id"].is_string());
    assert_eq!(gone["state"], "deleted");
    assert_eq!(instances_used(&app, &alice).await, 0);
    let log = json_of(
        app.authed(
            Method::GET,
            "/v1/admin/decisions?outcome=deleting",
            &app.admin(),
        )
        .send()
        .await
        .expect("answer"),
    )
    .await;
    assert_eq!(log["decisions"][0]["action"], "delete");
    assert_eq!(log["decisions"][0]["subject"], "alice");
    assert_eq!(log["decisions"][0]["instance_id"], id.as_str());
    assert!(
        log["decisions"][0]
            .get("decision_id")
            .is_none_or(Value::is_null),
        "policy decides nothing about a delete, so no decision id is made up"
    );
    assert!(
        log["decisions"][0]["policy_revision"]
            .as_str()
            .is_some_and(|r| r.starts_with("sha256:"))
    );
}

#[tokio::test]
async fn another_teams_instance_is_404_for_get_and_delete_and_nothing_is_sent() {
    let app = quick_app().await;
    let id = created_id(&app, &app.alice(), &small_instance()).await;
    let bob = app.token_for("bob", "payments");
    let gets_before = app.sim_stats().await.gets_received;

    let read = get(&app, &bob, &id).await;
    let delete = app
        .authed(Method::DELETE, &format!("/v1/starrocks/{id}"), &bob)
        .send()
        .await
        .expect("answer");
    let missing = get(&app, &bob, "ffffffffffffffffffffffffffffffffin17").await;

    assert_eq!(read.status(), 404);
    assert_eq!(delete.status(), 404);
    let (read, delete, missing) = (
        problem(read).await,
        problem(delete).await,
        problem(missing).await,
    );
    assert_eq!(read["code"], "not_found");
    assert_eq!(delete["code"], "not_found");
    assert_eq!(
        read["detail"].as_str().map(|d| d.replace(&id, "ID")),
        missing["detail"]
            .as_str()
            .map(|d| d.replace("ffffffffffffffffffffffffffffffffin17", "ID")),
        "another team's instance answers exactly like a missing one"
    );
    let stats = app.sim_stats().await;
    assert_eq!(stats.deletes_received, 0);
    assert_eq!(stats.gets_received, gets_before);
}

#[tokio::test]
async fn a_create_whose_job_fails_shows_failed_with_the_reason_and_releases_quota() {
    let app = quick_app().await;
    let alice = app.alice();
    app.set_faults(json!({"fail_next_create_jobs": 1})).await;

    let id = created_id(&app, &alice, &small_instance()).await;
    let used_at_first = instances_used(&app, &alice).await;
    let failed = wait_for(&app, &alice, &id, "failed").await;

    assert_eq!(used_at_first, 1);
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Insufficient resources")),
        "{failed}"
    );
    assert_eq!(failed["job"]["status"], "Failed");
    assert_eq!(instances_used(&app, &alice).await, 0);
    let again = json_of(get(&app, &alice, &id).await).await;
    assert_eq!(again["state"], "failed", "a failed instance stays failed");
}

#[tokio::test]
async fn listing_makes_one_cloud_call_per_target_whatever_the_number_of_instances() {
    let app = quick_app().await;
    let alice = app.alice();
    for (i, target) in [
        "analytics-prod",
        "analytics-prod",
        "analytics-prod",
        "analytics-dev",
    ]
    .iter()
    .enumerate()
    {
        created_id(
            &app,
            &alice,
            &json!({"name": format!("cube-{i}"), "target": target, "size": "small"}),
        )
        .await;
    }
    created_id(
        &app,
        &app.token_for("bob", "payments"),
        &json!({"name": "ledger", "target": "payments-ledger", "size": "small"}),
    )
    .await;
    let lists_before = app.sim_stats().await.lists_received;

    let list = json_of(
        app.authed(Method::GET, "/v1/starrocks", &alice)
            .send()
            .await
            .expect("answer"),
    )
    .await;

    assert_eq!(app.sim_stats().await.lists_received - lists_before, 2);
    let names: Vec<&str> = list["instances"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["cube-3", "cube-2", "cube-1", "cube-0"],
        "newest first, only the caller's team"
    );
    assert_eq!(list["instances"][0]["state"], "creating");
    assert_eq!(list["instances"][0]["created_by"], "alice");
}

#[tokio::test]
async fn the_list_pages_and_admins_see_every_team() {
    let app = quick_app().await;
    let alice = app.alice();
    for i in 0..3 {
        created_id(
            &app,
            &alice,
            &json!({"name": format!("cube-{i}"), "target": "analytics-prod", "size": "small"}),
        )
        .await;
    }
    created_id(
        &app,
        &app.token_for("bob", "payments"),
        &json!({"name": "ledger", "target": "payments-ledger", "size": "small"}),
    )
    .await;

    let first = json_of(
        app.authed(Method::GET, "/v1/starrocks?limit=2", &alice)
            .send()
            .await
            .expect("answer"),
    )
    .await;
    let next = first["next_page"].as_str().expect("a next page").to_owned();
    let second = json_of(
        app.authed(
            Method::GET,
            &format!("/v1/starrocks?limit=2&page={next}"),
            &alice,
        )
        .send()
        .await
        .expect("answer"),
    )
    .await;
    let everyone = json_of(
        app.authed(Method::GET, "/v1/starrocks", &app.admin())
            .send()
            .await
            .expect("answer"),
    )
    .await;
    let payments = json_of(
        app.authed(Method::GET, "/v1/starrocks?team=payments", &app.admin())
            .send()
            .await
            .expect("answer"),
    )
    .await;
    let not_mine = app
        .authed(Method::GET, "/v1/starrocks?team=payments", &alice)
        .send()
        .await
        .expect("answer");

    assert_eq!(first["instances"].as_array().map(Vec::len), Some(2));
    assert_eq!(second["instances"].as_array().map(Vec::len), Some(1));
    assert!(second.get("next_page").is_none());
    assert_eq!(everyone["instances"].as_array().map(Vec::len), Some(4));
    assert_eq!(payments["instances"].as_array().map(Vec::len), Some(1));
    assert_eq!(not_mine.status(), 403);
}

#[tokio::test]
async fn deleting_twice_is_409_and_the_cloud_sees_one_delete() {
    let app = TestApp::builder()
        .simulator(|sim| {
            sim.create_duration = Duration::from_millis(100);
            sim.delete_duration = Duration::from_secs(30);
        })
        .spawn()
        .await;
    let alice = app.alice();
    let id = created_id(&app, &alice, &small_instance()).await;
    wait_for(&app, &alice, &id, "ready").await;

    let first = app
        .authed(Method::DELETE, &format!("/v1/starrocks/{id}"), &alice)
        .send()
        .await
        .expect("answer");
    let second = app
        .authed(Method::DELETE, &format!("/v1/starrocks/{id}"), &alice)
        .send()
        .await
        .expect("answer");

    assert_eq!(first.status(), 202);
    assert_eq!(second.status(), 409);
    assert_eq!(problem(second).await["code"], "instance_deleting");
    assert_eq!(app.sim_stats().await.deletes_received, 1);
    let refused = json_of(
        app.authed(
            Method::GET,
            "/v1/admin/decisions?outcome=denied",
            &app.admin(),
        )
        .send()
        .await
        .expect("answer"),
    )
    .await;
    assert_eq!(
        refused["decisions"][0]["action"], "delete",
        "a refused delete is recorded too: {refused}"
    );
    assert_eq!(refused["decisions"][0]["error_code"], "instance_deleting");
    assert_eq!(refused["decisions"][0]["instance_id"], id.as_str());
    assert_eq!(
        instances_used(&app, &alice).await,
        1,
        "quota is released only when the cloud confirms"
    );
}

#[tokio::test]
async fn a_delete_while_the_cloud_is_busy_is_retried_until_it_goes_through() {
    let app = quick_app().await;
    let alice = app.alice();
    let id = created_id(&app, &alice, &small_instance()).await;
    wait_for(&app, &alice, &id, "ready").await;
    app.set_faults(json!({"busy_next_deletes": 2})).await;

    let response = app
        .authed(Method::DELETE, &format!("/v1/starrocks/{id}"), &alice)
        .send()
        .await
        .expect("answer");

    assert_eq!(response.status(), 202);
    assert_eq!(
        app.sim_stats().await.deletes_received,
        3,
        "two busy answers, each retried"
    );
}

#[tokio::test]
async fn throttled_reads_are_retried_with_backoff() {
    let app = quick_app().await;
    let alice = app.alice();
    let id = created_id(&app, &alice, &small_instance()).await;
    let gets_before = app.sim_stats().await.gets_received;
    app.set_faults(json!({"throttle_next_calls": 2})).await;

    let response = get(&app, &alice, &id).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        app.sim_stats().await.gets_received - gets_before,
        3,
        "two throttled attempts, then the answer"
    );
}

#[tokio::test]
async fn a_throttled_create_is_never_retried_blindly() {
    let app = quick_app().await;
    app.set_faults(json!({"throttle_next_calls": 1})).await;

    let response = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(response.status(), 429);
    assert_eq!(problem(response).await["upstream_code"], "APIGW.0308");
    assert_eq!(
        app.sim_stats().await.creates_received,
        1,
        "a read would have been retried; a create is not"
    );
}

#[tokio::test]
async fn a_delete_the_cloud_stays_busy_for_is_409_and_the_instance_stays() {
    let app = TestApp::builder()
        .simulator(|sim| sim.create_duration = Duration::from_secs(60))
        .spawn()
        .await;
    let alice = app.alice();
    let id = created_id(&app, &alice, &small_instance()).await;

    let response = app
        .authed(Method::DELETE, &format!("/v1/starrocks/{id}"), &alice)
        .send()
        .await
        .expect("answer");

    assert_eq!(response.status(), 409);
    let problem = problem(response).await;
    assert_eq!(problem["code"], "upstream_busy");
    assert_eq!(problem["upstream_code"], "DBS.200019");
    assert_eq!(
        app.sim_stats().await.deletes_received,
        5,
        "retried with backoff, then given up"
    );
    assert_eq!(
        json_of(get(&app, &alice, &id).await).await["state"],
        "creating"
    );
    assert_eq!(instances_used(&app, &alice).await, 1);
}

/// Pollers share the cloud's answers: many reads of one instance or one team's list within
/// `read_cache_ms` make one upstream call each, and a change made through the gateway is seen
/// at once.
#[tokio::test]
async fn concurrent_pollers_share_one_upstream_read_and_a_delete_is_seen_at_once() {
    let app = TestApp::builder()
        .simulator(|sim| {
            sim.create_duration = Duration::from_millis(100);
            sim.delete_duration = Duration::from_secs(30);
        })
        .settings(|s| s.cloud.read_cache_ms = 5_000)
        .spawn()
        .await;
    let alice = app.alice();
    let id = created_id(&app, &alice, &small_instance()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = app.sim_stats().await;

    let polls = (0..20).map(|_| get(&app, &alice, &id));
    let lists = (0..20).map(|_| app.authed(Method::GET, "/v1/starrocks", &alice).send());
    let (polled, listed) = futures_util::future::join(
        futures_util::future::join_all(polls),
        futures_util::future::join_all(lists),
    )
    .await;
    let after = app.sim_stats().await;

    assert!(polled.iter().all(|r| r.status() == 200));
    assert!(
        listed
            .iter()
            .all(|r| r.as_ref().is_ok_and(|r| r.status() == 200))
    );
    assert_eq!(
        after.gets_received - before.gets_received,
        1,
        "one get for 20 pollers"
    );
    assert_eq!(
        after.lists_received - before.lists_received,
        1,
        "one list for 20 pollers"
    );
    let deleted = app
        .authed(Method::DELETE, &format!("/v1/starrocks/{id}"), &alice)
        .send()
        .await
        .expect("answer");
    assert_eq!(deleted.status(), 202);
    let seen = json_of(get(&app, &alice, &id).await).await;
    assert_eq!(
        seen["state"], "deleting",
        "the delete is not hidden by a cached read"
    );
}

#[tokio::test]
async fn a_list_the_cloud_cannot_answer_is_marked_partial_and_shows_the_last_observed_state() {
    let app = TestApp::builder()
        .simulator(|sim| sim.create_duration = Duration::from_millis(100))
        .settings(|s| s.cloud.read_cache_ms = 0)
        .spawn()
        .await;
    let alice = app.alice();
    let seen = created_id(&app, &alice, &small_instance()).await;
    wait_for(&app, &alice, &seen, "ready").await;
    let complete = json_of(
        app.authed(Method::GET, "/v1/starrocks", &alice)
            .send()
            .await
            .expect("answer"),
    )
    .await;
    let never_seen = created_id(
        &app,
        &alice,
        &json!({"name": "never-seen", "target": "analytics-prod", "size": "small"}),
    )
    .await;

    app.set_faults(json!({"fail_next_reads": 1, "fail_status": 503}))
        .await;
    let partial = app
        .authed(Method::GET, "/v1/starrocks", &alice)
        .send()
        .await
        .expect("answer");
    let partial_status = partial.status();
    let partial = json_of(partial).await;

    assert_eq!(complete["cloud"], json!({"status": "complete"}));
    let observed_at = complete["instances"][0]["observed_at"].clone();
    assert!(observed_at.is_string(), "{complete}");
    assert_eq!(partial_status, 200);
    assert_eq!(
        partial["cloud"],
        json!({"status": "unavailable", "targets": ["analytics-prod"], "regions": ["cn-north-4"]})
    );
    let by_id = |id: &str| {
        partial["instances"]
            .as_array()
            .and_then(|all| all.iter().find(|i| i["id"] == id))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(by_id(&seen)["state"], "ready", "the last observed state");
    assert_eq!(
        by_id(&seen)["observed_at"],
        observed_at,
        "with when it was observed"
    );
    assert_eq!(
        by_id(&never_seen)["state"],
        "unknown",
        "no state is invented"
    );
    assert!(by_id(&never_seen).get("observed_at").is_none());
}
