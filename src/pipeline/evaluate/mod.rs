//! Phase 3, **evaluate**: check the request against the team's allowances and expand it into
//! the full upstream body, injecting the mandatory system tags.
//!
//! [`evaluate`] is a pure function of (employee, team, request, policy): no I/O and no clock,
//! so every rule is unit-testable and a dry-run sees exactly what a create would send.
//! Every rule is evaluated and reported; `audit` rules never deny. The checks are in
//! [`checks`], the expansion into the upstream body in [`body`].

mod body;
mod checks;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::authenticate::Employee;
use crate::cloud::model::CreateStarRocksBody;
use crate::domain::{InstanceName, RootPassword, TimeZone};
use crate::error::Violation;
use crate::policy::{Policy, RuleMode, rules};
use checks::Rules;

/// A create request whose fields already passed their own syntax checks.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub name: InstanceName,
    pub target: String,
    pub size: String,
    pub version: Option<String>,
    pub az: Option<String>,
    pub time_zone: Option<TimeZone>,
    pub labels: BTreeMap<String, String>,
    /// Days the instance should live; the policy's default when absent.
    pub lease_days: Option<f64>,
}

/// One rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RuleOutcome {
    /// Stable rule id, e.g. `size.allowed`.
    pub rule: String,
    pub mode: RuleMode,
    pub passed: bool,
    /// Why the rule failed; absent when it passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The failure was waived by an approved exception, so it does not deny; absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub waived: bool,
}

impl RuleOutcome {
    /// A failure that denies the request.
    pub fn denies(&self) -> bool {
        !self.passed && self.mode == RuleMode::Enforce && !self.waived
    }
}

/// How a denial could still be had: as an exception request (`POST /v1/requests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExceptionHint {
    /// The failed rules an approved exception would waive: every rule that denied.
    pub waives: Vec<String>,
}

/// A value the gateway filled in or resolved, and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Mutation {
    /// Path in the upstream body, e.g. `fe_flavor_id` or `tags_info.sys_tags`.
    pub field: String,
    pub value: String,
    /// e.g. `size small`, `defaults`, `team analytics`.
    pub source: String,
}

/// What policy made of a request.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Decision {
    pub decision_id: String,
    pub allowed: bool,
    pub subject: String,
    pub team: String,
    /// Hash of the policy file that decided.
    pub policy_revision: String,
    /// Every rule evaluated, in order, with its outcome.
    pub rules: Vec<RuleOutcome>,
    /// Values filled in from policy: resolved flavors, defaults, injected tags.
    pub mutations: Vec<Mutation>,
    /// Present when the request is denied only by rules the team's policy lets an approved
    /// exception waive: it can be asked for with `POST /v1/requests`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<ExceptionHint>,
}

impl Decision {
    /// Failed `audit` rules: the would-be denials.
    pub fn audit_failures(&self) -> impl Iterator<Item = &RuleOutcome> {
        self.rules
            .iter()
            .filter(|r| !r.passed && r.mode == RuleMode::Audit)
    }

    /// The refusal listing every denying rule, never just the first.
    pub fn denial(&self) -> Denial {
        Denial {
            decision_id: self.decision_id.clone(),
            violations: self
                .rules
                .iter()
                .filter(|r| r.denies())
                .map(|r| Violation {
                    rule: r.rule.clone(),
                    message: r.message.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// The allowed request, expanded into exactly what will be sent upstream.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The target's region; `None` only for a policy not fitted to a gateway's regions (the
    /// `policy` commands), which means the default region.
    pub region: Option<String>,
    pub target_instance_id: String,
    /// Caller labels, keys lower-cased; kept by the gateway, never sent upstream.
    pub labels: BTreeMap<String, String>,
    /// How long the instance lives from its create; `None`: until deleted.
    pub lease_ms: Option<i64>,
    pub body: CreateStarRocksBody,
}

/// The outcome of [`evaluate`]: the plan is present exactly when the decision allows.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub decision: Decision,
    pub plan: Option<Plan>,
}

/// Policy refused a request: every enforcing rule that failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.violations.iter().map(|v| v.message.as_str()).collect::<Vec<_>>().join("; "))]
pub struct Denial {
    pub decision_id: String,
    pub violations: Vec<Violation>,
}

/// Evaluates `request` for `employee` acting for `team_name`, with `password` as the root
/// password of the resulting body.
pub fn evaluate(
    employee: &Employee,
    team_name: &str,
    request: &CreateRequest,
    password: RootPassword,
    policy: &Policy,
    decision_id: String,
) -> Evaluation {
    evaluate_waiving(
        employee,
        team_name,
        request,
        password,
        policy,
        decision_id,
        &[],
    )
}

/// [`evaluate`], with the failures of `waived` rules not denying, as far as the team's
/// policy still marks them exceptable: an approved exception, at the policy in force now.
pub fn evaluate_waiving(
    employee: &Employee,
    team_name: &str,
    request: &CreateRequest,
    password: RootPassword,
    policy: &Policy,
    decision_id: String,
    waived: &[String],
) -> Evaluation {
    let mut rules = Rules {
        policy,
        outcomes: Vec::new(),
        waived: waived
            .iter()
            .filter(|rule| policy.exceptable(team_name, rule))
            .map(String::as_str)
            .collect(),
    };
    let team = policy.team(team_name);
    rules.check(rules::TEAM_KNOWN, team.is_some(), || {
        format!("team `{team_name}` is not declared in the policy")
    });
    let (plan, mutations) = match team {
        Some(team) => checks::check_team_rules(&mut rules, team_name, team, request, password),
        None => (None, Vec::new()),
    };
    let denying: Vec<&RuleOutcome> = rules.outcomes.iter().filter(|r| r.denies()).collect();
    let exception = (!denying.is_empty()
        && denying
            .iter()
            .all(|r| policy.exceptable(team_name, &r.rule)))
    .then(|| ExceptionHint {
        waives: denying.iter().map(|r| r.rule.clone()).collect(),
    });
    let decision = Decision {
        decision_id,
        allowed: denying.is_empty(),
        subject: employee.subject.clone(),
        team: team_name.to_owned(),
        policy_revision: policy.revision.clone(),
        rules: rules.outcomes,
        mutations,
        exception,
    };
    let plan = plan.filter(|_| decision.allowed);
    Evaluation { decision, plan }
}
