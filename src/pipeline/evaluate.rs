//! Phase 3, **evaluate**: check the request against the team's allowances and expand it into
//! the full upstream body, injecting the mandatory system tags.
//!
//! [`evaluate`] is a pure function of (employee, team, request, policy): no I/O and no clock,
//! so every rule is unit-testable and a dry-run sees exactly what a create would send.
//! Every rule is evaluated and reported; `audit` rules never deny.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::authenticate::Employee;
use crate::cloud::model::{CreateStarRocksBody, Engine, Ha, Tag, TagsInfo, Volume};
use crate::domain::{InstanceName, RootPassword, TimeZone};
use crate::error::{ErrorCode, Problem, Violation};
use crate::policy::{
    MAX_LABEL_KEY_CHARS, MAX_LABEL_VALUE_CHARS, Policy, RuleMode, SizeProfile, Team, rules,
};

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
    pub az: Option<String>,
    pub time_zone: Option<TimeZone>,
    pub labels: BTreeMap<String, String>,
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
}

impl RuleOutcome {
    /// A failure that denies the request.
    pub fn denies(&self) -> bool {
        !self.passed && self.mode == RuleMode::Enforce
    }
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
#[derive(Debug, Clone, Serialize, ToSchema)]
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
}

impl Decision {
    /// Failed `audit` rules: the would-be denials.
    pub fn audit_failures(&self) -> impl Iterator<Item = &RuleOutcome> {
        self.rules
            .iter()
            .filter(|r| !r.passed && r.mode == RuleMode::Audit)
    }

    /// The `403` listing every denying rule, never just the first.
    pub fn denial(&self) -> Problem {
        let violations: Vec<Violation> = self
            .rules
            .iter()
            .filter(|r| r.denies())
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
        problem.decision_id = Some(self.decision_id.clone());
        problem
    }
}

/// The allowed request, expanded into exactly what will be sent upstream.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target_instance_id: String,
    /// Caller labels, keys lower-cased; kept by the gateway, never sent upstream.
    pub labels: BTreeMap<String, String>,
    pub body: CreateStarRocksBody,
}

/// The outcome of [`evaluate`]: the plan is present exactly when the decision allows.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub decision: Decision,
    pub plan: Option<Plan>,
}

struct Rules<'p> {
    policy: &'p Policy,
    outcomes: Vec<RuleOutcome>,
}

impl Rules<'_> {
    fn check(&mut self, rule: &str, ok: bool, message: impl FnOnce() -> String) {
        self.outcomes.push(RuleOutcome {
            rule: rule.to_owned(),
            mode: self.policy.mode(rule),
            passed: ok,
            message: (!ok).then(message),
        });
    }
}

fn quoted(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
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
    let mut rules = Rules {
        policy,
        outcomes: Vec::new(),
    };
    let team = policy.team(team_name);
    rules.check(rules::TEAM_KNOWN, team.is_some(), || {
        format!("team `{team_name}` is not declared in the policy")
    });
    let (plan, mutations) = match team {
        Some(team) => check_team_rules(&mut rules, team_name, team, request, password),
        None => (None, Vec::new()),
    };
    let decision = Decision {
        decision_id,
        allowed: !rules.outcomes.iter().any(RuleOutcome::denies),
        subject: employee.subject.clone(),
        team: team_name.to_owned(),
        policy_revision: policy.revision.clone(),
        rules: rules.outcomes,
        mutations,
    };
    let plan = plan.filter(|_| decision.allowed);
    Evaluation { decision, plan }
}

