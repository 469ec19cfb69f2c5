//! Prometheus metrics, served at `GET /metrics`: traffic, decisions, the cloud's latency and
//! the health of the identity provider's keys and the IAM token.

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The gateway's metrics, registered once per process.
pub struct Metrics {
    registry: Registry,
    /// Every metric's full name, for the documentation's test.
    names: Vec<String>,
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
    /// Decision lines the stream (`audit.stream`) could not keep up with or write.
    pub decisions_stream_dropped: IntCounter,
    /// Requests refused by an employee's rate limit, by limit (`creates`, `requests`).
    pub rate_limited: IntCounterVec,
    /// Cloud calls refused because the gateway's call budget was spent, by operation.
    pub cloud_budget_exhausted: IntCounterVec,
    /// Each cloud operation's circuit breaker: 0 closed, 1 half-open, 2 open.
    pub cloud_breaker_state: IntGaugeVec,
    /// Calls not sent because their breaker was open, by operation.
    pub cloud_breaker_rejections: IntCounterVec,
    /// Read when scraped: each policy team's usage and limit, by dimension (`instances`,
    /// `nodes`, `storage_gb`). Teams come from the policy, so the label set is bounded.
    pub quota_used: IntGaugeVec,
    pub quota_limit: IntGaugeVec,
    /// Read when scraped: creates whose outcome is not known yet, and the oldest one's age.
    pub reservations_pending: IntGauge,
    pub reservations_pending_oldest_seconds: Gauge,
    /// Read when scraped: exception requests waiting for an approver, by policy team.
    pub exception_requests_pending: IntGaugeVec,
    /// Read when scraped: instances whose lease ends within the warning, by policy team.
    pub instances_expiring: IntGaugeVec,
    /// Read when scraped: how long each region's cached IAM token has left (`-1`: none
    /// cached); regions whose account signs with an access key have none.
    pub iam_token_expires_in_seconds: GaugeVec,
    /// Read when scraped: the identity provider's keys in use, and how old that set is
    /// (`-1`: none loaded).
    pub jwks_keys: IntGauge,
    pub jwks_age_seconds: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The registry, and the name of every metric registered in it: the registry's own listing
/// leaves out labelled metrics that have no series yet.
#[derive(Default)]
struct Registrar {
    registry: Registry,
    names: std::cell::RefCell<Vec<String>>,
}

/// Registers a metric just built; the names and labels are constants, so neither step fails.
fn registered<M: Collector + Clone + 'static>(
    registry: &Registrar,
    name: &str,
    built: prometheus::Result<M>,
) -> M {
    let metric =
        built.unwrap_or_else(|error| unreachable!("metric {name} is well-formed: {error}"));
    registry
        .registry
        .register(Box::new(metric.clone()))
        .unwrap_or_else(|error| unreachable!("metric {name} is registered once: {error}"));
    registry
        .names
        .borrow_mut()
        .extend(metric.desc().iter().map(|desc| desc.fq_name.clone()));
    metric
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("starrocks_gateway")
}

fn counter(registry: &Registrar, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(registry, name, IntCounterVec::new(opts(name, help), labels))
}

fn gauge(registry: &Registrar, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(registry, name, IntGaugeVec::new(opts(name, help), labels))
}

fn histogram(registry: &Registrar, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::from(opts(name, help));
    registered(registry, name, HistogramVec::new(opts, labels))
}

