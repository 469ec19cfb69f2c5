//! The decision log: who asked for what, what policy and quota said, what the cloud answered.
//! Rows are built from typed values that hold no secret, so no password, token or
//! `Authorization` header can be written here.

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::ledger::Cost;
use super::sql::{Conn, Row, Value, query};
use super::writer::WriteOp;
use super::{StorageError, Store, stored_enum};

stored_enum! {
    /// What was asked.
    pub enum Action {
        Create = "create",
        DryRun = "dry_run",
        Delete = "delete",
        /// An exception to a denial was asked for.
        Request = "request",
        /// An approver approved an exception request (its create is a `create` entry).
        Approve = "approve",
        /// An approver rejected an exception request.
        Reject = "reject",
        /// Its requester withdrew an exception request.
        Withdraw = "withdraw",
        /// An exception request was neither approved nor rejected in time, or an instance's
        /// lease ended and the gateway deleted it.
        Expire = "expire",
        /// An instance's lease was moved.
        Extend = "extend",
    }
}

stored_enum! {
    /// How it ended.
    pub enum Outcome {
        /// A dry-run policy and quota would admit.
        Allowed = "allowed",
        /// Refused by policy or quota; nothing was sent.
        Denied = "denied",
        /// The cloud accepted the create.
        Created = "created",
        /// The cloud refused or failed the call, or the gateway could not make it.
        Failed = "failed",
        /// The outcome is unknown; reconciliation decides.
        Pending = "pending",
        /// The cloud accepted the deletion.
        Deleting = "deleting",
        /// The cloud no longer knew the instance.
        Deleted = "deleted",
        /// An exception request is waiting for an approver.
        Requested = "requested",
        /// An exception request was approved; its create follows.
        Approved = "approved",
        /// An exception request was rejected.
        Rejected = "rejected",
        /// An exception request was withdrawn.
        Withdrawn = "withdrawn",
        /// An exception request expired.
        Expired = "expired",
        /// A lease was extended.
        Extended = "extended",
    }
}

/// One logged decision.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecisionRecord {
    pub id: String,
    /// When it was decided (RFC 3339, UTC).
    pub at: String,
    #[serde(skip)]
    pub at_ms: i64,
    pub request_id: String,
    pub decision_id: Option<String>,
    pub action: Action,
    pub subject: String,
    pub team: Option<String>,
    pub target: Option<String>,
    pub size: Option<String>,
    pub outcome: Outcome,
    /// Every rule's outcome, as in the decision.
    // Raw JSON: serialized once, when the decision is made.
    #[schema(value_type = Vec<Object>)]
    pub rules: Box<RawValue>,
    pub policy_revision: Option<String>,
    pub quota_before: Option<Cost>,
    pub quota_after: Option<Cost>,
    pub upstream_status: Option<u16>,
    /// The problem code answered, or the cloud's error code.
    pub error_code: Option<String>,
    pub instance_id: Option<String>,
    pub job_id: Option<String>,
    pub latency_ms: i64,
    /// The exception request this decision belongs to: its request, approval, rejection,
    /// withdrawal or expiry, and the create an approval ran.
    pub exception_id: Option<String>,
}

