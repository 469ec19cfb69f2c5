//! What the simulated region sells: HTAP flavors, storage types and availability zones. They
//! are served as `GET /v3/{project_id}/htap/flavors/{engine_name}` and
//! `GET /v3/{project_id}/htap/storage-type/{database}` serve them (API notes: "Flavor item:
//! `id` …, `instance_mode` (`Cluster|Single`), `az_status` (map AZ → `normal|unsupported|
//! sellout`)"; "Storage-type item: `name` (the value for `io_type`), `az_status`,
//! `min_volume_size`"), and creates are validated against them.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::access::check_project;
use super::{Simulator, dbs_error};

/// The largest volume, in GB. The HTAP pages give no range ("Range N/A"); TaurusDB's
/// constraints page does for its own storage ("pay-per-use instances: at most 128,000 GB"),
/// and the simulator applies it to HTAP volumes as an approximation.
pub const MAX_VOLUME_GB: i64 = 128_000;

/// One flavor, as the flavors API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Flavor {
    pub id: String,
    pub spec_code: String,
    /// `arm`, `x86` or `generalX86`.
    #[serde(rename = "type")]
    pub cpu_type: String,
    pub vcpus: String,
    pub ram: String,
    /// `Single` or `Cluster`: the HA mode the flavor is sold for.
    pub instance_mode: String,
    /// AZ → `normal`, `unsupported` or `sellout`.
    pub az_status: BTreeMap<String, String>,
}

/// One storage type, as the storage-type API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct StorageType {
    pub name: String,
    pub az_status: BTreeMap<String, String>,
    /// The smallest volume of this type, in GB. Not documented per type; the simulator uses
    /// 40 GB, TaurusDB's documented minimum ("yearly/monthly instances: 40 GB to 128,000
    /// GB").
    pub min_volume_size: i64,
}

/// The AZs of the default catalog: the page's example `az`, and three named ones.
pub fn default_availability_zones() -> Vec<String> {
    ["az", "cn-north-4a", "cn-north-4b", "cn-north-4c"]
        .map(String::from)
        .to_vec()
}

fn statuses(sold_out_in: &[&str]) -> BTreeMap<String, String> {
    default_availability_zones()
        .into_iter()
        .map(|az| {
            let status = if sold_out_in.contains(&az.as_str()) {
                "sellout"
            } else {
                "normal"
            };
            (az, status.to_owned())
        })
        .collect()
}

/// The flavors of the default catalog: the page example's two (which it orders in Single
/// mode) and two Cluster sizes, the largest sold out in `cn-north-4c`.
pub fn default_flavors() -> Vec<Flavor> {
    let flavor =
        |id: &str, role: &str, size: &str, vcpus: u32, mode: &str, sold_out: &[&str]| Flavor {
            id: id.to_owned(),
            spec_code: format!("gaussdb.sr-{role}.{size}.x86.4"),
            cpu_type: "x86".into(),
            vcpus: vcpus.to_string(),
            ram: (vcpus * 4).to_string(),
            instance_mode: mode.to_owned(),
            az_status: statuses(sold_out),
        };
    vec![
        flavor(
            "afef3bfd-ac7c-32e1-ba44-c388acbb196a",
            "fe",
            "xlarge",
            4,
            "Single",
            &[],
        ),
        flavor(
            "de565db8-0a96-37ea-9388-61167624712c",
            "be",
            "xlarge",
            4,
            "Single",
            &[],
        ),
        flavor(
            "b1a6c0c2-3f57-3a7e-9d1a-5c1e0f6a2b10",
            "fe",
            "2xlarge",
            8,
            "Cluster",
            &[],
        ),
        flavor(
            "c2b7d1d3-4068-3b8f-8e2b-6d2f1a7b3c21",
            "be",
            "2xlarge",
            8,
            "Cluster",
            &[],
        ),
        flavor(
            "d3c8e2e4-5179-3c90-9f3c-7e3a2b8c4d32",
            "fe",
            "4xlarge",
            16,
            "Cluster",
            &["cn-north-4c"],
        ),
        flavor(
            "e4d9f3f5-628a-3da1-a04d-8f4b3c9d5e43",
            "be",
            "4xlarge",
            16,
            "Cluster",
            &["cn-north-4c"],
        ),
    ]
}

/// `flavors` as another region sells them: each on sale in `azs`, and renamed where
/// `renamed` pairs its id with the region's own.
pub fn regional_flavors(
    flavors: &[Flavor],
    azs: &[String],
    renamed: &[(String, String)],
) -> Vec<Flavor> {
    flavors
        .iter()
        .map(|flavor| Flavor {
            id: renamed
                .iter()
                .find(|(own, _)| *own == flavor.id)
                .map_or_else(|| flavor.id.clone(), |(_, regional)| regional.clone()),
            az_status: on_sale_in(azs),
            ..flavor.clone()
        })
        .collect()
}

/// `storage_types` as another region sells them: each in `azs`.
pub fn regional_storage_types(storage_types: &[StorageType], azs: &[String]) -> Vec<StorageType> {
    storage_types
        .iter()
        .map(|storage| StorageType {
            az_status: on_sale_in(azs),
            ..storage.clone()
        })
        .collect()
}

fn on_sale_in(azs: &[String]) -> BTreeMap<String, String> {
    azs.iter()
        .map(|az| (az.clone(), "normal".to_owned()))
        .collect()
}

pub fn default_storage_types() -> Vec<StorageType> {
    ["SSD", "ESSD", "ULTRAHIGH"]
        .map(|name| StorageType {
            name: name.to_owned(),
            az_status: statuses(&[]),
            min_volume_size: 40,
        })
        .to_vec()
}

#[derive(Debug, Deserialize)]
pub(super) struct FlavorQuery {
    availability_zone_mode: Option<String>,
    spec_code: Option<String>,
}

fn engine_known(engine: &str) -> Result<(), HttpResponse> {
    if engine == "star-rocks" {
        Ok(())
    } else {
        Err(dbs_error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "DBS.200001",
            format!("engine_name: {engine:?} is not supported here; only star-rocks."),
        ))
    }
}

/// `GET /v3/{project_id}/htap/flavors/{engine_name}`.
pub(super) async fn flavors(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<FlavorQuery>,
) -> HttpResponse {
    let (project_id, engine) = path.into_inner();
    if let Err(refusal) =
        check_project(&simulator, &request, &[], &project_id).and_then(|()| engine_known(&engine))
    {
        return refusal;
    }
    if query
        .availability_zone_mode
        .as_deref()
        .is_some_and(|mode| mode != "single")
    {
        return dbs_error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "DBS.200001",
            "availability_zone_mode: only single is supported.",
        );
    }
    let flavors: Vec<&Flavor> = simulator
        .config
        .flavors
        .iter()
        .filter(|f| {
            query
                .spec_code
                .as_ref()
                .is_none_or(|code| *code == f.spec_code)
        })
        .collect();
    HttpResponse::Ok().json(json!({ "flavors": flavors }))
}

/// `GET /v3/{project_id}/htap/storage-type/{database}`.
pub(super) async fn storage_types(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (project_id, engine) = path.into_inner();
    if let Err(refusal) =
        check_project(&simulator, &request, &[], &project_id).and_then(|()| engine_known(&engine))
    {
        return refusal;
    }
    HttpResponse::Ok().json(json!({ "storage_type": simulator.config.storage_types }))
}