fn check_team_rules(
    rules: &mut Rules<'_>,
    team_name: &str,
    team: &Team,
    request: &CreateRequest,
    password: RootPassword,
) -> (Option<Plan>, Vec<Mutation>) {
    let policy = rules.policy;
    let defaults = &policy.file.defaults;

    let target = team.targets.get(&request.target);
    rules.check(rules::TARGET_ALLOWED, target.is_some(), || {
        let aliases: Vec<&str> = team.targets.keys().map(String::as_str).collect();
        format!(
            "team `{team_name}` may not use target `{}`; allowed: {}",
            request.target,
            quoted(&aliases)
        )
    });

    let size = policy.size(&request.size);
    let size_allowed = team.allowed_sizes.contains(&request.size);
    rules.check(rules::SIZE_ALLOWED, size.is_some() && size_allowed, || {
        let allowed: Vec<&str> = team.allowed_sizes.iter().map(String::as_str).collect();
        let what = if size.is_some() {
            "may not use"
        } else {
            "cannot order the undefined"
        };
        format!(
            "team `{team_name}` {what} size `{}`; allowed: {}",
            request.size,
            quoted(&allowed)
        )
    });

    let version = request
        .version
        .as_deref()
        .unwrap_or(&defaults.engine_version);
    let versions = team.versions(defaults);
    rules.check(rules::VERSION_ALLOWED, versions.contains(&version), || {
        format!(
            "team `{team_name}` may not use engine version `{version}`; allowed: {}",
            quoted(&versions)
        )
    });

    let az = request.az.as_deref().unwrap_or(&defaults.az_code);
    let azs = team.azs(defaults);
    rules.check(rules::AZ_ALLOWED, azs.contains(&az), || {
        format!(
            "team `{team_name}` may not place instances in AZ `{az}`; allowed: {}",
            quoted(&azs)
        )
    });

    let time_zone = request
        .time_zone
        .as_ref()
        .map_or(defaults.time_zone.as_str(), AsRef::as_ref);
    let zone_allowed = team
        .allowed_time_zones
        .as_ref()
        .is_none_or(|zones| zones.iter().any(|z| z == time_zone));
    rules.check(rules::TIME_ZONE_ALLOWED, zone_allowed, || {
        let zones: Vec<&str> = team
            .allowed_time_zones
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        format!(
            "team `{team_name}` may not use time zone `{time_zone}`; allowed: {}",
            quoted(&zones)
        )
    });

    let labels = check_labels(rules, team_name, team, &request.labels);

    let (Some(target_instance_id), Some(size)) = (target, size) else {
        return (None, Vec::new());
    };
    let mut mutations = Vec::new();
    let body = build_body(
        &mut mutations,
        Resolved {
            team_name,
            team,
            size_name: &request.size,
            size,
            version,
            az,
            time_zone,
        },
        request,
        password,
        defaults.io_type.as_str(),
    );
    let plan = Plan {
        target_instance_id: target_instance_id.clone(),
        labels,
        body,
    };
    (Some(plan), mutations)
}

/// Checks caller labels; returns them with lower-cased keys.
fn check_labels(
    rules: &mut Rules<'_>,
    team_name: &str,
    team: &Team,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let policy = rules.policy;
    let normalized: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect();

    let injected: Vec<String> = team
        .injected_tags()
        .into_iter()
        .map(|(k, _)| k.to_lowercase())
        .collect();
    let reserved: Vec<&str> = normalized
        .keys()
        .filter(|k| k.starts_with("_sys_") || injected.contains(k))
        .map(String::as_str)
        .collect();
    rules.check(rules::LABELS_RESERVED, reserved.is_empty(), || {
        format!("labels may not set system tags: {}", quoted(&reserved))
    });

    let unknown: Vec<&str> = normalized
        .keys()
        .filter(|k| !k.starts_with("_sys_") && policy.label_pattern(team_name, k).is_none())
        .map(String::as_str)
        .collect();
    rules.check(rules::LABELS_KEYS, unknown.is_empty(), || {
        let allowed: Vec<&str> = team.labels.allowed.keys().map(String::as_str).collect();
        format!(
            "label keys not allowed for team `{team_name}`: {}; allowed: {}",
            quoted(&unknown),
            quoted(&allowed)
        )
    });

    let mismatched: Vec<&str> = normalized
        .iter()
        .filter(|(k, v)| {
            policy
                .label_pattern(team_name, k)
                .is_some_and(|pattern| !pattern.is_match(v))
        })
        .map(|(k, _)| k.as_str())
        .collect();
    rules.check(rules::LABELS_VALUES, mismatched.is_empty(), || {
        format!(
            "label values do not match the team's patterns: {}",
            quoted(&mismatched)
        )
    });

    let too_long = normalized.iter().any(|(k, v)| {
        k.chars().count() > MAX_LABEL_KEY_CHARS || v.chars().count() > MAX_LABEL_VALUE_CHARS
    });
    rules.check(rules::LABELS_COUNT, normalized.len() <= team.labels.max_count && !too_long, || {
        format!(
            "at most {} labels, keys up to {MAX_LABEL_KEY_CHARS} and values up to {MAX_LABEL_VALUE_CHARS} characters; got {}",
            team.labels.max_count,
            normalized.len()
        )
    });
    normalized
}

