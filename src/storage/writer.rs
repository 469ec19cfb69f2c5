//! Group commit: one writer, many waiters. Every write that must be durable before its
//! caller goes on (a reservation, a settlement with its decision, an idempotency claim) is an
//! operation ([`WriteOp`]) sent to the writer. The writer takes whatever has queued up while
//! the previous transaction committed (up to [`MAX_BATCH`] operations), applies them in order
//! inside one transaction, commits once, and only then answers each waiter. So a burst of
//! creates shares one fsync instead of queueing on the database lock one fsync each, and a
//! lone request waits for nothing but its own commit: no window is added.
//!
//! Operations see each other's effects in order (a second reservation of a team counts the
//! first). On PostgreSQL the batch first takes the advisory lock of every team it admits
//! against, in one order (by lock key), so replicas sharing the database never over-admit and
//! two batches cannot deadlock. An operation that fails, or a commit that fails, fails the
//! batch as a whole; its operations are then retried one transaction each, so one bad
//! operation costs the others only time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::FutureExt;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use super::StorageError;
use super::sql::{Conn, Db, Session, SqliteDb};
use super::usage::{UsageBook, UsageChange};

/// Operations applied in one transaction at most.
pub const MAX_BATCH: usize = 256;
/// Operations queued before callers wait to enqueue.
const QUEUE: usize = 4 * MAX_BATCH;

/// A write to apply inside the writer's transaction. `apply` may run more than once (when its
/// batch is retried), always in a fresh transaction, so it must depend only on its inputs and
/// the database. A refusal that writes nothing (over quota, a key in use) is an `Ok` output.
pub trait WriteOp: Send + Sync + 'static {
    type Output: Send + 'static;

    /// Teams whose quota this operation admits against; PostgreSQL locks them for the batch.
    fn teams(&self) -> Vec<String> {
        Vec::new()
    }

    /// What `output`, once committed, changed in a team's usage (for the [`UsageBook`]).
    fn usage_change(&self, _output: &Self::Output) -> Option<UsageChange> {
        None
    }

    fn apply(
        &self,
        connection: &mut Conn<'_, '_>,
    ) -> impl Future<Output = Result<Self::Output, StorageError>> + Send;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A queued operation with its waiter, its type erased.
trait Job: Send {
    fn teams(&self) -> Vec<String>;
    /// Applies the operation, keeping its result for [`Job::answer`]; false when it failed.
    fn apply<'a>(&'a mut self, connection: &'a mut Conn<'_, '_>) -> BoxFuture<'a, bool>;
    /// Answers the waiter once the transaction's fate is known, after entering a committed
    /// usage change in `book`.
    fn answer(self: Box<Self>, committed: Result<(), StorageError>, book: Option<&UsageBook>);
}

struct Queued<O: WriteOp> {
    op: O,
    result: Option<Result<O::Output, StorageError>>,
    reply: oneshot::Sender<Result<O::Output, StorageError>>,
}

impl<O: WriteOp> Job for Queued<O> {
    fn teams(&self) -> Vec<String> {
        self.op.teams()
    }

    fn apply<'a>(&'a mut self, connection: &'a mut Conn<'_, '_>) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let result = self.op.apply(connection).await;
            let applied = result.is_ok();
            self.result = Some(result);
            applied
        })
    }

    fn answer(self: Box<Self>, committed: Result<(), StorageError>, book: Option<&UsageBook>) {
        if committed.is_ok()
            && let (Some(book), Some(Ok(output))) = (book, &self.result)
            && let Some(change) = self.op.usage_change(output)
        {
            book.apply(&change);
        }
        let answer = match (self.result, committed) {
            (Some(Err(error)), _) | (_, Err(error)) => Err(error),
            (Some(Ok(output)), Ok(())) => Ok(output),
            (None, Ok(())) => Err(StorageError::WriterStopped),
        };
        // A waiter that gave up (its request was cancelled) needs no answer.
        drop(self.reply.send(answer));
    }
}

/// The handle requests write through; cloned freely.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
    transactions: Arc<AtomicU64>,
}

