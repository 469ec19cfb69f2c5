//! Phase 2, **authorize**: which team the employee acts for, that the policy knows it, and
//! that the team may attach instances to the named target. A team never reaches another
//! team's targets.

use super::authenticate::Employee;
use crate::policy::Policy;

/// Why an employee may not act for the team they asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeamError {
    #[error("you are not a member of team `{team}`; your teams: {teams}")]
    NotMember { team: String, teams: String },
    #[error("your token names no team")]
    NoTeam,
    #[error("you are in several teams; name one with the X-Team header: {0}")]
    Ambiguous(String),
    #[error("team `{0}` is not declared in the policy")]
    Undeclared(String),
}

/// An operation reserved to platform admins, asked for by someone else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is reserved to platform admins")]
pub struct AdminRequired(pub &'static str);

/// The team a request acts for: the one named (the `X-Team` header, or `team` in a list's
/// query), or the employee's only team. Platform admins may name any team the policy declares.
pub fn select_team(
    employee: &Employee,
    requested: Option<&str>,
    policy: &Policy,
) -> Result<String, TeamError> {
    match requested.map(str::trim).filter(|t| !t.is_empty()) {
        Some(team) if employee.teams.iter().any(|t| t == team) => Ok(team.to_owned()),
        Some(team) if employee.admin && policy.team(team).is_some() => Ok(team.to_owned()),
        Some(team) => Err(TeamError::NotMember {
            team: team.to_owned(),
            teams: list(&employee.teams),
        }),
        None => match employee.teams.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(TeamError::NoTeam),
            several => Err(TeamError::Ambiguous(list(several))),
        },
    }
}

/// Platform admins only: `what` names the operation in the refusal.
pub fn require_admin(employee: &Employee, what: &'static str) -> Result<(), AdminRequired> {
    if employee.admin {
        Ok(())
    } else {
        Err(AdminRequired(what))
    }
}

/// Whether the employee may see what belongs to `team`: their own teams', or any for admins.
pub fn may_see(employee: &Employee, team: &str) -> bool {
    employee.admin || employee.teams.iter().any(|t| t == team)
}

fn list(teams: &[String]) -> String {
    if teams.is_empty() {
        "none".into()
    } else {
        teams.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::parse(include_str!("../../config/policy.example.toml")).expect("example policy")
    }

    fn employee(teams: &[&str], admin: bool) -> Employee {
        Employee {
            subject: "dana".into(),
            email: None,
            teams: teams.iter().map(|t| (*t).to_owned()).collect(),
            admin,
            groups: Vec::new(),
        }
    }

    #[test]
    fn a_single_team_is_chosen_without_asking() {
        assert_eq!(
            select_team(&employee(&["analytics"], false), None, &policy()).ok(),
            Some("analytics".into())
        );
    }

    #[test]
    fn several_teams_need_a_choice_listing_them() {
        let error = select_team(
            &employee(&["analytics", "payments"], false),
            None,
            &policy(),
        )
        .expect_err("ambiguous");
        assert_eq!(error, TeamError::Ambiguous("analytics, payments".into()));
    }

    #[test]
    fn naming_a_team_one_is_not_in_is_refused() {
        let error = select_team(
            &employee(&["analytics"], false),
            Some("payments"),
            &policy(),
        )
        .expect_err("not a member");
        assert!(matches!(error, TeamError::NotMember { team, .. } if team == "payments"));
    }

    #[test]
    fn admins_may_act_for_any_declared_team() {
        let admin = employee(&[], true);
        assert_eq!(
            select_team(&admin, Some("payments"), &policy()).ok(),
            Some("payments".into())
        );
        assert!(select_team(&admin, Some("nonexistent"), &policy()).is_err());
    }
}