struct Resolved<'a> {
    team_name: &'a str,
    team: &'a Team,
    size_name: &'a str,
    size: &'a SizeProfile,
    version: &'a str,
    az: &'a str,
    time_zone: &'a str,
}

fn build_body(
    mutations: &mut Vec<Mutation>,
    resolved: Resolved<'_>,
    request: &CreateRequest,
    password: RootPassword,
    default_io_type: &str,
) -> CreateStarRocksBody {
    let Resolved {
        team_name,
        team,
        size_name,
        size,
        version,
        az,
        time_zone,
    } = resolved;
    let mut note = |field: &str, value: String, source: String| {
        mutations.push(Mutation {
            field: field.into(),
            value,
            source,
        });
    };
    let from_size = format!("size {size_name}");
    note("ha.mode", size.ha_mode.as_str().into(), from_size.clone());
    note("fe_flavor_id", size.fe_flavor_id.clone(), from_size.clone());
    note("be_flavor_id", size.be_flavor_id.clone(), from_size.clone());
    note("fe_count", size.fe_count.to_string(), from_size.clone());
    note("be_count", size.be_count.to_string(), from_size.clone());
    note(
        "fe_volume.capacity_in_gb",
        size.fe_volume_gb.to_string(),
        from_size.clone(),
    );
    note(
        "be_volume.capacity_in_gb",
        size.be_volume_gb.to_string(),
        from_size.clone(),
    );
    let io_type = size.io_type.as_deref().unwrap_or(default_io_type);
    let io_source = if size.io_type.is_some() {
        from_size
    } else {
        "defaults".into()
    };
    note("fe_volume.io_type", io_type.into(), io_source.clone());
    note("be_volume.io_type", io_type.into(), io_source);
    if request.version.is_none() {
        note("engine.version", version.into(), "defaults".into());
    }
    if request.az.is_none() {
        note("az_code", az.into(), "defaults".into());
    }
    if request.time_zone.is_none() {
        note("time_zone", time_zone.into(), "defaults".into());
    }
    let sys_tags: Vec<Tag> = team
        .injected_tags()
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect();
    for tag in &sys_tags {
        note(
            "tags_info.sys_tags",
            format!("{}={}", tag.key, tag.value),
            format!("team {team_name}"),
        );
    }
    CreateStarRocksBody {
        name: request.name.to_string(),
        engine: Engine {
            engine_type: ENGINE_TYPE.into(),
            version: version.into(),
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
            io_type: io_type.into(),
            capacity_in_gb: size.fe_volume_gb,
        },
        be_volume: Volume {
            io_type: io_type.into(),
            capacity_in_gb: size.be_volume_gb,
        },
        az_code: az.into(),
        time_zone: time_zone.into(),
        tags_info: TagsInfo { sys_tags },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::model::Tag;
    use crate::policy::ENTERPRISE_PROJECT_TAG;

    const EXAMPLE: &str = include_str!("../../config/policy.example.toml");

    fn policy() -> Policy {
        Policy::parse(EXAMPLE).expect("example policy")
    }

    fn policy_with(rules: &str) -> Policy {
        Policy::parse(&EXAMPLE.replacen("[rules]", &format!("[rules]\n{rules}"), 1))
            .expect("valid policy")
    }

    fn alice() -> Employee {
        Employee {
            subject: "alice".into(),
            email: None,
            teams: vec!["analytics".into()],
            admin: false,
        }
    }

    fn request(target: &str, size: &str) -> CreateRequest {
        CreateRequest {
            name: InstanceName::parse("sales-cube").expect("valid name"),
            target: target.into(),
            size: size.into(),
            version: None,
            az: None,
            time_zone: None,
            labels: BTreeMap::new(),
        }
    }

    fn run(team: &str, request: &CreateRequest, policy: &Policy) -> Evaluation {
        evaluate(
            &alice(),
            team,
            request,
            RootPassword::generate(),
            policy,
            "d-1".into(),
        )
    }

    fn failed(evaluation: &Evaluation) -> Vec<&str> {
        evaluation
            .decision
            .rules
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.rule.as_str())
            .collect()
    }

    fn analytics(request: &CreateRequest) -> Evaluation {
        run("analytics", request, &policy())
    }

    #[test]
    fn an_allowed_request_expands_the_size_profile_and_injects_every_system_tag() {
        let evaluation = analytics(&request("analytics-prod", "medium"));
        assert!(evaluation.decision.allowed);
        assert!(failed(&evaluation).is_empty());
        let plan = evaluation.plan.expect("allowed requests have a plan");
        assert_eq!(
            plan.target_instance_id,
            "40dc4c5729f14aad893e2dcd5baf6a15in07"
        );
        assert_eq!((plan.body.fe_count, plan.body.be_count), (3, 3));
        assert_eq!(plan.body.ha.mode, "Cluster");
        assert_eq!(plan.body.be_volume.capacity_in_gb, 500);
        assert_eq!(plan.body.engine.version, "3.1");
        assert_eq!(plan.body.time_zone, "UTC+08:00");
        assert_eq!(plan.body.az_code, "cn-north-4a");
        assert_eq!(
            plan.body.tags_info.sys_tags,
            vec![
                Tag {
                    key: ENTERPRISE_PROJECT_TAG.into(),
                    value: "0".into()
                },
                Tag {
                    key: "_sys_cost_center".into(),
                    value: "CC-1042".into()
                },
            ]
        );
    }

    #[test]
    fn the_decision_lists_every_rule_and_the_mutations_applied() {
        let evaluation = analytics(&request("analytics-prod", "small"));
        let ids: Vec<&str> = evaluation
            .decision
            .rules
            .iter()
            .map(|r| r.rule.as_str())
            .collect();
        assert_eq!(ids, rules::ALL);
        let fields: Vec<&str> = evaluation
            .decision
            .mutations
            .iter()
            .map(|m| m.field.as_str())
            .collect();
        for field in [
            "fe_flavor_id",
            "be_flavor_id",
            "engine.version",
            "time_zone",
            "az_code",
            "tags_info.sys_tags",
        ] {
            assert!(fields.contains(&field), "{field} missing from {fields:?}");
        }
        assert!(evaluation.decision.policy_revision.starts_with("sha256:"));
    }

    #[test]
    fn team_known_passes_for_a_declared_team_and_fails_otherwise() {
        assert!(
            analytics(&request("analytics-prod", "small"))
                .decision
                .allowed
        );
        let unknown = run("marketing", &request("analytics-prod", "small"), &policy());
        assert_eq!(failed(&unknown), vec![rules::TEAM_KNOWN]);
        assert!(unknown.plan.is_none());
    }

    #[test]
    fn target_allowed_passes_for_an_own_target_and_fails_for_another_teams() {
        assert!(
            run("payments", &request("payments-ledger", "small"), &policy())
                .decision
                .allowed
        );
        let other = run("payments", &request("analytics-prod", "small"), &policy());
        assert_eq!(failed(&other), vec![rules::TARGET_ALLOWED]);
    }

    #[test]
    fn size_allowed_passes_for_an_allowed_profile_and_fails_otherwise() {
        assert!(
            run("payments", &request("payments-ledger", "small"), &policy())
                .decision
                .allowed
        );
        let medium = run("payments", &request("payments-ledger", "medium"), &policy());
        assert_eq!(failed(&medium), vec![rules::SIZE_ALLOWED]);
        let undefined = analytics(&request("analytics-prod", "gigantic"));
        assert_eq!(failed(&undefined), vec![rules::SIZE_ALLOWED]);
        assert!(
            undefined.decision.rules[2]
                .message
                .as_deref()
                .is_some_and(|m| m.contains("undefined"))
        );
    }

    #[test]
    fn version_allowed_defaults_to_the_policy_version_and_checks_the_team_list() {
        let mut req = request("payments-ledger", "small");
        req.version = Some("3.3".into());
        assert_eq!(
            failed(&run("payments", &req, &policy())),
            vec![rules::VERSION_ALLOWED]
        );
        req.version = Some("3.1".into());
        assert!(run("payments", &req, &policy()).decision.allowed);
    }

    #[test]
    fn az_allowed_checks_the_team_list() {
        let mut req = request("analytics-prod", "small");
        req.az = Some("cn-north-4b".into());
        let evaluation = analytics(&req);
        assert!(evaluation.decision.allowed);
        assert_eq!(evaluation.plan.expect("plan").body.az_code, "cn-north-4b");
        req.az = Some("cn-north-4z".into());
        assert_eq!(failed(&analytics(&req)), vec![rules::AZ_ALLOWED]);
    }

    #[test]
    fn time_zone_allowed_in_audit_mode_reports_but_never_denies() {
        let mut req = request("analytics-prod", "small");
        req.time_zone = Some(TimeZone::parse("UTC+00:00").expect("valid"));
        assert!(failed(&analytics(&req)).is_empty());
        req.time_zone = Some(TimeZone::parse("UTC-05:00").expect("valid"));
        let evaluation = analytics(&req);
        assert!(evaluation.decision.allowed, "audit never denies");
        assert_eq!(failed(&evaluation), vec![rules::TIME_ZONE_ALLOWED]);
        assert_eq!(evaluation.decision.audit_failures().count(), 1);
        assert_eq!(evaluation.plan.expect("plan").body.time_zone, "UTC-05:00");
    }

    #[test]
    fn time_zone_allowed_in_enforce_mode_denies() {
        let enforcing = Policy::parse(&EXAMPLE.replace(
            "\"time_zone.allowed\" = \"audit\"",
            "\"time_zone.allowed\" = \"enforce\"",
        ))
        .expect("valid policy");
        let mut req = request("analytics-prod", "small");
        req.time_zone = Some(TimeZone::parse("UTC-05:00").expect("valid"));
        let evaluation = run("analytics", &req, &enforcing);
        assert!(!evaluation.decision.allowed);
        assert!(evaluation.plan.is_none());
    }

    #[test]
    fn a_size_rule_in_audit_mode_lets_the_profile_through() {
        let auditing = policy_with("\"size.allowed\" = \"audit\"");
        let evaluation = run("payments", &request("payments-ledger", "medium"), &auditing);
        assert!(evaluation.decision.allowed);
        assert_eq!(failed(&evaluation), vec![rules::SIZE_ALLOWED]);
        assert_eq!(evaluation.plan.expect("plan").body.fe_count, 3);
    }

    #[test]
    fn labels_keys_are_case_insensitive_and_unknown_keys_fail() {
        let mut req = request("analytics-prod", "small");
        req.labels = BTreeMap::from([
            ("Owner".into(), "alice".into()),
            ("ENV".into(), "prod".into()),
        ]);
        let evaluation = analytics(&req);
        assert!(evaluation.decision.allowed);
        assert_eq!(
            evaluation
                .plan
                .expect("plan")
                .labels
                .get("owner")
                .map(String::as_str),
            Some("alice")
        );
        req.labels.insert("colour".into(), "blue".into());
        assert_eq!(failed(&analytics(&req)), vec![rules::LABELS_KEYS]);
    }

    #[test]
    fn labels_values_must_match_their_pattern_whole() {
        let mut req = request("analytics-prod", "small");
        req.labels = BTreeMap::from([("env".into(), "production".into())]);
        assert_eq!(failed(&analytics(&req)), vec![rules::LABELS_VALUES]);
        req.labels = BTreeMap::from([("env".into(), "prod".into())]);
        assert!(failed(&analytics(&req)).is_empty());
    }

    #[test]
    fn labels_count_bounds_the_number_and_length() {
        let mut req = request("analytics-prod", "small");
        req.labels = BTreeMap::from([
            ("owner".into(), "a1".into()),
            ("app".into(), "b".into()),
            ("env".into(), "dev".into()),
        ]);
        assert!(failed(&analytics(&req)).is_empty());
        req.labels.insert("Owner2".into(), "x".into());
        req.labels.insert("owner3".into(), "x".into());
        assert!(failed(&analytics(&req)).contains(&rules::LABELS_COUNT));
        req.labels = BTreeMap::from([("app".into(), "a".repeat(300))]);
        assert!(failed(&analytics(&req)).contains(&rules::LABELS_COUNT));
    }

    #[test]
    fn labels_reserved_refuses_any_system_tag_in_any_case() {
        let mut req = request("analytics-prod", "small");
        req.labels = BTreeMap::from([("_SYS_Enterprise_Project_Id".into(), "1".into())]);
        let evaluation = analytics(&req);
        assert!(failed(&evaluation).contains(&rules::LABELS_RESERVED));
        assert!(!evaluation.decision.allowed);
        req.labels = BTreeMap::from([("_sys_anything".into(), "1".into())]);
        assert!(failed(&analytics(&req)).contains(&rules::LABELS_RESERVED));
    }

    #[test]
    fn every_failed_rule_is_reported_not_just_the_first() {
        let mut req = request("analytics-prod", "large");
        req.version = Some("2.5".into());
        let evaluation = run("payments", &req, &policy());
        assert_eq!(
            failed(&evaluation),
            vec![
                rules::TARGET_ALLOWED,
                rules::SIZE_ALLOWED,
                rules::VERSION_ALLOWED
            ]
        );
        assert_eq!(evaluation.decision.denial().violations.len(), 3);
    }
}
