//! Quota, idempotency, reconciliation and the decision log, each against SQLite and a real
//! PostgreSQL (`scripts/test` provides the server).

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use starrocks_gateway::config::StorageSettings;
use starrocks_gateway::demo::EXAMPLE_POLICY;
use starrocks_gateway::policy::{Policy, PolicyStore};
use starrocks_gateway::storage::sql::{self, Row, query};
use starrocks_gateway::storage::{StorageError, Store};

use crate::helpers::{
    Db, TestApp, decisions, drop_database, instances_used, metric, problem, reconcile,
    remove_sqlite_files, small_instance,
};

on_both_engines!(
    concurrent_creates_are_admitted_exactly_up_to_the_quota,
    definite_upstream_failures_release_the_reservation,
    an_ambiguous_failure_stays_pending_until_reconciliation_releases_it,
    a_lost_answer_is_committed_by_reconciliation_and_a_retry_does_not_create_twice,
    a_repeated_idempotency_key_replays_the_first_answer,
    an_idempotency_key_is_refused_for_another_body_while_in_flight_or_when_too_long,
    a_restarted_gateway_reconciles_what_was_pending,
    the_decision_log_records_every_outcome_and_filters_and_pages,
    no_table_ever_holds_a_password_or_token,
    a_ledger_that_fails_is_503_and_the_refusal_is_still_recorded,
    retention_prunes_old_decisions_and_expired_keys_and_keeps_the_rest,
    a_graceful_shutdown_writes_the_buffered_decisions,
    a_keyed_create_commits_twice_and_a_dry_run_never_waits_for_a_commit,
    usage_previews_equal_the_ledger_after_creates_releases_and_a_restart,
);

/// What the ledger counts for `team`, summed by the database.
async fn ledger_usage(app: &TestApp, team: &str) -> i64 {
    let row = query(
        "SELECT CAST(COALESCE(SUM(instances), 0) AS BIGINT) AS n FROM reservations \
         WHERE team = $1 AND state IN ('pending', 'committed', 'deleting')",
    )
    .bind(team)
    .fetch_one(app.stack.store.db())
    .await
    .expect("query");
    row.try_get("n").expect("n")
}

async fn dry_run_usage(app: &TestApp, token: &str) -> i64 {
    let answer: Value = app
        .authed(Method::POST, "/v1/starrocks/dry-run", token)
        .json(&small_instance())
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    answer["quota"]["used"]["instances"]
        .as_i64()
        .expect("quota.used")
}

/// The previews (`/v1/me`, the dry-run's quota) show what the ledger holds, at once: after
/// creates, after an ambiguous failure (still counted) and its release by reconciliation,
/// and after a restart reloads them.
async fn usage_previews_equal_the_ledger_after_creates_releases_and_a_restart(db: Db) {
    let mut app = TestApp::builder()
        .settings(|s| s.reconcile.grace_secs = 0)
        .database(db)
        .spawn()
        .await;
    let token = app.alice();
    let mut seen = Vec::new();
    for i in 0..2 {
        assert_eq!(app.create(&token, &named(i)).await.status(), 201);
        seen.push((
            instances_used(&app, &token).await,
            dry_run_usage(&app, &token).await,
        ));
    }
    app.set_faults(json!({"fail_next_creates": 1, "fail_status": 500}))
        .await;
    assert_eq!(app.create(&token, &named(2)).await.status(), 502);
    seen.push((
        instances_used(&app, &token).await,
        dry_run_usage(&app, &token).await,
    ));
    assert_eq!(reconcile(&app).await["released"], 1);
    seen.push((
        instances_used(&app, &token).await,
        dry_run_usage(&app, &token).await,
    ));
    let ledger = ledger_usage(&app, "analytics").await;

    let policy = PolicyStore::fixed(Policy::parse(EXAMPLE_POLICY).expect("valid"));
    app.stack.restart_gateway(policy).await.expect("restarted");
    let token = app.alice();
    seen.push((
        instances_used(&app, &token).await,
        dry_run_usage(&app, &token).await,
    ));

    assert_eq!(seen, vec![(1, 1), (2, 2), (3, 3), (2, 2), (2, 2)]);
    assert_eq!(ledger, 2);
}

