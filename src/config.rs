//! Typed configuration: a TOML file, then environment overrides.
//!
//! Precedence is file < environment. Every key can be overridden with `SRGW_` followed by the
//! key path in upper case, sections separated by `__`: `SRGW_CLOUD__PASSWORD` sets
//! `cloud.password`, `SRGW_AUTH__LEEWAY_SECS` sets `auth.leeway_secs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

use crate::identity::SigningAlgorithm;

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "SRGW_";
/// The separator between nested keys in an environment override.
pub const ENV_SEPARATOR: &str = "__";

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub cloud: CloudSettings,
    pub policy: PolicySettings,
    #[serde(default)]
    pub storage: StorageSettings,
    #[serde(default)]
    pub reconcile: ReconcileSettings,
    #[serde(default)]
    pub limits: LimitSettings,
    #[serde(default)]
    pub portal: PortalSettings,
    #[serde(default)]
    pub audit: AuditSettings,
    #[serde(default)]
    pub approvals: ApprovalSettings,
    #[serde(default)]
    pub leases: LeaseSettings,
}

/// The lease sweep (how long leases are is in the policy).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct LeaseSettings {
    /// How often instances are marked expiring and those past their end deleted; `0` turns
    /// the sweep off (leases are then not enforced).
    pub sweep_interval_secs: u64,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        Self {
            sweep_interval_secs: 60,
        }
    }
}

/// Exception requests and their approvals (who approves is in the policy).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalSettings {
    /// 64 hexadecimal digits: the AES-256 key sealing a generated root password until its
    /// requester reads it. Replicas must share it; without it each process makes its own.
    #[cfg_attr(test, schemars(with = "Option<String>"))]
    pub sealing_key: Option<SecretString>,
    /// How often pending requests past their time are expired, and approvals interrupted
    /// mid-create settled; `0` turns the sweep off.
    pub sweep_interval_secs: u64,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        Self {
            sealing_key: None,
            sweep_interval_secs: 60,
        }
    }
}

/// Where every decision is also written, as it is made, for a SIEM (besides the database).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    pub stream: StreamTarget,
    /// The file of `stream = "file"`, rotated by size to `FILE.1`, `FILE.2`, ….
    pub file: Option<PathBuf>,
    /// A file past this size is rotated after the line that crossed it.
    pub max_file_bytes: u64,
    /// Rotated files kept; older ones are deleted.
    pub max_files: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            stream: StreamTarget::Off,
            file: None,
            max_file_bytes: 100 * 1024 * 1024,
            max_files: 10,
        }
    }
}

/// Where the decision stream goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum StreamTarget {
    /// Only the database.
    Off,
    /// One JSON line per decision on standard output (the logs go to standard error).
    Stdout,
    /// One JSON line per decision in `audit.file`.
    File,
}

/// Browser sign-in for the portal and Swagger UI: OpenID Connect, authorization code with
/// PKCE, as a public client of the identity provider (`auth.issuer`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct PortalSettings {
    /// The client registered for the portal at the identity provider (public, no secret).
    /// Absent: no sign-in; the portal takes a pasted token.
    pub client_id: Option<String>,
    /// Scopes asked for at sign-in.
    pub scopes: Vec<String>,
    /// Where the provider sends the browser back, on this gateway; register
    /// `{gateway URL}{redirect_path}` (and `{gateway URL}/swagger-ui/oauth2-redirect.html`
    /// for Swagger UI) as the client's redirect URIs.
    pub redirect_path: String,
}

impl Default for PortalSettings {
    fn default() -> Self {
        Self {
            client_id: None,
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            redirect_path: "/".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// `sqlite://FILE` (embedded, one gateway) or `postgres://…` (several replicas). A secret,
    /// because a PostgreSQL URL may carry a password.
    #[cfg_attr(test, schemars(with = "String"))]
    pub url: SecretString,
    pub max_connections: u32,
    /// How long a request waits for a database connection before it gets `503`.
    pub acquire_timeout_ms: u64,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl_secs: u64,
    /// Create an empty ledger when the database has none (a missing SQLite file, a database
    /// without the schema). Off by default: a ledger that vanished must not come back empty
    /// while the team's instances still exist. `serve --init-storage` turns it on once.
    pub create_if_missing: bool,
    /// Decisions older than this many days are deleted; `0` keeps them forever.
    pub decision_retention_days: u64,
    /// How often expired decisions and idempotency records are pruned; `0` turns it off.
    pub prune_interval_secs: u64,
    /// PostgreSQL: how long a team's usage, as dry-runs and `/v1/me` show it, may be reused.
    /// This gateway's own creates and deletes refresh it at once; another replica's show
    /// within this time. `0` turns the cache off. (On SQLite the one gateway keeps usage
    /// exact in memory.) Admission always reads the ledger itself.
    pub usage_cache_ms: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("sqlite://starrocks-gateway.db"),
            max_connections: 8,
            acquire_timeout_ms: 3_000,
            idempotency_ttl_secs: 24 * 3_600,
            create_if_missing: false,
            decision_retention_days: 90,
            prune_interval_secs: 600,
            usage_cache_ms: 1_000,
        }
    }
}

