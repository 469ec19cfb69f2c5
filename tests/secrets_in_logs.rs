//! Own test binary, because it installs the process-wide log subscriber: no password or token
//! may reach a log line, at debug level, whatever path a request takes.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use starrocks_gateway::demo::idp::EmployeeClaims;
use starrocks_gateway::demo::simulator::SimulatorConfig;
use starrocks_gateway::demo::{DEMO_SECRET_KEY, DemoStack, EXAMPLE_POLICY, simulator_config_for};
use starrocks_gateway::policy::{Policy, PolicyStore};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("not poisoned")).into_owned()
    }
}

#[tokio::test]
async fn no_password_or_token_is_ever_logged() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let policy = Policy::parse(EXAMPLE_POLICY).expect("valid");
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    let stack = DemoStack::start(
        loopback,
        simulator_config_for(&policy),
        PolicyStore::fixed(policy),
        |_| {},
    )
    .await
    .expect("starts");
    let client = reqwest::Client::new();
    let alice = EmployeeClaims {
        sub: "alice".into(),
        email: "alice@example.com".into(),
        team: "analytics".into(),
    };
    let token = stack.idp.mint(&alice, 600).expect("token");
    let create = |body: Value, token: String| {
        client
            .post(format!("{}/v1/starrocks", stack.gateway_url))
            .bearer_auth(token)
            .json(&body)
            .send()
    };

    let given = create(
        json!({"name": "cube-given", "target": "analytics-prod", "size": "small", "root_password": "Given-Pa55word"}),
        token.clone(),
    )
    .await
    .expect("answer");
    let generated: Value = create(
        json!({"name": "cube-generated", "target": "analytics-prod", "size": "small"}),
        token.clone(),
    )
    .await
    .expect("answer")
    .json()
    .await
    .expect("JSON");
    let weak = create(
        json!({"name": "cube-weak", "target": "analytics-prod", "size": "small", "root_password": "weakweakweak"}),
        token.clone(),
    )
    .await
    .expect("answer");
    let forged = create(
        json!({"name": "cube-forged", "target": "analytics-prod", "size": "small"}),
        format!("{token}x"),
    )
    .await
    .expect("answer");

    assert_eq!(given.status(), 201);
    assert_eq!(weak.status(), 400);
    assert_eq!(forged.status(), 401);
    let generated_password = generated["root_password"]
        .as_str()
        .expect("generated password")
        .to_owned();
    let iam_password = SimulatorConfig::default().password;
    if let Some(database) =
        secrecy::ExposeSecret::expose_secret(&stack.settings.storage.url).strip_prefix("sqlite://")
    {
        for suffix in ["", "-wal", "-shm"] {
            drop(std::fs::remove_file(format!("{database}{suffix}")));
        }
    }
    let text = logs.text();
    assert!(
        text.contains("request finished"),
        "the capture works: {text}"
    );
    assert!(
        text.contains("fetched an IAM token"),
        "the IAM path ran: {text}"
    );
    let secrets = [
        ("the given root password", "Given-Pa55word"),
        ("the weak root password", "weakweakweak"),
        ("the generated root password", generated_password.as_str()),
        (
            "the bearer token's signature",
            token.rsplit('.').next().unwrap_or_default(),
        ),
        ("the gateway's IAM password", iam_password.as_str()),
        ("an IAM token (the simulator's start with MIIST)", "MIIST"),
    ];
    for (what, secret) in secrets {
        assert!(!text.contains(secret), "{what} was logged");
    }
    // A refusal is an answer, not an alarm: logging each with its whole error would let any
    // caller flood the log (and spend the gateway's CPU formatting it).
    let alarms: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .collect();
    assert!(
        alarms.is_empty(),
        "the 400 and 401 were logged as alarms: {alarms:#?}"
    );
}

/// The demo binary as an operator runs it, logging at `trace` through the gateway's own
/// telemetry setup in `format`; its stdout (the banner) and stderr (the log) go to files.
struct Demo {
    child: std::process::Child,
    log: std::path::PathBuf,
    gateway: String,
    simulator: String,
    identity: String,
}

