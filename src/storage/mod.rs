//! The gateway's state: the quota ledger, idempotency records and the decision log.
//!
//! One store, two engines: SQLite (one file, WAL, through rusqlite) for a single gateway,
//! PostgreSQL (`postgres://…`, through sqlx) for several replicas. Same schema, same queries
//! (`$N` placeholders, see [`sql`]); the only engine-specific step is how a quota reservation
//! takes its lock (see [`writer`]).

pub mod decisions;
mod guard;
pub mod idempotency;
pub mod leases;
pub mod ledger;
pub mod log;
pub mod requests;
pub mod retention;
pub mod sql;
pub mod stream;
pub mod usage;
pub mod writer;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::ExposeSecret;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

use crate::config::StorageSettings;

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

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
    Unavailable(#[source] Arc<dyn std::error::Error + Send + Sync>),
    #[error("the database stayed busy longer than storage.acquire_timeout_ms")]
    Busy,
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
    Unwritable(String, #[source] Arc<dyn std::error::Error + Send + Sync>),
    #[error("the database is closed")]
    Closed,
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

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Unavailable(Arc::new(error))
    }
}

/// An enum stored as text: the column holds `$text`, the API the variant in snake case, and
/// a test holds the two equal.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$doc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
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
    db: sql::Db,
    /// The SQLite file opened at start, which must stay the one at its path.
    file: Option<guard::FileIdentity>,
    /// Durable writes, group-committed.
    writer: writer::Writer,
    /// Decisions of requests that changed nothing, written in the background.
    log: log::DecisionLog,
    /// Teams' usage for previews.
    usage: usage::UsageView,
    /// Every decision also as a JSON line, for a SIEM (`audit.stream`).
    stream: Option<stream::DecisionStream>,
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
        let (db, file) = match engine {
            Engine::Sqlite => {
                let (sqlite, file) = guard::open_sqlite(configured, settings).await?;
                (sql::Db::Sqlite(sqlite), file)
            }
            Engine::Postgres => (
                sql::Db::Postgres(connect_postgres(configured, settings).await?),
                None,
            ),
        };
        let book = match engine {
            Engine::Sqlite => Some(Arc::new(usage::UsageBook::load(&db).await?)),
            Engine::Postgres => None,
        };
        let usage = match &book {
            Some(book) => usage::UsageView::Book(book.clone()),
            None => usage::UsageView::cached(Duration::from_millis(settings.usage_cache_ms)),
        };
        let writer = writer::Writer::spawn(db.clone(), book);
        let log = log::DecisionLog::spawn(writer.clone());
        Ok(Self {
            db,
            file,
            writer,
            log,
            usage,
            stream: None,
        })
    }

    /// This store, streaming every decision recorded through it to `stream` as well.
    #[must_use]
    pub fn with_decision_stream(mut self, stream: Option<stream::DecisionStream>) -> Self {
        self.stream = stream;
        self
    }

    /// Hands `record` to the decision stream, when there is one.
    pub fn stream_decision(&self, record: &decisions::DecisionRecord) {
        if let Some(stream) = &self.stream {
            stream.send(record);
        }
    }

    /// The database, for maintenance tools and tests that inspect it (through [`sql::query`]).
    /// On SQLite it is the one connection the gateway owns.
    pub fn db(&self) -> &sql::Db {
        &self.db
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
        match &self.db {
            sql::Db::Sqlite(sqlite) => sqlite.close().await,
            sql::Db::Postgres(pool) => {
                pool.close().await;
                // sqlx closes idle connections first and then waits for the checked-out
                // ones, so one returned meanwhile stays open; a second pass closes it.
                if pool.size() > 0 {
                    pool.close().await;
                }
            }
        }
    }

    /// `Err` once the SQLite file opened at start was removed or replaced.
    fn check_file(&self) -> Result<(), StorageError> {
        self.file
            .as_ref()
            .map_or(Ok(()), guard::FileIdentity::check)
    }

    /// For readiness: the database is the one opened at start, it takes a write, and the
    /// writer that every durable write goes through is running.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.check_file()?;
        if !self.writer.running() {
            return Err(StorageError::WriterStopped);
        }
        sql::query("UPDATE write_probe SET at = $1 WHERE id = 1")
            .bind(now_ms())
            .execute(&self.db)
            .await?;
        Ok(())
    }
}

/// A pool of `settings.max_connections`, migrated; refuses a database without a ledger unless
/// `settings.create_if_missing`.
async fn connect_postgres(
    url: &str,
    settings: &StorageSettings,
) -> Result<sqlx::AnyPool, StorageError> {
    let pool = AnyPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect(url)
        .await?;
    let mut connection = pool.acquire().await?;
    if !settings.create_if_missing && !guard::has_ledger(&mut connection, Engine::Postgres).await? {
        return Err(StorageError::NoLedger);
    }
    MIGRATOR
        .run(&mut *connection)
        .await
        .map_err(|error| StorageError::Migrate(Arc::new(error)))?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::decisions::{Action, Outcome};
    use super::ledger::ReservationState;
    use super::requests::RequestState;

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
        assert_stored_as_named!(ReservationState, RequestState, Action, Outcome);
    }
}
