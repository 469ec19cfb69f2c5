//! Phase 3, **evaluate**: check the request against the team's allowances and expand it into
//! the full upstream body, injecting the mandatory system tags.
//!
//! A pure function of (employee, request, policy): no I/O, so every rule is unit-testable.

use serde::Serialize;
use utoipa::ToSchema;

use super::authenticate::Employee;
use super::authorize;
use crate::cloud::model::{
    CreateStarRocksBody, ENTERPRISE_PROJECT_TAG, Engine, Ha, Tag, TagsInfo, Volume,
};
use crate::domain::{InstanceName, RootPassword, TimeZone};
use crate::error::{ErrorCode, Problem, Violation};
use crate::policy::Policy;

pub const SIZE_ALLOWED: &str = "size.allowed";
pub const VERSION_ALLOWED: &str = "version.allowed";

/// The upstream's only engine type.
const ENGINE_TYPE: &str = "star-rocks";
/// The upstream supports single-AZ deployments only.
const AZ_MODE: &str = "single";

/// A create request whose fields already passed their own syntax checks.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub name: InstanceName,
    pub target: String,
    pub size: String,
    pub version: Option<String>,
    pub time_zone: Option<TimeZone>,
}

/// One rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RuleOutcome {
    pub rule: String,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl RuleOutcome {
    pub fn passed(rule: &str) -> Self {
        Self {
            rule: rule.to_owned(),
            passed: true,
            message: None,
        }
    }

    pub fn failed(rule: &str, message: String) -> Self {
        Self {
            rule: rule.to_owned(),
            passed: false,
            message: Some(message),
        }
    }

    fn check(rule: &str, ok: bool, message: impl FnOnce() -> String) -> Self {
        if ok {
            Self::passed(rule)
        } else {
            Self::failed(rule, message())
        }
    }
}

/// What policy made of a request.
#[derive(Debug, Clone)]
pub struct Decision {
    pub id: String,
    pub allowed: bool,
    pub rules: Vec<RuleOutcome>,
    pub policy_revision: String,
}

impl Decision {
    fn new(rules: Vec<RuleOutcome>, policy: &Policy) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            allowed: rules.iter().all(|r| r.passed),
            rules,
            policy_revision: policy.revision.clone(),
        }
    }

    /// The `403` listing every failed rule, never just the first.
    pub fn denial(&self) -> Problem {
        let violations: Vec<Violation> = self
            .rules
            .iter()
            .filter(|r| !r.passed)
            .map(|r| Violation {
                rule: r.rule.clone(),
                message: r.message.clone().unwrap_or_default(),
            })
            .collect();
        let detail = violations
            .iter()
            .map(|v| v.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let mut problem = Problem::new(ErrorCode::PolicyDenied, detail);
        problem.violations = violations;
        problem.decision_id = Some(self.id.clone());
        problem
    }
}

/// The allowed request, expanded into exactly what will be sent upstream.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target_instance_id: String,
    pub body: CreateStarRocksBody,
}