impl Demo {
    async fn start(format: &str, dir: &std::path::Path) -> Self {
        let banner = dir.join(format!("banner-{format}.txt"));
        let log = dir.join(format!("log-{format}.txt"));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_starrocks-gateway"))
            // Port 0: the banner names the port bound, and no other test can take it meanwhile.
            .args(["demo", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "trace")
            .env("SRGW_LOG_FORMAT", format)
            .env("SRGW_LIMITS__CREATES_BURST", "50")
            .env("SRGW_LIMITS__CREATES_PER_MINUTE", "600")
            .env("TMPDIR", dir)
            .stdout(std::fs::File::create(&banner).expect("banner file"))
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("the demo starts");
        let mut text = String::new();
        for _ in 0..300 {
            text = std::fs::read_to_string(&banner).unwrap_or_default();
            if text.contains("Create an instance") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let url_after = |label: &str| {
            text.lines()
                .find_map(|line| line.trim().strip_prefix(label))
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("no {label} in the banner: {text}"))
        };
        Self {
            gateway: url_after("gateway"),
            simulator: url_after("cloud sim"),
            identity: url_after("identity"),
            child,
            log,
        }
    }

    async fn token(&self, client: &reqwest::Client, sub: &str, roles: &str) -> String {
        let answer: Value = client
            .get(format!(
                "{}/token?sub={sub}&team=analytics&roles={roles}",
                self.identity
            ))
            .send()
            .await
            .expect("the identity provider answers")
            .json()
            .await
            .expect("JSON");
        answer["access_token"].as_str().expect("a token").to_owned()
    }

    async fn faults(&self, client: &reqwest::Client, faults: Value) {
        let answer = client
            .put(format!("{}/_sim/faults", self.simulator))
            .json(&faults)
            .send()
            .await
            .expect("the simulator answers");
        assert_eq!(answer.status(), 200);
    }

    /// Stops the demo and returns its log.
    fn stop(mut self) -> String {
        drop(self.child.kill());
        drop(self.child.wait());
        std::fs::read_to_string(&self.log).expect("the log")
    }
}

/// Every path a request can take, so that each one's logging is searched: a dry-run, a
/// create with a given and with a generated password, an idempotent replay, a cloud
/// failure, refused (expired) IAM tokens, the gateway's IAM password refused, an opening
/// circuit breaker, reconciliation, failing reads and rate limiting.
/// Returns the bearer tokens used and the generated root password.
async fn every_path(demo: &Demo, client: &reqwest::Client) -> (Vec<String>, String) {
    let alice = demo.token(client, "alice", "").await;
    let admin = demo.token(client, "root", "platform-admin").await;
    let post = |path: &str, token: &str, body: Value| {
        client
            .post(format!("{}{path}", demo.gateway))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let small = |name: &str| json!({"name": name, "target": "analytics-prod", "size": "small"});

    let mut with_password = small("cube-given");
    with_password["root_password"] = json!("Given-Pa55word");
    let mut dry = small("cube-dry");
    dry["root_password"] = json!("DryRun-Pa55word");
    assert_eq!(
        post("/v1/starrocks/dry-run", &alice, dry)
            .await
            .expect("answer")
            .status(),
        200
    );
    let given = post("/v1/starrocks", &alice, with_password)
        .await
        .expect("answer");
    assert_eq!(given.status(), 201);
    let given: Value = given.json().await.expect("JSON");
    let given_id = given["id"].as_str().expect("an id").to_owned();
    // In the second region: its calls are signed with the demo's access key.
    let in_east = json!({"name": "cube-generated", "target": "analytics-east", "size": "small"});
    let generated: Value = post("/v1/starrocks", &alice, in_east)
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    for _ in 0..2 {
        let keyed = client
            .post(format!("{}/v1/starrocks", demo.gateway))
            .bearer_auth(&alice)
            .header("Idempotency-Key", "secrets-replay")
            .json(&small("cube-keyed"))
            .send()
            .await
            .expect("answer");
        assert_eq!(keyed.status(), 201);
    }
    drop(
        client
            .post(format!("{}/_sim/tokens/expire", demo.simulator))
            .send()
            .await,
    );
    demo.faults(client, json!({"fail_next_creates": 1, "fail_status": 503}))
        .await;
    assert_eq!(
        post("/v1/starrocks", &alice, small("cube-failed"))
            .await
            .expect("answer")
            .status(),
        502
    );
    drop(
        client
            .post(format!("{}/_sim/tokens/expire", demo.simulator))
            .send()
            .await,
    );
    demo.faults(client, json!({"refuse_next_tokens": 1})).await;
    let refused = post("/v1/starrocks", &alice, small("cube-iam-refused"))
        .await
        .expect("answer");
    assert_eq!(refused.status(), 502);
    assert_eq!(
        refused.json::<Value>().await.expect("JSON")["code"],
        "upstream_auth_failed"
    );
    // Five failed deletes in a row open the delete breaker; the sixth is refused unsent.
    demo.faults(client, json!({"fail_next_reads": 5, "fail_status": 503}))
        .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let answer = client
            .delete(format!("{}/v1/starrocks/{given_id}", demo.gateway))
            .bearer_auth(&alice)
            .send()
            .await
            .expect("answer");
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(
        statuses,
        [502, 502, 502, 502, 502, 503],
        "the breaker opened"
    );
    let reconciled = post("/v1/admin/reconcile", &admin, json!({}))
        .await
        .expect("answer");
    assert_eq!(reconciled.status(), 200);
    demo.faults(client, json!({"fail_next_reads": 5, "fail_status": 500}))
        .await;
    let mut limited = false;
    for _ in 0..60 {
        let listed = client
            .get(format!("{}/v1/starrocks", demo.gateway))
            .bearer_auth(&alice)
            .send()
            .await
            .expect("answer");
        limited |= listed.status() == 429;
    }
    assert!(limited, "the requests limit refused some");
    let password = generated["root_password"]
        .as_str()
        .expect("generated")
        .to_owned();
    (vec![alice, admin], password)
}

#[tokio::test]
async fn the_gateways_own_trace_logs_in_both_formats_hold_no_secret_on_any_path() {
    let dir = std::env::temp_dir().join(format!("srgw-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a work directory");
    let client = reqwest::Client::new();
    for format in ["text", "json"] {
        let demo = Demo::start(format, &dir).await;
        let (tokens, generated) = every_path(&demo, &client).await;
        let log = demo.stop();

        assert!(
            log.lines().count() > 100,
            "{format}: a trace-level log was written"
        );
        for (event, path) in [
            ("create failed upstream", "the cloud failure"),
            (
                "IAM refused the gateway's credentials",
                "the IAM password refused",
            ),
            ("the cloud keeps failing; circuit open", "the breaker"),
        ] {
            assert!(log.contains(event), "{format}: the path of {path} ran");
        }
        if format == "json" {
            assert!(
                log.lines()
                    .all(|line| serde_json::from_str::<Value>(line).is_ok()),
                "every JSON log line parses"
            );
        }
        let iam_password = SimulatorConfig::default().password;
        let mut searched = vec![
            (
                "the given root password".to_owned(),
                "Given-Pa55word".to_owned(),
            ),
            (
                "the dry-run's root password".to_owned(),
                "DryRun-Pa55word".to_owned(),
            ),
            ("the gateway's IAM password".to_owned(), iam_password),
            (
                "an IAM token (the simulator's start with MIIST)".to_owned(),
                "MIIST".to_owned(),
            ),
            (
                "the access key's secret".to_owned(),
                DEMO_SECRET_KEY.to_owned(),
            ),
            (
                "an AK/SK signature".to_owned(),
                "SDK-HMAC-SHA256 Access=".to_owned(),
            ),
        ];
        searched.push(("the generated root password".to_owned(), generated));
        for token in tokens {
            let signature = token.rsplit('.').next().unwrap_or_default().to_owned();
            searched.push(("a bearer token's signature".to_owned(), signature));
        }
        for (what, secret) in searched {
            assert!(!log.contains(&secret), "{format}: {what} was logged");
        }
    }
    drop(std::fs::remove_dir_all(&dir));
}
