//! The body of `POST /v3/{project_id}/instances/{instance_id}/starrocks` and the rules it is
//! validated against, one by one, as the API page and the SDK models document them. Every
//! refusal names the field it is about.

use serde::Deserialize;

use super::SimulatorConfig;
use super::catalog::{Flavor, MAX_VOLUME_GB, StorageType};

pub(super) const PARAMETER_ERROR: &str = "DBS.200001";
const ENTERPRISE_PROJECT_TAG: &str = "_sys_enterprise_project_id";
const INVALID_NAME: &str = "DBS.280234";
const PASSWORD_SPECIALS: &str = "~!@#$%^*-_=+?,()&|.";
/// "If you enter a weak password, the system automatically determines that the password is
/// invalid." The cloud's list is not published; these common passwords, which meet the
/// length and three-of-four rule, stand in for it (compared case-insensitively).
const WEAK_PASSWORDS: &[&str] = &[
    "password1",
    "password123",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword1",
    "aa123456",
    "abc12345",
    "abcd1234",
    "admin123",
    "admin@123",
    "qwerty123",
    "qwer1234",
    "root@123",
    "huawei@123",
    "welcome1",
    "changeme1",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    pub(super) name: String,
    pub(super) engine: EngineSpec,
    pub(super) ha: HaSpec,
    fe_flavor_id: String,
    be_flavor_id: String,
    db_root_pwd: String,
    pub(super) fe_count: i64,
    pub(super) be_count: i64,
    pub(super) az_mode: String,
    fe_volume: VolumeSpec,
    be_volume: VolumeSpec,
    pub(super) az_code: String,
    pub(super) time_zone: Option<String>,
    pub(super) tags_info: TagsInfoSpec,
    pub(super) security_group_id: Option<String>,
    pay_info: Option<PayInfo>,
    region_code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EngineSpec {
    #[serde(rename = "type")]
    pub(super) engine_type: String,
    pub(super) version: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HaSpec {
    pub(super) mode: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumeSpec {
    io_type: String,
    capacity_in_gb: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TagsInfoSpec {
    pub(super) sys_tags: Vec<TagSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TagSpec {
    pub(super) key: String,
    pub(super) value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayInfo {
    pay_model: Option<String>,
    period: Option<String>,
    period_type: Option<String>,
    is_auto_renew: Option<String>,
}

/// The create body as the cloud reads it: unknown fields refused, each documented rule
/// checked in turn; a refusal names the field it is about.
pub(super) fn parse(raw: &[u8], config: &SimulatorConfig) -> Result<CreateBody, Refusal> {
    let deserializer = &mut serde_json::Deserializer::from_slice(raw);
    let body: CreateBody = serde_path_to_error::deserialize(deserializer).map_err(|error| {
        Refusal(
            PARAMETER_ERROR,
            format!("Parameter error: {}: {}", error.path(), error.inner()),
        )
    })?;
    validate(&body, config)?;
    Ok(body)
}

/// A refusal: error code and a message naming the field.
pub(super) struct Refusal(pub(super) &'static str, pub(super) String);

fn parameter(message: impl Into<String>) -> Refusal {
    Refusal(PARAMETER_ERROR, message.into())
}

fn check_name(name: &str) -> Result<(), Refusal> {
    let valid = (4..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Refusal(
            INVALID_NAME,
            "Invalid DB instance name. name: must start with a letter and consist of 4 to 64 letters, digits, hyphens or underscores.".into(),
        ))
    }
}

fn check_password(password: &str) -> Result<(), Refusal> {
    let length_ok = (8..=32).contains(&password.chars().count());
    let charset_ok = password
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || PASSWORD_SPECIALS.contains(c));
    let classes = [
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| PASSWORD_SPECIALS.contains(c)),
    ]
    .into_iter()
    .filter(|present| *present)
    .count();
    if WEAK_PASSWORDS
        .iter()
        .any(|weak| weak.eq_ignore_ascii_case(password))
    {
        return Err(parameter(
            "db_root_pwd: the password is too weak; choose one that is not a common password.",
        ));
    }
    if length_ok && charset_ok && classes >= 3 {
        Ok(())
    } else {
        Err(parameter(
            "db_root_pwd: the password must be 8 to 32 characters with at least three of uppercase letters, lowercase letters, digits and special characters (~!@#$%^*-_=+?,()&|.).",
        ))
    }
}

fn check_time_zone(time_zone: &str) -> Result<(), Refusal> {
    let bytes = time_zone.as_bytes();
    let number = |digits: &[u8]| -> Option<u32> { std::str::from_utf8(digits).ok()?.parse().ok() };
    // UTC offsets in use run from UTC-12:00 to UTC+14:00.
    let valid = bytes.len() == 9
        && time_zone.starts_with("UTC")
        && matches!(bytes[3], b'+' | b'-')
        && bytes[4..6].iter().all(u8::is_ascii_digit)
        && bytes[6] == b':'
        && bytes[7..9].iter().all(u8::is_ascii_digit)
        && number(&bytes[4..6]).is_some_and(|hours| hours <= 14)
        && number(&bytes[7..9]).is_some_and(|minutes| minutes < 60);
    if valid {
        Ok(())
    } else {
        Err(parameter(format!(
            "time_zone: {time_zone:?} is not a UTC offset such as UTC+08:00."
        )))
    }
}

/// "capacity_in_gb: Disk capacity, in GB. Increment: 10 GB"; "io_type: Storage type. The
/// value can be obtained from the response to querying HTAP engine resources", whose items
/// carry `min_volume_size`; the largest is [`MAX_VOLUME_GB`].
fn check_volume(
    field: &str,
    volume: &VolumeSpec,
    az_code: &str,
    storage_types: &[StorageType],
) -> Result<(), Refusal> {
    let Some(storage) = storage_types.iter().find(|s| s.name == volume.io_type) else {
        let names: Vec<&str> = storage_types.iter().map(|s| s.name.as_str()).collect();
        return Err(parameter(format!(
            "{field}.io_type: {:?} is not an available storage type ({}).",
            volume.io_type,
            names.join(", ")
        )));
    };
    if storage.az_status.get(az_code).map(String::as_str) != Some("normal") {
        return Err(parameter(format!(
            "{field}.io_type: {:?} is not sold in {az_code}.",
            volume.io_type
        )));
    }
    if volume.capacity_in_gb <= 0 || volume.capacity_in_gb % 10 != 0 {
        return Err(parameter(format!(
            "{field}.capacity_in_gb: {} is not a positive multiple of 10 GB.",
            volume.capacity_in_gb
        )));
    }
    if !(storage.min_volume_size..=MAX_VOLUME_GB).contains(&volume.capacity_in_gb) {
        return Err(parameter(format!(
            "{field}.capacity_in_gb: {} GB is outside {} to {MAX_VOLUME_GB} GB for {}.",
            volume.capacity_in_gb, storage.min_volume_size, storage.name
        )));
    }
    Ok(())
}

/// "fe_flavor_id / be_flavor_id: … You can use the value of id in the response to querying
/// HTAP specifications": a flavor of this region, sold for the requested HA mode
/// (`instance_mode`) and in the requested AZ (`az_status` is `normal`).
fn check_flavor(
    field: &str,
    id: &str,
    ha_mode: &str,
    az_code: &str,
    flavors: &[Flavor],
) -> Result<(), Refusal> {
    let Some(flavor) = flavors.iter().find(|f| f.id == id) else {
        return Err(parameter(format!(
            "{field}: {id:?} is not a flavor of this region (GET /v3/{{project_id}}/htap/flavors/star-rocks lists them)."
        )));
    };
    if flavor.instance_mode != ha_mode {
        return Err(parameter(format!(
            "{field}: {} is a {} flavor; ha.mode is {ha_mode}.",
            flavor.spec_code, flavor.instance_mode
        )));
    }
    match flavor.az_status.get(az_code).map(String::as_str) {
        Some("normal") => Ok(()),
        Some("sellout") => Err(parameter(format!(
            "{field}: {} is sold out in {az_code}.",
            flavor.spec_code
        ))),
        _ => Err(parameter(format!(
            "{field}: {} is not sold in {az_code}.",
            flavor.spec_code
        ))),
    }
}

fn check_pay_info(body: &CreateBody) -> Result<(), Refusal> {
    let pay_model = body
        .pay_info
        .as_ref()
        .and_then(|p| p.pay_model.as_deref())
        .unwrap_or("0");
    match pay_model {
        // region_code: "This parameter is mandatory for yearly/monthly billing." The page
        // does not forbid it otherwise, so pay-per-use accepts it.
        "0" => Ok(()),
        "1" => {
            let pay = body.pay_info.as_ref();
            for (field, value) in [
                ("pay_info.period", pay.and_then(|p| p.period.as_ref())),
                (
                    "pay_info.period_type",
                    pay.and_then(|p| p.period_type.as_ref()),
                ),
                (
                    "pay_info.is_auto_renew",
                    pay.and_then(|p| p.is_auto_renew.as_ref()),
                ),
                ("region_code", body.region_code.as_ref()),
            ] {
                if value.is_none_or(|v| v.is_empty()) {
                    return Err(parameter(format!(
                        "{field}: mandatory for yearly/monthly billing."
                    )));
                }
            }
            Err(parameter(
                "pay_info.pay_model: StarRocks instances support only pay-per-use billing (0).",
            ))
        }
        other => Err(parameter(format!(
            "pay_info.pay_model: {other:?} is not 0 or 1."
        ))),
    }
}

fn validate(body: &CreateBody, config: &SimulatorConfig) -> Result<(), Refusal> {
    check_name(&body.name)?;
    if body.engine.engine_type != "star-rocks" {
        return Err(parameter(format!(
            "engine.type: {:?} is not supported; only star-rocks.",
            body.engine.engine_type
        )));
    }
    if !config.engine_versions.contains(&body.engine.version) {
        return Err(parameter(format!(
            "engine.version: {:?} is not available ({}).",
            body.engine.version,
            config.engine_versions.join(", ")
        )));
    }
    let counts = match body.ha.mode.as_str() {
        "Single" => 1..=1,
        "Cluster" => 3..=10,
        other => {
            return Err(parameter(format!(
                "ha.mode: {other:?} is not Single or Cluster."
            )));
        }
    };
    for (field, count) in [("fe_count", body.fe_count), ("be_count", body.be_count)] {
        if !counts.contains(&count) {
            return Err(parameter(format!(
                "{field}: {count} nodes are not allowed in {} mode ({} to {}).",
                body.ha.mode,
                counts.start(),
                counts.end()
            )));
        }
    }
    check_password(&body.db_root_pwd)?;
    if body.az_mode != "single" {
        return Err(parameter(format!(
            "az_mode: {:?} is not supported; only single.",
            body.az_mode
        )));
    }
    // "az_code | Yes | String | AZ code": one of the region's zones.
    if !config.availability_zones.contains(&body.az_code) {
        return Err(parameter(format!(
            "az_code: {:?} is not an availability zone of this region ({}).",
            body.az_code,
            config.availability_zones.join(", ")
        )));
    }
    for (field, flavor) in [
        ("fe_flavor_id", &body.fe_flavor_id),
        ("be_flavor_id", &body.be_flavor_id),
    ] {
        check_flavor(field, flavor, &body.ha.mode, &body.az_code, &config.flavors)?;
    }
    for (field, volume) in [
        ("fe_volume", &body.fe_volume),
        ("be_volume", &body.be_volume),
    ] {
        check_volume(field, volume, &body.az_code, &config.storage_types)?;
    }
    if let Some(time_zone) = &body.time_zone {
        check_time_zone(time_zone)?;
    }
    // API notes: "key `_sys_enterprise_project_id`, value the enterprise project ID (`"0"` is
    // the default project)". The page documents no other system tag.
    if let Some(tag) = body
        .tags_info
        .sys_tags
        .iter()
        .find(|t| t.key != ENTERPRISE_PROJECT_TAG)
    {
        return Err(parameter(format!(
            "tags_info.sys_tags: {:?} is not a supported system tag; only {ENTERPRISE_PROJECT_TAG} is.",
            tag.key
        )));
    }
    let project_tag = body
        .tags_info
        .sys_tags
        .iter()
        .find(|t| t.key == ENTERPRISE_PROJECT_TAG);
    let Some(project_tag) = project_tag else {
        return Err(parameter(
            "tags_info.sys_tags: the _sys_enterprise_project_id system tag is required.",
        ));
    };
    if project_tag.value != "0" && uuid::Uuid::try_parse(&project_tag.value).is_err() {
        return Err(parameter(format!(
            "tags_info.sys_tags: {:?} is not an enterprise project ID (\"0\" or a UUID).",
            project_tag.value
        )));
    }
    // The page's example answers a UUID `security_group_id`, like every security group ID.
    if let Some(group) = body.security_group_id.as_deref()
        && uuid::Uuid::try_parse(group).is_err()
    {
        return Err(parameter(format!(
            "security_group_id: {group:?} is not a security group ID (a UUID)."
        )));
    }
    check_pay_info(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_name_and_password_pass() {
        assert!(check_name("htap-ff64").is_ok());
        assert!(check_password("Test@123!").is_ok());
    }

    #[test]
    fn names_break_on_each_documented_rule() {
        for bad in [
            "abc",
            "1abcd",
            "ab cd",
            &format!("a{}", "b".repeat(64)),
            "数据库实例",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn passwords_break_on_each_documented_rule() {
        for bad in [
            "Ab1!",
            "abcdefgh1",
            "ABCDEFGH!",
            &format!("Ab1!{}", "x".repeat(29)),
            "Abcdefg1 ",
        ] {
            assert!(check_password(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn time_zones_must_be_utc_offsets() {
        assert!(check_time_zone("UTC+08:00").is_ok());
        assert!(check_time_zone("UTC-05:30").is_ok());
        assert!(check_time_zone("Asia/Shanghai").is_err());
        assert!(check_time_zone("UTC+99:99").is_err());
        assert!(check_time_zone("UTC+08:75").is_err());
    }

    /// "If you enter a weak password, the system automatically determines that the password
    /// is invalid."
    #[test]
    fn weak_passwords_are_invalid_although_they_meet_the_class_rule() {
        for weak in ["Password1", "Aa123456", "P@ssw0rd", "Admin@123"] {
            assert!(check_password(weak).is_err(), "{weak:?} should be refused");
        }
        assert!(
            check_password("Test@123!").is_ok(),
            "the page's own example"
        );
    }
}
