//! Dry-run: the create flow stopped after evaluate, plus a quota preview. Nothing is
//! reserved and nothing is sent; the decision is recorded like any other.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use super::create::{Asked, CreateError, CreateInput};
use super::{Flow, Gateway, drive};
use crate::cloud::CloudClient;
use crate::cloud::model::CreateStarRocksBody;
use crate::pipeline::authenticate::Employee;
use crate::pipeline::evaluate::{Decision, Plan};
use crate::pipeline::record::Entry;
use crate::pipeline::reserve;
use crate::policy::Quota;
use crate::storage::decisions::{Action, Outcome};
use crate::storage::ledger::Cost;

/// The call a create would make.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamCall {
    /// The region whose endpoint, project and credentials the call would use.
    pub region: String,
    pub method: String,
    pub path: String,
    /// The exact body, with `db_root_pwd` redacted.
    #[schema(value_type = Object)]
    #[serde(serialize_with = "redacted")]
    pub body: CreateStarRocksBody,
}

fn redacted<S: serde::Serializer>(
    body: &CreateStarRocksBody,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    body.redacted().serialize(serializer)
}

/// A dry-run's view of the team's quota.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotaPreview {
    /// What the create would cost.
    pub cost: Cost,
    /// What the team uses now.
    pub used: Cost,
    /// The team's limits; absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Quota>,
    /// The team's own limits in the target's region, when it has some there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionQuotaPreview>,
    /// Whether the create would fit right now (the region's limits too).
    pub fits: bool,
}

/// A dry-run's view of the team's quota in the target's region.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegionQuotaPreview {
    pub name: String,
    /// What the team uses in the region now.
    pub used: Cost,
    pub limit: Quota,
}

/// A dry-run's answer: the decision, and the upstream call when it allows.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunResponse {
    #[schema(value_type = Decision)]
    pub decision: Arc<Decision>,
    /// Absent when the decision denies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamCall>,
    /// Whether the team's quota would admit it; absent when the decision denies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaPreview>,
    /// The caller labels the gateway would record, keys lower-cased.
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug)]
struct DryRunFlow<'g> {
    asked: Asked<'g>,
    quota: Option<QuotaPreview>,
}

impl DryRunFlow<'_> {
    /// What the team uses now against what the plan would cost.
    async fn preview(
        &mut self,
        plan: &Plan,
        team: &str,
        cloud: &CloudClient,
    ) -> Result<QuotaPreview, CreateError> {
        let gateway = self.asked.gateway;
        let used = gateway
            .store
            .usage(team)
            .await
            .map_err(CreateError::Storage)?;
        let cost = reserve::cost_of(plan);
        let limit = self.asked.policy.team(team).and_then(|t| t.quota);
        let region = match self.asked.region_limit(team, cloud) {
            Some(region) => {
                let used = gateway
                    .store
                    .usage_in_region(team, cloud.region(), region.default_region)
                    .await
                    .map_err(CreateError::Storage)?;
                Some(RegionQuotaPreview {
                    name: cloud.region().to_owned(),
                    used,
                    limit: region.limit,
                })
            }
            None => None,
        };
        let preview = QuotaPreview {
            cost,
            used,
            limit,
            fits: limit.is_none_or(|limit| used.plus(cost).within(&limit))
                && region
                    .as_ref()
                    .is_none_or(|r| r.used.plus(cost).within(&r.limit)),
            region,
        };
        self.quota = Some(preview.clone());
        Ok(preview)
    }

    fn upstream_call(
        cloud: &CloudClient,
        target_instance_id: &str,
        body: CreateStarRocksBody,
    ) -> UpstreamCall {
        UpstreamCall {
            region: cloud.region().to_owned(),
            method: "POST".into(),
            path: format!(
                "/v3/{}/instances/{target_instance_id}/starrocks",
                cloud.project_id(),
            ),
            body,
        }
    }
}

impl Flow for DryRunFlow<'_> {
    type Output = DryRunResponse;
    type Error = CreateError;

    async fn phases(&mut self) -> Result<DryRunResponse, CreateError> {
        let team = self.asked.authorize()?;
        let evaluated = self.asked.evaluate(&team);
        let decision = self.asked.decision.clone().unwrap_or_default();
        let Ok(plan) = evaluated else {
            return Ok(DryRunResponse {
                decision,
                upstream: None,
                quota: None,
                labels: BTreeMap::new(),
            });
        };
        let cloud = self.asked.cloud_for(&plan)?;
        let quota = self.preview(&plan, &team, &cloud).await?;
        let Plan {
            target_instance_id,
            labels,
            body,
            ..
        } = plan;
        Ok(DryRunResponse {
            decision,
            upstream: Some(Self::upstream_call(&cloud, &target_instance_id, body)),
            quota: Some(quota),
            labels,
        })
    }

    fn entry(&self, result: &Result<DryRunResponse, CreateError>) -> Option<Entry> {
        let mut entry = self.asked.entry(Action::DryRun)?;
        match result {
            Ok(answer) => {
                let fits = self.quota.as_ref().is_none_or(|q| q.fits);
                entry.outcome = if answer.decision.allowed && fits {
                    Outcome::Allowed
                } else {
                    Outcome::Denied
                };
                entry.quota_before = self.quota.as_ref().map(|q| q.used);
            }
            Err(error) => entry = entry.refused(Outcome::Failed, error),
        }
        Some(entry)
    }
}

impl Gateway {
    /// What a create would do, without doing it.
    pub async fn dry_run(
        &self,
        employee: &Employee,
        input: CreateInput,
        request_id: &str,
    ) -> Result<DryRunResponse, CreateError> {
        let flow = DryRunFlow {
            asked: Asked::new(self, employee, input, request_id),
            quota: None,
        };
        drive(&self.store, flow).await
    }
}
