//! One circuit breaker per TaurusDB operation (`create`, `list`, `get`, `job`, `delete`),
//! from the `failsafe` crate. After `cloud.breaker_failures` failures in a row (timeouts,
//! connection failures, `5xx`, unreadable answers) the breaker opens: calls fail at once with
//! `503 upstream_unavailable` and `Retry-After`, instead of each waiting for a timeout. After
//! `cloud.breaker_open_secs` (growing while failures go on) it lets calls through again
//! (half-open); the first success closes it, a failure opens it again. A refusal the cloud
//! gives on purpose (`4xx`, throttling) is an answer, not a failure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use failsafe::backoff::Exponential;
use failsafe::failure_policy::ConsecutiveFailures;
use failsafe::{Config, StateMachine};
use serde::Serialize;
use utoipa::ToSchema;

use super::CloudError;
use crate::metrics::METRICS;

/// The operations that have a breaker, as [`super::operation_of`] names them.
const OPERATIONS: [&str; 5] = ["create", "list", "get", "job", "delete"];

/// A breaker's state, as `/readyz` and `/metrics` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

/// Follows the breaker's transitions into an atomic, which `/readyz` reads and `/metrics`
/// copies into its gauge when scraped (so a scrape shows this gateway's breakers even where
/// several gateways share a process, as in the tests).
#[derive(Debug, Clone)]
struct Follow {
    region: Arc<str>,
    operation: &'static str,
    state: Arc<AtomicU8>,
}

impl Follow {
    fn set(&self, state: BreakerState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }
}

impl failsafe::Instrument for Follow {
    fn on_call_rejected(&self) {
        METRICS
            .cloud_breaker_rejections
            .with_label_values(&[&self.region, self.operation])
            .inc();
    }

    fn on_open(&self) {
        tracing::warn!(
            region = &*self.region,
            operation = self.operation,
            "the cloud keeps failing; circuit open"
        );
        self.set(BreakerState::Open);
    }

    fn on_half_open(&self) {
        self.set(BreakerState::HalfOpen);
    }

    fn on_closed(&self) {
        self.set(BreakerState::Closed);
    }
}

type Machine = StateMachine<ConsecutiveFailures<Exponential>, Follow>;

struct Breaker {
    machine: Machine,
    state: Arc<AtomicU8>,
}

/// The breakers of every operation in one region; empty when turned off
/// (`cloud.breaker_failures = 0`).
pub struct Breakers {
    region: Arc<str>,
    by_operation: BTreeMap<&'static str, Breaker>,
    open_for: Duration,
}

impl std::fmt::Debug for Breakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breakers")
            .field("states", &self.states())
            .finish_non_exhaustive()
    }
}

impl Breakers {
    /// `open_for` is at least a second (what `failsafe`'s backoff accepts).
    pub fn new(region: &str, failures: u32, open_for: Duration) -> Self {
        let region: Arc<str> = region.into();
        let open_for = open_for.max(Duration::from_secs(1));
        let by_operation = if failures == 0 {
            BTreeMap::new()
        } else {
            OPERATIONS
                .into_iter()
                .map(|operation| {
                    let state = Arc::new(AtomicU8::new(BreakerState::Closed as u8));
                    let follow = Follow {
                        region: Arc::clone(&region),
                        operation,
                        state: Arc::clone(&state),
                    };
                    let backoff = failsafe::backoff::exponential(open_for, open_for * 6);
                    let machine = Config::new()
                        .failure_policy(failsafe::failure_policy::consecutive_failures(
                            failures, backoff,
                        ))
                        .instrument(follow)
                        .build();
                    (operation, Breaker { machine, state })
                })
                .collect()
        };
        Self {
            region,
            by_operation,
            open_for,
        }
    }

    /// `Err` while `operation`'s breaker is open: the call must not be sent.
    pub fn admit(&self, operation: &str) -> Result<(), CloudError> {
        match self.by_operation.get(operation) {
            Some(breaker) if !breaker.machine.is_call_permitted() => Err(CloudError::CircuitOpen {
                retry_after_secs: self.open_for.as_secs().max(1),
            }),
            _ => Ok(()),
        }
    }

    /// Records how a call that was sent ended.
    pub fn record<T>(&self, operation: &str, outcome: &Result<T, CloudError>) {
        let Some(breaker) = self.by_operation.get(operation) else {
            return;
        };
        match outcome {
            Err(error) if error.is_outage() => breaker.machine.on_error(),
            _ => breaker.machine.on_success(),
        }
    }

    /// Copies every breaker's state into the `cloud_breaker_state` gauge.
    pub fn export(&self) {
        for (operation, state) in self.states() {
            METRICS
                .cloud_breaker_state
                .with_label_values(&[&self.region, operation])
                .set(state as i64);
        }
    }

    /// Each operation's state; empty when the breakers are off.
    pub fn states(&self) -> BTreeMap<&'static str, BreakerState> {
        self.by_operation
            .iter()
            .map(|(operation, breaker)| {
                let state = match breaker.state.load(Ordering::Relaxed) {
                    2 => BreakerState::Open,
                    1 => BreakerState::HalfOpen,
                    _ => BreakerState::Closed,
                };
                (*operation, state)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage() -> Result<(), CloudError> {
        Err(CloudError::InvalidResponse("garbage".into()))
    }

    fn refusal() -> Result<(), CloudError> {
        Err(CloudError::Rejected {
            status: 400,
            code: Some("DBS.200001".into()),
            message: None,
            retry_after: None,
        })
    }

    #[test]
    fn repeated_outages_open_one_operation_and_refusals_do_not() {
        let breakers = Breakers::new("cn-north-4", 3, Duration::from_secs(60));
        for _ in 0..10 {
            breakers.record("get", &refusal());
        }
        assert!(breakers.admit("get").is_ok(), "a 4xx is an answer");
        for _ in 0..3 {
            assert!(breakers.admit("create").is_ok());
            breakers.record("create", &outage());
        }
        assert!(matches!(
            breakers.admit("create"),
            Err(CloudError::CircuitOpen {
                retry_after_secs: 60
            })
        ));
        assert_eq!(breakers.states()["create"], BreakerState::Open);
        assert_eq!(breakers.states()["get"], BreakerState::Closed);
    }

    #[test]
    fn after_the_open_time_a_success_closes_it_again() {
        let breakers = Breakers::new("cn-north-4", 1, Duration::ZERO);
        breakers.record("list", &outage());
        assert!(
            breakers.admit("list").is_err(),
            "open for at least a second"
        );
        std::thread::sleep(Duration::from_millis(1_100));
        assert!(
            breakers.admit("list").is_ok(),
            "half-open lets a call through"
        );
        assert_eq!(breakers.states()["list"], BreakerState::HalfOpen);
        breakers.record("list", &Ok::<(), CloudError>(()));
        assert_eq!(breakers.states()["list"], BreakerState::Closed);
    }

    #[test]
    fn zero_failures_turns_them_off() {
        let breakers = Breakers::new("cn-north-4", 0, Duration::from_secs(1));
        for _ in 0..10 {
            breakers.record("create", &outage());
        }
        assert!(breakers.admit("create").is_ok());
        assert!(breakers.states().is_empty());
    }
}
