//! Exception requests: a create that policy denies only on rules the team's policy marks
//! `exceptable` is asked for with a justification, and created once someone who approves for
//! the team (never its requester) approves it: through the same pipeline, as the requester's
//! team, with the approved rules waived and every other rule and the quota still enforced.
//!
//! Every step is a decision-log entry written with the step itself: request, approve or
//! reject (with the approver), the create an approval ran, withdraw, expire; and, for an
//! approval whose gateway stopped before logging its create, the sweep's settlement.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Gateway;
use super::create::{CreateAnswer, CreateInput, Waiver};
use super::leases::{ExtendError, lease_decision};
use crate::domain::{InstanceName, InvalidInput, RootPassword, TimeZone};
use crate::error::Coded;
use crate::pipeline::authenticate::Employee;
use crate::pipeline::authorize::{TeamError, select_team};
use crate::pipeline::evaluate::{self, CreateRequest, Decision, Denial};
use crate::pipeline::record::{self, Entry, count, into_record, record_of};
use crate::storage::decisions::{Action, DecisionRecord, Outcome};
use crate::storage::ledger::ReservationState;
use crate::storage::requests::{
    ExceptionRecord, InsertRequest, MoveRequest, RequestFilter, RequestState,
};
use crate::storage::{StorageError, now_ms};

/// Longest comment an approver may leave, and the bounds of a justification, in characters.
pub const MAX_COMMENT_CHARS: usize = 1_000;
pub const JUSTIFICATION_CHARS: std::ops::RangeInclusive<usize> = 10..=1_000;

/// The failure code of an approval whose gateway stopped (or whose caller went away) before
/// it finished, and that did not happen.
pub const INTERRUPTED: &str = "interrupted";

/// The approvals this process is running, which no sweep may take for interrupted ones.
#[derive(Debug, Default)]
pub struct Approving(Mutex<HashSet<String>>);

impl Approving {
    fn begin(&self, id: &str) -> ApprovalRunning<'_> {
        self.ids().insert(id.to_owned());
        ApprovalRunning {
            approving: self,
            id: id.to_owned(),
        }
    }

    fn running(&self, id: &str) -> bool {
        self.ids().contains(id)
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Marks an approval as running until dropped, however its future ends.
struct ApprovalRunning<'a> {
    approving: &'a Approving,
    id: String,
}

impl Drop for ApprovalRunning<'_> {
    fn drop(&mut self) {
        self.approving.ids().remove(&self.id);
    }
}

/// The create an exception request asks for, as it is asked, stored and shown: the body of
/// `POST /v1/starrocks` without `root_password` (an approved exception's instance gets a
/// generated one, shown once to its requester).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedInstance {
    /// 4–64 characters, starting with a letter; letters, digits, `-` and `_`.
    #[schema(
        min_length = 4,
        max_length = 64,
        pattern = "^[A-Za-z][A-Za-z0-9_-]{3,63}$"
    )]
    pub name: String,
    /// Alias of the TaurusDB instance to attach to, as listed in your catalog.
    #[schema(
        min_length = 1,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub target: String,
    /// A size profile, e.g. `large` (the catalog's `exception_sizes`).
    #[schema(
        min_length = 1,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub size: String,
    /// Engine major version; the policy default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub version: Option<String>,
    /// Availability zone; the policy default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub az: Option<String>,
    /// Time zone like `UTC+08:00`; the policy default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^UTC[+-](0[0-9]|1[0-4]):[0-5][0-9]$")]
    pub time_zone: Option<String>,
    /// Labels kept by the gateway, as your team's policy allows.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Days the instance should live (fractions allowed); an approved exception may waive
    /// `lease.max` for a longer lease than the team's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 3650)]
    pub lease_days: Option<f64>,
}

/// A lease extension beyond the team's maximum, asked for as an exception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedExtension {
    /// StarRocks instance id (`…in17`).
    #[schema(
        min_length = 1,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub instance_id: String,
    /// Days from the approval (fractions allowed).
    #[schema(exclusive_minimum = 0, maximum = 3650)]
    pub lease_days: f64,
}

/// What a request asks for, as stored: a create, or a lease extension.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Asked {
    Create(RequestedInstance),
    Extend(RequestedExtension),
}