/// The gateway's one SQLite connection (the default database).
fn sqlite_of(app: &TestApp) -> &sql::SqliteDb {
    let sql::Db::Sqlite(sqlite) = app.stack.store.db() else {
        panic!("the default database is SQLite");
    };
    sqlite
}

/// On SQLite the one gateway keeps usage in memory: a preview answers at once even while the
/// one connection is busy (here: held by the test), instead of queueing behind the writes.
#[tokio::test]
async fn on_sqlite_a_usage_preview_never_waits_for_the_database() {
    let app = TestApp::builder()
        .settings(|s| s.storage.acquire_timeout_ms = 300)
        .spawn()
        .await;
    let token = app.alice();
    assert_eq!(app.create(&token, &small_instance()).await.status(), 201);
    app.stack.store.flush().await;
    let held = sqlite_of(&app).hold().expect("the one connection");

    let me = app
        .authed(Method::GET, "/v1/me", &token)
        .send()
        .await
        .expect("answer");
    let me_status = me.status();
    let me: Value = me.json().await.expect("JSON");
    let preview = dry_run_usage(&app, &token).await;
    drop(held);

    assert_eq!(me_status, 200);
    assert_eq!(me["teams"][0]["usage"]["instances"], 1);
    assert_eq!(preview, 1);
}

/// While the one SQLite connection stays busy past `storage.acquire_timeout_ms`, the gateway
/// fails closed: creates are `503 storage_unavailable` with nothing sent upstream, and
/// `/readyz` is `503`. Once it is free again, creates go through.
#[tokio::test]
async fn a_busy_sqlite_connection_fails_creates_closed_and_the_gateway_unready() {
    let app = TestApp::builder()
        .settings(|s| s.storage.acquire_timeout_ms = 200)
        .spawn()
        .await;
    let token = app.alice();
    let held = sqlite_of(&app).hold().expect("the one connection");

    let refused = app.create(&token, &small_instance()).await;
    let refused_status = refused.status();
    let refused = problem(refused).await;
    let ready = app.get("/readyz").await.status();
    drop(held);
    let created = app.create(&token, &small_instance()).await.status();

    assert_eq!(refused_status, 503);
    assert_eq!(refused["code"], "storage_unavailable", "{refused}");
    assert_eq!(ready, 503);
    assert_eq!(created, 201);
    assert_eq!(
        app.sim_creates().await.len(),
        1,
        "only the second create went upstream"
    );
    assert_eq!(ledger_usage(&app, "analytics").await, 1);
}

/// Dry-run decisions wait in the background log's buffer; stopping the gateway gracefully
/// writes them before the database closes.
async fn a_graceful_shutdown_writes_the_buffered_decisions(db: Db) {
    let mut app = TestApp::builder().database(db).spawn().await;
    let token = app.alice();
    let answers = join_all((0..20).map(|_| {
        app.authed(Method::POST, "/v1/starrocks/dry-run", &token)
            .json(&small_instance())
            .send()
    }))
    .await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|a| a.status() == 200))
    );

    let policy = PolicyStore::fixed(Policy::parse(EXAMPLE_POLICY).expect("valid"));
    app.stack.restart_gateway(policy).await.expect("restarted");

    let logged = query("SELECT id FROM decisions WHERE action = 'dry_run'")
        .fetch_all(app.stack.store.db())
        .await
        .expect("query");
    assert_eq!(logged.len(), 20);
}

