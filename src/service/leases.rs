//! Leases: instances that end on time. A create's lease comes from the policy (per team, and
//! per size); the sweep marks instances `expiring` once their end is within the policy's
//! `lease_warning_hours`, and deletes them at `expires_at` through the delete path, logged as
//! `expire` (their quota is given back when the cloud confirms them gone). The owner's team
//! moves the end with `extend`, within the maximum counted from now.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use utoipa::ToSchema;

use super::Gateway;
use super::instances::InstanceError;
use crate::pipeline::authenticate::Employee;
use crate::pipeline::evaluate::{Decision, Denial, ExceptionHint, RuleOutcome};
use crate::pipeline::record::{self, Entry, count, record_of};
use crate::policy::{Policy, days_ms, rules};
use crate::storage::decisions::{Action, Outcome};
use crate::storage::leases::ExtendLease;
use crate::storage::ledger::{Reservation, ReservationState};
use crate::storage::{StorageError, now_ms};

/// Who the decision log names for what the lease sweep does.
pub const SWEEP_SUBJECT: &str = "starrocks-gateway";
/// Instances expired per sweep at most; the rest wait for the next.
const EXPIRED_PER_SWEEP: u32 = 100;

/// A lease moved.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeaseExtended {
    /// StarRocks instance id (`…in17`).
    pub id: String,
    /// The new end (RFC 3339, UTC).
    pub expires_at: String,
    /// Whether the new end is still within the warning period.
    pub expiring: bool,
    pub decision_id: String,
    pub request_id: String,
}

/// Why a lease could not be extended.
#[derive(Debug, thiserror::Error)]
pub enum ExtendError {
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error("instance `{0}` has no lease to extend")]
    NoLease(String),
    #[error("{0}")]
    Denied(Denial),
}

impl From<StorageError> for ExtendError {
    fn from(error: StorageError) -> Self {
        Self::Instance(InstanceError::Storage(error))
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub marked_expiring: u64,
    /// Deletions this replica started; another replica may have taken others.
    pub expired: usize,
}

/// What an extension of a lease to `lease_days` from now makes of the policy: the decision
/// (its one rule, `lease.max`), whether it denies.
pub(crate) fn lease_decision(
    policy: &Policy,
    employee: &Employee,
    reservation: &Reservation,
    lease_days: f64,
    waived: bool,
) -> Arc<Decision> {
    let lease = policy
        .team(&reservation.team)
        .map(|team| team.lease(&reservation.size))
        .unwrap_or_default();
    let admitted = lease.admits(lease_days);
    let rule = RuleOutcome {
        rule: rules::LEASE_MAX.to_owned(),
        mode: policy.mode(rules::LEASE_MAX),
        passed: admitted,
        message: (!admitted).then(|| {
            format!(
                "team `{}` may lease size `{}` for at most {} days from now; asked for {lease_days}. A longer lease needs an approved exception: POST /v1/requests/extensions",
                reservation.team,
                reservation.size,
                lease.max_lease_days.unwrap_or_default()
            )
        }),
        waived: waived && !admitted && policy.exceptable(&reservation.team, rules::LEASE_MAX),
    };
    let allowed = !rule.denies();
    let exception =
        (!allowed && policy.exceptable(&reservation.team, rules::LEASE_MAX)).then(|| {
            ExceptionHint {
                waives: vec![rules::LEASE_MAX.to_owned()],
            }
        });
    Arc::new(Decision {
        decision_id: uuid::Uuid::now_v7().to_string(),
        allowed,
        subject: employee.subject.clone(),
        team: reservation.team.clone(),
        policy_revision: policy.revision.clone(),
        rules: vec![rule],
        exception,
        ..Decision::default()
    })
}

impl Gateway {
    /// Instance `id` when `employee` may extend its lease: visible to them, committed, and
    /// leased.
    pub(crate) async fn extendable(
        &self,
        employee: &Employee,
        id: &str,
    ) -> Result<Reservation, ExtendError> {
        let reservation = self.visible(employee, id).await?;
        match reservation.state {
            ReservationState::Committed => {}
            ReservationState::Deleting => return Err(InstanceError::Deleting(id.to_owned()).into()),
            _ => return Err(InstanceError::NotFound(id.to_owned()).into()),
        }
        if reservation.expires_at.is_none() {
            return Err(ExtendError::NoLease(id.to_owned()));
        }
        Ok(reservation)
    }

