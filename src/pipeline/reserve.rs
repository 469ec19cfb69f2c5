//! Phase 4, **reserve**: hold the create's cost in the team's quota ledger before anything is
//! sent upstream. Over quota is a `403 quota_exceeded` naming each dimension.

use super::evaluate::Plan;
use crate::error::{ErrorCode, Problem, QuotaDimension};
use crate::policy::Quota;
use crate::storage::ledger::{Cost, ReserveOutcome};
use crate::storage::{StorageError, Store, ledger::NewReservation};

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

/// The `403` for a request that does not fit.
pub fn exceeded(team: &str, requested: Cost, used: Cost, limit: &Quota) -> Problem {
    let dimension = |name: &str, requested: i64, used: i64, allowed: u32| QuotaDimension {
        dimension: name.into(),
        requested,
        used,
        allowed: i64::from(allowed),
        exceeded: used + requested > i64::from(allowed),
    };
    let quota = vec![
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
    ];
    let over: Vec<String> = quota
        .iter()
        .filter(|d| d.exceeded)
        .map(|d| {
            format!(
                "{} (requested {}, used {}, allowed {})",
                d.dimension, d.requested, d.used, d.allowed
            )
        })
        .collect();
    let mut problem = Problem::new(
        ErrorCode::QuotaExceeded,
        format!("team `{team}` is over quota: {}", over.join("; ")),
    );
    problem.quota = quota;
    problem
}

/// Reserves, or explains why not. `Ok` carries usage before and after; a refusal carries
/// the usage it was measured against.
pub async fn reserve(
    store: &Store,
    new: &NewReservation<'_>,
    limit: Option<&Quota>,
) -> Result<Result<(Cost, Cost), (Problem, Cost)>, StorageError> {
    Ok(match store.reserve(new, limit).await? {
        ReserveOutcome::Reserved { before, after } => Ok((before, after)),
        ReserveOutcome::Exceeded { used } => Err((
            match limit {
                Some(limit) => exceeded(new.team, new.cost, used, limit),
                None => Problem::new(ErrorCode::Internal, "quota exceeded without a limit"),
            },
            used,
        )),
    })
}