/// A keyed create's durable writes are the reservation (with the key's claim) and the
/// settlement (with the decision and the key's answer): two group commits, however many
/// statements. A dry-run waits for none.
async fn a_keyed_create_commits_twice_and_a_dry_run_never_waits_for_a_commit(db: Db) {
    let app = TestApp::builder().database(db).spawn().await;
    let token = app.alice();
    let url = app.stack.gateway_url.clone();
    app.stack.store.flush().await;
    let before = app.stack.store.transactions();

    let created = create_with_key(&app, &url, &token, "two-commits", &small_instance()).await;
    let after_create = app.stack.store.transactions();
    let dry_run = app
        .authed(Method::POST, "/v1/starrocks/dry-run", &token)
        .json(&small_instance())
        .send()
        .await
        .expect("answer");
    let after_dry_run = app.stack.store.transactions();

    assert_eq!(created.status(), 201);
    assert_eq!(after_create - before, 2);
    assert_eq!(dry_run.status(), 200);
    assert_eq!(
        after_dry_run, after_create,
        "the dry-run's decision is buffered"
    );
    app.stack.store.flush().await;
    assert_eq!(
        app.stack.store.transactions(),
        after_dry_run + 1,
        "and written by the background log"
    );
}

fn named(i: usize) -> Value {
    json!({"name": format!("cube-{i:03}"), "target": "analytics-prod", "size": "small"})
}

