//! A ledger never resets silently. At start, a missing SQLite file or a database without the
//! schema is refused unless creating one was asked for (`storage.create_if_missing`,
//! `serve --init-storage`). While running, the SQLite file the gateway opened must stay the
//! one at its path: removed or replaced (another inode), the store fails closed with
//! [`StorageError::Replaced`], so nothing goes upstream without a reservation that survives a
//! restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::{AnyConnection, Connection, Executor, Row};

use super::sql::{self, Db, SqliteDb};
use super::{Engine, MIGRATOR, StorageError};
use crate::config::StorageSettings;

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
/// so WAL never maps a `-shm` file; a short wait for a lock held elsewhere; full sync;
/// temporary data (statement journals, sorts) in memory rather than in files; a page cache
/// (16 MiB, SQLite's default is 2) that holds a whole batch of the decision log, which would
/// otherwise spill dirty pages to the WAL mid-transaction and read them back.
pub(super) const SQLITE_SETUP: &str = "PRAGMA locking_mode = EXCLUSIVE; PRAGMA busy_timeout = 2000; PRAGMA synchronous = FULL; \
     PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384; PRAGMA journal_mode = WAL";

/// Opens the SQLite database of `url` for the gateway: refuses a missing file or one without a
/// ledger unless `settings.create_if_missing`; migrates it; then holds it through one
/// connection in exclusive mode. What goes wrong becomes a clear start-up error: another
/// process holds the file, or it cannot be written.
pub(super) async fn open_sqlite(
    url: &str,
    settings: &StorageSettings,
) -> Result<(SqliteDb, Option<FileIdentity>), StorageError> {
    let wait = Duration::from_millis(settings.acquire_timeout_ms);
    let Some(path) = sqlite_path(url) else {
        // A private in-memory database starts empty: every migration applies, in order.
        let db = SqliteDb::open(None, SQLITE_SETUP, wait)?;
        db.with(|connection| {
            MIGRATOR
                .iter()
                .try_for_each(|migration| connection.execute_batch(&migration.sql))
                .map_err(StorageError::from)
        })
        .await?;
        return Ok((db, None));
    };
    if !settings.create_if_missing && !path.exists() {
        return Err(StorageError::Missing(path.display().to_string()));
    }
    let url = if url.contains("mode=") {
        url.to_owned()
    } else {
        let separator = if url.contains('?') { '&' } else { '?' };
        let mode = if settings.create_if_missing {
            "rwc"
        } else {
            "rw"
        };
        format!("{url}{separator}mode={mode}")
    };
    let file = path.display().to_string();
    // sqlx applies the migrations (keeping its own record of them) and lets go of the file;
    // the gateway's connection takes it over.
    let migrated = async {
        let mut connection = AnyConnection::connect(&url)
            .await
            .map_err(|error| unwritable(&file, error))?;
        connection
            .execute(SQLITE_SETUP)
            .await
            .map_err(|error| unwritable(&file, error))?;
        if !settings.create_if_missing && !has_ledger(&mut connection, Engine::Sqlite).await? {
            return Err(StorageError::NoLedger);
        }
        MIGRATOR
            .run(&mut connection)
            .await
            .map_err(|error| StorageError::Migrate(Arc::new(error)))?;
        connection.close().await.map_err(StorageError::from)
    };
    migrated.await?;
    let identity = FileIdentity::of(&path)?;
    let db = SqliteDb::open(Some(&path), SQLITE_SETUP, wait).map_err(|error| match error {
        StorageError::Unavailable(cause) => StorageError::Unwritable(file.clone(), cause),
        other => other,
    })?;
    // The first write takes the exclusive lock, which the connection then keeps.
    sql::query("UPDATE write_probe SET at = $1 WHERE id = 1")
        .bind(super::now_ms())
        .execute(&Db::Sqlite(db.clone()))
        .await
        .map_err(|error| match error {
            StorageError::Unavailable(cause) if cause.to_string().contains("locked") => {
                StorageError::Locked(file.clone())
            }
            StorageError::Unavailable(cause) => StorageError::Unwritable(file.clone(), cause),
            other => other,
        })?;
    Ok((db, Some(identity)))
}

fn unwritable(file: &str, error: sqlx::Error) -> StorageError {
    match &error {
        sqlx::Error::Database(db) if db.message().contains("locked") => {
            StorageError::Locked(file.to_owned())
        }
        _ => StorageError::Unwritable(file.to_owned(), Arc::new(error)),
    }
}

/// Whether the database already holds the ledger's schema.
pub(super) async fn has_ledger(
    connection: &mut AnyConnection,
    engine: Engine,
) -> Result<bool, StorageError> {
    let sql = match engine {
        Engine::Sqlite => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'reservations'"
        }
        Engine::Postgres => {
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_name = 'reservations' \
             AND table_schema = current_schema()"
        }
    };
    let row = sqlx::query(sql).fetch_one(connection).await?;
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