impl From<&CreateRequest> for RequestedInstance {
    fn from(request: &CreateRequest) -> Self {
        Self {
            name: request.name.as_ref().to_owned(),
            target: request.target.clone(),
            size: request.size.clone(),
            version: request.version.clone(),
            az: request.az.clone(),
            time_zone: request.time_zone.as_ref().map(|z| z.as_ref().to_owned()),
            labels: request.labels.clone(),
            lease_days: request.lease_days,
        }
    }
}

impl RequestedInstance {
    /// The stored create, parsed again as the create path takes it.
    fn parse(&self) -> Result<CreateRequest, StorageError> {
        let corrupt = |field: &'static str| {
            move |_| StorageError::Corrupt(format!("an exception request's {field} is invalid"))
        };
        Ok(CreateRequest {
            name: InstanceName::parse(&self.name).map_err(corrupt("name"))?,
            target: self.target.clone(),
            size: self.size.clone(),
            version: self.version.clone(),
            az: self.az.clone(),
            time_zone: self
                .time_zone
                .as_deref()
                .map(TimeZone::parse)
                .transpose()
                .map_err(corrupt("time_zone"))?,
            labels: self.labels.clone(),
            lease_days: self.lease_days,
        })
    }
}

/// Why a request was asked for: 10 to 1,000 characters, not only blanks.
#[derive(Debug, Clone)]
pub struct Justification(String);

impl Justification {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let length = raw.trim().chars().count();
        if JUSTIFICATION_CHARS.contains(&length)
            && raw.chars().count() <= *JUSTIFICATION_CHARS.end()
        {
            Ok(Self(raw.trim().to_owned()))
        } else {
            Err(InvalidInput::field(
                "justification",
                format!(
                    "must be {} to {} characters (not counting surrounding blanks), got {length}",
                    JUSTIFICATION_CHARS.start(),
                    JUSTIFICATION_CHARS.end()
                ),
            ))
        }
    }
}

/// An approver's or a requester's note on a decision: at most 1,000 characters.
pub fn parse_comment(raw: Option<String>) -> Result<Option<String>, InvalidInput> {
    // Counted as sent, like the schema's `maxLength`, and then trimmed.
    match raw {
        Some(comment) if comment.chars().count() > MAX_COMMENT_CHARS => Err(InvalidInput::field(
            "comment",
            format!("must be at most {MAX_COMMENT_CHARS} characters"),
        )),
        comment => Ok(comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())),
    }
}

/// An exception request as asked.
#[derive(Debug)]
pub struct ExceptionInput {
    /// The create; its password is always generated, on approval.
    pub create: CreateInput,
    pub justification: Justification,
}

/// Why the failure of a request's create happened.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestFailure {
    /// The machine code the create answered with, e.g. `quota_exceeded`; `interrupted` when
    /// the gateway stopped before the create (or extension) happened.
    pub code: String,
    pub message: String,
}

