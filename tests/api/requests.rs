//! Exception requests: a denial asked for with a justification, approved (or not) by someone
//! who approves for the team, and created through the same pipeline. Storage-bound paths run
//! on SQLite and on PostgreSQL.

use std::time::Duration;

use futures_util::future::join;
use reqwest::Method;
use serde_json::{Value, json};
use starrocks_gateway::demo::{DEMO_APPROVER_GROUP, EXAMPLE_POLICY};
use starrocks_gateway::storage::requests::{MoveRequest, RequestState};
use starrocks_gateway::storage::sql::query;

use crate::helpers::{
    Db, TestApp, decisions, instances_used, json_of, problem, reconcile, sample, scrape_until,
    small_instance,
};

on_both_engines!(
    a_denial_becomes_an_instance_once_an_approver_approves_it,
    an_approval_over_quota_fails_cleanly_and_holds_nothing,
    concurrent_approvals_of_one_request_create_once,
    a_request_nobody_decides_expires_and_is_logged_once,
    a_password_sealed_at_approval_is_shown_only_once_its_instance_exists,
    an_approval_whose_answer_was_lost_is_settled_by_reconciliation,
    approvals_that_left_no_trace_fail_interrupted_once_past_the_grace,
);

/// A size analytics may not order: denied on `size.allowed` alone, which it marks exceptable.
fn large(name: &str) -> Value {
    json!({"instance": {"name": name, "target": "analytics-prod", "size": "large"},
           "justification": "One week of load tests before the launch."})
}

fn carol(app: &TestApp) -> String {
    app.token_with("carol", &["analytics"], &[DEMO_APPROVER_GROUP])
}

async fn ask(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.authed(Method::POST, "/v1/requests", token)
        .json(body)
        .send()
        .await
        .expect("answer")
}

/// Asks for `body` as alice; the pending request's id.
async fn pending_request(app: &TestApp, body: &Value) -> String {
    pending_request_of(app, &app.alice(), body).await
}

/// Asks for `body` with `token`; the pending request's id.
async fn pending_request_of(app: &TestApp, token: &str, body: &Value) -> String {
    let response = ask(app, token, body).await;
    assert_eq!(response.status(), 202);
    let request = json_of(response).await;
    assert_eq!(request["status"], "pending", "{request}");
    request["id"].as_str().expect("an id").to_owned()
}

