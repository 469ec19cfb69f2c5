//! Create a StarRocks instance: authorize → evaluate → reserve → forward → settle, recorded
//! by [`super::drive`]. [`Asked`] holds what create and dry-run share: the first two phases.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::{Flow, Gateway, drive};
use crate::cloud::CloudError;
use crate::cloud::model::CreateStarRocksResponse;
use crate::domain::RootPassword;
use crate::error::Coded;
use crate::pipeline::authenticate::Employee;
use crate::pipeline::authorize::{TeamError, select_team};
use crate::pipeline::evaluate::{self, CreateRequest, Decision, Denial, Plan};
use crate::pipeline::forward;
use crate::pipeline::record::Entry;
use crate::pipeline::reserve::{self, QuotaExceeded, ReserveError, Reserved};
use crate::pipeline::settle::{self, Settlement};
use crate::policy::Policy;
use crate::storage::StorageError;
use crate::storage::decisions::{Action, Outcome};
use crate::storage::ledger::NewReservation;

/// A create as the caller asked for it, already parsed.
#[derive(Debug)]
pub struct CreateInput {
    pub request: CreateRequest,
    /// The caller's root password; one is generated when absent.
    pub password: Option<RootPassword>,
    /// The team named by the caller (`X-Team` or the body), if any.
    pub team: Option<String>,
}

/// An instance the cloud accepted.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub name: String,
    pub status: String,
    pub job_id: Option<String>,
    pub team: String,
    pub target: String,
    pub size: String,
    pub labels: BTreeMap<String, String>,
    pub decision_id: String,
    pub request_id: String,
    /// Shown once to the caller, stored nowhere.
    pub generated_password: Option<RootPassword>,
}

/// The cloud refused or failed the call.
#[derive(Debug, thiserror::Error)]
#[error("the create failed upstream, reservation {settlement:?}")]
pub struct UpstreamFailure {
    #[source]
    pub error: Arc<CloudError>,
    pub reservation_id: String,
    pub settlement: Settlement,
}

/// Why a create did not happen, by the phase that stopped it.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Team(#[from] TeamError),
    #[error(transparent)]
    Denied(Denial),
    #[error(transparent)]
    Quota(QuotaExceeded),
    #[error("the quota ledger is unavailable; nothing was sent")]
    Storage(#[source] StorageError),
    #[error(transparent)]
    Upstream(UpstreamFailure),
}

impl CreateError {
    /// The reservation of a failure that may have created the instance anyway (a timeout or
    /// `5xx`): worth remembering for an idempotent retry. Every other failure had no effect.
    pub fn pending_reservation(&self) -> Option<&str> {
        match self {
            Self::Upstream(failure) if failure.settlement != Settlement::Released => {
                Some(&failure.reservation_id)
            }
            _ => None,
        }
    }
}

/// What create and dry-run share: who asks for what, and what policy made of it.
#[derive(Debug)]
pub(crate) struct Asked<'g> {
    pub(crate) gateway: &'g Gateway,
    employee: &'g Employee,
    pub(crate) request_id: String,
    started: Instant,
    pub(crate) input: CreateInput,
    /// The policy that decides; its quota limits apply too, even if a reload lands meanwhile.
    pub(crate) policy: Arc<Policy>,
    pub(crate) team: Option<String>,
    pub(crate) decision: Option<Decision>,
    generated_password: Option<RootPassword>,
}

impl<'g> Asked<'g> {
    pub(crate) fn new(
        gateway: &'g Gateway,
        employee: &'g Employee,
        input: CreateInput,
        request_id: &str,
    ) -> Self {
        Self {
            gateway,
            employee,
            request_id: request_id.to_owned(),
            started: Instant::now(),
            input,
            policy: gateway.policy.current(),
            team: None,
            decision: None,
            generated_password: None,
        }
    }

    /// Phase 2, **authorize**: the team the employee acts for.
    pub(crate) fn authorize(&mut self) -> Result<String, TeamError> {
        let team = select_team(self.employee, self.input.team.as_deref(), &self.policy)?;
        self.team = Some(team.clone());
        Ok(team)
    }

    /// Phase 3, **evaluate**: the decision, and the plan when it allows.
    pub(crate) fn evaluate(&mut self, team: &str) -> Result<Plan, Denial> {
        let password = self.input.password.take().unwrap_or_else(|| {
            let generated = RootPassword::generate();
            self.generated_password = Some(generated.clone());
            generated
        });
        let decision_id = uuid::Uuid::new_v4().to_string();
        let evaluation = evaluate::evaluate(
            self.employee,
            team,
            &self.input.request,
            password,
            &self.policy,
            decision_id,
        );
        let decision = &evaluation.decision;
        tracing::info!(
            decision.id = %decision.decision_id,
            decision.allowed = decision.allowed,
            decision.audit_failures = decision.audit_failures().count(),
            employee.team = %team,
            policy.revision = %decision.policy_revision,
            "policy evaluated"
        );
        let denial = evaluation.plan.is_none().then(|| decision.denial());
        self.decision = Some(evaluation.decision);
        evaluation.plan.ok_or_else(|| denial.unwrap_or_default())
    }

    /// The entry's common part; `None` before policy decided.
    pub(crate) fn entry(&self, action: Action) -> Option<Entry> {
        let decision = self.decision.clone()?;
        let mut entry = Entry::new(
            action,
            &self.request_id,
            &self.employee.subject,
            self.started,
        );
        entry.team.clone_from(&decision.team);
        entry.target.clone_from(&self.input.request.target);
        entry.size.clone_from(&self.input.request.size);
        entry.decision = Some(decision);
        Some(entry)
    }
}

