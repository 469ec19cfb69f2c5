//! Policy at the HTTP surface: dry-run, catalog, me, teams, labels, audit mode and reload.

use reqwest::Method;
use serde_json::json;
use starrocks_gateway::demo::EXAMPLE_POLICY;

use crate::helpers::{TestApp, json_of, problem, small_instance};

#[tokio::test]
async fn a_dry_run_returns_the_decision_and_the_body_a_create_sends_and_sends_nothing() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "sales-cube", "target": "analytics-prod", "size": "medium",
        "root_password": "Given-Pa55word", "labels": {"Owner": "alice"}});

    let dry = app
        .authed(Method::POST, "/v1/starrocks/dry-run", &app.alice())
        .json(&body)
        .send()
        .await
        .expect("answer");

    assert_eq!(dry.status(), 200);
    let dry = json_of(dry).await;
    assert_eq!(
        app.sim_stats().await.creates_received,
        0,
        "a dry-run sends nothing"
    );
    assert_eq!(
        app.sim_stats().await.tokens_issued,
        0,
        "a dry-run does not even fetch a token"
    );
    assert_eq!(dry["decision"]["allowed"], true);
    assert!(
        dry["decision"]["rules"]
            .as_array()
            .is_some_and(|r| r.len() >= 10)
    );
    assert!(
        dry["decision"]["mutations"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(
        dry["decision"]["policy_revision"]
            .as_str()
            .is_some_and(|r| r.starts_with("sha256:"))
    );
    assert_eq!(dry["upstream"]["body"]["db_root_pwd"], "[REDACTED]");
    assert!(!dry.to_string().contains("Given-Pa55word"));
    assert_eq!(dry["labels"], json!({"owner": "alice"}));

    let created = app.create(&app.alice(), &body).await;
    assert_eq!(created.status(), 201);
    let sent = &app.sim_creates().await[0];
    let mut sent_body = sent.body.clone();
    sent_body["db_root_pwd"] = json!("[REDACTED]");
    assert_eq!(
        sent_body, dry["upstream"]["body"],
        "dry-run equals what create sends"
    );
    assert_eq!(
        dry["upstream"]["path"],
        format!(
            "/v3/{}/instances/{}/starrocks",
            sent.project_id, sent.instance_id
        )
    );
}

#[tokio::test]
async fn a_denied_dry_run_is_200_with_every_failed_rule_and_no_upstream_call() {
    let app = TestApp::spawn().await;
    let bob = app.token_for("bob", "payments");
    let body = json!({"name": "sneaky", "target": "analytics-prod", "size": "medium"});

    let answer = app
        .authed(Method::POST, "/v1/starrocks/dry-run", &bob)
        .json(&body)
        .send()
        .await
        .expect("answer");
    let status = answer.status();
    let dry = json_of(answer).await;

    assert_eq!(status, 200);
    assert_eq!(
        app.sim_stats().await.creates_received,
        0,
        "no upstream call"
    );
    assert_eq!(dry["decision"]["allowed"], false);
    assert!(dry.get("upstream").is_none());
    let failed: Vec<&str> = dry["decision"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| r["passed"] == false)
        .filter_map(|r| r["rule"].as_str())
        .collect();
    assert_eq!(failed, vec!["target.allowed", "size.allowed"]);
}

#[tokio::test]
async fn a_create_denied_by_several_rules_lists_them_all() {
    let app = TestApp::spawn().await;
    let bob = app.token_for("bob", "payments");
    let body =
        json!({"name": "sneaky", "target": "analytics-prod", "size": "medium", "version": "3.3"});

    let problem = problem(app.create(&bob, &body).await).await;

    let rules: Vec<&str> = problem["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter_map(|v| v["rule"].as_str())
        .collect();
    assert_eq!(
        rules,
        vec!["target.allowed", "size.allowed", "version.allowed"]
    );
}

#[tokio::test]
async fn an_audit_rule_reports_but_lets_the_create_through() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "sales-cube", "target": "analytics-prod", "size": "small", "time_zone": "UTC-05:00"});

    let dry = json_of(
        app.authed(Method::POST, "/v1/starrocks/dry-run", &app.alice())
            .json(&body)
            .send()
            .await
            .expect("answer"),
    )
    .await;
    let created = app.create(&app.alice(), &body).await;

    let audited = dry["decision"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["rule"] == "time_zone.allowed")
        .cloned();
    assert_eq!(
        audited.as_ref().map(|r| (&r["mode"], &r["passed"])),
        Some((&json!("audit"), &json!(false)))
    );
    assert_eq!(created.status(), 201);
    assert_eq!(app.sim_creates().await[0].body["time_zone"], "UTC-05:00");
}

