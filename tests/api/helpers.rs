use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use starrocks_gateway::config::{AccountSettings, LimitSettings, RegionSettings, Settings};
use starrocks_gateway::demo::idp::EmployeeClaims;
use starrocks_gateway::demo::simulator::{ReceivedCreate, SimulatorConfig, Stats};
use starrocks_gateway::demo::{DEMO_ACCOUNT, DemoStack, EXAMPLE_POLICY, simulator_config_for};
use starrocks_gateway::policy::{Policy, PolicyStore};

/// The gateway, the Huawei Cloud simulator and the demo IdP, each on port 0:
/// `TestApp::spawn()` for the defaults, `TestApp::builder()…spawn()` for anything else.
pub struct TestApp {
    /// The policy file the gateway reads (`None` with an embedded policy); see `policy_file`.
    policy_path: Option<PathBuf>,
    pub stack: DemoStack,
    pub client: reqwest::Client,
}

/// The demo's default region, to adjust in `TestAppBuilder::settings`.
pub fn home_region(settings: &mut Settings) -> &mut RegionSettings {
    let name = settings
        .cloud
        .default_region
        .clone()
        .expect("the demo names its default region");
    settings
        .cloud
        .regions
        .get_mut(&name)
        .expect("the default region is configured")
}

/// The account of the demo's default region (an IAM user with a password).
pub fn home_account(settings: &mut Settings) -> &mut AccountSettings {
    settings
        .cloud
        .accounts
        .get_mut(DEMO_ACCOUNT)
        .expect("the demo's account")
}

pub fn employee(sub: &str, team: &str) -> EmployeeClaims {
    EmployeeClaims {
        sub: sub.into(),
        email: format!("{sub}@example.com"),
        team: team.into(),
    }
}

/// Which database a test's gateway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A fresh PostgreSQL database on the server `scripts/test` started, as a URL.
pub async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let server = std::env::var("STARROCKS_TEST_POSTGRES_URL").expect(
        "PostgreSQL tests need STARROCKS_TEST_POSTGRES_URL (postgres://user@host:port/db); \
         `scripts/test` starts a throwaway server and sets it",
    );
    sqlx::any::install_default_drivers();
    let name = format!("srgw_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::AnyConnection::connect(&server)
        .await
        .expect("the test PostgreSQL server answers");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");
    admin.close().await.ok();
    let base = server
        .rsplit_once('/')
        .map_or(server.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

/// One change to a config, applied before the stack starts.
type Adjust<'a, T> = Box<dyn FnOnce(&mut T) + 'a>;

/// How a test's stack differs from the defaults: the example policy (from a file, as in
/// production, so reload paths can be exercised), the simulator configured for that policy's
/// targets, the demo's gateway settings, and a fresh SQLite database.
#[must_use = "a builder does nothing until `spawn`"]
pub struct TestAppBuilder<'a> {
    policy: String,
    embedded_policy: bool,
    policy_at: Option<PathBuf>,
    simulator: Vec<Adjust<'a, SimulatorConfig>>,
    settings: Vec<Adjust<'a, Settings>>,
    database: Db,
}

impl<'a> TestAppBuilder<'a> {
    /// The policy text (the example policy by default).
    pub fn policy(mut self, text: impl Into<String>) -> Self {
        self.policy = text.into();
        self
    }

    /// The policy compiled in, as the demo has it, instead of read from a file: nothing to
    /// reload, and `policy_path` is `None`.
    pub fn embedded_policy(mut self) -> Self {
        self.embedded_policy = true;
        self
    }

    /// The policy read from `path`, which the test lays out (and removes) itself.
    pub fn policy_at(mut self, path: PathBuf) -> Self {
        self.policy_at = Some(path);
        self
    }

    /// Adjusts the simulator's config; called in order, after it is derived from the policy.
    pub fn simulator(mut self, adjust: impl FnOnce(&mut SimulatorConfig) + 'a) -> Self {
        self.simulator.push(Box::new(adjust));
        self
    }

    /// Adjusts the gateway's settings; called in order, after the database is chosen.
    pub fn settings(mut self, adjust: impl FnOnce(&mut Settings) + 'a) -> Self {
        self.settings.push(Box::new(adjust));
        self
    }

    /// The gateway's database engine (SQLite by default; PostgreSQL gets a fresh database).
    pub fn database(mut self, db: Db) -> Self {
        self.database = db;
        self
    }

    pub async fn spawn(self) -> TestApp {
        let Self {
            policy,
            embedded_policy,
            policy_at,
            simulator,
            settings,
            database,
        } = self;
        let postgres = match database {
            Db::Postgres => Some(fresh_postgres_database().await),
            Db::Sqlite => None,
        };
        let configure = move |gateway: &mut Settings| {
            if let Some(url) = postgres {
                gateway.storage.url = url.into();
            }
            // Tests of other things send bursts no employee would; the limits have their own.
            gateway.limits = LimitSettings::off();
            for adjust in settings {
                adjust(gateway);
            }
        };
        if std::env::var_os("TEST_LOG").is_some() {
            starrocks_gateway::telemetry::init(
                "debug",
                starrocks_gateway::telemetry::LogFormat::Text,
            );
        }
        let parsed = Policy::parse(&policy).expect("test policy is valid");
        let mut simulator_config = simulator_config_for(&parsed);
        for adjust in simulator {
            adjust(&mut simulator_config);
        }
        let (policy_path, store) = if embedded_policy {
            (None, PolicyStore::fixed(parsed))
        } else if let Some(path) = policy_at {
            let store = PolicyStore::from_file(path).expect("the test's policy loads");
            (None, store)
        } else {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "srgw-test-policy-{}-{}.toml",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, &policy).expect("writing the test policy");
            let store = PolicyStore::from_file(path.clone()).expect("test policy loads");
            (Some(path), store)
        };
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let stack = DemoStack::start(loopback, simulator_config, store, configure)
            .await
            .expect("the stack starts");
        TestApp {
            policy_path,
            stack,
            // Idle connections are dropped before the server's keep-alive ends, so a request
            // never races the server closing the connection it reuses.
            client: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .expect("a test HTTP client"),
        }
    }
}