/// Operations per batch: powers of two up to the writer's largest batch.
fn batch_histogram(registry: &Registrar, name: &str, help: &str) -> Histogram {
    let opts = HistogramOpts::from(opts(name, help))
        .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]);
    registered(registry, name, Histogram::with_opts(opts))
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registrar::default();
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
            &["region", "operation", "result"],
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
            &["region", "operation"],
        ),
        cloud_breaker_state: gauge(
            &registry,
            "cloud_breaker_state",
            "Circuit breaker per cloud operation: 0 closed, 1 half-open, 2 open",
            &["region", "operation"],
        ),
        cloud_breaker_rejections: counter(
            &registry,
            "cloud_breaker_rejections_total",
            "Cloud calls not sent because their circuit breaker was open",
            &["region", "operation"],
        ),
        cloud_duration: histogram(
            &registry,
            "cloud_call_duration_seconds",
            "Huawei Cloud latency",
            &["region", "operation"],
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
        decisions_stream_dropped: registered(
            &registry,
            "decisions_stream_dropped_total",
            IntCounter::with_opts(opts(
                "decisions_stream_dropped_total",
                "Decision lines the stream could not keep up with or write",
            )),
        ),
        quota_used: gauge(
            &registry,
            "quota_used",
            "A team's usage (pending, committed and deleting reservations), by dimension",
            &["team", "dimension"],
        ),
        quota_limit: gauge(
            &registry,
            "quota_limit",
            "A team's quota in the policy, by dimension",
            &["team", "dimension"],
        ),
        exception_requests_pending: gauge(
            &registry,
            "exception_requests_pending",
            "Exception requests waiting for an approver, by team",
            &["team"],
        ),
        instances_expiring: gauge(
            &registry,
            "instances_expiring",
            "Instances whose lease ends within lease_warning_hours, by team",
            &["team"],
        ),
        reservations_pending: registered(
            &registry,
            "reservations_pending",
            IntGauge::with_opts(opts(
                "reservations_pending",
                "Creates whose outcome the cloud has not confirmed yet",
            )),
        ),
        reservations_pending_oldest_seconds: registered(
            &registry,
            "reservations_pending_oldest_seconds",
            Gauge::with_opts(opts(
                "reservations_pending_oldest_seconds",
                "Age of the oldest pending reservation (0 when there is none)",
            )),
        ),
        iam_token_expires_in_seconds: registered(
            &registry,
            "iam_token_expires_in_seconds",
            GaugeVec::new(
                opts(
                    "iam_token_expires_in_seconds",
                    "Remaining lifetime of each region's cached IAM token (-1 when none is cached)",
                ),
                &["region"],
            ),
        ),
        jwks_keys: registered(
            &registry,
            "jwks_keys",
            IntGauge::with_opts(opts("jwks_keys", "Identity-provider signing keys in use")),
        ),
        jwks_age_seconds: registered(
            &registry,
            "jwks_age_seconds",
            Gauge::with_opts(opts(
                "jwks_age_seconds",
                "Age of the identity provider's key set in use (-1 when none is loaded)",
            )),
        ),
        names: registry.names.take(),
        registry: registry.registry,
    }
});

impl Metrics {
    /// The full name of every metric, with or without series.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Every metric in the Prometheus text format, and that format's media type.
    pub fn encode(&self) -> Result<(Vec<u8>, String), prometheus::Error> {
        let encoder = TextEncoder::new();
        let mut body = Vec::new();
        encoder.encode(&self.registry.gather(), &mut body)?;
        Ok((body, encoder.format_type().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_documented_and_nothing_else_is() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md");
        let page = std::fs::read_to_string(path).expect("docs/metrics.md");
        let documented: std::collections::BTreeSet<&str> = page
            .lines()
            .filter_map(|line| line.strip_prefix("| `starrocks_gateway_"))
            .filter_map(|rest| rest.split_once('`'))
            .map(|(name, _)| name)
            .collect();
        let in_code: std::collections::BTreeSet<&str> = METRICS
            .names()
            .iter()
            .map(|name| name.strip_prefix("starrocks_gateway_").expect("namespaced"))
            .collect();
        assert_eq!(in_code.len(), METRICS.names().len(), "no name twice");
        let undocumented: Vec<_> = in_code.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&in_code).collect();
        assert!(
            undocumented.is_empty(),
            "missing from docs/metrics.md: {undocumented:?}"
        );
        assert!(
            unknown.is_empty(),
            "docs/metrics.md lists metrics the code lacks: {unknown:?}"
        );
    }
}
