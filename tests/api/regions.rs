//! One gateway, two regions: the demo's default region (`cn-north-4`, an IAM user's password)
//! and `cn-east-3` (an access key: every call signed), each served by a simulator of its own.
//! Creates go to their target's region; each region's failures stay its own; quota and
//! reconciliation span both.

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use starrocks_gateway::config::AccountSettings;
use starrocks_gateway::demo::{DEMO_SIGNING_ACCOUNT, EXAMPLE_POLICY};

use crate::helpers::{Db, TestApp, closed_url, json_of, problem, reconcile};

const EAST: &str = "cn-east-3";
const NORTH: &str = "cn-north-4";

fn east_instance(name: &str) -> Value {
    json!({"name": name, "target": "analytics-east", "size": "small"})
}

fn north_instance(name: &str) -> Value {
    json!({"name": name, "target": "analytics-prod", "size": "small"})
}

/// The example policy with room for many instances in analytics' quota.
fn roomy_policy() -> String {
    EXAMPLE_POLICY.replacen(
        "instances = 5\nnodes = 30\nstorage_gb = 10000",
        "instances = 100\nnodes = 1000\nstorage_gb = 100000",
        1,
    )
}

async fn instances(app: &TestApp, token: &str) -> Value {
    json_of(
        app.authed(Method::GET, "/v1/starrocks", token)
            .send()
            .await
            .expect("answer"),
    )
    .await
}

#[tokio::test]
async fn creates_go_to_their_targets_region_endpoint_project_and_credentials() {
    let app = TestApp::spawn().await;
    let alice = app.alice();

    let east = app.create(&alice, &east_instance("east-cube")).await;
    let north = app.create(&alice, &north_instance("north-cube")).await;

    assert_eq!(east.status(), 201);
    assert_eq!(north.status(), 201);
    assert_eq!(
        json_of(east).await["region"],
        EAST,
        "the answer names the region"
    );
    assert_eq!(json_of(north).await["region"], NORTH);
    let east_creates = app.sim_creates_in(EAST).await;
    let north_creates = app.sim_creates_in(NORTH).await;
    assert_eq!(east_creates.len(), 1, "one create reached cn-east-3");
    assert_eq!(north_creates.len(), 1, "one create reached cn-north-4");
    let topology = app.stack.settings.cloud.topology().expect("the cloud");
    let (east_sent, north_sent) = (&east_creates[0], &north_creates[0]);
    assert_eq!(east_sent.project_id, topology.regions[EAST].project_id);
    assert_eq!(north_sent.project_id, topology.regions[NORTH].project_id);
    assert_ne!(east_sent.project_id, north_sent.project_id);
    assert_eq!(
        east_sent.instance_id,
        "7d3a9f4e1c2b4a6d8e0f1a2b3c4d5e6fin07"
    );
    // The region's own AZ and flavor ids, from the policy's [regions.cn-east-3].
    assert_eq!(east_sent.body["az_code"], "cn-east-3a");
    assert_eq!(
        east_sent.body["fe_flavor_id"],
        "1a2b3c4d-5e6f-3a7b-8c9d-0e1f2a3b4c5d"
    );
    assert_eq!(north_sent.body["az_code"], "cn-north-4a");
    let (east_stats, north_stats) = (app.sim_stats_in(EAST).await, app.sim_stats_in(NORTH).await);
    assert_eq!(
        east_stats.tokens_issued, 0,
        "cn-east-3 signs with its access key"
    );
    assert!(east_stats.signed_calls >= 1);
    assert_eq!(east_stats.signatures_refused, 0);
    assert_eq!(north_stats.tokens_issued, 1, "cn-north-4 uses an IAM token");
    assert_eq!(north_stats.signed_calls, 0);

    let listed = instances(&app, &alice).await;
    let region_of = |name: &str| {
        listed["instances"]
            .as_array()
            .and_then(|all| all.iter().find(|i| i["name"] == name))
            .map(|i| i["region"].clone())
    };
    assert_eq!(region_of("east-cube"), Some(json!(EAST)), "{listed}");
    assert_eq!(region_of("north-cube"), Some(json!(NORTH)), "{listed}");
    assert_eq!(listed["cloud"]["status"], "complete", "{listed}");
}

