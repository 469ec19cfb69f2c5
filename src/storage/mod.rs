//! The gateway's state: the quota ledger, idempotency records and the decision log.
//!
//! One store, two engines through sqlx's `Any` driver: SQLite (one file, WAL) for a single
//! gateway, PostgreSQL (`postgres://…`) for several replicas. Same schema, same queries
//! (`$N` placeholders work on both); the only engine-specific step is how a quota
//! reservation takes its lock (see [`ledger`]).

pub mod decisions;
mod guard;
pub mod idempotency;
pub mod ledger;
pub mod log;
pub mod retention;
pub mod usage;
pub mod writer;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::ExposeSecret;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use crate::config::StorageSettings;

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

#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("storage URL must start with sqlite: or postgres://")]
    UnsupportedUrl,
    #[error("the database is unavailable")]
    Unavailable(#[source] Arc<sqlx::Error>),
    #[error("applying database migrations failed")]
    Migrate(#[source] Arc<sqlx::migrate::MigrateError>),
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
    #[error(
        "the database file {0} does not exist; refusing to start with an empty quota ledger \
         (run `serve --init-storage` once to create it, or set storage.create_if_missing = true)"
    )]
    Missing(String),
    #[error(
        "the database has no quota ledger yet; refusing to start with an empty one \
         (run `serve --init-storage` once to create it, or set storage.create_if_missing = true)"
    )]
    NoLedger,
    #[error("the database file {0} was removed or replaced while the gateway ran")]
    Replaced(String),
    #[error("the database file {0} is in use by another process (one gateway owns a SQLite file)")]
    Locked(String),
    #[error("the database file {0} cannot be opened for writing")]
    Unwritable(String, #[source] Arc<sqlx::Error>),
    #[error("the database writer has stopped")]
    WriterStopped,
    #[error("another operation of the same transaction failed")]
    BatchFailed,
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        Self::Unavailable(Arc::new(error))
    }
}

/// An enum stored as text: the column holds `$text`, the API the variant in snake case, and
/// a test holds the two equal.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$doc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        $vis enum $name {
            $($(#[$doc])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant),*];
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            /// The value a column holds; anything else is a corrupt row.
            pub fn parse(text: &str) -> Result<Self, $crate::storage::StorageError> {
                match text {
                    $($text => Ok(Self::$variant),)*
                    other => Err($crate::storage::StorageError::Corrupt(format!(
                        "{} `{other}` is unknown",
                        stringify!($name)
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use stored_enum;

/// The database handle shared by all requests.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// The SQLite file opened at start, which must stay the one at its path.
    file: Option<guard::FileIdentity>,
    /// Durable writes, group-committed.
    writer: writer::Writer,
    /// Decisions of requests that changed nothing, written in the background.
    log: log::DecisionLog,
    /// Teams' usage for previews.
    usage: usage::UsageView,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Connects, applies the migrations, and for SQLite turns on WAL in exclusive locking
    /// mode. Refuses a database without a ledger unless `settings.create_if_missing`. Starts
    /// the writer and the decision log on the current runtime.
    pub async fn connect(settings: &StorageSettings) -> Result<Self, StorageError> {
        install_default_drivers();
        let configured = settings.url.expose_secret();
        let engine = Engine::of(configured).ok_or(StorageError::UnsupportedUrl)?;
        let sqlite_file = guard::sqlite_path(configured);
        if let Some(path) = &sqlite_file
            && !settings.create_if_missing
            && !path.exists()
        {
            return Err(StorageError::Missing(path.display().to_string()));
        }
        let url = match engine {
            Engine::Sqlite if !configured.contains("mode=") => {
                let separator = if configured.contains('?') { '&' } else { '?' };
                let mode = if settings.create_if_missing {
                    "rwc"
                } else {
                    "rw"
                };
                format!("{configured}{separator}mode={mode}")
            }
            _ => configured.to_owned(),
        };
        // One gateway owns a SQLite file, through one connection: exclusive locking keeps
        // WAL's index in process memory instead of a memory-mapped `-shm` file, so a file
        // that turns unwritable is an I/O error (503), never a SIGBUS, and a second process
        // cannot write behind this one's back.
        let connections = match engine {
            Engine::Sqlite => 1,
            Engine::Postgres => settings.max_connections,
        };
        if let Some(path) = &sqlite_file {
            guard::open_exclusively(&url, path).await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        connection.execute(guard::SQLITE_SETUP).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if !settings.create_if_missing && !guard::has_ledger(&pool, engine).await? {
            return Err(StorageError::NoLedger);
        }
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|error| StorageError::Migrate(Arc::new(error)))?;
        let file = sqlite_file
            .as_deref()
            .map(guard::FileIdentity::of)
            .transpose()?;
        let book = match engine {
            Engine::Sqlite => Some(Arc::new(usage::UsageBook::load(&pool).await?)),
            Engine::Postgres => None,
        };
        let usage = match &book {
            Some(book) => usage::UsageView::Book(book.clone()),
            None => usage::UsageView::cached(Duration::from_millis(settings.usage_cache_ms)),
        };
        let writer = writer::Writer::spawn(pool.clone(), engine, book);
        let log = log::DecisionLog::spawn(writer.clone());
        Ok(Self {
            pool,
            file,
            writer,
            log,
            usage,
        })
    }

    /// The connection pool, for maintenance tools and tests that inspect the database. On
    /// SQLite it holds the one connection the gateway owns.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Transactions committed by the group writer since start.
    pub fn transactions(&self) -> u64 {
        self.writer.transactions()
    }

    /// Returns once every decision logged before the call is written.
    pub async fn flush(&self) {
        self.log.flush().await;
    }

    /// Writes what the decision log still buffers and closes the connections (releasing a
    /// SQLite file's lock). For a graceful shutdown.
    pub async fn close(&self) {
        self.log.flush().await;
        self.pool.close().await;
        // sqlx closes idle connections first and then waits for the checked-out ones, so one
        // returned meanwhile stays open; a second pass closes it and releases the file.
        if self.pool.size() > 0 {
            self.pool.close().await;
        }
    }

    /// `Err` once the SQLite file opened at start was removed or replaced.
    fn check_file(&self) -> Result<(), StorageError> {
        self.file
            .as_ref()
            .map_or(Ok(()), guard::FileIdentity::check)
    }

    /// For readiness: the database is the one opened at start, and it takes a write.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.check_file()?;
        sqlx::query("UPDATE write_probe SET at = $1 WHERE id = 1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::decisions::{Action, Outcome};
    use super::ledger::ReservationState;

    macro_rules! assert_stored_as_named {
        ($($enum:ty),*) => {$(
            for value in <$enum>::ALL {
                assert_eq!(
                    serde_json::to_value(value).ok(),
                    Some(serde_json::Value::from(value.as_str()))
                );
                assert_eq!(<$enum>::parse(value.as_str()).ok(), Some(*value));
            }
            assert!(<$enum>::parse("no-such-value").is_err());
        )*};
    }

    #[test]
    fn every_stored_value_is_written_read_and_served_under_one_name() {
        assert_stored_as_named!(ReservationState, Action, Outcome);
    }
}