impl std::fmt::Debug for dyn Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Writer {
    /// Starts the writer: on PostgreSQL a task on the current runtime, on SQLite a thread of
    /// its own that owns the batches (no runtime hop between a write and its commit). It ends
    /// when every handle is dropped. With a `book`, every committed change to usage is entered
    /// in it before its caller hears back.
    pub fn spawn(db: Db, book: Option<Arc<UsageBook>>) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let transactions = Arc::new(AtomicU64::new(0));
        let counter = transactions.clone();
        match db {
            Db::Postgres(pool) => {
                tokio::spawn(run_postgres(pool, book, jobs, counter));
            }
            Db::Sqlite(sqlite) => {
                let started = std::thread::Builder::new()
                    .name("sqlite-writer".into())
                    .spawn(move || run_sqlite(&sqlite, book.as_deref(), jobs, &counter));
                if let Err(error) = started {
                    // Its queue is closed with it: every write answers `WriterStopped`.
                    tracing::error!(%error, "the SQLite writer thread could not start");
                }
            }
        }
        Self {
            queue,
            transactions,
        }
    }

    /// Transactions committed so far: with group commit, fewer than the operations.
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// False once the writer has ended (it panicked): every write would answer
    /// `WriterStopped`, so the gateway is not ready.
    pub fn running(&self) -> bool {
        !self.queue.is_closed()
    }

    /// Applies `op` in the next batch and answers once that batch has committed.
    pub async fn write<O: WriteOp>(&self, op: O) -> Result<O::Output, StorageError> {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Queued {
            op,
            result: None,
            reply,
        });
        self.queue
            .send(job)
            .await
            .map_err(|_| StorageError::WriterStopped)?;
        answer.await.map_err(|_| StorageError::WriterStopped)?
    }
}

type Batch = Vec<Box<dyn Job>>;

async fn run_postgres(
    pool: AnyPool,
    book: Option<Arc<UsageBook>>,
    mut jobs: mpsc::Receiver<Box<dyn Job>>,
    transactions: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let committed = commit_postgres(&pool, &mut batch).await;
        for job in settle(&mut batch, committed, book.as_deref(), &transactions) {
            let mut alone = vec![job];
            let committed = commit_postgres(&pool, &mut alone).await;
            settle(&mut alone, committed, book.as_deref(), &transactions);
        }
    }
}

fn run_sqlite(
    sqlite: &SqliteDb,
    book: Option<&UsageBook>,
    mut jobs: mpsc::Receiver<Box<dyn Job>>,
    transactions: &AtomicU64,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = jobs.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH
            && let Ok(job) = jobs.try_recv()
        {
            batch.push(job);
        }
        let committed = commit_sqlite(sqlite, &mut batch);
        for job in settle(&mut batch, committed, book, transactions) {
            let mut alone = vec![job];
            let committed = commit_sqlite(sqlite, &mut alone);
            settle(&mut alone, committed, book, transactions);
        }
    }
}

/// Answers the waiters of a batch whose transaction has ended, and empties it. A batch of
/// several that failed is handed back instead, to be retried one operation per transaction,
/// so one bad operation costs the others only time.
fn settle(
    batch: &mut Batch,
    committed: Result<(), StorageError>,
    book: Option<&UsageBook>,
    transactions: &AtomicU64,
) -> Batch {
    crate::metrics::METRICS
        .storage_batch_size
        .observe(batch.len() as f64);
    match committed {
        Ok(()) => {
            transactions.fetch_add(1, Ordering::Relaxed);
            batch.drain(..).for_each(|job| job.answer(Ok(()), book));
            Vec::new()
        }
        Err(error) if batch.len() == 1 => {
            batch
                .drain(..)
                .for_each(|job| job.answer(Err(error.clone()), None));
            Vec::new()
        }
        Err(error) => {
            tracing::warn!(error = ?error, operations = batch.len(), "a write batch failed; retrying its operations one by one");
            std::mem::take(batch)
        }
    }
}

/// Applies `jobs` in one transaction and commits it. `Err` when any of them failed (its own
/// error is kept for its answer) or the transaction did. SQLite's statements never wait on
/// anything but the disk, so every operation's future is ready when first polled.
fn commit_sqlite(sqlite: &SqliteDb, jobs: &mut Batch) -> Result<(), StorageError> {
    apply_sqlite(&mut *sqlite.hold()?, jobs)
}

fn apply_sqlite(
    connection: &mut rusqlite::Connection,
    jobs: &mut Batch,
) -> Result<(), StorageError> {
    if !connection.is_autocommit() {
        // A batch that panicked left its transaction open.
        connection.execute_batch("ROLLBACK")?;
    }
    // Take the write lock up front: the batch reads usage and then writes.
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let applied = {
        let session = Session::new(connection);
        jobs.iter_mut().all(|job| {
            job.apply(&mut Conn::Sqlite(&session))
                .now_or_never()
                .unwrap_or(false)
        })
    };
    if !applied {
        connection.execute_batch("ROLLBACK")?;
        return Err(StorageError::BatchFailed);
    }
    if let Err(error) = connection.execute_batch("COMMIT") {
        drop(connection.execute_batch("ROLLBACK"));
        return Err(error.into());
    }
    Ok(())
}

