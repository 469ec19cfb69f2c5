//! `starrocks-gateway demo`: the gateway, the Huawei Cloud simulator and a toy identity
//! provider in one process on localhost, with the example policy. The tests start the same
//! stack on port 0.
//!
//! The simulator and the identity provider are crates of their own (`huawei-sim`,
//! `demo-idp`), compiled only with the `demo` feature; they are re-exported here so the tests
//! and `main` reach them as `demo::simulator` and `demo::idp`.

pub use demo_idp as idp;
pub use huawei_sim as simulator;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{
    AccountSettings, ApprovalSettings, AuditSettings, AuthSettings, ClaimSettings, CloudSettings,
    LeaseSettings, LimitSettings, PolicySettings, PortalSettings, ReadyWhen, ReconcileSettings,
    RegionSettings, ServerSettings, Settings, StorageSettings,
};
use crate::policy::{Policy, PolicyStore};
use crate::startup::Application;
use crate::storage::Store;
use idp::{DemoIdp, LoginChoice};
use simulator::SimulatorConfig;

/// The example policy, compiled in so `demo` runs from anywhere.
pub const EXAMPLE_POLICY: &str = include_str!("../../config/policy.example.toml");
pub const DEMO_AUDIENCE: &str = "starrocks-gateway";
/// The portal's (and Swagger UI's) client at the demo identity provider.
pub const DEMO_PORTAL_CLIENT: &str = "starrocks-portal";
/// The `roles` value that makes a demo employee a platform admin.
pub const DEMO_ADMIN_ROLE: &str = "platform-admin";

/// The `roles` value (the demo's groups claim) of analytics' approvers in the example policy.
pub const DEMO_APPROVER_GROUP: &str = "analytics-leads";

/// The demo's account in its default region: an IAM user with a password.
pub const DEMO_ACCOUNT: &str = "demo";
/// The demo's account in every other region: an access key pair, so calls are signed.
pub const DEMO_SIGNING_ACCOUNT: &str = "demo_ak";
/// The access key of [`DEMO_SIGNING_ACCOUNT`]; its secret is [`DEMO_SECRET_KEY`].
pub const DEMO_ACCESS_KEY: &str = "DEMOACCESSKEY0EAST001";
pub const DEMO_SECRET_KEY: &str = "demo-secret-key-of-the-east-region";

/// An example employee the demo prints a token for.
#[derive(Debug, Clone)]
pub struct DemoEmployee {
    pub sub: &'static str,
    pub teams: &'static [&'static str],
    pub roles: &'static [&'static str],
    /// Why this employee is in the demo.
    pub note: &'static str,
}

/// The demo's employees, one per interesting case of the example policy.
pub const EXAMPLE_EMPLOYEES: &[DemoEmployee] = &[
    DemoEmployee {
        sub: "alice",
        teams: &["analytics"],
        roles: &[],
        note: "team analytics",
    },
    DemoEmployee {
        sub: "bob",
        teams: &["payments"],
        roles: &[],
        note: "team payments: small only",
    },
    DemoEmployee {
        sub: "dana",
        teams: &["analytics", "payments"],
        roles: &[],
        note: "two teams: send X-Team",
    },
    DemoEmployee {
        sub: "carol",
        teams: &["analytics"],
        roles: &[DEMO_APPROVER_GROUP],
        note: "approves analytics' exceptions",
    },
    DemoEmployee {
        sub: "erin",
        teams: &["analytics"],
        roles: &[DEMO_ADMIN_ROLE],
        note: "platform admin",
    },
    DemoEmployee {
        sub: "mallory",
        teams: &["marketing"],
        roles: &[],
        note: "team not in the policy",
    },
];

impl DemoEmployee {
    /// A token for this employee from `idp`, living `ttl_secs`.
    pub fn token(&self, idp: &DemoIdp, ttl_secs: u64) -> anyhow::Result<String> {
        idp.mint_for(
            self.sub,
            &format!("{}@example.com", self.sub),
            self.teams,
            self.roles,
            ttl_secs,
        )
    }
}