async fn create_with_key(
    app: &TestApp,
    url: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(format!("{url}/v1/starrocks"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("answer")
}

async fn concurrent_creates_are_admitted_exactly_up_to_the_quota(db: Db) {
    let app = TestApp::builder().database(db).spawn().await;
    let token = app.alice();
    let bodies: Vec<Value> = (0..64).map(named).collect();

    let responses = join_all(bodies.iter().map(|body| app.create(&token, body))).await;

    let created = responses.iter().filter(|r| r.status() == 201).count();
    assert_eq!(created, 5);
    let mut refused = 0;
    for response in responses.into_iter().filter(|r| r.status() != 201) {
        assert_eq!(response.status(), 403);
        let problem = problem(response).await;
        assert_eq!(problem["code"], "quota_exceeded");
        assert_eq!(
            problem["quota"][0],
            json!({"dimension": "instances", "requested": 1, "used": 5, "allowed": 5, "exceeded": true})
        );
        refused += 1;
    }
    assert_eq!(refused, 59);
    assert_eq!(app.sim_stats().await.creates_received, 5);
    assert_eq!(instances_used(&app, &token).await, 5);
}

#[tokio::test]
async fn two_gateways_sharing_postgresql_never_over_admit() {
    let app = TestApp::builder().database(Db::Postgres).spawn().await;
    let policy = PolicyStore::fixed(Policy::parse(EXAMPLE_POLICY).expect("valid"));
    let second = app
        .stack
        .start_another_gateway(policy)
        .await
        .expect("a second replica");
    let token = app.alice();
    let urls = [app.stack.gateway_url.clone(), second];

    let responses = join_all((0..64).map(|i| {
        app.client
            .post(format!("{}/v1/starrocks", urls[i % 2]))
            .bearer_auth(&token)
            .json(&named(i))
            .send()
    }))
    .await;

    let statuses: Vec<u16> = responses
        .iter()
        .map(|r| r.as_ref().expect("answer").status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 59);
    assert_eq!(app.sim_stats().await.creates_received, 5);
    assert_eq!(instances_used(&app, &token).await, 5);
}

async fn definite_upstream_failures_release_the_reservation(db: Db) {
    // A storage type the cloud does not offer: its 400 is a definite refusal.
    let policy = EXAMPLE_POLICY.replacen("io_type = \"ESSD\"", "io_type = \"NVME\"", 1);
    let app = TestApp::builder()
        .policy(&policy)
        .database(db)
        .spawn()
        .await;

    let refused = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(refused.status(), 502);
    assert_eq!(app.sim_stats().await.creates_received, 1);
    assert_eq!(
        instances_used(&app, &app.alice()).await,
        0,
        "a refused create gives its quota back"
    );
    let decisions = decisions(&app, "").await;
    assert_eq!(decisions["decisions"][0]["outcome"], "failed");
    assert_eq!(decisions["decisions"][0]["error_code"], "DBS.200001");
}

async fn an_ambiguous_failure_stays_pending_until_reconciliation_releases_it(db: Db) {
    let app = TestApp::builder()
        .settings(|s| s.reconcile.grace_secs = 0)
        .database(db)
        .spawn()
        .await;
    app.set_faults(json!({"fail_next_creates": 1, "fail_status": 500}))
        .await;

    let failed = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(failed.status(), 502);
    assert_eq!(
        instances_used(&app, &app.alice()).await,
        1,
        "a 5xx may hide a create: the cost stays reserved"
    );
    let report = reconcile(&app).await;
    assert_eq!(
        report,
        json!({"checked": 1, "committed": 0, "released": 1, "pending": 0, "deleted": 0, "requests_settled": 0})
    );
    assert_eq!(instances_used(&app, &app.alice()).await, 0);
}

async fn a_lost_answer_is_committed_by_reconciliation_and_a_retry_does_not_create_twice(db: Db) {
    let app = TestApp::builder()
        .settings(|s| s.cloud.request_timeout_ms = 1_000)
        .database(db)
        .spawn()
        .await;
    app.set_faults(json!({"lose_next_answers": 1})).await;
    let token = app.alice();
    let url = app.stack.gateway_url.clone();

    let lost = create_with_key(&app, &url, &token, "order-42", &small_instance()).await;

    assert_eq!(lost.status(), 504);
    assert_eq!(
        instances_used(&app, &token).await,
        1,
        "pending while nobody knows"
    );
    let retried_early = create_with_key(&app, &url, &token, "order-42", &small_instance()).await;
    assert_eq!(
        retried_early.status(),
        504,
        "the first answer is replayed, nothing is sent again"
    );
    let report = reconcile(&app).await;
    assert_eq!(report["committed"], 1);
    let retried = create_with_key(&app, &url, &token, "order-42", &small_instance()).await;
    assert_eq!(retried.status(), 201);
    assert_eq!(retried.headers()["idempotent-replayed"], "true");
    let created: Value = retried.json().await.expect("JSON");
    let listed: Value = app
        .client
        .get(format!("{}/_sim/creates", app.stack.simulator_url))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(1),
        "exactly one create reached the cloud"
    );
    assert!(
        created["id"]
            .as_str()
            .is_some_and(|id| id.ends_with("in17"))
    );
    assert_eq!(instances_used(&app, &token).await, 1);
}

async fn a_repeated_idempotency_key_replays_the_first_answer(db: Db) {
    let app = TestApp::builder().database(db).spawn().await;
    let token = app.alice();
    let url = app.stack.gateway_url.clone();

    let first = create_with_key(&app, &url, &token, "k-1", &small_instance()).await;
    let first_headers = first.headers().clone();
    let first: Value = first.json().await.expect("JSON");
    let second = create_with_key(&app, &url, &token, "k-1", &small_instance()).await;
    let second_replayed = second.headers().get("idempotent-replayed").cloned();
    let second_status = second.status();
    let second: Value = second.json().await.expect("JSON");
    let other_employee = create_with_key(
        &app,
        &url,
        &app.token_for("alice2", "analytics"),
        "k-1",
        &small_instance(),
    )
    .await;

    assert!(first_headers.get("idempotent-replayed").is_none());
    assert_eq!(second_status, 201);
    assert_eq!(
        second_replayed
            .as_ref()
            .map(|v| v.to_str().unwrap_or_default()),
        Some("true")
    );
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["job_id"], first["job_id"]);
    assert!(first["root_password"].is_string());
    assert!(
        second.get("root_password").is_none(),
        "a generated password is shown once, never stored"
    );
    assert_eq!(
        other_employee.status(),
        201,
        "keys are scoped to the employee"
    );
    assert_eq!(app.sim_stats().await.creates_received, 2);
}

