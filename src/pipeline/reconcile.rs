//! Resolving what the ledger cannot know alone, by asking the cloud. Deletions in progress
//! are confirmed (gone → `deleted`, quota released). And `pending` reservations: an instance of the reserved name on
//! the target that the ledger does not know yet → committed with its id; none after the grace
//! period → released. Runs at start (a crash between reserve and settle loses nothing), on a
//! timer, and on `POST /v1/admin/reconcile`.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::cloud::Clouds;
use crate::storage::ledger::ReservationState;
use crate::storage::{StorageError, Store, now_ms};

/// What one reconciliation pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReconcileReport {
    pub checked: usize,
    pub committed: usize,
    pub released: usize,
    /// Still unknown: within the grace period, or the cloud could not be asked.
    pub pending: usize,
    /// Deletions the cloud confirmed: their quota is released.
    pub deleted: usize,
    /// Exception requests whose approval a gateway left unfinished, now `created` or
    /// `failed` by what became of their create (on `POST /v1/admin/reconcile`).
    pub requests_settled: usize,
}

/// One pass over the ledger. With `created_before`, only reservations older than that time
/// (unix ms) are looked at: the start-up pass settles what a previous run left behind and
/// leaves the creates this process is making alone.
pub async fn reconcile(
    store: &Store,
    clouds: &Clouds,
    grace: Duration,
    created_before: Option<i64>,
) -> Result<ReconcileReport, StorageError> {
    let mut pending = store.pending().await?;
    if let Some(cutoff) = created_before {
        pending.retain(|reservation| reservation.created_at < cutoff);
    }
    let mut report = ReconcileReport {
        checked: pending.len(),
        ..ReconcileReport::default()
    };
    let mut listings = HashMap::new();
    let request_id = format!("reconcile-{}", uuid::Uuid::new_v4());
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    for reservation in pending {
        // Each region on its own: one that cannot be asked leaves only its creates pending.
        let place = (
            reservation.region.clone(),
            reservation.target_instance_id.clone(),
        );
        if !listings.contains_key(&place) {
            let listing = match clouds.get(place.0.as_deref()) {
                Ok(cloud) => cloud.list_htap(&place.1, &request_id).await,
                Err(error) => Err(error),
            };
            if let Err(error) = &listing {
                tracing::warn!(region = ?place.0, target = %place.1, error = ?error, "cannot list HTAP instances; reconciling later");
            }
            listings.insert(place.clone(), listing.ok());
        }
        let Some(Some(listing)) = listings.get(&place) else {
            report.pending += 1;
            continue;
        };
        let known = store.known_instance_ids(&place.1).await?;
        let found = listing
            .instances
            .iter()
            .find(|i| i.name == reservation.name && !known.contains(&i.id));
        match found {
            Some(instance) => {
                if store
                    .commit(
                        &reservation.id,
                        &instance.id,
                        None,
                        "reconciled: found upstream",
                    )
                    .await?
                {
                    tracing::info!(reservation.id = %reservation.id, instance.id = %instance.id, "pending create found upstream; committed");
                    report.committed += 1;
                }
            }
            None if now_ms() - reservation.created_at > grace_ms => {
                if store
                    .release(
                        &reservation.id,
                        "reconciled: absent upstream after the grace period",
                    )
                    .await?
                {
                    tracing::info!(reservation.id = %reservation.id, "pending create absent upstream; released");
                    report.released += 1;
                }
            }
            None => report.pending += 1,
        }
    }
    for reservation in store.deleting().await? {
        let Some(instance_id) = reservation.instance_id.as_deref() else {
            continue;
        };
        let answer = match clouds.get(reservation.region.as_deref()) {
            Ok(cloud) => {
                cloud
                    .get_starrocks(&reservation.target_instance_id, instance_id, &request_id)
                    .await
            }
            Err(error) => Err(error),
        };
        match answer {
            Ok(None) => {
                if store
                    .transition(
                        &reservation.id,
                        ReservationState::Deleting,
                        ReservationState::Deleted,
                        "deletion confirmed by the cloud",
                        None,
                    )
                    .await?
                {
                    report.deleted += 1;
                }
            }
            Ok(Some(_)) => {}
            Err(error) => {
                tracing::warn!(instance.id = instance_id, error = ?error, "cannot check a deletion; reconciling later")
            }
        }
    }
    Ok(report)
}

/// Reconciles now and then every `interval` (zero: only now), for as long as the process runs.
pub fn spawn(store: Store, clouds: std::sync::Arc<Clouds>, interval: Duration, grace: Duration) {
    let started = now_ms();
    tokio::spawn(async move {
        let mut created_before = Some(started);
        loop {
            match reconcile(&store, &clouds, grace, created_before.take()).await {
                Ok(report) if report.checked > 0 => {
                    tracing::info!(?report, "reconciled pending creates")
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = ?error, "reconciliation could not read the ledger")
                }
            }
            if interval.is_zero() {
                return;
            }
            tokio::time::sleep(interval).await;
        }
    });
}
