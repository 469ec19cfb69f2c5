//! Exception requests: a denied create asked for with a justification, and what became of it.
//!
//! Every move of a request is a guarded transition (`WHERE state = …`) written through the
//! group writer together with its decision-log entry, so two approvers, or two replicas
//! expiring the same requests, never both move one request: the second finds it moved on.

use std::collections::BTreeSet;

use super::decisions::{Action, DecisionRecord, Outcome, insert_decisions};
use super::sql::{Conn, Row, Value, query};
use super::writer::WriteOp;
use super::{StorageError, Store, now_ms, stored_enum};

stored_enum! {
    /// Where an exception request stands.
    pub enum RequestState {
        /// Waiting for an approver.
        Pending = "pending",
        /// Approved; its create is running, or its outcome waits for reconciliation.
        Approved = "approved",
        /// Approved, and the create succeeded: `instance_id` names the instance.
        Created = "created",
        /// Approved, but the create (or extension) was refused or failed: `failure` says why.
        Failed = "failed",
        /// Approved, and the lease of `instance_id` was extended.
        Extended = "extended",
        /// An approver said no.
        Rejected = "rejected",
        /// Its requester took it back.
        Withdrawn = "withdrawn",
        /// Nobody approved or rejected it in time.
        Expired = "expired",
    }
}

/// One stored request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionRecord {
    pub id: String,
    pub team: String,
    /// Who asked.
    pub subject: String,
    pub state: RequestState,
    /// The create as asked, JSON, without a password.
    pub body: String,
    /// The failed rules it asks to waive.
    pub waives: Vec<String>,
    pub justification: String,
    /// The policy that denied the create it was asked from.
    pub policy_revision: String,
    /// The denial's decision.
    pub decision_id: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub comment: Option<String>,
    pub instance_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure: Option<String>,
    /// A generated root password is waiting for its requester to read it.
    pub password_waiting: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
}

const COLUMNS: &str = "id, team, subject, state, body, waives, justification, policy_revision, \
    decision_id, decided_by, decided_at, comment, instance_id, failure_code, failure, \
    CAST(CASE WHEN sealed_password IS NULL THEN 0 ELSE 1 END AS BIGINT) AS password_waiting, created_at, updated_at, expires_at";

