//! Validation at load: everything evaluation relies on is checked once, here.

use std::collections::BTreeMap;

use regex::Regex;

use super::{
    ENTERPRISE_PROJECT_TAG, GROUP_APPROVER_PREFIX, LeaseRule, MAX_LABEL_KEY_CHARS, MAX_LEASE_DAYS,
    PolicyFile, RegionRules, RuleMode, SizeProfile, Team, TeamExceptions, rules,
};
use crate::domain::TimeZone;

pub(super) struct Invalid {
    pub(super) path: Vec<String>,
    pub(super) message: String,
}

fn invalid(path: &[&str], message: impl Into<String>) -> Invalid {
    Invalid {
        path: path.iter().map(|s| (*s).to_owned()).collect(),
        message: message.into(),
    }
}

fn non_empty(path: &[&str], value: &str) -> Result<(), Invalid> {
    if value.trim().is_empty() {
        Err(invalid(path, "must not be empty"))
    } else {
        Ok(())
    }
}

/// TaurusDB instance ids are 32 letters or digits followed by `in07`.
fn is_taurusdb_instance_id(id: &str) -> bool {
    id.len() == 36 && id.ends_with("in07") && id.chars().all(|c| c.is_ascii_alphanumeric())
}

impl PolicyFile {
    /// Checks everything evaluation relies on and compiles the label patterns.
    pub(super) fn validate(&self) -> Result<BTreeMap<String, BTreeMap<String, Regex>>, Invalid> {
        let defaults = &self.defaults;
        non_empty(&["defaults", "engine_version"], &defaults.engine_version)?;
        TimeZone::parse(&defaults.time_zone)
            .map_err(|e| invalid(&["defaults", "time_zone"], e.0))?;
        non_empty(&["defaults", "az_code"], &defaults.az_code)?;
        non_empty(&["defaults", "io_type"], &defaults.io_type)?;
        for (rule, mode) in &self.rules {
            if !rules::ALL.contains(&rule.as_str()) {
                return Err(invalid(
                    &["rules", rule],
                    format!("is not a rule; known rules: {}", rules::ALL.join(", ")),
                ));
            }
            if *mode == RuleMode::Audit && rules::ENFORCE_ONLY.contains(&rule.as_str()) {
                return Err(invalid(
                    &["rules", rule],
                    "always enforces and cannot be put in audit mode",
                ));
            }
        }
        if !(self.lease_warning_hours >= 0.0 && self.lease_warning_hours <= MAX_LEASE_DAYS * 24.0) {
            return Err(invalid(
                &["lease_warning_hours"],
                "must be 0 or more, and at most ten years",
            ));
        }
        let ttl = self.exceptions.pending_ttl_hours;
        if !(ttl > 0.0 && ttl <= 8_784.0) {
            return Err(invalid(
                &["exceptions", "pending_ttl_hours"],
                "must be more than 0 and at most 8784 (a year)",
            ));
        }
        if self.sizes.is_empty() {
            return Err(invalid(&["sizes"], "must define at least one size profile"));
        }
        for (name, size) in &self.sizes {
            size.validate(name)?;
        }
        for (name, region) in &self.regions {
            self.validate_region(name, region)?;
        }
        let mut patterns = BTreeMap::new();
        for (name, team) in &self.teams {
            patterns.insert(name.clone(), self.validate_team(name, team)?);
        }
        Ok(patterns)
    }

