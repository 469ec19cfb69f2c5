//! Own test binary: SIGHUP reaches the whole process, so no other test may share it.

use std::net::SocketAddr;
use std::time::Duration;

use starrocks_gateway::demo::{DemoStack, EXAMPLE_POLICY, simulator_config_for};
use starrocks_gateway::policy::{Policy, PolicyStore};

#[tokio::test]
async fn sighup_reloads_the_policy_file() {
    let path = std::env::temp_dir().join(format!("srgw-sighup-{}.toml", std::process::id()));
    std::fs::write(&path, EXAMPLE_POLICY).expect("write");
    let policy = Policy::parse(EXAMPLE_POLICY).expect("valid");
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    let store = PolicyStore::from_file(path.clone()).expect("loads");
    let stack = DemoStack::start(loopback, simulator_config_for(&policy), store, |_| {})
        .await
        .expect("starts");
    let token = stack
        .idp
        .sign(
            &stack
                .idp
                .standard_claims(&starrocks_gateway::demo::idp::EmployeeClaims {
                    sub: "alice".into(),
                    email: "alice@example.com".into(),
                    team: "analytics".into(),
                }),
        )
        .expect("token");
    let revision = || async {
        let me: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/v1/me", stack.gateway_url))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("JSON");
        me["policy_revision"].as_str().expect("revision").to_owned()
    };
    let before = revision().await;

    std::fs::write(&path, format!("{EXAMPLE_POLICY}\n# changed\n")).expect("write");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut after = before.clone();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = revision().await;
        if after != before {
            break;
        }
    }

    drop(std::fs::remove_file(&path));
    let database = secrecy::ExposeSecret::expose_secret(&stack.settings.storage.url).to_owned();
    if let Some(database) = database.strip_prefix("sqlite://") {
        for suffix in ["", "-wal", "-shm"] {
            drop(std::fs::remove_file(format!("{database}{suffix}")));
        }
    }
    assert_ne!(after, before, "SIGHUP reloaded the changed file");
}
