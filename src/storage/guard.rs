//! A ledger never resets silently. At start, a missing SQLite file or a database without the
//! schema is refused unless creating one was asked for (`storage.create_if_missing`,
//! `serve --init-storage`). While running, the SQLite file the gateway opened must stay the
//! one at its path: removed or replaced (another inode), the store fails closed with
//! [`StorageError::Replaced`], so nothing goes upstream without a reservation that survives a
//! restart.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use sqlx::{AnyConnection, AnyPool, Connection, Executor, Row};

use super::{Engine, StorageError};

/// The file behind a `sqlite:` URL; `None` for an in-memory database.
pub(super) fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:" && !rest.contains("mode=memory"))
        .then(|| PathBuf::from(path))
}

/// Which file is open: its device and inode, so a replacement at the same path is noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileIdentity {
    path: PathBuf,
    id: (u64, u64),
}

#[cfg(unix)]
fn identity_of(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path)?;
    Ok((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn identity_of(path: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::metadata(path).map(|_| (0, 0))
}

impl FileIdentity {
    pub(super) fn of(path: &Path) -> Result<Self, StorageError> {
        let id =
            identity_of(path).map_err(|_| StorageError::Replaced(path.display().to_string()))?;
        Ok(Self {
            path: path.to_owned(),
            id,
        })
    }

    /// `Err` once the file at the path is gone or is another file.
    pub(super) fn check(&self) -> Result<(), StorageError> {
        match identity_of(&self.path) {
            Ok(id) if id == self.id => Ok(()),
            _ => Err(StorageError::Replaced(self.path.display().to_string())),
        }
    }
}

/// Every SQLite connection's first statements: exclusive locking before the first access,
/// so WAL never maps a `-shm` file; a short wait for a lock held elsewhere; full sync.
pub(super) const SQLITE_SETUP: &str = "PRAGMA locking_mode = EXCLUSIVE; PRAGMA busy_timeout = 2000; PRAGMA synchronous = FULL; \
     PRAGMA journal_mode = WAL";

/// Opens the SQLite file once as the gateway will, to turn what can go wrong into a clear
/// start-up error: another process holds it, or it cannot be written.
pub(super) async fn open_exclusively(url: &str, path: &Path) -> Result<(), StorageError> {
    let file = path.display().to_string();
    let opened = async {
        let mut connection = AnyConnection::connect(url).await?;
        connection.execute(SQLITE_SETUP).await?;
        connection.close().await
    };
    opened.await.map_err(|error| match &error {
        sqlx::Error::Database(db) if db.message().contains("locked") => StorageError::Locked(file),
        _ => StorageError::Unwritable(file, Arc::new(error)),
    })
}

/// Whether the database already holds the ledger's schema.
pub(super) async fn has_ledger(pool: &AnyPool, engine: Engine) -> Result<bool, StorageError> {
    let sql = match engine {
        Engine::Sqlite => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'reservations'"
        }
        Engine::Postgres => {
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_name = 'reservations' \
             AND table_schema = current_schema()"
        }
    };
    let row = sqlx::query(sql).fetch_one(pool).await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_of_a_sqlite_url_is_found_whatever_its_form() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/gw.db?mode=rw"),
            Some(PathBuf::from("/var/lib/gw.db"))
        );
        assert_eq!(sqlite_path("sqlite://gw.db"), Some(PathBuf::from("gw.db")));
        assert_eq!(sqlite_path("sqlite:gw.db"), Some(PathBuf::from("gw.db")));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://db/gw"), None);
    }

    #[test]
    fn a_file_replaced_at_the_same_path_is_noticed() {
        let path = std::env::temp_dir().join(format!("srgw-guard-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, b"first").expect("write");
        let identity = FileIdentity::of(&path).expect("exists");
        assert!(identity.check().is_ok());

        let replacement = path.with_extension("new");
        std::fs::write(&replacement, b"second").expect("write");
        std::fs::rename(&replacement, &path).expect("rename");
        let replaced = identity.check();
        std::fs::remove_file(&path).expect("remove");
        let removed = identity.check();

        assert!(matches!(replaced, Err(StorageError::Replaced(_))));
        assert!(matches!(removed, Err(StorageError::Replaced(_))));
    }
}