async fn an_idempotency_key_is_refused_for_another_body_while_in_flight_or_when_too_long(db: Db) {
    let app = TestApp::builder().database(db).spawn().await;
    let token = app.alice();
    let url = app.stack.gateway_url.clone();

    assert_eq!(
        create_with_key(&app, &url, &token, "k-2", &named(1))
            .await
            .status(),
        201
    );
    let reused = create_with_key(&app, &url, &token, "k-2", &named(2)).await;
    let too_long = create_with_key(&app, &url, &token, &"k".repeat(256), &named(3)).await;
    app.set_faults(json!({"hold_next_creates": 1})).await;
    let body = named(4);
    let (slow, concurrent) =
        futures_util::join!(create_with_key(&app, &url, &token, "k-3", &body), async {
            // The first request is at the cloud, its key claimed: now the second arrives.
            app.wait_until_held(1).await;
            let concurrent = create_with_key(&app, &url, &token, "k-3", &body).await;
            app.release_held().await;
            concurrent
        });

    assert_eq!(reused.status(), 422);
    assert_eq!(problem(reused).await["code"], "idempotency_key_reused");
    assert_eq!(too_long.status(), 400);
    assert_eq!(problem(too_long).await["code"], "invalid_idempotency_key");
    assert_eq!(slow.status(), 201);
    assert_eq!(concurrent.status(), 409);
    assert_eq!(
        problem(concurrent).await["code"],
        "idempotency_key_in_flight"
    );
    assert_eq!(app.sim_stats().await.creates_received, 2);
}

async fn a_restarted_gateway_reconciles_what_was_pending(db: Db) {
    let app = TestApp::builder()
        .settings(|s| {
            s.cloud.request_timeout_ms = 1_000;
            // The first gateway never reconciles on its own: only the "restarted" one does.
            s.reconcile.interval_secs = 0;
        })
        .database(db)
        .spawn()
        .await;
    app.set_faults(json!({"lose_next_answers": 1})).await;
    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        504
    );
    assert_eq!(ledger_states(&app).await, vec!["pending".to_owned()]);

    let policy = PolicyStore::fixed(Policy::parse(EXAMPLE_POLICY).expect("valid"));
    let mut app = app;
    app.stack
        .restart_gateway(policy)
        .await
        .expect("the restarted gateway");
    let mut states = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        states = ledger_states(&app).await;
        if states == ["committed"] {
            break;
        }
    }

    assert_eq!(states, vec!["committed".to_owned()]);
}

async fn ledger_states(app: &TestApp) -> Vec<String> {
    rows(app, "SELECT state FROM reservations ORDER BY created_at")
        .await
        .iter()
        .map(|row| row.try_get::<String>("state").expect("state"))
        .collect()
}

/// Rows of `sql`, through the gateway's own connection (a SQLite file has one owner), after
/// the decision log's buffer is written.
async fn rows(app: &TestApp, sql: &str) -> Vec<Row> {
    app.stack.store.flush().await;
    query(sql.to_owned())
        .fetch_all(app.stack.store.db())
        .await
        .expect("query")
}

