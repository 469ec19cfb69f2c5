//! The binary itself: start-up errors name the key at fault and exit non-zero.

use std::path::PathBuf;
use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_starrocks-gateway");

fn example_config() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/gateway.example.toml"
    ))
    .expect("the example config exists")
}

/// A file in the temporary directory, removed when the test ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        drop(std::fs::remove_file(&self.0));
    }
}

impl std::ops::Deref for TempFile {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

fn write_temp(name: &str, contents: &str) -> TempFile {
    let path = std::env::temp_dir().join(format!("srgw-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).expect("write temp file");
    TempFile(path)
}

fn serve(config: &PathBuf, env: &[(&str, &str)]) -> Output {
    Command::new(BINARY)
        .args(["serve", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .env_remove("SRGW_CONFIG")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_missing_config_file_exits_non_zero_naming_it() {
    let output = serve(&PathBuf::from("/nonexistent/gateway.toml"), &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("/nonexistent/gateway.toml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_invalid_value_exits_non_zero_naming_the_key() {
    let config = write_temp(
        "bad-project.toml",
        &example_config().replace("23a50154cf494ec9ad6883979a12db0a", "tooshort"),
    );
    let output = serve(&config, &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("`cloud.regions.cn-north-4.project_id`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_bad_environment_override_exits_non_zero_naming_the_key() {
    let config = write_temp("good.toml", &example_config());
    let output = serve(&config, &[("SRGW_AUTH__LEEWAY_SECS", "soon")]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).to_lowercase().contains("leeway_secs"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_broken_policy_file_exits_non_zero_naming_the_key() {
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/policy.example.toml"
    ))
    .expect("example policy")
    .replacen("fe_volume_gb = 50", "fe_volume_gb = 55", 1);
    let policy_path = write_temp("policy.toml", &policy);
    let config = write_temp("with-policy.toml", &example_config());
    let output = serve(
        &config,
        &[(
            "SRGW_POLICY__PATH",
            policy_path.to_str().expect("utf-8 path"),
        )],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("sizes.small.fe_volume_gb"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_openapi_command_prints_the_committed_document() {
    let output = Command::new(BINARY)
        .arg("openapi")
        .output()
        .expect("the binary runs");
    assert!(output.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .expect("committed spec");
    assert!(
        String::from_utf8_lossy(&output.stdout) == committed,
        "`openapi` differs from openapi/openapi.json"
    );
}

#[test]
fn policy_check_accepts_the_example_and_names_the_key_and_line_of_an_error() {
    let good = Command::new(BINARY)
        .args([
            "policy",
            "check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy.example.toml"),
        ])
        .output()
        .expect("runs");
    assert!(good.status.success(), "{}", stderr(&good));
    assert!(String::from_utf8_lossy(&good.stdout).contains("valid, revision sha256:"));

    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/policy.example.toml"
    ))
    .expect("example policy")
    .replacen("be_volume_gb = 100", "be_volume_gb = 105", 1);
    let line = text
        .lines()
        .position(|l| l.contains("be_volume_gb = 105"))
        .expect("present")
        + 1;
    let bad = write_temp("bad-policy.toml", &text);
    let output = Command::new(BINARY)
        .args(["policy", "check"])
        .arg(bad.as_path())
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("sizes.small.be_volume_gb"), "{message}");
    assert!(message.contains(&format!("line {line}")), "{message}");
}

#[test]
fn policy_test_passes_the_example_cases_and_fails_a_wrong_one() {
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy.example.toml");
    let cases = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/policy.example.cases.toml"
    );
    let good = Command::new(BINARY)
        .args(["policy", "test", policy, cases])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&good.stdout).into_owned();
    assert!(good.status.success(), "{stdout}{}", stderr(&good));
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");

    let wrong = write_temp(
        "wrong-cases.toml",
        "[[case]]\nname = \"bob orders medium\"\nclaims = { sub = \"bob\", team = \"payments\" }\n\
         request = { name = \"ledger\", target = \"payments-ledger\", size = \"medium\" }\nexpect = \"allow\"\n",
    );
    let output = Command::new(BINARY)
        .args(["policy", "test", policy])
        .arg(wrong.as_path())
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("FAIL  bob orders medium: expected allow, got deny"),
        "{stdout}"
    );
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
}

#[test]
fn an_unreachable_database_at_start_exits_non_zero_with_a_clear_error() {
    let config = write_temp("db.toml", &example_config());
    let output = serve(
        &config,
        &[
            ("SRGW_STORAGE__URL", "postgres://nobody@127.0.0.1:1/none"),
            ("SRGW_STORAGE__ACQUIRE_TIMEOUT_MS", "500"),
        ],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("opening the gateway's database"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_missing_ledger_file_is_refused_at_start_naming_the_way_to_create_it() {
    let config = write_temp("missing-db.toml", &example_config());
    let database = std::env::temp_dir().join(format!("srgw-cli-{}-absent.db", std::process::id()));
    let url = format!("sqlite://{}", database.display());

    let output = serve(&config, &[("SRGW_STORAGE__URL", url.as_str())]);

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains("--init-storage"), "{message}");
    assert!(!database.exists(), "nothing is created without being asked");
}

#[test]
fn init_storage_creates_the_ledger_on_the_first_start() {
    let config = write_temp("init-db.toml", &example_config());
    let database =
        TempFile(std::env::temp_dir().join(format!("srgw-cli-{}-init.db", std::process::id())));
    let mut server = Command::new(BINARY)
        .args(["serve", "--init-storage", "--config"])
        .arg(config.as_path())
        .env(
            "SRGW_STORAGE__URL",
            format!("sqlite://{}", database.display()),
        )
        .env("SRGW_SERVER__LISTEN", "127.0.0.1:0")
        .env_remove("SRGW_CONFIG")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary runs");

    let mut created = false;
    for _ in 0..100 {
        if database.exists() {
            created = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(server.kill());
    drop(server.wait());
    for suffix in ["-wal", "-shm"] {
        drop(std::fs::remove_file(format!(
            "{}{suffix}",
            database.display()
        )));
    }

    assert!(created, "the database file was created");
}

#[test]
fn the_config_path_and_log_format_variables_are_not_mistaken_for_config_keys() {
    let config = write_temp("via-env.toml", &example_config());
    let output = Command::new(BINARY)
        .arg("serve")
        .env("SRGW_CONFIG", config.as_path())
        .env("SRGW_LOG_FORMAT", "json")
        .env("SRGW_POLICY__PATH", "/nonexistent/policy.toml")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("/nonexistent/policy.toml"), "{message}");
    assert!(!message.contains("unknown field"), "{message}");
}

#[test]
fn an_unknown_log_format_exits_non_zero_naming_the_variable() {
    let config = write_temp("log-format.toml", &example_config());
    let output = serve(&config, &[("SRGW_LOG_FORMAT", "xml")]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("SRGW_LOG_FORMAT"), "{message}");
    assert!(message.contains("xml"), "{message}");
}

#[test]
fn healthcheck_exits_non_zero_when_nothing_answers() {
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let output = Command::new(BINARY)
        .args([
            "healthcheck",
            "--url",
            &format!("http://127.0.0.1:{port}/healthz"),
        ])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    assert!(!stderr(&output).is_empty(), "it says why");
}