    fn validate_region(&self, name: &str, region: &RegionRules) -> Result<(), Invalid> {
        let at = |key: &'static str| ["regions", name, key];
        if let Some(az) = &region.az_code {
            non_empty(&at("az_code"), az)?;
            if let Some(allowed) = &region.allowed_azs
                && !allowed.contains(az)
            {
                return Err(invalid(
                    &at("allowed_azs"),
                    format!("must contain the region's az_code `{az}`"),
                ));
            }
        }
        for (key, list) in [
            ("allowed_azs", &region.allowed_azs),
            ("allowed_versions", &region.allowed_versions),
            ("allowed_sizes", &region.allowed_sizes),
        ] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                return Err(invalid(
                    &["regions", name, key],
                    "must name at least one (leave it out to allow every one)",
                ));
            }
        }
        if let Some(size) = region
            .allowed_sizes
            .iter()
            .flatten()
            .find(|s| !self.sizes.contains_key(*s))
        {
            return Err(invalid(
                &at("allowed_sizes"),
                format!("names the undefined size `{size}`"),
            ));
        }
        for (size, flavors) in &region.flavors {
            if !self.sizes.contains_key(size) {
                return Err(invalid(
                    &["regions", name, "flavors", size],
                    "is not a defined size",
                ));
            }
            for (key, id) in [
                ("fe_flavor_id", &flavors.fe_flavor_id),
                ("be_flavor_id", &flavors.be_flavor_id),
            ] {
                if let Some(id) = id {
                    non_empty(&["regions", name, "flavors", size, key], id)?;
                }
            }
        }
        Ok(())
    }

    fn validate_team(&self, name: &str, team: &Team) -> Result<BTreeMap<String, Regex>, Invalid> {
        let at = |key: &'static str| ["teams", name, key];
        non_empty(&at("enterprise_project_id"), &team.enterprise_project_id)?;
        if team.targets.is_empty() {
            return Err(invalid(&at("targets"), "must name at least one target"));
        }
        for (alias, target) in &team.targets {
            let id = &target.instance;
            if !is_taurusdb_instance_id(id) {
                return Err(invalid(
                    &["teams", name, "targets", alias],
                    format!(
                        "{id:?} is not a TaurusDB instance id (32 letters or digits ending in `in07`)"
                    ),
                ));
            }
            if let Some(region) = &target.region {
                non_empty(&["teams", name, "targets", alias, "region"], region)?;
            }
        }
        if team.allowed_sizes.is_empty() {
            return Err(invalid(&at("allowed_sizes"), "must name at least one size"));
        }
        if let Some(size) = team
            .allowed_sizes
            .iter()
            .find(|s| !self.sizes.contains_key(*s))
        {
            return Err(invalid(
                &at("allowed_sizes"),
                format!("names size {size:?}, which is not defined under [sizes]"),
            ));
        }
        for (key, list) in [
            ("allowed_versions", &team.allowed_versions),
            ("allowed_azs", &team.allowed_azs),
            ("allowed_time_zones", &team.allowed_time_zones),
        ] {
            if list
                .as_ref()
                .is_some_and(|l| l.is_empty() || l.iter().any(|v| v.trim().is_empty()))
            {
                return Err(invalid(
                    &at(key),
                    "must hold non-empty values; remove it to use the default",
                ));
            }
        }
        for zone in team.allowed_time_zones.iter().flatten() {
            TimeZone::parse(zone).map_err(|e| invalid(&at("allowed_time_zones"), e.0))?;
        }
        for (key, value) in &team.sys_tags {
            if !key.starts_with("_sys_") || key == ENTERPRISE_PROJECT_TAG {
                return Err(invalid(
                    &["teams", name, "sys_tags", key],
                    format!(
                        "system tag keys start with `_sys_`, and {ENTERPRISE_PROJECT_TAG} comes from enterprise_project_id"
                    ),
                ));
            }
            if !self.allow_undocumented_sys_tags {
                return Err(invalid(
                    &["teams", name, "sys_tags", key],
                    format!(
                        "is not a system tag the create API documents (only {ENTERPRISE_PROJECT_TAG}, set from enterprise_project_id), so the cloud refuses it; set allow_undocumented_sys_tags = true to inject it anyway"
                    ),
                ));
            }
            non_empty(&["teams", name, "sys_tags", key], value)?;
        }
        if let Some(quota) = &team.quota
            && (quota.instances == 0 || quota.nodes == 0 || quota.storage_gb == 0)
        {
            return Err(invalid(
                &at("quota"),
                "instances, nodes and storage_gb must all be positive",
            ));
        }
        validate_exceptions(name, &team.exceptions)?;
        validate_lease(
            &["teams", name],
            &LeaseRule {
                default_lease_days: team.default_lease_days,
                max_lease_days: team.max_lease_days,
            },
        )?;
        for (size, rule) in &team.size_leases {
            let path = ["teams", name, "size_leases", size.as_str()];
            if !self.sizes.contains_key(size) {
                return Err(invalid(&path, "is not a size defined under [sizes]"));
            }
            validate_lease(&path, rule)?;
            validate_lease(&path, &team.lease(size))?;
        }
        let mut compiled = BTreeMap::new();
        for (key, pattern) in &team.labels.allowed {
            let path = ["teams", name, "labels", "allowed", key.as_str()];
            let lower = key.to_lowercase();
            if lower.is_empty()
                || lower.chars().count() > MAX_LABEL_KEY_CHARS
                || lower.starts_with("_sys_")
            {
                return Err(invalid(
                    &path,
                    format!(
                        "label keys are 1 to {MAX_LABEL_KEY_CHARS} characters and never start with `_sys_`"
                    ),
                ));
            }
            let regex = Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| invalid(&path, format!("is not a valid regular expression: {e}")))?;
            if compiled.insert(lower, regex).is_some() {
                return Err(invalid(&path, "repeats a key that differs only in case"));
            }
        }
        Ok(compiled)
    }
}