/// Rate limits, counted by each replica on its own: N replicas admit up to N times these.
/// `0` turns a limit off.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Creates one employee may make per minute once their burst is spent.
    pub creates_per_minute: u32,
    /// Creates one employee may make at once.
    pub creates_burst: u32,
    /// Other `/v1` requests (reads, dry-runs, deletes) one employee may make per second once
    /// their burst is spent.
    pub requests_per_second: u32,
    pub requests_burst: u32,
    /// The whole gateway's calls to the TaurusDB API per second: keep it below the account's
    /// API gateway limit, so that no burst of callers gets the account throttled
    /// (`APIGW.0308`).
    pub cloud_calls_per_second: u32,
    pub cloud_calls_burst: u32,
    /// How long a call may wait for the budget before its caller gets `429`.
    pub cloud_budget_wait_ms: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            creates_per_minute: 10,
            creates_burst: 5,
            requests_per_second: 20,
            requests_burst: 40,
            cloud_calls_per_second: 20,
            cloud_calls_burst: 40,
            cloud_budget_wait_ms: 2_000,
        }
    }
}

impl LimitSettings {
    /// No limit at all: for benchmarks and tests of other things.
    pub fn off() -> Self {
        Self {
            creates_per_minute: 0,
            creates_burst: 0,
            requests_per_second: 0,
            requests_burst: 0,
            cloud_calls_per_second: 0,
            cloud_calls_burst: 0,
            cloud_budget_wait_ms: 0,
        }
    }

    /// These settings with `SRGW_LIMITS__*` overrides from the environment applied; for the
    /// demo, whose other settings are fixed.
    pub fn with_env_overrides(self) -> Result<Self, ConfigError> {
        Figment::from(figment::providers::Serialized::defaults(self))
            .merge(Env::prefixed(&format!("{ENV_PREFIX}LIMITS{ENV_SEPARATOR}")))
            .extract()
            .map_err(|error| ConfigError::Invalid(error.to_string()))
    }
}

/// Resolving creates whose outcome is unknown (a timeout or 5xx after sending).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileSettings {
    /// How often pending reservations are checked against the cloud; `0` turns the loop off.
    pub interval_secs: u64,
    /// A pending create the cloud does not show after this long is released.
    pub grace_secs: u64,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            interval_secs: 60,
            grace_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Worker threads; `0` means one per core.
    #[serde(default)]
    pub workers: usize,
    /// Largest accepted JSON body. Create bodies are tiny; a small bound caps abuse.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// A request body not received whole within this time is answered `408`, so a client
    /// that sends part of a body and goes silent holds nothing for long.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// A request head (request line and headers) not received within this time closes the
    /// connection.
    #[serde(default = "default_head_timeout")]
    pub head_timeout_ms: u64,
    /// Open connections at most, over all workers. Also kept below the process's file
    /// descriptor limit, whose soft value is raised to the hard one at start.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A second address serving only `/healthz`, `/readyz` and `/metrics`, with its own worker
    /// and connection allowance: probes keep answering when clients hold every connection of
    /// `listen`. Give it to the orchestrator's probes and the metrics scraper, and keep it
    /// off the public network. Absent: no second listener (the main one serves them too).
    #[serde(default)]
    pub ops_listen: Option<SocketAddr>,
}

fn default_body_limit() -> usize {
    16 * 1024
}

fn default_body_timeout() -> u64 {
    10_000
}

fn default_head_timeout() -> u64 {
    5_000
}

fn default_max_connections() -> usize {
    10_000
}

impl ServerSettings {
    /// Listening on `listen` with every other value at its default.
    pub fn on(listen: SocketAddr) -> Self {
        Self {
            listen,
            workers: 0,
            body_limit_bytes: default_body_limit(),
            body_timeout_ms: default_body_timeout(),
            head_timeout_ms: default_head_timeout(),
            max_connections: default_max_connections(),
            ops_listen: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Expected `iss` claim, exactly.
    pub issuer: String,
    /// Expected `aud` claim (one of the token's audiences must match).
    pub audience: String,
    /// Key source, exactly one of: the IdP's JWKS URL ...
    pub jwks_url: Option<Url>,
    /// ... or OIDC discovery from `{issuer}/.well-known/openid-configuration` ...
    #[serde(default)]
    pub oidc_discovery: bool,
    /// ... or a file of PEM public keys or a JWKS document, for closed networks.
    pub keys_file: Option<PathBuf>,
    /// An allow-list of signing algorithms; anything else is refused before any key is
    /// looked at. Absent: every asymmetric algorithm the gateway verifies, each key still
    /// pinned to its JWK's `alg` (or its key type).
    #[serde(default)]
    #[cfg_attr(test, schemars(with = "Option<Vec<String>>"))]
    pub algorithms: Option<Vec<SigningAlgorithm>>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// When set, the token header's `typ` must equal it (case-insensitive), e.g. `at+jwt`.
    pub expected_typ: Option<String>,
    /// Tokens larger than this are refused unread.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Longest accepted `exp - iat`; tokens must then carry `iat`. `0` disables the check.
    #[serde(default = "default_max_token_lifetime")]
    pub max_token_lifetime_secs: u64,
    /// How often fetched keys are refreshed in the background.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
    /// Refetches forced by an unknown `kid` are earned one per this interval ...
    #[serde(default = "default_jwks_refetch_interval")]
    pub jwks_min_refetch_interval_secs: u64,
    /// ... and saved up to this many, so back-to-back rotations are all picked up at once.
    #[serde(default = "default_jwks_refetch_burst")]
    pub jwks_refetch_burst: u32,
    /// How long the last good keys keep serving when refreshes fail.
    #[serde(default = "default_jwks_max_stale")]
    pub jwks_max_stale_secs: u64,
    /// Timeout of one JWKS or discovery fetch.
    #[serde(default = "default_jwks_timeout")]
    pub jwks_timeout_ms: u64,
    /// How many verified tokens are remembered (each until it expires).
    #[serde(default = "default_verified_cache")]
    pub verified_token_cache_size: u64,
    #[serde(default)]
    pub claims: ClaimSettings,
    /// RFC 7662 introspection for access tokens that are not JWTs; absent: only JWTs.
    pub introspection: Option<IntrospectionSettings>,
    /// Longest time an introspection answer is remembered (an active token's never past its
    /// `exp`): how long a revoked opaque token may still work.
    #[serde(default = "default_introspection_cache")]
    pub introspection_cache_secs: u64,
}

/// Where and as whom the gateway introspects opaque tokens.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IntrospectionSettings {
    /// The IdP's introspection endpoint (discovery's `introspection_endpoint`).
    pub endpoint: Url,
    /// The gateway's own client at the IdP, authenticated with HTTP Basic.
    pub client_id: String,
    /// Set it from the environment: `SRGW_AUTH__INTROSPECTION__CLIENT_SECRET`.
    #[cfg_attr(test, schemars(with = "String"))]
    pub client_secret: SecretString,
    #[serde(default = "default_introspection_timeout")]
    pub timeout_ms: u64,
}

/// Which claims carry what. Dotted names are not interpreted: a claim is a top-level key.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct ClaimSettings {
    pub subject: String,
    pub email: String,
    /// The claim naming the employee's teams: a string or an array of strings.
    pub teams: String,
    /// Only values starting with this prefix name teams, and it is stripped (`team:`).
    pub team_prefix: String,
    /// The claim that marks platform admins (a string or an array of strings) ...
    pub admin_claim: Option<String>,
    /// ... when it equals or contains this value.
    pub admin_value: Option<String>,
    /// The claim naming the employee's groups (a string or an array of strings), which a
    /// team's `exceptions.approvers` may name as `group:NAME`.
    pub groups: String,
}