/// `POST /v1/requests/{id}/{step}` with an optional JSON body.
async fn act(
    app: &TestApp,
    token: &str,
    id: &str,
    step: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let request = app.authed(Method::POST, &format!("/v1/requests/{id}/{step}"), token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.expect("answer")
}

async fn read(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.authed(Method::GET, &format!("/v1/requests/{id}"), token)
        .send()
        .await
        .expect("answer")
}

/// Decisions of exception request `id`, oldest first.
async fn steps(app: &TestApp, id: &str) -> Vec<Value> {
    let log = decisions(app, "?limit=500").await;
    let mut steps: Vec<Value> = log["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["exception_id"] == id)
        .cloned()
        .collect();
    steps.reverse();
    steps
}

async fn a_denial_becomes_an_instance_once_an_approver_approves_it(db: Db) {
    let app = TestApp::builder().database(db).spawn().await;
    let body = large("load-test");

    let dry_run = app
        .authed(Method::POST, "/v1/starrocks/dry-run", &app.alice())
        .json(&body["instance"])
        .send()
        .await
        .expect("answer");
    let dry_run = json_of(dry_run).await;
    assert_eq!(dry_run["decision"]["allowed"], false);
    assert_eq!(
        dry_run["decision"]["exception"]["waives"],
        json!(["size.allowed"])
    );

    let asked = json_of(ask(&app, &app.alice(), &body).await).await;
    assert_eq!(asked["status"], "pending");
    assert_eq!(asked["waives"], json!(["size.allowed"]));
    assert_eq!(asked["requested_by"], "alice");
    assert_eq!(asked["instance"]["size"], "large");
    let id = asked["id"].as_str().expect("id").to_owned();

    let by_requester = problem(act(&app, &app.alice(), &id, "approve", None).await).await;
    assert_eq!(by_requester["code"], "not_an_approver", "{by_requester}");
    let bob = app.token_for("bob", "payments");
    assert_eq!(
        read(&app, &bob, &id).await.status(),
        404,
        "other teams do not see it"
    );
    assert_eq!(act(&app, &bob, &id, "approve", None).await.status(), 404);

    let own = pending_request_of(&app, &app.admin(), &large("own-load")).await;
    let self_approval = problem(act(&app, &app.admin(), &own, "approve", None).await).await;
    assert_eq!(self_approval["code"], "own_request", "{self_approval}");

    let queue = json_of(
        app.authed(Method::GET, "/v1/requests?status=pending", &carol(&app))
            .send()
            .await
            .expect("answer"),
    )
    .await;
    let queued: Vec<&str> = queue["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(queued.contains(&id.as_str()), "{queue}");

    let approved = act(
        &app,
        &carol(&app),
        &id,
        "approve",
        Some(json!({"comment": "ok for a week"})),
    )
    .await;
    assert_eq!(approved.status(), 200);
    let approved = json_of(approved).await;
    assert_eq!(approved["status"], "created", "{approved}");
    assert_eq!(approved["decided_by"], "carol");
    assert_eq!(approved["comment"], "ok for a week");
    assert!(
        approved.get("root_password").is_none(),
        "the approver never sees it"
    );
    let instance = approved["instance_id"]
        .as_str()
        .expect("an instance")
        .to_owned();

    let creates = app.sim_creates().await;
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].body["name"], "load-test");
    assert_eq!(creates[0].body["be_count"], 6, "the large size");
    let seen = app
        .authed(
            Method::GET,
            &format!("/v1/starrocks/{instance}"),
            &app.alice(),
        )
        .send()
        .await
        .expect("answer");
    assert_eq!(seen.status(), 200);
    assert_eq!(json_of(seen).await["size"], "large");

    let first = json_of(read(&app, &app.alice(), &id).await).await;
    let password = first["root_password"]
        .as_str()
        .expect("shown to its requester once");
    assert_eq!(password.len(), 24);
    assert_eq!(
        creates[0].body["db_root_pwd"], password,
        "the password shown is the one the instance was created with"
    );
    assert!(
        read(&app, &app.alice(), &id)
            .await
            .json::<Value>()
            .await
            .expect("JSON")
            .get("root_password")
            .is_none()
    );
    assert!(
        json_of(read(&app, &carol(&app), &id).await)
            .await
            .get("root_password")
            .is_none()
    );
    let stored =
        query("SELECT COUNT(*) AS n FROM exception_requests WHERE sealed_password IS NOT NULL")
            .fetch_one(app.stack.store.db())
            .await
            .expect("count");
    assert_eq!(
        stored.try_get::<i64>("n").expect("n"),
        0,
        "nothing is left once read"
    );

    let steps = steps(&app, &id).await;
    let summary: Vec<(&str, &str, &str)> = steps
        .iter()
        .map(|d| {
            (
                d["action"].as_str().unwrap_or_default(),
                d["outcome"].as_str().unwrap_or_default(),
                d["subject"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("request", "requested", "alice"),
            ("approve", "denied", "alice"),
            ("approve", "approved", "carol"),
            ("create", "created", "alice"),
        ]
    );
    assert_eq!(
        steps[1]["error_code"], "not_an_approver",
        "a refused step is logged too"
    );
    let waived: Vec<&Value> = steps[3]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| r["waived"] == true)
        .collect();
    assert_eq!(waived.len(), 1);
    assert_eq!(waived[0]["rule"], "size.allowed");
    assert_eq!(steps[3]["instance_id"], instance.as_str());
}

async fn an_approval_over_quota_fails_cleanly_and_holds_nothing(db: Db) {
    let app = TestApp::builder().database(db).spawn().await;
    // Analytics may hold 10,000 GB: one large instance (6,300 GB) fits, a second does not.
    let first = pending_request(&app, &large("load-one")).await;
    let second = pending_request(&app, &large("load-two")).await;

    // A JSON `null` is no note, like an empty body.
    let created =
        json_of(act(&app, &carol(&app), &first, "approve", Some(Value::Null)).await).await;
    assert_eq!(created["status"], "created", "{created}");
    let failed = act(&app, &carol(&app), &second, "approve", None).await;
    assert_eq!(failed.status(), 200);
    let failed = json_of(failed).await;

    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["failure"]["code"], "quota_exceeded");
    assert!(failed.get("instance_id").is_none());
    assert_eq!(
        app.sim_creates().await.len(),
        1,
        "the second never reached the cloud"
    );
    assert_eq!(instances_used(&app, &app.alice()).await, 1);
    let held = query("SELECT COUNT(*) AS n FROM reservations WHERE state = 'pending'")
        .fetch_one(app.stack.store.db())
        .await
        .expect("count");
    assert_eq!(
        held.try_get::<i64>("n").expect("n"),
        0,
        "no reservation is left behind"
    );
    let sealed = query("SELECT sealed_password FROM exception_requests WHERE id = $1")
        .bind(second.as_str())
        .fetch_one(app.stack.store.db())
        .await
        .expect("the request");
    assert_eq!(
        sealed
            .try_get::<Option<String>>("sealed_password")
            .expect("column"),
        None,
        "a failed approval keeps no password"
    );
    let outcomes: Vec<Value> = steps(&app, &second)
        .await
        .iter()
        .map(|d| json!([d["action"], d["outcome"], d["error_code"]]))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            json!(["request", "requested", null]),
            json!(["approve", "approved", null]),
            json!(["create", "denied", "quota_exceeded"]),
        ]
    );
}

