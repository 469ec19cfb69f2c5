//! `Idempotency-Key` records, scoped to the employee who sent the key, in the shape of
//! zero-to-production's `idempotency/persistence.rs`, with its writes folded into the
//! create's own transactions so a keyed create pays no extra commit:
//! - [`Store::check_key`] reads (no write) what a request should do ([`NextAction`]);
//! - the key is claimed (`in_flight`) in the reservation's transaction
//!   ([`super::ledger::Reserve`]), atomically, across replicas too;
//! - its outcome (an answer to replay, or forgotten so a retry runs again) is written in the
//!   request's last transaction ([`super::ledger::Finish`]).
//!
//! A record expires after the configured time.

use super::sql::{Conn, Target, query};
use super::{StorageError, Store, now_ms};

/// A request's key: who sent it, the key, and what identifies "the same request".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRequest {
    pub subject: String,
    pub key: String,
    pub fingerprint: String,
}

/// A key to claim, with how long its record lives.
#[derive(Debug, Clone)]
pub struct Claim {
    pub request: KeyedRequest,
    pub ttl_ms: i64,
    /// The reservation the claim is made for.
    pub reservation_id: String,
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
    /// The key is free (new, or its record expired): run the request.
    StartProcessing,
    /// The same key and body already finished: answer this again.
    ReturnSaved(SavedResponse),
}

/// Why a key cannot be claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyConflict {
    InFlight,
    Reused,
    /// The same request finished meanwhile.
    Saved(SavedResponse),
}

/// What becomes of a claimed key when its request ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Replay this to later requests with the key.
    Save(SavedResponse),
    /// The request had no effect: a retry runs again.
    Forget,
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

/// The live record of a key, judged against `request`; `None` when there is none.
async fn existing(
    connection: impl Target,
    request: &KeyedRequest,
    now: i64,
) -> Result<Option<KeyConflict>, StorageError> {
    let Some(row) = query(
        "SELECT request_hash, state, status, response, reservation_id FROM idempotency_keys \
         WHERE subject = $1 AND idem_key = $2 AND expires_at > $3",
    )
    .bind(&request.subject)
    .bind(&request.key)
    .bind(now)
    .fetch_optional(connection)
    .await?
    else {
        return Ok(None);
    };
    let hash: String = row.try_get("request_hash")?;
    let state: String = row.try_get("state")?;
    if hash != request.fingerprint {
        return Ok(Some(KeyConflict::Reused));
    }
    if state != "done" {
        return Ok(Some(KeyConflict::InFlight));
    }
    let status: i64 = row.try_get("status")?;
    Ok(Some(KeyConflict::Saved(SavedResponse {
        status: u16::try_from(status).map_err(|e| StorageError::Corrupt(format!("status: {e}")))?,
        body: row.try_get("response")?,
        reservation_id: row.try_get("reservation_id")?,
    })))
}

/// Claims the key inside the caller's transaction, or says why it cannot be.
pub(super) async fn claim(
    tx: &mut Conn<'_, '_>,
    claim: &Claim,
) -> Result<Result<(), KeyConflict>, StorageError> {
    let request = &claim.request;
    let now = now_ms();
    // An expired record is as good as none.
    query("DELETE FROM idempotency_keys WHERE subject = $1 AND idem_key = $2 AND expires_at <= $3")
        .bind(&request.subject)
        .bind(&request.key)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    // The primary key makes the claim atomic, across replicas too.
    let inserted = query(
        "INSERT INTO idempotency_keys (subject, idem_key, request_hash, state, created_at, expires_at, reservation_id) \
         VALUES ($1, $2, $3, 'in_flight', $4, $5, $6) ON CONFLICT (subject, idem_key) DO NOTHING",
    )
    .bind(&request.subject)
    .bind(&request.key)
    .bind(&request.fingerprint)
    .bind(now)
    .bind(now + claim.ttl_ms)
    .bind(&claim.reservation_id)
    .execute(&mut *tx)
    .await?;
    if inserted == 1 {
        return Ok(Ok(()));
    }
    Ok(Err(existing(&mut *tx, request, now)
        .await?
        .unwrap_or(KeyConflict::InFlight)))
}

/// Writes a claimed key's outcome inside the caller's transaction.
pub(super) async fn settle(
    tx: &mut Conn<'_, '_>,
    request: &KeyedRequest,
    outcome: &KeyOutcome,
) -> Result<(), StorageError> {
    match outcome {
        KeyOutcome::Save(response) => query(
            "UPDATE idempotency_keys SET state = 'done', status = $3, response = $4, reservation_id = $5 \
             WHERE subject = $1 AND idem_key = $2",
        )
        .bind(&request.subject)
        .bind(&request.key)
        .bind(i64::from(response.status))
        .bind(&response.body)
        .bind(&response.reservation_id)
        .execute(&mut *tx)
        .await
        .map(drop)?,
        KeyOutcome::Forget => forget(tx, request).await?,
    }
    Ok(())
}

/// Forgets the key inside the caller's transaction, so a retry with it runs again.
pub(super) async fn forget(
    tx: &mut Conn<'_, '_>,
    request: &KeyedRequest,
) -> Result<(), StorageError> {
    query("DELETE FROM idempotency_keys WHERE subject = $1 AND idem_key = $2")
        .bind(&request.subject)
        .bind(&request.key)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

impl Store {
    /// What a request with this key should do, by reading alone; the claim is made with the
    /// reservation, which settles races between two requests with the same key.
    pub async fn check_key(&self, request: &KeyedRequest) -> Result<NextAction, IdempotencyError> {
        match existing(&self.db, request, now_ms()).await? {
            None => Ok(NextAction::StartProcessing),
            Some(KeyConflict::Saved(saved)) => Ok(NextAction::ReturnSaved(saved)),
            Some(KeyConflict::InFlight) => Err(IdempotencyError::InFlight),
            Some(KeyConflict::Reused) => Err(IdempotencyError::Reused),
        }
    }
}
