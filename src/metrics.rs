//! Prometheus metrics, served at `GET /metrics`: traffic, decisions, the cloud's latency and
//! the health of the identity provider's keys and the IAM token.

use std::sync::LazyLock;

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
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help).namespace("starrocks_gateway"), labels)
        .unwrap_or_else(|error| unreachable!("metric {name} is well-formed: {error}"));
    registry
        .register(Box::new(counter.clone()))
        .unwrap_or_else(|error| unreachable!("metric {name} is registered once: {error}"));
    counter
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let gauge = IntGaugeVec::new(Opts::new(name, help).namespace("starrocks_gateway"), labels)
        .unwrap_or_else(|error| unreachable!("metric {name} is well-formed: {error}"));
    registry
        .register(Box::new(gauge.clone()))
        .unwrap_or_else(|error| unreachable!("metric {name} is registered once: {error}"));
    gauge
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let histogram = HistogramVec::new(
        HistogramOpts::new(name, help).namespace("starrocks_gateway"),
        labels,
    )
    .unwrap_or_else(|error| unreachable!("metric {name} is well-formed: {error}"));
    registry
        .register(Box::new(histogram.clone()))
        .unwrap_or_else(|error| unreachable!("metric {name} is registered once: {error}"));
    histogram
}

fn batch_histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let histogram = Histogram::with_opts(
        HistogramOpts::new(name, help)
            .namespace("starrocks_gateway")
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
    )
    .unwrap_or_else(|error| unreachable!("metric {name} is well-formed: {error}"));
    registry
        .register(Box::new(histogram.clone()))
        .unwrap_or_else(|error| unreachable!("metric {name} is registered once: {error}"));
    histogram
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
        decisions_dropped: {
            let counter = IntCounter::with_opts(
                Opts::new(
                    "decisions_dropped_total",
                    "Decision-log entries given up on while the database was unavailable",
                )
                .namespace("starrocks_gateway"),
            )
            .unwrap_or_else(|error| unreachable!("metric is well-formed: {error}"));
            registry
                .register(Box::new(counter.clone()))
                .unwrap_or_else(|error| unreachable!("metric is registered once: {error}"));
            counter
        },
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