/// The password is sealed with the approval, before the create, so that a create which
/// outlives its gateway keeps it; its requester still reads it only once the instance exists.
async fn a_password_sealed_at_approval_is_shown_only_once_its_instance_exists(db: Db) {
    let app = TestApp::builder().database(db).spawn().await;
    let id = pending_request(&app, &large("load-test")).await;
    app.set_faults(json!({"hold_next_creates": 1})).await;

    let approver = carol(&app);
    let approving = act(&app, &approver, &id, "approve", None);
    let while_held = async {
        app.wait_until_held(1).await;
        let sealed = query("SELECT sealed_password FROM exception_requests WHERE id = $1")
            .bind(id.as_str())
            .fetch_one(app.stack.store.db())
            .await
            .expect("the request");
        let running = json_of(read(&app, &app.alice(), &id).await).await;
        app.release_held().await;
        (sealed, running)
    };
    let (approved, (sealed, running)) = join(approving, while_held).await;

    assert!(
        sealed
            .try_get::<Option<String>>("sealed_password")
            .expect("column")
            .is_some(),
        "sealed before the create reached the cloud"
    );
    assert_eq!(running["status"], "approved", "{running}");
    assert!(running.get("root_password").is_none(), "{running}");
    assert_eq!(json_of(approved).await["status"], "created");
    let shown = json_of(read(&app, &app.alice(), &id).await).await;
    assert_eq!(
        shown["root_password"],
        app.sim_creates().await[0].body["db_root_pwd"],
        "the password read before the instance existed was kept for after"
    );
}

