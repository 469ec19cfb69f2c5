//! [`PolicyStore`]: the policy in force, hot-reloaded from its file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Policy, PolicyError};

/// The policy in force. A new policy replaces it only after it loaded and validated.
#[derive(Debug)]
pub struct PolicyStore {
    path: Option<PathBuf>,
    current: ArcSwap<Policy>,
}

impl PolicyStore {
    pub fn from_file(path: PathBuf) -> Result<Self, PolicyError> {
        let policy = Policy::load(&path)?;
        Ok(Self {
            path: Some(path),
            current: ArcSwap::from_pointee(policy),
        })
    }

    /// A policy that did not come from a file (the demo's embedded example).
    pub fn fixed(policy: Policy) -> Self {
        Self {
            path: None,
            current: ArcSwap::from_pointee(policy),
        }
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
        let policy = Policy::load(path)?;
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