async fn the_decision_log_records_every_outcome_and_filters_and_pages(db: Db) {
    let app = TestApp::builder().database(db).spawn().await;
    let bob = app.token_for("bob", "payments");
    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        201
    );
    assert_eq!(
        app.create(
            &bob,
            &json!({"name": "big-cube", "target": "payments-ledger", "size": "medium"})
        )
        .await
        .status(),
        403
    );
    let dry = app
        .authed(Method::POST, "/v1/starrocks/dry-run", &app.alice())
        .json(&small_instance())
        .send()
        .await
        .expect("answer");
    assert_eq!(dry.status(), 200);

    let all = decisions(&app, "").await;
    let denied = decisions(&app, "?outcome=denied").await;
    let payments = decisions(&app, "?team=payments").await;
    let first_page = decisions(&app, "?limit=2").await;
    let next = first_page["next_page"].as_str().expect("a next page");
    let second_page = decisions(&app, &format!("?limit=2&page={next}")).await;
    let future = decisions(&app, "?since=2999-01-01T00:00:00Z").await;
    let non_admin = app
        .authed(Method::GET, "/v1/admin/decisions", &app.alice())
        .send()
        .await
        .expect("answer");
    let bad_time = app
        .authed(
            Method::GET,
            "/v1/admin/decisions?since=yesterday",
            &app.admin(),
        )
        .send()
        .await
        .expect("answer");

    let actions: Vec<&str> = all["decisions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["action"].as_str())
        .collect();
    assert_eq!(actions, vec!["dry_run", "create", "create"], "newest first");
    let created = &all["decisions"][2];
    assert_eq!(created["outcome"], "created");
    assert_eq!(created["subject"], "alice");
    assert_eq!(created["team"], "analytics");
    assert_eq!(created["target"], "analytics-prod");
    assert_eq!(created["upstream_status"], 201);
    assert!(
        created["instance_id"]
            .as_str()
            .is_some_and(|id| id.ends_with("in17"))
    );
    assert_eq!(created["quota_before"]["instances"], 0);
    assert_eq!(created["quota_after"]["instances"], 1);
    assert!(created["rules"].as_array().is_some_and(|r| r.len() >= 10));
    assert!(
        created["policy_revision"]
            .as_str()
            .is_some_and(|r| r.starts_with("sha256:"))
    );
    assert_eq!(denied["decisions"].as_array().map(Vec::len), Some(1));
    assert_eq!(denied["decisions"][0]["error_code"], "policy_denied");
    assert_eq!(payments["decisions"][0]["subject"], "bob");
    assert_eq!(first_page["decisions"].as_array().map(Vec::len), Some(2));
    assert_eq!(second_page["decisions"].as_array().map(Vec::len), Some(1));
    assert!(second_page.get("next_page").is_none());
    assert_eq!(second_page["decisions"][0]["id"], all["decisions"][2]["id"]);
    assert_eq!(future["decisions"], json!([]));
    assert_eq!(non_admin.status(), 403);
    assert_eq!(bad_time.status(), 400);
}

