//! Phase 2, **authorize**: the employee's team is known to the policy and may attach
//! instances to the named target. A team never reaches another team's targets.

use super::authenticate::Employee;
use super::evaluate::RuleOutcome;
use crate::policy::{Policy, Team};

pub const TEAM_KNOWN: &str = "team.known";
pub const TARGET_ALLOWED: &str = "target.allowed";

/// The employee's team, or the failed `team.known` rule.
pub fn team<'p>(employee: &Employee, policy: &'p Policy) -> Result<&'p Team, RuleOutcome> {
    policy.team(&employee.team).ok_or_else(|| {
        RuleOutcome::failed(
            TEAM_KNOWN,
            format!("team `{}` is not declared in the policy", employee.team),
        )
    })
}

/// The TaurusDB instance id behind `target`, or the failed `target.allowed` rule.
pub fn target<'p>(
    employee: &Employee,
    team: &'p Team,
    target: &str,
) -> Result<&'p str, RuleOutcome> {
    team.targets.get(target).map(String::as_str).ok_or_else(|| {
        let allowed: Vec<&str> = team.targets.keys().map(String::as_str).collect();
        RuleOutcome::failed(
            TARGET_ALLOWED,
            format!(
                "team `{}` may not use target `{target}`; allowed: {}",
                employee.team,
                allowed.join(", ")
            ),
        )
    })
}