#[tokio::test]
async fn the_catalog_shows_what_the_team_may_order() {
    let app = TestApp::spawn().await;

    let catalog = json_of(
        app.authed(Method::GET, "/v1/catalog", &app.alice())
            .send()
            .await
            .expect("answer"),
    )
    .await;

    assert_eq!(catalog["team"], "analytics");
    let sizes: Vec<&str> = catalog["sizes"]
        .as_array()
        .expect("sizes")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(sizes, vec!["small", "medium"]);
    assert_eq!(catalog["sizes"][1]["fe"]["count"], 3);
    assert_eq!(catalog["sizes"][1]["storage_gb"], 3 * 100 + 3 * 500);
    assert_eq!(
        catalog["targets"],
        json!(["analytics-dev", "analytics-east", "analytics-prod"])
    );
    assert_eq!(catalog["versions"], json!(["3.1", "3.3"]));
    assert_eq!(
        catalog["quota"],
        json!({"instances": 5, "nodes": 30, "storage_gb": 10000})
    );
    assert_eq!(catalog["labels"]["max_count"], 4);
    assert_eq!(catalog["sys_tags"]["_sys_enterprise_project_id"], "0");
    assert_eq!(
        catalog["exceptable"],
        json!(["size.allowed", "version.allowed", "lease.max"])
    );
    assert_eq!(catalog["exception_sizes"], json!(["large"]));
    let payments = json_of(
        app.authed(
            Method::GET,
            "/v1/catalog",
            &app.token_for("bob", "payments"),
        )
        .send()
        .await
        .expect("answer"),
    )
    .await;
    assert_eq!(
        payments["exception_sizes"],
        json!([]),
        "nothing is exceptable"
    );
}

#[tokio::test]
async fn an_employee_in_two_teams_must_name_one() {
    let app = TestApp::spawn().await;
    let dana = app.token_with("dana", &["analytics", "payments"], &[]);
    let ledger = json!({"name": "ledger-cube", "target": "payments-ledger", "size": "small"});

    let unnamed = app.create(&dana, &ledger).await;
    let named = app
        .authed(Method::POST, "/v1/starrocks", &dana)
        .header("X-Team", "payments")
        .json(&ledger)
        .send()
        .await
        .expect("answer");
    // The team is chosen by the header alone, so a body can never contradict it.
    let team_in_body = app
        .create(
            &dana,
            &json!({"name": "ledger-two", "target": "payments-ledger", "size": "small", "team": "payments"}),
        )
        .await;
    let stranger = app
        .authed(Method::POST, "/v1/starrocks", &dana)
        .header("X-Team", "marketing")
        .json(&ledger)
        .send()
        .await
        .expect("answer");
    let catalog = app
        .authed(Method::GET, "/v1/catalog", &dana)
        .send()
        .await
        .expect("answer");

    assert_eq!(unnamed.status(), 400);
    let unnamed = problem(unnamed).await;
    assert_eq!(unnamed["code"], "team_required");
    assert!(
        unnamed["detail"]
            .as_str()
            .is_some_and(|d| d.contains("analytics, payments"))
    );
    assert_eq!(named.status(), 201);
    assert_eq!(team_in_body.status(), 400);
    let team_in_body = problem(team_in_body).await;
    assert!(
        team_in_body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("unknown field `team`")),
        "{team_in_body}"
    );
    let tags = &app.sim_creates().await[0].body["tags_info"]["sys_tags"][0];
    assert_eq!(
        tags["value"], "7a3c9e1f-52b4-4d8e-9f6a-0c1b2d3e4f50",
        "the payments enterprise project"
    );
    assert_eq!(stranger.status(), 403);
    assert_eq!(problem(stranger).await["code"], "not_team_member");
    assert_eq!(catalog.status(), 400);
}

