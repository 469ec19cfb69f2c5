//! Log output: JSON lines or human-readable text on stderr, level from `RUST_LOG`. `serve`
//! writes JSON by default (for a log shipper), the other commands text; `SRGW_LOG_FORMAT`
//! overrides either. The fields are documented in `docs/logging.md`.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// The variable that chooses the format.
pub const LOG_FORMAT_VAR: &str = "SRGW_LOG_FORMAT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            other => Err(format!(
                "{LOG_FORMAT_VAR} must be `json` or `text`, not `{other}`"
            )),
        }
    }
}

impl LogFormat {
    /// `default`, unless `SRGW_LOG_FORMAT` names another; an unknown name is an error.
    pub fn from_env_or(default: Self) -> Result<Self, String> {
        match std::env::var(LOG_FORMAT_VAR) {
            Ok(value) => value.parse(),
            Err(_) => Ok(default),
        }
    }
}

/// Installs the global subscriber once; later calls (tests) are no-ops. In JSON, an event's
/// fields are top-level keys, and `span` holds the fields of the request it belongs to
/// (request id, subject, team, decision id).
pub fn init(default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Already installed: keep the first subscriber.
    drop(result);
}

/// Puts the team a request acts for on its log lines (the request's root span).
pub fn record_team(team: &str) {
    tracing::Span::current().record("employee.team", team);
}

/// Puts the id of the request's policy decision on its log lines.
pub fn record_decision(decision_id: &str) {
    tracing::Span::current().record("decision_id", decision_id);
}
