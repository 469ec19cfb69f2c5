use super::*;
use crate::cloud::model::Tag;
use crate::policy::{ENTERPRISE_PROJECT_TAG, rules};

const EXAMPLE: &str = include_str!("../../../config/policy.example.toml");

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
        groups: Vec::new(),
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
        lease_days: None,
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
        vec![Tag {
            key: ENTERPRISE_PROJECT_TAG.into(),
            value: "0".into()
        }]
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

mod properties {
    //! Whatever a caller sends, evaluation never panics, and its verdict is exactly "no
    //! enforcing rule failed", with a plan only when allowed. (`PROPTEST_CASES` raises the
    //! number of cases, e.g. for a longer local run.)

    use proptest::prelude::*;

    use super::*;

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("analytics-prod".to_owned()),
            Just("small".to_owned()),
            Just("medium".to_owned()),
            Just("3.1".to_owned()),
            Just("cn-north-4a".to_owned()),
            "\\PC{0,40}",
        ]
    }

    proptest! {
        #[test]
        fn evaluation_never_panics_and_allows_exactly_when_no_enforced_rule_failed(
            team in prop_oneof![Just("analytics".to_owned()), Just("payments".to_owned()), "\\PC{0,20}"],
            target in word(),
            size in word(),
            version in proptest::option::of(word()),
            az in proptest::option::of(word()),
            labels in proptest::collection::btree_map("\\PC{0,20}", "\\PC{0,40}", 0..12),
        ) {
            let request = CreateRequest {
                name: InstanceName::parse("sales-cube").expect("valid name"),
                target,
                size,
                version,
                az,
                time_zone: None,
                labels,
                lease_days: None,
            };
            let evaluation = run(&team, &request, &policy());
            let enforced_failure = evaluation
                .decision
                .rules
                .iter()
                .any(|r| !r.passed && r.mode == RuleMode::Enforce);
            prop_assert_eq!(evaluation.decision.allowed, !enforced_failure);
            prop_assert_eq!(evaluation.plan.is_some(), evaluation.decision.allowed);
        }
    }
}
