//! Phase 6, **settle**: commit the reservation when the cloud created the instance, release
//! it when the call certainly had no effect, and keep it `pending` when nobody can tell yet
//! (a timeout or `5xx` after sending); [`super::reconcile`] decides those later.

use std::sync::Arc;

use crate::cloud::CloudError;
use crate::cloud::model::CreateStarRocksResponse;
use crate::storage::Store;
use crate::storage::decisions::Outcome;

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

/// Settles `reservation_id` by the cloud's answer. A database failure here leaves the
/// reservation pending, which reconciliation resolves: nothing is lost.
pub async fn settle(
    store: &Store,
    reservation_id: &str,
    answer: &Result<CreateStarRocksResponse, Arc<CloudError>>,
) -> Settlement {
    let (settlement, written) = match answer {
        Ok(created) => (
            Settlement::Committed,
            store
                .commit(
                    reservation_id,
                    &created.instance.id,
                    Some(&created.job_id),
                    "created",
                )
                .await,
        ),
        Err(error) if error.is_definite() => (
            Settlement::Released,
            store
                .release(reservation_id, "the cloud refused the create")
                .await,
        ),
        Err(_) => return Settlement::Pending,
    };
    match written {
        Ok(_) => settlement,
        Err(error) => {
            tracing::error!(reservation.id = reservation_id, error = ?error, "settling the reservation failed; reconciliation will resolve it");
            Settlement::Pending
        }
    }
}
