//! The use cases, outside HTTP: each one a named sequence of the phases in
//! [`crate::pipeline`] over a per-request context, run by one driver.
//!
//! The shape is pingora's `ProxyHttp` and its `process_request`: a flow names its phases
//! ([`Flow::phases`]), and [`drive`] alone runs them and then records the decision, once, on
//! every exit, failures included. Route handlers only translate HTTP to a use case and back.

pub mod admin;
pub mod catalog;
pub mod create;
pub mod delete;
pub mod dry_run;
pub mod instances;
pub mod leases;
mod observe;
pub mod requests;
pub mod seal;

use std::sync::Arc;
use std::time::Duration;

use crate::cloud::Clouds;
use crate::error::Coded;
use crate::pipeline::record::{self, Entry};
use crate::policy::PolicyStore;
use crate::storage::Store;
use crate::storage::ledger::Finish;

/// What the use cases share: the policy in force, the cloud clients and the database.
#[derive(Debug)]
pub struct Gateway {
    pub policy: PolicyStore,
    pub clouds: Arc<Clouds>,
    pub store: Store,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl_ms: i64,
    /// How long a pending create may be absent upstream before it is released.
    pub reconcile_grace: Duration,
    /// What the cloud last said about each instance, for answers it cannot complete.
    pub observed: crate::lifecycle::Observations,
    /// Seals a generated password until the requester of an exception reads it.
    pub seal: seal::PasswordSeal,
    pub approving: requests::Approving,
}

/// A use case as named phases over its own per-request context.
pub(crate) trait Flow {
    type Output;
    type Error: Coded;

    /// Every phase up to the answer, in order.
    async fn phases(&mut self) -> Result<Self::Output, Self::Error>;

    /// The decision-log entry of this run; `None` when it ended before anything was decided
    /// (no team could be chosen, or no instance was found to act on).
    fn entry(&self, result: &Result<Self::Output, Self::Error>) -> Option<Entry>;

    /// What the run changed last (a settlement, an idempotency key's outcome), to commit
    /// together with its decision; `None` when it changed nothing.
    fn finish(&self, result: &Result<Self::Output, Self::Error>) -> Option<Finish> {
        let _ = result;
        None
    }
}

/// Runs `pass` every `interval` (zero: never) for as long as the process lives; a failed
/// pass is logged, and the next one tries again. The sweeps of every replica run this way.
pub(crate) fn spawn_sweep<F, Fut, T>(
    gateway: actix_web::web::Data<Gateway>,
    interval: Duration,
    what: &'static str,
    pass: F,
) where
    F: Fn(actix_web::web::Data<Gateway>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, crate::storage::StorageError>> + Send,
{
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(error) = pass(gateway.clone()).await {
                tracing::warn!(error = ?error, sweep = what, "a sweep failed; trying again next time");
            }
        }
    });
}

/// Runs a flow and records its decision: the one place `record` is called.
pub(crate) async fn drive<F: Flow>(store: &Store, mut flow: F) -> Result<F::Output, F::Error> {
    let result = flow.phases().await;
    record::record(store, flow.entry(&result), flow.finish(&result)).await;
    result
}