/// The cloud created the instance but its answer never came: nobody knows yet, so the
/// request stays `approved` (not `failed`) until reconciliation finds the instance.
async fn an_approval_whose_answer_was_lost_is_settled_by_reconciliation(db: Db) {
    let app = TestApp::builder()
        .settings(|s| s.cloud.request_timeout_ms = 1_000)
        .database(db)
        .spawn()
        .await;
    let id = pending_request(&app, &large("load-test")).await;
    app.set_faults(json!({"lose_next_answers": 1})).await;

    let unknown = json_of(act(&app, &carol(&app), &id, "approve", None).await).await;
    assert_eq!(unknown["status"], "approved", "{unknown}");
    assert!(unknown.get("failure").is_none(), "{unknown}");
    assert!(
        read(&app, &app.alice(), &id)
            .await
            .json::<Value>()
            .await
            .expect("JSON")
            .get("root_password")
            .is_none(),
        "no password before the instance is known"
    );
    assert_eq!(
        instances_used(&app, &app.alice()).await,
        1,
        "held meanwhile"
    );

    let report = reconcile(&app).await;
    assert_eq!(report["committed"], 1, "{report}");
    assert_eq!(report["requests_settled"], 1, "{report}");
    let settled = json_of(read(&app, &app.alice(), &id).await).await;
    let creates = app.sim_creates().await;
    assert_eq!(settled["status"], "created", "{settled}");
    assert_eq!(settled["root_password"], creates[0].body["db_root_pwd"]);
    let instance = settled["instance_id"].as_str().expect("an instance");
    let seen = app
        .authed(
            Method::GET,
            &format!("/v1/starrocks/{instance}"),
            &app.alice(),
        )
        .send()
        .await
        .expect("answer");
    assert_eq!(seen.status(), 200);
    assert_eq!(instances_used(&app, &app.alice()).await, 1);
    let outcomes: Vec<Value> = steps(&app, &id)
        .await
        .iter()
        .map(|d| json!([d["action"], d["outcome"], d["instance_id"]]))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            json!(["request", "requested", null]),
            json!(["approve", "approved", null]),
            json!(["create", "pending", null]),
            json!(["create", "created", instance]),
        ]
    );
    assert_eq!(reconcile(&app).await["requests_settled"], 0, "settled once");
}

/// A gateway that died right after approving, before its create reserved anything or its
/// extension was written, leaves no trace but the `approved` request. Within the grace that
/// may still be another replica at work; past it the request fails `interrupted`.
async fn approvals_that_left_no_trace_fail_interrupted_once_past_the_grace(db: Db) {
    let app = TestApp::builder().database(db).spawn().await;
    let created = json_of(app.create(&app.alice(), &small_instance()).await).await;
    let instance = created["id"].as_str().expect("an instance");
    let create = pending_request(&app, &large("load-test")).await;
    let extension = json_of(
        app.authed(Method::POST, "/v1/requests/extensions", &app.alice())
            .json(&json!({"instance_id": instance, "lease_days": 120,
                          "justification": "Quarter-end reporting runs until the audit closes."}))
            .send()
            .await
            .expect("answer"),
    )
    .await;
    let extension = extension["id"].as_str().expect("a request").to_owned();
    for id in [&create, &extension] {
        let approved = app
            .stack
            .store
            .move_request(MoveRequest {
                decided_by: Some("carol".into()),
                ..MoveRequest::new(id, RequestState::Pending, RequestState::Approved)
            })
            .await
            .expect("the database answers");
        assert!(approved);
    }

    assert_eq!(reconcile(&app).await["requests_settled"], 0);
    for id in [&create, &extension] {
        assert_eq!(
            json_of(read(&app, &app.alice(), id).await).await["status"],
            "approved"
        );
    }

    query("UPDATE exception_requests SET updated_at = updated_at - 601000")
        .execute(app.stack.store.db())
        .await
        .expect("backdated past the 600 s grace");
    assert_eq!(reconcile(&app).await["requests_settled"], 2);
    for id in [&create, &extension] {
        let failed = json_of(read(&app, &app.alice(), id).await).await;
        assert_eq!(failed["status"], "failed", "{failed}");
        assert_eq!(failed["failure"]["code"], "interrupted", "{failed}");
        assert!(failed.get("instance_id").is_none(), "{failed}");
    }
    assert_eq!(
        instances_used(&app, &app.alice()).await,
        1,
        "nothing was held"
    );
    assert_eq!(app.sim_creates().await.len(), 1, "only the direct create");
    for (id, action) in [(&create, "create"), (&extension, "extend")] {
        let last = steps(&app, id).await.pop().expect("steps");
        assert_eq!(
            json!([
                last["action"],
                last["outcome"],
                last["error_code"],
                last["request_id"]
            ]),
            json!([action, "failed", "interrupted", "exception-sweep"]),
            "the settlement is logged: {last}"
        );
    }
    assert_eq!(reconcile(&app).await["requests_settled"], 0, "settled once");
}

