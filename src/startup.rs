//! Building the gateway: one [`create_app`] factory shared by `main`, `demo` and the tests.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use arc_swap::ArcSwap;
use tracing_actix_web::TracingLogger;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::cloud::CloudClient;
use crate::config::Settings;
use crate::extract::BodyLimit;
use crate::openapi::ApiDoc;
use crate::pipeline::authenticate::{Authenticator, require_employee};
use crate::policy::Policy;
use crate::request_id::{GatewayRootSpan, assign_request_id};
use crate::routes::{fallback, health, starrocks};

/// What handlers share: the policy in force and the cloud client.
#[derive(Debug)]
pub struct GatewayState {
    pub policy: ArcSwap<Policy>,
    pub cloud: CloudClient,
}

/// The application's shared parts, built once from settings.
#[derive(Debug, Clone)]
pub struct AppParts {
    pub state: web::Data<GatewayState>,
    pub authenticator: web::Data<Authenticator>,
    pub body_limit: usize,
}

impl AppParts {
    pub fn new(settings: &Settings, policy: Policy) -> anyhow::Result<Self> {
        let cloud =
            CloudClient::new(settings.cloud.clone()).context("building the cloud HTTP client")?;
        let jwks_client = reqwest::Client::builder()
            .user_agent(concat!("starrocks-gateway/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_millis(settings.auth.jwks_timeout_ms))
            .build()
            .context("building the JWKS HTTP client")?;
        Ok(Self {
            state: web::Data::new(GatewayState {
                policy: ArcSwap::from_pointee(policy),
                cloud,
            }),
            authenticator: web::Data::new(Authenticator::new(settings.auth.clone(), jwks_client)),
            body_limit: settings.server.body_limit_bytes,
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
    App::new()
        .app_data(parts.state)
        .app_data(parts.authenticator)
        .app_data(BodyLimit(parts.body_limit))
        .app_data(web::PayloadConfig::new(parts.body_limit))
        .wrap(TracingLogger::<GatewayRootSpan>::new())
        .wrap(from_fn(assign_request_id))
        .service(health::healthz)
        .service(health::readyz)
        .service(SwaggerUi::new("/swagger-ui/{_:.*}").url("/openapi.json", ApiDoc::openapi()))
        .service(
            web::scope("/v1").wrap(from_fn(require_employee)).service(
                web::resource("/starrocks")
                    .route(web::post().to(starrocks::create_instance))
                    .default_service(web::to(fallback::method_not_allowed)),
            ),
        )
        .service(portal())
        .default_service(web::to(fallback::not_found))
}

/// `GET /`: the self-service portal page, compiled in so the binary serves it from anywhere.
fn portal() -> actix_web::Resource {
    web::resource("/").route(web::get().to(|| async {
        actix_web::HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(include_str!("../static/index.html"))
    }))
}

/// A bound, not yet running gateway. Binding first lets tests ask for port 0 and learn the port.
pub struct Application {
    port: u16,
    server: Server,
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
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        let policy = Policy::load(&settings.policy.path)
            .with_context(|| format!("loading policy file {}", settings.policy.path.display()))?;
        let listener = TcpListener::bind(settings.server.listen)
            .with_context(|| format!("binding {}", settings.server.listen))?;
        Self::with_listener(settings, policy, listener)
    }

    pub fn with_listener(
        settings: &Settings,
        policy: Policy,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        let parts = AppParts::new(settings, policy)?;
        let mut server = HttpServer::new(move || create_app(parts.clone()));
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server
            .listen(listener)
            .context("starting the HTTP server")?
            .run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
