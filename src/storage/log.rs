//! The decision log's background writer, for requests that changed nothing: dry-runs,
//! refusals, failures before anything was reserved. Their entries are buffered and written in
//! one transaction per [`FLUSH_INTERVAL`] (or sooner, at [`FLUSH_ROWS`]), through the group
//! writer, so such a request pays no commit at all. The price is a bounded loss window: a
//! crash loses at most the entries of the last [`FLUSH_INTERVAL`] plus one commit. A graceful
//! shutdown and every read of the log flush first, so nothing buffered is ever missing from
//! an answer. Entries of requests that changed the ledger are not written here: they commit
//! with that change ([`super::ledger::Finish`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use super::decisions::{AppendDecisions, DecisionRecord};
use super::writer::Writer;
use crate::metrics::METRICS;

/// The longest an entry waits in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// How long a failed write waits before it is tried again.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// A buffer this full is written at once.
const FLUSH_ROWS: usize = 1_000;
/// Entries kept while the database is unavailable or behind; beyond it the oldest are
/// dropped (and counted), so an outage cannot exhaust memory.
const MAX_PENDING: usize = 50_000;

/// What requests and the background writer share. Appending takes a lock for a push and wakes
/// nobody (the writer wakes on its own every [`FLUSH_INTERVAL`]), so logging costs a request
/// no context switch.
#[derive(Debug, Default)]
struct Buffer {
    entries: Mutex<VecDeque<DecisionRecord>>,
    full: Notify,
}

/// The handle requests log through; cloned freely.
#[derive(Debug, Clone)]
pub struct DecisionLog {
    buffer: Arc<Buffer>,
    flushes: mpsc::Sender<oneshot::Sender<()>>,
}

impl DecisionLog {
    /// Starts the background writer on the current runtime; it ends when every handle is
    /// dropped, after a last write.
    pub fn spawn(writer: Writer) -> Self {
        let buffer = Arc::new(Buffer::default());
        let (flushes, requests) = mpsc::channel(64);
        tokio::spawn(run(writer, buffer.clone(), requests));
        Self { buffer, flushes }
    }

    /// Buffers `record`.
    pub fn append(&self, record: DecisionRecord) {
        let mut entries = self
            .buffer
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        entries.push_back(record);
        if entries.len() == FLUSH_ROWS {
            self.buffer.full.notify_one();
        }
        if entries.len() > MAX_PENDING {
            entries.pop_front();
            METRICS.decisions_dropped.inc();
        }
    }

    /// Returns once everything appended before the call has been written (or given up on).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.flushes.send(done).await.is_ok() {
            drop(written.await);
        }
    }
}

async fn run(
    writer: Writer,
    buffer: Arc<Buffer>,
    mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let mut wait = FLUSH_INTERVAL;
    loop {
        let mut waiting = Vec::new();
        let closed = tokio::select! {
            () = tokio::time::sleep(wait) => false,
            () = buffer.full.notified() => false,
            request = flushes.recv() => match request {
                Some(done) => {
                    waiting.push(done);
                    false
                }
                None => true,
            },
        };
        let rows = std::mem::take(
            &mut *buffer
                .entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        wait = match write(&writer, rows.into()).await {
            Ok(()) => FLUSH_INTERVAL,
            Err(rows) => {
                // Back in front of what arrived meanwhile, oldest first.
                let mut entries = buffer
                    .entries
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let newer = std::mem::replace(&mut *entries, rows.into());
                entries.extend(newer);
                let excess = entries.len().saturating_sub(MAX_PENDING);
                entries.drain(..excess);
                METRICS
                    .decisions_dropped
                    .inc_by(u64::try_from(excess).unwrap_or(u64::MAX));
                RETRY_INTERVAL
            }
        };
        // A flusher that gave up needs no answer.
        waiting.drain(..).for_each(|done| _ = done.send(()));
        if closed {
            return;
        }
    }
}

/// Writes `rows`; gives them back when the write failed.
async fn write(writer: &Writer, rows: Vec<DecisionRecord>) -> Result<(), Vec<DecisionRecord>> {
    if rows.is_empty() {
        return Ok(());
    }
    let rows = Arc::new(rows);
    match writer.write(AppendDecisions(rows.clone())).await {
        Ok(()) => Ok(()),
        Err(error) => {
            tracing::error!(error = ?error, entries = rows.len(), "writing the decision log failed; retrying");
            Err(Arc::try_unwrap(rows).unwrap_or_else(|rows| rows.as_ref().clone()))
        }
    }
}
