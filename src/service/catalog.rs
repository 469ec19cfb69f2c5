//! What the caller may order, and who the gateway thinks they are.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::Gateway;
use crate::pipeline::authenticate::Employee;
use crate::pipeline::authorize::{TeamError, select_team};
use crate::policy::{HaMode, Policy, Quota, Team};
use crate::storage::StorageError;
use crate::storage::ledger::Cost;

/// Why a catalog cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Team(#[from] TeamError),
    #[error("the ledger is unavailable")]
    Storage(#[from] StorageError),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeGroup {
    pub flavor_id: String,
    pub count: u32,
    pub volume_gb: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SizeOffer {
    pub name: String,
    pub description: String,
    pub ha_mode: HaMode,
    pub fe: NodeGroup,
    pub be: NodeGroup,
    pub io_type: String,
    /// FE plus BE nodes: what the size costs against the `nodes` quota.
    pub nodes: u32,
    /// All volumes together: what the size costs against the `storage_gb` quota.
    pub storage_gb: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelOffer {
    pub max_count: usize,
    /// Allowed key → the pattern its value must match whole.
    pub allowed: BTreeMap<String, String>,
}

/// What the team may order in one region (AZs and sizes differ by region).
#[derive(Debug, Serialize, ToSchema)]
pub struct RegionOffer {
    pub name: String,
    /// The team's target aliases in this region.
    pub targets: Vec<String>,
    /// Size names the team may order here (their shapes are in `sizes`).
    pub sizes: Vec<String>,
    pub versions: Vec<String>,
    pub azs: Vec<String>,
    /// The AZ used here when a create names none.
    pub default_az: String,
    /// The team's own limits in this region, besides `quota` (which counts every region).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Catalog {
    pub team: String,
    pub policy_revision: String,
    pub sizes: Vec<SizeOffer>,
    /// Target aliases to use as `target`, in every region.
    pub targets: Vec<String>,
    /// Versions, AZs and the default AZ of the default region; `regions` has each region's.
    pub versions: Vec<String>,
    pub default_version: String,
    pub azs: Vec<String>,
    pub default_az: String,
    /// Each region the team has targets in, the default region first.
    pub regions: Vec<RegionOffer>,
    /// Allowed time zones; absent when any valid one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zones: Option<Vec<String>>,
    pub default_time_zone: String,
    pub labels: LabelOffer,
    /// System tags injected into every instance of the team.
    pub sys_tags: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// What the team uses now, next to `quota`.
    pub usage: Cost,
    /// Rules an approved exception may waive for the team (`POST /v1/requests`).
    pub exceptable: Vec<String>,
    /// Sizes beyond `sizes` the team may ask for as an exception, when `size.allowed` is
    /// exceptable.
    pub exception_sizes: Vec<String>,
}

fn region_offer(policy: &Policy, team: &Team, region: &str) -> RegionOffer {
    let defaults = &policy.file.defaults;
    let rules = policy.region_rules(Some(region));
    RegionOffer {
        name: region.to_owned(),
        targets: team
            .targets
            .iter()
            .filter(|(_, target)| target.region.as_deref() == Some(region))
            .map(|(alias, _)| alias.clone())
            .collect(),
        sizes: team
            .sizes_in(rules)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        versions: team
            .versions_in(defaults, rules)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        azs: policy
            .file
            .team_azs(team, Some(region))
            .into_iter()
            .map(str::to_owned)
            .collect(),
        default_az: rules
            .az_code
            .clone()
            .unwrap_or_else(|| defaults.az_code.clone()),
        quota: team.region_quotas.get(region).copied(),
    }
}

fn catalog_of(
    policy: &Policy,
    team_name: &str,
    default_region: &str,
    usage: Cost,
) -> Option<Catalog> {
    let team = policy.team(team_name)?;
    let defaults = &policy.file.defaults;
    let mut region_names: Vec<&str> = std::iter::once(default_region)
        .chain(team.targets.values().filter_map(|t| t.region.as_deref()))
        .collect();
    region_names[1..].sort_unstable();
    region_names.dedup();
    let regions: Vec<RegionOffer> = region_names
        .into_iter()
        .map(|name| region_offer(policy, team, name))
        .filter(|offer| !offer.targets.is_empty() || offer.name == default_region)
        .collect();
    let home = region_offer(policy, team, default_region);
    let sizes = team
        .allowed_sizes
        .iter()
        .filter_map(|name| policy.size(name).map(|size| (name, size)))
        .map(|(name, size)| SizeOffer {
            name: name.clone(),
            description: size.description.clone(),
            ha_mode: size.ha_mode,
            fe: NodeGroup {
                flavor_id: size.fe_flavor_id.clone(),
                count: size.fe_count,
                volume_gb: size.fe_volume_gb,
            },
            be: NodeGroup {
                flavor_id: size.be_flavor_id.clone(),
                count: size.be_count,
                volume_gb: size.be_volume_gb,
            },
            io_type: size.io_type(defaults).to_owned(),
            nodes: size.nodes(),
            storage_gb: size.storage_gb(),
        })
        .collect();
    let exception_sizes = if policy.exceptable(team_name, crate::policy::rules::SIZE_ALLOWED) {
        policy
            .file
            .sizes
            .keys()
            .filter(|name| !team.allowed_sizes.contains(name))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    Some(Catalog {
        team: team_name.to_owned(),
        exceptable: team.exceptions.exceptable.clone(),
        exception_sizes,
        policy_revision: policy.revision.clone(),
        sizes,
        targets: team.targets.keys().cloned().collect(),
        versions: home.versions,
        default_version: defaults.engine_version.clone(),
        azs: home.azs,
        default_az: home.default_az,
        regions,
        time_zones: team.allowed_time_zones.clone(),
        default_time_zone: defaults.time_zone.clone(),
        labels: LabelOffer {
            max_count: team.labels.max_count,
            allowed: team.labels.allowed.clone(),
        },
        sys_tags: team.injected_tags().into_iter().collect(),
        quota: team.quota,
        usage,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMembership {
    pub name: String,
    /// Whether the policy declares this team (only declared teams can order).
    pub known: bool,
    /// The team's limits, when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// What the team uses now (declared teams only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Cost>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "subject": "alice",
    "email": "alice@example.com",
    "teams": [{
        "name": "analytics",
        "known": true,
        "quota": {"instances": 5, "nodes": 30, "storage_gb": 10000},
        "usage": {"instances": 2, "nodes": 4, "storage_gb": 400}
    }],
    "admin": false,
    "policy_revision": "3f2a9c1e"
}))]
pub struct Me {
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub teams: Vec<TeamMembership>,
    pub admin: bool,
    pub policy_revision: String,
}

impl Gateway {
    /// What `team` (or the employee's only team) may order, with its usage.
    pub async fn catalog(
        &self,
        employee: &Employee,
        team: Option<&str>,
    ) -> Result<Catalog, CatalogError> {
        let policy = self.policy.current();
        let team = select_team(employee, team, &policy)?;
        crate::telemetry::record_team(&team);
        let usage = self.store.usage(&team).await?;
        catalog_of(&policy, &team, self.clouds.default_region(), usage)
            .ok_or_else(|| TeamError::Undeclared(team).into())
    }

    /// The employee as the gateway sees them, with each declared team's quota and usage.
    pub async fn me(&self, employee: &Employee) -> Result<Me, StorageError> {
        let policy = self.policy.current();
        let mut teams = Vec::new();
        for name in &employee.teams {
            let team = policy.team(name);
            let usage = match team {
                Some(_) => Some(self.store.usage(name).await?),
                None => None,
            };
            teams.push(TeamMembership {
                name: name.clone(),
                known: team.is_some(),
                quota: team.and_then(|t| t.quota),
                usage,
            });
        }
        Ok(Me {
            teams,
            subject: employee.subject.clone(),
            email: employee.email.clone(),
            admin: employee.admin,
            policy_revision: policy.revision.clone(),
        })
    }
}
