//! The decision log leaving the database: the NDJSON export for admins, and the stream to a
//! file rotated by size (`audit.stream`), both in the versioned line schema.

use reqwest::Method;
use serde_json::{Value, json};
use starrocks_gateway::config::StreamTarget;

use crate::helpers::{TestApp, problem, small_instance};

const SCHEMA: &str = "starrocks-gateway.decision.v1";

async fn export(app: &TestApp, query: &str, token: &str) -> reqwest::Response {
    app.authed(
        Method::GET,
        &format!("/v1/admin/decisions/export{query}"),
        token,
    )
    .send()
    .await
    .expect("answer")
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

async fn dry_run(app: &TestApp, name: &str) -> Value {
    let answer = app
        .authed(Method::POST, "/v1/starrocks/dry-run", &app.alice())
        .json(&json!({"name": name, "target": "analytics-prod", "size": "small"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 200);
    answer.json().await.expect("JSON")
}

#[tokio::test]
async fn the_export_streams_every_decision_in_its_range_as_versioned_ndjson_lines() {
    let app = TestApp::spawn().await;
    let before_all = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let created = app.create(&app.alice(), &small_instance()).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("JSON");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let dry = dry_run(&app, "exported").await;

    let everything = export(&app, "", &app.admin()).await;
    assert_eq!(everything.status(), 200);
    assert_eq!(everything.headers()["content-type"], "application/x-ndjson");
    let everything = lines(&everything.text().await.expect("text"));
    let later = lines(
        &export(&app, &format!("?since={between}"), &app.admin())
            .await
            .text()
            .await
            .expect("text"),
    );
    let earlier = lines(
        &export(
            &app,
            &format!("?since={before_all}&until={between}"),
            &app.admin(),
        )
        .await
        .text()
        .await
        .expect("text"),
    );

    assert_eq!(everything.len(), 2, "{everything:#?}");
    assert!(everything.iter().all(|line| line["schema"] == SCHEMA));
    assert_eq!(everything[0]["action"], "dry_run", "newest first");
    assert_eq!(everything[0]["decision_id"], dry["decision"]["decision_id"]);
    assert_eq!(everything[1]["action"], "create");
    assert_eq!(everything[1]["decision_id"], created["decision_id"]);
    assert_eq!(everything[1]["outcome"], "created");
    assert!(
        everything[1]["rules"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(later.len(), 1);
    assert_eq!(later[0]["action"], "dry_run");
    assert_eq!(earlier.len(), 1);
    assert_eq!(earlier[0]["action"], "create");
}

#[tokio::test]
async fn the_export_is_for_admins_and_names_a_bad_time() {
    let app = TestApp::spawn().await;

    let employee = export(&app, "", &app.alice()).await;
    let not_a_time = export(&app, "?since=yesterday", &app.admin()).await;
    let not_a_time_either = export(&app, "?until=2026-13-01", &app.admin()).await;
    let backwards = export(
        &app,
        "?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
        &app.admin(),
    )
    .await;

    assert_eq!(employee.status(), 403);
    assert_eq!(problem(employee).await["code"], "admin_required");
    for (answer, field) in [(not_a_time, "since"), (not_a_time_either, "until")] {
        assert_eq!(answer.status(), 400, "{field}");
        let problem = problem(answer).await;
        assert_eq!(problem["code"], "invalid_parameter");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    assert_eq!(backwards.status(), 200);
    assert_eq!(backwards.text().await.expect("text"), "", "an empty range");
}

#[tokio::test]
async fn an_export_from_a_database_that_fails_is_a_503_not_an_empty_200() {
    let app = TestApp::spawn().await;
    starrocks_gateway::storage::sql::query("DROP TABLE decisions")
        .execute(app.stack.store.db())
        .await
        .expect("dropped");

    let answer = export(&app, "", &app.admin()).await;

    assert_eq!(answer.status(), 503);
    assert_eq!(problem(answer).await["code"], "storage_unavailable");
}

#[tokio::test]
async fn the_stream_writes_each_decision_to_a_file_rotated_only_between_lines() {
    let dir = std::env::temp_dir().join(format!(
        "srgw-audit-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("directory");
    let file = dir.join("decisions.jsonl");
    let app = TestApp::builder()
        .settings({
            let file = file.clone();
            move |settings| {
                settings.audit.stream = StreamTarget::File;
                settings.audit.file = Some(file);
                settings.audit.max_file_bytes = 4_096;
                settings.audit.max_files = 50;
            }
        })
        .spawn()
        .await;

    let mut decision_ids = Vec::new();
    for n in 0..12 {
        let dry = dry_run(&app, &format!("streamed-{n}")).await;
        decision_ids.push(dry["decision"]["decision_id"].clone());
    }
    let mut streamed = Vec::new();
    for _ in 0..100 {
        streamed = std::fs::read_dir(&dir)
            .expect("the stream's directory")
            .flat_map(|entry| {
                let text = std::fs::read_to_string(entry.expect("entry").path()).expect("text");
                lines(&text)
            })
            .collect();
        if streamed.len() == decision_ids.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let files = std::fs::read_dir(&dir).expect("directory").count();
    drop(std::fs::remove_dir_all(&dir));

    assert!(files >= 2, "12 lines of ~1.5 KB passed 4 KiB: rotated");
    assert_eq!(streamed.len(), decision_ids.len(), "every line whole, once");
    for id in &decision_ids {
        let line = streamed
            .iter()
            .find(|line| &line["decision_id"] == id)
            .unwrap_or_else(|| panic!("decision {id} was not streamed"));
        assert_eq!(line["schema"], SCHEMA);
        assert_eq!(line["action"], "dry_run");
        assert_eq!(line["subject"], "alice");
    }
}
