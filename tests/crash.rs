//! Kill -9 while a mixed load runs. The gateway runs as a child process (`serve`) against a
//! simulated cloud and identity provider that live in this test and so outlive it. After a
//! restart and reconciliation, on SQLite and on PostgreSQL:
//! - every `201` the clients got has a committed reservation and a `created` decision;
//! - the ledger's live instances are exactly the cloud's, none pending;
//! - nothing is counted twice.
//!
//! And kill -9 mid-approval of an exception request: after a restart the request is settled
//! by what became of its create (`created`, its password still shown once, or `failed`
//! `interrupted`), never left `approved`, with nothing held or sealed left behind.

// The shared test harness: this binary uses part of it.
#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection, Row};
use starrocks_gateway::demo::idp::{self, DemoIdp};
use starrocks_gateway::demo::simulator::{self, ExistingInstance, SimulatorConfig};
use starrocks_gateway::demo::{
    DEMO_ADMIN_ROLE, DEMO_APPROVER_GROUP, DEMO_AUDIENCE, single_region_policy,
};

use helpers::fresh_postgres_database;

const BINARY: &str = env!("CARGO_BIN_EXE_starrocks-gateway");
const WORKERS: usize = 16;
const LOAD_BEFORE_KILL: Duration = Duration::from_millis(1_500);

