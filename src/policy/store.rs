//! [`PolicyStore`]: the policy in force, hot-reloaded from its file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arc_swap::ArcSwap;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Policy, PolicyError};

/// The configured regions a policy's targets may name, and where those naming none go.
#[derive(Debug, Clone)]
pub struct Regions {
    pub default: String,
    pub configured: Vec<String>,
}

impl Regions {
    fn resolve(&self, policy: Policy) -> Result<Policy, PolicyError> {
        let configured: Vec<&str> = self.configured.iter().map(String::as_str).collect();
        policy.resolve_regions(&self.default, &configured)
    }
}

/// The policy in force. A new policy replaces it only after it loaded, validated and (once
/// the store is bound to a gateway's regions) fitted those regions.
#[derive(Debug)]
pub struct PolicyStore {
    path: Option<PathBuf>,
    regions: OnceLock<Regions>,
    current: ArcSwap<Policy>,
    /// One reload at a time, so the last to finish read the newest file.
    reloading: Mutex<()>,
}

impl PolicyStore {
    pub fn from_file(path: PathBuf) -> Result<Self, PolicyError> {
        let policy = Policy::load(&path)?;
        Ok(Self {
            path: Some(path),
            regions: OnceLock::new(),
            current: ArcSwap::from_pointee(policy),
            reloading: Mutex::new(()),
        })
    }

    /// A policy that did not come from a file (the demo's embedded example).
    pub fn fixed(policy: Policy) -> Self {
        Self {
            path: None,
            regions: OnceLock::new(),
            current: ArcSwap::from_pointee(policy),
            reloading: Mutex::new(()),
        }
    }

    /// Fits the policy to the gateway's configured regions, now and on every reload: targets
    /// that name no region get the default one, and naming an unconfigured region is an error.
    pub fn bind_regions(&self, regions: Regions) -> Result<(), PolicyError> {
        let resolved = regions.resolve(Policy::clone(&self.current()))?;
        self.current.store(Arc::new(resolved));
        // A second binding (none happens: one gateway, one store) keeps the first.
        let _ = self.regions.set(regions);
        Ok(())
    }

    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Re-reads the file. On any error the policy in force stays.
    pub fn reload(&self) -> Result<Reloaded, PolicyError> {
        let path = self.path.as_ref().ok_or(PolicyError::NotReloadable)?;
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut policy = Policy::load(path)?;
        if let Some(regions) = self.regions.get() {
            policy = regions.resolve(policy)?;
        }
        let revision = policy.revision.clone();
        let previous = self.current.swap(Arc::new(policy)).revision.clone();
        Ok(Reloaded {
            changed: previous != revision,
            previous_revision: previous,
            revision,
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reloaded {
    pub revision: String,
    pub previous_revision: String,
    /// False when the file's content did not change.
    pub changed: bool,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const EXAMPLE: &str = include_str!("../../config/policy.example.toml");

    /// The example policy, made distinct by a comment (the revision hashes the text).
    fn version(n: usize) -> String {
        format!("# version {n}\n{EXAMPLE}")
    }

    #[test]
    fn concurrent_reloads_each_report_the_revision_they_replaced() {
        let dir = std::env::temp_dir().join(format!("srgw-policy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let path = dir.join("policy.toml");
        std::fs::write(&path, version(0)).expect("written");
        let store = PolicyStore::from_file(path.clone()).expect("the example loads");
        let initial = store.current().revision.clone();

        let reloads: Vec<Reloaded> = std::thread::scope(|scope| {
            let writer = scope.spawn(|| {
                for n in 1..=40 {
                    let next = dir.join(format!("next-{n}.toml"));
                    std::fs::write(&next, version(n)).expect("written");
                    std::fs::rename(&next, &path).expect("replaced at once");
                }
            });
            let readers: Vec<_> = (0..6)
                .map(|_| {
                    scope.spawn(|| {
                        (0..40)
                            .map(|_| store.reload().expect("every version is valid"))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            writer.join().expect("the writer ends");
            readers
                .into_iter()
                .flat_map(|reader| reader.join().expect("a reader ends"))
                .collect()
        });

        // Serialized swaps form one chain: every revision put in force is replaced exactly
        // once by a later reload, except the last, and the first replaced the initial one.
        let mut replaced: BTreeMap<String, i64> = BTreeMap::new();
        *replaced.entry(initial).or_default() += 1;
        for reload in &reloads {
            *replaced.entry(reload.revision.clone()).or_default() += 1;
            *replaced
                .entry(reload.previous_revision.clone())
                .or_default() -= 1;
        }
        *replaced
            .entry(store.current().revision.clone())
            .or_default() -= 1;
        assert!(
            replaced.values().all(|n| *n == 0),
            "each reload names the revision it replaced: {replaced:?}"
        );
        drop(std::fs::remove_dir_all(&dir));
    }
}
