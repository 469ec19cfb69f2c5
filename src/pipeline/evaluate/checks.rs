//! The team's rules, each checked and reported whatever the others say.

use std::collections::BTreeMap;

use super::body::{Resolved, build_body};
use super::{CreateRequest, Mutation, Plan, RuleOutcome};
use crate::domain::RootPassword;
use crate::policy::{MAX_LABEL_KEY_CHARS, MAX_LABEL_VALUE_CHARS, Policy, Team, days_ms, rules};

pub(super) struct Rules<'p> {
    pub(super) policy: &'p Policy,
    pub(super) outcomes: Vec<RuleOutcome>,
    /// Rules an approved exception waives (already limited to the exceptable ones).
    pub(super) waived: Vec<&'p str>,
}

impl Rules<'_> {
    pub(super) fn check(&mut self, rule: &str, ok: bool, message: impl FnOnce() -> String) {
        self.outcomes.push(RuleOutcome {
            rule: rule.to_owned(),
            mode: self.policy.mode(rule),
            passed: ok,
            message: (!ok).then(message),
            waived: !ok && self.waived.contains(&rule),
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

pub(super) fn check_team_rules(
    rules: &mut Rules<'_>,
    team_name: &str,
    team: &Team,
    request: &CreateRequest,
    password: RootPassword,
) -> (Option<Plan>, Vec<Mutation>) {
    let policy = rules.policy;
    let defaults = &policy.file.defaults;

    let target = team.targets.get(&request.target);
    let region_name = target.and_then(|t| t.region.as_deref());
    let region = policy.region_rules(region_name);
    let in_region = || {
        region_name
            .map(|r| format!(" in region `{r}`"))
            .unwrap_or_default()
    };
    rules.check(rules::TARGET_ALLOWED, target.is_some(), || {
        let aliases: Vec<&str> = team.targets.keys().map(String::as_str).collect();
        format!(
            "team `{team_name}` may not use target `{}`; allowed: {}",
            request.target,
            quoted(&aliases)
        )
    });

    let size = policy.size(&request.size);
    let sizes = team.sizes_in(region);
    rules.check(
        rules::SIZE_ALLOWED,
        size.is_some() && sizes.contains(&request.size.as_str()),
        || {
            let what = if size.is_some() {
                "may not use"
            } else {
                "cannot order the undefined"
            };
            format!(
                "team `{team_name}` {what} size `{}`{}; allowed: {}",
                request.size,
                in_region(),
                quoted(&sizes)
            )
        },
    );

    let version = request
        .version
        .as_deref()
        .unwrap_or(&defaults.engine_version);
    let versions = team.versions_in(defaults, region);
    rules.check(rules::VERSION_ALLOWED, versions.contains(&version), || {
        format!(
            "team `{team_name}` may not use engine version `{version}`{}; allowed: {}",
            in_region(),
            quoted(&versions)
        )
    });

    let az = request
        .az
        .as_deref()
        .or(region.az_code.as_deref())
        .unwrap_or(&defaults.az_code);
    let azs = policy.file.team_azs(team, region_name);
    rules.check(rules::AZ_ALLOWED, azs.contains(&az), || {
        format!(
            "team `{team_name}` may not place instances in AZ `{az}`{}; allowed: {}",
            in_region(),
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

    let lease = team.lease(&request.size);
    let lease_days = lease.days_for(request.lease_days);
    rules.check(
        rules::LEASE_MAX,
        lease_days.is_none_or(|days| lease.admits(days)),
        || {
            format!(
                "team `{team_name}` may lease size `{}` for at most {} days; asked for {}",
                request.size,
                lease.max_lease_days.unwrap_or_default(),
                lease_days.unwrap_or_default()
            )
        },
    );

    let (Some(target), Some(size)) = (target, size) else {
        return (None, Vec::new());
    };
    let size = &region.size_in_region(&request.size, size);
    let mut mutations = Vec::new();
    if let (None, Some(days)) = (request.lease_days, lease_days) {
        mutations.push(Mutation {
            field: "lease_days".into(),
            value: days.to_string(),
            source: format!("team {team_name}"),
        });
    }
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
        region: target.region.clone(),
        target_instance_id: target.instance.clone(),
        labels,
        lease_ms: lease_days.map(days_ms),
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
