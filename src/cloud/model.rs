//! Wire shapes of the TaurusDB StarRocks create call
//! (`reference/huawei-create-starrocks-instance.txt`).

use serde::{Deserialize, Serialize, Serializer};

use crate::domain::RootPassword;

/// The upstream create body. `db_root_pwd` prints redacted; only serialization exposes it.
#[derive(Debug, Clone, Serialize)]
pub struct CreateStarRocksBody {
    pub name: String,
    pub engine: Engine,
    pub ha: Ha,
    pub fe_flavor_id: String,
    pub be_flavor_id: String,
    #[serde(serialize_with = "expose_password")]
    pub db_root_pwd: RootPassword,
    pub fe_count: u32,
    pub be_count: u32,
    pub az_mode: String,
    pub fe_volume: Volume,
    pub be_volume: Volume,
    pub az_code: String,
    pub time_zone: String,
    pub tags_info: TagsInfo,
}

/// [`CreateStarRocksBody`] as a dry-run shows it: the same fields in the same order, with
/// `db_root_pwd` redacted. Built by destructuring, so a field added to the body cannot be
/// left out here.
#[derive(Debug, Serialize)]
pub struct RedactedBody<'a> {
    name: &'a str,
    engine: &'a Engine,
    ha: &'a Ha,
    fe_flavor_id: &'a str,
    be_flavor_id: &'a str,
    db_root_pwd: &'static str,
    fe_count: u32,
    be_count: u32,
    az_mode: &'a str,
    fe_volume: &'a Volume,
    be_volume: &'a Volume,
    az_code: &'a str,
    time_zone: &'a str,
    tags_info: &'a TagsInfo,
}

impl CreateStarRocksBody {
    pub fn redacted(&self) -> RedactedBody<'_> {
        let Self {
            name,
            engine,
            ha,
            fe_flavor_id,
            be_flavor_id,
            db_root_pwd: _,
            fe_count,
            be_count,
            az_mode,
            fe_volume,
            be_volume,
            az_code,
            time_zone,
            tags_info,
        } = self;
        RedactedBody {
            name,
            engine,
            ha,
            fe_flavor_id,
            be_flavor_id,
            db_root_pwd: "[REDACTED]",
            fe_count: *fe_count,
            be_count: *be_count,
            az_mode,
            fe_volume,
            be_volume,
            az_code,
            time_zone,
            tags_info,
        }
    }
}

