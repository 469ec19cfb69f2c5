//! Phase 7, **record**: write the decision and its outcome to the decision log. Built from
//! typed values that hold no secret, so a password or token cannot reach the log.

use std::time::Instant;

use super::evaluate::Decision;
use crate::storage::Store;
use crate::storage::decisions::DecisionRecord;
use crate::storage::ledger::Cost;

/// What happened to one request, for the log.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub outcome: &'static str,
    pub quota_before: Option<Cost>,
    pub quota_after: Option<Cost>,
    pub upstream_status: Option<u16>,
    pub error_code: Option<String>,
    pub instance_id: Option<String>,
    pub job_id: Option<String>,
}

/// The request a decision was made for.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub action: &'static str,
    pub request_id: &'a str,
    pub target: &'a str,
    pub size: &'a str,
    pub started: Instant,
}

/// Appends to the decision log. A failure is logged, not returned: the caller's request has
/// already had its effect and must still get its answer.
pub async fn record(store: &Store, context: Context<'_>, decision: &Decision, outcome: Outcome) {
    crate::metrics::METRICS
        .decisions
        .with_label_values(&[context.action, outcome.outcome])
        .inc();
    let now = chrono::Utc::now();
    let record = DecisionRecord {
        id: uuid::Uuid::new_v4().to_string(),
        at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        at_ms: now.timestamp_millis(),
        request_id: context.request_id.to_owned(),
        decision_id: Some(decision.decision_id.clone()),
        action: context.action.to_owned(),
        subject: decision.subject.clone(),
        team: Some(decision.team.clone()),
        target: Some(context.target.to_owned()),
        size: Some(context.size.to_owned()),
        outcome: outcome.outcome.to_owned(),
        rules: serde_json::to_value(&decision.rules).unwrap_or_default(),
        policy_revision: Some(decision.policy_revision.clone()),
        quota_before: outcome.quota_before,
        quota_after: outcome.quota_after,
        upstream_status: outcome.upstream_status,
        error_code: outcome.error_code,
        instance_id: outcome.instance_id,
        job_id: outcome.job_id,
        latency_ms: i64::try_from(context.started.elapsed().as_millis()).unwrap_or(i64::MAX),
    };
    if let Err(error) = store.record_decision(&record).await {
        tracing::error!(decision.id = %decision.decision_id, error = ?error, "writing the decision log failed");
    }
}