#[tokio::test]
async fn a_dry_run_shows_the_region_its_call_would_go_to() {
    let app = TestApp::spawn().await;

    let response = app
        .authed(Method::POST, "/v1/starrocks/dry-run", &app.alice())
        .json(&east_instance("east-cube"))
        .send()
        .await
        .expect("answer");

    assert_eq!(response.status(), 200);
    let dry_run = json_of(response).await;
    let upstream = &dry_run["upstream"];
    assert_eq!(upstream["region"], EAST);
    let project = &app.stack.settings.cloud.regions[EAST].project_id;
    assert_eq!(
        upstream["path"],
        format!("/v3/{project}/instances/7d3a9f4e1c2b4a6d8e0f1a2b3c4d5e6fin07/starrocks")
    );
    assert_eq!(upstream["body"]["az_code"], "cn-east-3a");
    let denied = app
        .authed(Method::POST, "/v1/starrocks/dry-run", &app.alice())
        .json(&json!({"name": "east-cube", "target": "analytics-east", "size": "small", "az": "cn-north-4a"}))
        .send()
        .await
        .expect("answer");
    let denied = json_of(denied).await;
    assert_eq!(denied["decision"]["allowed"], false);
    let message = denied["decision"]["rules"]
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["rule"] == "az.allowed"))
        .map(|rule| rule["message"].clone());
    assert!(
        message
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|m| m.contains("in region `cn-east-3`")),
        "{denied}"
    );
}