async fn no_table_ever_holds_a_password_or_token(db: Db) {
    let app = TestApp::builder().database(db).spawn().await;
    let token = app.alice();
    let url = app.stack.gateway_url.clone();
    let given = json!({"name": "cube-given", "target": "analytics-prod", "size": "small", "root_password": "Given-Pa55word"});
    assert_eq!(
        create_with_key(&app, &url, &token, "k-secret-1", &given)
            .await
            .status(),
        201
    );
    let generated: Value = create_with_key(&app, &url, &token, "k-secret-2", &named(7))
        .await
        .json()
        .await
        .expect("JSON");
    let dry = json!({"name": "cube-dry", "target": "analytics-prod", "size": "small", "root_password": "DryRun-Pa55word"});
    app.authed(Method::POST, "/v1/starrocks/dry-run", &token)
        .json(&dry)
        .send()
        .await
        .expect("answer");

    // An approved exception's generated password waits, sealed, until its requester reads it.
    let asked: Value = app
        .authed(Method::POST, "/v1/requests", &token)
        .json(&json!({"instance": {"name": "cube-excepted", "target": "analytics-prod", "size": "large"},
            "justification": "Load tests need the large size."}))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    let exception = asked["id"].as_str().expect("an exception request");
    let approver = app.token_with(
        "carol",
        &["analytics"],
        &[starrocks_gateway::demo::DEMO_APPROVER_GROUP],
    );
    let approved = app
        .authed(
            Method::POST,
            &format!("/v1/requests/{exception}/approve"),
            &approver,
        )
        .send()
        .await
        .expect("answer");
    assert_eq!(approved.status(), 200);

    let signature = token.rsplit('.').next().expect("a signature").to_owned();
    app.stack.store.flush().await;
    let mut dumps = Vec::new();
    for table in [
        "reservations",
        "idempotency_keys",
        "decisions",
        "exception_requests",
    ] {
        let dump: String = rows(&app, &format!("SELECT * FROM {table}"))
            .await
            .iter()
            .flat_map(|row| {
                (0..row.len()).map(move |i| {
                    row.try_get::<Option<String>>(i)
                        .ok()
                        .flatten()
                        .unwrap_or_default()
                })
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!dump.is_empty(), "{table} has rows to search");
        dumps.push((table, dump));
    }
    let waiting: Value = app
        .authed(Method::GET, &format!("/v1/requests/{exception}"), &token)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    let generated_password = generated["root_password"].as_str().expect("generated");
    let excepted_password = waiting["root_password"].as_str().expect("shown once");
    for (table, dump) in dumps {
        for secret in [
            "Given-Pa55word",
            "DryRun-Pa55word",
            generated_password,
            excepted_password,
            signature.as_str(),
            "Bearer",
        ] {
            assert!(!dump.contains(secret), "{table} holds a secret");
        }
    }
}

/// The ledger fails while the decision log still works: the create is refused before anything
/// is sent, and the refusal is in the log like every other exit.
async fn a_ledger_that_fails_is_503_and_the_refusal_is_still_recorded(db: Db) {
    let app = TestApp::builder().database(db).spawn().await;
    rows(&app, "DROP TABLE reservations").await;

    let response = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(response.status(), 503);
    assert_eq!(problem(response).await["code"], "storage_unavailable");
    assert_eq!(app.sim_stats().await.creates_received, 0);
    let log = decisions(&app, "?outcome=failed").await;
    assert_eq!(log["decisions"][0]["action"], "create", "{log}");
    assert_eq!(log["decisions"][0]["error_code"], "storage_unavailable");
    assert_eq!(log["decisions"][0]["subject"], "alice");
}

#[tokio::test]
async fn a_lost_database_is_503_and_nothing_reaches_the_cloud() {
    let app = TestApp::builder().database(Db::Postgres).spawn().await;
    drop_database(&app).await;

    let response = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(response.status(), 503);
    assert_eq!(problem(response).await["code"], "storage_unavailable");
    assert_eq!(app.sim_stats().await.creates_received, 0);
}

/// The SQLite file of a running gateway removed, or replaced by another one: readiness fails,
/// creates are refused before anything is sent, so the ledger can never restart from zero.
#[tokio::test]
async fn a_removed_or_replaced_database_file_fails_closed() {
    for replace in [false, true] {
        let app = TestApp::spawn().await;
        let file = sqlite_file(&app);
        assert_eq!(app.get("/readyz").await.status(), 200);
        std::fs::remove_file(&file).expect("remove the database file");
        if replace {
            std::fs::write(&file, b"").expect("an empty file in its place");
        }

        let ready = app.get("/readyz").await;
        let response = app.create(&app.alice(), &small_instance()).await;

        assert_eq!(ready.status(), 503, "replaced: {replace}");
        let body: Value = ready.json().await.expect("JSON");
        assert_eq!(body["database"], false);
        assert_eq!(response.status(), 503);
        assert_eq!(problem(response).await["code"], "storage_unavailable");
        assert_eq!(app.sim_stats().await.creates_received, 0);
    }
}

/// A database without the ledger is refused unless creating one was asked for.
#[tokio::test]
async fn an_empty_database_is_refused_unless_initialisation_is_asked_for() {
    let sqlite = std::env::temp_dir().join(format!("srgw-empty-{}.db", uuid::Uuid::new_v4()));
    for url in [
        format!("sqlite://{}", sqlite.display()),
        crate::helpers::fresh_postgres_database().await,
    ] {
        let mut settings = StorageSettings {
            url: url.clone().into(),
            ..StorageSettings::default()
        };
        let refused = Store::connect(&settings).await;
        settings.create_if_missing = true;
        let created = Store::connect(&settings).await;

        assert!(
            matches!(
                refused,
                Err(StorageError::Missing(_) | StorageError::NoLedger)
            ),
            "{url}: {refused:?}"
        );
        assert!(created.is_ok(), "{url}: {created:?}");
    }
    remove_sqlite_files(&sqlite);
}

/// WAL runs in exclusive locking mode: no memory-mapped `-shm` index exists whose loss could
/// kill the process (SIGBUS), so a failing file is an I/O error like any other.
#[tokio::test]
async fn the_sqlite_file_has_no_shared_memory_index() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        201
    );
    let file = sqlite_file(&app);
    let wal = std::path::PathBuf::from(format!("{}-wal", file.display()));
    let shm = std::path::PathBuf::from(format!("{}-shm", file.display()));

    assert!(wal.exists(), "the database is in WAL mode");
    assert!(
        !shm.exists(),
        "no shared-memory index beside {}",
        file.display()
    );
}

