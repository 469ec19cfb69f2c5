//! The decision log's background writer, for requests that changed nothing: dry-runs,
//! refusals, failures before anything was reserved. Their entries are buffered and written in
//! one statement per [`FLUSH_INTERVAL`] (or sooner, at [`FLUSH_ROWS`]), through the group
//! writer, so such a request pays no commit at all. The price is a bounded loss window: a
//! crash loses at most the entries of the last [`FLUSH_INTERVAL`] plus one commit. A graceful
//! shutdown and every read of the log flush first, so nothing buffered is ever missing from
//! an answer. Entries of requests that changed the ledger are not written here: they commit
//! with that change ([`super::ledger::Finish`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::decisions::{AppendDecisions, DecisionRecord};
use super::writer::Writer;
use crate::metrics::METRICS;

/// The longest an entry waits in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// How long a failed write waits before it is tried again.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// A buffer this full is written at once.
const FLUSH_ROWS: usize = 1_000;
/// Entries kept while the database is unavailable; beyond it the oldest are dropped (and
/// counted), so an outage cannot exhaust memory.
const MAX_PENDING: usize = 50_000;

enum Message {
    Record(Box<DecisionRecord>),
    Flush(oneshot::Sender<()>),
}

/// The handle requests log through; cloned freely.
#[derive(Debug, Clone)]
pub struct DecisionLog {
    queue: mpsc::Sender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Record(_) => "Record",
            Self::Flush(_) => "Flush",
        })
    }
}

impl DecisionLog {
    /// Starts the background writer on the current runtime.
    pub fn spawn(writer: Writer) -> Self {
        let (queue, messages) = mpsc::channel(FLUSH_ROWS * 4);
        tokio::spawn(run(writer, messages));
        Self { queue }
    }

    /// Buffers `record`; waits only when the buffer is full (the database is behind).
    pub async fn append(&self, record: DecisionRecord) {
        if self
            .queue
            .send(Message::Record(Box::new(record)))
            .await
            .is_err()
        {
            tracing::error!("the decision log has stopped; an entry is lost");
        }
    }

    /// Returns once everything appended before the call has been written (or given up on).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            drop(written.await);
        }
    }
}

async fn run(writer: Writer, mut messages: mpsc::Receiver<Message>) {
    let mut buffer: Vec<DecisionRecord> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut deadline: Option<Instant> = None;
    loop {
        let message = match deadline {
            Some(at) => tokio::time::timeout_at(at, messages.recv()).await.ok(),
            None => Some(messages.recv().await),
        };
        let closed = matches!(message, Some(None));
        match message.flatten() {
            Some(Message::Record(record)) => {
                buffer.push(*record);
                deadline.get_or_insert_with(|| Instant::now() + FLUSH_INTERVAL);
                if buffer.len() < FLUSH_ROWS {
                    continue;
                }
            }
            Some(Message::Flush(done)) => waiting.push(done),
            None => {}
        }
        let retry = if write(&writer, &mut buffer).await {
            FLUSH_INTERVAL
        } else {
            RETRY_INTERVAL
        };
        deadline = (!buffer.is_empty()).then(|| Instant::now() + retry);
        // A flusher that gave up needs no answer.
        waiting.drain(..).for_each(|done| _ = done.send(()));
        if closed {
            return;
        }
    }
}

/// Writes the buffer; on failure keeps it for the next attempt, up to [`MAX_PENDING`].
/// False when the write failed.
async fn write(writer: &Writer, buffer: &mut Vec<DecisionRecord>) -> bool {
    if buffer.is_empty() {
        return true;
    }
    let rows = Arc::new(std::mem::take(buffer));
    let count = rows.len();
    match writer.write(AppendDecisions(rows.clone())).await {
        Ok(()) => true,
        Err(error) => {
            *buffer = Arc::try_unwrap(rows).unwrap_or_else(|rows| rows.as_ref().clone());
            let excess = buffer.len().saturating_sub(MAX_PENDING);
            buffer.drain(..excess);
            METRICS
                .decisions_dropped
                .inc_by(u64::try_from(excess).unwrap_or(u64::MAX));
            tracing::error!(error = ?error, entries = count, dropped = excess, "writing the decision log failed; retrying");
            false
        }
    }
}
