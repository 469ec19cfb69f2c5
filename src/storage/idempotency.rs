//! `Idempotency-Key` records, scoped to the employee who sent the key, in the shape of
//! zero-to-production's `idempotency/persistence.rs`: [`Store::try_processing`] says what to do
//! ([`NextAction`]), [`Store::save_response`] stores the answer to replay.
//!
//! The first request with a key claims it (`in_flight`); its outcome is then either stored
//! (`done`, replayed to later requests with the same key and body) or forgotten, so a retry
//! runs again. A record expires after the configured time.

use sqlx::Row;

use super::{StorageError, Store, now_ms};

/// A request's key: who sent it, the key, and what identifies "the same request".
#[derive(Debug, Clone)]
pub struct KeyedRequest<'a> {
    pub subject: &'a str,
    pub key: &'a str,
    pub fingerprint: &'a str,
}

/// An answer stored for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedResponse {
    pub status: u16,
    pub body: String,
    /// The reservation the answer was about, to look for news on replay.
    pub reservation_id: Option<String>,
}

/// What to do with a request that carries a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextAction {
    /// The key is new (or its record expired): this request owns it now.
    StartProcessing,
    /// The same key and body already finished: answer this again.
    ReturnSaved(SavedResponse),
}

/// Why a request with a key cannot run.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    InFlight,
    #[error("this Idempotency-Key was already used with a different request body")]
    Reused,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for IdempotencyError {
    fn from(error: sqlx::Error) -> Self {
        Self::Storage(error.into())
    }
}

impl Store {
    /// Claims the key, or says why this request cannot run, or what to answer instead.
    pub async fn try_processing(
        &self,
        request: &KeyedRequest<'_>,
        ttl_ms: i64,
    ) -> Result<NextAction, IdempotencyError> {
        let KeyedRequest {
            subject,
            key,
            fingerprint: request_hash,
        } = *request;
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
            return Ok(NextAction::StartProcessing);
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
            return Err(IdempotencyError::InFlight);
        };
        let hash: String = row.try_get("request_hash")?;
        let state: String = row.try_get("state")?;
        if hash != request_hash {
            return Err(IdempotencyError::Reused);
        }
        if state != "done" {
            return Err(IdempotencyError::InFlight);
        }
        let status: i64 = row.try_get("status")?;
        Ok(NextAction::ReturnSaved(SavedResponse {
            status: u16::try_from(status)
                .map_err(|e| StorageError::Corrupt(format!("status: {e}")))?,
            body: row.try_get("response")?,
            reservation_id: row.try_get("reservation_id")?,
        }))
    }

    /// Stores the answer to replay for the key.
    pub async fn save_response(
        &self,
        request: &KeyedRequest<'_>,
        response: &SavedResponse,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', status = $3, response = $4, reservation_id = $5 \
             WHERE subject = $1 AND idem_key = $2",
        )
        .bind(request.subject)
        .bind(request.key)
        .bind(i64::from(response.status))
        .bind(&response.body)
        .bind(&response.reservation_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the key, so a retry with it runs again.
    pub async fn forget_key(&self, request: &KeyedRequest<'_>) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE subject = $1 AND idem_key = $2")
            .bind(request.subject)
            .bind(request.key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
