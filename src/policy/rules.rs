//! Stable rule ids. A rule's id never changes meaning; new checks get new ids.

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
pub const LEASE_MAX: &str = "lease.max";

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
    LEASE_MAX,
];

/// Rules without which no upstream body can be built, or that guard the injected tags:
/// they always enforce.
pub const ENFORCE_ONLY: &[&str] = &[TEAM_KNOWN, TARGET_ALLOWED, LABELS_RESERVED];
