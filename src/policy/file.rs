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
    /// Hours before a lease ends that its instance shows `expiring`.
    #[serde(default = "default_lease_warning_hours")]
    pub lease_warning_hours: f64,
    #[serde(default)]
    pub exceptions: ExceptionSettings,
    /// Region name → what may be ordered there, for every team.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionRules>,
}

/// What may be ordered in one region, on top of each team's own allowances: AZ names and the
/// flavors on sale differ by region.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionRules {
    /// AZ used when a request names none; `defaults.az_code` when absent.
    pub az_code: Option<String>,
    /// AZs that may be used here (and are this region's); only `az_code` when absent. A
    /// team's `allowed_azs` narrows this further.
    pub allowed_azs: Option<Vec<String>>,
    /// Engine versions that may be used here; every version the team may use when absent.
    pub allowed_versions: Option<Vec<String>>,
    /// Sizes that may be ordered here; every size the team may use when absent.
    pub allowed_sizes: Option<Vec<String>>,
    /// Size name → its flavor ids in this region, where they differ from the size's own.
    #[serde(default)]
    pub flavors: BTreeMap<String, RegionFlavors>,
}

impl RegionRules {
    /// The AZs that are this region's: `allowed_azs`, else `az_code`; `None` when the table
    /// names neither.
    pub fn own_azs(&self) -> Option<Vec<&str>> {
        match (&self.allowed_azs, &self.az_code) {
            (Some(azs), _) => Some(azs.iter().map(String::as_str).collect()),
            (None, Some(az)) => Some(vec![az.as_str()]),
            (None, None) => None,
        }
    }

    /// `size` (named `name`) with this region's flavor ids.
    pub fn size_in_region(&self, name: &str, size: &SizeProfile) -> SizeProfile {
        let mut sized = size.clone();
        if let Some(flavors) = self.flavors.get(name) {
            if let Some(fe) = &flavors.fe_flavor_id {
                sized.fe_flavor_id.clone_from(fe);
            }
            if let Some(be) = &flavors.be_flavor_id {
                sized.be_flavor_id.clone_from(be);
            }
        }
        sized
    }
}

/// A size's flavor ids in one region; a key left out keeps the size's own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionFlavors {
    pub fe_flavor_id: Option<String>,
    pub be_flavor_id: Option<String>,
}

/// A TaurusDB instance a team may attach StarRocks to, and its region: written as the
/// instance id alone (the default region) or `{ region = "cn-east-3", instance = "…in07" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "TargetSpec")]
pub struct Target {
    /// `None`: the gateway's default region (the policy store fills it in at load).
    pub region: Option<String>,
    pub instance: String,
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a TaurusDB instance id, or { region = \"…\", instance = \"…in07\" }"
)]
enum TargetSpec {
    Instance(String),
    InRegion { region: String, instance: String },
}

impl From<TargetSpec> for Target {
    fn from(spec: TargetSpec) -> Self {
        match spec {
            TargetSpec::Instance(instance) => Self {
                region: None,
                instance,
            },
            TargetSpec::InRegion { region, instance } => Self {
                region: Some(region),
                instance,
            },
        }
    }
}

fn default_lease_warning_hours() -> f64 {
    24.0
}

/// Milliseconds in a day, for lease lengths given in (possibly fractional) days.
pub const DAY_MS: f64 = 86_400_000.0;
/// Longest lease or warning anyone may set: ten years, in days.
pub const MAX_LEASE_DAYS: f64 = 3_650.0;

/// `days` as whole milliseconds; `days` is validated positive and at most
/// [`MAX_LEASE_DAYS`], so it fits.
pub fn days_ms(days: f64) -> i64 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "at most ten years of milliseconds"
    )]
    let ms = (days * DAY_MS).round() as i64;
    ms.max(1)
}

impl PolicyFile {
    /// The AZs `team` may use in `region` (`None`: a region without a table of its own). A
    /// region's table says which AZs are its own; a team's list is narrowed to them, and
    /// where a region has no list, to the AZs no other region's table claims.
    pub fn team_azs<'a>(&'a self, team: &'a Team, region: Option<&str>) -> Vec<&'a str> {
        let rules = region.and_then(|name| self.regions.get(name));
        let own = rules.and_then(RegionRules::own_azs);
        let claimed_elsewhere = |az: &str| {
            self.regions
                .iter()
                .filter(|(name, _)| Some(name.as_str()) != region)
                .filter_map(|(_, other)| other.own_azs())
                .any(|azs| azs.contains(&az))
        };
        match (&team.allowed_azs, own) {
            (Some(azs), Some(own)) => azs
                .iter()
                .map(String::as_str)
                .filter(|az| own.contains(az))
                .collect(),
            (Some(azs), None) => azs
                .iter()
                .map(String::as_str)
                .filter(|az| !claimed_elsewhere(az))
                .collect(),
            (None, Some(own)) => own,
            (None, None) => vec![self.defaults.az_code.as_str()],
        }
    }

