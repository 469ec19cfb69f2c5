//! `policy check --against-cloud`: the policy's sizes and zones against what the region
//! sells (the HTAP flavors and storage-type APIs), so a typo in a flavor id or a zone where a
//! flavor is sold out is found before an employee's create fails upstream.

use crate::cloud::model::{Flavor, StorageType};

use super::PolicyFile;

/// Every problem found in `region` (the gateway's default region when `is_default`), each
/// naming the policy key at fault; empty when the policy fits what the region sells.
pub fn problems(
    policy: &PolicyFile,
    region: &str,
    is_default: bool,
    flavors: &[Flavor],
    storage: &[StorageType],
) -> Vec<String> {
    let rules = policy.regions.get(region).cloned().unwrap_or_default();
    let in_region = |target: &super::Target| match &target.region {
        Some(named) => named == region,
        None => is_default,
    };
    let teams: Vec<(&String, &super::Team)> = policy
        .teams
        .iter()
        .filter(|(_, team)| team.targets.values().any(in_region))
        .collect();
    // The default region checks every size, as a single-region gateway always did; another
    // region the sizes its teams may order there.
    let mut sizes: Vec<&str> = if is_default {
        policy.sizes.keys().map(String::as_str).collect()
    } else {
        teams
            .iter()
            .flat_map(|(_, team)| team.sizes_in(&rules))
            .collect()
    };
    sizes.sort_unstable();
    sizes.dedup();
    let mut problems = Vec::new();
    for name in sizes {
        let Some(own) = policy.sizes.get(name) else {
            continue;
        };
        let size = rules.size_in_region(name, own);
        let mode = size.ha_mode.as_str();
        let regional = rules.flavors.get(name);
        for (key, id, renamed) in [
            (
                "fe_flavor_id",
                &size.fe_flavor_id,
                regional.is_some_and(|f| f.fe_flavor_id.is_some()),
            ),
            (
                "be_flavor_id",
                &size.be_flavor_id,
                regional.is_some_and(|f| f.be_flavor_id.is_some()),
            ),
        ] {
            let at = if renamed {
                format!("regions.{region}.flavors.{name}.{key}")
            } else {
                format!("sizes.{name}.{key}")
            };
            match flavors.iter().find(|f| f.id == *id) {
                None => problems.push(format!("{at}: `{id}` is not a flavor of region {region}")),
                Some(flavor) if flavor.instance_mode != mode => problems.push(format!(
                    "{at}: {} is sold for {} instances; the size is {mode}",
                    flavor.spec_code, flavor.instance_mode
                )),
                Some(_) => {}
            }
        }
        let io_type = size.io_type(&policy.defaults);
        match storage.iter().find(|s| s.name == io_type) {
            None => problems.push(format!(
                "sizes.{name}: io_type `{io_type}` is not a storage type of region {region}"
            )),
            Some(storage) => {
                let smallest = u64::from(size.fe_volume_gb.min(size.be_volume_gb));
                if let Some(min) = storage.min_volume_size
                    && smallest < min
                {
                    problems.push(format!(
                        "sizes.{name}: a {smallest} GB volume is under {io_type}'s minimum of {min} GB"
                    ));
                }
            }
        }
    }
    for (team_name, team) in teams {
        let zones = policy.team_azs(team, Some(region));
        for size_name in team.sizes_in(&rules) {
            let Some(own) = policy.sizes.get(size_name) else {
                continue;
            };
            let size = rules.size_in_region(size_name, own);
            for id in [&size.fe_flavor_id, &size.be_flavor_id] {
                let Some(flavor) = flavors.iter().find(|f| f.id == *id) else {
                    continue;
                };
                for zone in &zones {
                    match flavor.az_status.get(*zone).map(String::as_str) {
                        Some("normal") => {}
                        status => problems.push(format!(
                            "teams.{team_name}: size {size_name}'s {} is {} in {zone}",
                            flavor.spec_code,
                            match status {
                                Some("sellout") => "sold out",
                                Some("unsupported") => "unsupported",
                                _ => "not sold",
                            }
                        )),
                    }
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const POLICY: &str = include_str!("../../config/policy.example.toml");

    fn flavor(id: &str, mode: &str, zones: &[(&str, &str)]) -> Flavor {
        Flavor {
            id: id.into(),
            spec_code: format!("gaussdb.sr.{id}"),
            instance_mode: mode.into(),
            az_status: zones
                .iter()
                .map(|(zone, status)| ((*zone).to_owned(), (*status).to_owned()))
                .collect(),
        }
    }

    fn policy() -> PolicyFile {
        crate::policy::Policy::parse(POLICY)
            .expect("the example policy")
            .file
    }

    fn catalog(policy: &PolicyFile) -> (Vec<Flavor>, Vec<StorageType>) {
        let everywhere = [("cn-north-4a", "normal"), ("cn-north-4b", "normal")];
        let flavors = policy
            .sizes
            .values()
            .flat_map(|size| {
                [&size.fe_flavor_id, &size.be_flavor_id]
                    .map(|id| flavor(id, size.ha_mode.as_str(), &everywhere))
            })
            .collect();
        let storage = ["SSD", "ESSD", "ULTRAHIGH"]
            .map(|name| StorageType {
                name: name.into(),
                az_status: BTreeMap::new(),
                min_volume_size: Some(40),
            })
            .to_vec();
        (flavors, storage)
    }

    #[test]
    fn the_example_policy_fits_a_region_selling_its_flavors() {
        let policy = policy();
        let (flavors, storage) = catalog(&policy);
        assert_eq!(
            problems(&policy, "cn-north-4", true, &flavors, &storage),
            Vec::<String>::new()
        );
    }

    #[test]
    fn unknown_flavors_wrong_modes_sold_out_zones_and_small_volumes_are_named() {
        let policy = policy();
        let (mut flavors, mut storage) = catalog(&policy);
        let small = &policy.sizes["small"];
        flavors.retain(|f| f.id != small.fe_flavor_id);
        let medium_be = &policy.sizes["medium"].be_flavor_id;
        for flavor in &mut flavors {
            if flavor.id == *medium_be {
                flavor.instance_mode = "Single".into();
                flavor
                    .az_status
                    .insert("cn-north-4b".into(), "sellout".into());
            }
        }
        storage[1].min_volume_size = Some(200);

        let found = problems(&policy, "cn-north-4", true, &flavors, &storage);

        let expect = [
            "sizes.small.fe_flavor_id: `afef3bfd-ac7c-32e1-ba44-c388acbb196a` is not a flavor",
            "sizes.medium.be_flavor_id: gaussdb.sr.c2b7d1d3-4068-3b8f-8e2b-6d2f1a7b3c21 is sold for Single instances; the size is Cluster",
            "sizes.small: a 50 GB volume is under ESSD's minimum of 200 GB",
            "teams.analytics: size medium's gaussdb.sr.c2b7d1d3-4068-3b8f-8e2b-6d2f1a7b3c21 is sold out in cn-north-4b",
        ];
        for expected in expect {
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "{expected} not in {found:#?}"
            );
        }
    }
}
