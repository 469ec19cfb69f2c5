//! The quota ledger. A create reserves its cost before anything is sent upstream; the
//! reservation is committed when the cloud confirms, released on a definite failure, and kept
//! `pending` on an ambiguous one until reconciliation asks the cloud. A committed instance
//! being deleted is `deleting` (still counted) until the cloud confirms it gone: `deleted`.
//!
//! Every write goes through the group writer ([`super::writer`]). Admission is serialized per
//! team: on PostgreSQL the writer's transaction holds the team's advisory lock (so replicas
//! sharing the database never over-admit), on SQLite the one writer holds the write lock.
//! Usage is read and the new row written inside that lock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::decisions::{DecisionRecord, insert_decisions};
use super::idempotency::{self, Claim, KeyConflict, KeyOutcome, KeyedRequest};
use super::sql::{Conn, Row, query};
use super::usage::{UsageChange, usage_in_region, usage_of};
use super::writer::WriteOp;
use super::{StorageError, Store, now_ms, stored_enum};
use crate::policy::Quota;

stored_enum! {
    /// Where a reservation stands.
    pub enum ReservationState {
        /// Sent, or about to be; the outcome is unknown. Counted.
        Pending = "pending",
        /// The instance exists. Counted.
        Committed = "committed",
        /// It does not; its cost no longer counts.
        Released = "released",
        /// Being deleted; counted until the cloud confirms it gone.
        Deleting = "deleting",
        /// Gone; no longer counted.
        Deleted = "deleted",
    }
}

impl ReservationState {
    /// States whose cost counts against the quota.
    pub const COUNTED: [Self; 3] = [Self::Pending, Self::Committed, Self::Deleting];
    /// States of an instance the team still has.
    pub const LIVE: [Self; 2] = [Self::Committed, Self::Deleting];
}

/// `state IN ('…', …)` for a fixed set of states (their names are static, never input).
pub(crate) fn state_in(states: &[ReservationState]) -> String {
    let names: Vec<String> = states.iter().map(|s| format!("'{s}'")).collect();
    format!("state IN ({})", names.join(", "))
}

/// What a create costs, or what a team uses, in the three quota dimensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Cost {
    pub instances: i64,
    pub nodes: i64,
    pub storage_gb: i64,
}

impl Cost {
    pub fn plus(self, other: Self) -> Self {
        Self {
            instances: self.instances + other.instances,
            nodes: self.nodes + other.nodes,
            storage_gb: self.storage_gb + other.storage_gb,
        }
    }

    /// `self` taken `factor` times: -1 for a cost that stops counting.
    pub fn times(self, factor: i64) -> Self {
        Self {
            instances: self.instances * factor,
            nodes: self.nodes * factor,
            storage_gb: self.storage_gb * factor,
        }
    }

    pub fn within(self, limit: &Quota) -> bool {
        self.instances <= i64::from(limit.instances)
            && self.nodes <= i64::from(limit.nodes)
            && self.storage_gb <= i64::from(limit.storage_gb)
    }
}

/// A reservation about to be written.
#[derive(Debug, Clone)]
pub struct NewReservation {
    pub id: String,
    pub team: String,
    pub subject: String,
    pub cost: Cost,
    /// The region the instance is ordered in.
    pub region: String,
    pub project_id: String,
    pub target: String,
    pub target_instance_id: String,
    pub name: String,
    pub size: String,
    pub labels: BTreeMap<String, String>,
    /// The lease, counted from the reservation; `None`: until deleted.
    pub lease_ms: Option<i64>,
    pub decision_id: String,
    pub request_id: String,
    /// The exception request whose approval runs this create.
    pub exception_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    Reserved {
        before: Cost,
        after: Cost,
    },
    /// Admitting the request would exceed a limit; nothing was written. `region` names the
    /// region whose own limit it was (then `used` is the team's usage there).
    Exceeded {
        used: Cost,
        region: Option<String>,
    },
    /// The request's `Idempotency-Key` is taken; nothing was written.
    KeyTaken(KeyConflict),
}

