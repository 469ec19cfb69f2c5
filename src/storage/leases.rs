//! Leases in the ledger: which instances are near their end or past it, and moving an end.
//! Deleting an expired instance is the delete path's own guarded transition
//! (`committed` → `deleting`), so with several replicas sweeping, exactly one deletes it.

use super::decisions::{DecisionRecord, insert_decisions};
use super::ledger::{COLUMNS, Reservation, ReservationState, reservation};
use super::sql::{Conn, query};
use super::writer::WriteOp;
use super::{StorageError, Store};

/// Marks the committed instances whose lease ends within the warning as expiring.
struct MarkExpiring {
    now: i64,
    warning_ms: i64,
}

impl WriteOp for MarkExpiring {
    type Output = u64;

    async fn apply(&self, tx: &mut Conn<'_, '_>) -> Result<u64, StorageError> {
        query(
            "UPDATE reservations SET expiring_since = $1 \
             WHERE state = $2 AND expires_at IS NOT NULL AND expires_at <= $3 \
             AND expiring_since IS NULL",
        )
        .bind(self.now)
        .bind(ReservationState::Committed.as_str())
        .bind(self.now.saturating_add(self.warning_ms))
        .execute(&mut *tx)
        .await
    }
}

/// A committed instance's lease moved to `expires_at`, with the decision that logs it.
#[derive(Debug, Clone)]
pub struct ExtendLease {
    pub reservation_id: String,
    pub expires_at: i64,
    /// Kept as expiring when the new end is still within the warning.
    pub expiring_since: Option<i64>,
    pub decision: DecisionRecord,
}

impl WriteOp for ExtendLease {
    type Output = bool;

    async fn apply(&self, tx: &mut Conn<'_, '_>) -> Result<bool, StorageError> {
        let moved = query(
            "UPDATE reservations SET expires_at = $2, expiring_since = $3 \
             WHERE id = $1 AND state = $4 AND expires_at IS NOT NULL",
        )
        .bind(&self.reservation_id)
        .bind(self.expires_at)
        .bind(self.expiring_since)
        .bind(ReservationState::Committed.as_str())
        .execute(&mut *tx)
        .await?
            == 1;
        if moved {
            insert_decisions(tx, std::slice::from_ref(&self.decision)).await?;
        }
        Ok(moved)
    }
}

impl Store {
    /// Marks as expiring every committed instance whose lease ends by `now + warning_ms`;
    /// how many it marked. Nothing to mark costs a read, not a write.
    pub async fn mark_expiring(&self, now: i64, warning_ms: i64) -> Result<u64, StorageError> {
        let due = query(
            "SELECT id FROM reservations WHERE state = $1 AND expires_at IS NOT NULL \
             AND expires_at <= $2 AND expiring_since IS NULL LIMIT 1",
        )
        .bind(ReservationState::Committed.as_str())
        .bind(now.saturating_add(warning_ms))
        .fetch_optional(&self.db)
        .await?;
        if due.is_none() {
            return Ok(0);
        }
        self.writer.write(MarkExpiring { now, warning_ms }).await
    }

    /// Committed instances whose lease ended by `now`, soonest first, at most `limit`.
    pub async fn leases_ended(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<Reservation>, StorageError> {
        let rows = query(format!(
            "SELECT {COLUMNS} FROM reservations WHERE state = $1 AND expires_at IS NOT NULL \
             AND expires_at <= $2 ORDER BY expires_at LIMIT {limit}"
        ))
        .bind(ReservationState::Committed.as_str())
        .bind(now)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(reservation).collect()
    }

    /// Moves a committed instance's lease; false when it is no longer committed.
    pub async fn extend_lease(&self, extend: ExtendLease) -> Result<bool, StorageError> {
        self.writer.write(extend).await
    }

    /// Committed instances marked expiring, by team.
    pub async fn expiring_by_team(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let rows = query(
            "SELECT team, COUNT(*) AS n FROM reservations \
             WHERE state = $1 AND expiring_since IS NOT NULL GROUP BY team",
        )
        .bind(ReservationState::Committed.as_str())
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("team")?, row.try_get("n")?)))
            .collect()
    }
}