#[tokio::test]
async fn me_shows_the_employee_as_the_gateway_sees_them() {
    let app = TestApp::spawn().await;

    let dana = json_of(
        app.authed(
            Method::GET,
            "/v1/me",
            &app.token_with("dana", &["analytics", "marketing"], &[]),
        )
        .send()
        .await
        .expect("answer"),
    )
    .await;
    let admin = json_of(
        app.authed(Method::GET, "/v1/me", &app.admin())
            .send()
            .await
            .expect("answer"),
    )
    .await;

    assert_eq!(dana["subject"], "dana");
    assert_eq!(dana["email"], "dana@example.com");
    assert_eq!(
        dana["teams"],
        json!([
            {"name": "analytics", "known": true,
             "quota": {"instances": 5, "nodes": 30, "storage_gb": 10000},
             "usage": {"instances": 0, "nodes": 0, "storage_gb": 0}},
            {"name": "marketing", "known": false},
        ])
    );
    assert_eq!(dana["admin"], false);
    assert!(
        dana["policy_revision"]
            .as_str()
            .is_some_and(|r| r.starts_with("sha256:"))
    );
    assert_eq!(admin["admin"], true);
}

#[tokio::test]
async fn labels_are_checked_kept_and_never_sent_upstream() {
    let app = TestApp::spawn().await;
    let labelled = json!({"name": "sales-cube", "target": "analytics-prod", "size": "small", "labels": {"OWNER": "alice", "env": "prod"}});
    let shadowing = json!({"name": "sales-cube", "target": "analytics-prod", "size": "small", "labels": {"_sys_enterprise_project_id": "42"}});

    let created = app.create(&app.alice(), &labelled).await;
    let refused = app.create(&app.alice(), &shadowing).await;

    assert_eq!(created.status(), 201);
    assert_eq!(
        json_of(created).await["labels"],
        json!({"owner": "alice", "env": "prod"})
    );
    assert!(
        !app.sim_creates().await[0]
            .body
            .to_string()
            .contains("alice"),
        "labels stay in the gateway"
    );
    assert_eq!(refused.status(), 403);
    assert_eq!(
        problem(refused).await["violations"][0]["rule"],
        "labels.reserved"
    );
}

async fn revision(app: &TestApp) -> String {
    json_of(
        app.authed(Method::GET, "/v1/me", &app.alice())
            .send()
            .await
            .expect("answer"),
    )
    .await["policy_revision"]
        .as_str()
        .expect("revision")
        .to_owned()
}

#[tokio::test]
async fn an_admin_reload_swaps_in_a_good_file() {
    let app = TestApp::spawn().await;
    let before = revision(&app).await;
    let medium = json!({"name": "cube-medium", "target": "analytics-prod", "size": "medium"});
    std::fs::write(
        app.policy_file(),
        EXAMPLE_POLICY.replacen(
            "allowed_sizes = [\"small\", \"medium\"]",
            "allowed_sizes = [\"small\"]",
            1,
        ),
    )
    .expect("write");

    let reloaded = app
        .authed(Method::POST, "/v1/admin/policy/reload", &app.admin())
        .send()
        .await
        .expect("answer");

    assert_eq!(reloaded.status(), 200);
    let reloaded = json_of(reloaded).await;
    assert_eq!(reloaded["previous_revision"], before.as_str());
    assert_eq!(reloaded["changed"], true);
    assert_ne!(revision(&app).await, before);
    assert_eq!(
        app.create(&app.alice(), &medium).await.status(),
        403,
        "the new policy is in force"
    );
}

