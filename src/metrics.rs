//! Prometheus metrics, served at `GET /metrics`: traffic, decisions, the cloud's latency and
//! the health of the identity provider's keys and the IAM token.

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The gateway's metrics, registered once per process.
pub struct Metrics {
    registry: Registry,
    /// Requests by route pattern, method and status.
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    /// Decision-log entries by action (`create`, `dry_run`, `delete`) and outcome.
    pub decisions: IntCounterVec,
    /// Calls to the cloud by operation and result (`ok` or the HTTP status or `transport`).
    pub cloud_calls: IntCounterVec,
    pub cloud_duration: HistogramVec,
    /// Key-set fetches from the identity provider by result (`ok`, `error`).
    pub jwks_fetches: IntCounterVec,
    /// Token introspection calls by the endpoint's HTTP status.
    pub introspections: IntCounterVec,
    /// IAM token fetches by result (`ok`, `error`).
    pub iam_token_fetches: IntCounterVec,
    /// Rows per table of the gateway's database, as of the last retention pass.
    pub storage_rows: IntGaugeVec,
    /// Rows deleted by retention, per table.
    pub storage_pruned: IntCounterVec,
    /// Operations per group-committed transaction.
    pub storage_batch_size: Histogram,
    /// Decision-log entries given up on while the database was unavailable.
    pub decisions_dropped: IntCounter,
    /// Requests refused by an employee's rate limit, by limit (`creates`, `requests`).
    pub rate_limited: IntCounterVec,
    /// Cloud calls refused because the gateway's call budget was spent, by operation.
    pub cloud_budget_exhausted: IntCounterVec,
    /// Each cloud operation's circuit breaker: 0 closed, 1 half-open, 2 open.
    pub cloud_breaker_state: IntGaugeVec,
    /// Calls not sent because their breaker was open, by operation.
    pub cloud_breaker_rejections: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Registers a metric just built; the names and labels are constants, so neither step fails.
fn registered<M: Collector + Clone + 'static>(
    registry: &Registry,
    name: &str,
    built: prometheus::Result<M>,
) -> M {
    let metric =
        built.unwrap_or_else(|error| unreachable!("metric {name} is well-formed: {error}"));
    registry
        .register(Box::new(metric.clone()))
        .unwrap_or_else(|error| unreachable!("metric {name} is registered once: {error}"));
    metric
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("starrocks_gateway")
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(registry, name, IntCounterVec::new(opts(name, help), labels))
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(registry, name, IntGaugeVec::new(opts(name, help), labels))
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::from(opts(name, help));
    registered(registry, name, HistogramVec::new(opts, labels))
}

/// Operations per batch: powers of two up to the writer's largest batch.
fn batch_histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let opts = HistogramOpts::from(opts(name, help))
        .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]);
    registered(registry, name, Histogram::with_opts(opts))
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    Metrics {
        http_requests: counter(
            &registry,
            "http_requests_total",
            "HTTP requests served",
            &["route", "method", "status"],
        ),
        http_duration: histogram(
            &registry,
            "http_request_duration_seconds",
            "HTTP request latency",
            &["route", "method"],
        ),
        decisions: counter(
            &registry,
            "decisions_total",
            "Decision-log entries",
            &["action", "outcome"],
        ),
        cloud_calls: counter(
            &registry,
            "cloud_calls_total",
            "Calls to Huawei Cloud",
            &["operation", "result"],
        ),
        rate_limited: counter(
            &registry,
            "rate_limited_total",
            "Requests refused by an employee's rate limit",
            &["limit"],
        ),
        cloud_budget_exhausted: counter(
            &registry,
            "cloud_budget_exhausted_total",
            "Cloud calls not sent because the gateway's call budget was spent",
            &["operation"],
        ),
        cloud_breaker_state: gauge(
            &registry,
            "cloud_breaker_state",
            "Circuit breaker per cloud operation: 0 closed, 1 half-open, 2 open",
            &["operation"],
        ),
        cloud_breaker_rejections: counter(
            &registry,
            "cloud_breaker_rejections_total",
            "Cloud calls not sent because their circuit breaker was open",
            &["operation"],
        ),
        cloud_duration: histogram(
            &registry,
            "cloud_call_duration_seconds",
            "Huawei Cloud latency",
            &["operation"],
        ),
        jwks_fetches: counter(
            &registry,
            "jwks_fetches_total",
            "Identity-provider key-set fetches",
            &["result"],
        ),
        introspections: counter(
            &registry,
            "token_introspections_total",
            "RFC 7662 introspection calls to the identity provider",
            &["status"],
        ),
        iam_token_fetches: counter(
            &registry,
            "iam_token_fetches_total",
            "IAM token fetches",
            &["result"],
        ),
        storage_rows: gauge(
            &registry,
            "storage_rows",
            "Rows per table of the gateway's database, as of the last retention pass",
            &["table"],
        ),
        storage_pruned: counter(
            &registry,
            "storage_pruned_rows_total",
            "Rows deleted by retention",
            &["table"],
        ),
        storage_batch_size: batch_histogram(
            &registry,
            "storage_write_batch_operations",
            "Operations per group-committed transaction",
        ),
        decisions_dropped: registered(
            &registry,
            "decisions_dropped_total",
            IntCounter::with_opts(opts(
                "decisions_dropped_total",
                "Decision-log entries given up on while the database was unavailable",
            )),
        ),
        registry,
    }
});

impl Metrics {
    /// Every metric in the Prometheus text format, and that format's media type.
    pub fn encode(&self) -> Result<(Vec<u8>, String), prometheus::Error> {
        let encoder = TextEncoder::new();
        let mut body = Vec::new();
        encoder.encode(&self.registry.gather(), &mut body)?;
        Ok((body, encoder.format_type().to_owned()))
    }
}
