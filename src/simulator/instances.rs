//! Reading instances back: `GET …/htap` (the HTAP instances of a TaurusDB instance) and
//! `GET …/starrocks/{id}` (one StarRocks instance), in the documented shapes.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::taurusdb::{INSTANCE_NOT_FOUND, check_access};
use super::{SimInstance, Simulator, dbs_error};

fn status_of(simulator: &Simulator, instance: &SimInstance) -> &'static str {
    if instance.created_at.elapsed() < simulator.config.create_duration {
        "creating"
    } else {
        "normal"
    }
}

fn token(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
}

fn field<'a>(instance: &'a SimInstance, name: &str) -> &'a Value {
    &instance.detail[name]
}

pub(super) async fn list_htap(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (project_id, target) = path.into_inner();
    if let Err(response) = check_access(&simulator, token(&request), &project_id, &target) {
        return response;
    }
    let state = simulator.state();
    let instances: Vec<Value> = state
        .instances
        .iter()
        .filter(|i| i.target == target)
        .map(|i| {
            json!({
                "id": field(i, "id"),
                "name": field(i, "name"),
                "engine_name": "star-rocks",
                "engine_version": field(i, "engine")["version"],
                "instance_state": {
                    "instance_status": status_of(&simulator, i),
                    "create_fail_error_code": null,
                    "fail_message": null,
                },
                "ha_mode": field(i, "ha_mode"),
                "node_num": i.nodes,
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({"total": instances.len(), "instances": instances}))
}

pub(super) async fn get_starrocks(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> HttpResponse {
    let (project_id, target, starrocks_id) = path.into_inner();
    if let Err(response) = check_access(&simulator, token(&request), &project_id, &target) {
        return response;
    }
    let state = simulator.state();
    let Some(instance) = state
        .instances
        .iter()
        .find(|i| i.target == target && field(i, "id") == starrocks_id.as_str())
    else {
        return dbs_error(
            StatusCode::BAD_REQUEST,
            INSTANCE_NOT_FOUND,
            format!("The StarRocks instance {starrocks_id} does not exist."),
        );
    };
    let status = status_of(&simulator, instance);
    HttpResponse::Ok().json(json!({"instances": [{
        "id": field(instance, "id"),
        "name": field(instance, "name"),
        "status": status,
        "actions": if status == "creating" { json!(["CREATE"]) } else { json!([]) },
        "data_store_version": field(instance, "engine")["version"],
        "time_zone": instance.time_zone,
        "tags_info": field(instance, "tags_info"),
        "port_info": {"mysql_port": 9030},
        "ha_mode": field(instance, "ha_mode"),
    }]}))
}