/// Lease lengths are positive days up to ten years, and a default never exceeds the maximum.
fn validate_lease(path: &[&str], rule: &LeaseRule) -> Result<(), Invalid> {
    for (key, days) in [
        ("default_lease_days", rule.default_lease_days),
        ("max_lease_days", rule.max_lease_days),
    ] {
        if days.is_some_and(|d| !(d > 0.0 && d <= MAX_LEASE_DAYS)) {
            let mut at = path.to_vec();
            at.push(key);
            return Err(invalid(&at, "must be more than 0 and at most 3650 days"));
        }
    }
    if let (Some(default), Some(max)) = (rule.default_lease_days, rule.max_lease_days)
        && default > max
    {
        let mut at = path.to_vec();
        at.push("default_lease_days");
        return Err(invalid(
            &at,
            format!("is {default}, longer than max_lease_days ({max})"),
        ));
    }
    Ok(())
}

fn validate_exceptions(team: &str, exceptions: &TeamExceptions) -> Result<(), Invalid> {
    let path = |key: &'static str| ["teams", team, "exceptions", key];
    for rule in &exceptions.exceptable {
        if !rules::ALL.contains(&rule.as_str()) {
            return Err(invalid(
                &path("exceptable"),
                format!(
                    "names {rule:?}, which is not a rule; known rules: {}",
                    rules::ALL.join(", ")
                ),
            ));
        }
        if rules::ENFORCE_ONLY.contains(&rule.as_str()) {
            return Err(invalid(
                &path("exceptable"),
                format!("names {rule:?}, which always enforces and can never be waived"),
            ));
        }
    }
    for approver in &exceptions.approvers {
        let name = approver
            .strip_prefix(GROUP_APPROVER_PREFIX)
            .unwrap_or(approver);
        if name.trim().is_empty() {
            return Err(invalid(
                &path("approvers"),
                "holds an empty approver; name a subject, or `group:NAME`",
            ));
        }
    }
    Ok(())
}