/// A running stack: gateway, simulators (one per region) and identity provider.
#[derive(Debug)]
pub struct DemoStack {
    pub gateway_url: String,
    /// The operations listener's URL, when `server.ops_listen` is set.
    pub ops_url: Option<String>,
    /// The default region's simulator.
    pub simulator_url: String,
    /// Every region's simulator URL, by region name (the default region's included).
    pub region_urls: std::collections::BTreeMap<String, String>,
    pub idp_url: String,
    pub idp: Arc<DemoIdp>,
    pub settings: Settings,
    /// The gateway's database, as the gateway holds it (on SQLite, the one connection).
    pub store: Store,
    gateway: ServerHandle,
}

fn bind(address: SocketAddr) -> anyhow::Result<(TcpListener, String)> {
    let listener = TcpListener::bind(address).with_context(|| format!("binding {address}"))?;
    let url = format!(
        "http://{}",
        listener.local_addr().context("reading the bound address")?
    );
    Ok((listener, url))
}

/// Where `gateway`'s operations listener answers, when it has one.
fn ops_url(settings: &Settings, gateway: &Application) -> Option<String> {
    let address = settings.server.ops_listen?;
    let host = if address.ip().is_unspecified() {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        address.ip()
    };
    Some(format!(
        "http://{}",
        SocketAddr::new(host, gateway.ops_port()?)
    ))
}

/// A simulator serving one region, and where it listens.
#[derive(Debug, Clone)]
pub struct SimulatedRegion {
    pub config: SimulatorConfig,
    pub url: String,
}

