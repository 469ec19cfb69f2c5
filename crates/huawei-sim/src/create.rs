//! `POST /v3/{project_id}/instances/{instance_id}/starrocks`: access checks, injected faults,
//! the body checked by [`super::validate`], then the instance and its create job, recorded for
//! the control API.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::access::check_access;
use super::control::ReceivedCreate;
use super::validate::{self, Refusal};
use super::{SimInstance, SimJob, Simulator, dbs_error, injected_fault};

/// How long a lost answer keeps the caller waiting: longer than any sane client timeout.
const LOST_ANSWER_DELAY: Duration = Duration::from_secs(120);

fn new_id(suffix: &str) -> String {
    format!("{}{suffix}", uuid::Uuid::new_v4().simple())
}

/// Waits for `POST /_sim/release` when a hold is armed.
async fn hold_if_asked(simulator: &Simulator) {
    // Created before the hold is counted, so a release seen by the test reaches this one.
    let released = simulator.released.notified();
    {
        let mut state = simulator.state();
        if state.faults.hold_next_creates == 0 {
            return;
        }
        state.faults.hold_next_creates -= 1;
        state.held += 1;
    }
    released.await;
    simulator.state().held -= 1;
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
        return Err(injected_fault(state.faults.fail_status));
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
    hold_if_asked(&simulator).await;
    let latency_ms = simulator.state().faults.latency_ms;
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let checked = check_access(&simulator, &request, &body, &project_id, &instance_id)
        .and_then(|()| injected_failure(&simulator));
    let response = match checked.and_then(|()| json_content_type(header("content-type"))) {
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

/// The request header table: "Content-Type | Yes | … Range application/json".
fn json_content_type(content_type: Option<&str>) -> Result<(), HttpResponse> {
    let is_json = content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(dbs_error(
            StatusCode::BAD_REQUEST,
            validate::PARAMETER_ERROR,
            "Content-Type: the request must be sent as application/json.",
        ))
    }
}

fn create(simulator: &Simulator, target: &str, raw: &[u8]) -> HttpResponse {
    let body = match validate::parse(raw, &simulator.config) {
        Ok(body) => body,
        Err(Refusal(code, message)) => return dbs_error(StatusCode::BAD_REQUEST, code, message),
    };
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
