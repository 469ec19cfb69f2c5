//! A faithful stand-in for the parts of Huawei Cloud the gateway uses in one region: IAM
//! password tokens, AK/SK (`SDK-HMAC-SHA256`) signed calls for the access keys it is given,
//! and the TaurusDB StarRocks create call, validated exactly as `reference/` documents them.
//! Several regions are several simulators, each with its own project, targets and catalog.
//!
//! It is a product feature (the demo, the tests and local development run against it) and a
//! crate of its own: the gateway reaches it only through its `demo` feature (as
//! `starrocks_gateway::demo::simulator`), a production build (`--no-default-features`) does
//! not contain it, and it shares none of the gateway's validation code, so a rule the gateway
//! gets wrong is caught here.
//!
//! Besides the cloud API it serves a small control API under `/_sim` for tests:
//! `GET /_sim/creates` (every create received), `GET /_sim/instances` (what exists now),
//! `GET /_sim/stats` (with the signed calls and refused signatures), `PUT /_sim/faults`, `POST /_sim/release` (held creates go on),
//! `POST /_sim/tokens/expire`. The flavors and storage-type APIs serve the region's catalog
//! ([`SimulatorConfig::flavors`], …), and creates are checked against it. Instances move
//! from `creating` to `normal` after
//! `create_duration`; `GET …/htap` lists them and `GET …/starrocks/{id}` shows one.

mod access;
mod catalog;
mod control;
mod create;
mod iam;
mod instances;
mod signature;
mod validate;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde::{Deserialize, Serialize};

pub use catalog::{Flavor, MAX_VOLUME_GB, StorageType, regional_flavors, regional_storage_types};
pub use control::{ExistingInstance, Faults, ReceivedCreate, Stats};

/// What the simulated account looks like.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// IAM account (domain) name accepted by `POST /v3/auth/tokens`.
    pub domain: String,
    /// Access key pairs (id, secret) whose `SDK-HMAC-SHA256` signatures are accepted in place
    /// of an IAM token.
    pub access_keys: Vec<(String, String)>,
    pub user: String,
    pub password: String,
    /// The one project of the account, and its name (the region).
    pub project_id: String,
    pub region: String,
    /// TaurusDB instances (`…in07`) StarRocks can attach to.
    pub taurusdb_instances: Vec<String>,
    pub engine_versions: Vec<String>,
    /// What the region sells; creates are validated against it.
    pub flavors: Vec<Flavor>,
    pub storage_types: Vec<StorageType>,
    pub availability_zones: Vec<String>,
    /// Lifetime of issued tokens; Huawei's is 24 h.
    pub token_lifetime: Duration,
    /// How long a new instance stays `creating` before it is `normal`.
    pub create_duration: Duration,
    /// How long a deleted instance stays `deleting` before it is gone.
    pub delete_duration: Duration,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            domain: "demo-account".into(),
            access_keys: Vec::new(),
            user: "demo-gateway".into(),
            password: "Demo-Passw0rd!".into(),
            project_id: "0a1b2c3d4e5f40718293a4b5c6d7e8f9".into(),
            region: "cn-north-4".into(),
            taurusdb_instances: vec![
                "40dc4c5729f14aad893e2dcd5baf6a15in07".into(),
                "5b1e7d2c9a8f4e3db6c05a1f2e3d4c5bin07".into(),
                "6c2f8e3d0b9a4f5ec7d16b2a3f4e5d6cin07".into(),
            ],
            engine_versions: vec!["3.1".into(), "3.3".into()],
            flavors: catalog::default_flavors(),
            storage_types: catalog::default_storage_types(),
            availability_zones: catalog::default_availability_zones(),
            token_lifetime: Duration::from_secs(24 * 3_600),
            create_duration: Duration::from_secs(10),
            delete_duration: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
struct IssuedToken {
    project_id: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Default)]
struct SimState {
    tokens: HashMap<String, IssuedToken>,
    tokens_issued: u64,
    creates: Vec<ReceivedCreate>,
    instances: Vec<SimInstance>,
    jobs: Vec<SimJob>,
    /// Calls to the HTAP list, the get-one and the delete endpoints.
    lists_received: usize,
    gets_received: usize,
    deletes_received: usize,
    /// Calls whose AK/SK signature verified, and those refused for a bad one.
    signed_calls: usize,
    signatures_refused: usize,
    /// Creates waiting for `POST /_sim/release` (see `Faults::hold_next_creates`).
    held: usize,
    faults: Faults,
}