#[tokio::test]
async fn a_broken_file_keeps_the_last_good_policy_and_the_admin_gets_the_error() {
    let app = TestApp::spawn().await;
    let before = revision(&app).await;
    std::fs::write(
        app.policy_file(),
        EXAMPLE_POLICY.replacen("fe_volume_gb = 50", "fe_volume_gb = 55", 1),
    )
    .expect("write");

    let refused = app
        .authed(Method::POST, "/v1/admin/policy/reload", &app.admin())
        .send()
        .await
        .expect("answer");

    assert_eq!(refused.status(), 422);
    let refused = problem(refused).await;
    assert_eq!(refused["code"], "policy_invalid");
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("sizes.small.fe_volume_gb"))
    );
    assert_eq!(revision(&app).await, before);
    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        201
    );
}

#[tokio::test]
async fn a_non_admin_may_not_reload() {
    let app = TestApp::spawn().await;

    let refused = app
        .authed(Method::POST, "/v1/admin/policy/reload", &app.alice())
        .send()
        .await
        .expect("answer");

    assert_eq!(refused.status(), 403);
    assert_eq!(problem(refused).await["code"], "admin_required");
}

#[tokio::test]
async fn a_changed_file_is_picked_up_by_the_watcher_and_a_broken_one_is_not() {
    let app = TestApp::builder()
        .settings(|s| s.policy.watch_interval_secs = 1)
        .spawn()
        .await;
    let before = revision(&app).await;

    std::fs::write(
        app.policy_file(),
        EXAMPLE_POLICY.replacen("max_count = 4", "max_count = 3", 1),
    )
    .expect("write");
    let mut after = before.clone();
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = revision(&app).await;
        if after != before {
            break;
        }
    }
    assert_ne!(after, before, "the watcher reloaded the changed file");

    std::fs::write(app.policy_file(), "this is not a policy").expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(
        revision(&app).await,
        after,
        "a broken file never replaces a good policy"
    );
}

/// Lays out `dir` as the kubelet mounts a ConfigMap: the file is a symlink through `..data`,
/// itself a symlink to a timestamped directory, swapped atomically on every update.
fn mount_configmap(dir: &std::path::Path, version: &str, policy: &str) {
    use std::os::unix::fs::symlink;
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&data).expect("data directory");
    std::fs::write(data.join("policy.toml"), policy).expect("policy file");
    let staged = dir.join("..data_tmp");
    symlink(format!("..{version}"), &staged).expect("staged link");
    std::fs::rename(&staged, dir.join("..data")).expect("atomic swap");
    if !dir.join("policy.toml").exists() {
        symlink("..data/policy.toml", dir.join("policy.toml")).expect("file link");
    }
}