/// Filters of `GET /v1/admin/decisions`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DecisionQuery {
    #[serde(default, deserialize_with = "crate::http::extract::empty_as_none")]
    pub team: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::empty_as_none")]
    pub subject: Option<String>,
    /// e.g. `denied`.
    #[serde(default, deserialize_with = "crate::http::extract::empty_as_none")]
    pub outcome: Option<String>,
    /// Only decisions at or after this time (RFC 3339).
    #[serde(default)]
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only decisions before this time (RFC 3339).
    #[serde(default)]
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_page` of the previous answer.
    #[serde(default)]
    #[param(pattern = r"^[0-9]{1,18}\.[!-~]{1,255}$")]
    pub page: Option<String>,
}

/// A page of the decision log, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecisionPage {
    pub decisions: Vec<DecisionRecord>,
    /// Pass as `page` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
}

/// Filters of `GET /v1/admin/decisions/export`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Only decisions at or after this time (RFC 3339).
    #[serde(default)]
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only decisions before this time (RFC 3339).
    #[serde(default)]
    #[param(format = DateTime)]
    pub until: Option<String>,
}

/// A validated query: times in milliseconds, the cursor decoded.
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    pub team: Option<String>,
    pub subject: Option<String>,
    pub outcome: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: u32,
    /// Rows strictly older than this `(at_ms, id)`.
    pub before: Option<(i64, String)>,
}

fn json<T: Serialize>(value: &T) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|e| StorageError::Corrupt(e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(
    text: Option<String>,
    column: &str,
) -> Result<Option<T>, StorageError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StorageError::Corrupt(format!("{column}: {e}")))
    })
    .transpose()
}

const DECISION_COLUMNS: &str = "id, at, request_id, decision_id, action, subject, team, target, size, \
    outcome, rules, policy_revision, quota_before, quota_after, upstream_status, error_code, \
    instance_id, job_id, latency_ms, exception_id";
/// Columns per row: rows per statement stay well inside either engine's parameter limit.
const DECISION_WIDTH: usize = 20;
const ROWS_PER_STATEMENT: usize = 4;

/// The `INSERT` of 1 to [`ROWS_PER_STATEMENT`] rows, built once.
static INSERT_DECISIONS: LazyLock<Vec<String>> = LazyLock::new(|| {
    (1..=ROWS_PER_STATEMENT)
        .map(|rows| {
            let rows: Vec<String> = (0..rows)
                .map(|row| {
                    let slots: Vec<String> = (1..=DECISION_WIDTH)
                        .map(|column| format!("${}", row * DECISION_WIDTH + column))
                        .collect();
                    format!("({})", slots.join(", "))
                })
                .collect();
            format!(
                "INSERT INTO decisions ({DECISION_COLUMNS}) VALUES {}",
                rows.join(", ")
            )
        })
        .collect()
});

/// Inserts `records`: on PostgreSQL a few rows per statement, to save round trips; on SQLite,
/// in process, one per statement, which needs no statement journal.
pub(super) async fn insert_decisions(
    connection: &mut Conn<'_, '_>,
    records: &[DecisionRecord],
) -> Result<(), StorageError> {
    let per_statement = match connection {
        Conn::Sqlite(_) => 1,
        Conn::Any(_) => ROWS_PER_STATEMENT,
    };
    for chunk in records.chunks(per_statement) {
        let mut statement = query(INSERT_DECISIONS[chunk.len() - 1].as_str());
        for record in chunk {
            statement = statement
                .bind(&record.id)
                .bind(record.at_ms)
                .bind(&record.request_id)
                .bind(&record.decision_id)
                .bind(record.action.as_str())
                .bind(&record.subject)
                .bind(&record.team)
                .bind(&record.target)
                .bind(&record.size)
                .bind(record.outcome.as_str())
                .bind(record.rules.get())
                .bind(&record.policy_revision)
                .bind(record.quota_before.as_ref().map(json).transpose()?)
                .bind(record.quota_after.as_ref().map(json).transpose()?)
                .bind(record.upstream_status.map(i64::from))
                .bind(&record.error_code)
                .bind(&record.instance_id)
                .bind(&record.job_id)
                .bind(record.latency_ms)
                .bind(&record.exception_id);
        }
        statement.execute(&mut *connection).await?;
    }
    Ok(())
}

/// Buffered entries, written together by the decision log's background writer.
#[derive(Debug)]
pub(super) struct AppendDecisions(pub(super) Arc<Vec<DecisionRecord>>);

impl WriteOp for AppendDecisions {
    type Output = ();

    async fn apply(&self, connection: &mut Conn<'_, '_>) -> Result<(), StorageError> {
        insert_decisions(connection, &self.0).await
    }
}

impl Store {
    /// Logs the decision of a request that changed nothing, in the background: no commit on
    /// the request's path (see [`super::log`] for the loss window).
    pub fn log_decision(&self, record: DecisionRecord) {
        self.log.append(record);
    }

    /// Decisions matching `filter`, newest first, one page plus whether more follow. Flushes
    /// the background log first, so every decision made before the call is in the answer.
    pub async fn decisions(
        &self,
        filter: &DecisionFilter,
    ) -> Result<(Vec<DecisionRecord>, bool), StorageError> {
        self.log.flush().await;
        let mut conditions = Vec::new();
        let mut binds = Vec::new();
        let slot = |bind: Value, binds: &mut Vec<Value>| {
            binds.push(bind);
            format!("${}", binds.len())
        };
        for (column, value) in [
            ("team", &filter.team),
            ("subject", &filter.subject),
            ("outcome", &filter.outcome),
        ] {
            if let Some(value) = value {
                conditions.push(format!(
                    "{column} = {}",
                    slot(Value::from(value.clone()), &mut binds)
                ));
            }
        }
        if let Some(since) = filter.since_ms {
            conditions.push(format!("at >= {}", slot(Value::from(since), &mut binds)));
        }
        if let Some(until) = filter.until_ms {
            conditions.push(format!("at < {}", slot(Value::from(until), &mut binds)));
        }
        if let Some((at, id)) = &filter.before {
            let at = slot(Value::from(*at), &mut binds);
            let id = slot(Value::from(id.clone()), &mut binds);
            conditions.push(format!("(at < {at} OR (at = {at} AND id < {id}))"));
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {DECISION_COLUMNS} FROM decisions {where_clause} ORDER BY at DESC, id DESC LIMIT {}",
            filter.limit + 1
        );
        let mut statement = query(sql);
        for bind in binds {
            statement = statement.bind(bind);
        }
        let rows = statement.fetch_all(&self.db).await?;
        let more = rows.len() > filter.limit as usize;
        let records = rows
            .iter()
            .take(filter.limit as usize)
            .map(decision)
            .collect::<Result<_, _>>()?;
        Ok((records, more))
    }
}

fn decision(row: &Row) -> Result<DecisionRecord, StorageError> {
    let at_ms: i64 = row.try_get("at")?;
    let upstream_status: Option<i64> = row.try_get("upstream_status")?;
    Ok(DecisionRecord {
        id: row.try_get("id")?,
        at: chrono::DateTime::from_timestamp_millis(at_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default(),
        at_ms,
        request_id: row.try_get("request_id")?,
        decision_id: row.try_get("decision_id")?,
        action: Action::parse(&row.try_get::<String>("action")?)?,
        subject: row.try_get("subject")?,
        team: row.try_get("team")?,
        target: row.try_get("target")?,
        size: row.try_get("size")?,
        outcome: Outcome::parse(&row.try_get::<String>("outcome")?)?,
        rules: RawValue::from_string(row.try_get("rules")?)
            .map_err(|e| StorageError::Corrupt(format!("rules: {e}")))?,
        policy_revision: row.try_get("policy_revision")?,
        quota_before: parse(row.try_get("quota_before")?, "quota_before")?,
        quota_after: parse(row.try_get("quota_after")?, "quota_after")?,
        upstream_status: upstream_status.and_then(|s| u16::try_from(s).ok()),
        error_code: row.try_get("error_code")?,
        instance_id: row.try_get("instance_id")?,
        job_id: row.try_get("job_id")?,
        latency_ms: row.try_get("latency_ms")?,
        exception_id: row.try_get("exception_id")?,
    })
}