async fn concurrent_approvals_of_one_request_create_once(db: Db) {
    let app = TestApp::builder().database(db).spawn().await;
    let id = pending_request(&app, &large("load-test")).await;

    let (by_carol, by_erin) = join(
        act(&app, &carol(&app), &id, "approve", None),
        act(&app, &app.admin(), &id, "approve", None),
    )
    .await;

    let mut statuses = vec![by_carol.status().as_u16(), by_erin.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 409]);
    assert_eq!(app.sim_creates().await.len(), 1);
    let mut approvals: Vec<Value> = steps(&app, &id)
        .await
        .iter()
        .filter(|d| d["action"] == "approve")
        .map(|d| json!([d["outcome"], d["error_code"]]))
        .collect();
    approvals.sort_by_key(ToString::to_string);
    assert_eq!(
        approvals,
        vec![
            json!(["approved", null]),
            json!(["denied", "request_not_pending"])
        ],
        "the second approval is logged as refused"
    );
}

async fn a_request_nobody_decides_expires_and_is_logged_once(db: Db) {
    let policy = EXAMPLE_POLICY.replace("pending_ttl_hours = 72", "pending_ttl_hours = 0.0003");
    let app = TestApp::builder()
        .database(db)
        .policy(policy)
        .settings(|settings| settings.approvals.sweep_interval_secs = 1)
        .spawn()
        .await;
    let id = pending_request(&app, &large("load-test")).await;

    let mut status = Value::Null;
    for _ in 0..100 {
        status = json_of(read(&app, &app.alice(), &id).await).await["status"].clone();
        if status == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_eq!(status, "expired");
    let late = problem(act(&app, &carol(&app), &id, "approve", None).await).await;
    assert_eq!(late["code"], "request_not_pending", "{late}");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let expiries = steps(&app, &id)
        .await
        .iter()
        .filter(|d| d["action"] == "expire")
        .count();
    assert_eq!(expiries, 1, "a later sweep expires nothing again");
    assert!(app.sim_creates().await.is_empty());
}

#[tokio::test]
async fn a_request_is_refused_when_policy_allows_it_or_never_waives_the_rule() {
    let app = TestApp::spawn().await;

    let allowed = json!({"instance": {"name": "sales-cube", "target": "analytics-prod", "size": "small"},
        "justification": "Nothing to waive here at all."});
    let not_needed = problem(ask(&app, &app.alice(), &allowed).await).await;
    assert_eq!(not_needed["code"], "exception_not_needed");

    let elsewhere = json!({"instance": {"name": "sneaky", "target": "analytics-prod", "size": "small"},
        "justification": "I would like the analytics data."});
    let response = ask(&app, &app.token_for("bob", "payments"), &elsewhere).await;
    assert_eq!(response.status(), 403);
    let never = problem(response).await;
    assert_eq!(never["code"], "not_exceptable");
    assert_eq!(never["violations"][0]["rule"], "target.allowed", "{never}");

    let logged = decisions(&app, "?subject=bob").await;
    assert_eq!(logged["decisions"][0]["action"], "request");
    assert_eq!(logged["decisions"][0]["outcome"], "denied");
    assert_eq!(logged["decisions"][0]["error_code"], "not_exceptable");
}

#[tokio::test]
async fn bad_fields_of_a_request_are_named_and_a_password_is_never_taken() {
    let app = TestApp::spawn().await;
    let reason = "A perfectly fine reason.";
    let cases = [
        (
            json!({"instance": {"name": "load-test", "target": "analytics-prod", "size": "large"}, "justification": "short"}),
            "invalid_field",
            "justification",
        ),
        (
            json!({"instance": {"name": "load-test", "target": "analytics-prod", "size": "large"}, "justification": "          x"}),
            "invalid_field",
            "justification",
        ),
        (
            json!({"instance": {"name": "1bad", "target": "analytics-prod", "size": "large"}, "justification": reason}),
            "invalid_field",
            "instance.name",
        ),
        (
            json!({"instance": {"name": "load-test", "target": "analytics-prod", "size": "large", "root_password": "Sup3r-Secret-Pw"}, "justification": reason}),
            "malformed_body",
            "instance.root_password",
        ),
    ];
    for (body, code, field) in cases {
        let response = ask(&app, &app.alice(), &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let refused = problem(response).await;
        assert_eq!(refused["code"], code, "{refused}");
        assert_eq!(refused["errors"][0]["field"], field, "{refused}");
        assert!(!refused.to_string().contains("Sup3r-Secret-Pw"));
    }
    let long_comment = json!({"comment": "x".repeat(1_001)});
    let id = pending_request(&app, &large("load-test")).await;
    let refused = problem(act(&app, &carol(&app), &id, "reject", Some(long_comment)).await).await;
    assert_eq!(refused["errors"][0]["field"], "comment", "{refused}");
}

#[tokio::test]
async fn rejected_and_withdrawn_requests_end_without_an_instance() {
    let app = TestApp::spawn().await;
    let rejected = pending_request(&app, &large("load-one")).await;
    let withdrawn = pending_request(&app, &large("load-two")).await;
    let waiting = r#"starrocks_gateway_exception_requests_pending{team="analytics"}"#;
    let text = scrape_until(&app, |text| sample(text, waiting) == Some(2.0)).await;
    assert_eq!(sample(&text, waiting), Some(2.0), "{text}");

    let answer = json_of(
        act(
            &app,
            &carol(&app),
            &rejected,
            "reject",
            Some(json!({"comment": "use medium"})),
        )
        .await,
    )
    .await;
    assert_eq!(answer["status"], "rejected");
    assert_eq!(answer["decided_by"], "carol");
    assert_eq!(answer["comment"], "use medium");
    let late = problem(act(&app, &carol(&app), &rejected, "approve", None).await).await;
    assert_eq!(late["code"], "request_not_pending");

    let not_theirs = problem(act(&app, &carol(&app), &withdrawn, "withdraw", None).await).await;
    assert_eq!(not_theirs["code"], "not_requester");
    let answer = json_of(act(&app, &app.alice(), &withdrawn, "withdraw", None).await).await;
    assert_eq!(answer["status"], "withdrawn");
    let again = problem(act(&app, &app.alice(), &withdrawn, "withdraw", None).await).await;
    assert_eq!(again["code"], "request_not_pending");

    assert!(app.sim_creates().await.is_empty());
    let text = scrape_until(&app, |text| sample(text, waiting) == Some(0.0)).await;
    assert_eq!(sample(&text, waiting), Some(0.0), "{text}");
    let actions: Vec<Value> = [steps(&app, &rejected).await, steps(&app, &withdrawn).await]
        .concat()
        .iter()
        .map(|d| json!([d["action"], d["subject"], d["outcome"]]))
        .collect();
    assert_eq!(
        actions,
        vec![
            json!(["request", "alice", "requested"]),
            json!(["reject", "carol", "rejected"]),
            json!(["approve", "carol", "denied"]),
            json!(["request", "alice", "requested"]),
            json!(["withdraw", "carol", "denied"]),
            json!(["withdraw", "alice", "withdrawn"]),
            json!(["withdraw", "alice", "denied"]),
        ]
    );
}

#[tokio::test]
async fn an_approved_exception_may_give_a_longer_lease_than_the_maximum() {
    let app = TestApp::spawn().await;
    let body = json!({"instance": {"name": "year-cube", "target": "analytics-prod", "size": "small", "lease_days": 120},
        "justification": "Quarterly reports need it through the year end."});
    let asked = json_of(ask(&app, &app.alice(), &body).await).await;
    assert_eq!(asked["waives"], json!(["lease.max"]), "{asked}");

    let id = asked["id"].as_str().expect("id");
    let approved = json_of(act(&app, &carol(&app), id, "approve", None).await).await;
    assert_eq!(approved["status"], "created", "{approved}");

    let instance = approved["instance_id"].as_str().expect("an instance");
    let shown = json_of(
        app.authed(
            Method::GET,
            &format!("/v1/starrocks/{instance}"),
            &app.alice(),
        )
        .send()
        .await
        .expect("answer"),
    )
    .await;
    let ends = chrono::DateTime::parse_from_rfc3339(shown["expires_at"].as_str().expect("a lease"))
        .expect("RFC 3339")
        .timestamp_millis();
    let expected = chrono::Utc::now().timestamp_millis() + 120 * 86_400_000;
    assert!((ends - expected).abs() < 60_000, "{shown}");
}
