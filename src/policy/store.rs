//! [`PolicyStore`]: the policy in force, hot-reloaded from its file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

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
}

impl PolicyStore {
    pub fn from_file(path: PathBuf) -> Result<Self, PolicyError> {
        let policy = Policy::load(&path)?;
        Ok(Self {
            path: Some(path),
            regions: OnceLock::new(),
            current: ArcSwap::from_pointee(policy),
        })
    }

    /// A policy that did not come from a file (the demo's embedded example).
    pub fn fixed(policy: Policy) -> Self {
        Self {
            path: None,
            regions: OnceLock::new(),
            current: ArcSwap::from_pointee(policy),
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
        let mut policy = Policy::load(path)?;
        if let Some(regions) = self.regions.get() {
            policy = regions.resolve(policy)?;
        }
        let previous = self.current.load().revision.clone();
        let revision = policy.revision.clone();
        self.current.store(Arc::new(policy));
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
