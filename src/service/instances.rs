//! A team's instances from the gateway's records, with live state from the cloud. An instance
//! of another team answers exactly like a missing one, so ids cannot be probed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use super::Gateway;
use crate::cloud::CloudError;
use crate::cloud::model::{Job, StarRocksDetail};
use crate::lifecycle::{CloudView, LifecycleState, Observation, summarize};
use crate::pipeline::authenticate::Employee;
use crate::pipeline::authorize::{TeamError, may_see, select_team};
use crate::storage::ledger::{Reservation, ReservationState};
use crate::storage::{StorageError, now_ms};

/// One instance as the caller sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstanceSummary {
    /// StarRocks instance id (`…in17`).
    pub id: String,
    pub name: String,
    pub team: String,
    /// The region it is in.
    pub region: String,
    pub target: String,
    pub size: String,
    pub labels: BTreeMap<String, String>,
    /// The employee who created it.
    pub created_by: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// When its lease ends and the gateway deletes it (RFC 3339, UTC); absent: no lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    pub state: LifecycleState,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The cloud's own status (`creating`, `normal`, ...), when it knows the instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_status: Option<String>,
    /// When the cloud said so (RFC 3339, UTC): now, or earlier when the cloud could not be
    /// asked this time. Absent when the state comes from the gateway's records alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<String>,
}

/// One instance with the cloud's detail and its latest job.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceDetail {
    #[serde(flatten)]
    pub summary: InstanceSummary,
    /// The cloud's detail: node groups, version, port, pending actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<StarRocksDetail>,
    /// The latest create or delete job, as the cloud reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
}

/// A page of instances, and the cursor of the next one when more follow.
#[derive(Debug)]
pub struct InstancePage {
    pub instances: Vec<InstanceSummary>,
    pub next: Option<(i64, String)>,
    /// Targets (their aliases) the cloud could not list: their instances show the last
    /// observed state, or `unknown`.
    pub unavailable_targets: Vec<String>,
    /// Regions where some target could not be listed.
    pub unavailable_regions: Vec<String>,
}

