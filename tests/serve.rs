//! `serve` as an operator runs it, against the demo's simulators and identity provider:
//! `--check-config --probe` reaches each dependency, with the cloud configured by regions
//! and accounts or in the single-region form; the log is JSON lines whose request
//! lines carry the request id, subject, team and decision id; and with `audit.stream =
//! "stdout"` every decision is a JSON line on standard output, apart from the log.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::Value;
use starrocks_gateway::config::{Credentials, Settings};
use starrocks_gateway::demo::idp::EmployeeClaims;
use starrocks_gateway::demo::{
    DEMO_ACCOUNT, DEMO_SECRET_KEY, DEMO_SIGNING_ACCOUNT, DemoStack, EXAMPLE_POLICY, cloud_toml,
    simulator_config_for, single_region_policy,
};
use starrocks_gateway::policy::{Policy, PolicyStore};

const BINARY: &str = env!("CARGO_BIN_EXE_starrocks-gateway");

/// A scratch directory, removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("srgw-serve-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&path).expect("scratch directory");
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        drop(std::fs::remove_dir_all(&self.0));
    }
}

async fn stack() -> DemoStack {
    let policy = Policy::parse(EXAMPLE_POLICY).expect("the example policy");
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    DemoStack::start(
        loopback,
        simulator_config_for(&policy),
        PolicyStore::fixed(policy),
        |_| {},
    )
    .await
    .expect("the demo stack starts")
}

/// How a test's config describes the cloud.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// `[cloud.accounts.NAME]` and `[cloud.regions.NAME]`: the stack's two regions.
    Regions,
    /// The single-region keys directly under `[cloud]`, as before regions existed.
    Single,
}

/// A gateway config for the stack's identity provider and simulators, with its own SQLite
/// file in `dir`; the secrets are left to the environment, as in production.
fn config_for(settings: &Settings, dir: &Path, form: Form) -> PathBuf {
    let policy = dir.join("policy.toml");
    let policy_text = match form {
        Form::Regions => EXAMPLE_POLICY.to_owned(),
        Form::Single => single_region_policy(),
    };
    std::fs::write(&policy, policy_text).expect("policy file");
    let topology = settings.cloud.topology().expect("the stack's cloud");
    let region = |name: &str| &topology.regions[name];
    let home = region(&topology.default_region);
    let Credentials::Password(login) = &home.account.credentials else {
        panic!("the demo's default region uses a password");
    };
    let cloud = match form {
        Form::Single => format!(
            r#"[cloud]
iam_url = "{iam}"
endpoint = "{endpoint}"
project_id = "{project}"
region = "{region}"
domain = "{domain}"
user = "{user}"
"#,
            iam = login.iam_url,
            endpoint = home.endpoint,
            project = home.project_id,
            region = home.name,
            domain = login.domain,
            user = login.user,
        ),
        Form::Regions => cloud_toml(&settings.cloud, false),
    };
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[auth]
issuer = "{issuer}"
audience = "{audience}"
jwks_url = "{jwks}"
{cloud}
[policy]
path = "{policy}"
[storage]
url = "sqlite://{database}"
"#,
        issuer = settings.auth.issuer,
        audience = settings.auth.audience,
        jwks = settings.auth.jwks_url.as_ref().expect("a JWKS URL"),
        policy = policy.display(),
        database = dir.join("gateway.db").display(),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config).expect("config file");
    path
}

/// The IAM password of the stack's default region.
fn password_of(settings: &Settings) -> String {
    let topology = settings.cloud.topology().expect("the stack's cloud");
    match &topology.regions[&topology.default_region]
        .account
        .credentials
    {
        Credentials::Password(login) => login.password.expose_secret().to_owned(),
        Credentials::AccessKey(_) => panic!("the demo's default region uses a password"),
    }
}