/// The example policy with room for every create the load makes.
/// The example policy in one region (the config below is the single-region form), with room
/// for the load.
fn roomy_policy() -> String {
    single_region_policy().replace(
        "[teams.analytics.quota]\ninstances = 5\nnodes = 30\nstorage_gb = 10000",
        "[teams.analytics.quota]\ninstances = 100000\nnodes = 1000000\nstorage_gb = 100000000",
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Cloud {
    simulator_url: String,
    idp_url: String,
    idp: Arc<DemoIdp>,
    simulator: SimulatorConfig,
}

async fn cloud() -> Cloud {
    let simulator_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let idp_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let simulator_url = format!("http://{}", simulator_listener.local_addr().expect("addr"));
    let idp_url = format!("http://{}", idp_listener.local_addr().expect("addr"));
    let policy = starrocks_gateway::policy::Policy::parse(&roomy_policy()).expect("valid");
    let config = starrocks_gateway::demo::simulator_config_for(&policy);
    let idp = Arc::new(DemoIdp::generate(&idp_url, DEMO_AUDIENCE).expect("keys"));
    tokio::spawn(simulator::start(config.clone(), simulator_listener).expect("simulator"));
    tokio::spawn(idp::start(idp.clone(), idp_listener).expect("identity provider"));
    Cloud {
        simulator_url,
        idp_url,
        idp,
        simulator: config,
    }
}

fn config(cloud: &Cloud, dir: &Path, port: u16, storage_url: &str) -> PathBuf {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, roomy_policy()).expect("policy");
    let sim = &cloud.simulator;
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
workers = 2

[auth]
issuer = "{idp}"
audience = "{DEMO_AUDIENCE}"
jwks_url = "{idp}/.well-known/jwks.json"

[auth.claims]
teams = "team"
team_prefix = ""
admin_claim = "roles"
admin_value = "{DEMO_ADMIN_ROLE}"
groups = "roles"

[cloud]
iam_url = "{sim_url}"
endpoint = "{sim_url}"
project_id = "{project}"
region = "{region}"
domain = "{domain}"
user = "{user}"
password = "{password}"
request_timeout_ms = 5000

[policy]
path = "{policy}"
watch_interval_secs = 0

[storage]
url = "{storage_url}"
create_if_missing = true

[reconcile]
interval_secs = 0
grace_secs = 0

# Settles approvals a killed gateway left unfinished soon after the restart; the restarted
# process opens the passwords its predecessor sealed.
[approvals]
sweep_interval_secs = 1
sealing_key = "{sealing_key}"

# The load is one employee's burst, far beyond any sane limit: the limits are not under test.
[limits]
creates_per_minute = 0
requests_per_second = 0
cloud_calls_per_second = 0
"#,
        idp = cloud.idp_url,
        sim_url = cloud.simulator_url,
        project = sim.project_id,
        region = sim.region,
        domain = sim.domain,
        user = sim.user,
        password = sim.password,
        policy = policy.display(),
        sealing_key = "5e".repeat(32),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn start_gateway(config: &Path, log: &Path) -> Child {
    Command::new(BINARY)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .env_remove("SRGW_CONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("the gateway starts")
}

async fn wait_ready(client: &reqwest::Client, url: &str, log: &Path) {
    for _ in 0..200 {
        if let Ok(answer) = client.get(format!("{url}/readyz")).send().await
            && answer.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the gateway never got ready: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Creates, dry-runs and denied creates from `WORKERS` clients until `stop`; returns the
/// instance ids of every `201` received.
async fn mixed_load(
    client: reqwest::Client,
    url: String,
    token: String,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let workers = (0..WORKERS).map(|worker| {
        let (client, url, token, stop) = (client.clone(), url.clone(), token.clone(), stop.clone());
        tokio::spawn(async move {
            let mut created = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("crash-{worker:02}-{i:04}");
                let (path, size) = match i % 5 {
                    3 => ("/v1/starrocks/dry-run", "small"),
                    4 => ("/v1/starrocks", "large"),
                    _ => ("/v1/starrocks", "small"),
                };
                let sent = client
                    .post(format!("{url}{path}"))
                    .bearer_auth(&token)
                    .json(&json!({"name": name, "target": "analytics-prod", "size": size}))
                    .send()
                    .await;
                let Ok(answer) = sent else {
                    // The gateway is gone.
                    break;
                };
                if answer.status() == 201
                    && let Ok(body) = answer.json::<Value>().await
                    && let Some(id) = body["id"].as_str()
                {
                    created.push(id.to_owned());
                }
            }
            created
        })
    });
    futures_util::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(|created| created.unwrap_or_default())
        .collect()
}

#[derive(Debug, Default)]
struct Ledger {
    /// Instance id → states of the reservations naming it.
    states: BTreeMap<String, Vec<String>>,
    pending: usize,
    counted_instances: i64,
    created_decisions: BTreeSet<String>,
}

async fn read_ledger(storage_url: &str) -> Ledger {
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(storage_url)
        .await
        .expect("the database opens once the gateway has stopped");
    let mut ledger = Ledger::default();
    for row in sqlx::query("SELECT state, instance_id, instances FROM reservations")
        .fetch_all(&mut db)
        .await
        .expect("reservations")
    {
        let state: String = row.try_get("state").expect("state");
        let instance: Option<String> = row.try_get("instance_id").expect("instance_id");
        if state == "pending" {
            ledger.pending += 1;
        }
        if ["pending", "committed", "deleting"].contains(&state.as_str()) {
            ledger.counted_instances += row.try_get::<i64, _>("instances").expect("instances");
        }
        if let Some(instance) = instance {
            ledger.states.entry(instance).or_default().push(state);
        }
    }
    for row in sqlx::query(
        "SELECT instance_id FROM decisions WHERE outcome = 'created' AND instance_id IS NOT NULL",
    )
    .fetch_all(&mut db)
    .await
    .expect("decisions")
    {
        ledger
            .created_decisions
            .insert(row.try_get("instance_id").expect("instance_id"));
    }
    ledger
}

fn terminate(child: &mut Child) {
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    let status = child.wait().expect("the gateway exits");
    assert!(status.success(), "a graceful stop exits 0: {status:?}");
}

async fn survives_kill_9(storage_url: String, dir: &Path) {
    let cloud = cloud().await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let config = config(&cloud, dir, port, &storage_url);
    let log = dir.join("gateway.log");
    let client = reqwest::Client::new();
    let token = cloud
        .idp
        .mint_for("alice", "alice@example.com", &["analytics"], &[], 3_600)
        .expect("token");
    let admin = cloud
        .idp
        .mint_for(
            "erin",
            "erin@example.com",
            &["analytics"],
            &[DEMO_ADMIN_ROLE],
            3_600,
        )
        .expect("token");

    let mut gateway = start_gateway(&config, &log);
    wait_ready(&client, &url, &log).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(mixed_load(
        client.clone(),
        url.clone(),
        token.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(LOAD_BEFORE_KILL).await;
    gateway.kill().expect("SIGKILL");
    gateway.wait().expect("reaped");
    stop.store(true, Ordering::Relaxed);
    let acknowledged = load.await.expect("the load ends");

    let mut restarted = start_gateway(&config, &log);
    wait_ready(&client, &url, &log).await;
    let report: Value = client
        .post(format!("{url}/v1/admin/reconcile"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("reconcile answers")
        .json()
        .await
        .expect("a report");
    terminate(&mut restarted);
    let cloud_instances: Vec<ExistingInstance> = client
        .get(format!("{}/_sim/instances", cloud.simulator_url))
        .send()
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("JSON");
    let ledger = read_ledger(&storage_url).await;

    assert!(
        acknowledged.len() >= 10,
        "the load created instances before the kill: {}",
        acknowledged.len()
    );
    for id in &acknowledged {
        assert_eq!(
            ledger.states.get(id).map(Vec::as_slice),
            Some(["committed".to_owned()].as_slice()),
            "acknowledged {id} is committed exactly once"
        );
        assert!(
            ledger.created_decisions.contains(id),
            "acknowledged {id} has its decision"
        );
    }
    assert_eq!(
        ledger.pending, 0,
        "reconciliation settled everything: {report}"
    );
    let in_cloud: BTreeSet<&str> = cloud_instances.iter().map(|i| i.id.as_str()).collect();
    let in_ledger: BTreeSet<&str> = ledger
        .states
        .iter()
        .filter(|(_, states)| states.iter().any(|s| s == "committed" || s == "deleting"))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(
        in_ledger, in_cloud,
        "the ledger holds exactly the cloud's instances"
    );
    assert!(
        ledger.states.values().all(|states| states.len() == 1),
        "no instance has two reservations"
    );
    assert_eq!(
        ledger.counted_instances,
        i64::try_from(in_cloud.len()).expect("small"),
        "usage counts each instance once"
    );
}

#[tokio::test]
async fn kill_9_under_load_loses_nothing_acknowledged_on_sqlite() {
    let dir = tempdir();
    let file = dir.join("gateway.db");
    survives_kill_9(format!("sqlite://{}", file.display()), &dir).await;
    drop(std::fs::remove_dir_all(&dir));
}

#[tokio::test]
async fn kill_9_under_load_loses_nothing_acknowledged_on_postgres() {
    let dir = tempdir();
    survives_kill_9(fresh_postgres_database().await, &dir).await;
    drop(std::fs::remove_dir_all(&dir));
}

/// Where the gateway is when an approval's create is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KilledWhile {
    /// The cloud created the instance; its answer is on the way.
    AnswerOnTheWay,
    /// The cloud holds the create and has not acted on it.
    CreateHeld,
}

async fn sim_stats(client: &reqwest::Client, cloud: &Cloud) -> Value {
    client
        .get(format!("{}/_sim/stats", cloud.simulator_url))
        .send()
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("JSON")
}

async fn sim_list(client: &reqwest::Client, cloud: &Cloud, what: &str) -> Vec<Value> {
    client
        .get(format!("{}/_sim/{what}", cloud.simulator_url))
        .send()
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("JSON")
}

async fn sealed_passwords(storage_url: &str) -> i64 {
    let mut db = sqlx::AnyConnection::connect(storage_url)
        .await
        .expect("the database opens once the gateway has stopped");
    sqlx::query("SELECT COUNT(*) AS n FROM exception_requests WHERE sealed_password IS NOT NULL")
        .fetch_one(&mut db)
        .await
        .expect("count")
        .try_get::<i64, _>("n")
        .expect("n")
}

async fn kill_9_mid_approval(storage_url: String, dir: &Path, killed: KilledWhile) {
    let cloud = cloud().await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let config = config(&cloud, dir, port, &storage_url);
    let log = dir.join("gateway.log");
    let client = reqwest::Client::new();
    let alice = cloud
        .idp
        .mint_for("alice", "alice@example.com", &["analytics"], &[], 3_600)
        .expect("token");
    let carol = cloud
        .idp
        .mint_for(
            "carol",
            "carol@example.com",
            &["analytics"],
            &[DEMO_APPROVER_GROUP],
            3_600,
        )
        .expect("token");

    let mut gateway = start_gateway(&config, &log);
    wait_ready(&client, &url, &log).await;
    let asked: Value = client
        .post(format!("{url}/v1/requests"))
        .bearer_auth(&alice)
        .json(&json!({
            "instance": {"name": "load-test", "target": "analytics-prod", "size": "large"},
            "justification": "One week of load tests before the launch."
        }))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    let id = asked["id"].as_str().expect("a pending request").to_owned();
    let fault = match killed {
        KilledWhile::AnswerOnTheWay => json!({"lose_next_answers": 1}),
        KilledWhile::CreateHeld => json!({"hold_next_creates": 1}),
    };
    let faults = client
        .put(format!("{}/_sim/faults", cloud.simulator_url))
        .json(&fault)
        .send()
        .await
        .expect("the simulator answers");
    assert_eq!(faults.status(), 200);
    let approving = tokio::spawn(
        client
            .post(format!("{url}/v1/requests/{id}/approve"))
            .bearer_auth(&carol)
            .send(),
    );
    let mut reached = false;
    for _ in 0..500 {
        let stats = sim_stats(&client, &cloud).await;
        reached = match killed {
            KilledWhile::AnswerOnTheWay => stats["creates_received"] == 1,
            KilledWhile::CreateHeld => stats["held"] == 1,
        };
        if reached {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        reached,
        "the approval's create reached the cloud ({killed:?})"
    );
    gateway.kill().expect("SIGKILL");
    gateway.wait().expect("reaped");
    assert!(
        approving.await.expect("joined").is_err(),
        "the approver got no answer: the gateway died mid-create"
    );

    let mut restarted = start_gateway(&config, &log);
    wait_ready(&client, &url, &log).await;
    let mut settled = Value::Null;
    for _ in 0..200 {
        settled = client
            .get(format!("{url}/v1/requests/{id}"))
            .bearer_auth(&alice)
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("JSON");
        if settled["status"] != "approved" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    terminate(&mut restarted);
    let in_cloud = sim_list(&client, &cloud, "instances").await;
    let ledger = read_ledger(&storage_url).await;

    match killed {
        KilledWhile::AnswerOnTheWay => {
            assert_eq!(settled["status"], "created", "{settled}");
            assert_eq!(in_cloud.len(), 1);
            assert_eq!(settled["instance_id"], in_cloud[0]["id"]);
            assert!(
                ledger
                    .created_decisions
                    .contains(in_cloud[0]["id"].as_str().expect("an id")),
                "the settlement logs the create the killed gateway could not"
            );
            let creates = sim_list(&client, &cloud, "creates").await;
            assert_eq!(
                settled["root_password"], creates[0]["body"]["db_root_pwd"],
                "its requester reads the password the instance got"
            );
        }
        KilledWhile::CreateHeld => {
            assert_eq!(settled["status"], "failed", "{settled}");
            assert_eq!(settled["failure"]["code"], "interrupted", "{settled}");
            assert!(settled.get("root_password").is_none());
            assert!(in_cloud.is_empty());
        }
    }
    assert_eq!(ledger.pending, 0, "reconciliation settled the reservation");
    assert_eq!(
        ledger.counted_instances,
        i64::try_from(in_cloud.len()).expect("small"),
        "quota counts what exists"
    );
    assert_eq!(
        sealed_passwords(&storage_url).await,
        0,
        "the password was read once, or dropped with the failure"
    );
}

#[tokio::test]
async fn kill_9_after_the_cloud_created_an_approved_instance_settles_it_created() {
    for (engine, dir) in [("sqlite", tempdir()), ("postgres", tempdir())] {
        let storage_url = if engine == "sqlite" {
            format!("sqlite://{}", dir.join("gateway.db").display())
        } else {
            fresh_postgres_database().await
        };
        kill_9_mid_approval(storage_url, &dir, KilledWhile::AnswerOnTheWay).await;
        drop(std::fs::remove_dir_all(&dir));
    }
}

#[tokio::test]
async fn kill_9_before_the_cloud_acted_on_an_approval_settles_it_interrupted() {
    for (engine, dir) in [("sqlite", tempdir()), ("postgres", tempdir())] {
        let storage_url = if engine == "sqlite" {
            format!("sqlite://{}", dir.join("gateway.db").display())
        } else {
            fresh_postgres_database().await
        };
        kill_9_mid_approval(storage_url, &dir, KilledWhile::CreateHeld).await;
        drop(std::fs::remove_dir_all(&dir));
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("srgw-crash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