/// Both regions' accounts log in with passwords, each at its own region's IAM.
fn both_with_passwords(app: TestAppBuilderRef<'_>) -> TestAppBuilderRef<'_> {
    app.settings(|s| {
        let east = s.cloud.regions[EAST].endpoint.clone();
        let simulator = starrocks_gateway::demo::simulator::SimulatorConfig::default();
        s.cloud.accounts.insert(
            DEMO_SIGNING_ACCOUNT.into(),
            AccountSettings {
                iam_url: Some(east),
                domain: Some(simulator.domain),
                user: Some(simulator.user),
                password: Some(simulator.password.into()),
                access_key_id: None,
                secret_access_key: None,
            },
        );
    })
}

type TestAppBuilderRef<'a> = crate::helpers::TestAppBuilder<'a>;

#[tokio::test]
async fn one_iam_token_is_fetched_per_account_and_project_however_many_calls_race() {
    let app = both_with_passwords(TestApp::builder().policy(roomy_policy()))
        .spawn()
        .await;
    let alice = app.alice();

    let creates = (0..12).map(|i| {
        let (app, alice) = (&app, &alice);
        async move {
            let body = if i % 2 == 0 {
                east_instance(&format!("east-{i}"))
            } else {
                north_instance(&format!("north-{i}"))
            };
            app.create(alice, &body).await.status()
        }
    });
    let statuses = join_all(creates).await;

    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let (east, north) = (app.sim_stats_in(EAST).await, app.sim_stats_in(NORTH).await);
    assert_eq!(east.creates_received, 6);
    assert_eq!(north.creates_received, 6);
    assert_eq!(
        east.tokens_issued, 1,
        "one fetch for (demo_ak, east's project)"
    );
    assert_eq!(
        north.tokens_issued, 1,
        "one fetch for (demo, north's project)"
    );
    let metrics = app.get("/metrics").await.text().await.expect("text");
    for region in [EAST, NORTH] {
        let series =
            format!("starrocks_gateway_iam_token_expires_in_seconds{{region=\"{region}\"}}");
        let lifetime = crate::helpers::sample(&metrics, &series).expect("a token per region");
        assert!(lifetime > 80_000.0, "{series}: {lifetime}");
    }
}

#[tokio::test]
async fn a_region_that_is_down_answers_503_while_the_other_keeps_working() {
    let app = TestApp::builder()
        .settings(|s| {
            s.cloud.regions.get_mut(EAST).expect("east").endpoint = closed_url();
        })
        .spawn()
        .await;
    let alice = app.alice();

    let east = app.create(&alice, &east_instance("east-cube")).await;
    let north = app.create(&alice, &north_instance("north-cube")).await;

    assert_eq!(east.status(), 503);
    assert_eq!(problem(east).await["code"], "upstream_unavailable");
    assert_eq!(
        north.status(),
        201,
        "cn-north-4 is not held up by cn-east-3"
    );
    let listed = instances(&app, &alice).await;
    assert_eq!(listed["instances"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["instances"][0]["region"], NORTH);
    let me = json_of(app.me(&alice).await).await;
    assert_eq!(
        me["teams"][0]["usage"]["instances"], 1,
        "the refused create gave its quota back"
    );
}

#[tokio::test]
async fn readiness_reports_each_region_and_follows_ready_when() {
    let closed = closed_url();
    let unreachable_iam = |s: &mut starrocks_gateway::config::Settings| {
        let account = s
            .cloud
            .accounts
            .get_mut(DEMO_SIGNING_ACCOUNT)
            .expect("east's");
        *account = AccountSettings {
            iam_url: Some(closed.clone()),
            domain: Some("demo-account".into()),
            user: Some("demo-gateway".into()),
            password: Some("Demo-Passw0rd!".to_owned().into()),
            access_key_id: None,
            secret_access_key: None,
        };
    };
    let every = TestApp::builder().settings(unreachable_iam).spawn().await;
    let any = TestApp::builder()
        .settings(unreachable_iam)
        .settings(|s| s.cloud.ready_when = starrocks_gateway::config::ReadyWhen::AnyTargetRegion)
        .spawn()
        .await;

    let strict = every.get("/readyz").await;
    let lenient = any.get("/readyz").await;

    assert_eq!(
        strict.status(),
        503,
        "cn-east-3 holds a target and has no token"
    );
    let strict = json_of(strict).await;
    assert_eq!(strict["cloud"], false);
    assert_eq!(strict["regions"][EAST]["credentials"], false);
    assert_eq!(strict["regions"][NORTH]["credentials"], true);
    assert_eq!(strict["database"], true);
    assert_eq!(lenient.status(), 200, "any region holding targets will do");
    let lenient = json_of(lenient).await;
    assert_eq!(lenient["ready_when"], "any_target_region");
    assert_eq!(lenient["regions"][EAST]["credentials"], false);
}

#[tokio::test]
async fn a_wrong_access_key_secret_is_502_and_never_leaks() {
    let app = TestApp::builder()
        .settings(|s| {
            let account = s
                .cloud
                .accounts
                .get_mut(DEMO_SIGNING_ACCOUNT)
                .expect("east's");
            account.secret_access_key = Some("not-the-secret-key".to_owned().into());
        })
        .spawn()
        .await;

    let response = app.create(&app.alice(), &east_instance("east-cube")).await;

    assert_eq!(response.status(), 502);
    let text = response.text().await.expect("body");
    assert!(!text.contains("not-the-secret-key"), "{text}");
    let problem: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(problem["code"], "upstream_auth_failed");
    let east = app.sim_stats_in(EAST).await;
    assert_eq!(east.signatures_refused, 1);
    assert_eq!(east.instances, 0);
    let me = json_of(app.me(&app.alice()).await).await;
    assert_eq!(
        me["teams"][0]["usage"]["instances"], 0,
        "nothing was created"
    );
}

async fn quota_and_reconciliation_span_regions(db: Db) {
    let app = TestApp::builder().database(db).spawn().await;
    let alice = app.alice();
    let east_sim = app.sim_of(EAST).to_owned();
    app.set_faults_in(&east_sim, json!({"lose_next_answers": 1}))
        .await;

    let lost = app.create(&alice, &east_instance("east-cube")).await;
    let north = app.create(&alice, &north_instance("north-cube")).await;

    assert_eq!(lost.status(), 504, "the east answer never came");
    assert_eq!(north.status(), 201);
    let me = json_of(app.me(&alice).await).await;
    assert_eq!(
        me["teams"][0]["usage"]["instances"], 2,
        "one quota across regions: the pending east create holds its share"
    );
    let report = reconcile(&app).await;
    assert_eq!(report["committed"], 1, "{report}");
    let listed = instances(&app, &alice).await;
    let east = listed["instances"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["name"] == "east-cube"))
        .cloned()
        .expect("the reconciled east instance is listed");
    assert_eq!(east["region"], EAST);
    let upstream = app.sim_stats_in(EAST).await;
    assert_eq!(upstream.instances, 1);
    assert!(east["id"].as_str().is_some_and(|id| id.ends_with("in17")));

    let deleted = app
        .authed(
            Method::DELETE,
            &format!("/v1/starrocks/{}", east["id"].as_str().unwrap_or_default()),
            &alice,
        )
        .send()
        .await
        .expect("answer");
    assert_eq!(
        deleted.status(),
        202,
        "deleted through cn-east-3's endpoint"
    );
    assert_eq!(app.sim_stats_in(EAST).await.deletes_received, 1);
    assert_eq!(app.sim_stats_in(NORTH).await.deletes_received, 0);
}

on_both_engines!(quota_and_reconciliation_span_regions);

#[tokio::test]
async fn a_policy_naming_a_region_the_gateway_lacks_is_refused_at_reload() {
    let app = TestApp::spawn().await;
    let elsewhere = EXAMPLE_POLICY.replace("region = \"cn-east-3\"", "region = \"eu-west-0\"");
    std::fs::write(app.policy_file(), elsewhere).expect("the new policy");

    let response = app
        .authed(Method::POST, "/v1/admin/policy/reload", &app.admin())
        .send()
        .await
        .expect("answer");

    assert_eq!(response.status(), 422);
    let problem = problem(response).await;
    assert_eq!(problem["code"], "policy_invalid");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("teams.analytics.targets.analytics-east"),
        "{detail}"
    );
    assert!(detail.contains("eu-west-0"), "{detail}");
    let created = app.create(&app.alice(), &east_instance("east-cube")).await;
    assert_eq!(created.status(), 201, "the policy in force stays");
}