/// The demo's cloud: the first region (the default) through an IAM user's password, every
/// other one through an access key, each region with a simulator of its own.
fn cloud_settings(regions: &[SimulatedRegion]) -> anyhow::Result<CloudSettings> {
    let (default, others) = regions.split_first().context("at least one region")?;
    let mut accounts = std::collections::BTreeMap::from([(
        DEMO_ACCOUNT.to_owned(),
        AccountSettings {
            iam_url: Some(default.url.parse().context("IAM URL")?),
            domain: Some(default.config.domain.clone()),
            user: Some(default.config.user.clone()),
            password: Some(SecretString::from(default.config.password.clone())),
            access_key_id: None,
            secret_access_key: None,
        },
    )]);
    if !others.is_empty() {
        accounts.insert(
            DEMO_SIGNING_ACCOUNT.to_owned(),
            AccountSettings {
                iam_url: None,
                domain: None,
                user: None,
                password: None,
                access_key_id: Some(DEMO_ACCESS_KEY.into()),
                secret_access_key: Some(SecretString::from(DEMO_SECRET_KEY)),
            },
        );
    }
    let regions = regions
        .iter()
        .enumerate()
        .map(|(index, region)| {
            let account = if index == 0 {
                DEMO_ACCOUNT
            } else {
                DEMO_SIGNING_ACCOUNT
            };
            let settings = RegionSettings {
                endpoint: region.url.parse().context("TaurusDB URL")?,
                project_id: region.config.project_id.clone(),
                account: account.into(),
            };
            Ok((region.config.region.clone(), settings))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(CloudSettings {
        iam_url: None,
        endpoint: None,
        project_id: None,
        region: None,
        domain: None,
        user: None,
        password: None,
        accounts,
        regions,
        default_region: Some(default.config.region.clone()),
        ready_when: ReadyWhen::default(),
        token_refresh_margin_secs: 3_600,
        connect_timeout_ms: 2_000,
        request_timeout_ms: 10_000,
        read_cache_ms: 1_000,
        breaker_failures: crate::config::default_breaker_failures(),
        breaker_open_secs: crate::config::default_breaker_open(),
    })
}

/// `cloud` (in the regions form) as the TOML of a configuration file, for `serve` or
/// `policy check --against-cloud` against the demo's simulators. Secrets are written only
/// `with_secrets`; otherwise they are left to the environment, as in production.
pub fn cloud_toml(cloud: &CloudSettings, with_secrets: bool) -> String {
    let quoted = |value: &str| format!("{value:?}");
    let mut toml = String::from("[cloud]\n");
    if let Some(region) = &cloud.default_region {
        toml.push_str(&format!("default_region = {}\n", quoted(region)));
    }
    for (name, account) in &cloud.accounts {
        toml.push_str(&format!("[cloud.accounts.{name}]\n"));
        let secret = |value: &Option<SecretString>| {
            value
                .as_ref()
                .filter(|_| with_secrets)
                .map(|secret| quoted(secret.expose_secret()))
        };
        for (key, value) in [
            (
                "iam_url",
                account.iam_url.as_ref().map(|u| quoted(u.as_str())),
            ),
            ("domain", account.domain.as_deref().map(quoted)),
            ("user", account.user.as_deref().map(quoted)),
            ("password", secret(&account.password)),
            (
                "access_key_id",
                account.access_key_id.as_deref().map(quoted),
            ),
            ("secret_access_key", secret(&account.secret_access_key)),
        ] {
            if let Some(value) = value {
                toml.push_str(&format!("{key} = {value}\n"));
            }
        }
    }
    for (name, region) in &cloud.regions {
        toml.push_str(&format!(
            "[cloud.regions.{name}]\nendpoint = {}\nproject_id = {}\naccount = {}\n",
            quoted(region.endpoint.as_str()),
            quoted(&region.project_id),
            quoted(&region.account),
        ));
    }
    toml
}

/// Gateway settings pointing at local simulators (the default region's first) and identity
/// provider.
pub fn settings(
    listen: SocketAddr,
    regions: &[SimulatedRegion],
    idp_url: &str,
) -> anyhow::Result<Settings> {
    Ok(Settings {
        server: ServerSettings {
            workers: 2,
            ..ServerSettings::on(listen)
        },
        auth: AuthSettings {
            issuer: idp_url.to_owned(),
            audience: DEMO_AUDIENCE.into(),
            algorithms: None,
            leeway_secs: 30,
            jwks_url: Some(
                format!("{idp_url}/.well-known/jwks.json")
                    .parse()
                    .context("JWKS URL")?,
            ),
            oidc_discovery: false,
            keys_file: None,
            expected_typ: None,
            max_token_bytes: 8 * 1024,
            max_token_lifetime_secs: 24 * 3_600,
            jwks_refresh_secs: 300,
            jwks_min_refetch_interval_secs: 20,
            jwks_refetch_burst: 3,
            jwks_max_stale_secs: 3_600,
            jwks_timeout_ms: 2_000,
            verified_token_cache_size: 10_000,
            introspection: None,
            introspection_cache_secs: 60,
            claims: ClaimSettings {
                admin_claim: Some("roles".into()),
                admin_value: Some(DEMO_ADMIN_ROLE.into()),
                groups: "roles".into(),
                ..ClaimSettings::default()
            },
        },
        cloud: cloud_settings(regions)?,
        policy: PolicySettings {
            path: "config/policy.example.toml".into(),
            watch_interval_secs: 0,
        },
        // A fresh embedded database per run: the simulator's cloud starts empty too.
        storage: StorageSettings {
            url: SecretString::from(format!(
                "sqlite://{}",
                std::env::temp_dir()
                    .join(format!(
                        "starrocks-gateway-demo-{}.db",
                        uuid::Uuid::new_v4().simple()
                    ))
                    .display()
            )),
            create_if_missing: true,
            ..StorageSettings::default()
        },
        reconcile: ReconcileSettings::default(),
        limits: LimitSettings::default()
            .with_env_overrides()
            .context("SRGW_LIMITS__* overrides")?,
        portal: PortalSettings {
            client_id: Some(DEMO_PORTAL_CLIENT.into()),
            ..PortalSettings::default()
        },
        audit: AuditSettings::default(),
        approvals: ApprovalSettings::default(),
        leases: LeaseSettings::default(),
    })
}

/// Lets the demo's employees sign in to the portal and Swagger UI: the identity provider
/// offers them and accepts the portal's client, sent back to this gateway (by its address,
/// and by `localhost` for a loopback one).
fn offer_sign_in(idp: &DemoIdp, settings: &Settings, gateway: SocketAddr) {
    idp.offer_logins(
        EXAMPLE_EMPLOYEES
            .iter()
            .map(|employee| LoginChoice {
                sub: employee.sub.into(),
                teams: employee.teams.iter().map(|&team| team.into()).collect(),
                roles: employee.roles.iter().map(|&role| role.into()).collect(),
                note: employee.note.into(),
            })
            .collect(),
    );
    let Some(client_id) = &settings.portal.client_id else {
        return;
    };
    let mut origins = vec![format!("http://{gateway}")];
    if gateway.ip().is_loopback() {
        origins.push(format!("http://localhost:{}", gateway.port()));
    }
    let redirect_uris = origins
        .iter()
        .flat_map(|origin| {
            [
                format!("{origin}{}", settings.portal.redirect_path),
                format!("{origin}/swagger-ui/oauth2-redirect.html"),
            ]
        })
        .collect();
    idp.register_public_client(client_id, redirect_uris);
}

impl DemoStack {
    /// Starts all three servers; `configure` may adjust the gateway settings (tests shorten
    /// timeouts this way).
    pub async fn start(
        listen: SocketAddr,
        simulator_config: SimulatorConfig,
        policy: PolicyStore,
        configure: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Self> {
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (idp_listener, idp_url) = bind(loopback)?;
        let (gateway_listener, gateway_url) = bind(listen)?;
        let configs = std::iter::once(simulator_config.clone())
            .chain(other_region_configs(&policy.current(), &simulator_config))
            .collect::<Vec<_>>();
        let mut regions = Vec::new();
        let mut simulators = Vec::new();
        for config in configs {
            let (listener, url) = bind(loopback)?;
            simulators
                .push(simulator::start(config.clone(), listener).context("starting a simulator")?);
            regions.push(SimulatedRegion { config, url });
        }

        let idp = Arc::new(DemoIdp::generate(&idp_url, DEMO_AUDIENCE)?);
        let mut settings = settings(gateway_listener.local_addr()?, &regions, &idp_url)?;
        configure(&mut settings);
        offer_sign_in(&idp, &settings, gateway_listener.local_addr()?);

        let identity_provider =
            idp::start(idp.clone(), idp_listener).context("starting the identity provider")?;
        let gateway = Application::with_listener(&settings, policy, gateway_listener).await?;
        let ops_url = ops_url(&settings, &gateway);
        let (store, handle) = (gateway.store().clone(), gateway.handle());
        for simulator in simulators {
            tokio::spawn(simulator);
        }
        tokio::spawn(identity_provider);
        tokio::spawn(gateway.run_until_stopped());
        Ok(Self {
            gateway_url,
            ops_url,
            simulator_url: regions[0].url.clone(),
            region_urls: regions
                .into_iter()
                .map(|region| (region.config.region, region.url))
                .collect(),
            idp_url,
            idp,
            settings,
            store,
            gateway: handle,
        })
    }

    /// Stops the gateway as a graceful shutdown would (the decision log flushed, the database
    /// closed) and starts a new one on the same database, cloud and identity provider, as
    /// after a restart; returns its URL.
    pub async fn restart_gateway(&mut self, policy: PolicyStore) -> anyhow::Result<String> {
        self.gateway.stop(true).await;
        self.store.close().await;
        let (listener, url) = bind(([127, 0, 0, 1], 0).into())?;
        let mut settings = self.settings.clone();
        settings.server.listen = listener.local_addr()?;
        let gateway = Application::with_listener(&settings, policy, listener).await?;
        self.store = gateway.store().clone();
        self.gateway = gateway.handle();
        self.gateway_url.clone_from(&url);
        self.ops_url = ops_url(&settings, &gateway);
        tokio::spawn(gateway.run_until_stopped());
        Ok(url)
    }
}

impl DemoStack {
    /// Starts one more gateway beside the first, sharing its cloud, identity provider and
    /// database, as a second replica (PostgreSQL only: a SQLite file has one owner); returns
    /// its URL.
    pub async fn start_another_gateway(&self, policy: PolicyStore) -> anyhow::Result<String> {
        let (listener, url) = bind(([127, 0, 0, 1], 0).into())?;
        let mut settings = self.settings.clone();
        settings.server.listen = listener.local_addr()?;
        let gateway = Application::with_listener(&settings, policy, listener).await?;
        tokio::spawn(gateway.run_until_stopped());
        Ok(url)
    }
}

/// The example policy without its targets outside the default region and its `[regions.*]`
/// tables: for a gateway configured in the single-region form.
pub fn single_region_policy() -> String {
    let mut in_regions = false;
    EXAMPLE_POLICY
        .lines()
        .filter(|line| {
            if line.starts_with('[') {
                in_regions = line.starts_with("[regions.");
            }
            !in_regions && !line.contains("region = ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The default region's simulator config for `policy`: the targets that name no region (or
/// name the simulator's) exist upstream.
pub fn simulator_config_for(policy: &Policy) -> SimulatorConfig {
    let config = SimulatorConfig::default();
    SimulatorConfig {
        taurusdb_instances: targets_in(policy, &config.region, true),
        ..config
    }
}

/// The targets of `policy` in `region` (`default`: also those that name no region).
fn targets_in(policy: &Policy, region: &str, default: bool) -> Vec<String> {
    let mut targets: Vec<String> = policy
        .file
        .teams
        .values()
        .flat_map(|team| team.targets.values())
        .filter(|target| match &target.region {
            Some(named) => named == region,
            None => default,
        })
        .map(|target| target.instance.clone())
        .collect();
    targets.sort();
    targets.dedup();
    targets
}

/// A simulator for every other region the policy's targets name, like `default` (its fault
/// and timing settings) but with the region's own project, targets, AZs and flavor ids, and
/// taking the demo's access key.
fn other_region_configs(policy: &Policy, default: &SimulatorConfig) -> Vec<SimulatorConfig> {
    let mut names: Vec<&str> = policy
        .file
        .teams
        .values()
        .flat_map(|team| team.targets.values())
        .filter_map(|target| target.region.as_deref())
        .filter(|region| *region != default.region)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|region| {
            let rules = policy.region_rules(Some(region));
            let azs: Vec<String> = match (&rules.allowed_azs, &rules.az_code) {
                (Some(azs), _) => azs.clone(),
                (None, Some(az)) => vec![az.clone()],
                (None, None) => default.availability_zones.clone(),
            };
            SimulatorConfig {
                region: region.to_owned(),
                project_id: project_id_of(region),
                taurusdb_instances: targets_in(policy, region, false),
                flavors: simulator::regional_flavors(
                    &default.flavors,
                    &azs,
                    &rules_flavor_ids(policy, region),
                ),
                storage_types: simulator::regional_storage_types(&default.storage_types, &azs),
                availability_zones: azs,
                access_keys: vec![(DEMO_ACCESS_KEY.into(), DEMO_SECRET_KEY.into())],
                ..default.clone()
            }
        })
        .collect()
}

/// A stable 32-hex-digit project id for a simulated region.
fn project_id_of(region: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, region.as_bytes());
    hex::encode(&digest.as_ref()[..16])
}

/// (the size's own flavor id, the region's) for every flavor a region renames.
fn rules_flavor_ids(policy: &Policy, region: &str) -> Vec<(String, String)> {
    let rules = policy.region_rules(Some(region));
    rules
        .flavors
        .iter()
        .filter_map(|(size, flavors)| Some((policy.size(size)?, flavors)))
        .flat_map(|(size, flavors)| {
            [
                (size.fe_flavor_id.clone(), flavors.fe_flavor_id.clone()),
                (size.be_flavor_id.clone(), flavors.be_flavor_id.clone()),
            ]
        })
        .filter_map(|(own, regional)| Some((own, regional?)))
        .collect()
}

/// Ctrl-C, or SIGTERM as `kill` and `timeout` send.
async fn stopped() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("listening for SIGTERM")?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.context("waiting for Ctrl-C"),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
    }
}

/// Runs the demo until Ctrl-C or SIGTERM: the example policy and a fresh SQLite file unless
/// `policy` or `storage_url` name others.
pub async fn run(
    listen: SocketAddr,
    policy: Option<&std::path::Path>,
    storage_url: Option<String>,
) -> anyhow::Result<()> {
    let policy = match policy {
        Some(path) => Policy::load(path)?,
        None => Policy::parse(EXAMPLE_POLICY).context("the embedded example policy")?,
    };
    let own_database = storage_url.is_none();
    let stack = DemoStack::start(
        listen,
        simulator_config_for(&policy),
        PolicyStore::fixed(policy),
        |settings| {
            if let Some(url) = storage_url {
                settings.storage.url = SecretString::from(url);
            }
        },
    )
    .await?;
    print_banner(&stack)?;
    stopped().await?;
    // The demo's own database lives as long as its simulated cloud: remove it with its WAL files.
    let url = stack.settings.storage.url.expose_secret();
    if let Some(path) = url.strip_prefix("sqlite://").filter(|_| own_database) {
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{path}{suffix}");
            if let Err(error) = std::fs::remove_file(&file)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(file, error = %error, "could not remove the demo database");
            }
        }
    }
    Ok(())
}

#[expect(
    clippy::print_stdout,
    reason = "the banner is the demo's user interface"
)]
fn print_banner(stack: &DemoStack) -> anyhow::Result<()> {
    let gateway = &stack.gateway_url;
    println!();
    println!("starrocks-gateway demo is running (Ctrl-C to stop)");
    println!();
    println!("  gateway      {gateway}");
    println!("  portal       {gateway}/");
    println!("  swagger ui   {gateway}/swagger-ui/");
    println!("  openapi      {gateway}/openapi.json");
    // The default region first: its simulator is the one with IAM.
    let mut regions: Vec<(&String, &String)> = stack.region_urls.iter().collect();
    regions.sort_by_key(|(_, url)| **url != stack.simulator_url);
    for (region, url) in regions {
        let how = if *url == stack.simulator_url {
            "default region, IAM password"
        } else {
            "access key, signed calls"
        };
        println!("  cloud sim    {url}   {region} ({how}; control API: {url}/_sim/stats)");
    }
    println!(
        "  identity     {}   (new token: {}/token?sub=NAME&team=TEAM[,TEAM]&roles=platform-admin)",
        stack.idp_url, stack.idp_url
    );
    println!();
    println!("Tokens (valid 12 h) for the example policy's employees:");
    for employee in EXAMPLE_EMPLOYEES {
        let token = employee.token(&stack.idp, 12 * 3_600)?;
        println!();
        println!("  {} ({})", employee.sub, employee.note);
        println!("  export TOKEN_{}={token}", employee.sub.to_uppercase());
    }
    let who = "ALICE";
    println!();
    println!("Create an instance as the first employee:");
    println!();
    println!(
        "  curl -s -X POST {gateway}/v1/starrocks -H \"Authorization: Bearer $TOKEN_{who}\" \\\n    -H 'Content-Type: application/json' \\\n    -d '{{\"name\":\"sales-cube\",\"target\":\"analytics-prod\",\"size\":\"small\"}}'"
    );
    println!();
    Ok(())
}
