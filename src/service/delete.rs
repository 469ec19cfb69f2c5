//! Delete an instance: authorize (the instance is the caller's team's) → mark it `deleting`
//! → forward the deletion → settle the ledger by the answer, recorded by [`super::drive`].
//! Its quota is released once the cloud confirms it gone.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use utoipa::ToSchema;

use super::instances::InstanceError;
use super::{Flow, Gateway, drive};
use crate::cloud::CloudError;
use crate::lifecycle::LifecycleState;
use crate::pipeline::authenticate::Employee;
use crate::pipeline::record::Entry;
use crate::storage::decisions::{Action, Outcome};
use crate::storage::ledger::{Change, Finish, Reservation, ReservationState};
use crate::storage::now_ms;

/// A deletion under way.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteAccepted {
    pub id: String,
    /// `deleting`, or `deleted` when the cloud no longer knew the instance.
    pub state: LifecycleState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub request_id: String,
}

#[derive(Debug)]
struct DeleteFlow<'g> {
    gateway: &'g Gateway,
    /// `delete`, or `expire` when a lease ended.
    action: Action,
    employee: &'g Employee,
    id: String,
    request_id: String,
    started: Instant,
    reservation: Option<Reservation>,
    /// The cloud's answer: the deletion's job id, or why it failed.
    answer: Option<Result<Option<String>, Arc<CloudError>>>,
    /// The settlement's ledger change, written with the decision.
    change: Option<Change>,
}

impl DeleteFlow<'_> {
    /// Phase 2, **authorize**: the instance exists, is the caller's team's, and is live.
    async fn authorize(&mut self) -> Result<Reservation, InstanceError> {
        let reservation = self.gateway.visible(self.employee, &self.id).await?;
        self.reservation = Some(reservation.clone());
        match reservation.state {
            ReservationState::Committed => Ok(reservation),
            ReservationState::Deleting => Err(InstanceError::Deleting(self.id.clone())),
            _ => Err(InstanceError::NotFound(self.id.clone())),
        }
    }

    /// Takes the instance: `committed` → `deleting`, so concurrent deletes (or sweeps of
    /// several replicas) cannot both go ahead; an expiry only while the lease is still over.
    async fn mark_deleting(&self, reservation: &Reservation) -> Result<(), InstanceError> {
        let store = &self.gateway.store;
        let marked = if self.action == Action::Expire {
            store.begin_expiry(&reservation.id, now_ms()).await?
        } else {
            store
                .transition(
                    &reservation.id,
                    ReservationState::Committed,
                    ReservationState::Deleting,
                    "delete requested",
                    None,
                )
                .await?
        };
        if marked {
            Ok(())
        } else {
            Err(InstanceError::Deleting(self.id.clone()))
        }
    }

    /// Phase 5, **forward**: the deletion, with the gateway's IAM token.
    async fn forward(&self, reservation: &Reservation) -> Result<Option<String>, Arc<CloudError>> {
        self.gateway
            .clouds
            .get(reservation.region.as_deref())?
            .delete_starrocks(&reservation.target_instance_id, &self.id, &self.request_id)
            .await
    }

    /// Phase 6, **settle**: accepted → stays `deleting` with its job; already gone →
    /// `deleted`; failed → back to `committed`, so the caller can try again. The change is
    /// committed with the decision ([`Flow::finish`]).
    fn settle(
        &mut self,
        reservation: &Reservation,
        answer: Result<Option<String>, Arc<CloudError>>,
    ) -> Result<DeleteAccepted, InstanceError> {
        self.answer = Some(answer.clone());
        let (to, why, job_id) = match &answer {
            Ok(job_id) => (
                ReservationState::Deleting,
                "deletion accepted by the cloud",
                job_id.clone(),
            ),
            Err(error) if error.is_not_found() => (
                ReservationState::Deleted,
                "already gone from the cloud",
                None,
            ),
            Err(_) => (ReservationState::Committed, "delete failed", None),
        };
        self.change = Some(Change {
            job_id,
            ..Change::new(&reservation.id, ReservationState::Deleting, to, why)
        });
        let (state, job_id) = match answer {
            Ok(job_id) => (LifecycleState::Deleting, job_id),
            Err(error) if error.is_not_found() => (LifecycleState::Deleted, None),
            Err(error) => return Err(InstanceError::Cloud(error)),
        };
        tracing::info!(instance.id = %self.id, employee.subject = %self.employee.subject, "instance deletion accepted");
        Ok(DeleteAccepted {
            id: self.id.clone(),
            state,
            job_id,
            request_id: self.request_id.clone(),
        })
    }
}