/// Phase 4's write: the key claimed (when there is one) and the cost reserved, in one
/// transaction, under the team's lock.
#[derive(Debug, Clone)]
pub struct Reserve {
    pub new: NewReservation,
    /// The team's limits; `None` admits anything.
    pub limit: Option<Quota>,
    /// The team's limits in the reservation's region, if it has any there.
    pub region_limit: Option<RegionLimit>,
    pub key: Option<Claim>,
}

/// A team's limits in one region.
#[derive(Debug, Clone)]
pub struct RegionLimit {
    pub limit: Quota,
    /// The region is the default one, which also holds the rows from before regions.
    pub default_region: bool,
}

impl WriteOp for Reserve {
    type Output = ReserveOutcome;

    fn teams(&self) -> Vec<String> {
        vec![self.new.team.clone()]
    }

    fn usage_change(&self, outcome: &ReserveOutcome) -> Option<UsageChange> {
        matches!(outcome, ReserveOutcome::Reserved { .. }).then(|| UsageChange {
            team: self.new.team.clone(),
            delta: self.new.cost,
        })
    }

    async fn apply(&self, tx: &mut Conn<'_, '_>) -> Result<ReserveOutcome, StorageError> {
        let new = &self.new;
        if let Some(claim) = &self.key
            && let Err(conflict) = idempotency::claim(tx, claim).await?
        {
            return Ok(ReserveOutcome::KeyTaken(conflict));
        }
        let used = usage_of(&mut *tx, &new.team).await?;
        let after = used.plus(new.cost);
        if self
            .limit
            .as_ref()
            .is_some_and(|limit| !after.within(limit))
        {
            if let Some(claim) = &self.key {
                // A refusal had no effect: a retry with the key runs again.
                idempotency::forget(tx, &claim.request).await?;
            }
            return Ok(ReserveOutcome::Exceeded { used, region: None });
        }
        if let Some(region) = &self.region_limit {
            let used =
                usage_in_region(&mut *tx, &new.team, &new.region, region.default_region).await?;
            if !used.plus(new.cost).within(&region.limit) {
                if let Some(claim) = &self.key {
                    idempotency::forget(tx, &claim.request).await?;
                }
                return Ok(ReserveOutcome::Exceeded {
                    used,
                    region: Some(new.region.clone()),
                });
            }
        }
        let now = now_ms();
        let labels =
            serde_json::to_string(&new.labels).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        query(
            "INSERT INTO reservations (id, team, subject, state, instances, nodes, storage_gb, project_id, \
             target, target_instance_id, name, size, labels, decision_id, request_id, created_at, updated_at, \
             expires_at, region, exception_id) \
             VALUES ($1, $2, $3, $16, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $17, $18, $19)",
        )
        .bind(&new.id)
        .bind(&new.team)
        .bind(&new.subject)
        .bind(new.cost.instances)
        .bind(new.cost.nodes)
        .bind(new.cost.storage_gb)
        .bind(&new.project_id)
        .bind(&new.target)
        .bind(&new.target_instance_id)
        .bind(&new.name)
        .bind(&new.size)
        .bind(labels)
        .bind(&new.decision_id)
        .bind(&new.request_id)
        .bind(now)
        .bind(ReservationState::Pending.as_str())
        .bind(new.lease_ms.map(|lease| now.saturating_add(lease)))
        .bind(&new.region)
        .bind(&new.exception_id)
        .execute(&mut *tx)
        .await?;
        Ok(ReserveOutcome::Reserved {
            before: used,
            after,
        })
    }
}

/// A reservation moving from one state to another, guarded by the state it is expected in,
/// so concurrent requests cannot both make the same transition.
#[derive(Debug, Clone)]
pub struct Change {
    pub reservation_id: String,
    pub from: ReservationState,
    pub to: ReservationState,
    pub reason: String,
    /// Recorded when given (a create's instance); kept otherwise.
    pub instance_id: Option<String>,
    /// Replaces the recorded job when given (a deletion's workflow follows the create's).
    pub job_id: Option<String>,
    /// Moves it only when its lease has ended by this time (an expiry racing an extension).
    pub lease_ended_by: Option<i64>,
}

