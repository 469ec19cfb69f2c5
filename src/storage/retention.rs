//! Retention: decisions older than `storage.decision_retention_days` and expired
//! `Idempotency-Key` records are deleted by a background task, in small batches so the
//! database is never locked for long, and the row count of each table is exported as a metric
//! after every pass.

use std::time::Duration;

use super::sql::query;
use super::{StorageError, Store, now_ms};
use crate::metrics::METRICS;

/// Rows deleted per statement: short transactions, so requests never wait long behind one.
const BATCH: i64 = 500;
const TABLES: [&str; 3] = ["reservations", "decisions", "idempotency_keys"];

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub decisions: u64,
    pub idempotency_keys: u64,
}

/// Decisions decided before `$1`, at most `$2` of them, oldest first.
const PRUNE_DECISIONS: &str = "DELETE FROM decisions WHERE id IN \
    (SELECT id FROM decisions WHERE at < $1 ORDER BY at LIMIT $2)";
/// Idempotency records expired at `$1`, at most `$2` of them.
const PRUNE_KEYS: &str = "DELETE FROM idempotency_keys WHERE (subject, idem_key) IN \
    (SELECT subject, idem_key FROM idempotency_keys WHERE expires_at <= $1 LIMIT $2)";

impl Store {
    /// Runs `delete` (one of the statements above) until it finds fewer than a batch.
    async fn prune_all(&self, delete: &'static str, cutoff_ms: i64) -> Result<u64, StorageError> {
        let mut total = 0;
        loop {
            let deleted = query(delete)
                .bind(cutoff_ms)
                .bind(BATCH)
                .execute(&self.db)
                .await?;
            total += deleted;
            if deleted < u64::try_from(BATCH).unwrap_or(u64::MAX) {
                return Ok(total);
            }
            // Let waiting requests in between batches.
            tokio::task::yield_now().await;
        }
    }

    /// One retention pass: decisions older than `retention` (zero keeps them) and expired
    /// idempotency records; then the row counts are exported.
    pub async fn prune(&self, retention: Duration) -> Result<Pruned, StorageError> {
        let now = now_ms();
        let decisions = if retention.is_zero() {
            0
        } else {
            let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
            self.prune_all(PRUNE_DECISIONS, now.saturating_sub(retention_ms))
                .await?
        };
        let idempotency_keys = self.prune_all(PRUNE_KEYS, now).await?;
        for (table, pruned) in [
            ("decisions", decisions),
            ("idempotency_keys", idempotency_keys),
        ] {
            METRICS
                .storage_pruned
                .with_label_values(&[table])
                .inc_by(pruned);
        }
        for table in TABLES {
            let row = query(format!("SELECT COUNT(*) AS n FROM {table}"))
                .fetch_one(&self.db)
                .await?;
            METRICS
                .storage_rows
                .with_label_values(&[table])
                .set(row.try_get("n")?);
        }
        Ok(Pruned {
            decisions,
            idempotency_keys,
        })
    }
}

/// Prunes every `interval` (zero: never), for as long as the process runs.
pub fn spawn(store: Store, retention: Duration, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        loop {
            match store.prune(retention).await {
                Ok(pruned) if pruned != Pruned::default() => {
                    tracing::info!(?pruned, "retention pruned the database");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = ?error, "retention could not prune; retrying later")
                }
            }
            tokio::time::sleep(interval).await;
        }
    });
}