    /// Moves the end of instance `id`'s lease to `lease_days` from now, for its team (or a
    /// platform admin), within the team's maximum for its size.
    pub async fn extend(
        &self,
        employee: &Employee,
        id: &str,
        lease_days: f64,
        request_id: &str,
    ) -> Result<LeaseExtended, ExtendError> {
        self.extend_waiving(employee, id, lease_days, request_id, None)
            .await
    }

    /// [`Gateway::extend`]; with `exception_id`, an approved exception waives `lease.max`
    /// (while the team's policy still marks it exceptable).
    pub(crate) async fn extend_waiving(
        &self,
        employee: &Employee,
        id: &str,
        lease_days: f64,
        request_id: &str,
        exception_id: Option<&str>,
    ) -> Result<LeaseExtended, ExtendError> {
        let started = Instant::now();
        let reservation = self.extendable(employee, id).await?;
        let policy = self.policy.current();
        let decision = lease_decision(
            &policy,
            employee,
            &reservation,
            lease_days,
            exception_id.is_some(),
        );
        let decision_id = decision.decision_id.clone();
        let denies = !decision.allowed;
        let mut entry = Entry::new(Action::Extend, request_id, &employee.subject, started);
        entry.team.clone_from(&reservation.team);
        entry.target.clone_from(&reservation.target);
        entry.size.clone_from(&reservation.size);
        entry.instance_id = Some(id.to_owned());
        entry.decision = Some(decision.clone());
        entry.exception_id = exception_id.map(str::to_owned);
        if denies {
            let refusal = ExtendError::Denied(decision.denial());
            let entry = entry.refused(Outcome::Denied, &refusal);
            record::record(&self.store, Some(entry), None).await;
            return Err(refusal);
        }
        let now = now_ms();
        let expires_at = now.saturating_add(days_ms(lease_days));
        let warning_ms = policy.file.lease_warning_ms();
        let expiring = expires_at <= now.saturating_add(warning_ms);
        entry.outcome = Outcome::Extended;
        let logged = record_of(entry);
        let extended = self
            .store
            .extend_lease(ExtendLease {
                reservation_id: reservation.id.clone(),
                expires_at,
                expiring_since: expiring.then_some(now),
                decision: logged.clone(),
            })
            .await?;
        if !extended {
            return Err(InstanceError::Deleting(id.to_owned()).into());
        }
        count(&logged);
        self.store.stream_decision(&logged);
        tracing::info!(instance.id = %id, lease_days, "lease extended");
        Ok(LeaseExtended {
            id: id.to_owned(),
            expires_at: chrono::DateTime::from_timestamp_millis(expires_at)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default(),
            expiring,
            decision_id,
            request_id: request_id.to_owned(),
        })
    }

    /// One pass: marks what is near its end, and deletes what is past it.
    pub async fn sweep_leases(&self) -> Result<SweepReport, StorageError> {
        let now = now_ms();
        let warning_ms = self.policy.current().file.lease_warning_ms();
        let marked_expiring = self.store.mark_expiring(now, warning_ms).await?;
        let ended = self.store.leases_ended(now, EXPIRED_PER_SWEEP).await?;
        let sweeper = Employee {
            subject: SWEEP_SUBJECT.to_owned(),
            email: None,
            teams: Vec::new(),
            admin: true,
            groups: Vec::new(),
        };
        let mut expired = 0;
        for reservation in ended {
            let Some(instance_id) = reservation.instance_id.as_deref() else {
                continue;
            };
            let request_id = format!("lease-expiry-{}", uuid::Uuid::new_v4());
            match Box::pin(self.delete_as(Action::Expire, &sweeper, instance_id, &request_id)).await
            {
                Ok(_) => {
                    expired += 1;
                    tracing::info!(instance.id = %instance_id, team = %reservation.team, "lease ended; instance deleted");
                }
                // Another replica took it first.
                Err(InstanceError::Deleting(_)) => {}
                Err(error) => {
                    tracing::warn!(instance.id = %instance_id, error = ?error, "deleting an instance whose lease ended failed; trying again next sweep");
                }
            }
        }
        Ok(SweepReport {
            marked_expiring,
            expired,
        })
    }
}