impl Change {
    pub fn new(
        reservation_id: &str,
        from: ReservationState,
        to: ReservationState,
        reason: &str,
    ) -> Self {
        Self {
            reservation_id: reservation_id.to_owned(),
            from,
            to,
            reason: reason.to_owned(),
            instance_id: None,
            job_id: None,
            lease_ended_by: None,
        }
    }

    /// `None` when the reservation was not in `from`; otherwise what the move did to its
    /// team's usage.
    async fn apply(&self, tx: &mut Conn<'_, '_>) -> Result<Option<UsageChange>, StorageError> {
        let moved = query(
            "UPDATE reservations SET state = $3, settle_reason = $4, updated_at = $5, \
             instance_id = COALESCE($6, instance_id), job_id = COALESCE($7, job_id) \
             WHERE id = $1 AND state = $2 AND ($8 = 0 OR expires_at <= $8) \
             RETURNING team, instances, nodes, storage_gb",
        )
        .bind(&self.reservation_id)
        .bind(self.from.as_str())
        .bind(self.to.as_str())
        .bind(&self.reason)
        .bind(now_ms())
        .bind(&self.instance_id)
        .bind(&self.job_id)
        .bind(self.lease_ended_by.unwrap_or(0))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = moved else {
            return Ok(None);
        };
        let counts =
            |state: ReservationState| i64::from(ReservationState::COUNTED.contains(&state));
        let cost = Cost {
            instances: row.try_get("instances")?,
            nodes: row.try_get("nodes")?,
            storage_gb: row.try_get("storage_gb")?,
        };
        Ok(Some(UsageChange {
            team: row.try_get("team")?,
            delta: cost.times(counts(self.to) - counts(self.from)),
        }))
    }
}

/// A request's last write: its ledger change, its decision and its key's outcome, committed
/// together, so an answered request never has one without the others.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    pub change: Option<Change>,
    pub decision: Option<DecisionRecord>,
    pub key: Option<(KeyedRequest, KeyOutcome)>,
}

/// What a [`Finish`] did to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// There was no change, or it was made; with what it did to usage.
    Done(Option<UsageChange>),
    /// The reservation was not in the state the change expected; nothing moved.
    NotInState,
}

impl WriteOp for Finish {
    type Output = Finished;

    fn usage_change(&self, finished: &Finished) -> Option<UsageChange> {
        match finished {
            Finished::Done(change) => change.clone(),
            Finished::NotInState => None,
        }
    }

    async fn apply(&self, tx: &mut Conn<'_, '_>) -> Result<Finished, StorageError> {
        let finished = match &self.change {
            Some(change) => match change.apply(tx).await? {
                Some(moved) => Finished::Done(Some(moved)),
                None => Finished::NotInState,
            },
            None => Finished::Done(None),
        };
        if let Some(decision) = &self.decision {
            insert_decisions(tx, std::slice::from_ref(decision)).await?;
        }
        if let Some((request, outcome)) = &self.key {
            idempotency::settle(tx, request, outcome).await?;
        }
        Ok(finished)
    }
}

/// A ledger row, as reconciliation and idempotent replays need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: String,
    pub team: String,
    /// Who created it.
    pub subject: String,
    pub state: ReservationState,
    /// The region it was ordered in; `None` for rows from before regions: the default region.
    pub region: Option<String>,
    pub project_id: String,
    pub target: String,
    pub target_instance_id: String,
    pub name: String,
    pub size: String,
    pub labels: BTreeMap<String, String>,
    pub instance_id: Option<String>,
    pub job_id: Option<String>,
    pub decision_id: String,
    pub settle_reason: Option<String>,
    pub created_at: i64,
    /// When its lease ends (unix ms); `None`: it has none.
    pub expires_at: Option<i64>,
    /// The lease sweep found its end near (`lease_warning_hours`).
    pub expiring: bool,
}

pub(super) const COLUMNS: &str = "id, team, subject, state, region, project_id, target, target_instance_id, name, \
    size, labels, instance_id, job_id, decision_id, settle_reason, created_at, expires_at, expiring_since";

