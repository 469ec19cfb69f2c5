//! `POST /v3/{project_id}/instances/{instance_id}/starrocks`, validated rule by rule against
//! the API page and the SDK models. Every refusal names the field it is about.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::control::ReceivedCreate;
use super::{SimInstance, SimJob, Simulator, dbs_error};

const PARAMETER_ERROR: &str = "DBS.200001";
const INVALID_NAME: &str = "DBS.280234";
pub(super) const INSTANCE_NOT_FOUND: &str = "DBS.05000044";
const TOKEN_INVALID: &str = "APIGW.0301";
const PASSWORD_SPECIALS: &str = "~!@#$%^*-_=+?,()&|.";
/// How long a lost answer keeps the caller waiting: longer than any sane client timeout.
const LOST_ANSWER_DELAY: Duration = Duration::from_secs(120);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    engine: EngineSpec,
    ha: HaSpec,
    fe_flavor_id: String,
    be_flavor_id: String,
    db_root_pwd: String,
    fe_count: i64,
    be_count: i64,
    az_mode: String,
    fe_volume: VolumeSpec,
    be_volume: VolumeSpec,
    az_code: String,
    time_zone: Option<String>,
    tags_info: TagsInfoSpec,
    security_group_id: Option<String>,
    pay_info: Option<PayInfo>,
    region_code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineSpec {
    #[serde(rename = "type")]
    engine_type: String,
    version: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HaSpec {
    mode: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumeSpec {
    io_type: String,
    capacity_in_gb: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagsInfoSpec {
    sys_tags: Vec<TagSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagSpec {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayInfo {
    pay_model: Option<String>,
    period: Option<String>,
    period_type: Option<String>,
    is_auto_renew: Option<String>,
}

/// A refusal: error code and a message naming the field.
struct Refusal(&'static str, String);

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
    let valid = bytes.len() == 9
        && time_zone.starts_with("UTC")
        && matches!(bytes[3], b'+' | b'-')
        && bytes[4..6].iter().all(u8::is_ascii_digit)
        && bytes[6] == b':'
        && bytes[7..9].iter().all(u8::is_ascii_digit);
    if valid {
        Ok(())
    } else {
        Err(parameter(format!(
            "time_zone: {time_zone:?} is not a UTC offset such as UTC+08:00."
        )))
    }
}

fn check_volume(field: &str, volume: &VolumeSpec, io_types: &[String]) -> Result<(), Refusal> {
    if !io_types.contains(&volume.io_type) {
        return Err(parameter(format!(
            "{field}.io_type: {:?} is not an available storage type ({}).",
            volume.io_type,
            io_types.join(", ")
        )));
    }
    if volume.capacity_in_gb <= 0 || volume.capacity_in_gb % 10 != 0 {
        return Err(parameter(format!(
            "{field}.capacity_in_gb: {} is not a positive multiple of 10 GB.",
            volume.capacity_in_gb
        )));
    }
    Ok(())
}

fn check_pay_info(body: &CreateBody) -> Result<(), Refusal> {
    let pay_model = body
        .pay_info
        .as_ref()
        .and_then(|p| p.pay_model.as_deref())
        .unwrap_or("0");
    match pay_model {
        "0" => {
            if body.region_code.is_some() {
                return Err(parameter(
                    "region_code: only allowed for yearly/monthly billing (pay_model 1).",
                ));
            }
            Ok(())
        }
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

fn validate(body: &CreateBody, simulator: &Simulator) -> Result<(), Refusal> {
    let config = &simulator.config;
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
    for (field, flavor) in [
        ("fe_flavor_id", &body.fe_flavor_id),
        ("be_flavor_id", &body.be_flavor_id),
    ] {
        if flavor.trim().is_empty() {
            return Err(parameter(format!("{field}: must not be empty.")));
        }
    }
    check_password(&body.db_root_pwd)?;
    if body.az_mode != "single" {
        return Err(parameter(format!(
            "az_mode: {:?} is not supported; only single.",
            body.az_mode
        )));
    }
    if body.az_code.trim().is_empty() {
        return Err(parameter("az_code: must not be empty."));
    }
    check_volume("fe_volume", &body.fe_volume, &config.io_types)?;
    check_volume("be_volume", &body.be_volume, &config.io_types)?;
    if let Some(time_zone) = &body.time_zone {
        check_time_zone(time_zone)?;
    }
    let project_tag = body
        .tags_info
        .sys_tags
        .iter()
        .find(|t| t.key == "_sys_enterprise_project_id");
    if project_tag.is_none_or(|t| t.value.trim().is_empty()) {
        return Err(parameter(
            "tags_info.sys_tags: the _sys_enterprise_project_id system tag is required.",
        ));
    }
    if body
        .security_group_id
        .as_deref()
        .is_some_and(|g| g.trim().is_empty())
    {
        return Err(parameter(
            "security_group_id: must not be empty when given.",
        ));
    }
    check_pay_info(body)
}

fn new_id(suffix: &str) -> String {
    format!("{}{suffix}", uuid::Uuid::new_v4().simple())
}

/// What every TaurusDB call checks first: the token, the project, the TaurusDB instance.
pub(super) fn check_access(
    simulator: &Simulator,
    token: Option<&str>,
    project_id: &str,
    instance_id: &str,
) -> Result<(), HttpResponse> {
    let config = &simulator.config;
    let state = simulator.state();
    let token = token
        .and_then(|t| state.tokens.get(t))
        .filter(|t| t.expires_at > chrono::Utc::now());
    let Some(token) = token else {
        return Err(dbs_error(
            StatusCode::UNAUTHORIZED,
            TOKEN_INVALID,
            "Incorrect IAM authentication information: the token is missing, invalid or expired.",
        ));
    };
    if project_id != config.project_id || token.project_id != project_id {
        return Err(dbs_error(
            StatusCode::NOT_FOUND,
            "APIGW.0101",
            "The API does not exist or has not been published in the environment.",
        ));
    }
    if !config.taurusdb_instances.iter().any(|i| i == instance_id) {
        return Err(dbs_error(
            StatusCode::BAD_REQUEST,
            INSTANCE_NOT_FOUND,
            format!("The instance {instance_id} does not exist."),
        ));
    }
    Ok(())
}

/// The injected create failure, if one is armed.
fn injected_failure(simulator: &Simulator) -> Result<(), HttpResponse> {
    let mut state = simulator.state();
    if state.faults.throttle_next_calls > 0 {
        state.faults.throttle_next_calls -= 1;
        return Err(dbs_error(
            StatusCode::TOO_MANY_REQUESTS,
            "APIGW.0308",
            "The request is throttled.",
        ));
    }
    if state.faults.fail_next_creates > 0 {
        state.faults.fail_next_creates -= 1;
        let status = StatusCode::from_u16(state.faults.fail_status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Err(dbs_error(
            status,
            "DBS.200000",
            "Internal service error (injected fault).",
        ));
    }
    Ok(())
}

pub(super) async fn create_starrocks(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (project_id, instance_id) = path.into_inner();
    let latency_ms = simulator.state().faults.latency_ms;
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let checked = check_access(
        &simulator,
        header("x-auth-token"),
        &project_id,
        &instance_id,
    )
    .and_then(|()| injected_failure(&simulator));
    let response = match checked {
        Err(response) => response,
        Ok(()) => create(&simulator, &instance_id, &body),
    };
    let received = ReceivedCreate {
        project_id,
        instance_id,
        request_id: header("x-request-id").map(str::to_owned),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        status: response.status().as_u16(),
    };
    let lose_answer = {
        let mut state = simulator.state();
        state.creates.push(received);
        let lose = response.status() == StatusCode::CREATED && state.faults.lose_next_answers > 0;
        if lose {
            state.faults.lose_next_answers -= 1;
        }
        lose
    };
    if lose_answer {
        // The instance exists, but its answer never arrives in time: the caller must find out
        // from a later list or get, as with the real cloud.
        tokio::time::sleep(LOST_ANSWER_DELAY).await;
    }
    response
}

fn create(simulator: &Simulator, target: &str, raw: &[u8]) -> HttpResponse {
    let deserializer = &mut serde_json::Deserializer::from_slice(raw);
    let body: CreateBody = match serde_path_to_error::deserialize(deserializer) {
        Ok(body) => body,
        Err(error) => {
            let message = format!("Parameter error: {}: {}", error.path(), error.inner());
            return dbs_error(StatusCode::BAD_REQUEST, PARAMETER_ERROR, message);
        }
    };
    if let Err(Refusal(code, message)) = validate(&body, simulator) {
        return dbs_error(StatusCode::BAD_REQUEST, code, message);
    }
    let config = &simulator.config;
    let time_zone = body.time_zone.clone();
    let instance = json!({
        "id": new_id("in17"),
        "az_code": body.az_code,
        "az_mode": body.az_mode,
        "name": body.name,
        "engine": {"type": body.engine.engine_type, "version": body.engine.version},
        "vpc_id": uuid::Uuid::new_v4().to_string(),
        "security_group_id": body.security_group_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        "sub_net_id": uuid::Uuid::new_v4().to_string(),
        "db_user": "root",
        "port": 3306,
        "ha_mode": body.ha.mode,
        "pay_info": {"pay_model": "0", "order_id": null, "period": null, "period_type": null, "is_auto_renew": null},
        "enable_ssl": false,
        "status": "creating",
        "region": config.region,
        "tags_info": {
            "tags": [],
            "sys_tags": body.tags_info.sys_tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect::<Vec<_>>(),
        },
    });
    let job_id = uuid::Uuid::new_v4().to_string();
    let now = std::time::Instant::now();
    let mut state = simulator.state();
    let fails = state.faults.fail_next_create_jobs > 0;
    if fails {
        state.faults.fail_next_create_jobs -= 1;
    }
    let id = instance["id"].as_str().unwrap_or_default().to_owned();
    state.jobs.push(SimJob {
        id: job_id.clone(),
        name: "CreateStarRocksInstance",
        instance_id: id.clone(),
        instance_name: body.name.clone(),
        started: now,
        duration: config.create_duration,
        fail_reason: fails.then(|| {
            "Insufficient resources in the availability zone (injected fault).".to_owned()
        }),
    });
    state.instances.push(SimInstance {
        target: target.to_owned(),
        created_at: now,
        time_zone: time_zone.unwrap_or_else(|| "UTC+08:00".into()),
        nodes: body.fe_count + body.be_count,
        create_fails: fails,
        deleting_since: None,
        detail: instance.clone(),
    });
    HttpResponse::Created().json(json!({"instance": instance, "job_id": job_id}))
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
        assert!(check_time_zone("Asia/Shanghai").is_err());
    }
}