impl SizeProfile {
    fn validate(&self, name: &str) -> Result<(), Invalid> {
        let at = |key: &'static str| ["sizes", name, key];
        non_empty(&at("fe_flavor_id"), &self.fe_flavor_id)?;
        non_empty(&at("be_flavor_id"), &self.be_flavor_id)?;
        let counts = self.ha_mode.allowed_counts();
        for (key, count) in [("fe_count", self.fe_count), ("be_count", self.be_count)] {
            if !counts.contains(&count) {
                return Err(invalid(
                    &at(key),
                    format!(
                        "is {count}, but ha_mode {} needs {} to {}",
                        self.ha_mode.as_str(),
                        counts.start(),
                        counts.end()
                    ),
                ));
            }
        }
        for (key, gb) in [
            ("fe_volume_gb", self.fe_volume_gb),
            ("be_volume_gb", self.be_volume_gb),
        ] {
            if gb == 0 || gb % 10 != 0 {
                return Err(invalid(
                    &at(key),
                    format!("is {gb}, but volumes grow in 10 GB steps and must be positive"),
                ));
            }
        }
        if let Some(io_type) = &self.io_type {
            non_empty(&at("io_type"), io_type)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::Policy;
    use crate::policy::tests::{EXAMPLE, error_of};

    #[test]
    fn every_broken_region_rule_is_named_with_its_key() {
        let cases = [
            (
                EXAMPLE.replacen(
                    "allowed_sizes = [\"small\", \"medium\"]\n\n[regions",
                    "allowed_sizes = [\"tiny\"]\n\n[regions",
                    1,
                ),
                "regions.cn-east-3.allowed_sizes",
            ),
            (
                EXAMPLE.replacen(
                    "[regions.cn-east-3.flavors.small]",
                    "[regions.cn-east-3.flavors.tiny]",
                    1,
                ),
                "regions.cn-east-3.flavors.tiny",
            ),
            (
                EXAMPLE.replacen("az_code = \"cn-east-3a\"", "az_code = \"cn-east-3c\"", 1),
                "regions.cn-east-3.allowed_azs",
            ),
            (
                EXAMPLE.replacen(
                    "allowed_azs = [\"cn-east-3a\", \"cn-east-3b\"]",
                    "allowed_azs = []",
                    1,
                ),
                "regions.cn-east-3.allowed_azs",
            ),
            (
                EXAMPLE.replacen(
                    "region = \"cn-east-3\", instance",
                    "region = \" \", instance",
                    1,
                ),
                "teams.analytics.targets.analytics-east.region",
            ),
            (
                EXAMPLE.replacen(
                    "region = \"cn-east-3\", instance",
                    "zone = \"cn-east-3\", instance",
                    1,
                ),
                "a TaurusDB instance id, or { region = ",
            ),
        ];
        for (text, key) in cases {
            let error = error_of(&text);
            assert!(error.contains(key), "{key}: {error}");
        }
    }

    #[test]
    fn targets_are_fitted_to_the_configured_regions() {
        let policy = Policy::parse(EXAMPLE).expect("valid");
        let fitted = policy
            .clone()
            .resolve_regions("cn-north-4", &["cn-north-4", "cn-east-3"])
            .expect("fits");
        let targets = &fitted.file.teams["analytics"].targets;
        assert_eq!(
            targets["analytics-prod"].region.as_deref(),
            Some("cn-north-4")
        );
        assert_eq!(
            targets["analytics-east"].region.as_deref(),
            Some("cn-east-3")
        );

        let error = policy
            .clone()
            .resolve_regions("cn-north-4", &["cn-north-4"])
            .expect_err("cn-east-3 is not configured")
            .to_string();
        assert!(error.contains("`regions.cn-east-3`"), "{error}");
        assert!(error.contains("configured: cn-north-4"), "{error}");
        let quota = format!(
            "{EXAMPLE}\n[teams.payments.region_quotas.eu-west-0]\ninstances = 1\nnodes = 2\nstorage_gb = 100\n"
        );
        let error = Policy::parse(&quota)
            .expect("valid on its own")
            .resolve_regions("cn-north-4", &["cn-north-4", "cn-east-3"])
            .expect_err("eu-west-0 is not configured")
            .to_string();
        assert!(
            error.contains("teams.payments.region_quotas.eu-west-0"),
            "{error}"
        );
    }

    #[test]
    fn a_team_naming_an_undefined_size_is_rejected_with_its_key_and_line() {
        let text = EXAMPLE.replacen("allowed_sizes = [\"small\"", "allowed_sizes = [\"huge\"", 1);
        let line = text
            .lines()
            .position(|l| l.contains("\"huge\""))
            .expect("present")
            + 1;
        let error = error_of(&text);
        assert!(error.contains("teams.analytics.allowed_sizes"), "{error}");
        assert!(error.contains("huge"), "{error}");
        assert!(error.contains(&format!("line {line}")), "{error}");
    }

    #[test]
    fn a_single_profile_with_three_backends_is_rejected() {
        let error = error_of(&EXAMPLE.replacen("be_count = 1", "be_count = 3", 1));
        assert!(error.contains("sizes.small.be_count"), "{error}");
    }

    #[test]
    fn a_volume_off_the_ten_gigabyte_grid_is_rejected() {
        let error = error_of(&EXAMPLE.replacen("fe_volume_gb = 50", "fe_volume_gb = 55", 1));
        assert!(error.contains("sizes.small.fe_volume_gb"), "{error}");
    }

    #[test]
    fn a_target_that_is_not_a_taurusdb_id_is_rejected() {
        let error = error_of(&EXAMPLE.replacen("in07\"", "in17\"", 1));
        assert!(error.contains("targets"), "{error}");
    }

    #[test]
    fn an_unknown_rule_id_is_rejected() {
        let error =
            error_of(&EXAMPLE.replacen("[rules]", "[rules]\n\"size.bogus\" = \"audit\"", 1));
        assert!(error.contains("rules.size.bogus"), "{error}");
    }

    #[test]
    fn structural_rules_cannot_be_audited() {
        let error =
            error_of(&EXAMPLE.replacen("[rules]", "[rules]\n\"target.allowed\" = \"audit\"", 1));
        assert!(error.contains("cannot be put in audit mode"), "{error}");
    }

    fn with_exceptions(exceptable: &str) -> String {
        format!(
            "{EXAMPLE}\n[teams.payments.exceptions]\nexceptable = [{exceptable}]\napprovers = [\"group:leads\"]\n"
        )
    }

    #[test]
    fn only_known_rules_that_may_deny_can_be_exceptable() {
        assert!(Policy::parse(&with_exceptions("\"size.allowed\"")).is_ok());
        let unknown = error_of(&with_exceptions("\"size.bogus\""));
        assert!(
            unknown.contains("teams.payments.exceptions.exceptable"),
            "{unknown}"
        );
        assert!(unknown.contains("size.bogus"), "{unknown}");
        for structural in ["team.known", "target.allowed", "labels.reserved"] {
            let error = error_of(&with_exceptions(&format!("\"{structural}\"")));
            assert!(
                error.contains("can never be waived"),
                "{structural}: {error}"
            );
        }
    }

    #[test]
    fn an_empty_approver_and_an_impossible_time_to_live_are_rejected() {
        let empty = error_of(&with_exceptions("").replace("\"group:leads\"", "\"group:\""));
        assert!(
            empty.contains("teams.payments.exceptions.approvers"),
            "{empty}"
        );
        for ttl in ["0", "-1", "10000"] {
            let error = error_of(&EXAMPLE.replace(
                "pending_ttl_hours = 72",
                &format!("pending_ttl_hours = {ttl}"),
            ));
            assert!(
                error.contains("exceptions.pending_ttl_hours"),
                "{ttl}: {error}"
            );
        }
    }

    #[test]
    fn leases_are_positive_a_default_fits_its_maximum_and_sizes_exist() {
        let team = |extra: &str| {
            EXAMPLE.replacen(
                "[teams.payments]\n",
                &format!("[teams.payments]\n{extra}\n"),
                1,
            )
        };
        assert!(Policy::parse(&team("default_lease_days = 7\nmax_lease_days = 30")).is_ok());
        let negative = error_of(&team("max_lease_days = -1"));
        assert!(
            negative.contains("teams.payments.max_lease_days"),
            "{negative}"
        );
        let longer = error_of(&team("default_lease_days = 40\nmax_lease_days = 30"));
        assert!(
            longer.contains("teams.payments.default_lease_days"),
            "{longer}"
        );
        let size = |name: &str, days: &str| {
            format!("{EXAMPLE}\n[teams.payments.size_leases.{name}]\nmax_lease_days = {days}\n")
        };
        assert!(Policy::parse(&size("small", "3")).is_ok());
        let unknown = error_of(&size("huge", "3"));
        assert!(
            unknown.contains("teams.payments.size_leases.huge"),
            "{unknown}"
        );
        let under_default = error_of(&format!(
            "{}\n[teams.payments.size_leases.small]\nmax_lease_days = 3\n",
            team("default_lease_days = 7")
        ));
        assert!(
            under_default.contains("size_leases.small"),
            "{under_default}"
        );
    }

    #[test]
    fn a_broken_label_pattern_is_rejected() {
        let error = error_of(&EXAMPLE.replacen("owner = \"", "owner = \"(", 1));
        assert!(
            error.contains("teams.analytics.labels.allowed.owner"),
            "{error}"
        );
    }

    fn with_sys_tag(key: &str, allow: bool) -> String {
        let allow = if allow {
            "allow_undocumented_sys_tags = true\n"
        } else {
            ""
        };
        format!("{allow}{EXAMPLE}\n[teams.analytics.sys_tags]\n{key} = \"CC-1042\"\n")
    }

    #[test]
    fn an_extra_system_tag_may_not_replace_the_enterprise_project() {
        let error = error_of(&with_sys_tag("_sys_enterprise_project_id", true));
        assert!(
            error.contains("comes from enterprise_project_id"),
            "{error}"
        );
    }

    #[test]
    fn an_undocumented_system_tag_is_refused_unless_allowed_and_then_warned_about() {
        let error = error_of(&with_sys_tag("_sys_cost_center", false));
        assert!(
            error.contains("teams.analytics.sys_tags._sys_cost_center")
                && error.contains("allow_undocumented_sys_tags"),
            "{error}"
        );

        let allowed = Policy::parse(&with_sys_tag("_sys_cost_center", true)).expect("allowed");
        assert_eq!(
            allowed.warnings(),
            [
                "teams.analytics.sys_tags._sys_cost_center: an undocumented system tag; the create API may refuse it"
            ]
        );
        assert!(Policy::parse(EXAMPLE).expect("valid").warnings().is_empty());
    }

    #[test]
    fn a_zero_quota_is_rejected() {
        let error = error_of(&EXAMPLE.replacen("instances = 5", "instances = 0", 1));
        assert!(error.contains("quota"), "{error}");
    }
}