pub(super) fn reservation(row: &Row) -> Result<Reservation, StorageError> {
    let labels: String = row.try_get("labels")?;
    Ok(Reservation {
        id: row.try_get("id")?,
        team: row.try_get("team")?,
        subject: row.try_get("subject")?,
        state: ReservationState::parse(&row.try_get::<String>("state")?)?,
        region: row.try_get("region")?,
        project_id: row.try_get("project_id")?,
        target: row.try_get("target")?,
        target_instance_id: row.try_get("target_instance_id")?,
        name: row.try_get("name")?,
        size: row.try_get("size")?,
        labels: serde_json::from_str(&labels)
            .map_err(|e| StorageError::Corrupt(format!("labels: {e}")))?,
        instance_id: row.try_get("instance_id")?,
        job_id: row.try_get("job_id")?,
        decision_id: row.try_get("decision_id")?,
        settle_reason: row.try_get("settle_reason")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        expiring: row.try_get::<Option<i64>>("expiring_since")?.is_some(),
    })
}

impl Store {
    /// Claims the key (if any) and reserves the cost, in the next group commit. Nothing goes
    /// upstream without a reservation that survives a restart: a replaced SQLite file refuses.
    pub async fn reserve(&self, reserve: Reserve) -> Result<ReserveOutcome, StorageError> {
        self.check_file()?;
        let team = reserve.new.team.clone();
        let outcome = self.writer.write(reserve).await;
        self.usage.changed(&team).await;
        outcome
    }

    /// Commits a request's last write; see [`Finish`]. False when its change found the
    /// reservation in another state.
    pub async fn finish(&self, finish: Finish) -> Result<bool, StorageError> {
        match self.writer.write(finish).await? {
            Finished::Done(moved) => {
                if let Some(moved) = moved {
                    self.usage.changed(&moved.team).await;
                }
                Ok(true)
            }
            Finished::NotInState => Ok(false),
        }
    }

    /// What `team` uses: pending, committed and deleting reservations, for previews; see
    /// [`super::usage`]. Admission never relies on it.
    pub async fn usage(&self, team: &str) -> Result<Cost, StorageError> {
        self.usage.usage(&self.db, team).await
    }

    /// `pending` → `committed`, recording the instance. False when it was not pending.
    pub async fn commit(
        &self,
        id: &str,
        instance_id: &str,
        job_id: Option<&str>,
        reason: &str,
    ) -> Result<bool, StorageError> {
        let change = Change {
            instance_id: Some(instance_id.to_owned()),
            job_id: job_id.map(ToOwned::to_owned),
            ..Change::new(
                id,
                ReservationState::Pending,
                ReservationState::Committed,
                reason,
            )
        };
        self.change(change).await
    }

    /// `pending` → `released`: its cost no longer counts. False when it was not pending.
    pub async fn release(&self, id: &str, reason: &str) -> Result<bool, StorageError> {
        self.change(Change::new(
            id,
            ReservationState::Pending,
            ReservationState::Released,
            reason,
        ))
        .await
    }

    /// Moves a reservation from state `from` to `to`; false when it was not in `from`.
    /// A `job_id` replaces the recorded one (a deletion's workflow follows the create's job).
    pub async fn transition(
        &self,
        id: &str,
        from: ReservationState,
        to: ReservationState,
        reason: &str,
        job_id: Option<&str>,
    ) -> Result<bool, StorageError> {
        let change = Change {
            job_id: job_id.map(ToOwned::to_owned),
            ..Change::new(id, from, to, reason)
        };
        self.change(change).await
    }

    /// `committed` → `deleting` for an instance whose lease ended by `now`; false when it is
    /// no longer committed, or its lease was extended meanwhile.
    pub async fn begin_expiry(&self, id: &str, now: i64) -> Result<bool, StorageError> {
        self.change(Change {
            lease_ended_by: Some(now),
            ..Change::new(
                id,
                ReservationState::Committed,
                ReservationState::Deleting,
                "lease ended",
            )
        })
        .await
    }