/// The cloud secrets as an operator sets them, in the environment: one password in the
/// single-region form, each account's own in the other.
fn secrets(form: Form, password: &str) -> Vec<(String, String)> {
    match form {
        Form::Single => vec![("SRGW_CLOUD__PASSWORD".into(), password.into())],
        Form::Regions => vec![
            (
                format!(
                    "SRGW_CLOUD__ACCOUNTS__{}__PASSWORD",
                    DEMO_ACCOUNT.to_uppercase()
                ),
                password.into(),
            ),
            (
                format!(
                    "SRGW_CLOUD__ACCOUNTS__{}__SECRET_ACCESS_KEY",
                    DEMO_SIGNING_ACCOUNT.to_uppercase()
                ),
                DEMO_SECRET_KEY.into(),
            ),
        ],
    }
}

fn serve(config: &Path, args: &[&str], secrets: Vec<(String, String)>) -> Command {
    let mut command = Command::new(BINARY);
    command
        .arg("serve")
        .args(args)
        .arg("--config")
        .arg(config)
        .envs(secrets)
        .env_remove("SRGW_CONFIG")
        .env_remove("SRGW_LOG_FORMAT")
        .env_remove("RUST_LOG");
    command
}

/// The `FAIL  policy` line of a `--check-config` report.
fn policy_failure<'a>(stdout: &'a str, stderr: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.starts_with("FAIL  policy"))
        .unwrap_or_else(|| panic!("no policy failure:\n{stdout}\n{stderr}"))
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

// Several threads: the probe runs as a child process while this runtime serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_with_probe_reaches_the_identity_provider_the_database_and_iam() {
    let stack = stack().await;
    let password = password_of(&stack.settings);
    for form in [Form::Regions, Form::Single] {
        let dir = Scratch::new(if form == Form::Single {
            "probe-single"
        } else {
            "probe"
        });
        let config = config_for(&stack.settings, &dir.0, form);

        let output = serve(
            &config,
            &["--check-config", "--probe"],
            secrets(form, &password),
        )
        .env("SRGW_STORAGE__CREATE_IF_MISSING", "true")
        .output()
        .expect("the binary runs");
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        for subject in ["config", "policy", "storage", "identity", "database", "iam"] {
            assert!(
                stdout.lines().any(|line| line.starts_with("ok")
                    && line.split_whitespace().nth(1) == Some(subject)),
                "no `ok {subject}` line:\n{stdout}"
            );
        }
        let iam_lines = stdout
            .lines()
            .filter(|line| line.starts_with("ok    iam"))
            .count();
        let regions = if form == Form::Single { 1 } else { 2 };
        assert_eq!(iam_lines, regions, "one iam line per region:\n{stdout}");
        if form == Form::Regions {
            assert!(
                stdout.contains("signs its calls with an access key"),
                "{stdout}"
            );
        }

        let refused = serve(
            &config,
            &["--check-config", "--probe"],
            secrets(form, "not-the-iam-password"),
        )
        .output()
        .expect("the binary runs");
        let (stdout, stderr) = text(&refused);
        assert!(
            !refused.status.success(),
            "a refused IAM login is a problem"
        );
        assert!(
            stdout.lines().any(|line| line.starts_with("FAIL  iam")),
            "{stdout}"
        );
        assert!(
            !stdout.contains("not-the-iam-password") && !stderr.contains("not-the-iam-password"),
            "the password was printed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_refuses_a_policy_naming_a_region_the_config_lacks() {
    let stack = stack().await;
    let dir = Scratch::new("regions");
    let config = config_for(&stack.settings, &dir.0, Form::Single);
    std::fs::write(dir.0.join("policy.toml"), EXAMPLE_POLICY).expect("policy file");

    let output = serve(
        &config,
        &["--check-config"],
        secrets(Form::Single, "not-probed"),
    )
    .output()
    .expect("the binary runs");

    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}");
    let failure = policy_failure(&stdout, &stderr);
    assert!(failure.contains("cn-east-3"), "{failure}");
    assert!(failure.contains("configured: cn-north-4"), "{failure}");
}

