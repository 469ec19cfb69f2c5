//! The simulator's control API for tests and local development: what it received, what it
//! issued, and switches to inject faults.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::Simulator;

/// One create call as received. The body is kept whole, password included, as the cloud
/// itself would see it; this API exists only on the simulator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceivedCreate {
    pub project_id: String,
    pub instance_id: String,
    pub request_id: Option<String>,
    pub body: serde_json::Value,
    /// The status the simulator answered with.
    pub status: u16,
}

/// An instance as the simulated cloud holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExistingInstance {
    pub id: String,
    pub name: String,
    /// The TaurusDB instance it is attached to.
    pub target: String,
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    pub tokens_issued: u64,
    pub creates_received: usize,
    /// Instances that exist now (deleted ones excluded).
    pub instances: usize,
    pub lists_received: usize,
    pub gets_received: usize,
    pub deletes_received: usize,
    /// Calls whose AK/SK signature verified, and calls refused for a bad signature.
    pub signed_calls: usize,
    pub signatures_refused: usize,
    /// Creates held now (`hold_next_creates`), waiting for `POST /_sim/release`.
    pub held: usize,
}

/// Fault switches; a `PUT` replaces only the fields it names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Faults {
    /// Delay before answering each TaurusDB call.
    pub latency_ms: u64,
    /// The next N creates fail with `fail_status`.
    pub fail_next_creates: u32,
    pub fail_status: u16,
    /// The next N creates succeed, but their answers never arrive in time.
    pub lose_next_answers: u32,
    /// The next N creates are accepted, but their jobs fail and the instances end `createfail`.
    pub fail_next_create_jobs: u32,
    /// The next N calls (creates, reads, deletes) are throttled (`429 APIGW.0308`).
    pub throttle_next_calls: u32,
    /// The next N reads and deletes fail with `fail_status`, as during an outage.
    pub fail_next_reads: u32,
    /// The next N creates wait, unanswered, until `POST /_sim/release`: a test can then act
    /// while a create is known to be in flight, without guessing with sleeps.
    pub hold_next_creates: u32,
    /// The next N deletes are refused `409 DBS.200019` (another operation in progress).
    pub busy_next_deletes: u32,
    /// The next N IAM token requests are refused `401` as if the password were wrong, as
    /// after it was changed in IAM but not in the gateway.
    pub refuse_next_tokens: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            fail_next_creates: 0,
            fail_status: 500,
            lose_next_answers: 0,
            fail_next_create_jobs: 0,
            throttle_next_calls: 0,
            fail_next_reads: 0,
            hold_next_creates: 0,
            busy_next_deletes: 0,
            refuse_next_tokens: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FaultsUpdate {
    latency_ms: Option<u64>,
    fail_next_creates: Option<u32>,
    fail_status: Option<u16>,
    lose_next_answers: Option<u32>,
    fail_next_create_jobs: Option<u32>,
    throttle_next_calls: Option<u32>,
    fail_next_reads: Option<u32>,
    hold_next_creates: Option<u32>,
    busy_next_deletes: Option<u32>,
    refuse_next_tokens: Option<u32>,
}

pub(super) async fn creates(simulator: web::Data<Simulator>) -> HttpResponse {
    HttpResponse::Ok().json(&simulator.state().creates)
}

/// Every instance that exists now (finished deletions excluded).
pub(super) async fn instances(simulator: web::Data<Simulator>) -> HttpResponse {
    let state = simulator.state();
    let existing: Vec<ExistingInstance> = state
        .instances
        .iter()
        .filter_map(|instance| {
            Some(ExistingInstance {
                id: instance.id().to_owned(),
                name: instance.detail["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                target: instance.target.clone(),
                status: instance.status(&simulator.config)?.to_owned(),
            })
        })
        .collect();
    HttpResponse::Ok().json(existing)
}

pub(super) async fn stats(simulator: web::Data<Simulator>) -> HttpResponse {
    let state = simulator.state();
    HttpResponse::Ok().json(Stats {
        tokens_issued: state.tokens_issued,
        creates_received: state.creates.len(),
        instances: state
            .instances
            .iter()
            .filter(|i| i.status(&simulator.config).is_some())
            .count(),
        lists_received: state.lists_received,
        gets_received: state.gets_received,
        deletes_received: state.deletes_received,
        signed_calls: state.signed_calls,
        signatures_refused: state.signatures_refused,
        held: state.held,
    })
}

/// Lets every held create go on.
pub(super) async fn release(simulator: web::Data<Simulator>) -> HttpResponse {
    let held = simulator.state().held;
    simulator.released.notify_waiters();
    HttpResponse::Ok().json(serde_json::json!({ "released": held }))
}

pub(super) async fn set_faults(
    simulator: web::Data<Simulator>,
    update: web::Json<FaultsUpdate>,
) -> HttpResponse {
    let mut state = simulator.state();
    let faults = &mut state.faults;
    if let Some(latency_ms) = update.latency_ms {
        faults.latency_ms = latency_ms;
    }
    if let Some(count) = update.fail_next_creates {
        faults.fail_next_creates = count;
    }
    if let Some(count) = update.lose_next_answers {
        faults.lose_next_answers = count;
    }
    if let Some(count) = update.fail_next_create_jobs {
        faults.fail_next_create_jobs = count;
    }
    if let Some(count) = update.throttle_next_calls {
        faults.throttle_next_calls = count;
    }
    if let Some(count) = update.fail_next_reads {
        faults.fail_next_reads = count;
    }
    if let Some(count) = update.hold_next_creates {
        faults.hold_next_creates = count;
    }
    if let Some(count) = update.busy_next_deletes {
        faults.busy_next_deletes = count;
    }
    if let Some(count) = update.refuse_next_tokens {
        faults.refuse_next_tokens = count;
    }
    if let Some(status) = update.fail_status {
        if !(500..=599).contains(&status) {
            return HttpResponse::BadRequest()
                .json(serde_json::json!({"error": "fail_status must be a 5xx"}));
        }
        faults.fail_status = status;
    }
    HttpResponse::Ok().json(&*faults)
}

/// Every token issued so far is now expired, as after an IAM password change.
pub(super) async fn expire_tokens(simulator: web::Data<Simulator>) -> HttpResponse {
    let mut state = simulator.state();
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    for token in state.tokens.values_mut() {
        token.expires_at = past;
    }
    HttpResponse::NoContent().finish()
}