#[tokio::test]
async fn a_configmap_update_by_symlink_swap_is_reloaded() {
    let dir = std::env::temp_dir().join(format!(
        "srgw-configmap-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    mount_configmap(&dir, "2026_11_29_10_00_00.1", EXAMPLE_POLICY);
    let app = TestApp::builder()
        .policy_at(dir.join("policy.toml"))
        .settings(|s| s.policy.watch_interval_secs = 1)
        .spawn()
        .await;
    let before = revision(&app).await;

    mount_configmap(
        &dir,
        "2026_11_29_10_05_00.2",
        &EXAMPLE_POLICY.replacen("max_count = 4", "max_count = 3", 1),
    );
    let mut after = before.clone();
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = revision(&app).await;
        if after != before {
            break;
        }
    }
    drop(std::fs::remove_dir_all(&dir));

    assert_ne!(
        after, before,
        "the swapped file was reloaded without a restart"
    );
}

#[tokio::test]
async fn reloading_an_embedded_policy_is_409() {
    let app = TestApp::builder().embedded_policy().spawn().await;
    let admin = app
        .stack
        .idp
        .mint_for(
            "erin",
            "erin@example.com",
            &["analytics"],
            &[starrocks_gateway::demo::DEMO_ADMIN_ROLE],
            600,
        )
        .expect("token");

    let response = app
        .authed(Method::POST, "/v1/admin/policy/reload", &admin)
        .send()
        .await
        .expect("answer");

    assert_eq!(response.status(), 409);
    assert_eq!(problem(response).await["code"], "policy_not_reloadable");
}

/// The example config with its `[cloud]` replaced by this stack's (its simulators, one per
/// region), in a temporary file.
fn config_for_the_simulator(app: &TestApp) -> std::path::PathBuf {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/gateway.example.toml"
    ))
    .expect("the example config");
    let mut kept = String::new();
    let mut in_cloud = false;
    for line in example.lines() {
        if line.starts_with('[') {
            in_cloud = line.starts_with("[cloud");
        }
        if !in_cloud {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept.push_str(&starrocks_gateway::demo::cloud_toml(
        &app.stack.settings.cloud,
        true,
    ));
    let path = std::env::temp_dir().join(format!(
        "srgw-against-cloud-{}.toml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, kept).expect("the config file");
    path
}

fn policy_check_against(
    policy: &std::path::Path,
    config: &std::path::Path,
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_starrocks-gateway"))
        .args(["policy", "check"])
        .arg(policy)
        .arg("--against-cloud")
        .arg(config)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

#[tokio::test]
async fn policy_check_against_the_cloud_finds_flavors_and_zones_the_region_does_not_sell() {
    let app = TestApp::spawn().await;
    let config = config_for_the_simulator(&app);
    let example = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/policy.example.toml"
    ));

    let fits = tokio::task::spawn_blocking({
        let config = config.clone();
        move || policy_check_against(example, &config)
    })
    .await
    .expect("joined");
    let broken_text = std::fs::read_to_string(example)
        .expect("the example policy")
        .replacen(
            "fe_flavor_id = \"afef3bfd-ac7c-32e1-ba44-c388acbb196a\"",
            "fe_flavor_id = \"afef3bfd-ac7c-32e1-ba44-c388acbb196b\"",
            1,
        )
        .replace(
            "allowed_azs = [\"cn-north-4a\", \"cn-north-4b\", \"cn-east-3a\"]",
            "allowed_azs = [\"cn-north-4a\", \"mars-1z\", \"cn-east-3a\"]",
        );
    let broken = std::env::temp_dir().join(format!(
        "srgw-broken-policy-{}.toml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&broken, broken_text).expect("the broken policy");
    let refused = tokio::task::spawn_blocking({
        let (config, broken) = (config.clone(), broken.clone());
        move || policy_check_against(&broken, &config)
    })
    .await
    .expect("joined");
    drop(std::fs::remove_file(&config));
    drop(std::fs::remove_file(&broken));

    let stdout =
        |output: &std::process::Output| String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        fits.status.success(),
        "{}{}",
        stdout(&fits),
        String::from_utf8_lossy(&fits.stderr)
    );
    for region in ["cn-north-4", "cn-east-3"] {
        assert!(
            stdout(&fits).contains(&format!("fits {region}: 6 flavors")),
            "{}",
            stdout(&fits)
        );
    }
    assert!(!refused.status.success());
    let report = stdout(&refused);
    assert!(
        report.contains("sizes.small.fe_flavor_id: `afef3bfd-ac7c-32e1-ba44-c388acbb196b` is not a flavor of region cn-north-4"),
        "{report}"
    );
    assert!(
        report.contains(
            "teams.analytics: size medium's gaussdb.sr-fe.2xlarge.x86.4 is not sold in mars-1z"
        ),
        "{report}"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("problem(s) against the regions' flavors"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
