//! Phase 4, **reserve**: hold the create's cost in the team's quota ledger before anything is
//! sent upstream. Over quota is a refusal naming each dimension.

use super::evaluate::Plan;
use crate::error::QuotaDimension;
use crate::policy::Quota;
use crate::storage::idempotency::KeyConflict;
use crate::storage::ledger::{Cost, Reserve, ReserveOutcome};
use crate::storage::{StorageError, Store};

/// What a plan costs: one instance, its FE and BE nodes, and all their volumes.
pub fn cost_of(plan: &Plan) -> Cost {
    let body = &plan.body;
    Cost {
        instances: 1,
        nodes: i64::from(body.fe_count + body.be_count),
        storage_gb: i64::from(body.fe_count) * i64::from(body.fe_volume.capacity_in_gb)
            + i64::from(body.be_count) * i64::from(body.be_volume.capacity_in_gb),
    }
}

/// The team's quota cannot admit the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("team `{team}` is over quota{}: {}", in_region(self.region.as_deref()), over(&self.dimensions))]
pub struct QuotaExceeded {
    pub team: String,
    /// The region whose own limit (`region_quotas`) it is; `None`: the team's whole quota.
    pub region: Option<String>,
    /// Every dimension, with what was requested, what is used and what is allowed.
    pub dimensions: Vec<QuotaDimension>,
    /// The usage the request was measured against.
    pub used: Cost,
}

fn in_region(region: Option<&str>) -> String {
    region
        .map(|region| format!(" in region `{region}`"))
        .unwrap_or_default()
}

fn over(dimensions: &[QuotaDimension]) -> String {
    dimensions
        .iter()
        .filter(|d| d.exceeded)
        .map(|d| {
            format!(
                "{} (requested {}, used {}, allowed {})",
                d.dimension, d.requested, d.used, d.allowed
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl QuotaExceeded {
    pub fn new(team: &str, requested: Cost, used: Cost, limit: &Quota) -> Self {
        let dimension = |name: &str, requested: i64, used: i64, allowed: u32| QuotaDimension {
            dimension: name.into(),
            requested,
            used,
            allowed: i64::from(allowed),
            exceeded: used + requested > i64::from(allowed),
        };
        Self {
            team: team.to_owned(),
            region: None,
            dimensions: vec![
                dimension(
                    "instances",
                    requested.instances,
                    used.instances,
                    limit.instances,
                ),
                dimension("nodes", requested.nodes, used.nodes, limit.nodes),
                dimension(
                    "storage_gb",
                    requested.storage_gb,
                    used.storage_gb,
                    limit.storage_gb,
                ),
            ],
            used,
        }
    }
}

/// Why nothing was reserved.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error(transparent)]
    Exceeded(QuotaExceeded),
    #[error("the request's Idempotency-Key is taken")]
    KeyTaken(KeyConflict),
    #[error("the quota ledger is unavailable")]
    Storage(#[from] StorageError),
}

/// Usage of the team before and after the reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    pub before: Cost,
    pub after: Cost,
}

/// Claims the key, if any, and reserves the cost within the limit (no limit: always
/// admitted), in one durable commit.
pub async fn reserve(store: &Store, reserve: Reserve) -> Result<Reserved, ReserveError> {
    let (team, cost) = (reserve.new.team.clone(), reserve.new.cost);
    let (limit, region_limit) = (reserve.limit, reserve.region_limit.clone());
    match store.reserve(reserve).await? {
        ReserveOutcome::Reserved { before, after } => Ok(Reserved { before, after }),
        ReserveOutcome::Exceeded { used, region } => {
            let limit = match &region {
                Some(_) => region_limit.map(|r| r.limit),
                None => limit,
            };
            let limit = limit.ok_or_else(|| {
                StorageError::Corrupt("the ledger refused a create no limit applies to".into())
            })?;
            Err(ReserveError::Exceeded(QuotaExceeded {
                region,
                ..QuotaExceeded::new(&team, cost, used, &limit)
            }))
        }
        ReserveOutcome::KeyTaken(conflict) => Err(ReserveError::KeyTaken(conflict)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_only_the_dimensions_over_the_limit() {
        let limit = Quota {
            instances: 5,
            nodes: 20,
            storage_gb: 1_000,
        };
        let used = Cost {
            instances: 5,
            nodes: 4,
            storage_gb: 100,
        };
        let requested = Cost {
            instances: 1,
            nodes: 2,
            storage_gb: 40,
        };
        let exceeded = QuotaExceeded::new("analytics", requested, used, &limit);
        assert_eq!(
            exceeded.to_string(),
            "team `analytics` is over quota: instances (requested 1, used 5, allowed 5)"
        );
        assert_eq!(
            exceeded
                .dimensions
                .iter()
                .filter(|d| d.exceeded)
                .map(|d| d.dimension.as_str())
                .collect::<Vec<_>>(),
            vec!["instances"]
        );
    }
}
