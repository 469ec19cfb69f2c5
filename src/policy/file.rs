//! The policy file format: the serde types read from TOML and small accessors on them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    /// The create API documents one system tag, `_sys_enterprise_project_id`; others in a
    /// team's `sys_tags` are refused unless this is set (and `policy check` warns).
    #[serde(default)]
    pub allow_undocumented_sys_tags: bool,
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
    /// Quota limits, enforced by the quota ledger; none means no limit.
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
