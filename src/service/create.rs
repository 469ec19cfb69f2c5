//! Create a StarRocks instance: authorize → evaluate → reserve → forward → settle, recorded
//! by [`super::drive`]. [`Asked`] holds what create and dry-run share: the first two phases.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::{Flow, Gateway, drive};
use crate::cloud::model::CreateStarRocksResponse;
use crate::cloud::{CloudClient, CloudError};
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
use crate::storage::idempotency::{
    Claim, IdempotencyError, KeyConflict, KeyOutcome, KeyedRequest, NextAction, SavedResponse,
};
use crate::storage::ledger::{Change, Finish, NewReservation, RegionLimit, Reserve};

/// A create as the caller asked for it, already parsed.
#[derive(Debug)]
pub struct CreateInput {
    pub request: CreateRequest,
    /// The caller's root password; one is generated when absent.
    pub password: Option<RootPassword>,
    /// The team named by the caller (`X-Team` or the body), if any.
    pub team: Option<String>,
    /// The approved exception this create runs for, if any.
    pub waiver: Option<Waiver>,
}

/// An approved exception: the failed rules its create may pass with.
#[derive(Debug, Clone)]
pub struct Waiver {
    /// The exception request's id, recorded with the create's decision.
    pub exception_id: String,
    /// Rule ids; only those the team's policy still marks exceptable are waived.
    pub rules: Vec<String>,
}

/// An instance the cloud accepted.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub name: String,
    pub status: String,
    pub job_id: Option<String>,
    pub team: String,
    /// The region it was ordered in.
    pub region: String,
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

/// A create's `Idempotency-Key`, and how its answer is kept for replay.
#[derive(Debug, Clone)]
pub struct Idempotent {
    pub request: KeyedRequest,
    /// The answer to replay after `result`, in the caller's wire format; `None` forgets the
    /// key (the create had no effect, so a retry runs again).
    pub replay: fn(&Result<CreateAnswer, CreateError>) -> Option<SavedResponse>,
}

/// What a create answers: a new instance, or the first answer to the same keyed request.
#[derive(Debug, Clone)]
pub enum CreateAnswer {
    Created(Box<Created>),
    Replayed(SavedResponse),
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
    #[error(transparent)]
    Idempotency(IdempotencyError),
    #[error("the quota ledger is unavailable; nothing was sent")]
    Storage(#[source] StorageError),
    #[error(transparent)]
    Upstream(UpstreamFailure),
    /// The target's region has no client: nothing was reserved or sent.
    #[error("the target's region is not configured")]
    Region(Arc<CloudError>),
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
    /// Shared with the decision-log entry and a dry-run's answer, never copied.
    pub(crate) decision: Option<Arc<Decision>>,
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
        crate::telemetry::record_team(&team);
        self.team = Some(team.clone());
        Ok(team)
    }

    /// The client of the plan's region: where its call would go, and with what credentials.
    pub(crate) fn cloud_for(&self, plan: &Plan) -> Result<Arc<CloudClient>, CreateError> {
        self.gateway
            .clouds
            .get(plan.region.as_deref())
            .map(Arc::clone)
            .map_err(CreateError::Region)
    }

    /// `team`'s own limits in `cloud`'s region, when the policy gives it some there.
    pub(crate) fn region_limit(&self, team: &str, cloud: &CloudClient) -> Option<RegionLimit> {
        let limit = self.policy.team(team)?.region_quotas.get(cloud.region())?;
        Some(RegionLimit {
            limit: *limit,
            default_region: cloud.region() == self.gateway.clouds.default_region(),
        })
    }

    /// Phase 3, **evaluate**: the decision, and the plan when it allows.
    pub(crate) fn evaluate(&mut self, team: &str) -> Result<Plan, Denial> {
        let password = self.input.password.take().unwrap_or_else(|| {
            let generated = RootPassword::generate();
            self.generated_password = Some(generated.clone());
            generated
        });
        let decision_id = uuid::Uuid::now_v7().to_string();
        crate::telemetry::record_decision(&decision_id);
        let waived = self
            .input
            .waiver
            .as_ref()
            .map_or(&[][..], |waiver| &waiver.rules[..]);
        let evaluation = evaluate::evaluate_waiving(
            self.employee,
            team,
            &self.input.request,
            password,
            &self.policy,
            decision_id,
            waived,
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
        self.decision = Some(Arc::new(evaluation.decision));
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
        entry.exception_id = self
            .input
            .waiver
            .as_ref()
            .map(|waiver| waiver.exception_id.clone());
        Some(entry)
    }
}

/// The create flow's context: what was asked, then what each phase did.
#[derive(Debug)]
struct CreateFlow<'g> {
    asked: Asked<'g>,
    key: Option<Idempotent>,
    reserved: Option<Reserved>,
    settlement: Option<Settlement>,
    /// The settlement's ledger change, written with the decision.
    change: Option<Change>,
    answer: Option<Result<CreateStarRocksResponse, Arc<CloudError>>>,
}