impl Default for ClaimSettings {
    fn default() -> Self {
        Self {
            subject: "sub".into(),
            email: "email".into(),
            teams: "team".into(),
            team_prefix: String::new(),
            admin_claim: None,
            admin_value: None,
            groups: "groups".into(),
        }
    }
}

fn default_leeway() -> u64 {
    30
}
fn default_max_token_bytes() -> usize {
    8 * 1024
}
fn default_max_token_lifetime() -> u64 {
    24 * 3_600
}
fn default_jwks_refresh() -> u64 {
    300
}
fn default_jwks_refetch_interval() -> u64 {
    20
}
fn default_jwks_refetch_burst() -> u32 {
    3
}
fn default_jwks_max_stale() -> u64 {
    3_600
}
fn default_jwks_timeout() -> u64 {
    5_000
}
fn default_introspection_cache() -> u64 {
    60
}
fn default_introspection_timeout() -> u64 {
    2_000
}
fn default_verified_cache() -> u64 {
    10_000
}

/// Huawei Cloud: the accounts and regions the gateway orders in, and how it calls them.
///
/// Either the single-region form (`iam_url`, `endpoint`, `project_id`, `region`, `domain`,
/// `user`, `password` directly here: one account, one region), or `[cloud.accounts.NAME]`
/// and `[cloud.regions.NAME]`; [`CloudSettings::topology`] reads both into one shape.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CloudSettings {
    /// Single-region form: IAM endpoint, e.g. `https://iam.cn-north-4.myhuaweicloud.com`.
    pub iam_url: Option<Url>,
    /// Single-region form: TaurusDB endpoint, e.g. `https://gaussdb.cn-north-4.myhuaweicloud.com`.
    pub endpoint: Option<Url>,
    /// Single-region form: the 32-character project id of the region.
    pub project_id: Option<String>,
    /// Single-region form: the region's name.
    pub region: Option<String>,
    /// Single-region form: IAM account (domain) name.
    pub domain: Option<String>,
    /// Single-region form: IAM user the gateway acts as.
    pub user: Option<String>,
    #[cfg_attr(test, schemars(with = "Option<String>"))]
    pub password: Option<SecretString>,
    /// Accounts by name (lower-case letters, digits and `_`, so the environment can reach
    /// their secrets).
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountSettings>,
    /// Regions by name (`cn-north-4`); policy targets name them.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionSettings>,
    /// The region of targets that name none; may be left out when there is one region.
    pub default_region: Option<String>,
    /// When `/readyz` says ready, as far as the cloud is concerned.
    #[serde(default)]
    pub ready_when: ReadyWhen,
    /// A cached IAM token is replaced this long before its `expires_at`.
    #[serde(default = "default_refresh_margin")]
    pub token_refresh_margin_secs: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Whole-request timeout toward IAM and TaurusDB.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Reads of the same target, instance or job share one call and its answer for this
    /// long, so polling portals cannot exhaust the account's API rate; `0` turns it off.
    #[serde(default = "default_read_cache")]
    pub read_cache_ms: u64,
    /// Failures in a row (timeouts, connection failures, `5xx`) after which an operation's
    /// circuit breaker opens and its calls fail fast with `503`; `0` turns breakers off.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker refuses before it lets calls through again (at least 1);
    /// doubled, up to six times as long, while the failures go on.
    #[serde(default = "default_breaker_open")]
    pub breaker_open_secs: u64,
}

/// How the gateway authenticates to one Huawei Cloud account: an IAM user's password (for
/// project-scoped tokens) or an access key pair (every call signed, `SDK-HMAC-SHA256`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    /// IAM endpoint (password accounts), e.g. `https://iam.myhuaweicloud.com`.
    pub iam_url: Option<Url>,
    /// IAM account (domain) name (password accounts).
    pub domain: Option<String>,
    /// IAM user the gateway acts as (password accounts).
    pub user: Option<String>,
    #[cfg_attr(test, schemars(with = "Option<String>"))]
    pub password: Option<SecretString>,
    /// Access key id (AK/SK accounts).
    pub access_key_id: Option<String>,
    #[cfg_attr(test, schemars(with = "Option<String>"))]
    pub secret_access_key: Option<SecretString>,
}

