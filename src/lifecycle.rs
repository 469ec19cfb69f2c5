//! An instance's life as the caller sees it: one state they can act on, from the gateway's
//! ledger, the cloud's view of the instance, and its create or delete job.

use serde::Serialize;
use utoipa::ToSchema;

use crate::cloud::model::Job;
use crate::storage::ledger::ReservationState;

/// The state a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleState {
    /// Being built; poll again.
    Creating,
    /// Running, no operation pending: connect to it.
    Ready,
    /// Ready, and its lease ends within the policy's `lease_warning_hours`: extend it, or it
    /// is deleted at `expires_at`.
    Expiring,
    /// The create failed; `reason` says why. Its quota is released.
    Failed,
    /// Being deleted; its quota is released when the cloud confirms it gone.
    Deleting,
    /// Gone.
    Deleted,
    /// The cloud could not be asked, and this gateway has not seen the instance since it
    /// started: no state is invented. Ask again shortly.
    Unknown,
}

/// What the cloud last said about an instance, kept so that an answer the cloud cannot
/// complete shows it with its age instead of inventing a state.
#[derive(Debug, Clone)]
pub struct Observation {
    pub state: LifecycleState,
    pub reason: Option<String>,
    pub cloud_status: Option<String>,
    /// Unix milliseconds.
    pub at_ms: i64,
}

/// The last observation of each instance this gateway read (in memory, per replica).
#[derive(Debug, Clone)]
pub struct Observations(moka::sync::Cache<String, Observation>);

impl Default for Observations {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(24 * 3_600))
                .build(),
        )
    }
}

impl Observations {
    pub fn record(&self, instance_id: &str, observation: Observation) {
        self.0.insert(instance_id.to_owned(), observation);
    }

    pub fn last(&self, instance_id: &str) -> Option<Observation> {
        self.0.get(instance_id)
    }
}

/// The cloud's statuses that mean a create ended in failure.
const FAILED_STATUSES: &[&str] = &["createfail", "abnormal"];

/// What the cloud says about an instance right now.
#[derive(Debug, Clone, Copy)]
pub struct CloudView<'a> {
    /// `None`: the cloud does not know the instance (any more).
    pub status: Option<&'a str>,
    /// Operations still running on it.
    pub pending_actions: usize,
    pub job: Option<&'a Job>,
}

/// Summarizes the ledger state and the cloud's view into one state, with the failure reason
/// when there is one.
pub fn summarize(
    ledger_state: ReservationState,
    settle_reason: Option<&str>,
    cloud: CloudView<'_>,
) -> (LifecycleState, Option<String>) {
    let job_failed = cloud.job.filter(|job| job.status == "Failed");
    match ledger_state {
        ReservationState::Deleted => (LifecycleState::Deleted, None),
        ReservationState::Released => (LifecycleState::Failed, settle_reason.map(str::to_owned)),
        ReservationState::Deleting if cloud.status.is_none() => (LifecycleState::Deleted, None),
        ReservationState::Deleting => (LifecycleState::Deleting, None),
        ReservationState::Pending | ReservationState::Committed => match (cloud.status, job_failed)
        {
            (_, Some(job)) => (
                LifecycleState::Failed,
                Some(
                    job.fail_reason
                        .clone()
                        .unwrap_or_else(|| format!("job {} failed", job.id)),
                ),
            ),
            (Some(status), None) if FAILED_STATUSES.contains(&status) => (
                LifecycleState::Failed,
                Some(format!("the cloud reports the instance `{status}`")),
            ),
            (Some("normal"), None) if cloud.pending_actions == 0 => (LifecycleState::Ready, None),
            (Some("deleting"), None) => (LifecycleState::Deleting, None),
            (Some(_), None) => (LifecycleState::Creating, None),
            (None, None) => (LifecycleState::Deleted, None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: &str, reason: Option<&str>) -> Job {
        Job {
            id: "j-1".into(),
            name: None,
            status: status.into(),
            process: None,
            fail_reason: reason.map(str::to_owned),
        }
    }

    fn view<'a>(status: Option<&'a str>, actions: usize, job: Option<&'a Job>) -> CloudView<'a> {
        CloudView {
            status,
            pending_actions: actions,
            job,
        }
    }

    #[test]
    fn a_normal_instance_without_pending_actions_is_ready() {
        assert_eq!(
            summarize(
                ReservationState::Committed,
                None,
                view(Some("normal"), 0, None)
            )
            .0,
            LifecycleState::Ready
        );
    }

    #[test]
    fn a_normal_instance_with_a_pending_action_is_still_creating() {
        assert_eq!(
            summarize(
                ReservationState::Committed,
                None,
                view(Some("normal"), 1, None)
            )
            .0,
            LifecycleState::Creating
        );
    }

    #[test]
    fn a_failed_create_job_is_failed_with_its_reason() {
        let failed = job("Failed", Some("no capacity"));
        assert_eq!(
            summarize(
                ReservationState::Committed,
                None,
                view(Some("createfail"), 0, Some(&failed))
            ),
            (LifecycleState::Failed, Some("no capacity".into()))
        );
    }

    #[test]
    fn a_createfail_status_without_a_job_is_failed() {
        assert_eq!(
            summarize(
                ReservationState::Committed,
                None,
                view(Some("createfail"), 0, None)
            )
            .0,
            LifecycleState::Failed
        );
    }

    #[test]
    fn a_deleting_instance_is_deleted_once_the_cloud_forgets_it() {
        assert_eq!(
            summarize(
                ReservationState::Deleting,
                None,
                view(Some("deleting"), 1, None)
            )
            .0,
            LifecycleState::Deleting
        );
        assert_eq!(
            summarize(ReservationState::Deleting, None, view(None, 0, None)).0,
            LifecycleState::Deleted
        );
    }

    #[test]
    fn a_released_reservation_is_failed_with_the_ledgers_reason() {
        assert_eq!(
            summarize(
                ReservationState::Released,
                Some("quota freed: create failed"),
                view(None, 0, None)
            ),
            (
                LifecycleState::Failed,
                Some("quota freed: create failed".into())
            )
        );
    }
}