impl Flow for DeleteFlow<'_> {
    type Output = DeleteAccepted;
    type Error = InstanceError;

    async fn phases(&mut self) -> Result<DeleteAccepted, InstanceError> {
        let reservation = self.authorize().await?;
        self.mark_deleting(&reservation).await?;
        let answer = self.forward(&reservation).await;
        self.settle(&reservation, answer)
    }

    fn finish(&self, _: &Result<DeleteAccepted, InstanceError>) -> Option<Finish> {
        Some(Finish {
            change: Some(self.change.clone()?),
            ..Finish::default()
        })
    }

    fn entry(&self, result: &Result<DeleteAccepted, InstanceError>) -> Option<Entry> {
        let reservation = self.reservation.as_ref()?;
        let mut entry = Entry::new(
            self.action,
            &self.request_id,
            &self.employee.subject,
            self.started,
        );
        entry.team.clone_from(&reservation.team);
        entry.target.clone_from(&reservation.target);
        entry.size.clone_from(&reservation.size);
        entry
            .policy_revision
            .clone_from(&self.gateway.policy.current().revision);
        entry.instance_id = Some(self.id.clone());
        match (&self.answer, result) {
            (Some(Ok(job_id)), _) => {
                entry.outcome = Outcome::Deleting;
                entry.upstream_status = Some(202);
                entry.job_id.clone_from(job_id);
            }
            (Some(Err(error)), _) if error.is_not_found() => {
                entry.outcome = Outcome::Deleted;
                entry.upstream_status = Some(404);
            }
            (Some(Err(error)), _) => {
                entry = entry.refused(Outcome::Failed, error);
                if let CloudError::Rejected { status, .. } = &**error {
                    entry.upstream_status = Some(*status);
                }
            }
            (None, Err(error @ (InstanceError::Deleting(_) | InstanceError::NotFound(_)))) => {
                entry = entry.refused(Outcome::Denied, error);
            }
            (None, Err(error)) => entry = entry.refused(Outcome::Failed, error),
            (None, Ok(_)) => {}
        }
        Some(entry)
    }
}

impl Gateway {
    /// Deletes instance `id` in the cloud, for its team or a platform admin.
    pub async fn delete(
        &self,
        employee: &Employee,
        id: &str,
        request_id: &str,
    ) -> Result<DeleteAccepted, InstanceError> {
        self.delete_as(Action::Delete, employee, id, request_id)
            .await
    }

    /// The delete path, logged as `action`.
    pub(crate) async fn delete_as(
        &self,
        action: Action,
        employee: &Employee,
        id: &str,
        request_id: &str,
    ) -> Result<DeleteAccepted, InstanceError> {
        let flow = DeleteFlow {
            gateway: self,
            action,
            employee,
            id: id.to_owned(),
            request_id: request_id.to_owned(),
            started: Instant::now(),
            reservation: None,
            answer: None,
            change: None,
        };
        drive(&self.store, flow).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_delete_is_logged_with_its_code() {
        let entry = Entry::new(Action::Delete, "r-1", "alice", Instant::now())
            .refused(Outcome::Denied, &InstanceError::Deleting("x-in17".into()));
        assert_eq!(entry.error_code.as_deref(), Some("instance_deleting"));
        assert_eq!(entry.outcome, Outcome::Denied);
    }
}