/// A test leaves nothing behind in the temporary directory: its policy file and, on SQLite,
/// its database files go when the test ends.
impl Drop for TestApp {
    fn drop(&mut self) {
        use secrecy::ExposeSecret;
        if let Some(policy) = &self.policy_path {
            drop(std::fs::remove_file(policy));
        }
        if let Some(database) = self
            .stack
            .settings
            .storage
            .url
            .expose_secret()
            .strip_prefix("sqlite://")
        {
            remove_sqlite_files(Path::new(database));
        }
    }
}

/// Deletes a SQLite database and its `-wal` and `-shm` companions. Already gone is fine;
/// anything else only costs a stray temporary file.
pub fn remove_sqlite_files(database: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        drop(std::fs::remove_file(format!(
            "{}{suffix}",
            database.display()
        )));
    }
}

impl TestApp {
    /// The stack with every default (see [`TestAppBuilder`]).
    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    pub fn builder<'a>() -> TestAppBuilder<'a> {
        TestAppBuilder {
            policy: EXAMPLE_POLICY.to_owned(),
            embedded_policy: false,
            policy_at: None,
            simulator: Vec::new(),
            settings: Vec::new(),
            database: Db::Sqlite,
        }
    }

    /// The policy file the gateway reads, for tests to rewrite.
    pub fn policy_file(&self) -> &Path {
        self.policy_path
            .as_deref()
            .expect("this test's policy is read from a file")
    }

    pub fn token_for(&self, sub: &str, team: &str) -> String {
        self.stack
            .idp
            .mint(&employee(sub, team), 600)
            .expect("minting works")
    }

    pub fn alice(&self) -> String {
        self.token_for("alice", "analytics")
    }

    /// A token whose `team` claim lists several teams, with optional roles.
    pub fn token_with(&self, sub: &str, teams: &[&str], roles: &[&str]) -> String {
        let mut claims = self.stack.idp.standard_claims(&employee(sub, ""));
        claims["team"] = json!(teams);
        claims["roles"] = json!(roles);
        self.stack.idp.sign(&claims).expect("minting works")
    }

    /// An admin of team analytics (the demo's admin role).
    pub fn admin(&self) -> String {
        self.token_with(
            "erin",
            &["analytics"],
            &[starrocks_gateway::demo::DEMO_ADMIN_ROLE],
        )
    }