    /// `lease_warning_hours` in milliseconds.
    pub fn lease_warning_ms(&self) -> i64 {
        days_ms(self.lease_warning_hours / 24.0)
    }
}

/// How long a team's instances (of one size) live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRule {
    /// Days an instance lives when its create names no `lease_days`; when only the maximum
    /// is set, the maximum.
    pub default_lease_days: Option<f64>,
    /// Longest lease a create may ask for, and an extension may reach counted from now.
    pub max_lease_days: Option<f64>,
}

impl LeaseRule {
    /// The lease of a create asking for `requested` days: what it asked for, else the
    /// default, else the maximum; `None`: no lease.
    pub fn days_for(&self, requested: Option<f64>) -> Option<f64> {
        requested
            .or(self.default_lease_days)
            .or(self.max_lease_days)
    }

    /// Whether a lease of `days` is within the maximum.
    pub fn admits(&self, days: f64) -> bool {
        self.max_lease_days.is_none_or(|max| days <= max)
    }
}

/// How exception requests behave, for every team.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExceptionSettings {
    /// A request neither approved nor rejected within this many hours expires.
    pub pending_ttl_hours: f64,
    /// Platform admins may approve any team's requests, besides the team's own approvers.
    pub admins_approve: bool,
}

impl Default for ExceptionSettings {
    fn default() -> Self {
        Self {
            pending_ttl_hours: 72.0,
            admins_approve: true,
        }
    }
}

impl ExceptionSettings {
    /// `pending_ttl_hours` in milliseconds.
    pub fn pending_ttl_ms(&self) -> i64 {
        // Validated positive and at most a year, so the product fits.
        #[expect(
            clippy::cast_possible_truncation,
            reason = "validated to at most 8784 hours"
        )]
        let ms = (self.pending_ttl_hours * 3_600_000.0).round() as i64;
        ms.max(1)
    }
}

/// The prefix of an approver that names a value of the groups claim, not a subject.
pub const GROUP_APPROVER_PREFIX: &str = "group:";

/// What a team's denials may become: exception requests, and who approves them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeamExceptions {
    /// Rules an approved exception may waive; `team.known`, `target.allowed` and
    /// `labels.reserved` never are.
    pub exceptable: Vec<String>,
    /// Who approves: a subject (`carol`), or `group:NAME` for a value of the groups claim.
    pub approvers: Vec<String>,
}

impl TeamExceptions {
    /// Whether `subject` with `groups` is one of the team's approvers.
    pub fn names_approver(&self, subject: &str, groups: &[String]) -> bool {
        self.approvers.iter().any(
            |approver| match approver.strip_prefix(GROUP_APPROVER_PREFIX) {
                Some(group) => groups.iter().any(|g| g == group),
                None => approver == subject,
            },
        )
    }
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
    /// Target alias → the TaurusDB instance (`…in07`) the team may attach StarRocks to.
    pub targets: BTreeMap<String, Target>,
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
    /// Region name → limits on the team's instances in that region, besides `quota` (which
    /// counts every region).
    #[serde(default)]
    pub region_quotas: BTreeMap<String, Quota>,
    #[serde(default)]
    pub exceptions: TeamExceptions,
    /// Days the team's instances live by default; see [`LeaseRule`].
    pub default_lease_days: Option<f64>,
    pub max_lease_days: Option<f64>,
    /// Size name → its own lease rule; a key it leaves out comes from the team's.
    #[serde(default)]
    pub size_leases: BTreeMap<String, LeaseRule>,
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

    /// The engine versions the team may use in a region whose own rules are `region`.
    pub fn versions_in<'a>(&'a self, defaults: &'a Defaults, region: &RegionRules) -> Vec<&'a str> {
        self.versions(defaults)
            .into_iter()
            .filter(|v| {
                region
                    .allowed_versions
                    .as_ref()
                    .is_none_or(|allowed| allowed.iter().any(|a| a == v))
            })
            .collect()
    }

    /// The sizes the team may order in a region whose own rules are `region`.
    pub fn sizes_in<'a>(&'a self, region: &RegionRules) -> Vec<&'a str> {
        self.allowed_sizes
            .iter()
            .map(String::as_str)
            .filter(|s| {
                region
                    .allowed_sizes
                    .as_ref()
                    .is_none_or(|allowed| allowed.iter().any(|a| a == s))
            })
            .collect()
    }

    /// The lease rule of `size` in this team: the size's own keys, else the team's.
    pub fn lease(&self, size: &str) -> LeaseRule {
        let own = self.size_leases.get(size).copied().unwrap_or_default();
        LeaseRule {
            default_lease_days: own.default_lease_days.or(self.default_lease_days),
            max_lease_days: own.max_lease_days.or(self.max_lease_days),
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
