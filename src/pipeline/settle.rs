//! Phase 6, **settle**: commit the reservation when the cloud created the instance, release
//! it when the call certainly had no effect, and keep it `pending` when nobody can tell yet
//! (a timeout or `5xx` after sending); [`super::reconcile`] decides those later. The change
//! is written with the request's decision, in its last transaction
//! ([`crate::storage::ledger::Finish`]).

use std::sync::Arc;

use crate::cloud::CloudError;
use crate::cloud::model::CreateStarRocksResponse;
use crate::storage::decisions::Outcome;
use crate::storage::ledger::{Change, ReservationState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Committed,
    Released,
    Pending,
}

impl Settlement {
    /// How the create ended, for the decision log.
    pub fn outcome(self) -> Outcome {
        match self {
            Self::Committed => Outcome::Created,
            Self::Released => Outcome::Failed,
            Self::Pending => Outcome::Pending,
        }
    }
}

/// How `reservation_id` settles by the cloud's answer, and the ledger change that says so
/// (none while the outcome is unknown).
pub fn settle(
    reservation_id: &str,
    answer: &Result<CreateStarRocksResponse, Arc<CloudError>>,
) -> (Settlement, Option<Change>) {
    use ReservationState::{Committed, Pending, Released};
    match answer {
        Ok(created) => (
            Settlement::Committed,
            Some(Change {
                instance_id: Some(created.instance.id.clone()),
                job_id: Some(created.job_id.clone()),
                ..Change::new(reservation_id, Pending, Committed, "created")
            }),
        ),
        Err(error) if error.is_definite() => (
            Settlement::Released,
            Some(Change::new(
                reservation_id,
                Pending,
                Released,
                &error.release_reason(),
            )),
        ),
        Err(_) => (Settlement::Pending, None),
    }
}