/// One region the gateway orders StarRocks in.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RegionSettings {
    /// TaurusDB endpoint of the region.
    pub endpoint: Url,
    /// The account's 32-character project id in this region.
    pub project_id: String,
    /// The name of the `[cloud.accounts.NAME]` whose credentials are used here.
    pub account: String,
}

/// When the cloud side of `/readyz` is ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReadyWhen {
    /// Every region that holds a policy target has usable credentials.
    #[default]
    EveryTargetRegion,
    /// At least one such region does: a replica keeps serving the regions that work.
    AnyTargetRegion,
}

/// The accounts and regions, checked and resolved; what the cloud clients are built from.
#[derive(Debug, Clone)]
pub struct Topology {
    pub default_region: String,
    pub regions: BTreeMap<String, Region>,
}

/// A region with its account resolved.
#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    pub endpoint: Url,
    pub project_id: String,
    pub account: Account,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub credentials: Credentials,
}

#[derive(Debug, Clone)]
pub enum Credentials {
    Password(PasswordLogin),
    AccessKey(crate::cloud::signing::AccessKey),
}

/// An IAM user's password login, for project-scoped tokens.
#[derive(Debug, Clone)]
pub struct PasswordLogin {
    pub iam_url: Url,
    pub domain: String,
    pub user: String,
    pub password: SecretString,
}

type Accounts = BTreeMap<String, AccountSettings>;
type Regions = BTreeMap<String, RegionSettings>;

/// The account name of the single-region form.
pub const SINGLE_ACCOUNT: &str = "default";

pub(crate) fn default_breaker_failures() -> u32 {
    5
}

pub(crate) fn default_breaker_open() -> u64 {
    10
}

fn default_refresh_margin() -> u64 {
    3_600
}
fn default_connect_timeout() -> u64 {
    3_000
}
fn default_request_timeout() -> u64 {
    30_000
}
fn default_read_cache() -> u64 {
    1_000
}