#[tokio::test]
async fn a_region_quota_limits_the_team_there_and_not_elsewhere() {
    let policy = format!(
        "{EXAMPLE_POLICY}\n[teams.analytics.region_quotas.cn-east-3]\ninstances = 1\nnodes = 10\nstorage_gb = 1000\n"
    );
    let app = TestApp::builder().policy(policy).spawn().await;
    let alice = app.alice();

    let first = app.create(&alice, &east_instance("east-one")).await;
    let second = app.create(&alice, &east_instance("east-two")).await;
    let north = app.create(&alice, &north_instance("north-one")).await;
    let preview = app
        .authed(Method::POST, "/v1/starrocks/dry-run", &alice)
        .json(&east_instance("east-three"))
        .send()
        .await
        .expect("answer");
    let catalog = json_of(
        app.authed(Method::GET, "/v1/catalog", &alice)
            .send()
            .await
            .expect("answer"),
    )
    .await;

    assert_eq!(first.status(), 201);
    assert_eq!(second.status(), 403);
    let refused = problem(second).await;
    assert_eq!(refused["code"], "quota_exceeded");
    let detail = refused["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("in region `cn-east-3`"), "{detail}");
    assert!(
        detail.contains("instances (requested 1, used 1, allowed 1)"),
        "{detail}"
    );
    assert_eq!(
        north.status(),
        201,
        "the team's quota elsewhere is untouched"
    );
    let preview = json_of(preview).await;
    assert_eq!(preview["quota"]["fits"], false, "{preview}");
    assert_eq!(preview["quota"]["region"]["name"], EAST);
    assert_eq!(preview["quota"]["region"]["used"]["instances"], 1);
    assert_eq!(preview["quota"]["region"]["limit"]["instances"], 1);
    assert_eq!(
        preview["quota"]["used"]["instances"], 2,
        "the team's, every region"
    );
    let east_offer = catalog["regions"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["name"] == EAST))
        .cloned()
        .expect("cn-east-3 in the catalog");
    assert_eq!(east_offer["quota"]["instances"], 1);
    assert_eq!(east_offer["targets"], json!(["analytics-east"]));
    assert_eq!(east_offer["azs"], json!(["cn-east-3a"]));
    assert_eq!(east_offer["default_az"], "cn-east-3a");
    assert_eq!(
        app.sim_stats_in(EAST).await.creates_received,
        1,
        "the refusal sent nothing"
    );
}
