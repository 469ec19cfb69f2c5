//! The decision log, streamed out of the database as it is made: one JSON line per decision
//! (schema [`SCHEMA`], documented in `docs/decisions.md`) on standard output or in a file
//! rotated by size, for a SIEM or log shipper to pick up.
//!
//! Requests hand each line to a thread of its own and never wait for the disk. If that thread
//! falls [`QUEUE`] lines behind, newer lines are dropped and counted
//! (`starrocks_gateway_decisions_stream_dropped_total`): the database keeps every decision
//! either way, and `GET /v1/admin/decisions/export` can fill the gap.

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use serde::Serialize;

use super::decisions::DecisionRecord;
use crate::config::{AuditSettings, StreamTarget};
use crate::metrics::METRICS;

/// The version of a streamed or exported decision line. A change that removes or renames a
/// field, or changes a field's meaning, gets a new version.
pub const SCHEMA: &str = "starrocks-gateway.decision.v1";

/// Lines waiting for the writer thread at most.
pub const QUEUE: usize = 10_000;

/// One line: the record with the schema it follows.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    pub schema: &'static str,
    #[serde(flatten)]
    pub record: &'a DecisionRecord,
}

impl<'a> Line<'a> {
    pub fn of(record: &'a DecisionRecord) -> Self {
        Self {
            schema: SCHEMA,
            record,
        }
    }

    /// The line's JSON and its newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self)
            .unwrap_or_else(|_| unreachable!("a decision record serializes: strings, numbers"));
        bytes.push(b'\n');
        bytes
    }
}

/// The handle requests stream through; cloned freely.
#[derive(Debug, Clone)]
pub struct DecisionStream {
    lines: SyncSender<Vec<u8>>,
}

/// Why the stream could not start; names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("`audit.file` must be set when `audit.stream` is \"file\"")]
    NoFile,
    #[error("`audit.file` {path} cannot be written: {source}")]
    Unwritable {
        path: String,
        source: std::io::Error,
    },
    #[error("the decision stream's thread could not start: {0}")]
    Thread(std::io::Error),
}

impl DecisionStream {
    /// Starts the writer thread for `settings`; `None` when streaming is off.
    pub fn start(settings: &AuditSettings) -> Result<Option<Self>, StreamError> {
        let output: Box<dyn Write + Send> = match settings.stream {
            StreamTarget::Off => return Ok(None),
            StreamTarget::Stdout => Box::new(std::io::stdout()),
            StreamTarget::File => {
                let path = settings.file.as_ref().ok_or(StreamError::NoFile)?;
                // Fail at start, naming the file, rather than drop every line later.
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| StreamError::Unwritable {
                        path: path.display().to_string(),
                        source,
                    })?;
                Box::new(FileRotate::new(
                    path,
                    AppendCount::new(settings.max_files),
                    // Rotated after the line that crossed the limit: never inside a line.
                    ContentLimit::BytesSurpassed(
                        usize::try_from(settings.max_file_bytes).unwrap_or(usize::MAX),
                    ),
                    Compression::None,
                    None,
                ))
            }
        };
        let (lines, queued) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("decision-stream".into())
            .spawn(move || write_lines(&queued, output))
            .map_err(StreamError::Thread)?;
        Ok(Some(Self { lines }))
    }

    /// Queues `record`'s line; drops it (counted) when the writer is too far behind.
    pub fn send(&self, record: &DecisionRecord) {
        match self.lines.try_send(Line::of(record).to_bytes()) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                METRICS.decisions_stream_dropped.inc();
            }
        }
    }
}

/// Writes lines as they come, flushing whenever the queue runs dry; ends when every handle
/// is gone.
fn write_lines(queued: &Receiver<Vec<u8>>, output: Box<dyn Write + Send>) {
    let mut output = std::io::BufWriter::new(output);
    while let Ok(line) = queued.recv() {
        let mut written = output.write_all(&line);
        while written.is_ok()
            && let Ok(line) = queued.try_recv()
        {
            written = output.write_all(&line);
        }
        if let Err(error) = written.and_then(|()| output.flush()) {
            tracing::error!(%error, "writing the decision stream failed");
            METRICS.decisions_stream_dropped.inc();
        }
    }
}