    /// A request to the gateway with a bearer token.
    pub fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.stack.gateway_url))
            .bearer_auth(token)
    }

    /// `GET /v1/me` with `token`: the cheapest authenticated call.
    pub async fn me(&self, token: &str) -> reqwest::Response {
        self.authed(reqwest::Method::GET, "/v1/me", token)
            .send()
            .await
            .expect("GET /v1/me")
    }

    pub async fn create(&self, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/starrocks", self.stack.gateway_url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|error| panic!("the gateway did not answer: {error:?}"))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.stack.gateway_url))
            .send()
            .await
            .expect("the gateway answers")
    }

    pub async fn sim_creates(&self) -> Vec<ReceivedCreate> {
        self.sim_get(&self.stack.simulator_url, "/_sim/creates")
            .await
    }

    pub async fn sim_stats(&self) -> Stats {
        self.sim_get(&self.stack.simulator_url, "/_sim/stats").await
    }

    /// The simulator of `region`.
    pub fn sim_of(&self, region: &str) -> &str {
        self.stack
            .region_urls
            .get(region)
            .unwrap_or_else(|| panic!("no simulator for region {region}"))
    }

    pub async fn sim_creates_in(&self, region: &str) -> Vec<ReceivedCreate> {
        self.sim_get(self.sim_of(region), "/_sim/creates").await
    }

    pub async fn sim_stats_in(&self, region: &str) -> Stats {
        self.sim_get(self.sim_of(region), "/_sim/stats").await
    }

    async fn sim_get<T: serde::de::DeserializeOwned>(&self, simulator: &str, path: &str) -> T {
        self.client
            .get(format!("{simulator}{path}"))
            .send()
            .await
            .expect("the simulator answers")
            .json()
            .await
            .expect("the simulator answers JSON")
    }

    /// Waits (up to 10 s) until the simulator holds `count` creates (`hold_next_creates`).
    pub async fn wait_until_held(&self, count: usize) {
        for _ in 0..1_000 {
            if self.sim_stats().await.held == count {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the simulator never held {count} creates");
    }

    /// Lets the simulator's held creates go on.
    pub async fn release_held(&self) {
        let released = self
            .client
            .post(format!("{}/_sim/release", self.stack.simulator_url))
            .send()
            .await
            .expect("the simulator answers");
        assert_eq!(released.status(), 200);
    }

    pub async fn set_faults(&self, faults: Value) {
        self.set_faults_in(&self.stack.simulator_url, faults).await;
    }

    /// Sets faults on the simulator at `simulator` (see `sim_of`).
    pub async fn set_faults_in(&self, simulator: &str, faults: Value) {
        let response = self
            .client
            .put(format!("{simulator}/_sim/faults"))
            .json(&faults)
            .send()
            .await
            .expect("the simulator answers");
        assert_eq!(response.status(), 200);
    }

    pub async fn expire_cloud_tokens(&self) {
        let response = self
            .client
            .post(format!("{}/_sim/tokens/expire", self.stack.simulator_url))
            .send()
            .await
            .expect("the simulator answers");
        assert_eq!(response.status(), 204);
    }
}

/// `POST /v1/admin/reconcile` as a platform admin; the report.
pub async fn reconcile(app: &TestApp) -> Value {
    let response = app
        .authed(reqwest::Method::POST, "/v1/admin/reconcile", &app.admin())
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

/// A loopback URL where nothing listens: a port bound and let go at once.
pub fn closed_url() -> url::Url {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("http://127.0.0.1:{port}").parse().expect("a URL")
}

pub fn small_instance() -> Value {
    json!({"name": "sales-cube", "target": "analytics-prod", "size": "small"})
}

/// Reads a problem+json answer, checking its media type and that it carries the request id.
pub async fn problem(response: reqwest::Response) -> Value {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let header_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["request_id"].as_str(), header_id.as_deref(), "{body}");
    body
}

/// Unix seconds now, for claims.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .expect("clock after 1970")
}

/// Valid claims of alice (team analytics), for tests to alter one at a time.
pub fn alice_claims(app: &TestApp) -> Value {
    app.stack
        .idp
        .standard_claims(&employee("alice", "analytics"))
}

/// `claims` with `key` set to `value`.
pub fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

/// Drops the test's PostgreSQL database under the running gateway, as an outage would.
pub async fn drop_database(app: &TestApp) {
    use secrecy::ExposeSecret;
    use sqlx::Connection;
    let url = app.stack.settings.storage.url.expose_secret().to_owned();
    let (server, database) = url.rsplit_once('/').expect("a database in the URL");
    let mut admin = sqlx::AnyConnection::connect(&format!("{server}/postgres"))
        .await
        .expect("server");
    sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("dropped");
}

/// The value of one series (its name and labels exactly as `/metrics` shows them), or 0 when
/// it has none yet. The metrics are the process's: counters only ever grow, whichever test
/// moved them.
pub async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.expect("text");
    sample(&text, series).unwrap_or(0.0)
}

/// The value of `series` (name and labels, exactly as exposed) in a scrape.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Scrapes until `holds` accepts the text (other tests' gateways share the process's gauges
/// and may scrape in between), and returns the last scrape.
pub async fn scrape_until(app: &TestApp, holds: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..20 {
        text = app.get("/metrics").await.text().await.expect("text");
        if holds(&text) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    text
}

pub async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON")
}

/// The decision log as an admin reads it, with `query` (`""` or `?…`).
pub async fn decisions(app: &TestApp, query: &str) -> Value {
    let response = app
        .authed(
            reqwest::Method::GET,
            &format!("/v1/admin/decisions{query}"),
            &app.admin(),
        )
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

/// The instances the employee's first team uses, as `/v1/me` shows them.
pub async fn instances_used(app: &TestApp, token: &str) -> i64 {
    let me = json_of(
        app.authed(reqwest::Method::GET, "/v1/me", token)
            .send()
            .await
            .expect("answer"),
    )
    .await;
    me["teams"][0]["usage"]["instances"]
        .as_i64()
        .expect("usage")
}