/// A database that cannot be written is refused at start, naming the file; so is one that
/// another gateway owns.
#[tokio::test]
async fn a_read_only_or_owned_database_is_refused_at_start() {
    let path = std::env::temp_dir().join(format!("srgw-ro-{}.db", uuid::Uuid::new_v4()));
    let writable = StorageSettings {
        url: format!("sqlite://{}", path.display()).into(),
        create_if_missing: true,
        ..StorageSettings::default()
    };
    let owner = Store::connect(&writable).await.expect("created");
    owner.ping().await.expect("a writable database is ready");
    let second = Store::connect(&writable).await;
    owner.close().await;
    let read_only = StorageSettings {
        url: format!("sqlite://{}?mode=ro", path.display()).into(),
        ..StorageSettings::default()
    };

    let refused = Store::connect(&read_only).await;

    assert!(
        matches!(&second, Err(StorageError::Locked(file)) if *file == path.display().to_string()),
        "{second:?}"
    );
    assert!(
        matches!(&refused, Err(StorageError::Unwritable(file, _)) if *file == path.display().to_string()),
        "{refused:?}"
    );
    remove_sqlite_files(&path);
}

fn sqlite_file(app: &TestApp) -> std::path::PathBuf {
    use secrecy::ExposeSecret;
    let url = app.stack.settings.storage.url.expose_secret();
    url.strip_prefix("sqlite://").expect("a SQLite URL").into()
}

/// Decisions past their retention and expired idempotency records are pruned in the
/// background; recent ones stay, and the row counts reach the metrics.
async fn retention_prunes_old_decisions_and_expired_keys_and_keeps_the_rest(db: Db) {
    let app = TestApp::builder()
        .database(db)
        .settings(|s| {
            s.storage.decision_retention_days = 1;
            s.storage.prune_interval_secs = 1;
        })
        .spawn()
        .await;
    let dry_run = app
        .authed(Method::POST, "/v1/starrocks/dry-run", &app.alice())
        .json(&small_instance())
        .send()
        .await
        .expect("answer");
    assert_eq!(dry_run.status(), 200);
    rows(
        &app,
        "INSERT INTO decisions (id, at, request_id, action, subject, outcome, rules, latency_ms) \
         VALUES ('ancient', 1000, 'r-0', 'dry_run', 'alice', 'allowed', '[]', 1)",
    )
    .await;
    rows(
        &app,
        "INSERT INTO idempotency_keys (subject, idem_key, request_hash, state, created_at, expires_at) \
         VALUES ('alice', 'stale', 'h', 'done', 0, 1)",
    )
    .await;

    let mut remaining = (usize::MAX, usize::MAX);
    for _ in 0..50 {
        remaining = (
            rows(&app, "SELECT id FROM decisions WHERE id = 'ancient'")
                .await
                .len(),
            rows(&app, "SELECT idem_key FROM idempotency_keys")
                .await
                .len(),
        );
        if remaining == (0, 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    assert_eq!(remaining, (0, 0), "old decision and expired key pruned");
    assert_eq!(
        rows(&app, "SELECT id FROM decisions").await.len(),
        1,
        "the recent decision stays"
    );
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("starrocks_gateway_storage_rows{table=\"decisions\"}"),
        "{metrics}"
    );
    for table in ["decisions", "idempotency_keys"] {
        let pruned = format!("starrocks_gateway_storage_pruned_rows_total{{table=\"{table}\"}}");
        assert!(
            metric(&app, &pruned).await >= 1.0,
            "{table}: the pruned rows are counted"
        );
    }
}

#[tokio::test]
async fn readiness_reports_a_lost_database() {
    let app = TestApp::builder().database(Db::Postgres).spawn().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    drop_database(&app).await;

    let ready = app.get("/readyz").await;

    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.expect("JSON");
    assert_eq!(body["database"], false);
}
