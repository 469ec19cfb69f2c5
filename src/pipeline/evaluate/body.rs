//! The allowed request expanded into the full upstream body, every filled-in value noted as a
//! mutation. The system tags are injected here and nowhere else.

use super::{CreateRequest, Mutation};
use crate::cloud::model::{CreateStarRocksBody, Engine, Ha, Tag, TagsInfo, Volume};
use crate::domain::RootPassword;
use crate::policy::{SizeProfile, Team};

/// The upstream's only engine type.
const ENGINE_TYPE: &str = "star-rocks";
/// The upstream supports single-AZ deployments only.
const AZ_MODE: &str = "single";

pub(super) struct Resolved<'a> {
    pub(super) team_name: &'a str,
    pub(super) team: &'a Team,
    pub(super) size_name: &'a str,
    pub(super) size: &'a SizeProfile,
    pub(super) version: &'a str,
    pub(super) az: &'a str,
    pub(super) time_zone: &'a str,
}

pub(super) fn build_body(
    mutations: &mut Vec<Mutation>,
    resolved: Resolved<'_>,
    request: &CreateRequest,
    password: RootPassword,
    default_io_type: &str,
) -> CreateStarRocksBody {
    let Resolved {
        team_name,
        team,
        size_name,
        size,
        version,
        az,
        time_zone,
    } = resolved;
    let mut note = |field: &str, value: String, source: String| {
        mutations.push(Mutation {
            field: field.into(),
            value,
            source,
        });
    };
    let from_size = format!("size {size_name}");
    note("ha.mode", size.ha_mode.as_str().into(), from_size.clone());
    note("fe_flavor_id", size.fe_flavor_id.clone(), from_size.clone());
    note("be_flavor_id", size.be_flavor_id.clone(), from_size.clone());
    note("fe_count", size.fe_count.to_string(), from_size.clone());
    note("be_count", size.be_count.to_string(), from_size.clone());
    note(
        "fe_volume.capacity_in_gb",
        size.fe_volume_gb.to_string(),
        from_size.clone(),
    );
    note(
        "be_volume.capacity_in_gb",
        size.be_volume_gb.to_string(),
        from_size.clone(),
    );
    let io_type = size.io_type.as_deref().unwrap_or(default_io_type);
    let io_source = if size.io_type.is_some() {
        from_size
    } else {
        "defaults".into()
    };
    note("fe_volume.io_type", io_type.into(), io_source.clone());
    note("be_volume.io_type", io_type.into(), io_source);
    if request.version.is_none() {
        note("engine.version", version.into(), "defaults".into());
    }
    if request.az.is_none() {
        note("az_code", az.into(), "defaults".into());
    }
    if request.time_zone.is_none() {
        note("time_zone", time_zone.into(), "defaults".into());
    }
    let sys_tags: Vec<Tag> = team
        .injected_tags()
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect();
    for tag in &sys_tags {
        note(
            "tags_info.sys_tags",
            format!("{}={}", tag.key, tag.value),
            format!("team {team_name}"),
        );
    }
    CreateStarRocksBody {
        name: request.name.to_string(),
        engine: Engine {
            engine_type: ENGINE_TYPE.into(),
            version: version.into(),
        },
        ha: Ha {
            mode: size.ha_mode.as_str().into(),
        },
        fe_flavor_id: size.fe_flavor_id.clone(),
        be_flavor_id: size.be_flavor_id.clone(),
        db_root_pwd: password,
        fe_count: size.fe_count,
        be_count: size.be_count,
        az_mode: AZ_MODE.into(),
        fe_volume: Volume {
            io_type: io_type.into(),
            capacity_in_gb: size.fe_volume_gb,
        },
        be_volume: Volume {
            io_type: io_type.into(),
            capacity_in_gb: size.be_volume_gb,
        },
        az_code: az.into(),
        time_zone: time_zone.into(),
        tags_info: TagsInfo { sys_tags },
    }
}
