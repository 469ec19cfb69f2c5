//! Phase 2, **authorize**: which team the employee acts for, that the policy knows it, and
//! that the team may attach instances to the named target. A team never reaches another
//! team's targets.

use super::authenticate::Employee;
use crate::error::{ErrorCode, FieldError, Problem};
use crate::policy::Policy;

/// The team a request acts for: the one named (`X-Team` header or `team` body field), or the
/// employee's only team. Platform admins may name any team the policy declares.
pub fn select_team(
    employee: &Employee,
    requested: Option<&str>,
    policy: &Policy,
) -> Result<String, Problem> {
    match requested.map(str::trim).filter(|t| !t.is_empty()) {
        Some(team) if employee.teams.iter().any(|t| t == team) => Ok(team.to_owned()),
        Some(team) if employee.admin && policy.team(team).is_some() => Ok(team.to_owned()),
        Some(team) => Err(Problem::new(
            ErrorCode::NotTeamMember,
            format!(
                "you are not a member of team `{team}`; your teams: {}",
                list(&employee.teams)
            ),
        )),
        None => match employee.teams.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(Problem::new(
                ErrorCode::NotTeamMember,
                "your token names no team",
            )),
            several => {
                let message = format!(
                    "you are in several teams; name one with the X-Team header: {}",
                    list(several)
                );
                Err(
                    Problem::new(ErrorCode::TeamRequired, message.clone()).with_field_errors(vec![
                        FieldError {
                            field: "team".into(),
                            message,
                        },
                    ]),
                )
            }
        },
    }
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
        let problem = select_team(
            &employee(&["analytics", "payments"], false),
            None,
            &policy(),
        )
        .expect_err("ambiguous");
        assert_eq!(problem.code, ErrorCode::TeamRequired);
        assert!(problem.detail.contains("analytics, payments"));
    }

    #[test]
    fn naming_a_team_one_is_not_in_is_refused() {
        let problem = select_team(
            &employee(&["analytics"], false),
            Some("payments"),
            &policy(),
        )
        .expect_err("not a member");
        assert_eq!(problem.code, ErrorCode::NotTeamMember);
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
