//! Own test binary, because it installs the process-wide log subscriber: no password or token
//! may reach a log line, at debug level, whatever path a request takes.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use starrocks_gateway::demo::idp::EmployeeClaims;
use starrocks_gateway::demo::simulator::SimulatorConfig;
use starrocks_gateway::demo::{DemoStack, EXAMPLE_POLICY, simulator_config_for};
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
