//! One query API over both engines: the same SQL text (`$N` placeholders, bound by number)
//! runs on PostgreSQL through sqlx's `Any` pool, and on SQLite through rusqlite.
//!
//! SQLite leaves sqlx because of how sqlx drives it: a worker thread per connection, with
//! every statement and every row handed across threads, two wake-ups each. A create makes
//! about eight such round trips, and on this kind of machine they cost more than its two
//! fsyncs (BENCHMARKS.md, "why the create targets are still missed"). Here the one
//! connection sits behind a mutex: the group writer's thread runs a whole batch
//! synchronously, and a read is one hand-off to a blocking thread; none per statement.

use std::borrow::Cow;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};
use rusqlite::types::{ToSqlOutput, Value as SqliteValue, ValueRef};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row as _};

use super::StorageError;

/// A bound parameter. Nulls keep their type: PostgreSQL refuses a text null for a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Integer(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Integer(Some(value))
    }
}

impl From<Option<i64>> for Value {
    fn from(value: Option<i64>) -> Self {
        Self::Integer(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self::Text(Some(value.to_owned()))
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Self::Text(Some(value))
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Self::Text(Some(value.clone()))
    }
}

impl From<Option<String>> for Value {
    fn from(value: Option<String>) -> Self {
        Self::Text(value)
    }
}

impl From<&Option<String>> for Value {
    fn from(value: &Option<String>) -> Self {
        Self::Text(value.clone())
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Self::Integer(Some(number)) => ValueRef::Integer(*number),
            Self::Text(Some(text)) => ValueRef::Text(text.as_bytes()),
            Self::Integer(None) | Self::Text(None) => ValueRef::Null,
        }))
    }
}

/// A statement with its parameters; `$N` takes the N-th bound value.
#[derive(Debug, Clone)]
pub struct Query {
    sql: Cow<'static, str>,
    values: Vec<Value>,
}

pub fn query(sql: impl Into<Cow<'static, str>>) -> Query {
    Query {
        sql: sql.into(),
        values: Vec::new(),
    }
}

/// Whether a statement's rows are wanted, or only how many rows it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Changes,
    Rows,
}

/// What a statement did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Rows an `INSERT`, `UPDATE` or `DELETE` changed; meaningless for a `SELECT`.
    pub rows_affected: u64,
    pub rows: Vec<Row>,
}

impl Query {
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.values.push(value.into());
        self
    }

    /// Runs the statement; how many rows it changed.
    pub async fn execute(self, on: impl Target) -> Result<u64, StorageError> {
        Ok(on.run(self, Want::Changes).await?.rows_affected)
    }

    pub async fn fetch_all(self, on: impl Target) -> Result<Vec<Row>, StorageError> {
        Ok(on.run(self, Want::Rows).await?.rows)
    }

    pub async fn fetch_optional(self, on: impl Target) -> Result<Option<Row>, StorageError> {
        Ok(self.fetch_all(on).await?.into_iter().next())
    }

    /// The first row; a statement that returns none is a fault (aggregates always do).
    pub async fn fetch_one(self, on: impl Target) -> Result<Row, StorageError> {
        self.fetch_optional(on).await?.ok_or_else(|| {
            StorageError::Corrupt("a query that always returns a row returned none".into())
        })
    }

    async fn run_any(
        &self,
        connection: &mut AnyConnection,
        want: Want,
    ) -> Result<Outcome, StorageError> {
        let mut statement = sqlx::query(&self.sql);
        for value in &self.values {
            statement = match value {
                Value::Integer(number) => statement.bind(*number),
                Value::Text(text) => statement.bind(text.as_deref()),
            };
        }
        Ok(match want {
            Want::Changes => Outcome {
                rows_affected: statement.execute(connection).await?.rows_affected(),
                rows: Vec::new(),
            },
            Want::Rows => Outcome {
                rows_affected: 0,
                rows: statement
                    .fetch_all(connection)
                    .await?
                    .into_iter()
                    .map(Row::Any)
                    .collect(),
            },
        })
    }

    fn run_sqlite(&self, connection: &rusqlite::Connection) -> Result<Outcome, StorageError> {
        let mut statement = connection.prepare_cached(&self.sql)?;
        for index in 1..=statement.parameter_count() {
            let value = statement
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|number| number.parse::<usize>().ok())
                .and_then(|number| self.values.get(number.checked_sub(1)?))
                .ok_or_else(|| {
                    StorageError::Corrupt(format!(
                        "parameter {index} of `{}` is not a bound `$N`",
                        self.sql
                    ))
                })?;
            statement.raw_bind_parameter(index, value)?;
        }
        let columns: Arc<[String]> = statement
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut rows = Vec::new();
        let mut cursor = statement.raw_query();
        while let Some(row) = cursor.next()? {
            let values = (0..columns.len())
                .map(|index| row.get::<_, SqliteValue>(index))
                .collect::<Result<_, _>>()?;
            rows.push(Row::Sqlite(SqliteRow {
                columns: columns.clone(),
                values,
            }));
        }
        Ok(Outcome {
            rows_affected: connection.changes(),
            rows,
        })
    }
}