/// An exception request as its requester and its approvers see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExceptionView {
    pub id: String,
    pub status: RequestState,
    pub team: String,
    /// Who asked.
    pub requested_by: String,
    /// The create asked for; absent on an extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<RequestedInstance>,
    /// The lease extension asked for; absent on a create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<RequestedExtension>,
    /// The failed rules it asks to waive.
    pub waives: Vec<String>,
    pub justification: String,
    /// The denial it was asked from, in the decision log.
    pub decision_id: String,
    /// The policy that denied it.
    pub policy_revision: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// When it expires unless approved or rejected first (RFC 3339, UTC).
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The instance an approval created (`created`) or extended (`extended`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Why the approved create did not happen (`failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<RequestFailure>,
    /// The instance's generated root password: shown once, to the requester, on the first
    /// read after the create; never again, and to nobody else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_password: Option<String>,
}

fn rfc3339(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn requested(record: &ExceptionRecord) -> Result<Asked, StorageError> {
    serde_json::from_str(&record.body)
        .map_err(|e| StorageError::Corrupt(format!("an exception request's body: {e}")))
}

impl ExceptionView {
    fn of(record: &ExceptionRecord) -> Result<Self, StorageError> {
        Ok(Self {
            id: record.id.clone(),
            status: record.state,
            team: record.team.clone(),
            requested_by: record.subject.clone(),
            instance: None,
            extension: None,
            waives: record.waives.clone(),
            justification: record.justification.clone(),
            decision_id: record.decision_id.clone(),
            policy_revision: record.policy_revision.clone(),
            created_at: rfc3339(record.created_at),
            expires_at: rfc3339(record.expires_at),
            decided_by: record.decided_by.clone(),
            decided_at: record.decided_at.map(rfc3339),
            comment: record.comment.clone(),
            instance_id: record.instance_id.clone(),
            failure: record.failure_code.clone().map(|code| RequestFailure {
                code,
                message: record.failure.clone().unwrap_or_default(),
            }),
            root_password: None,
        }
        .asking(requested(record)?))
    }

    fn asking(self, asked: Asked) -> Self {
        match asked {
            Asked::Create(instance) => Self {
                instance: Some(instance),
                ..self
            },
            Asked::Extend(extension) => Self {
                extension: Some(extension),
                ..self
            },
        }
    }
}

/// Why an exception request step was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExceptionError {
    #[error(transparent)]
    Team(#[from] TeamError),
    #[error("policy allows this as it is: {0}")]
    NotNeeded(&'static str),
    #[error(transparent)]
    Extend(#[from] ExtendError),
    /// Denied on rules the team's policy never waives.
    #[error("{0}")]
    NotExceptable(Denial),
    #[error("no exception request `{0}` is visible to you")]
    NotFound(String),
    #[error("you do not approve exception requests of team `{0}`")]
    NotApprover(String),
    #[error("nobody decides their own exception request; withdraw it instead")]
    OwnRequest,
    #[error("only its requester may withdraw an exception request")]
    NotRequester,
    #[error("exception request `{id}` is {state}, no longer pending")]
    NotPending { id: String, state: RequestState },
    #[error("the gateway's database is unavailable")]
    Storage(#[from] StorageError),
}

/// A step's common decision-log entry.
fn entry_for(
    action: Action,
    outcome: Outcome,
    record: &ExceptionRecord,
    subject: &str,
    request_id: &str,
    started: Instant,
) -> Entry {
    let mut entry = Entry::new(action, request_id, subject, started);
    entry.outcome = outcome;
    entry.team.clone_from(&record.team);
    match requested(record) {
        Ok(Asked::Create(instance)) => {
            entry.target = instance.target;
            entry.size = instance.size;
        }
        Ok(Asked::Extend(extension)) => entry.instance_id = Some(extension.instance_id),
        Err(_) => {}
    }
    entry.policy_revision.clone_from(&record.policy_revision);
    entry.exception_id = Some(record.id.clone());
    entry
}

/// The entry of a request that expired, written by the sweep that expired it.
fn expired_entry(record: &ExceptionRecord) -> DecisionRecord {
    into_record(entry_for(
        Action::Expire,
        Outcome::Expired,
        record,
        &record.subject,
        "exception-sweep",
        Instant::now(),
    ))
}

impl Gateway {
    /// Asks for an exception to a denial: refused when policy allows the create anyway, or
    /// denies it on a rule the team never waives.
    pub async fn request_exception(
        &self,
        employee: &Employee,
        input: ExceptionInput,
        request_id: &str,
    ) -> Result<ExceptionView, ExceptionError> {
        let started = Instant::now();
        let policy = self.policy.current();
        let team = select_team(employee, input.create.team.as_deref(), &policy)?;
        crate::telemetry::record_team(&team);
        let decision_id = uuid::Uuid::now_v7().to_string();
        crate::telemetry::record_decision(&decision_id);
        // Only the decision is kept; the body built with this password is dropped.
        let evaluation = evaluate::evaluate(
            employee,
            &team,
            &input.create.request,
            RootPassword::generate(),
            &policy,
            decision_id,
        );
        let decision = Arc::new(evaluation.decision);
        let mut entry = Entry::new(Action::Request, request_id, &employee.subject, started);
        entry.team.clone_from(&team);
        entry.target.clone_from(&input.create.request.target);
        entry.size.clone_from(&input.create.request.size);
        entry.decision = Some(decision.clone());
        self.refuse_unless_exceptable(&entry, &decision, "create it with POST /v1/starrocks")
            .await?;
        let body = serde_json::to_string(&Asked::Create(RequestedInstance::from(
            &input.create.request,
        )))
        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
        self.insert_pending(
            entry,
            &decision,
            team,
            &employee.subject,
            body,
            input.justification,
        )
        .await
    }

    /// Refuses to turn `decision` into a request when policy allows it already (`direct`
    /// says how to do it instead) or a rule that denies is never waived (those rules
    /// listed); the refusal is logged as a denied `request`.
    async fn refuse_unless_exceptable(
        &self,
        entry: &Entry,
        decision: &Decision,
        direct: &'static str,
    ) -> Result<(), ExceptionError> {
        let refusal = if decision.allowed {
            ExceptionError::NotNeeded(direct)
        } else if decision.exception.is_none() {
            let policy = self.policy.current();
            let mut denial = decision.denial();
            denial
                .violations
                .retain(|v| !policy.exceptable(&decision.team, &v.rule));
            ExceptionError::NotExceptable(denial)
        } else {
            return Ok(());
        };
        let entry = entry.clone().refused(Outcome::Denied, &refusal);
        record::record(&self.store, Some(entry), None).await;
        Err(refusal)
    }

    /// Writes a pending request asking for `body`, waiving what `decision` says may be
    /// waived, with its `entry` (the `request` step) in the decision log.
    async fn insert_pending(
        &self,
        mut entry: Entry,
        decision: &Decision,
        team: String,
        subject: &str,
        body: String,
        justification: Justification,
    ) -> Result<ExceptionView, ExceptionError> {
        let policy = self.policy.current();
        let now = now_ms();
        let request = ExceptionRecord {
            id: uuid::Uuid::now_v7().to_string(),
            team,
            subject: subject.to_owned(),
            state: RequestState::Pending,
            body,
            waives: decision
                .exception
                .as_ref()
                .map(|hint| hint.waives.clone())
                .unwrap_or_default(),
            justification: justification.0,
            policy_revision: decision.policy_revision.clone(),
            decision_id: decision.decision_id.clone(),
            decided_by: None,
            decided_at: None,
            comment: None,
            instance_id: None,
            failure_code: None,
            failure: None,
            password_waiting: false,
            created_at: now,
            updated_at: now,
            expires_at: now.saturating_add(policy.file.exceptions.pending_ttl_ms()),
        };
        entry.outcome = Outcome::Requested;
        entry.exception_id = Some(request.id.clone());
        let logged = into_record(entry);
        self.store
            .insert_request(InsertRequest {
                request: request.clone(),
                decision: logged.clone(),
            })
            .await?;
        self.store.stream_decision(&logged);
        tracing::info!(exception.id = %request.id, waives = ?request.waives, "exception requested");
        Ok(ExceptionView::of(&request)?)
    }

    /// Whether `employee` approves for `team` under the policy in force.
    fn approves(&self, employee: &Employee, team: &str) -> bool {
        self.policy
            .current()
            .approves(team, &employee.subject, &employee.groups, employee.admin)
    }

    /// Request `id`, when `employee` may see it: its requester, an approver of its team, or
    /// a platform admin. Anyone else is told it does not exist.
    async fn visible_request(
        &self,
        employee: &Employee,
        id: &str,
    ) -> Result<ExceptionRecord, ExceptionError> {
        let record = self.store.exception_request(id).await?;
        record
            .filter(|r| {
                r.subject == employee.subject || employee.admin || self.approves(employee, &r.team)
            })
            .ok_or_else(|| ExceptionError::NotFound(id.to_owned()))
    }

    /// The requests `employee` sees (their own, and those of the teams they approve for),
    /// newest first; one page, and the cursor of the next when more follow.
    pub async fn exception_requests(
        &self,
        employee: &Employee,
        state: Option<RequestState>,
        limit: u32,
        before: Option<(i64, String)>,
    ) -> Result<(Vec<ExceptionView>, Option<(i64, String)>), ExceptionError> {
        let policy = self.policy.current();
        let teams = (!employee.admin).then(|| {
            policy
                .file
                .teams
                .keys()
                .filter(|team| {
                    policy.approves(team, &employee.subject, &employee.groups, employee.admin)
                })
                .cloned()
                .collect::<BTreeSet<_>>()
        });
        let filter = RequestFilter {
            teams,
            subject: employee.subject.clone(),
            state,
            limit,
            before,
        };
        let (records, more) = self.store.exception_requests(&filter).await?;
        let next = more
            .then(|| records.last().map(|r| (r.created_at, r.id.clone())))
            .flatten();
        let views = records
            .iter()
            .map(ExceptionView::of)
            .collect::<Result<_, _>>()?;
        Ok((views, next))
    }

    /// Request `id`. Its requester reads the generated root password of its instance here,
    /// once.
    pub async fn exception_request(
        &self,
        employee: &Employee,
        id: &str,
    ) -> Result<ExceptionView, ExceptionError> {
        let record = self.visible_request(employee, id).await?;
        let mut view = ExceptionView::of(&record)?;
        if record.password_waiting
            && record.state == RequestState::Created
            && record.subject == employee.subject
        {
            view.root_password = self.take_password(&record).await?;
        }
        Ok(view)
    }

    /// The waiting password, opened and then cleared, so it is shown once. One this process
    /// cannot open (sealed under another key) is left for the replica that can.
    async fn take_password(
        &self,
        record: &ExceptionRecord,
    ) -> Result<Option<String>, StorageError> {
        let Some(sealed) = self.store.sealed_password(&record.id).await? else {
            return Ok(None);
        };
        let Some(password) = self.seal.open(&sealed, &record.id) else {
            tracing::warn!(exception.id = %record.id, "a waiting root password was sealed under another key (approvals.sealing_key differs, or was not set and the gateway restarted)");
            return Ok(None);
        };
        let taken = self.store.clear_password(&record.id, &sealed).await?;
        Ok(taken.then(|| password.expose().to_owned()))
    }

    /// Whether `employee` may approve or reject `record`: an approver of its team who did not
    /// ask for it.
    fn may_decide(
        &self,
        employee: &Employee,
        record: &ExceptionRecord,
    ) -> Result<(), ExceptionError> {
        if !self.approves(employee, &record.team) {
            return Err(ExceptionError::NotApprover(record.team.clone()));
        }
        if record.subject == employee.subject {
            return Err(ExceptionError::OwnRequest);
        }
        Ok(())
    }

    /// Takes one step on request `id` for `employee`: `may` says whether they may take it;
    /// the request must still be pending (and in time) when `step.change` moves it, together
    /// with its decision-log entry. A refused step is logged too, with its code.
    async fn take_step(
        &self,
        employee: &Employee,
        id: &str,
        step: Step<'_>,
        may: impl FnOnce(&Self, &ExceptionRecord) -> Result<(), ExceptionError>,
    ) -> Result<ExceptionRecord, ExceptionError> {
        let record = self.visible_request(employee, id).await?;
        let mut entry = entry_for(
            step.action,
            step.outcome,
            &record,
            &employee.subject,
            step.request_id,
            step.started,
        );
        entry
            .policy_revision
            .clone_from(&self.policy.current().revision);
        if let Err(refusal) = may(self, &record).and_then(|()| pending(&record)) {
            return Err(self.refused(entry, refusal).await);
        }
        let logged = record_of(entry.clone());
        let sealed_password = step
            .password
            .filter(|_| matches!(requested(&record), Ok(Asked::Create(_))))
            .map(|password| self.seal.seal(password, id));
        let change = MoveRequest {
            only_before: Some(now_ms()),
            decision: Some(logged.clone()),
            sealed_password,
            ..step.change
        };
        if self.store.move_request(change).await? {
            count(&logged);
            self.store.stream_decision(&logged);
            return Ok(record);
        }
        // It moved on meanwhile: another approver, its requester, or its time ran out.
        let state = self
            .store
            .exception_request(id)
            .await?
            .map_or(RequestState::Expired, |now| match now.state {
                RequestState::Pending => RequestState::Expired,
                other => other,
            });
        let refusal = ExceptionError::NotPending {
            id: id.to_owned(),
            state,
        };
        Err(self.refused(entry, refusal).await)
    }

    /// Logs `entry` as refused with `refusal`'s code, and hands `refusal` back.
    async fn refused(&self, entry: Entry, refusal: ExceptionError) -> ExceptionError {
        if !matches!(refusal, ExceptionError::Storage(_)) {
            let entry = entry.refused(Outcome::Denied, &refusal);
            record::record(&self.store, Some(entry), None).await;
        }
        refusal
    }

    /// Approves request `id` and runs its create: the requester's team, the approved rules
    /// waived, everything else (and the quota) enforced at the policy in force now. The
    /// answer says whether the instance was created, or why not; or, while the cloud's answer
    /// is unknown, is still `approved` for reconciliation to settle.
    pub async fn approve(
        &self,
        employee: &Employee,
        id: &str,
        comment: Option<String>,
        request_id: &str,
    ) -> Result<ExceptionView, ExceptionError> {
        // Sealed with the approval, before the create, so a create that outlives this
        // process (its reservation settled by reconciliation) still has its password.
        let password = RootPassword::generate();
        let step = Step {
            password: Some(&password),
            ..Step::decision(Action::Approve, employee, id, comment, request_id)
        };
        let _running = self.approving.begin(id);
        let record = self
            .take_step(employee, id, step, |gateway, record| {
                gateway.may_decide(employee, record)
            })
            .await?;
        tracing::info!(exception.id = %id, approver = %employee.subject, "exception approved; creating");
        let done = match self.run_approved(&record, password, request_id).await {
            Ok(Approved::Created(instance_id)) => MoveRequest {
                instance_id: Some(instance_id),
                ..MoveRequest::new(id, RequestState::Approved, RequestState::Created)
            },
            Ok(Approved::Extended(instance_id)) => MoveRequest {
                instance_id: Some(instance_id),
                ..MoveRequest::new(id, RequestState::Approved, RequestState::Extended)
            },
            Err(failure) if self.create_outcome_unknown(id).await? => {
                // Reconciliation learns whether the instance exists; then a sweep settles it.
                tracing::warn!(exception.id = %id, code = %failure.code, "the approved create's outcome is unknown; the request stays approved until reconciled");
                return self.refreshed(id).await;
            }
            Err(failure) => MoveRequest {
                failure_code: Some(failure.code),
                failure: Some(failure.message),
                clear_password: true,
                ..MoveRequest::new(id, RequestState::Approved, RequestState::Failed)
            },
        };
        let to = done.to;
        if !self.store.move_request(done).await?
            && self.store.exception_request(id).await?.map(|r| r.state) != Some(to)
        {
            tracing::error!(exception.id = %id, "an approved request moved on while its create ran");
        }
        self.refreshed(id).await
    }

    /// The approved create or extension, run as the requester acting for the request's
    /// team: its instance, with the create's generated password, or why it failed.
    async fn run_approved(
        &self,
        record: &ExceptionRecord,
        password: RootPassword,
        request_id: &str,
    ) -> Result<Approved, RequestFailure> {
        let failure = |error: &dyn Coded| RequestFailure {
            code: error.code().as_str().to_owned(),
            message: error.detail(),
        };
        let requester = Employee {
            subject: record.subject.clone(),
            email: None,
            teams: vec![record.team.clone()],
            admin: false,
            groups: Vec::new(),
        };
        let request = match requested(record).map_err(|e| failure(&e))? {
            Asked::Create(instance) => instance.parse().map_err(|e| failure(&e))?,
            Asked::Extend(extension) => {
                return match self
                    .extend_waiving(
                        &requester,
                        &extension.instance_id,
                        extension.lease_days,
                        request_id,
                        Some(&record.id),
                    )
                    .await
                {
                    Ok(extended) => Ok(Approved::Extended(extended.id)),
                    Err(error) => {
                        tracing::warn!(exception.id = %record.id, error = ?error, "the approved extension did not happen");
                        Err(failure(&error))
                    }
                };
            }
        };
        let input = CreateInput {
            request,
            password: Some(password),
            team: Some(record.team.clone()),
            waiver: Some(Waiver {
                exception_id: record.id.clone(),
                rules: record.waives.clone(),
            }),
        };
        match Box::pin(self.create(&requester, input, request_id, None)).await {
            Ok(CreateAnswer::Created(created)) => Ok(Approved::Created(created.id)),
            Ok(CreateAnswer::Replayed(_)) => Err(RequestFailure {
                code: crate::error::ErrorCode::Internal.as_str().to_owned(),
                message: "the create was answered from an idempotency record".into(),
            }),
            Err(error) => {
                tracing::warn!(exception.id = %record.id, error = ?error, "the approved create did not happen");
                Err(failure(&error))
            }
        }
    }

    /// Asks for an exception to extend instance `id`'s lease to `lease_days` from the
    /// approval: refused when its team's maximum allows it anyway, or never waives it.
    pub async fn request_extension(
        &self,
        employee: &Employee,
        extension: RequestedExtension,
        justification: Justification,
        request_id: &str,
    ) -> Result<ExceptionView, ExceptionError> {
        let started = Instant::now();
        let reservation = self.extendable(employee, &extension.instance_id).await?;
        let policy = self.policy.current();
        let decision = lease_decision(&policy, employee, &reservation, extension.lease_days, false);
        let mut entry = Entry::new(Action::Request, request_id, &employee.subject, started);
        entry.team.clone_from(&reservation.team);
        entry.target.clone_from(&reservation.target);
        entry.size.clone_from(&reservation.size);
        entry.instance_id = Some(extension.instance_id.clone());
        entry.decision = Some(decision.clone());
        self.refuse_unless_exceptable(
            &entry,
            &decision,
            "extend it with POST /v1/starrocks/{id}/extend",
        )
        .await?;
        let body = serde_json::to_string(&Asked::Extend(extension))
            .map_err(|e| StorageError::Corrupt(e.to_string()))?;
        self.insert_pending(
            entry,
            &decision,
            reservation.team.clone(),
            &employee.subject,
            body,
            justification,
        )
        .await
    }

    /// Rejects request `id`; nothing is created.
    pub async fn reject(
        &self,
        employee: &Employee,
        id: &str,
        comment: Option<String>,
        request_id: &str,
    ) -> Result<ExceptionView, ExceptionError> {
        let step = Step::decision(Action::Reject, employee, id, comment, request_id);
        self.take_step(employee, id, step, |gateway, record| {
            gateway.may_decide(employee, record)
        })
        .await?;
        self.refreshed(id).await
    }

    /// Withdraws request `id`, by its requester.
    pub async fn withdraw(
        &self,
        employee: &Employee,
        id: &str,
        request_id: &str,
    ) -> Result<ExceptionView, ExceptionError> {
        let step = Step {
            action: Action::Withdraw,
            outcome: Outcome::Withdrawn,
            request_id,
            started: Instant::now(),
            change: MoveRequest::new(id, RequestState::Pending, RequestState::Withdrawn),
            password: None,
        };
        self.take_step(employee, id, step, |_, record| {
            if record.subject == employee.subject {
                Ok(())
            } else {
                Err(ExceptionError::NotRequester)
            }
        })
        .await?;
        self.refreshed(id).await
    }

    async fn refreshed(&self, id: &str) -> Result<ExceptionView, ExceptionError> {
        let record = self
            .store
            .exception_request(id)
            .await?
            .ok_or_else(|| ExceptionError::NotFound(id.to_owned()))?;
        Ok(ExceptionView::of(&record)?)
    }

    /// Expires the pending requests whose time ran out; how many this call expired. Safe on
    /// every replica at once: each request is expired, and logged, exactly once.
    pub async fn expire_requests(&self) -> Result<usize, StorageError> {
        let logged = self.store.expire_requests(now_ms(), expired_entry).await?;
        for decision in &logged {
            self.store.stream_decision(decision);
            tracing::info!(exception.id = ?decision.exception_id, "exception request expired");
        }
        Ok(logged.len())
    }

    /// Settles the requests left `approved` by a gateway that stopped (or whose caller went
    /// away) mid-approval, unless an approval of this process runs them: `created` once their
    /// create's reservation is committed, `extended` once the extension is logged; `failed`
    /// with `interrupted` when nothing happened and the approval is older than the
    /// reconciliation grace (so a replica still running it has finished). How many this call
    /// settled.
    pub async fn settle_interrupted_approvals(&self) -> Result<usize, StorageError> {
        let grace_ms = i64::try_from(self.reconcile_grace.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms().saturating_sub(grace_ms);
        let mut settled = 0;
        for record in self.store.approved_requests().await? {
            if self.approving.running(&record.id) {
                continue;
            }
            let Some(change) = self.settlement(&record, record.updated_at < cutoff).await? else {
                continue;
            };
            let to = change.to;
            let logged = settlement_entry(&record, &change);
            let change = MoveRequest {
                decision: logged.clone(),
                ..change
            };
            if self.store.move_request(change).await? {
                settled += 1;
                if let Some(logged) = &logged {
                    count(logged);
                    self.store.stream_decision(logged);
                }
                tracing::warn!(exception.id = %record.id, state = %to, "an interrupted approval settled");
            }
        }
        Ok(settled)
    }

    /// Whether the create request `id`'s approval ran still holds a pending reservation: the
    /// cloud's answer was lost, so nobody knows yet whether the instance exists.
    async fn create_outcome_unknown(&self, id: &str) -> Result<bool, StorageError> {
        Ok(self
            .store
            .reservation_of_exception(id)
            .await?
            .is_some_and(|reservation| reservation.state == ReservationState::Pending))
    }

    /// Where an interrupted approval ends; `None` while that is unknown, or while a failure
    /// might still be another replica's approval at work (`past_grace` false).
    async fn settlement(
        &self,
        record: &ExceptionRecord,
        past_grace: bool,
    ) -> Result<Option<MoveRequest>, StorageError> {
        let to = |state| MoveRequest::new(&record.id, RequestState::Approved, state);
        let interrupted = |message: &str| {
            past_grace.then(|| MoveRequest {
                failure_code: Some(INTERRUPTED.to_owned()),
                failure: Some(message.to_owned()),
                clear_password: true,
                ..to(RequestState::Failed)
            })
        };
        Ok(match requested(record) {
            Ok(Asked::Create(_)) => match self.store.reservation_of_exception(&record.id).await? {
                Some(reservation) if reservation.state == ReservationState::Pending => None,
                Some(reservation) => match reservation.instance_id {
                    Some(instance_id) => Some(MoveRequest {
                        instance_id: Some(instance_id),
                        ..to(RequestState::Created)
                    }),
                    None => interrupted(
                        "the gateway stopped while creating the instance, and the cloud never created it; nothing is held, ask again",
                    ),
                },
                None => interrupted(
                    "the gateway stopped before the create was sent; nothing was created, ask again",
                ),
            },
            Ok(Asked::Extend(extension)) => {
                if self.store.extension_logged(&record.id).await? {
                    Some(MoveRequest {
                        instance_id: Some(extension.instance_id),
                        ..to(RequestState::Extended)
                    })
                } else {
                    interrupted(
                        "the gateway stopped before extending the lease; nothing changed, ask again",
                    )
                }
            }
            Err(error) => interrupted(&format!("the stored request cannot be read: {error}")),
        })
    }
}

/// The entry a settlement logs: the create (or extension) the interrupted approval could not
/// log itself. None for `extended`, whose extension was logged as it was written.
fn settlement_entry(record: &ExceptionRecord, change: &MoveRequest) -> Option<DecisionRecord> {
    let outcome = match change.to {
        RequestState::Created => Outcome::Created,
        RequestState::Failed => Outcome::Failed,
        _ => return None,
    };
    let action = match requested(record) {
        Ok(Asked::Extend(_)) => Action::Extend,
        _ => Action::Create,
    };
    let mut entry = entry_for(
        action,
        outcome,
        record,
        &record.subject,
        "exception-sweep",
        Instant::now(),
    );
    if change.instance_id.is_some() {
        entry.instance_id.clone_from(&change.instance_id);
    }
    entry.error_code.clone_from(&change.failure_code);
    Some(record_of(entry))
}

/// Whether `record` is still pending and in time; otherwise why not.
fn pending(record: &ExceptionRecord) -> Result<(), ExceptionError> {
    let state = match record.state {
        RequestState::Pending if record.expires_at <= now_ms() => RequestState::Expired,
        state => state,
    };
    if state == RequestState::Pending {
        Ok(())
    } else {
        Err(ExceptionError::NotPending {
            id: record.id.clone(),
            state,
        })
    }
}

/// What an approval did.
enum Approved {
    /// The instance; its root password was sealed with the approval.
    Created(String),
    /// The instance whose lease was extended.
    Extended(String),
}

/// One step on a request: what it is logged as, and the move it makes.
struct Step<'r> {
    action: Action,
    outcome: Outcome,
    request_id: &'r str,
    started: Instant,
    change: MoveRequest,
    /// The root password an approved create will use, sealed with the move.
    password: Option<&'r RootPassword>,
}

impl<'r> Step<'r> {
    /// An approver's decision on request `id`: `Approve` or `Reject`, with their comment.
    fn decision(
        action: Action,
        approver: &Employee,
        id: &str,
        comment: Option<String>,
        request_id: &'r str,
    ) -> Self {
        let (outcome, to) = if action == Action::Approve {
            (Outcome::Approved, RequestState::Approved)
        } else {
            (Outcome::Rejected, RequestState::Rejected)
        };
        Self {
            action,
            outcome,
            request_id,
            started: Instant::now(),
            change: MoveRequest {
                decided_by: Some(approver.subject.clone()),
                comment,
                ..MoveRequest::new(id, RequestState::Pending, to)
            },
            password: None,
        }
    }
}
