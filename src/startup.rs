//! Building the gateway: one [`create_app`] factory shared by `main`, `demo` and the tests.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use secrecy::ExposeSecret;
use tracing_actix_web::TracingLogger;
use utoipa_actix_web::AppExt;

use crate::cloud::Clouds;
use crate::config::{AuthSettings, PortalSettings, Settings};
use crate::http::extract::{BodyLimit, BodyTimeout};
use crate::http::fallback;
use crate::http::rate_limit::RateLimits;
use crate::http::request_id::{GatewayRootSpan, assign_request_id};
use crate::http::router;
use crate::identity::KeyStore;
use crate::identity::introspection::Introspector;
use crate::openapi;
use crate::pipeline::authenticate::Authenticator;
use crate::pipeline::reconcile;
use crate::policy::PolicyStore;
use crate::routes::portal::Portal;
use crate::service::Gateway;
use crate::service::seal::PasswordSeal;
use crate::storage::stream::DecisionStream;
use crate::storage::{Engine, Store, retention};

/// The application's shared parts, built once from settings.
#[derive(Debug, Clone)]
pub struct AppParts {
    pub gateway: web::Data<Gateway>,
    pub authenticator: web::Data<Authenticator>,
    pub rate_limits: web::Data<RateLimits>,
    pub portal: web::Data<Portal>,
    /// The portal's client, when browser sign-in is configured (for Swagger UI).
    pub sign_in: PortalSettings,
    /// The identity provider, which the portal's scripts may reach.
    pub issuer: String,
    pub body_limit: usize,
    pub body_timeout: Duration,
}

