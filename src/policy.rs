//! The org policy file: defaults, rule modes, named size profiles, and what each team may order.
//!
//! A policy is validated completely when it is loaded, so evaluation never meets a dangling
//! size name, an impossible profile or a broken pattern. Its revision is a hash of the file's
//! bytes, quoted in every decision so a denial can be traced to the exact rules that made it.
//! [`PolicyStore`] holds the policy in force and swaps in a new one only after it validated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::TimeZone;

/// Stable rule ids. A rule's id never changes meaning; new checks get new ids.
pub mod rules {
    pub const TEAM_KNOWN: &str = "team.known";
    pub const TARGET_ALLOWED: &str = "target.allowed";
    pub const SIZE_ALLOWED: &str = "size.allowed";
    pub const VERSION_ALLOWED: &str = "version.allowed";
    pub const AZ_ALLOWED: &str = "az.allowed";
    pub const TIME_ZONE_ALLOWED: &str = "time_zone.allowed";
    pub const LABELS_KEYS: &str = "labels.keys";
    pub const LABELS_VALUES: &str = "labels.values";
    pub const LABELS_COUNT: &str = "labels.count";
    pub const LABELS_RESERVED: &str = "labels.reserved";

    /// Every rule, in evaluation order.
    pub const ALL: &[&str] = &[
        TEAM_KNOWN,
        TARGET_ALLOWED,
        SIZE_ALLOWED,
        VERSION_ALLOWED,
        AZ_ALLOWED,
        TIME_ZONE_ALLOWED,
        LABELS_RESERVED,
        LABELS_KEYS,
        LABELS_VALUES,
        LABELS_COUNT,
    ];

    /// Rules without which no upstream body can be built, or that guard the injected tags:
    /// they always enforce.
    pub const ENFORCE_ONLY: &[&str] = &[TEAM_KNOWN, TARGET_ALLOWED, LABELS_RESERVED];
}

/// The system tag every instance carries: the enterprise project it is billed to.
pub const ENTERPRISE_PROJECT_TAG: &str = "_sys_enterprise_project_id";
/// Longest label key and value accepted from a caller.
pub const MAX_LABEL_KEY_CHARS: usize = 64;
pub const MAX_LABEL_VALUE_CHARS: usize = 255;

/// `enforce` denies on failure; `audit` only reports the would-be denial in the decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleMode {
    #[default]
    Enforce,
    Audit,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub defaults: Defaults,
    /// Rule id → mode; rules not listed enforce.
    #[serde(default)]
    pub rules: BTreeMap<String, RuleMode>,
    pub sizes: BTreeMap<String, SizeProfile>,
    pub teams: BTreeMap<String, Team>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Engine major version used when a request names none.
    pub engine_version: String,
    pub time_zone: String,
    /// Availability zone used when a request names none.
    pub az_code: String,
    /// Storage type of FE and BE volumes unless a size profile says otherwise.
    pub io_type: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub enum HaMode {
    Single,
    Cluster,
}