impl CloudSettings {
    /// The accounts and regions, from either form; the error names the key at fault.
    pub fn topology(&self) -> Result<Topology, ConfigError> {
        let invalid = |key: String, why: &str| ConfigError::Invalid(format!("`{key}` {why}"));
        let single_form = [
            self.iam_url.is_some(),
            self.endpoint.is_some(),
            self.project_id.is_some(),
            self.region.is_some(),
            self.domain.is_some(),
            self.user.is_some(),
            self.password.is_some(),
        ]
        .contains(&true);
        let (accounts, regions) = if self.regions.is_empty() && self.accounts.is_empty() {
            self.single_region()?
        } else if single_form {
            return Err(invalid(
                "cloud.regions".into(),
                "cannot be combined with the single-region keys (cloud.endpoint, cloud.project_id, …): move them into [cloud.accounts.NAME] and [cloud.regions.NAME]",
            ));
        } else {
            (self.accounts.clone(), self.regions.clone())
        };
        if regions.is_empty() {
            return Err(invalid(
                "cloud.regions".into(),
                "must name at least one region",
            ));
        }
        let mut resolved_accounts = BTreeMap::new();
        for (name, account) in &accounts {
            let valid_name = !name.is_empty()
                && !name.contains("__")
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_name {
                return Err(invalid(
                    format!("cloud.accounts.{name}"),
                    "must be named with lower-case letters, digits and single `_`",
                ));
            }
            resolved_accounts.insert(name.clone(), account.resolve(name)?);
        }
        let mut resolved = BTreeMap::new();
        for (name, region) in regions {
            let at = |key: &str| format!("cloud.regions.{name}.{key}");
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid_name {
                return Err(invalid(
                    format!("cloud.regions.{name}"),
                    "must be named with lower-case letters, digits and `-` (like cn-north-4)",
                ));
            }
            if !is_project_id(&region.project_id) {
                return Err(invalid(at("project_id"), "must be 32 letters or digits"));
            }
            let Some(account) = resolved_accounts.get(&region.account) else {
                return Err(invalid(
                    at("account"),
                    &format!(
                        "names no account; configured: {}",
                        accounts.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            };
            resolved.insert(
                name.clone(),
                Region {
                    name: name.clone(),
                    endpoint: region.endpoint,
                    project_id: region.project_id,
                    account: account.clone(),
                },
            );
        }
        let default_region = match (&self.default_region, &self.region) {
            (Some(name), _) | (None, Some(name)) => name.clone(),
            (None, None) if resolved.len() == 1 => {
                resolved.keys().next().cloned().unwrap_or_default()
            }
            (None, None) => {
                return Err(invalid(
                    "cloud.default_region".into(),
                    "must be set when there is more than one region (targets that name no region go there)",
                ));
            }
        };
        if !resolved.contains_key(&default_region) {
            return Err(invalid(
                "cloud.default_region".into(),
                "must be one of the configured regions",
            ));
        }
        Ok(Topology {
            default_region,
            regions: resolved,
        })
    }

    /// The single-region form as one account (`default`) with one region.
    fn single_region(&self) -> Result<(Accounts, Regions), ConfigError> {
        let required = |key: &str| {
            ConfigError::Invalid(format!(
                "`cloud.{key}` is required (or configure [cloud.accounts.NAME] and [cloud.regions.NAME])"
            ))
        };
        let region = self.region.clone().ok_or_else(|| required("region"))?;
        let account = AccountSettings {
            iam_url: Some(self.iam_url.clone().ok_or_else(|| required("iam_url"))?),
            domain: Some(self.domain.clone().ok_or_else(|| required("domain"))?),
            user: Some(self.user.clone().ok_or_else(|| required("user"))?),
            password: Some(self.password.clone().ok_or_else(|| required("password"))?),
            access_key_id: None,
            secret_access_key: None,
        };
        let project_id = self
            .project_id
            .clone()
            .ok_or_else(|| required("project_id"))?;
        if !is_project_id(&project_id) {
            return Err(ConfigError::Invalid(
                "`cloud.project_id` must be 32 letters or digits".into(),
            ));
        }
        let settings = RegionSettings {
            endpoint: self.endpoint.clone().ok_or_else(|| required("endpoint"))?,
            project_id,
            account: SINGLE_ACCOUNT.into(),
        };
        Ok((
            BTreeMap::from([(SINGLE_ACCOUNT.to_owned(), account)]),
            BTreeMap::from([(region, settings)]),
        ))
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

fn is_project_id(id: &str) -> bool {
    id.len() == 32 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

impl AccountSettings {
    /// Exactly one way in: a password (with its IAM endpoint, domain and user) or an access
    /// key pair.
    fn resolve(&self, name: &str) -> Result<Account, ConfigError> {
        let invalid = |key: &str, why: &str| {
            ConfigError::Invalid(format!("`cloud.accounts.{name}.{key}` {why}"))
        };
        let credentials = match (&self.password, &self.access_key_id, &self.secret_access_key) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(invalid(
                    "password",
                    "and an access key cannot both be set: choose one way in",
                ));
            }
            (Some(password), None, None) => {
                let need = |value: &Option<String>, key: &str| {
                    value
                        .clone()
                        .filter(|v| !v.trim().is_empty())
                        .ok_or_else(|| invalid(key, "is required with a password"))
                };
                Credentials::Password(PasswordLogin {
                    iam_url: self
                        .iam_url
                        .clone()
                        .ok_or_else(|| invalid("iam_url", "is required with a password"))?,
                    domain: need(&self.domain, "domain")?,
                    user: need(&self.user, "user")?,
                    password: password.clone(),
                })
            }
            (None, Some(id), Some(secret)) => {
                if id.trim().is_empty() || secret.expose_secret().is_empty() {
                    return Err(invalid("access_key_id", "and its secret must not be empty"));
                }
                // It goes into every call's Authorization header.
                if !id.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(invalid(
                        "access_key_id",
                        "must be visible ASCII letters, digits and symbols",
                    ));
                }
                Credentials::AccessKey(crate::cloud::signing::AccessKey {
                    id: id.clone(),
                    secret: secret.clone(),
                })
            }
            (None, Some(_), None) => {
                return Err(invalid(
                    "secret_access_key",
                    &format!(
                        "is required with access_key_id (set SRGW_CLOUD__ACCOUNTS__{}__SECRET_ACCESS_KEY)",
                        name.to_uppercase()
                    ),
                ));
            }
            (None, None, _) => {
                return Err(invalid(
                    "password",
                    &format!(
                        "or access_key_id must be set (secrets from the environment: SRGW_CLOUD__ACCOUNTS__{}__PASSWORD)",
                        name.to_uppercase()
                    ),
                ));
            }
        };
        Ok(Account {
            name: name.to_owned(),
            credentials,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    pub path: PathBuf,
    /// How often the file is checked for changes; `0` reloads only on SIGHUP or the admin API.
    #[serde(default = "default_watch_interval")]
    pub watch_interval_secs: u64,
}

fn default_watch_interval() -> u64 {
    5
}

/// A configuration that cannot be used; the message names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Reads `path`, then applies `SRGW_*` environment overrides, then checks the values.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::Missing(path.to_owned()));
        }
        Self::from_figment(Figment::new().merge(Toml::file(path)))
    }

    /// Parses configuration from TOML text, with the same environment overrides.
    pub fn from_toml_str(toml: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(toml)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Self = figment
            .merge(
                Env::prefixed(ENV_PREFIX)
                    // Same prefix, not configuration keys: the CLI's config path and the log format.
                    .ignore(&["config", "log_format"])
                    .split(ENV_SEPARATOR),
            )
            .extract()
            .map_err(|error| {
                ConfigError::Invalid(
                    error
                        .into_iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, why: &str| Err(ConfigError::Invalid(format!("`{key}` {why}")));
        if self.auth.issuer.trim().is_empty() {
            return invalid("auth.issuer", "must not be empty");
        }
        if self.auth.audience.trim().is_empty() {
            return invalid("auth.audience", "must not be empty");
        }
        let sources = [
            self.auth.jwks_url.is_some(),
            self.auth.oidc_discovery,
            self.auth.keys_file.is_some(),
        ];
        if sources.iter().filter(|set| **set).count() != 1 {
            return invalid(
                "auth.jwks_url",
                "or auth.oidc_discovery or auth.keys_file: exactly one key source must be set",
            );
        }
        if self.auth.claims.admin_claim.is_some() != self.auth.claims.admin_value.is_some() {
            return invalid(
                "auth.claims.admin_claim",
                "and auth.claims.admin_value must be set together",
            );
        }
        if self.auth.algorithms.as_ref().is_some_and(Vec::is_empty) {
            return invalid(
                "auth.algorithms",
                "must name at least one algorithm (leave it out to accept every supported one)",
            );
        }
        if !self.portal.redirect_path.starts_with('/') {
            return invalid(
                "portal.redirect_path",
                "must be a path on this gateway, starting with /",
            );
        }
        if self
            .portal
            .client_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty())
        {
            return invalid(
                "portal.client_id",
                "must not be empty (leave it out to turn sign-in off)",
            );
        }
        if self.auth.jwks_refetch_burst == 0 {
            return invalid("auth.jwks_refetch_burst", "must be at least 1");
        }
        if let Some(introspection) = &self.auth.introspection {
            if introspection.client_id.trim().is_empty() {
                return invalid("auth.introspection.client_id", "must not be empty");
            }
            if introspection.client_secret.expose_secret().is_empty() {
                return invalid(
                    "auth.introspection.client_secret",
                    "must not be empty (set SRGW_AUTH__INTROSPECTION__CLIENT_SECRET)",
                );
            }
            if introspection.timeout_ms == 0 {
                return invalid("auth.introspection.timeout_ms", "must be positive");
            }
        }
        if self.audit.stream == StreamTarget::File && self.audit.file.is_none() {
            return invalid("audit.file", "must be set when audit.stream is \"file\"");
        }
        if self.audit.max_file_bytes < 4_096 {
            return invalid("audit.max_file_bytes", "must be at least 4096");
        }
        if self.audit.max_files == 0 {
            return invalid("audit.max_files", "must be at least 1");
        }
        if let Some(key) = &self.approvals.sealing_key
            && let Err(error) = crate::service::seal::PasswordSeal::from_hex(key)
        {
            return invalid("approvals.sealing_key", &error.to_string());
        }
        if self.auth.leeway_secs > 300 {
            return invalid("auth.leeway_secs", "must be at most 300");
        }
        self.cloud.topology()?;
        if self.cloud.request_timeout_ms == 0 || self.cloud.connect_timeout_ms == 0 {
            return invalid(
                "cloud.request_timeout_ms",
                "and cloud.connect_timeout_ms must be positive",
            );
        }
        if self.cloud.token_refresh_margin_secs >= 23 * 3_600 {
            return invalid(
                "cloud.token_refresh_margin_secs",
                "must be well below the 24 h token lifetime",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [server]
        listen = "127.0.0.1:8080"
        [auth]
        issuer = "https://idp.example.com"
        audience = "starrocks-gateway"
        jwks_url = "https://idp.example.com/jwks.json"
        [cloud]
        iam_url = "https://iam.example.com"
        endpoint = "https://gaussdb.example.com"
        project_id = "23a50154cf494ec9ad6883979a12db0a"
        region = "cn-north-4"
        domain = "acme"
        user = "svc"
        password = "not-a-real-password"
        [policy]
        path = "policy.toml"
    "#;

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let settings = Settings::from_toml_str(MINIMAL).expect("minimal config loads");
        assert_eq!(settings.auth.leeway_secs, 30);
        assert_eq!(settings.auth.algorithms, None, "every supported algorithm");
        assert_eq!(settings.auth.jwks_refetch_burst, 3);
        assert_eq!(settings.cloud.token_refresh_margin_secs, 3_600);
    }

    #[test]
    fn a_missing_key_is_named_in_the_error() {
        let without_project =
            MINIMAL.replace("project_id = \"23a50154cf494ec9ad6883979a12db0a\"", "");
        let error = Settings::from_toml_str(&without_project).expect_err("project_id is required");
        assert!(error.to_string().contains("project_id"), "{error}");
    }

    #[test]
    fn an_invalid_value_is_named_in_the_error() {
        let bad = MINIMAL.replace("23a50154cf494ec9ad6883979a12db0a", "short");
        let error = Settings::from_toml_str(&bad).expect_err("project_id is too short");
        assert!(error.to_string().contains("cloud.project_id"), "{error}");
    }

    #[test]
    fn hmac_algorithms_are_refused_for_a_jwks() {
        let bad = MINIMAL.replace(
            "jwks_url = \"https://idp.example.com/jwks.json\"",
            "jwks_url = \"https://idp.example.com/jwks.json\"\nalgorithms = [\"HS256\"]",
        );
        let error = Settings::from_toml_str(&bad).expect_err("HS256 is refused");
        assert!(error.to_string().contains("auth.algorithms"), "{error}");
        assert!(error.to_string().contains("HMAC"), "{error}");
    }

    #[test]
    fn an_algorithm_the_gateway_cannot_verify_is_a_clear_start_up_error() {
        let bad = MINIMAL.replace(
            "jwks_url = \"https://idp.example.com/jwks.json\"",
            "jwks_url = \"https://idp.example.com/jwks.json\"\nalgorithms = [\"ES256\", \"ES512\"]",
        );
        let error = Settings::from_toml_str(&bad)
            .expect_err("ES512 is refused")
            .to_string();
        assert!(error.contains("auth.algorithms"), "{error}");
        assert!(error.contains("`ES512`"), "{error}");
        assert!(error.contains("supported: RS256"), "{error}");
        assert!(!error.contains("unknown variant"), "{error}");
    }

    #[test]
    fn introspection_needs_its_client_secret_and_keeps_it_secret() {
        let with = |block: &str| {
            MINIMAL.replace(
                "jwks_url = \"https://idp.example.com/jwks.json\"",
                &format!("jwks_url = \"https://idp.example.com/jwks.json\"\n{block}"),
            )
        };
        let without_secret = with(
            "[auth.introspection]\nendpoint = \"https://idp.example.com/introspect\"\nclient_id = \"gw\"",
        );
        let error = Settings::from_toml_str(&without_secret).expect_err("the secret is required");
        assert!(error.to_string().contains("client_secret"), "{error}");

        let complete = with(
            "[auth.introspection]\nendpoint = \"https://idp.example.com/introspect\"\nclient_id = \"gw\"\nclient_secret = \"s3cret-introspection\"",
        );
        let settings = Settings::from_toml_str(&complete).expect("loads");
        assert_eq!(settings.auth.introspection_cache_secs, 60);
        assert!(!format!("{settings:?}").contains("s3cret-introspection"));
    }

    #[test]
    fn every_refused_value_is_named_in_its_error() {
        let auth = |lines: &str| {
            MINIMAL.replace(
                "jwks_url = \"https://idp.example.com/jwks.json\"",
                &format!("jwks_url = \"https://idp.example.com/jwks.json\"\n{lines}"),
            )
        };
        let introspection = |lines: &str| {
            auth(&format!(
                "[auth.introspection]\nendpoint = \"https://idp.example.com/introspect\"\n\
                 client_secret = \"s3cret\"\n{lines}"
            ))
        };
        let portal = |lines: &str| format!("{MINIMAL}\n[portal]\n{lines}");
        let cases = [
            (auth("jwks_refetch_burst = 0"), "auth.jwks_refetch_burst"),
            (auth("algorithms = []"), "auth.algorithms"),
            (auth("leeway_secs = 301"), "auth.leeway_secs"),
            (
                introspection("client_id = \" \""),
                "auth.introspection.client_id",
            ),
            (
                introspection("client_id = \"gw\"\ntimeout_ms = 0"),
                "auth.introspection.timeout_ms",
            ),
            (portal("redirect_path = \"portal\""), "portal.redirect_path"),
            (portal("client_id = \"\""), "portal.client_id"),
            (
                format!("{MINIMAL}\n[audit]\nstream = \"file\""),
                "audit.file",
            ),
            (
                format!("{MINIMAL}\n[audit]\nmax_file_bytes = 100"),
                "audit.max_file_bytes",
            ),
            (
                format!("{MINIMAL}\n[audit]\nmax_files = 0"),
                "audit.max_files",
            ),
        ];
        for (config, key) in cases {
            let error = Settings::from_toml_str(&config).expect_err(key).to_string();
            assert!(error.contains(&format!("`{key}`")), "{key}: {error}");
        }
    }

    /// MINIMAL with its `[cloud]` replaced by `cloud`.
    fn with_cloud(cloud: &str) -> String {
        let start = MINIMAL.find("[cloud]").expect("a cloud section");
        let end = MINIMAL.find("[policy]").expect("a policy section");
        format!("{}{cloud}\n{}", &MINIMAL[..start], &MINIMAL[end..])
    }

    const REGIONS: &str = r#"
        [cloud]
        default_region = "cn-north-4"
        [cloud.accounts.main]
        iam_url = "https://iam.example.com"
        domain = "acme"
        user = "svc"
        password = "main-password"
        [cloud.accounts.asia]
        access_key_id = "HPUAEXAMPLE"
        secret_access_key = "asia-secret"
        [cloud.regions.cn-north-4]
        endpoint = "https://gaussdb.cn-north-4.example.com"
        project_id = "23a50154cf494ec9ad6883979a12db0a"
        account = "main"
        [cloud.regions.ap-southeast-1]
        endpoint = "https://gaussdb.ap-southeast-1.example.com"
        project_id = "9e1f3a5b7c9d4e2f8a0b2c4d6e8f0a1b"
        account = "asia"
    "#;

    #[test]
    fn the_single_region_form_is_one_account_in_one_region() {
        let settings = Settings::from_toml_str(MINIMAL).expect("loads");
        let topology = settings.cloud.topology().expect("a topology");
        assert_eq!(topology.default_region, "cn-north-4");
        let region = &topology.regions["cn-north-4"];
        assert_eq!(region.project_id, "23a50154cf494ec9ad6883979a12db0a");
        assert_eq!(region.endpoint.as_str(), "https://gaussdb.example.com/");
        assert_eq!(region.account.name, SINGLE_ACCOUNT);
        assert!(matches!(
            &region.account.credentials,
            Credentials::Password(login) if login.user == "svc" && login.domain == "acme"
        ));
    }

    #[test]
    fn regions_name_their_account_and_accounts_their_way_in() {
        let settings = Settings::from_toml_str(&with_cloud(REGIONS)).expect("loads");
        let topology = settings.cloud.topology().expect("a topology");
        assert_eq!(topology.default_region, "cn-north-4");
        assert_eq!(topology.regions.len(), 2);
        let asia = &topology.regions["ap-southeast-1"];
        assert_eq!(asia.account.name, "asia");
        assert!(matches!(
            &asia.account.credentials,
            Credentials::AccessKey(key) if key.id == "HPUAEXAMPLE"
        ));
        let printed = format!("{settings:?} {topology:?}");
        assert!(!printed.contains("asia-secret") && !printed.contains("main-password"));
    }

    #[test]
    fn every_refused_cloud_is_named_in_its_error() {
        let regions = |from: &str, to: &str| with_cloud(&REGIONS.replace(from, to));
        let cases = [
            (
                with_cloud(REGIONS).replace(
                    "[cloud]\n",
                    "[cloud]\nendpoint = \"https://x.example.com\"\n",
                ),
                "cloud.regions",
            ),
            (
                regions("account = \"asia\"", "account = \"europe\""),
                "cloud.regions.ap-southeast-1.account",
            ),
            (
                regions("default_region = \"cn-north-4\"", ""),
                "cloud.default_region",
            ),
            (
                regions(
                    "default_region = \"cn-north-4\"",
                    "default_region = \"eu-west-0\"",
                ),
                "cloud.default_region",
            ),
            (
                regions("secret_access_key = \"asia-secret\"", ""),
                "cloud.accounts.asia.secret_access_key",
            ),
            (
                regions("password = \"main-password\"", ""),
                "cloud.accounts.main.password",
            ),
            (
                regions("domain = \"acme\"", ""),
                "cloud.accounts.main.domain",
            ),
            (
                regions(
                    "access_key_id = \"HPUAEXAMPLE\"",
                    "access_key_id = \"HPUAEXAMPLE\"\npassword = \"x\"",
                ),
                "cloud.accounts.asia.password",
            ),
            (
                regions("HPUAEXAMPLE", "HPUA EXAMPLE"),
                "cloud.accounts.asia.access_key_id",
            ),
            (
                regions("9e1f3a5b7c9d4e2f8a0b2c4d6e8f0a1b", "short"),
                "cloud.regions.ap-southeast-1.project_id",
            ),
            (
                regions("[cloud.accounts.asia]", "[cloud.accounts.Asia]")
                    .replace("account = \"asia\"", "account = \"Asia\""),
                "cloud.accounts.Asia",
            ),
            (
                regions("[cloud.regions.ap-southeast-1]", "[cloud.regions.AP_1]"),
                "cloud.regions.AP_1",
            ),
        ];
        for (config, key) in cases {
            let error = Settings::from_toml_str(&config).expect_err(key).to_string();
            assert!(error.contains(&format!("`{key}`")), "{key}: {error}");
        }
    }

    #[test]
    fn the_password_never_prints() {
        let settings = Settings::from_toml_str(MINIMAL).expect("minimal config loads");
        assert!(!format!("{settings:?}").contains("not-a-real-password"));
    }

    /// Every key `Settings` accepts, with its JSON Schema type, read from the derived schema.
    fn keys_in_code() -> BTreeMap<String, String> {
        fn walk(
            schema: &serde_json::Value,
            defs: &serde_json::Value,
            prefix: &str,
            keys: &mut BTreeMap<String, String>,
        ) {
            let resolve = |schema: &serde_json::Value| match schema["$ref"].as_str() {
                Some(reference) => defs[reference.trim_start_matches("#/$defs/")].clone(),
                None => schema.clone(),
            };
            let schema = resolve(schema);
            // `Option<Section>`: the section, or nothing.
            let section = schema["anyOf"]
                .as_array()
                .and_then(|choices| {
                    choices
                        .iter()
                        .map(resolve)
                        .find(|c| c["properties"].is_object())
                })
                .unwrap_or(schema);
            let properties = section["properties"].as_object().expect("a section");
            for (name, property) in properties {
                let key = format!("{prefix}{name}");
                let resolved = resolve(property);
                let nested = resolved["properties"].is_object()
                    || resolved["anyOf"].as_array().is_some_and(|choices| {
                        choices.iter().any(|c| resolve(c)["properties"].is_object())
                    });
                // A table of named sections (`cloud.regions.NAME`): its keys under `NAME`.
                let named = &resolved["additionalProperties"];
                if resolve(named)["properties"].is_object() {
                    walk(named, defs, &format!("{key}.NAME."), keys);
                } else if nested {
                    walk(property, defs, &format!("{key}."), keys);
                } else {
                    keys.insert(key, resolved["type"].to_string());
                }
            }
        }
        let schema = serde_json::to_value(schemars::schema_for!(Settings)).expect("a schema");
        let mut keys = BTreeMap::new();
        walk(&schema, &schema["$defs"], "", &mut keys);
        keys
    }

    #[test]
    fn every_key_is_in_the_configuration_reference_and_nothing_else_is() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
        let reference = std::fs::read_to_string(&path).expect("docs/configuration.md");
        // A key's row: | `key` | `SRGW_KEY` | type | default | example | meaning |, in every
        // section before the one on variables that are not keys.
        let (keys_part, _) = reference
            .split_once("## Outside the file")
            .expect("the section on other variables");
        let rows: BTreeMap<String, Vec<String>> = keys_part
            .lines()
            .filter(|line| line.starts_with("| `"))
            .map(|line| {
                let cells: Vec<String> = line
                    .trim_matches('|')
                    .split(" | ")
                    .map(|cell| cell.trim().trim_matches('`').to_owned())
                    .collect();
                (cells[0].clone(), cells)
            })
            .collect();
        let in_code = keys_in_code();
        let undocumented: Vec<&String> = in_code
            .keys()
            .filter(|key| !rows.contains_key(*key))
            .collect();
        let unknown: Vec<&String> = rows
            .keys()
            .filter(|key| !in_code.contains_key(*key))
            .collect();
        assert!(
            undocumented.is_empty(),
            "keys missing from docs/configuration.md: {undocumented:?}"
        );
        assert!(
            unknown.is_empty(),
            "docs/configuration.md documents keys the code lacks: {unknown:?}"
        );
        for (key, cells) in &rows {
            assert_eq!(cells.len(), 6, "`{key}`: a row has six cells: {cells:?}");
            let env = format!(
                "{ENV_PREFIX}{}",
                key.to_uppercase().replace('.', ENV_SEPARATOR)
            );
            assert_eq!(cells[1], env, "`{key}`'s environment override");
            assert!(
                cells[2..].iter().all(|cell| !cell.is_empty()),
                "`{key}`: an empty cell: {cells:?}"
            );
        }
    }

    #[test]
    fn the_example_config_in_the_repository_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/gateway.example.toml");
        Settings::load(&path).expect("the example config is valid");
    }
}