/// The authenticator over `keys`, introspecting opaque tokens when configured.
fn authenticator(settings: &AuthSettings, keys: Arc<KeyStore>) -> anyhow::Result<Authenticator> {
    let authenticator = Authenticator::new(settings.clone(), keys);
    let Some(introspection) = &settings.introspection else {
        return Ok(authenticator);
    };
    let client = reqwest::Client::builder()
        .user_agent(concat!("starrocks-gateway/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_millis(introspection.timeout_ms))
        .build()
        .context("building the introspection HTTP client")?;
    Ok(authenticator.with_introspector(Introspector::new(
        introspection.clone(),
        Duration::from_secs(settings.introspection_cache_secs),
        settings.verified_token_cache_size,
        client,
    )))
}

/// The configured sealing key, or a key of this process's own (said in the log when
/// replicas would need to share one).
fn password_seal(settings: &Settings) -> anyhow::Result<PasswordSeal> {
    match &settings.approvals.sealing_key {
        Some(key) => PasswordSeal::from_hex(key).context("approvals.sealing_key"),
        None => {
            if Engine::of(settings.storage.url.expose_secret()) == Some(Engine::Postgres) {
                tracing::warn!(
                    "approvals.sealing_key is not set: a generated password of an approved exception can be read only through the replica that approved it, until it restarts; set the same key on every replica"
                );
            }
            Ok(PasswordSeal::random())
        }
    }
}

impl AppParts {
    /// Builds the shared parts and starts their background tasks (key refresh, policy watch);
    /// must run inside the runtime.
    pub async fn new(settings: &Settings, policy: PolicyStore) -> anyhow::Result<Self> {
        let stream =
            DecisionStream::start(&settings.audit).context("starting the decision stream")?;
        let store = Store::connect(&settings.storage)
            .await
            .context("opening the gateway's database")?
            .with_decision_stream(stream);
        let clouds = Arc::new(
            Clouds::new(&settings.cloud, &settings.limits).context("building the cloud clients")?,
        );
        policy
            .bind_regions(clouds.policy_regions())
            .context("fitting the policy to the configured regions")?;
        let jwks_client = reqwest::Client::builder()
            .user_agent(concat!("starrocks-gateway/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_millis(settings.auth.jwks_timeout_ms))
            .build()
            .context("building the JWKS HTTP client")?;
        let portal = web::Data::new(Portal::new(settings, jwks_client.clone()));
        let keys = Arc::new(
            KeyStore::new(&settings.auth, jwks_client)
                .context("loading the identity provider's keys")?,
        );
        keys.spawn_refresher();
        retention::spawn(
            store.clone(),
            Duration::from_secs(
                settings
                    .storage
                    .decision_retention_days
                    .saturating_mul(24 * 3_600),
            ),
            Duration::from_secs(settings.storage.prune_interval_secs),
        );
        reconcile::spawn(
            store.clone(),
            clouds.clone(),
            Duration::from_secs(settings.reconcile.interval_secs),
            Duration::from_secs(settings.reconcile.grace_secs),
        );
        let gateway = web::Data::new(Gateway {
            policy,
            clouds,
            store,
            idempotency_ttl_ms: i64::try_from(
                settings.storage.idempotency_ttl_secs.saturating_mul(1_000),
            )
            .unwrap_or(i64::MAX),
            reconcile_grace: Duration::from_secs(settings.reconcile.grace_secs),
            observed: crate::lifecycle::Observations::default(),
            seal: password_seal(settings)?,
            approving: crate::service::requests::Approving::default(),
        });
        crate::service::spawn_sweep(
            gateway.clone(),
            Duration::from_secs(settings.approvals.sweep_interval_secs),
            "exception requests",
            |gateway| async move {
                let expired = gateway.expire_requests().await?;
                Ok::<_, crate::storage::StorageError>(
                    expired + gateway.settle_interrupted_approvals().await?,
                )
            },
        );
        crate::service::spawn_sweep(
            gateway.clone(),
            Duration::from_secs(settings.leases.sweep_interval_secs),
            "leases",
            |gateway| async move { gateway.sweep_leases().await },
        );
        watch_policy(
            &gateway,
            Duration::from_secs(settings.policy.watch_interval_secs),
        );
        Ok(Self {
            gateway,
            authenticator: web::Data::new(authenticator(&settings.auth, keys)?),
            rate_limits: web::Data::from(RateLimits::start(&settings.limits)),
            portal,
            sign_in: settings.portal.clone(),
            issuer: settings.auth.issuer.clone(),
            body_limit: settings.server.body_limit_bytes,
            body_timeout: Duration::from_millis(settings.server.body_timeout_ms),
        })
    }
}

/// The whole HTTP surface of the gateway.
pub fn create_app(
    parts: AppParts,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let app = App::new()
        .app_data(parts.gateway)
        .app_data(parts.authenticator)
        .app_data(parts.rate_limits)
        .app_data(parts.portal)
        .app_data(BodyLimit(parts.body_limit))
        .app_data(BodyTimeout(parts.body_timeout))
        .app_data(web::PayloadConfig::new(parts.body_limit))
        .wrap(TracingLogger::<GatewayRootSpan>::new())
        .wrap(from_fn(assign_request_id))
        .into_utoipa_app()
        .openapi(openapi::base());
    let (app, document) = router::routes(app).split_for_parts();
    app.service(fallback::openapi_json(&openapi::finish(document)))
        .service(fallback::swagger_ui(&parts.sign_in))
        .service(fallback::portal(&parts.issuer))
        .default_service(web::to(fallback::not_found))
}

/// The operations surface alone, for `server.ops_listen`: probes and metrics.
pub fn create_ops_app(
    parts: AppParts,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let app = App::new()
        .app_data(parts.gateway)
        .app_data(parts.authenticator);
    router::operations()
        .into_iter()
        .fold(app, App::service)
        .default_service(web::to(fallback::not_found))
}

/// Connections the operations listener holds at most: probes and a scraper need a handful.
const OPS_MAX_CONNECTIONS: usize = 64;

/// The operations listener's server, and the port it is bound to.
struct OpsServer {
    port: u16,
    server: Server,
}

/// A bound, not yet running gateway. Binding first lets tests ask for port 0 and learn the port.
pub struct Application {
    port: u16,
    server: Server,
    ops: Option<OpsServer>,
    store: Store,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Loads the policy named in `settings` and binds `settings.server.listen`.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let policy = PolicyStore::from_file(settings.policy.path.clone())
            .with_context(|| format!("loading policy file {}", settings.policy.path.display()))?;
        let listener = TcpListener::bind(settings.server.listen)
            .with_context(|| format!("binding {}", settings.server.listen))?;
        Self::with_listener(settings, policy, listener).await
    }

    pub async fn with_listener(
        settings: &Settings,
        policy: PolicyStore,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        let parts = AppParts::new(settings, policy).await?;
        let store = parts.gateway.store.clone();
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        };
        let connections = connection_cap(settings.server.max_connections);
        let ops = settings
            .server
            .ops_listen
            .map(|address| start_ops_server(address, &parts, settings))
            .transpose()?;
        let server = HttpServer::new(move || create_app(parts.clone()))
            .workers(workers)
            .max_connections(connections.div_ceil(workers))
            .client_request_timeout(Duration::from_millis(settings.server.head_timeout_ms))
            .listen(listener)
            .context("starting the HTTP server")?
            .run();
        Ok(Self {
            port,
            server,
            ops,
            store,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The operations listener's port, when `server.ops_listen` is set.
    pub fn ops_port(&self) -> Option<u16> {
        self.ops.as_ref().map(|ops| ops.port)
    }

    /// The gateway's database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops the server (gracefully: requests in flight finish) from another task.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGTERM, Ctrl-C or [`Self::handle`]), then writes what the
    /// decision log still buffers and closes the database.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let ops = self.ops.map(|ops| {
            let handle = ops.server.handle();
            (handle, tokio::spawn(ops.server))
        });
        let served = self.server.await;
        // Probes answer until the main listener has drained, then stop with it.
        if let Some((handle, running)) = ops {
            handle.stop(true).await;
            drop(running.await);
        }
        self.store.close().await;
        served
    }
}

/// Binds `address` and starts the operations server: one worker, its own connections, no
/// signal handling of its own (it stops when the main server has).
fn start_ops_server(
    address: std::net::SocketAddr,
    parts: &AppParts,
    settings: &Settings,
) -> anyhow::Result<OpsServer> {
    let listener = TcpListener::bind(address)
        .with_context(|| format!("binding server.ops_listen {address}"))?;
    let port = listener
        .local_addr()
        .context("reading the bound operations address")?
        .port();
    let parts = parts.clone();
    let server = HttpServer::new(move || create_ops_app(parts.clone()))
        .workers(1)
        .max_connections(OPS_MAX_CONNECTIONS)
        .client_request_timeout(Duration::from_millis(settings.server.head_timeout_ms))
        .disable_signals()
        .listen(listener)
        .context("starting the operations server")?
        .run();
    Ok(OpsServer { port, server })
}

/// Descriptors kept for everything but client connections: the database, the cloud and
/// identity-provider clients, logs.
const RESERVED_DESCRIPTORS: u64 = 256;

/// `configured` connections, or fewer when the descriptor limit (raised to its hard value
/// first) would not hold them: past it, `accept` fails and nothing answers, `/healthz` included.
fn connection_cap(configured: usize) -> usize {
    let limit = raise_descriptor_limit();
    let fit = usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS)).unwrap_or(usize::MAX);
    if fit < configured {
        tracing::warn!(
            configured,
            descriptor_limit = limit,
            cap = fit,
            "server.max_connections is above what the descriptor limit holds; capped"
        );
    }
    configured.min(fit).max(1)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; the limit in force afterwards.
pub fn raise_descriptor_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(error = %error, "could not raise the file descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1_024, |(soft, _)| soft)
        }
    }
}