impl HaMode {
    /// Node counts the upstream accepts for this mode.
    pub fn allowed_counts(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Self::Single => 1..=1,
            Self::Cluster => 3..=10,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "Single",
            Self::Cluster => "Cluster",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeProfile {
    #[serde(default)]
    pub description: String,
    pub ha_mode: HaMode,
    pub fe_flavor_id: String,
    pub be_flavor_id: String,
    pub fe_count: u32,
    pub be_count: u32,
    pub fe_volume_gb: u32,
    pub be_volume_gb: u32,
    /// Overrides `defaults.io_type` for this profile.
    pub io_type: Option<String>,
}

impl SizeProfile {
    pub fn io_type<'a>(&'a self, defaults: &'a Defaults) -> &'a str {
        self.io_type.as_deref().unwrap_or(&defaults.io_type)
    }

    pub fn nodes(&self) -> u32 {
        self.fe_count + self.be_count
    }

    /// Storage the profile provisions: every node's volume.
    pub fn storage_gb(&self) -> u32 {
        self.fe_count * self.fe_volume_gb + self.be_count * self.be_volume_gb
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    /// Injected as the `_sys_enterprise_project_id` system tag of every instance.
    pub enterprise_project_id: String,
    /// Target alias → TaurusDB instance id (`…in07`) the team may attach StarRocks to.
    pub targets: BTreeMap<String, String>,
    pub allowed_sizes: Vec<String>,
    /// Engine versions the team may ask for; only `defaults.engine_version` when absent.
    pub allowed_versions: Option<Vec<String>>,
    /// AZs the team may place instances in; only `defaults.az_code` when absent.
    pub allowed_azs: Option<Vec<String>>,
    /// Time zones the team may ask for; any valid one when absent.
    pub allowed_time_zones: Option<Vec<String>>,
    /// Further system tags injected into every instance of the team (keys start `_sys_`).
    #[serde(default)]
    pub sys_tags: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: LabelRules,
    /// Quota limits; enforced once the quota ledger lands, validated now.
    pub quota: Option<Quota>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRules {
    /// Most labels one instance may carry.
    #[serde(default = "default_max_labels")]
    pub max_count: usize,
    /// Allowed label key (case-insensitive) → regular expression its value must match whole.
    #[serde(default)]
    pub allowed: BTreeMap<String, String>,
}

fn default_max_labels() -> usize {
    8
}

impl Default for LabelRules {
    fn default() -> Self {
        Self {
            max_count: default_max_labels(),
            allowed: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub instances: u32,
    pub nodes: u32,
    pub storage_gb: u32,
}

impl Team {
    pub fn versions<'a>(&'a self, defaults: &'a Defaults) -> Vec<&'a str> {
        match &self.allowed_versions {
            Some(versions) => versions.iter().map(String::as_str).collect(),
            None => vec![defaults.engine_version.as_str()],
        }
    }

    pub fn azs<'a>(&'a self, defaults: &'a Defaults) -> Vec<&'a str> {
        match &self.allowed_azs {
            Some(azs) => azs.iter().map(String::as_str).collect(),
            None => vec![defaults.az_code.as_str()],
        }
    }

    /// Every system tag the team's instances carry, the enterprise project first.
    pub fn injected_tags(&self) -> Vec<(String, String)> {
        std::iter::once((
            ENTERPRISE_PROJECT_TAG.to_owned(),
            self.enterprise_project_id.clone(),
        ))
        .chain(self.sys_tags.iter().map(|(k, v)| (k.clone(), v.clone())))
        .collect()
    }
}

/// A loaded, validated policy and its revision.
#[derive(Debug, Clone)]
pub struct Policy {
    pub file: PolicyFile,
    /// `sha256:` and the first 16 hex digits of the file's SHA-256.
    pub revision: String,
    /// Team → lower-cased label key → compiled, anchored value pattern.
    label_patterns: BTreeMap<String, BTreeMap<String, Regex>>,
}

/// A policy that cannot be used. The message names the table, key and line at fault.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("policy file is not valid TOML or has an unexpected shape: {0}")]
    Syntax(String),
    #[error("policy file is not valid: `{key}`{} {message}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Invalid {
        key: String,
        line: Option<usize>,
        message: String,
    },
    #[error("the policy was not loaded from a file, so there is nothing to reload")]
    NotReloadable,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|error| PolicyError::Syntax(error.to_string()))?;
        let label_patterns =
            file.validate()
                .map_err(|Invalid { path, message }| PolicyError::Invalid {
                    line: line_of(text, &path),
                    key: path.join("."),
                    message,
                })?;
        Ok(Self {
            file,
            revision: revision_of(text.as_bytes()),
            label_patterns,
        })
    }

    pub fn team(&self, name: &str) -> Option<&Team> {
        self.file.teams.get(name)
    }

    pub fn size(&self, name: &str) -> Option<&SizeProfile> {
        self.file.sizes.get(name)
    }

    pub fn mode(&self, rule: &str) -> RuleMode {
        self.file.rules.get(rule).copied().unwrap_or_default()
    }

    /// The compiled pattern for `key` (any case) in `team`, if the key is allowed.
    pub fn label_pattern(&self, team: &str, key: &str) -> Option<&Regex> {
        self.label_patterns.get(team)?.get(&key.to_lowercase())
    }
}

fn revision_of(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let hex: String = digest
        .as_ref()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The line of the key at `path`, found through the document's spans.
fn line_of(text: &str, path: &[String]) -> Option<usize> {
    let document = toml_edit::ImDocument::parse(text).ok()?;
    let mut table: &dyn toml_edit::TableLike = document.as_table();
    let mut span = None;
    for segment in path {
        let (key, item) = table.get_key_value(segment)?;
        span = key.span().or_else(|| item.span());
        match item.as_table_like() {
            Some(inner) => table = inner,
            None => break,
        }
    }
    span.map(|range| text[..range.start].matches('\n').count() + 1)
}

struct Invalid {
    path: Vec<String>,
    message: String,
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
    fn validate(&self) -> Result<BTreeMap<String, BTreeMap<String, Regex>>, Invalid> {
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
        if self.sizes.is_empty() {
            return Err(invalid(&["sizes"], "must define at least one size profile"));
        }
        for (name, size) in &self.sizes {
            size.validate(name)?;
        }
        let mut patterns = BTreeMap::new();
        for (name, team) in &self.teams {
            patterns.insert(name.clone(), self.validate_team(name, team)?);
        }
        Ok(patterns)
    }

    fn validate_team(&self, name: &str, team: &Team) -> Result<BTreeMap<String, Regex>, Invalid> {
        let at = |key: &'static str| ["teams", name, key];
        non_empty(&at("enterprise_project_id"), &team.enterprise_project_id)?;
        if team.targets.is_empty() {
            return Err(invalid(&at("targets"), "must name at least one target"));
        }
        for (alias, id) in &team.targets {
            if !is_taurusdb_instance_id(id) {
                return Err(invalid(
                    &["teams", name, "targets", alias],
                    format!(
                        "{id:?} is not a TaurusDB instance id (32 letters or digits ending in `in07`)"
                    ),
                ));
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

/// The policy in force. A new policy replaces it only after it loaded and validated.
#[derive(Debug)]
pub struct PolicyStore {
    path: Option<PathBuf>,
    current: ArcSwap<Policy>,
}

impl PolicyStore {
    pub fn from_file(path: PathBuf) -> Result<Self, PolicyError> {
        let policy = Policy::load(&path)?;
        Ok(Self {
            path: Some(path),
            current: ArcSwap::from_pointee(policy),
        })
    }

    /// A policy that did not come from a file (the demo's embedded example).
    pub fn fixed(policy: Policy) -> Self {
        Self {
            path: None,
            current: ArcSwap::from_pointee(policy),
        }
    }

    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Re-reads the file. On any error the policy in force stays.
    pub fn reload(&self) -> Result<Reloaded, PolicyError> {
        let path = self.path.as_ref().ok_or(PolicyError::NotReloadable)?;
        let policy = Policy::load(path)?;
        let previous = self.current.load().revision.clone();
        let revision = policy.revision.clone();
        self.current.store(Arc::new(policy));
        Ok(Reloaded {
            changed: previous != revision,
            previous_revision: previous,
            revision,
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reloaded {
    pub revision: String,
    pub previous_revision: String,
    /// False when the file's content did not change.
    pub changed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../config/policy.example.toml");

    fn error_of(text: &str) -> String {
        Policy::parse(text)
            .expect_err("the policy is invalid")
            .to_string()
    }

    #[test]
    fn the_example_policy_is_valid() {
        let policy = Policy::parse(EXAMPLE).expect("example policy is valid");
        assert!(policy.file.teams.len() >= 2);
        assert!(policy.revision.starts_with("sha256:"));
    }

    #[test]
    fn the_revision_changes_with_the_file() {
        let a = Policy::parse(EXAMPLE).expect("valid");
        let b = Policy::parse(&format!("{EXAMPLE}\n# a comment\n")).expect("valid");
        assert_ne!(a.revision, b.revision);
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
    fn an_unknown_key_is_rejected_with_its_line() {
        let error = error_of(&format!("{EXAMPLE}\n[extra]\nx = 1\n"));
        assert!(error.contains("extra"), "{error}");
        assert!(error.contains("line"), "{error}");
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

    #[test]
    fn a_broken_label_pattern_is_rejected() {
        let error = error_of(&EXAMPLE.replacen("owner = \"", "owner = \"(", 1));
        assert!(
            error.contains("teams.analytics.labels.allowed.owner"),
            "{error}"
        );
    }

    #[test]
    fn an_extra_system_tag_may_not_replace_the_enterprise_project() {
        let text = EXAMPLE.replacen(
            "[teams.analytics.sys_tags]",
            "[teams.analytics.sys_tags]\n_sys_enterprise_project_id = \"x\"",
            1,
        );
        assert!(error_of(&text).contains("_sys_enterprise_project_id"));
    }

    #[test]
    fn a_zero_quota_is_rejected() {
        let error = error_of(&EXAMPLE.replacen("instances = 5", "instances = 0", 1));
        assert!(error.contains("quota"), "{error}");
    }

    #[test]
    fn label_keys_match_case_insensitively() {
        let policy = Policy::parse(EXAMPLE).expect("valid");
        assert!(policy.label_pattern("analytics", "OWNER").is_some());
        assert!(policy.label_pattern("analytics", "colour").is_none());
    }
}