#[test]
fn check_config_without_probe_names_a_broken_policy_file_and_exits_non_zero() {
    let dir = Scratch::new("broken");
    let config = dir.0.join("gateway.toml");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/gateway.example.toml"
    ))
    .expect("the example config");
    std::fs::write(&config, example).expect("config file");
    let policy = dir.0.join("policy.toml");
    std::fs::write(&policy, "[teams.analytics]\nquota = \"many\"\n").expect("policy file");

    let output = serve(&config, &["--check-config"], Vec::new())
        .env("SRGW_POLICY__PATH", &policy)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs");
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}");
    let failure = policy_failure(&stdout, &stderr);
    assert!(failure.contains(&policy.display().to_string()), "{failure}");
    assert!(stderr.contains("1 problem(s)"), "{stderr}");
}

/// Stops the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.0.kill());
        drop(self.0.wait());
    }
}

fn json_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .collect()
}

#[tokio::test]
async fn serve_logs_json_lines_that_carry_the_request_subject_team_and_decision_and_streams_decisions_to_stdout()
 {
    let stack = stack().await;
    let dir = Scratch::new("logs");
    let config = config_for(&stack.settings, &dir.0, Form::Regions);
    let password = password_of(&stack.settings);
    let log = dir.0.join("stderr.log");
    let decisions = dir.0.join("stdout.jsonl");
    let _server = Server(
        serve(
            &config,
            &["--init-storage"],
            secrets(Form::Regions, &password),
        )
        .env("SRGW_AUDIT__STREAM", "stdout")
        .stdout(std::fs::File::create(&decisions).expect("stdout file"))
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("serve starts"),
    );
    let mut port = None;
    for _ in 0..200 {
        port = json_lines(&log)
            .iter()
            .find(|line| line["message"] == "starrocks-gateway listening")
            .and_then(|line| line["port"].as_u64());
        if port.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let port = port.expect("serve logged its port");
    let token = stack
        .idp
        .sign(&stack.idp.standard_claims(&EmployeeClaims {
            sub: "alice".into(),
            email: "alice@example.com".into(),
            team: "analytics".into(),
        }))
        .expect("token");

    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/starrocks"))
        .bearer_auth(&token)
        .header("x-request-id", "log-fields-1")
        .json(&serde_json::json!({"name": "logged", "target": "analytics-prod", "size": "small"}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(answer.status(), 201);
    let created: Value = answer.json().await.expect("JSON");
    let decision_id = created["decision_id"].as_str().expect("a decision id");

    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = json_lines(&log)
            .into_iter()
            .filter(|line| line["span"]["request_id"] == "log-fields-1")
            .collect();
        if lines
            .iter()
            .any(|line| line["message"] == "request finished")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        lines
            .iter()
            .any(|line| line["message"] == "request finished"),
        "the access line is in the request's span: {lines:#?}"
    );
    let after_policy: Vec<&Value> = lines
        .iter()
        .skip_while(|line| line["message"] != "policy evaluated")
        .collect();
    assert!(after_policy.len() >= 2, "{lines:#?}");
    for line in after_policy {
        let span = &line["span"];
        assert_eq!(span["employee.subject"], "alice", "{line}");
        assert_eq!(span["employee.team"], "analytics", "{line}");
        assert_eq!(span["decision_id"], decision_id, "{line}");
    }

    let mut streamed = Vec::new();
    for _ in 0..100 {
        streamed = json_lines(&decisions);
        if !streamed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        streamed.len(),
        1,
        "one decision, nothing else on stdout: {streamed:#?}"
    );
    assert_eq!(streamed[0]["schema"], "starrocks-gateway.decision.v1");
    assert_eq!(streamed[0]["decision_id"], decision_id);
    assert_eq!(streamed[0]["request_id"], "log-fields-1");
    assert_eq!(streamed[0]["outcome"], "created");
}
