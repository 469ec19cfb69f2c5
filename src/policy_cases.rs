//! `starrocks-gateway policy test POLICY CASES`: table-driven checks of a policy file, so the
//! platform team can prove a change before rollout.
//!
//! A cases file is TOML: each `[[case]]` has a `name`, the token `claims`, the create
//! `request` (the same body as `POST /v1/starrocks`), an optional `team` (as `X-Team`),
//! `expect = "allow" | "deny"`, and optionally `failed_rules`, the exact set of rule ids
//! that must fail (audit rules included).

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::config::ClaimSettings;
use crate::domain::RootPassword;
use crate::pipeline::authenticate::employee_from;
use crate::pipeline::authorize::select_team;
use crate::pipeline::evaluate::evaluate;
use crate::policy::Policy;
use crate::routes::starrocks::wire::{CreateInstanceRequest, parse};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    claims: serde_json::Map<String, serde_json::Value>,
    request: CreateInstanceRequest,
    team: Option<String>,
    expect: Expect,
    failed_rules: Option<BTreeSet<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
}

impl Expect {
    fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// One case's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub name: String,
    /// Why the case failed; `None` when it passed.
    pub failure: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("the cases file is not valid: {0}")]
pub struct CasesError(String);

/// Runs every case against `policy`, mapping claims as `mapping` says.
pub fn run(
    policy: &Policy,
    cases: &str,
    mapping: &ClaimSettings,
) -> Result<Vec<CaseResult>, CasesError> {
    let file: CasesFile = toml::from_str(cases).map_err(|e| CasesError(e.to_string()))?;
    Ok(file
        .case
        .into_iter()
        .map(|case| CaseResult {
            name: case.name.clone(),
            failure: check(policy, case, mapping).err(),
        })
        .collect())
}

fn check(policy: &Policy, case: Case, mapping: &ClaimSettings) -> Result<(), String> {
    let employee =
        employee_from(mapping, &case.claims).map_err(|e| format!("the claims are refused: {e}"))?;
    let (request, password) =
        parse(case.request).map_err(|e| format!("the request is refused: {e}"))?;
    let team = select_team(&employee, case.team.as_deref(), policy)
        .map_err(|e| format!("no team: {e}"))?;
    let password = password.unwrap_or_else(RootPassword::generate);
    let decision = evaluate(
        &employee,
        &team,
        &request,
        password,
        policy,
        "policy-test".into(),
    )
    .decision;
    let failed: BTreeSet<String> = decision
        .rules
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.rule.clone())
        .collect();
    let got = if decision.allowed {
        Expect::Allow
    } else {
        Expect::Deny
    };
    let mut problems = Vec::new();
    if got != case.expect {
        problems.push(format!(
            "expected {}, got {}",
            case.expect.as_str(),
            got.as_str()
        ));
    }
    if let Some(expected) = case.failed_rules
        && expected != failed
    {
        problems.push(format!(
            "expected failed rules {expected:?}, got {failed:?}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = include_str!("../config/policy.example.toml");
    const CASES: &str = include_str!("../config/policy.example.cases.toml");

    fn run_example(cases: &str) -> Vec<CaseResult> {
        let policy = Policy::parse(POLICY).expect("valid policy");
        run(&policy, cases, &ClaimSettings::default()).expect("valid cases")
    }

    #[test]
    fn the_example_cases_pass_against_the_example_policy() {
        let results = run_example(CASES);
        assert!(results.len() >= 8);
        let failures: Vec<_> = results.iter().filter(|r| r.failure.is_some()).collect();
        assert!(failures.is_empty(), "{failures:?}");
    }

    #[test]
    fn a_wrong_expectation_fails_with_a_reason() {
        let results = run_example(
            r#"
            [[case]]
            name = "payments cannot order medium, but the case claims it can"
            claims = { sub = "bob", team = "payments" }
            request = { name = "ledger", target = "payments-ledger", size = "medium" }
            expect = "allow"
        "#,
        );
        let failure = results[0].failure.as_deref().expect("the case fails");
        assert!(failure.contains("expected allow, got deny"), "{failure}");
    }

    #[test]
    fn a_wrong_rule_set_fails_naming_both_sets() {
        let results = run_example(
            r#"
            [[case]]
            name = "wrong rule"
            claims = { sub = "bob", team = "payments" }
            request = { name = "ledger", target = "payments-ledger", size = "medium" }
            expect = "deny"
            failed_rules = ["version.allowed"]
        "#,
        );
        let failure = results[0].failure.as_deref().expect("the case fails");
        assert!(
            failure.contains("size.allowed") && failure.contains("version.allowed"),
            "{failure}"
        );
    }
}
