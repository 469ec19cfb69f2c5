//! What platform admins may do: reload the policy, reconcile now, read the decision log.

use futures_util::{Stream, StreamExt};

use super::Gateway;
use crate::pipeline::authenticate::Employee;
use crate::pipeline::authorize::{AdminRequired, require_admin};
use crate::pipeline::reconcile::{self, ReconcileReport};
use crate::policy::{PolicyError, Reloaded};
use crate::storage::decisions::{DecisionFilter, DecisionRecord};
use crate::storage::stream::Line;
use crate::storage::{StorageError, Store};

/// Decisions read per page of an export.
const EXPORT_PAGE: u32 = 500;

/// Why an admin operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Forbidden(#[from] AdminRequired),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("the database is unavailable")]
    Storage(#[from] StorageError),
}

impl Gateway {
    /// Validates the policy file and swaps it in; a broken file leaves the last good policy.
    pub fn reload_policy(&self, employee: &Employee) -> Result<Reloaded, AdminError> {
        require_admin(employee, "reloading the policy")?;
        let reloaded = self.policy.reload().inspect_err(|error| {
            if !matches!(error, PolicyError::NotReloadable) {
                tracing::error!(error = %error, "policy reload refused; the previous policy stays in force");
            }
        })?;
        tracing::info!(
            employee.subject = %employee.subject,
            policy.revision = %reloaded.revision,
            policy.previous_revision = %reloaded.previous_revision,
            "policy reloaded by an admin"
        );
        Ok(reloaded)
    }

    /// One reconciliation pass now.
    pub async fn reconcile(&self, employee: &Employee) -> Result<ReconcileReport, AdminError> {
        require_admin(employee, "reconciling")?;
        let mut report =
            reconcile::reconcile(&self.store, &self.clouds, self.reconcile_grace, None).await?;
        report.requests_settled = self.settle_interrupted_approvals().await?;
        Ok(report)
    }

    /// One page of the decision log, and whether more follow.
    pub async fn decisions(
        &self,
        employee: &Employee,
        filter: &DecisionFilter,
    ) -> Result<(Vec<DecisionRecord>, bool), AdminError> {
        require_admin(employee, "the decision log")?;
        Ok(self.store.decisions(filter).await?)
    }

    /// Every decision at or after `since_ms` and before `until_ms`, newest first, as JSON
    /// lines (each a [`Line`]), read a page at a time as the consumer takes them. The first
    /// page is read before this returns, so a database that is down is an error here, not a
    /// stream that ends at once.
    pub async fn export_decisions(
        &self,
        employee: &Employee,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
    ) -> Result<impl Stream<Item = Result<Vec<u8>, StorageError>> + 'static, AdminError> {
        require_admin(employee, "the decision log")?;
        let store = self.store.clone();
        let first = DecisionFilter {
            since_ms,
            until_ms,
            limit: EXPORT_PAGE,
            ..DecisionFilter::default()
        };
        let (lines, next) = export_page(&store, first).await?;
        let rest = futures_util::stream::try_unfold(next, move |filter| {
            let store = store.clone();
            async move {
                match filter {
                    Some(filter) => export_page(&store, filter).await.map(Some),
                    None => Ok(None),
                }
            }
        });
        Ok(futures_util::stream::once(async { Ok(lines) }).chain(rest))
    }
}

/// One page of an export as JSON lines, and the filter of the next page when more follow.
async fn export_page(
    store: &Store,
    mut filter: DecisionFilter,
) -> Result<(Vec<u8>, Option<DecisionFilter>), StorageError> {
    let (page, more) = store.decisions(&filter).await?;
    let lines = page
        .iter()
        .flat_map(|record| Line::of(record).to_bytes())
        .collect();
    let next = match (more, page.last()) {
        (true, Some(last)) => {
            filter.before = Some((last.at_ms, last.id.clone()));
            Some(filter)
        }
        _ => None,
    };
    Ok((lines, next))
}
