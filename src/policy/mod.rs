//! The org policy file: defaults, rule modes, named size profiles, and what each team may order.
//!
//! A policy is validated completely when it is loaded, so evaluation never meets a dangling
//! size name, an impossible profile or a broken pattern. Its revision is a hash of the file's
//! bytes, quoted in every decision so a denial can be traced to the exact rules that made it.
//! [`PolicyStore`] holds the policy in force and swaps in a new one only after it validated.

pub mod cloud_check;
mod file;
pub mod rules;
mod store;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;

pub use file::{
    DAY_MS, Defaults, ENTERPRISE_PROJECT_TAG, ExceptionSettings, GROUP_APPROVER_PREFIX, HaMode,
    LabelRules, LeaseRule, MAX_LABEL_KEY_CHARS, MAX_LABEL_VALUE_CHARS, MAX_LEASE_DAYS, PolicyFile,
    Quota, RegionFlavors, RegionRules, RuleMode, SizeProfile, Target, Team, TeamExceptions,
    days_ms,
};
pub use store::{PolicyStore, Regions, Reloaded};
use validate::Invalid;

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

    /// What a valid policy still does at its own risk: each line names the key.
    pub fn warnings(&self) -> Vec<String> {
        if !self.file.allow_undocumented_sys_tags {
            return Vec::new();
        }
        self.file
            .teams
            .iter()
            .flat_map(|(team, t)| t.sys_tags.keys().map(move |key| (team, key)))
            .map(|(team, key)| {
                format!(
                    "teams.{team}.sys_tags.{key}: an undocumented system tag; the create API may refuse it"
                )
            })
            .collect()
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

    /// Whether an employee who is `subject` with `groups` (and an admin or not) approves
    /// exception requests of `team`.
    pub fn approves(&self, team: &str, subject: &str, groups: &[String], admin: bool) -> bool {
        (admin && self.file.exceptions.admins_approve)
            || self
                .team(team)
                .is_some_and(|t| t.exceptions.names_approver(subject, groups))
    }

    /// Whether `team`'s policy lets an approved exception waive `rule`.
    pub fn exceptable(&self, team: &str, rule: &str) -> bool {
        self.team(team)
            .is_some_and(|t| t.exceptions.exceptable.iter().any(|r| r == rule))
    }

    /// The rules of `region`; none (everything the teams allow) when it has no table.
    pub fn region_rules(&self, region: Option<&str>) -> &RegionRules {
        static NONE: std::sync::LazyLock<RegionRules> =
            std::sync::LazyLock::new(RegionRules::default);
        region
            .and_then(|name| self.file.regions.get(name))
            .unwrap_or(&NONE)
    }

    /// Fills in the region of every target that names none (`default_region`), and checks that
    /// every region the policy names is one of `configured`: a policy cannot route a create to
    /// a region the gateway has no endpoint or credentials for.
    pub fn resolve_regions(
        mut self,
        default_region: &str,
        configured: &[&str],
    ) -> Result<Self, PolicyError> {
        let unknown = |key: Vec<String>, region: &str| PolicyError::Invalid {
            line: None,
            key: key.join("."),
            message: format!(
                "names the region `{region}`, which the gateway's configuration does not have (configured: {})",
                configured.join(", ")
            ),
        };
        for name in self.file.regions.keys() {
            if !configured.contains(&name.as_str()) {
                return Err(unknown(vec!["regions".into(), name.clone()], name));
            }
        }
        for (team_name, team) in &mut self.file.teams {
            for region in team.region_quotas.keys() {
                if !configured.contains(&region.as_str()) {
                    return Err(unknown(
                        vec![
                            "teams".into(),
                            team_name.clone(),
                            "region_quotas".into(),
                            region.clone(),
                        ],
                        region,
                    ));
                }
            }
            for (alias, target) in &mut team.targets {
                let region = target
                    .region
                    .get_or_insert_with(|| default_region.to_owned());
                if !configured.contains(&region.as_str()) {
                    return Err(unknown(
                        vec![
                            "teams".into(),
                            team_name.clone(),
                            "targets".into(),
                            alias.clone(),
                        ],
                        region,
                    ));
                }
            }
        }
        Ok(self)
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const EXAMPLE: &str = include_str!("../../config/policy.example.toml");

    pub(super) fn error_of(text: &str) -> String {
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
    fn an_unknown_key_is_rejected_with_its_line() {
        let error = error_of(&format!("{EXAMPLE}\n[extra]\nx = 1\n"));
        assert!(error.contains("extra"), "{error}");
        assert!(error.contains("line"), "{error}");
    }

    #[test]
    fn label_keys_match_case_insensitively() {
        let policy = Policy::parse(EXAMPLE).expect("valid");
        assert!(policy.label_pattern("analytics", "OWNER").is_some());
        assert!(policy.label_pattern("analytics", "colour").is_none());
    }
}

#[cfg(test)]
mod properties {
    //! A policy file is checked completely at load: any text, or the example with any line
    //! damaged, is a policy or a clear error; never a panic.

    use proptest::prelude::*;

    use super::*;

    const EXAMPLE: &str = include_str!("../../config/policy.example.toml");

    proptest! {
        #[test]
        fn any_text_is_a_policy_or_an_error(text in "\\PC{0,400}") {
            drop(Policy::parse(&text));
        }

        #[test]
        fn the_example_with_a_damaged_line_is_a_policy_or_an_error(
            line in 0..EXAMPLE.lines().count(),
            replacement in "\\PC{0,60}",
        ) {
            let damaged: Vec<&str> = EXAMPLE
                .lines()
                .enumerate()
                .map(|(i, l)| if i == line { replacement.as_str() } else { l })
                .collect();
            if let Err(error) = Policy::parse(&damaged.join("\n")) {
                prop_assert!(!error.to_string().is_empty());
            }
        }
    }
}
