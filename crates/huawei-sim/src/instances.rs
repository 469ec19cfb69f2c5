//! Reading and deleting instances: `GET …/htap` (the HTAP instances of a TaurusDB),
//! `GET …/starrocks/{id}`, `DELETE …/starrocks/{id}` and `GET /v3/{project_id}/jobs?id=`, in
//! the documented shapes, with instances moving `creating` → `normal` and `deleting` → gone.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{INSTANCE_NOT_FOUND, check_access, check_project};
use super::{SimJob, SimState, Simulator, SimulatorConfig, dbs_error, injected_fault};

/// "Another operation is in progress" (one of the documented 409 codes).
const OPERATION_IN_PROGRESS: &str = "DBS.200019";
const THROTTLED: &str = "APIGW.0308";

/// Access checks plus the throttling fault shared by every read and delete.
fn admit(
    simulator: &Simulator,
    request: &HttpRequest,
    project_id: &str,
    target: &str,
) -> Result<(), HttpResponse> {
    check_access(simulator, request, &[], project_id, target)?;
    let mut state = simulator.state();
    if state.faults.throttle_next_calls > 0 {
        state.faults.throttle_next_calls -= 1;
        return Err(dbs_error(
            StatusCode::TOO_MANY_REQUESTS,
            THROTTLED,
            "The request is throttled.",
        ));
    }
    if state.faults.fail_next_reads > 0 {
        state.faults.fail_next_reads -= 1;
        return Err(injected_fault(state.faults.fail_status));
    }
    Ok(())
}

fn not_found(id: &str) -> HttpResponse {
    dbs_error(
        StatusCode::BAD_REQUEST,
        INSTANCE_NOT_FOUND,
        format!("The StarRocks instance {id} does not exist."),
    )
}

pub(super) async fn list_htap(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (project_id, target) = path.into_inner();
    simulator.state().lists_received += 1;
    if let Err(response) = admit(&simulator, &request, &project_id, &target) {
        return response;
    }
    let config = &simulator.config;
    let state = simulator.state();
    let instances: Vec<Value> = state
        .instances
        .iter()
        .filter(|i| i.target == target)
        .filter_map(|i| i.status(config).map(|status| (i, status)))
        .map(|(i, status)| {
            let failed = status == "createfail";
            json!({
                "id": i.id(),
                "name": i.detail["name"],
                "engine_name": "star-rocks",
                "engine_version": i.detail["engine"]["version"],
                "instance_state": {
                    "instance_status": status,
                    "create_fail_error_code": if failed { json!("DBS.280816") } else { Value::Null },
                    "fail_message": if failed { json!("Insufficient resources in the availability zone.") } else { Value::Null },
                },
                "ha_mode": i.detail["ha_mode"],
                "node_num": i.nodes,
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({"total": instances.len(), "instances": instances}))
}

/// Which received-calls counter a call on one instance adds to.
#[derive(Debug, Clone, Copy)]
enum Counted {
    Gets,
    Deletes,
}

/// A call on one instance: counted, admitted like every read and delete, and answered by
/// `answer` with the instance found (a `400 DBS.05000044` when it is not).
fn on_instance(
    (simulator, request, (project_id, target, starrocks_id)): (
        &Simulator,
        &HttpRequest,
        (String, String, String),
    ),
    counted: Counted,
    answer: impl FnOnce(&mut SimState, usize, &SimulatorConfig) -> HttpResponse,
) -> HttpResponse {
    {
        let mut state = simulator.state();
        match counted {
            Counted::Gets => state.gets_received += 1,
            Counted::Deletes => state.deletes_received += 1,
        }
    }
    if let Err(response) = admit(simulator, request, &project_id, &target) {
        return response;
    }
    let config = &simulator.config;
    let mut state = simulator.state();
    let found = state
        .instances
        .iter()
        .position(|i| i.target == target && i.id() == starrocks_id && i.status(config).is_some());
    match found {
        Some(index) => answer(&mut state, index, config),
        None => not_found(&starrocks_id),
    }
}

pub(super) async fn get_starrocks(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> HttpResponse {
    let call = (&**simulator, &request, path.into_inner());
    on_instance(call, Counted::Gets, |state, index, config| {
        let instance = &state.instances[index];
        let status = instance.status(config).unwrap_or_default();
        let node_group = |role: &str, count: i64| {
            json!({
                "id": format!("{}-{role}", instance.id()),
                "group_type": role,
                "nodes": (0..count).map(|n| json!({"id": format!("{}-{role}-{n}", instance.id()), "status": status})).collect::<Vec<_>>(),
            })
        };
        let half = instance.nodes / 2;
        HttpResponse::Ok().json(json!({"instances": [{
            "id": instance.id(),
            "name": instance.detail["name"],
            "status": status,
            "actions": match status { "creating" => json!(["CREATE"]), "deleting" => json!(["DELETE"]), _ => json!([]) },
            "groups": [node_group("fe", half), node_group("be", instance.nodes - half)],
            "data_store_version": instance.detail["engine"]["version"],
            "time_zone": instance.time_zone,
            "tags_info": instance.detail["tags_info"],
            // The create answer's `port` (3306 in the documented example), not a second value.
            "port_info": {"mysql_port": instance.detail["port"]},
            "ha_mode": instance.detail["ha_mode"],
        }]}))
    })
}

pub(super) async fn delete_starrocks(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> HttpResponse {
    let call = (&**simulator, &request, path.into_inner());
    on_instance(call, Counted::Deletes, |state, index, config| {
        if state.faults.busy_next_deletes > 0 {
            state.faults.busy_next_deletes -= 1;
            return dbs_error(
                StatusCode::CONFLICT,
                OPERATION_IN_PROGRESS,
                "Another operation is being performed on the instance. Try again later.",
            );
        }
        let instance = &mut state.instances[index];
        if matches!(instance.status(config), Some("creating" | "deleting")) {
            return dbs_error(
                StatusCode::CONFLICT,
                OPERATION_IN_PROGRESS,
                "Another operation is being performed on the instance. Try again later.",
            );
        }
        let now = std::time::Instant::now();
        instance.deleting_since = Some(now);
        let job = SimJob {
            id: uuid::Uuid::new_v4().to_string(),
            name: "DeleteStarRocksInstance",
            instance_id: instance.id().to_owned(),
            instance_name: instance.detail["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            started: now,
            duration: config.delete_duration,
            fail_reason: None,
        };
        let workflow_id = job.id.clone();
        state.jobs.push(job);
        HttpResponse::Accepted().json(json!({"workflow_id": workflow_id}))
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct JobQuery {
    id: String,
}

pub(super) async fn job(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<JobQuery>,
) -> HttpResponse {
    let project_id = path.into_inner();
    if let Err(refusal) = check_project(&simulator, &request, &[], &project_id) {
        return refusal;
    }
    let state = simulator.state();
    let Some(job) = state.jobs.iter().find(|j| j.id == query.id) else {
        return dbs_error(
            StatusCode::BAD_REQUEST,
            "DBS.200001",
            format!("id: the job {} does not exist.", query.id),
        );
    };
    let status = job.status();
    HttpResponse::Ok().json(json!({"job": {
        "id": job.id,
        "name": job.name,
        "status": status,
        "created": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
        "ended": if status == "Running" { Value::Null } else { json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S+0000").to_string()) },
        "process": if status == "Running" { "50%" } else { "100%" },
        "instance": {"id": job.instance_id, "name": job.instance_name},
        "fail_reason": if status == "Failed" { json!(job.fail_reason) } else { Value::Null },
    }}))
}
