//! The gateway's state: the quota ledger, idempotency records and the decision log.
//!
//! One store, two engines through sqlx's `Any` driver: SQLite (one file, WAL) for a single
//! gateway, PostgreSQL (`postgres://…`) for several replicas. Same schema, same queries
//! (`$N` placeholders work on both); the only engine-specific step is how a quota
//! reservation takes its lock (see [`ledger`]).

pub mod decisions;
pub mod idempotency;
pub mod ledger;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::ExposeSecret;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use crate::config::StorageSettings;
use crate::error::{ErrorCode, Problem};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage URL must start with sqlite: or postgres://")]
    UnsupportedUrl,
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("applying database migrations failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        Self::Unavailable(error)
    }
}

impl From<&StorageError> for Problem {
    fn from(_: &StorageError) -> Self {
        Problem::new(
            ErrorCode::StorageUnavailable,
            "the gateway's database is unavailable; nothing was sent to the cloud, try again shortly",
        )
    }
}

/// The database handle shared by all requests.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Connects, applies the migrations, and for SQLite turns on WAL.
    pub async fn connect(settings: &StorageSettings) -> Result<Self, StorageError> {
        install_default_drivers();
        let configured = settings.url.expose_secret();
        let engine = Engine::of(configured).ok_or(StorageError::UnsupportedUrl)?;
        let url = match engine {
            // Create the file on first start.
            Engine::Sqlite if !configured.contains("mode=") => {
                let separator = if configured.contains('?') { '&' } else { '?' };
                format!("{configured}{separator}mode=rwc")
            }
            _ => configured.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        // Writers queue instead of failing while another one holds the lock.
                        connection.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if engine == Engine::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        MIGRATOR.run(&pool).await.map_err(StorageError::Migrate)?;
        Ok(Self { pool, engine })
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.pool.execute("SELECT 1").await?;
        Ok(())
    }
}