    async fn change(&self, change: Change) -> Result<bool, StorageError> {
        self.finish(Finish {
            change: Some(change),
            ..Finish::default()
        })
        .await
    }

    pub async fn reservation(&self, id: &str) -> Result<Option<Reservation>, StorageError> {
        let row = query(format!("SELECT {COLUMNS} FROM reservations WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db)
            .await?;
        row.as_ref().map(reservation).transpose()
    }

    /// The reservation the approval of exception request `exception_id` made, if it made one.
    pub async fn reservation_of_exception(
        &self,
        exception_id: &str,
    ) -> Result<Option<Reservation>, StorageError> {
        let row = query(format!(
            "SELECT {COLUMNS} FROM reservations WHERE exception_id = $1"
        ))
        .bind(exception_id)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(reservation).transpose()
    }

    /// The ledger row of a StarRocks instance.
    pub async fn reservation_by_instance(
        &self,
        instance_id: &str,
    ) -> Result<Option<Reservation>, StorageError> {
        let row = query(format!(
            "SELECT {COLUMNS} FROM reservations WHERE instance_id = $1"
        ))
        .bind(instance_id)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(reservation).transpose()
    }

    /// Live instances (committed or being deleted), newest first; all teams when `team` is
    /// `None`. One page after the `(created_at, id)` cursor, plus whether more follow.
    pub async fn instances(
        &self,
        team: Option<&str>,
        limit: u32,
        before: Option<(i64, String)>,
    ) -> Result<(Vec<Reservation>, bool), StorageError> {
        let (at, id) = before.unwrap_or((i64::MAX, String::new()));
        let rows = query(format!(
            "SELECT {COLUMNS} FROM reservations WHERE {} \
             AND ($1 = '' OR team = $1) AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT {}",
            state_in(&ReservationState::LIVE),
            limit + 1
        ))
        .bind(team.unwrap_or_default())
        .bind(at)
        .bind(id)
        .fetch_all(&self.db)
        .await?;
        let more = rows.len() > limit as usize;
        let page = rows
            .iter()
            .take(limit as usize)
            .map(reservation)
            .collect::<Result<_, _>>()?;
        Ok((page, more))
    }

    /// Every reservation being deleted, for reconciliation.
    pub async fn deleting(&self) -> Result<Vec<Reservation>, StorageError> {
        let rows = query(format!(
            "SELECT {COLUMNS} FROM reservations WHERE state = $1"
        ))
        .bind(ReservationState::Deleting.as_str())
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(reservation).collect()
    }

    /// How many reservations are pending, and when the oldest was made (unix ms).
    pub async fn pending_summary(&self) -> Result<(i64, Option<i64>), StorageError> {
        let row = query(
            "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM reservations WHERE state = $1",
        )
        .bind(ReservationState::Pending.as_str())
        .fetch_one(&self.db)
        .await?;
        Ok((row.try_get("n")?, row.try_get("oldest")?))
    }

    /// Every reservation whose outcome is still unknown, oldest first.
    pub async fn pending(&self) -> Result<Vec<Reservation>, StorageError> {
        let rows = query(format!(
            "SELECT {COLUMNS} FROM reservations WHERE state = $1 ORDER BY created_at"
        ))
        .bind(ReservationState::Pending.as_str())
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(reservation).collect()
    }

    /// What `team` uses in `region` (see [`RegionLimit::default_region`]).
    pub async fn usage_in_region(
        &self,
        team: &str,
        region: &str,
        default_region: bool,
    ) -> Result<Cost, StorageError> {
        usage_in_region(&self.db, team, region, default_region).await
    }

    /// Instance ids the ledger already attributes on `target_instance_id`.
    pub async fn known_instance_ids(
        &self,
        target_instance_id: &str,
    ) -> Result<Vec<String>, StorageError> {
        let rows = query(
            "SELECT instance_id FROM reservations WHERE target_instance_id = $1 AND instance_id IS NOT NULL",
        )
        .bind(target_instance_id)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| row.try_get::<String>("instance_id"))
            .collect()
    }
}