/// [`commit_sqlite`]'s counterpart, taking the admitted teams' locks first.
async fn commit_postgres(pool: &AnyPool, jobs: &mut Batch) -> Result<(), StorageError> {
    let mut tx = pool.begin().await?;
    let teams = jobs.iter().flat_map(|job| job.teams()).collect();
    lock_teams(&mut tx, teams).await?;
    for job in jobs.iter_mut() {
        if !job.apply(&mut Conn::Any(&mut tx)).await {
            tx.rollback().await?;
            return Err(StorageError::BatchFailed);
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Takes every team's advisory lock for the transaction, ordered by lock key: PostgreSQL
/// evaluates a volatile select list after `ORDER BY`, so every batch locks in the same order.
async fn lock_teams(
    connection: &mut AnyConnection,
    mut teams: Vec<String>,
) -> Result<(), StorageError> {
    teams.sort_unstable();
    teams.dedup();
    if teams.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = (1..=teams.len()).map(|i| format!("(${i}::text)")).collect();
    let sql = format!(
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtext(t) AS k FROM (VALUES {}) AS v(t)) AS keys ORDER BY k",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for team in teams {
        query = query.bind(team);
    }
    query.execute(connection).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::sql::query;
    use super::*;

    /// Appends its number; 0 holds the transaction a while (so the rest queue), a negative
    /// number fails.
    struct Append(i64);

    impl WriteOp for Append {
        type Output = i64;

        async fn apply(&self, connection: &mut Conn<'_, '_>) -> Result<i64, StorageError> {
            if self.0 == 0 {
                // The batch's blocking thread is busy, as with a slow disk.
                std::thread::sleep(Duration::from_millis(100));
            }
            if self.0 < 0 {
                query("INSERT INTO no_such_table VALUES (1)")
                    .execute(&mut *connection)
                    .await?;
            }
            query("INSERT INTO appended (n) VALUES ($1)")
                .bind(self.0)
                .execute(&mut *connection)
                .await?;
            query("SELECT COUNT(*) AS n FROM appended")
                .fetch_one(&mut *connection)
                .await?
                .try_get("n")
        }
    }

    fn db() -> Db {
        Db::Sqlite(
            SqliteDb::open(
                None,
                "CREATE TABLE appended (n BIGINT NOT NULL)",
                Duration::from_secs(5),
            )
            .expect("in-memory SQLite"),
        )
    }

    /// Runs `Append(0)` (slow) and then `Append(n)` for each of `numbers` while it holds the
    /// transaction.
    async fn burst(writer: &Writer, numbers: Vec<i64>) -> Vec<Result<i64, StorageError>> {
        let first = tokio::spawn({
            let writer = writer.clone();
            async move { writer.write(Append(0)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut results =
            futures_util::future::join_all(numbers.into_iter().map(|n| writer.write(Append(n))))
                .await;
        results.insert(0, first.await.unwrap_or(Err(StorageError::WriterStopped)));
        results
    }

    #[tokio::test]
    async fn concurrent_writes_share_one_transaction() {
        let writer = Writer::spawn(db(), None);

        let results = burst(&writer, (1..50).collect()).await;

        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(
            writer.transactions(),
            2,
            "the slow first write, then the 49 queued behind it together"
        );
        assert!(
            matches!(results.last(), Some(Ok(50))),
            "each write sees the ones before it"
        );
    }

    /// Panics when applied.
    struct Panics;

    impl WriteOp for Panics {
        type Output = ();

        async fn apply(&self, _: &mut Conn<'_, '_>) -> Result<(), StorageError> {
            panic!("a bug in an operation");
        }
    }

    #[tokio::test]
    async fn a_writer_that_died_says_so_instead_of_hanging() {
        let writer = Writer::spawn(db(), None);
        assert!(writer.running());

        let died = writer.write(Panics).await;
        let after = writer.write(Append(1)).await;

        assert!(matches!(died, Err(StorageError::WriterStopped)), "{died:?}");
        assert!(
            matches!(after, Err(StorageError::WriterStopped)),
            "{after:?}"
        );
        assert!(!writer.running());
    }

    #[tokio::test]
    async fn a_failing_write_fails_alone() {
        let db = db();
        let writer = Writer::spawn(db.clone(), None);

        let results = burst(&writer, vec![1, 2, -1, 3, 4]).await;

        let failed: Vec<usize> = (0..results.len())
            .filter(|i| results[*i].is_err())
            .collect();
        assert_eq!(failed, vec![3], "only Append(-1) fails: {results:?}");
        let row = query("SELECT COUNT(*) AS n FROM appended")
            .fetch_one(&db)
            .await
            .expect("count");
        assert_eq!(row.try_get::<i64>("n").expect("n"), 5);
    }
}