/// A StarRocks instance the simulator created.
#[derive(Debug, Clone)]
struct SimInstance {
    /// The TaurusDB instance it is attached to.
    target: String,
    created_at: std::time::Instant,
    time_zone: String,
    nodes: i64,
    /// Its create job fails: the instance ends `createfail`.
    create_fails: bool,
    deleting_since: Option<std::time::Instant>,
    /// The `instance` object of the create answer.
    detail: serde_json::Value,
}

impl SimInstance {
    fn id(&self) -> &str {
        self.detail["id"].as_str().unwrap_or_default()
    }

    /// The cloud's status now; `None` once a deletion has finished.
    fn status(&self, config: &SimulatorConfig) -> Option<&'static str> {
        match self.deleting_since {
            Some(since) if since.elapsed() >= config.delete_duration => None,
            Some(_) => Some("deleting"),
            None if self.created_at.elapsed() < config.create_duration => Some("creating"),
            None if self.create_fails => Some("createfail"),
            None => Some("normal"),
        }
    }
}

/// A workflow (job) of the simulated cloud.
#[derive(Debug, Clone)]
struct SimJob {
    id: String,
    name: &'static str,
    instance_id: String,
    instance_name: String,
    started: std::time::Instant,
    duration: Duration,
    fail_reason: Option<String>,
}

impl SimJob {
    fn status(&self) -> &'static str {
        match (self.started.elapsed() >= self.duration, &self.fail_reason) {
            (false, _) => "Running",
            (true, Some(_)) => "Failed",
            (true, None) => "Completed",
        }
    }
}

#[derive(Debug)]
struct Simulator {
    config: SimulatorConfig,
    state: Mutex<SimState>,
    /// Wakes the held creates.
    released: tokio::sync::Notify,
}

impl Simulator {
    /// The state lock; a panic elsewhere must not take the simulator down with it.
    fn state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The answer of an injected failure (`fail_status`, a 5xx).
fn injected_fault(status: u16) -> HttpResponse {
    dbs_error(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
        "DBS.200000",
        "Internal service error (injected fault).",
    )
}

/// A Huawei-style error answer: `{"error_code": …, "error_msg": …}`.
#[derive(Debug, Serialize, Deserialize)]
struct DbsError {
    error_code: String,
    error_msg: String,
}

fn dbs_error(
    status: actix_web::http::StatusCode,
    code: &str,
    message: impl Into<String>,
) -> HttpResponse {
    HttpResponse::build(status).json(DbsError {
        error_code: code.into(),
        error_msg: message.into(),
    })
}

/// Starts the simulator on `listener`; the returned server must be awaited or spawned.
pub fn start(config: SimulatorConfig, listener: TcpListener) -> std::io::Result<Server> {
    let simulator = web::Data::new(Simulator {
        config,
        state: Mutex::new(SimState::default()),
        released: tokio::sync::Notify::new(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(simulator.clone())
            .app_data(web::PayloadConfig::new(256 * 1024))
            .route("/v3/auth/tokens", web::post().to(iam::issue_token))
            .route(
                "/v3/{project_id}/instances/{instance_id}/starrocks",
                web::post().to(create::create_starrocks),
            )
            .route(
                "/v3/{project_id}/instances/{instance_id}/htap",
                web::get().to(instances::list_htap),
            )
            .route(
                "/v3/{project_id}/instances/{instance_id}/starrocks/{starrocks_id}",
                web::get().to(instances::get_starrocks),
            )
            .route(
                "/v3/{project_id}/instances/{instance_id}/starrocks/{starrocks_id}",
                web::delete().to(instances::delete_starrocks),
            )
            .route("/v3/{project_id}/jobs", web::get().to(instances::job))
            .route(
                "/v3/{project_id}/htap/flavors/{engine_name}",
                web::get().to(catalog::flavors),
            )
            .route(
                "/v3/{project_id}/htap/storage-type/{database}",
                web::get().to(catalog::storage_types),
            )
            .route("/_sim/creates", web::get().to(control::creates))
            .route("/_sim/instances", web::get().to(control::instances))
            .route("/_sim/stats", web::get().to(control::stats))
            .route("/_sim/faults", web::put().to(control::set_faults))
            .route("/_sim/release", web::post().to(control::release))
            .route(
                "/_sim/tokens/expire",
                web::post().to(control::expire_tokens),
            )
            .default_service(web::to(|| async {
                dbs_error(
                    actix_web::http::StatusCode::NOT_FOUND,
                    "APIGW.0101",
                    "The API does not exist or has not been published in the environment.",
                )
            }))
    })
    .workers(2)
    .listen(listener)?
    .run();
    Ok(server)
}
