//! `Idempotency-Key` records, scoped to the employee who sent the key.
//!
//! The first request with a key claims it (`in_flight`); its outcome is then either stored
//! (`done`, replayed to later requests with the same key and body) or forgotten, so a retry
//! runs again. A record expires after the configured time.

use sqlx::Row;

use super::{StorageError, Store, now_ms};

/// What the store knows about a key when a request arrives with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or its record expired): this request owns it now.
    Claimed,
    /// The same key and body already finished: replay this.
    Replay {
        status: u16,
        response: String,
        reservation_id: Option<String>,
    },
    /// The same key is being processed by another request.
    InFlight,
    /// The key was used with a different body.
    Mismatch,
}

impl Store {
    /// Claims `key` for `subject`, or says why it cannot be claimed.
    pub async fn claim_idempotency_key(
        &self,
        subject: &str,
        key: &str,
        request_hash: &str,
        ttl_ms: i64,
    ) -> Result<Claim, StorageError> {
        let now = now_ms();
        // An expired record is as good as none.
        sqlx::query("DELETE FROM idempotency_keys WHERE subject = $1 AND idem_key = $2 AND expires_at <= $3")
            .bind(subject)
            .bind(key)
            .bind(now)
            .execute(&self.pool)
            .await?;
        // The primary key makes the claim atomic, across replicas too.
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (subject, idem_key, request_hash, state, created_at, expires_at) \
             VALUES ($1, $2, $3, 'in_flight', $4, $5) ON CONFLICT (subject, idem_key) DO NOTHING",
        )
        .bind(subject)
        .bind(key)
        .bind(request_hash)
        .bind(now)
        .bind(now + ttl_ms)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Claimed);
        }
        let Some(row) = sqlx::query(
            "SELECT request_hash, state, status, response, reservation_id FROM idempotency_keys \
             WHERE subject = $1 AND idem_key = $2",
        )
        .bind(subject)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        else {
            // Deleted between our insert and read (it expired): the caller may simply retry.
            return Ok(Claim::InFlight);
        };
        let hash: String = row.try_get("request_hash")?;
        let state: String = row.try_get("state")?;
        if hash != request_hash {
            return Ok(Claim::Mismatch);
        }
        if state != "done" {
            return Ok(Claim::InFlight);
        }
        let status: i64 = row.try_get("status")?;
        Ok(Claim::Replay {
            status: u16::try_from(status)
                .map_err(|e| StorageError::Corrupt(format!("status: {e}")))?,
            response: row.try_get("response")?,
            reservation_id: row.try_get("reservation_id")?,
        })
    }

    /// Stores the outcome to replay for the key.
    pub async fn finish_idempotency_key(
        &self,
        subject: &str,
        key: &str,
        status: u16,
        response: &str,
        reservation_id: Option<&str>,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', status = $3, response = $4, reservation_id = $5 \
             WHERE subject = $1 AND idem_key = $2",
        )
        .bind(subject)
        .bind(key)
        .bind(i64::from(status))
        .bind(response)
        .bind(reservation_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the key, so a retry with it runs again.
    pub async fn forget_idempotency_key(
        &self,
        subject: &str,
        key: &str,
    ) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE subject = $1 AND idem_key = $2")
            .bind(subject)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops expired records; returns how many.
    pub async fn purge_idempotency_keys(&self) -> Result<u64, StorageError> {
        let result = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}