impl CreateFlow<'_> {
    /// A keyed request already answered replays, one in flight or with another body is
    /// refused; read only, the claim is made with the reservation.
    async fn check_key(&self) -> Result<Option<SavedResponse>, CreateError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        match self.asked.gateway.store.check_key(&key.request).await {
            Ok(NextAction::StartProcessing) => Ok(None),
            Ok(NextAction::ReturnSaved(saved)) => Ok(Some(saved)),
            Err(error) => Err(CreateError::Idempotency(error)),
        }
    }

    /// Phase 4, **reserve**: the key claimed and the plan's cost held in the team's quota,
    /// in one durable commit. `Some` when the key turned out answered meanwhile.
    async fn reserve(
        &mut self,
        plan: &Plan,
        cloud: &CloudClient,
        reservation_id: &str,
    ) -> Result<Option<SavedResponse>, CreateError> {
        let asked = &self.asked;
        let team = asked.team.clone().unwrap_or_default();
        let decision_id = asked
            .decision
            .as_ref()
            .map(|d| d.decision_id.clone())
            .unwrap_or_default();
        let limit = asked.policy.team(&team).and_then(|t| t.quota);
        let region_limit = asked.region_limit(&team, cloud);
        let request = Reserve {
            new: NewReservation {
                id: reservation_id.to_owned(),
                team,
                subject: asked.employee.subject.clone(),
                cost: reserve::cost_of(plan),
                region: cloud.region().to_owned(),
                project_id: cloud.project_id().to_owned(),
                target: asked.input.request.target.clone(),
                target_instance_id: plan.target_instance_id.clone(),
                name: plan.body.name.clone(),
                size: asked.input.request.size.clone(),
                labels: plan.labels.clone(),
                lease_ms: plan.lease_ms,
                decision_id,
                request_id: asked.request_id.clone(),
                exception_id: asked
                    .input
                    .waiver
                    .as_ref()
                    .map(|waiver| waiver.exception_id.clone()),
            },
            limit,
            region_limit,
            key: self.key.as_ref().map(|key| Claim {
                request: key.request.clone(),
                ttl_ms: asked.gateway.idempotency_ttl_ms,
                reservation_id: reservation_id.to_owned(),
            }),
        };
        match reserve::reserve(&asked.gateway.store, request).await {
            Ok(reserved) => {
                self.reserved = Some(reserved);
                Ok(None)
            }
            Err(ReserveError::Exceeded(exceeded)) => Err(CreateError::Quota(exceeded)),
            Err(ReserveError::KeyTaken(KeyConflict::Saved(saved))) => Ok(Some(saved)),
            Err(ReserveError::KeyTaken(KeyConflict::InFlight)) => {
                Err(CreateError::Idempotency(IdempotencyError::InFlight))
            }
            Err(ReserveError::KeyTaken(KeyConflict::Reused)) => {
                Err(CreateError::Idempotency(IdempotencyError::Reused))
            }
            Err(ReserveError::Storage(error)) => {
                tracing::error!(error = ?error, "the quota ledger is unavailable; nothing is sent upstream");
                Err(CreateError::Storage(error))
            }
        }
    }

    /// Phase 6, **settle**: the reservation by the cloud's answer; the change is committed
    /// with the decision ([`Flow::finish`]).
    fn settle(
        &mut self,
        plan: Plan,
        region: &str,
        reservation_id: String,
        answer: Result<CreateStarRocksResponse, Arc<CloudError>>,
    ) -> Result<Created, CreateError> {
        let (settlement, change) = settle::settle(&reservation_id, &answer);
        self.settlement = Some(settlement);
        self.change = change;
        self.answer = Some(answer.clone());
        let asked = &mut self.asked;
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
            region: region.to_owned(),
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
    type Output = CreateAnswer;
    type Error = CreateError;

    async fn phases(&mut self) -> Result<CreateAnswer, CreateError> {
        if let Some(saved) = self.check_key().await? {
            return Ok(CreateAnswer::Replayed(saved));
        }
        let team = self.asked.authorize()?;
        let plan = self.asked.evaluate(&team).map_err(CreateError::Denied)?;
        let cloud = self.asked.cloud_for(&plan)?;
        // Time-ordered: the ledger's key grows at its right edge.
        let reservation_id = uuid::Uuid::now_v7().to_string();
        if let Some(saved) = self.reserve(&plan, &cloud, &reservation_id).await? {
            return Ok(CreateAnswer::Replayed(saved));
        }
        let answer = forward::create(&cloud, &plan, &self.asked.request_id).await;
        self.settle(plan, cloud.region(), reservation_id, answer)
            .map(|created| CreateAnswer::Created(Box::new(created)))
    }

    fn entry(&self, result: &Result<CreateAnswer, CreateError>) -> Option<Entry> {
        if matches!(result, Ok(CreateAnswer::Replayed(_))) {
            // The first request's decision is in the log; a replay decides nothing.
            return None;
        }
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

    fn finish(&self, result: &Result<CreateAnswer, CreateError>) -> Option<Finish> {
        // Only a create that reached the cloud has anything left to write.
        self.answer.as_ref()?;
        let key = self.key.as_ref().map(|key| {
            let outcome = (key.replay)(result).map_or(KeyOutcome::Forget, KeyOutcome::Save);
            (key.request.clone(), outcome)
        });
        Some(Finish {
            change: self.change.clone(),
            decision: None,
            key,
        })
    }
}

impl Gateway {
    /// Creates an instance for `employee`, or says which phase refused and why. With a key,
    /// the same request is answered once: later ones get the first answer.
    pub async fn create(
        &self,
        employee: &Employee,
        input: CreateInput,
        request_id: &str,
        key: Option<Idempotent>,
    ) -> Result<CreateAnswer, CreateError> {
        let flow = CreateFlow {
            asked: Asked::new(self, employee, input, request_id),
            key,
            reserved: None,
            settlement: None,
            change: None,
            answer: None,
        };
        drive(&self.store, flow).await
    }
}