/// Why an instance cannot be shown or acted on.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("no StarRocks instance `{0}` is visible to you")]
    NotFound(String),
    #[error("instance `{0}` is already being deleted")]
    Deleting(String),
    #[error(transparent)]
    Team(#[from] TeamError),
    #[error("the ledger is unavailable")]
    Storage(#[from] StorageError),
    #[error("the cloud failed the call")]
    Cloud(#[source] Arc<CloudError>),
}

impl From<&Reservation> for InstanceSummary {
    fn from(reservation: &Reservation) -> Self {
        Self {
            id: reservation.instance_id.clone().unwrap_or_default(),
            name: reservation.name.clone(),
            team: reservation.team.clone(),
            region: reservation.region.clone().unwrap_or_default(),
            target: reservation.target.clone(),
            size: reservation.size.clone(),
            labels: reservation.labels.clone(),
            created_by: reservation.subject.clone(),
            created_at: chrono::DateTime::from_timestamp_millis(reservation.created_at)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default(),
            expires_at: reservation.expires_at.and_then(rfc3339),
            state: LifecycleState::Creating,
            reason: None,
            cloud_status: None,
            observed_at: None,
        }
    }
}

fn rfc3339(at_ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn summary(
    reservation: &Reservation,
    state: LifecycleState,
    reason: Option<String>,
    cloud_status: Option<String>,
) -> InstanceSummary {
    let state = match state {
        LifecycleState::Ready if reservation.expiring => LifecycleState::Expiring,
        other => other,
    };
    InstanceSummary {
        state,
        reason,
        cloud_status,
        ..InstanceSummary::from(reservation)
    }
}

/// `observation` as the caller sees it, and remembered for when the cloud cannot be asked.
fn observed(
    gateway: &Gateway,
    reservation: &Reservation,
    observation: Observation,
) -> InstanceSummary {
    if let Some(id) = reservation.instance_id.as_deref() {
        gateway.observed.record(id, observation.clone());
    }
    InstanceSummary {
        observed_at: rfc3339(observation.at_ms),
        ..summary(
            reservation,
            observation.state,
            observation.reason,
            observation.cloud_status,
        )
    }
}

/// An instance whose target the cloud could not list: what the ledger knows for certain, or
/// what the cloud last said, or `unknown`; never a guess.
fn unobserved(gateway: &Gateway, reservation: &Reservation) -> InstanceSummary {
    use ReservationState::{Deleted, Released};
    if matches!(reservation.state, Deleted | Released) {
        let gone = CloudView {
            status: None,
            pending_actions: 0,
            job: None,
        };
        let (state, reason) = summarize(
            reservation.state,
            reservation.settle_reason.as_deref(),
            gone,
        );
        return summary(reservation, state, reason, None);
    }
    match reservation
        .instance_id
        .as_deref()
        .and_then(|id| gateway.observed.last(id))
    {
        Some(last) => InstanceSummary {
            observed_at: rfc3339(last.at_ms),
            ..summary(reservation, last.state, last.reason, last.cloud_status)
        },
        None => summary(reservation, LifecycleState::Unknown, None, None),
    }
}

impl Gateway {
    /// The ledger row of `id`, if the employee may see it.
    pub(crate) async fn visible(
        &self,
        employee: &Employee,
        id: &str,
    ) -> Result<Reservation, InstanceError> {
        self.store
            .reservation_by_instance(id)
            .await?
            .filter(|r| may_see(employee, &r.team))
            .map(|r| self.located(r))
            .ok_or_else(|| InstanceError::NotFound(id.to_owned()))
    }

    /// `reservation` with its region named: rows from before regions are in the default one.
    pub(crate) fn located(&self, mut reservation: Reservation) -> Reservation {
        reservation
            .region
            .get_or_insert_with(|| self.clouds.default_region().to_owned());
        reservation
    }

    /// Writes what the cloud revealed back to the ledger: a failed create gives its quota
    /// back, a finished deletion too.
    async fn settle_observed(
        &self,
        reservation: &Reservation,
        observed: LifecycleState,
        reason: Option<&str>,
    ) {
        use ReservationState::{Committed, Deleted, Deleting, Released};
        let transition = match (reservation.state, observed) {
            (Committed, LifecycleState::Failed) => {
                Some((Committed, Released, reason.unwrap_or("the create failed")))
            }
            (Committed, LifecycleState::Deleted) => {
                Some((Committed, Deleted, "gone from the cloud"))
            }
            (Deleting, LifecycleState::Deleted) => {
                Some((Deleting, Deleted, "deletion confirmed by the cloud"))
            }
            _ => None,
        };
        if let Some((from, to, why)) = transition
            && let Err(error) = self
                .store
                .transition(&reservation.id, from, to, why, None)
                .await
        {
            tracing::warn!(reservation.id = %reservation.id, error = ?error, "recording an observed state failed; it is retried on the next read");
        }
    }

    /// The instances of `team` (admins: all teams when `None`), newest first, with the live
    /// state from one list call per target.
    pub async fn list(
        &self,
        employee: &Employee,
        team: Option<String>,
        limit: u32,
        before: Option<(i64, String)>,
        request_id: &str,
    ) -> Result<InstancePage, InstanceError> {
        let team = match (employee.admin, team) {
            (true, team) => team,
            (false, named) => Some(select_team(
                employee,
                named.as_deref(),
                &self.policy.current(),
            )?),
        };
        let (rows, more) = self.store.instances(team.as_deref(), limit, before).await?;
        let rows: Vec<Reservation> = rows.into_iter().map(|r| self.located(r)).collect();
        let place = |row: &Reservation| {
            (
                row.region.clone().unwrap_or_default(),
                row.target_instance_id.clone(),
            )
        };
        // One list call per (region, target), every region's at once: a slow or failing
        // region delays the page by its own timeout, not by the sum of them.
        let mut places: Vec<(String, String)> = rows.iter().map(place).collect();
        places.sort();
        places.dedup();
        let listings = futures_util::future::join_all(
            places
                .iter()
                .map(|(region, target)| self.statuses_on(region, target, request_id)),
        )
        .await;
        let statuses: HashMap<(String, String), Option<HashMap<String, String>>> =
            places.into_iter().zip(listings).collect();
        let mut instances = Vec::with_capacity(rows.len());
        let mut unavailable_targets = Vec::new();
        let mut unavailable_regions = Vec::new();
        let now = now_ms();
        for row in &rows {
            let instance_id = row.instance_id.as_deref().unwrap_or_default();
            let item = match statuses.get(&place(row)) {
                Some(Some(listing)) => {
                    let status = listing.get(instance_id).map(String::as_str);
                    let view = CloudView {
                        status,
                        pending_actions: usize::from(status == Some("creating")),
                        job: None,
                    };
                    let (state, reason) = summarize(row.state, row.settle_reason.as_deref(), view);
                    self.settle_observed(row, state, reason.as_deref()).await;
                    let observation = Observation {
                        state,
                        reason,
                        cloud_status: status.map(str::to_owned),
                        at_ms: now,
                    };
                    observed(self, row, observation)
                }
                _ => {
                    if !unavailable_targets.contains(&row.target) {
                        unavailable_targets.push(row.target.clone());
                    }
                    let region = place(row).0;
                    if !unavailable_regions.contains(&region) {
                        unavailable_regions.push(region);
                    }
                    unobserved(self, row)
                }
            };
            instances.push(item);
        }
        let next = more
            .then(|| rows.last().map(|r| (r.created_at, r.id.clone())))
            .flatten();
        Ok(InstancePage {
            instances,
            next,
            unavailable_targets,
            unavailable_regions,
        })
    }

    /// Instance id → the cloud's status on one target; `None` when the cloud cannot say.
    async fn statuses_on(
        &self,
        region: &str,
        target: &str,
        request_id: &str,
    ) -> Option<HashMap<String, String>> {
        let listing = match self.clouds.get(Some(region)) {
            Ok(cloud) => cloud.list_htap(target, request_id).await,
            Err(error) => Err(error),
        };
        match listing {
            Ok(list) => Some(
                list.instances
                    .into_iter()
                    .map(|i| {
                        let status = i.instance_state.and_then(|s| s.instance_status);
                        (i.id, status.unwrap_or_default())
                    })
                    .collect(),
            ),
            Err(error) => {
                tracing::warn!(region, target = %target, error = ?error, "cannot list HTAP instances; showing the last known state");
                None
            }
        }
    }

    /// One instance, with the cloud's detail and its latest job.
    pub async fn detail(
        &self,
        employee: &Employee,
        id: &str,
        request_id: &str,
    ) -> Result<InstanceDetail, InstanceError> {
        let reservation = self.visible(employee, id).await?;
        if matches!(
            reservation.state,
            ReservationState::Deleted | ReservationState::Released
        ) {
            let gone = CloudView {
                status: None,
                pending_actions: 0,
                job: None,
            };
            let (observed, reason) = summarize(
                reservation.state,
                reservation.settle_reason.as_deref(),
                gone,
            );
            return Ok(InstanceDetail {
                summary: summary(&reservation, observed, reason, None),
                cloud: None,
                job: None,
            });
        }
        let region = self
            .clouds
            .get(reservation.region.as_deref())
            .map_err(InstanceError::Cloud)?;
        let (cloud, job) = futures_util::join!(
            region.get_starrocks(&reservation.target_instance_id, id, request_id),
            async {
                match reservation.job_id.as_deref() {
                    Some(job_id) => region.job(job_id, request_id).await.map(Some),
                    None => Ok(None),
                }
            }
        );
        let cloud = cloud.map_err(InstanceError::Cloud)?;
        // A job the cloud cannot report is not fatal: the instance's own status still tells.
        let job = job.unwrap_or_else(|error| {
            tracing::warn!(error = ?error, "cannot read the instance's job");
            None
        });
        let view = CloudView {
            status: cloud.as_ref().map(|c| c.status.as_str()),
            pending_actions: cloud.as_ref().map_or(0, |c| c.actions.len()),
            job: job.as_ref(),
        };
        let (observed, reason) = summarize(
            reservation.state,
            reservation.settle_reason.as_deref(),
            view,
        );
        self.settle_observed(&reservation, observed, reason.as_deref())
            .await;
        let observation = Observation {
            state: observed,
            reason,
            cloud_status: cloud.as_ref().map(|c| c.status.clone()),
            at_ms: now_ms(),
        };
        Ok(InstanceDetail {
            summary: self::observed(self, &reservation, observation),
            cloud,
            job,
        })
    }
}