/// A row of either engine.
pub enum Row {
    Any(AnyRow),
    Sqlite(SqliteRow),
}

#[derive(Debug)]
pub struct SqliteRow {
    columns: Arc<[String]>,
    values: Vec<SqliteValue>,
}

impl Row {
    /// The value of a column, by name or by position.
    pub fn try_get<T: Column>(&self, column: impl ColumnIndex) -> Result<T, StorageError> {
        match self {
            Self::Any(row) => T::from_any(row, column).map_err(StorageError::from),
            Self::Sqlite(row) => {
                let value = column
                    .position(&row.columns)
                    .and_then(|index| row.values.get(index))
                    .ok_or_else(|| StorageError::Corrupt(format!("no column `{column}`")))?;
                T::from_sqlite(value).ok_or_else(|| {
                    StorageError::Corrupt(format!(
                        "column `{column}` holds an unexpected {value:?}"
                    ))
                })
            }
        }
    }

    /// How many columns the row has.
    pub fn len(&self) -> usize {
        match self {
            Self::Any(row) => row.len(),
            Self::Sqlite(row) => row.values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A column's name, or its position from 0.
pub trait ColumnIndex: sqlx::ColumnIndex<AnyRow> + std::fmt::Display + Copy {
    fn position(self, columns: &[String]) -> Option<usize>;
}

impl ColumnIndex for &str {
    fn position(self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|column| column == self)
    }
}

impl ColumnIndex for usize {
    fn position(self, columns: &[String]) -> Option<usize> {
        (self < columns.len()).then_some(self)
    }
}

/// A type a column is read as.
pub trait Column: Sized {
    fn from_any(row: &AnyRow, column: impl ColumnIndex) -> Result<Self, sqlx::Error>;
    fn from_sqlite(value: &SqliteValue) -> Option<Self>;
}

impl Column for i64 {
    fn from_any(row: &AnyRow, column: impl ColumnIndex) -> Result<Self, sqlx::Error> {
        row.try_get(column)
    }

    fn from_sqlite(value: &SqliteValue) -> Option<Self> {
        match value {
            SqliteValue::Integer(number) => Some(*number),
            _ => None,
        }
    }
}

impl Column for String {
    fn from_any(row: &AnyRow, column: impl ColumnIndex) -> Result<Self, sqlx::Error> {
        row.try_get(column)
    }

    fn from_sqlite(value: &SqliteValue) -> Option<Self> {
        match value {
            SqliteValue::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

impl<T: Column> Column for Option<T>
where
    Option<T>: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    fn from_any(row: &AnyRow, column: impl ColumnIndex) -> Result<Self, sqlx::Error> {
        row.try_get(column)
    }

    fn from_sqlite(value: &SqliteValue) -> Option<Self> {
        match value {
            SqliteValue::Null => Some(None),
            other => T::from_sqlite(other).map(Some),
        }
    }
}

/// The connection of an open transaction: the writer's, inside its batch.
#[derive(Debug)]
pub enum Conn<'a, 'c> {
    Any(&'a mut AnyConnection),
    Sqlite(&'a Session<'c>),
}

/// SQLite's one connection, taken for a batch. The mutex is never contended (one thread
/// holds the session); it is what lets the batch's futures be `Send` like PostgreSQL's.
pub struct Session<'c>(Mutex<&'c mut rusqlite::Connection>);

impl<'c> Session<'c> {
    pub fn new(connection: &'c mut rusqlite::Connection) -> Self {
        Self(Mutex::new(connection))
    }
}

/// Where a statement runs: the store's database, or a transaction's connection.
pub trait Target: Send {
    fn run(
        self,
        query: Query,
        want: Want,
    ) -> impl Future<Output = Result<Outcome, StorageError>> + Send;
}

impl Target for &mut Conn<'_, '_> {
    async fn run(self, query: Query, want: Want) -> Result<Outcome, StorageError> {
        match self {
            Conn::Any(connection) => query.run_any(connection, want).await,
            Conn::Sqlite(session) => query.run_sqlite(&session.0.lock()),
        }
    }
}

impl Target for &Db {
    async fn run(self, query: Query, want: Want) -> Result<Outcome, StorageError> {
        match self {
            Db::Postgres(pool) => {
                let mut connection = pool.acquire().await?;
                query.run_any(&mut connection, want).await
            }
            Db::Sqlite(sqlite) => {
                sqlite
                    .with(move |connection| query.run_sqlite(connection))
                    .await
            }
        }
    }
}

/// The store's database.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqliteDb),
    Postgres(AnyPool),
}

/// The gateway's one SQLite connection; `None` once closed.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    connection: Arc<Mutex<Option<rusqlite::Connection>>>,
    /// How long a statement waits for the connection before the database counts as busy.
    wait: Duration,
}

impl SqliteDb {
    /// Opens `path` (a file that exists; `None`: a private in-memory database) and runs
    /// `setup` on it first.
    pub fn open(path: Option<&Path>, setup: &str, wait: Duration) -> Result<Self, StorageError> {
        use rusqlite::OpenFlags;
        let connection = match path {
            Some(path) => rusqlite::Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?,
            None => rusqlite::Connection::open_in_memory()?,
        };
        connection.execute_batch(setup)?;
        connection.set_prepared_statement_cache_capacity(64);
        Ok(Self {
            connection: Arc::new(Mutex::new(Some(connection))),
            wait,
        })
    }

    /// Runs `work` with the connection, on a blocking thread.
    pub async fn with<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut rusqlite::Connection) -> Result<R, StorageError> + Send + 'static,
    ) -> Result<R, StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(&mut *this.hold()?))
            .await
            .map_err(|_| StorageError::WriterStopped)?
    }

    /// The connection, once free within the configured wait: for the blocking thread, and
    /// for tests that hold it.
    pub fn hold(&self) -> Result<MappedMutexGuard<'_, rusqlite::Connection>, StorageError> {
        let guard = self
            .connection
            .try_lock_for(self.wait)
            .ok_or(StorageError::Busy)?;
        MutexGuard::try_map(guard, Option::as_mut).map_err(|_| StorageError::Closed)
    }

    /// Closes the connection, releasing the file's lock; later statements fail as closed.
    pub async fn close(&self) {
        let connection = self.connection.clone();
        let closing = tokio::task::spawn_blocking(move || connection.lock().take());
        if let Ok(Some(connection)) = closing.await
            && let Err((_, error)) = connection.close()
        {
            tracing::warn!(%error, "closing the SQLite database failed");
        }
    }
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any(row) => write!(f, "Row({} columns)", row.columns().len()),
            Self::Sqlite(row) => row.fmt(f),
        }
    }
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> SqliteDb {
        SqliteDb::open(
            None,
            "CREATE TABLE t (n BIGINT, s TEXT)",
            Duration::from_secs(1),
        )
        .expect("in-memory SQLite")
    }

    #[tokio::test]
    async fn parameters_bind_by_their_number_wherever_they_appear() {
        let db = Db::Sqlite(memory());
        let inserted = query("INSERT INTO t (s, n) VALUES ($2, $1), ($2, $1)")
            .bind(7)
            .bind("seven")
            .execute(&db)
            .await
            .expect("insert");
        let row = query("SELECT SUM(n) AS total, MAX(s) AS s FROM t WHERE s = $1")
            .bind("seven")
            .fetch_one(&db)
            .await
            .expect("select");

        assert_eq!(inserted, 2);
        assert_eq!(row.try_get::<i64>("total").ok(), Some(14));
        assert_eq!(row.try_get::<String>("s").ok(), Some("seven".into()));
    }

    #[tokio::test]
    async fn nulls_read_as_none_and_a_wrong_type_is_a_corrupt_row() {
        let db = Db::Sqlite(memory());
        query("INSERT INTO t (n, s) VALUES ($1, $2)")
            .bind(None::<i64>)
            .bind("text")
            .execute(&db)
            .await
            .expect("insert");
        let row = query("SELECT n, s FROM t")
            .fetch_one(&db)
            .await
            .expect("row");

        assert_eq!(row.try_get::<Option<i64>>("n").ok(), Some(None));
        assert!(matches!(
            row.try_get::<i64>("s"),
            Err(StorageError::Corrupt(_))
        ));
        assert!(matches!(
            row.try_get::<i64>("missing"),
            Err(StorageError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn a_parameter_without_a_value_is_refused_not_bound_as_null() {
        let db = Db::Sqlite(memory());
        let refused = query("INSERT INTO t (n) VALUES ($2)")
            .bind(1)
            .execute(&db)
            .await;
        assert!(
            matches!(refused, Err(StorageError::Corrupt(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_held_connection_makes_the_database_busy_after_the_wait() {
        let sqlite = SqliteDb::open(None, "SELECT 1", Duration::from_millis(50)).expect("open");
        let db = Db::Sqlite(sqlite.clone());
        let held = sqlite.hold().expect("free");
        let busy = query("SELECT 1 AS n").fetch_one(&db).await;
        drop(held);

        assert!(matches!(busy, Err(StorageError::Busy)), "{busy:?}");
        assert!(query("SELECT 1 AS n").fetch_one(&db).await.is_ok());
    }
}