fn expose_password<S: Serializer>(
    password: &RootPassword,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(password.expose())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engine {
    #[serde(rename = "type")]
    pub engine_type: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ha {
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub io_type: String,
    pub capacity_in_gb: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagsInfo {
    pub sys_tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// The parts of the `201` answer the gateway uses; the rest is ignored on purpose so that
/// additions upstream never break parsing.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateStarRocksResponse {
    pub instance: CreatedInstance,
    pub job_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreatedInstance {
    pub id: String,
    pub name: String,
    pub status: String,
}

/// `GET /v3/{project_id}/htap/flavors/star-rocks`: the flavors the region sells.
#[derive(Debug, Clone, Deserialize)]
pub struct FlavorList {
    #[serde(default)]
    pub flavors: Vec<Flavor>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Flavor {
    pub id: String,
    #[serde(default)]
    pub spec_code: String,
    /// `Single` or `Cluster`.
    #[serde(default)]
    pub instance_mode: String,
    /// AZ → `normal`, `unsupported` or `sellout`.
    #[serde(default)]
    pub az_status: std::collections::BTreeMap<String, String>,
}

/// `GET /v3/{project_id}/htap/storage-type/star-rocks`: the storage types (`io_type`s).
#[derive(Debug, Clone, Deserialize)]
pub struct StorageTypeList {
    #[serde(default)]
    pub storage_type: Vec<StorageType>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageType {
    pub name: String,
    #[serde(default)]
    pub az_status: std::collections::BTreeMap<String, String>,
    /// In GB; a number or a numeric string (the page does not say which).
    #[serde(default, deserialize_with = "number_or_string")]
    pub min_volume_size: Option<u64>,
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Number(number) => number.as_u64(),
        serde_json::Value::String(text) => text.trim().parse().ok(),
        _ => None,
    })
}

/// `GET …/htap`: the HTAP instances attached to a TaurusDB instance.
#[derive(Debug, Clone, Deserialize)]
pub struct HtapList {
    #[serde(default)]
    pub instances: Vec<HtapInstance>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HtapInstance {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub instance_state: Option<InstanceState>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InstanceState {
    pub instance_status: Option<String>,
}

/// `GET …/starrocks/{id}`: one StarRocks instance (the list holds one item).
#[derive(Debug, Clone, Deserialize)]
pub struct StarRocksDetails {
    #[serde(default)]
    pub instances: Vec<StarRocksDetail>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StarRocksDetail {
    pub id: String,
    pub name: String,
    /// `creating`, `normal`, `abnormal`, `createfail`, ...
    pub status: String,
    /// Operations still running on the instance; ready means none.
    #[serde(default)]
    pub actions: Vec<String>,
    pub data_store_version: Option<String>,
    pub time_zone: Option<String>,
    pub port_info: Option<PortInfo>,
    /// FE and BE node groups.
    #[serde(default)]
    pub groups: Vec<InstanceNodeGroup>,
}

/// One group of nodes of one role. Fields the cloud leaves out are absent, never a failure.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct InstanceNodeGroup {
    pub id: String,
    /// `fe` (frontends: SQL, metadata) or `be` (backends: storage and compute).
    #[schema(example = "be")]
    pub group_type: String,
    pub nodes: Vec<InstanceNode>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct InstanceNode {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The node's own status, e.g. `normal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub az_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PortInfo {
    pub mysql_port: Option<u16>,
}

/// `DELETE …/starrocks/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeleteAnswer {
    pub workflow_id: Option<String>,
}

/// `GET /v3/{project_id}/jobs?id=`.
#[derive(Debug, Clone, Deserialize)]
pub struct JobAnswer {
    pub job: Job,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: String,
    pub name: Option<String>,
    /// `Pending`, `Running`, `Completed` or `Failed`.
    pub status: String,
    /// Progress, e.g. `50%`.
    pub process: Option<String>,
    pub fail_reason: Option<String>,
}

/// The error shapes Huawei services use; TaurusDB answers with the first.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ErrorBody {
    Dbs {
        error_code: String,
        error_msg: Option<String>,
    },
    Nested {
        error: NestedError,
    },
    Flat {
        code: String,
        message: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
struct NestedError {
    code: String,
    message: Option<String>,
}

/// Pulls `(code, message)` out of any of the three documented error shapes.
pub fn parse_error(body: &[u8]) -> Option<(String, Option<String>)> {
    match serde_json::from_slice::<ErrorBody>(body).ok()? {
        ErrorBody::Dbs {
            error_code,
            error_msg,
        } => Some((error_code, error_msg)),
        ErrorBody::Nested { error } => Some((error.code, error.message)),
        ErrorBody::Flat { code, message } => Some((code, message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redacted_body_is_the_body_with_only_the_password_replaced() {
        let body = CreateStarRocksBody {
            name: "sales-cube".into(),
            engine: Engine {
                engine_type: "star-rocks".into(),
                version: "3.3".into(),
            },
            ha: Ha {
                mode: "cluster".into(),
            },
            fe_flavor_id: "fe.flavor".into(),
            be_flavor_id: "be.flavor".into(),
            db_root_pwd: RootPassword::generate(),
            fe_count: 3,
            be_count: 3,
            az_mode: "single".into(),
            fe_volume: Volume {
                io_type: "ESSD".into(),
                capacity_in_gb: 50,
            },
            be_volume: Volume {
                io_type: "ESSD".into(),
                capacity_in_gb: 100,
            },
            az_code: "cn-north-4a".into(),
            time_zone: "UTC+08:00".into(),
            tags_info: TagsInfo {
                sys_tags: vec![Tag {
                    key: "_sys_enterprise_project_id".into(),
                    value: "0".into(),
                }],
            },
        };

        let mut expected = serde_json::to_value(&body).expect("serializes");
        expected["db_root_pwd"] = "[REDACTED]".into();
        let redacted = serde_json::to_string(&body.redacted()).expect("serializes");

        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&redacted).ok(),
            Some(expected)
        );
        assert!(!redacted.contains(body.db_root_pwd.expose()));
    }

    #[test]
    fn all_three_error_shapes_are_understood() {
        assert_eq!(
            parse_error(br#"{"error_code":"DBS.200001","error_msg":"Parameter error"}"#),
            Some(("DBS.200001".into(), Some("Parameter error".into())))
        );
        assert_eq!(
            parse_error(br#"{"error":{"code":"APIGW.0301","message":"bad token"}}"#),
            Some(("APIGW.0301".into(), Some("bad token".into())))
        );
        assert_eq!(
            parse_error(br#"{"code":"APIG.0308","message":"throttled"}"#),
            Some(("APIG.0308".into(), Some("throttled".into())))
        );
        assert_eq!(parse_error(b"<html>bad gateway</html>"), None);
    }
}
