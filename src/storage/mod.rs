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
pub mod retention;

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
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        Self::Unavailable(error)
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
    engine: Engine,
    /// The SQLite file opened at start, which must stay the one at its path.
    file: Option<guard::FileIdentity>,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Connects, applies the migrations, and for SQLite turns on WAL. Refuses a database
    /// without a ledger unless `settings.create_if_missing`.
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
        if !settings.create_if_missing && !guard::has_ledger(&pool, engine).await? {
            return Err(StorageError::NoLedger);
        }
        if engine == Engine::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        MIGRATOR.run(&pool).await.map_err(StorageError::Migrate)?;
        let file = sqlite_file
            .as_deref()
            .map(guard::FileIdentity::of)
            .transpose()?;
        Ok(Self { pool, engine, file })
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