/// Reloads the policy file on SIGHUP and whenever its content changes (checked every
/// `interval`; zero turns polling off). A broken file is logged and the last good policy stays.
fn watch_policy(state: &web::Data<Gateway>, interval: Duration) {
    let Some(path) = state.policy.path().map(ToOwned::to_owned) else {
        return;
    };
    let reload = |state: &Gateway, trigger: &str| match state.policy.reload() {
        Ok(reloaded) => {
            tracing::info!(policy.revision = %reloaded.revision, changed = reloaded.changed, trigger, "policy reloaded")
        }
        Err(error) => {
            tracing::error!(error = %error, trigger, "policy reload refused; the previous policy stays in force")
        }
    };
    #[cfg(unix)]
    {
        let state = state.clone();
        if let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    reload(&state, "SIGHUP");
                }
            });
        }
    }
    if interval.is_zero() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let mut last_seen = std::fs::read(&path).ok();
        loop {
            tokio::time::sleep(interval).await;
            let content = std::fs::read(&path).ok();
            if content.is_some() && content != last_seen {
                last_seen = content;
                reload(&state, "file change");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_below_the_descriptor_limit() {
        let limit = raise_descriptor_limit();
        let cap = connection_cap(usize::MAX);
        assert!(
            u64::try_from(cap)
                .is_ok_and(|cap| cap + RESERVED_DESCRIPTORS <= limit.max(RESERVED_DESCRIPTORS + 1))
        );
        assert_eq!(connection_cap(10), 10);
    }
}
