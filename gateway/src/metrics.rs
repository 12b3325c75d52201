//! Prometheus metrics of the hub, in one registry served at `/metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Finished requests by provider and outcome (`ok` or an error kind).
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub time_to_first_token: HistogramVec,
    /// Processes by provider and state (`idle`, `busy`).
    pub processes: IntGaugeVec,
    /// Requests waiting for a free slot.
    pub queued: IntGaugeVec,
    pub spawns: IntCounterVec,
    /// Processes that died unexpectedly (crash, bad exit), by provider.
    pub crashes: IntCounterVec,
    /// Processes retired on purpose, by reason (`recycled`, `reset_failed`, `evicted`, …).
    pub retired: IntCounterVec,
    /// Session store round trips by operation.
    pub store_duration: HistogramVec,
    pub store_errors: IntCounterVec,
    pub sessions_created: IntCounterVec,
    pub sessions_expired: IntCounterVec,
    /// Sessions the in-memory store dropped to stay within `session_max_count`.
    pub sessions_evicted: prometheus::IntGauge,
    /// 1 per provider, labelled with its CLI version and where that stands (`tested`,
    /// `newer`, `too_old`, `unknown`).
    pub cli_info: IntGaugeVec,
    /// Router: attempts on workers by provider and result (`ok`, `retried`, `failed`).
    pub worker_attempts: IntCounterVec,
    /// Tool calls handed to clients, by provider.
    pub tool_calls: IntCounterVec,
    /// Requests that brought tool results, by provider and how they went on: `parked` (the
    /// process that made the calls) or `fresh` (a new process, from the transcript).
    pub tool_continuations: IntCounterVec,
    /// Router: workers by provider and state (`ready`, `limited`, `not_accepting`, `failing`,
    /// `unknown`), refreshed with each status round.
    pub workers: IntGaugeVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

const STORE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("llm_mcp_hub".into()), None)
            .expect("static metric prefix is valid");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let histogram_by = |name: &str, help: &str, label: &str, buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                &[label],
            )
            .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let histogram =
            |name: &str, help: &str| histogram_by(name, help, "provider", LATENCY_BUCKETS);
        Metrics {
            requests: counter(
                "requests_total",
                "Chat requests by provider and outcome",
                &["provider", "outcome"],
            ),
            request_duration: histogram(
                "request_duration_seconds",
                "Chat request latency, start to last byte",
            ),
            time_to_first_token: histogram(
                "time_to_first_token_seconds",
                "Latency until the first text delta",
            ),
            processes: gauge(
                "processes",
                "CLI processes by provider and state",
                &["provider", "state"],
            ),
            queued: gauge(
                "queued_requests",
                "Requests waiting for a slot",
                &["provider"],
            ),
            spawns: counter(
                "process_spawns_total",
                "CLI processes started",
                &["provider"],
            ),
            crashes: counter(
                "process_crashes_total",
                "CLI processes that died unexpectedly",
                &["provider"],
            ),
            tool_calls: counter(
                "tool_calls_total",
                "Tool calls handed to clients",
                &["provider"],
            ),
            tool_continuations: counter(
                "tool_continuations_total",
                "Requests with tool results, by how the turn went on (parked, fresh)",
                &["provider", "how"],
            ),
            retired: counter(
                "process_retired_total",
                "CLI processes retired on purpose",
                &["provider", "reason"],
            ),
            store_duration: histogram_by(
                "session_store_duration_seconds",
                "Session store round trips by operation",
                "op",
                STORE_BUCKETS,
            ),
            store_errors: counter(
                "session_store_errors_total",
                "Failed session store operations",
                &["op"],
            ),
            sessions_created: counter("sessions_created_total", "Sessions created", &["store"]),
            sessions_expired: counter(
                "sessions_expired_total",
                "Sessions whose TTL ran out, counted by the periodic sweep (once across replicas)",
                &["store"],
            ),
            sessions_evicted: {
                let g = prometheus::IntGauge::new(
                    "sessions_evicted",
                    "Sessions the in-memory store dropped at capacity, since start",
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("unique metric");
                g
            },
            cli_info: gauge(
                "cli_info",
                "The CLI version each provider runs, and whether it is in the tested range",
                &["provider", "version", "support"],
            ),
            worker_attempts: counter(
                "router_worker_attempts_total",
                "Router: attempts to run a turn on a worker, by result",
                &["provider", "result"],
            ),
            workers: gauge(
                "router_workers",
                "Router: discovered workers by provider and state",
                &["provider", "state"],
            ),
            registry,
        }
    }

    /// The series of `provider` that change on every request, looked up once: a labelled
    /// lookup hashes the labels and takes a lock each time.
    pub fn provider_series(&self, provider: &str) -> ProviderSeries {
        ProviderSeries {
            idle: self.processes.with_label_values(&[provider, "idle"]),
            busy: self.processes.with_label_values(&[provider, "busy"]),
            queued: self.queued.with_label_values(&[provider]),
            answered: self.requests.with_label_values(&[provider, "ok"]),
            request_duration: self.request_duration.with_label_values(&[provider]),
            time_to_first_token: self.time_to_first_token.with_label_values(&[provider]),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding to a Vec cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

/// One provider's per-request series (see [`Metrics::provider_series`]).
pub struct ProviderSeries {
    pub idle: IntGauge,
    pub busy: IntGauge,
    pub queued: IntGauge,
    /// `requests_total{outcome="ok"}`.
    pub answered: IntCounter,
    pub request_duration: Histogram,
    pub time_to_first_token: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