fn record(row: &Row) -> Result<ExceptionRecord, StorageError> {
    let waives: String = row.try_get("waives")?;
    let password_waiting: i64 = row.try_get("password_waiting")?;
    Ok(ExceptionRecord {
        id: row.try_get("id")?,
        team: row.try_get("team")?,
        subject: row.try_get("subject")?,
        state: RequestState::parse(&row.try_get::<String>("state")?)?,
        body: row.try_get("body")?,
        waives: serde_json::from_str(&waives)
            .map_err(|e| StorageError::Corrupt(format!("waives: {e}")))?,
        justification: row.try_get("justification")?,
        policy_revision: row.try_get("policy_revision")?,
        decision_id: row.try_get("decision_id")?,
        decided_by: row.try_get("decided_by")?,
        decided_at: row.try_get("decided_at")?,
        comment: row.try_get("comment")?,
        instance_id: row.try_get("instance_id")?,
        failure_code: row.try_get("failure_code")?,
        failure: row.try_get("failure")?,
        password_waiting: password_waiting != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// A new request and the decision that logs it, written together.
#[derive(Debug, Clone)]
pub struct InsertRequest {
    pub request: ExceptionRecord,
    pub decision: DecisionRecord,
}

impl WriteOp for InsertRequest {
    type Output = ();

    async fn apply(&self, tx: &mut Conn<'_, '_>) -> Result<(), StorageError> {
        let r = &self.request;
        let waives =
            serde_json::to_string(&r.waives).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        query(
            "INSERT INTO exception_requests (id, team, subject, state, body, waives, justification, \
             policy_revision, decision_id, created_at, updated_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
        )
        .bind(&r.id)
        .bind(&r.team)
        .bind(&r.subject)
        .bind(r.state.as_str())
        .bind(&r.body)
        .bind(waives)
        .bind(&r.justification)
        .bind(&r.policy_revision)
        .bind(&r.decision_id)
        .bind(r.created_at)
        .bind(r.expires_at)
        .execute(&mut *tx)
        .await?;
        insert_decisions(tx, std::slice::from_ref(&self.decision)).await
    }
}

/// A request moving from `from` to `to`, with what the move records. Only a request still in
/// `from` (and, for `only_before`, not yet expired at that time) moves.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    pub id: String,
    pub from: RequestState,
    pub to: RequestState,
    /// Refuses the move once the request's `expires_at` is at or before this time.
    pub only_before: Option<i64>,
    /// Set when given, kept otherwise.
    pub decided_by: Option<String>,
    pub comment: Option<String>,
    pub instance_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure: Option<String>,
    pub sealed_password: Option<String>,
    /// Drops the sealed password: the instance it was for was never created.
    pub clear_password: bool,
    /// Logged when the move is made.
    pub decision: Option<DecisionRecord>,
}

impl MoveRequest {
    pub fn new(id: &str, from: RequestState, to: RequestState) -> Self {
        Self {
            id: id.to_owned(),
            from,
            to,
            only_before: None,
            decided_by: None,
            comment: None,
            instance_id: None,
            failure_code: None,
            failure: None,
            sealed_password: None,
            clear_password: false,
            decision: None,
        }
    }
}

impl WriteOp for MoveRequest {
    type Output = bool;

    async fn apply(&self, tx: &mut Conn<'_, '_>) -> Result<bool, StorageError> {
        let now = now_ms();
        let decided = self.decided_by.is_some();
        let moved = query(
            "UPDATE exception_requests SET state = $3, updated_at = $4, \
             decided_by = COALESCE($5, decided_by), decided_at = CASE WHEN $6 = 1 THEN $4 ELSE decided_at END, \
             comment = COALESCE($7, comment), instance_id = COALESCE($8, instance_id), \
             failure_code = COALESCE($9, failure_code), failure = COALESCE($10, failure), \
             sealed_password = CASE WHEN $13 = 1 THEN NULL ELSE COALESCE($11, sealed_password) END \
             WHERE id = $1 AND state = $2 AND ($12 = 0 OR expires_at > $12)",
        )
        .bind(&self.id)
        .bind(self.from.as_str())
        .bind(self.to.as_str())
        .bind(now)
        .bind(&self.decided_by)
        .bind(i64::from(decided))
        .bind(&self.comment)
        .bind(&self.instance_id)
        .bind(&self.failure_code)
        .bind(&self.failure)
        .bind(&self.sealed_password)
        .bind(self.only_before.unwrap_or(0))
        .bind(i64::from(self.clear_password))
        .execute(&mut *tx)
        .await?
            == 1;
        if moved && let Some(decision) = &self.decision {
            insert_decisions(tx, std::slice::from_ref(decision)).await?;
        }
        Ok(moved)
    }
}

/// Clears a sealed password as its requester reads it: only the reader that clears it shows
/// it, so it is shown once however many read at the same time.
#[derive(Debug, Clone)]
struct ClearPassword {
    id: String,
    sealed: String,
}

impl WriteOp for ClearPassword {
    type Output = bool;

    async fn apply(&self, tx: &mut Conn<'_, '_>) -> Result<bool, StorageError> {
        Ok(query(
            "UPDATE exception_requests SET sealed_password = NULL \
             WHERE id = $1 AND sealed_password = $2",
        )
        .bind(&self.id)
        .bind(&self.sealed)
        .execute(&mut *tx)
        .await?
            == 1)
    }
}

/// Expires every pending request whose time ran out, logging each with the entry `log` makes
/// of it.
struct ExpireDue {
    now: i64,
    log: fn(&ExceptionRecord) -> DecisionRecord,
}

impl WriteOp for ExpireDue {
    type Output = Vec<DecisionRecord>;

    async fn apply(&self, tx: &mut Conn<'_, '_>) -> Result<Vec<DecisionRecord>, StorageError> {
        let rows = query(format!(
            "UPDATE exception_requests SET state = $1, updated_at = $2 \
             WHERE state = $3 AND expires_at <= $2 RETURNING {COLUMNS}"
        ))
        .bind(RequestState::Expired.as_str())
        .bind(self.now)
        .bind(RequestState::Pending.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let logged: Vec<DecisionRecord> = rows
            .iter()
            .map(|row| record(row).map(|r| (self.log)(&r)))
            .collect::<Result<_, _>>()?;
        insert_decisions(tx, &logged).await?;
        Ok(logged)
    }
}

/// Which requests a listing covers.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Requests of these teams, plus the `subject`'s own; `None`: every team.
    pub teams: Option<BTreeSet<String>>,
    /// The caller, whose own requests are always included.
    pub subject: String,
    pub state: Option<RequestState>,
    pub limit: u32,
    /// Rows strictly older than this `(created_at, id)`.
    pub before: Option<(i64, String)>,
}

impl Store {
    /// Writes a new request with its decision.
    pub async fn insert_request(&self, insert: InsertRequest) -> Result<(), StorageError> {
        self.check_file()?;
        self.writer.write(insert).await
    }

    /// Moves a request; false when it was not in the expected state (or had expired).
    pub async fn move_request(&self, change: MoveRequest) -> Result<bool, StorageError> {
        self.writer.write(change).await
    }

    /// The sealed password waiting on request `id`, if any.
    pub async fn sealed_password(&self, id: &str) -> Result<Option<String>, StorageError> {
        let row = query("SELECT sealed_password FROM exception_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db)
            .await?;
        Ok(row
            .map(|row| row.try_get::<Option<String>>("sealed_password"))
            .transpose()?
            .flatten())
    }

    /// Clears the password `sealed` waiting on request `id`; false when another read cleared
    /// it first.
    pub async fn clear_password(&self, id: &str, sealed: &str) -> Result<bool, StorageError> {
        self.writer
            .write(ClearPassword {
                id: id.to_owned(),
                sealed: sealed.to_owned(),
            })
            .await
    }

    /// Expires the pending requests whose time ran out by `now`; the entries logged, one per
    /// request this call expired (another replica's sweep may have taken some).
    pub async fn expire_requests(
        &self,
        now: i64,
        log: fn(&ExceptionRecord) -> DecisionRecord,
    ) -> Result<Vec<DecisionRecord>, StorageError> {
        // A read first: a sweep that finds nothing costs no write transaction.
        let due = query(
            "SELECT id FROM exception_requests WHERE state = $1 AND expires_at <= $2 LIMIT 1",
        )
        .bind(RequestState::Pending.as_str())
        .bind(now)
        .fetch_optional(&self.db)
        .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        self.writer.write(ExpireDue { now, log }).await
    }

    pub async fn exception_request(
        &self,
        id: &str,
    ) -> Result<Option<ExceptionRecord>, StorageError> {
        let row = query(format!(
            "SELECT {COLUMNS} FROM exception_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(record).transpose()
    }

    /// Requests matching `filter`, newest first, one page plus whether more follow.
    pub async fn exception_requests(
        &self,
        filter: &RequestFilter,
    ) -> Result<(Vec<ExceptionRecord>, bool), StorageError> {
        let mut binds: Vec<Value> = vec![Value::from(filter.subject.clone())];
        let scope = match &filter.teams {
            None => "1 = 1".to_owned(),
            Some(teams) => {
                let slots: Vec<String> = teams
                    .iter()
                    .map(|team| {
                        binds.push(Value::from(team.clone()));
                        format!("${}", binds.len())
                    })
                    .collect();
                if slots.is_empty() {
                    "subject = $1".to_owned()
                } else {
                    format!("(subject = $1 OR team IN ({}))", slots.join(", "))
                }
            }
        };
        let mut conditions = vec![scope];
        if let Some(state) = filter.state {
            binds.push(Value::from(state.as_str()));
            conditions.push(format!("state = ${}", binds.len()));
        }
        if let Some((at, id)) = &filter.before {
            binds.push(Value::from(*at));
            let at = binds.len();
            binds.push(Value::from(id.clone()));
            conditions.push(format!(
                "(created_at < ${at} OR (created_at = ${at} AND id < ${}))",
                binds.len()
            ));
        }
        let mut statement = query(format!(
            "SELECT {COLUMNS} FROM exception_requests WHERE {} \
             ORDER BY created_at DESC, id DESC LIMIT {}",
            conditions.join(" AND "),
            filter.limit + 1
        ));
        for bind in binds {
            statement = statement.bind(bind);
        }
        let rows = statement.fetch_all(&self.db).await?;
        let more = rows.len() > filter.limit as usize;
        let page = rows
            .iter()
            .take(filter.limit as usize)
            .map(record)
            .collect::<Result<_, _>>()?;
        Ok((page, more))
    }

    /// The requests approved whose approval has not settled them yet.
    pub async fn approved_requests(&self) -> Result<Vec<ExceptionRecord>, StorageError> {
        let rows = query(format!(
            "SELECT {COLUMNS} FROM exception_requests WHERE state = $1"
        ))
        .bind(RequestState::Approved.as_str())
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(record).collect()
    }

    /// Whether the decision log holds the lease extension approved request `id` made: the
    /// extension and its entry are written in one transaction.
    pub async fn extension_logged(&self, id: &str) -> Result<bool, StorageError> {
        let row = query(
            "SELECT id FROM decisions WHERE exception_id = $1 AND action = $2 AND outcome = $3 LIMIT 1",
        )
        .bind(id)
        .bind(Action::Extend.as_str())
        .bind(Outcome::Extended.as_str())
        .fetch_optional(&self.db)
        .await?;
        Ok(row.is_some())
    }

    /// How many requests are pending, by team.
    pub async fn pending_requests(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let rows = query(
            "SELECT team, COUNT(*) AS n FROM exception_requests WHERE state = $1 GROUP BY team",
        )
        .bind(RequestState::Pending.as_str())
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("team")?, row.try_get("n")?)))
            .collect()
    }
}