/// Evaluates `request` for `employee`. The plan is present exactly when the decision allows.
pub fn evaluate(
    employee: &Employee,
    request: &CreateRequest,
    password: RootPassword,
    policy: &Policy,
) -> (Decision, Option<Plan>) {
    let team = match authorize::team(employee, policy) {
        Ok(team) => team,
        Err(failed) => return (Decision::new(vec![failed], policy), None),
    };
    let defaults = &policy.file.defaults;
    let mut rules = vec![RuleOutcome::passed(authorize::TEAM_KNOWN)];

    let target = authorize::target(employee, team, &request.target);
    rules.push(match &target {
        Ok(_) => RuleOutcome::passed(authorize::TARGET_ALLOWED),
        Err(failed) => failed.clone(),
    });

    let size = policy
        .size(&request.size)
        .filter(|_| team.allowed_sizes.contains(&request.size));
    rules.push(RuleOutcome::check(SIZE_ALLOWED, size.is_some(), || {
        format!(
            "team `{}` may not use size `{}`; allowed: {}",
            employee.team,
            request.size,
            team.allowed_sizes.join(", ")
        )
    }));

    let version = request
        .version
        .clone()
        .unwrap_or_else(|| defaults.engine_version.clone());
    rules.push(RuleOutcome::check(
        VERSION_ALLOWED,
        team.allows_version(&version, defaults),
        || {
            let allowed = team
                .allowed_versions
                .clone()
                .unwrap_or_else(|| vec![defaults.engine_version.clone()]);
            format!(
                "team `{}` may not use engine version `{version}`; allowed: {}",
                employee.team,
                allowed.join(", ")
            )
        },
    ));

    let decision = Decision::new(rules, policy);
    let (Ok(target_instance_id), Some(size), true) = (target, size, decision.allowed) else {
        return (decision, None);
    };
    let io_type = size
        .io_type
        .clone()
        .unwrap_or_else(|| defaults.io_type.clone());
    let body = CreateStarRocksBody {
        name: request.name.to_string(),
        engine: Engine {
            engine_type: ENGINE_TYPE.into(),
            version,
        },
        ha: Ha {
            mode: size.ha_mode.as_str().into(),
        },
        fe_flavor_id: size.fe_flavor_id.clone(),
        be_flavor_id: size.be_flavor_id.clone(),
        db_root_pwd: password,
        fe_count: size.fe_count,
        be_count: size.be_count,
        az_mode: AZ_MODE.into(),
        fe_volume: Volume {
            io_type: io_type.clone(),
            capacity_in_gb: size.fe_volume_gb,
        },
        be_volume: Volume {
            io_type,
            capacity_in_gb: size.be_volume_gb,
        },
        az_code: defaults.az_code.clone(),
        time_zone: request
            .time_zone
            .as_ref()
            .map_or_else(|| defaults.time_zone.clone(), |tz| tz.as_ref().to_owned()),
        tags_info: TagsInfo {
            sys_tags: vec![Tag {
                key: ENTERPRISE_PROJECT_TAG.into(),
                value: team.enterprise_project_id.clone(),
            }],
        },
    };
    let plan = Plan {
        target_instance_id: target_instance_id.to_owned(),
        body,
    };
    (decision, Some(plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::parse(include_str!("../../config/policy.example.toml")).expect("example policy")
    }

    fn employee(team: &str) -> Employee {
        Employee {
            subject: "alice".into(),
            email: None,
            team: team.into(),
        }
    }

    fn request(target: &str, size: &str) -> CreateRequest {
        CreateRequest {
            name: InstanceName::parse("sales-cube").expect("valid name"),
            target: target.into(),
            size: size.into(),
            version: None,
            time_zone: None,
        }
    }

    fn failed_rules(decision: &Decision) -> Vec<&str> {
        decision
            .rules
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.rule.as_str())
            .collect()
    }

    #[test]
    fn an_allowed_request_expands_the_size_profile_and_injects_the_enterprise_project() {
        let (decision, plan) = evaluate(
            &employee("analytics"),
            &request("analytics-prod", "medium"),
            RootPassword::generate(),
            &policy(),
        );
        assert!(decision.allowed);
        let plan = plan.expect("allowed requests have a plan");
        assert_eq!(
            plan.target_instance_id,
            "40dc4c5729f14aad893e2dcd5baf6a15in07"
        );
        assert_eq!((plan.body.fe_count, plan.body.be_count), (3, 3));
        assert_eq!(plan.body.ha.mode, "Cluster");
        assert_eq!(plan.body.be_volume.capacity_in_gb, 500);
        assert_eq!(plan.body.engine.version, "3.1");
        assert_eq!(plan.body.time_zone, "UTC+08:00");
        assert_eq!(
            plan.body.tags_info.sys_tags,
            vec![Tag {
                key: ENTERPRISE_PROJECT_TAG.into(),
                value: "0".into()
            }]
        );
    }

    #[test]
    fn an_unknown_team_is_denied_by_team_known() {
        let (decision, plan) = evaluate(
            &employee("marketing"),
            &request("analytics-prod", "small"),
            RootPassword::generate(),
            &policy(),
        );
        assert!(plan.is_none());
        assert_eq!(failed_rules(&decision), vec![TEAM_KNOWN_ID]);
    }

    const TEAM_KNOWN_ID: &str = authorize::TEAM_KNOWN;

    #[test]
    fn another_teams_target_is_denied_by_target_allowed() {
        let (decision, plan) = evaluate(
            &employee("payments"),
            &request("analytics-prod", "small"),
            RootPassword::generate(),
            &policy(),
        );
        assert!(plan.is_none());
        assert_eq!(failed_rules(&decision), vec![authorize::TARGET_ALLOWED]);
    }

    #[test]
    fn a_size_the_team_may_not_use_is_denied_by_size_allowed() {
        let (decision, _) = evaluate(
            &employee("payments"),
            &request("payments-ledger", "medium"),
            RootPassword::generate(),
            &policy(),
        );
        assert_eq!(failed_rules(&decision), vec![SIZE_ALLOWED]);
    }

    #[test]
    fn an_undefined_size_is_denied_by_size_allowed() {
        let (decision, _) = evaluate(
            &employee("analytics"),
            &request("analytics-prod", "gigantic"),
            RootPassword::generate(),
            &policy(),
        );
        assert_eq!(failed_rules(&decision), vec![SIZE_ALLOWED]);
    }

    #[test]
    fn every_failed_rule_is_reported_not_just_the_first() {
        let mut req = request("analytics-prod", "large");
        req.version = Some("2.5".into());
        let (decision, _) = evaluate(
            &employee("payments"),
            &req,
            RootPassword::generate(),
            &policy(),
        );
        assert_eq!(
            failed_rules(&decision),
            vec![authorize::TARGET_ALLOWED, SIZE_ALLOWED, VERSION_ALLOWED]
        );
        assert_eq!(decision.denial().violations.len(), 3);
    }

    #[test]
    fn a_team_without_allowed_versions_gets_only_the_default_version() {
        let mut req = request("payments-ledger", "small");
        req.version = Some("3.3".into());
        let (decision, _) = evaluate(
            &employee("payments"),
            &req,
            RootPassword::generate(),
            &policy(),
        );
        assert_eq!(failed_rules(&decision), vec![VERSION_ALLOWED]);
        req.version = Some("3.1".into());
        let (decision, _) = evaluate(
            &employee("payments"),
            &req,
            RootPassword::generate(),
            &policy(),
        );
        assert!(decision.allowed);
    }

    #[test]
    fn a_requested_time_zone_replaces_the_default() {
        let mut req = request("analytics-dev", "small");
        req.time_zone = Some(TimeZone::parse("UTC+01:00").expect("valid"));
        let (_, plan) = evaluate(
            &employee("analytics"),
            &req,
            RootPassword::generate(),
            &policy(),
        );
        assert_eq!(plan.expect("allowed").body.time_zone, "UTC+01:00");
    }
}
