//! Phase 7, **record**: write the decision and its outcome to the decision log. Built from
//! typed values that hold no secret, so a password or token cannot reach the log.
//! [`crate::service::drive`] calls it once per request, on every exit.
//!
//! A request that changed something (a settled reservation, a deletion, a key to replay)
//! commits its decision in the same transaction as that change: one durable commit, and never
//! one without the other. A request that changed nothing (a dry-run, a refusal) has its
//! decision written in the background ([`crate::storage::log`]) and waits for no commit.

use std::sync::Arc;
use std::time::Instant;

use super::evaluate::Decision;
use crate::error::Coded;
use crate::storage::Store;
use crate::storage::decisions::{Action, DecisionRecord, Outcome};
use crate::storage::ledger::{Cost, Finish};

/// One request's decision-log entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub action: Action,
    pub outcome: Outcome,
    pub request_id: String,
    pub subject: String,
    pub team: String,
    pub target: String,
    pub size: String,
    /// The policy's decision, when policy was asked (creates and dry-runs).
    pub decision: Option<Arc<Decision>>,
    /// The policy in force, when no decision carries it.
    pub policy_revision: String,
    pub quota_before: Option<Cost>,
    pub quota_after: Option<Cost>,
    pub upstream_status: Option<u16>,
    /// The problem code answered, or the cloud's own error code.
    pub error_code: Option<String>,
    pub instance_id: Option<String>,
    pub job_id: Option<String>,
    /// The exception request the entry belongs to.
    pub exception_id: Option<String>,
    pub started: Instant,
}

impl Entry {
    /// An entry with the outcome still to fill in.
    pub fn new(action: Action, request_id: &str, subject: &str, started: Instant) -> Self {
        Self {
            action,
            outcome: Outcome::Failed,
            request_id: request_id.to_owned(),
            subject: subject.to_owned(),
            team: String::new(),
            target: String::new(),
            size: String::new(),
            decision: None,
            policy_revision: String::new(),
            quota_before: None,
            quota_after: None,
            upstream_status: None,
            error_code: None,
            instance_id: None,
            job_id: None,
            exception_id: None,
            started,
        }
    }

    /// The code a refusal answered with.
    pub fn refused(mut self, outcome: Outcome, error: &impl Coded) -> Self {
        self.outcome = outcome;
        self.error_code = Some(error.code().as_str().to_owned());
        self
    }
}

/// Writes the request's decision, with its last change when it made one. A failure is
/// logged, not returned: the caller's request has already had its effect and must still get
/// its answer; a reservation left unsettled is resolved by reconciliation.
pub async fn record(store: &Store, entry: Option<Entry>, finish: Option<Finish>) {
    let decision = entry.map(into_record);
    if let Some(decision) = &decision {
        store.stream_decision(decision);
    }
    let Some(mut finish) = finish else {
        if let Some(decision) = decision {
            store.log_decision(decision);
        }
        return;
    };
    finish.decision.clone_from(&decision);
    match store.finish(finish).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(
                "the reservation had moved on before this request settled it; reconciliation owns it"
            );
        }
        Err(error) => {
            tracing::error!(error = ?error, "writing the request's outcome failed; reconciliation will resolve its reservation");
            if let Some(decision) = decision {
                store.log_decision(decision);
            }
        }
    }
}

/// The record of `entry`, counted in the decisions metric.
pub(crate) fn into_record(entry: Entry) -> DecisionRecord {
    let record = record_of(entry);
    count(&record);
    record
}

/// Counts a decision made, by action and outcome.
pub(crate) fn count(record: &DecisionRecord) {
    crate::metrics::METRICS
        .decisions
        .with_label_values(&[record.action.as_str(), record.outcome.as_str()])
        .inc();
}

/// The record of `entry`, not yet counted: for a step that may still turn out refused.
pub(crate) fn record_of(entry: Entry) -> DecisionRecord {
    let now = chrono::Utc::now();
    let rules = entry.decision.as_ref().map_or(&[][..], |d| &d.rules[..]);
    let rules = serde_json::value::to_raw_value(rules)
        .unwrap_or_else(|_| unreachable!("rule outcomes serialize: strings, booleans, enums"));
    let (decision_id, policy_revision) = match entry.decision {
        Some(decision) => (
            Some(decision.decision_id.clone()),
            decision.policy_revision.clone(),
        ),
        None => (None, entry.policy_revision),
    };
    DecisionRecord {
        // Time-ordered, so the log's primary key grows at its right edge.
        id: uuid::Uuid::now_v7().to_string(),
        at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        at_ms: now.timestamp_millis(),
        request_id: entry.request_id,
        decision_id,
        action: entry.action,
        subject: entry.subject,
        team: Some(entry.team),
        target: Some(entry.target),
        size: Some(entry.size),
        outcome: entry.outcome,
        rules,
        policy_revision: Some(policy_revision),
        quota_before: entry.quota_before,
        quota_after: entry.quota_after,
        upstream_status: entry.upstream_status,
        error_code: entry.error_code,
        instance_id: entry.instance_id,
        job_id: entry.job_id,
        latency_ms: i64::try_from(entry.started.elapsed().as_millis()).unwrap_or(i64::MAX),
        exception_id: entry.exception_id,
    }
}
