//! The org policy file: defaults, named size profiles, and what each team may order.
//!
//! A policy is validated completely when it is loaded, so evaluation never meets a dangling
//! size name or an impossible profile. Its revision is a hash of the file's bytes, quoted in
//! every decision so a denial can be traced to the exact rules that made it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::domain::TimeZone;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub defaults: Defaults,
    pub sizes: BTreeMap<String, SizeProfile>,
    pub teams: BTreeMap<String, Team>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Engine major version used when a request names none.
    pub engine_version: String,
    pub time_zone: String,
    /// Availability zone the instances are placed in.
    pub az_code: String,
    /// Storage type of FE and BE volumes unless a size profile says otherwise.
    pub io_type: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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
}

/// A loaded, validated policy and its revision.
#[derive(Debug, Clone)]
pub struct Policy {
    pub file: PolicyFile,
    /// `sha256:` and the first 16 hex digits of the file's SHA-256.
    pub revision: String,
}

/// A policy that cannot be used. The message names the table and key at fault.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("policy file is not valid: {0}")]
    Syntax(String),
    #[error("policy file is not valid: `{key}` {message}")]
    Invalid { key: String, message: String },
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
        file.validate()?;
        Ok(Self {
            file,
            revision: revision_of(text.as_bytes()),
        })
    }

    pub fn team(&self, name: &str) -> Option<&Team> {
        self.file.teams.get(name)
    }

    pub fn size(&self, name: &str) -> Option<&SizeProfile> {
        self.file.sizes.get(name)
    }
}

impl Team {
    pub fn allows_version(&self, version: &str, defaults: &Defaults) -> bool {
        match &self.allowed_versions {
            Some(versions) => versions.iter().any(|v| v == version),
            None => version == defaults.engine_version,
        }
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

fn invalid(key: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// TaurusDB instance ids are 32 letters or digits followed by `in07`.
fn is_taurusdb_instance_id(id: &str) -> bool {
    id.len() == 36 && id.ends_with("in07") && id.chars().all(|c| c.is_ascii_alphanumeric())
}

impl PolicyFile {
    fn validate(&self) -> Result<(), PolicyError> {
        let defaults = &self.defaults;
        if defaults.engine_version.trim().is_empty() {
            return Err(invalid("defaults.engine_version", "must not be empty"));
        }
        TimeZone::parse(&defaults.time_zone)
            .map_err(|e| invalid("defaults.time_zone", e.to_string()))?;
        if defaults.az_code.trim().is_empty() {
            return Err(invalid("defaults.az_code", "must not be empty"));
        }
        if defaults.io_type.trim().is_empty() {
            return Err(invalid("defaults.io_type", "must not be empty"));
        }
        if self.sizes.is_empty() {
            return Err(invalid("sizes", "must define at least one size profile"));
        }
        for (name, size) in &self.sizes {
            size.validate(&format!("sizes.{name}"))?;
        }
        for (name, team) in &self.teams {
            let key = format!("teams.{name}");
            if team.enterprise_project_id.trim().is_empty() {
                return Err(invalid(
                    format!("{key}.enterprise_project_id"),
                    "must not be empty",
                ));
            }
            if team.targets.is_empty() {
                return Err(invalid(
                    format!("{key}.targets"),
                    "must name at least one target",
                ));
            }
            for (alias, id) in &team.targets {
                if !is_taurusdb_instance_id(id) {
                    return Err(invalid(
                        format!("{key}.targets.{alias}"),
                        format!(
                            "{id:?} is not a TaurusDB instance id (32 letters or digits ending in `in07`)"
                        ),
                    ));
                }
            }
            for size in &team.allowed_sizes {
                if !self.sizes.contains_key(size) {
                    return Err(invalid(
                        format!("{key}.allowed_sizes"),
                        format!("names size {size:?}, which is not defined under [sizes]"),
                    ));
                }
            }
            if team.allowed_versions.as_ref().is_some_and(Vec::is_empty) {
                return Err(invalid(
                    format!("{key}.allowed_versions"),
                    "must not be empty; remove it to allow only defaults.engine_version",
                ));
            }
        }
        Ok(())
    }
}

impl SizeProfile {
    fn validate(&self, key: &str) -> Result<(), PolicyError> {
        for (field, value) in [
            ("fe_flavor_id", &self.fe_flavor_id),
            ("be_flavor_id", &self.be_flavor_id),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(format!("{key}.{field}"), "must not be empty"));
            }
        }
        let counts = self.ha_mode.allowed_counts();
        for (field, count) in [("fe_count", self.fe_count), ("be_count", self.be_count)] {
            if !counts.contains(&count) {
                return Err(invalid(
                    format!("{key}.{field}"),
                    format!(
                        "is {count}, but ha_mode {} needs {} to {}",
                        self.ha_mode.as_str(),
                        counts.start(),
                        counts.end()
                    ),
                ));
            }
        }
        for (field, gb) in [
            ("fe_volume_gb", self.fe_volume_gb),
            ("be_volume_gb", self.be_volume_gb),
        ] {
            if gb == 0 || gb % 10 != 0 {
                return Err(invalid(
                    format!("{key}.{field}"),
                    format!("is {gb}, but volumes grow in 10 GB steps and must be positive"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = include_str!("../config/policy.example.toml");

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
    fn a_team_naming_an_undefined_size_is_rejected_with_its_key() {
        let text = EXAMPLE.replacen("allowed_sizes = [\"small\"", "allowed_sizes = [\"huge\"", 1);
        let error = Policy::parse(&text).expect_err("undefined size");
        assert!(error.to_string().contains("allowed_sizes"), "{error}");
        assert!(error.to_string().contains("huge"), "{error}");
    }

    #[test]
    fn a_single_profile_with_three_backends_is_rejected() {
        let text = EXAMPLE.replacen("be_count = 1", "be_count = 3", 1);
        let error = Policy::parse(&text).expect_err("Single needs one BE");
        assert!(error.to_string().contains("be_count"), "{error}");
    }

    #[test]
    fn a_volume_off_the_ten_gigabyte_grid_is_rejected() {
        let text = EXAMPLE.replacen("fe_volume_gb = 50", "fe_volume_gb = 55", 1);
        let error = Policy::parse(&text).expect_err("55 GB is not a 10 GB step");
        assert!(error.to_string().contains("fe_volume_gb"), "{error}");
    }

    #[test]
    fn a_target_that_is_not_a_taurusdb_id_is_rejected() {
        let text = EXAMPLE.replacen("in07\"", "in17\"", 1);
        let error = Policy::parse(&text).expect_err("in17 is a StarRocks id");
        assert!(error.to_string().contains("targets"), "{error}");
    }

    #[test]
    fn an_unknown_key_is_rejected() {
        let error =
            Policy::parse(&format!("{EXAMPLE}\n[extra]\nx = 1\n")).expect_err("unknown table");
        assert!(error.to_string().contains("extra"), "{error}");
    }
}