/// The create flow's context: what was asked, then what each phase did.
#[derive(Debug)]
struct CreateFlow<'g> {
    asked: Asked<'g>,
    reserved: Option<Reserved>,
    settlement: Option<Settlement>,
    answer: Option<Result<CreateStarRocksResponse, Arc<CloudError>>>,
}

impl CreateFlow<'_> {
    /// Phase 4, **reserve**: the plan's cost in the team's quota.
    async fn reserve(&mut self, plan: &Plan, reservation_id: &str) -> Result<(), CreateError> {
        let asked = &self.asked;
        let team = asked.team.as_deref().unwrap_or_default();
        let decision_id = asked
            .decision
            .as_ref()
            .map_or("", |d| d.decision_id.as_str());
        let new = NewReservation {
            id: reservation_id,
            team,
            subject: &asked.employee.subject,
            cost: reserve::cost_of(plan),
            project_id: asked.gateway.cloud.project_id(),
            target: &asked.input.request.target,
            target_instance_id: &plan.target_instance_id,
            name: &plan.body.name,
            size: &asked.input.request.size,
            labels: &plan.labels,
            decision_id,
            request_id: &asked.request_id,
        };
        let limit = asked.policy.team(team).and_then(|t| t.quota);
        match reserve::reserve(&asked.gateway.store, &new, limit.as_ref()).await {
            Ok(reserved) => {
                self.reserved = Some(reserved);
                Ok(())
            }
            Err(ReserveError::Exceeded(exceeded)) => Err(CreateError::Quota(exceeded)),
            Err(ReserveError::Storage(error)) => {
                tracing::error!(error = ?error, "the quota ledger is unavailable; nothing is sent upstream");
                Err(CreateError::Storage(error))
            }
        }
    }

    /// Phase 5, **forward**: the call, with the gateway's IAM token.
    async fn forward(&self, plan: &Plan) -> Result<CreateStarRocksResponse, Arc<CloudError>> {
        forward::create(&self.asked.gateway.cloud, plan, &self.asked.request_id).await
    }

    /// Phase 6, **settle**: the reservation by the cloud's answer.
    async fn settle(
        &mut self,
        plan: Plan,
        reservation_id: String,
        answer: Result<CreateStarRocksResponse, Arc<CloudError>>,
    ) -> Result<Created, CreateError> {
        let asked = &mut self.asked;
        let settlement = settle::settle(&asked.gateway.store, &reservation_id, &answer).await;
        self.settlement = Some(settlement);
        self.answer = Some(answer.clone());
        let created = answer.map_err(|error| {
            tracing::warn!(reservation.state = %settlement.outcome(), error = ?error, "create failed upstream");
            CreateError::Upstream(UpstreamFailure {
                error,
                reservation_id,
                settlement,
            })
        })?;
        let decision = asked.decision.as_ref();
        tracing::info!(instance.id = %created.instance.id, job.id = %created.job_id, "instance creation accepted upstream");
        Ok(Created {
            id: created.instance.id,
            name: created.instance.name,
            status: created.instance.status,
            job_id: Some(created.job_id),
            team: asked.team.clone().unwrap_or_default(),
            target: asked.input.request.target.clone(),
            size: asked.input.request.size.clone(),
            labels: plan.labels,
            decision_id: decision.map(|d| d.decision_id.clone()).unwrap_or_default(),
            request_id: asked.request_id.clone(),
            generated_password: asked.generated_password.take(),
        })
    }
}

impl Flow for CreateFlow<'_> {
    type Output = Created;
    type Error = CreateError;

    async fn phases(&mut self) -> Result<Created, CreateError> {
        let team = self.asked.authorize()?;
        let plan = self.asked.evaluate(&team).map_err(CreateError::Denied)?;
        let reservation_id = uuid::Uuid::new_v4().to_string();
        self.reserve(&plan, &reservation_id).await?;
        let answer = self.forward(&plan).await;
        self.settle(plan, reservation_id, answer).await
    }

    fn entry(&self, result: &Result<Created, CreateError>) -> Option<Entry> {
        let mut entry = self.asked.entry(Action::Create)?;
        if let (Some(reserved), Some(settlement)) = (self.reserved, self.settlement) {
            entry.outcome = settlement.outcome();
            entry.quota_before = Some(reserved.before);
            entry.quota_after = Some(if settlement == Settlement::Released {
                reserved.before
            } else {
                reserved.after
            });
        }
        match (result, &self.answer) {
            (_, Some(Ok(answer))) => {
                entry.upstream_status = Some(201);
                entry.instance_id = Some(answer.instance.id.clone());
                entry.job_id = Some(answer.job_id.clone());
            }
            (_, Some(Err(error))) => match &**error {
                CloudError::Rejected { status, code, .. } => {
                    entry.upstream_status = Some(*status);
                    entry.error_code.clone_from(code);
                }
                other => entry.error_code = Some(other.code().as_str().to_owned()),
            },
            (Err(error @ (CreateError::Denied(_) | CreateError::Quota(_))), None) => {
                entry = entry.refused(Outcome::Denied, error);
                if let CreateError::Quota(exceeded) = error {
                    // The ledger measured usage inside its lock; no second read.
                    entry.quota_before = Some(exceeded.used);
                    entry.quota_after = Some(exceeded.used);
                }
            }
            (Err(error), None) => entry = entry.refused(Outcome::Failed, error),
            (Ok(_), None) => {}
        }
        Some(entry)
    }
}

impl Gateway {
    /// Creates an instance for `employee`, or says which phase refused and why.
    pub async fn create(
        &self,
        employee: &Employee,
        input: CreateInput,
        request_id: &str,
    ) -> Result<Created, CreateError> {
        let flow = CreateFlow {
            asked: Asked::new(self, employee, input, request_id),
            reserved: None,
            settlement: None,
            answer: None,
        };
        drive(&self.store, flow).await
    }
}
