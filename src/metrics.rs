//! chat_server's Prometheus metrics: one registry for the process, updated
//! where things happen, read by `/metrics` (see `server::ops_http`). Names
//! and meanings are listed in docs/metrics-and-probes.md.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// `chatp_connections{state="authenticating"|"logged_in"}`
    pub connections: IntGaugeVec,
    /// `chatp_logins_total{result="ok"|"failed"|"resumed"|"signup"}`
    pub logins: IntCounterVec,
    /// `chatp_messages_stored_total{kind}`
    pub stored: IntCounterVec,
    /// `chatp_store_seconds{kind}`: from the request to the commit.
    pub store_seconds: HistogramVec,
    /// `chatp_notifications_delivered_total{kind}`: lines queued for a
    /// session on this pod.
    pub delivered: IntCounterVec,
    /// `chatp_rate_limited_total{kind}`
    pub rate_limited: IntCounterVec,
    /// `chatp_outbound_queue_drops_total`: clients disconnected for not
    /// reading.
    pub outbound_drops: IntCounter,
    /// `chatp_storage_errors_total{service="postgresql"|"redis"}`
    pub storage_errors: IntCounterVec,
    /// `chatp_hash_queue_depth`: passwords waiting for a hashing worker.
    pub hash_queue: IntGauge,
    /// `chatp_tls_handshakes_total{result="ok"|"failed"|"timeout"}`
    pub tls_handshakes: IntCounterVec,
    /// `chatp_tls_certificate_reloads_total{result="ok"|"failed"}`
    pub tls_reloads: IntCounterVec,
    /// `chatp_sessions_ended_by_admin_total`: sessions closed because their
    /// user was disabled, deleted or changed password.
    pub admin_kicks: IntCounter,
    /// `chatp_thread_panics_total`: connection threads that panicked (the
    /// connection was closed and what it held given back; the pod serves on).
    pub thread_panics: IntCounter,
    /// `chatp_admin_messages_refused_total{why="malformed"|"bad_signature"|"stale"}`:
    /// messages on the admin channel not obeyed.
    pub admin_refused: IntCounterVec,
}

/// `metric`, registered in `registry` (both fail only on a programming
/// error: a bad name, or a name used twice).
fn registered<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<C>,
) -> C {
    let metric = metric.expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("registered once");
    metric
}

fn labelled_counter(registry: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    registered(registry, IntCounterVec::new(Opts::new(name, help), &[label]))
}

/// The Prometheus text format of everything in `registry`.
fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let metrics = Metrics {
        connections: registered(
            &registry,
            IntGaugeVec::new(Opts::new("chatp_connections", "Open client connections by state"), &["state"]),
        ),
        logins: labelled_counter(&registry, "chatp_logins_total", "Authentications by result", "result"),
        stored: labelled_counter(&registry, "chatp_messages_stored_total", "Messages committed by kind", "kind"),
        store_seconds: registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new("chatp_store_seconds", "Time from a message's arrival to its commit")
                    .buckets(vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0]),
                &["kind"],
            ),
        ),
        delivered: labelled_counter(
            &registry,
            "chatp_notifications_delivered_total",
            "Notifications queued for sessions on this pod, by kind",
            "kind",
        ),
        rate_limited: labelled_counter(
            &registry,
            "chatp_rate_limited_total",
            "Messages refused by a rate limit, by kind",
            "kind",
        ),
        outbound_drops: registered(
            &registry,
            IntCounter::new(
                "chatp_outbound_queue_drops_total",
                "Clients disconnected because their outbound queue was full",
            ),
        ),
        storage_errors: labelled_counter(
            &registry,
            "chatp_storage_errors_total",
            "Failed PostgreSQL and Redis operations",
            "service",
        ),
        hash_queue: registered(
            &registry,
            IntGauge::new("chatp_hash_queue_depth", "Passwords waiting for a hashing worker"),
        ),
        tls_handshakes: labelled_counter(
            &registry,
            "chatp_tls_handshakes_total",
            "TLS handshakes on the chat port by result",
            "result",
        ),
        tls_reloads: labelled_counter(
            &registry,
            "chatp_tls_certificate_reloads_total",
            "Certificate files read again after a change, by result",
            "result",
        ),
        admin_kicks: registered(
            &registry,
            IntCounter::new(
                "chatp_sessions_ended_by_admin_total",
                "Sessions closed because their user was disabled, deleted or changed password",
            ),
        ),
        admin_refused: labelled_counter(
            &registry,
            "chatp_admin_messages_refused_total",
            "Messages on the admin channel not obeyed: malformed, not signed with this deployment's key, or stale",
            "why",
        ),
        thread_panics: registered(
            &registry,
            IntCounter::new(
                "chatp_thread_panics_total",
                "Connection threads that panicked; each closed its connection and gave back what it held",
            ),
        ),
        registry,
    };
    export_known_labels(&metrics);
    metrics
});

/// The kinds of message the `kind` label takes (`MessageKind::as_str`,
/// `Outgoing::label`).
pub const MESSAGE_KINDS: [&str; 3] = ["private", "group", "broadcast"];

/// Every label value each family of chat_server takes, so that each series
/// exists at 0 from the start (`rate()` and alerts work before the first
/// event).
fn export_known_labels(m: &Metrics) {
    for state in ["authenticating", "logged_in"] {
        m.connections.with_label_values(&[state]);
    }
    for result in ["ok", "failed", "resumed", "signup", "refused"] {
        m.logins.with_label_values(&[result]);
    }
    for kind in MESSAGE_KINDS {
        m.stored.with_label_values(&[kind]);
        m.store_seconds.with_label_values(&[kind]);
        m.delivered.with_label_values(&[kind]);
        m.rate_limited.with_label_values(&[kind]);
    }
    for service in ["postgresql", "redis"] {
        m.storage_errors.with_label_values(&[service]);
    }
    for result in ["ok", "failed", "timeout"] {
        m.tls_handshakes.with_label_values(&[result]);
    }
    for result in ["ok", "failed"] {
        m.tls_reloads.with_label_values(&[result]);
    }
    for why in ["malformed", "bad_signature", "stale"] {
        m.admin_refused.with_label_values(&[why]);
    }
}

impl Metrics {
    /// The Prometheus text format of everything.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// chat_autoscaler's metrics.
pub struct AutoscalerMetrics {
    registry: Registry,
    /// `chatp_autoscaler_users`: users counted at the last tick.
    pub users: IntGauge,
    /// `chatp_autoscaler_replicas{of="current"|"desired"|"target"}`
    pub replicas: IntGaugeVec,
    /// `chatp_autoscaler_decisions_total{action}`
    pub decisions: IntCounterVec,
    /// `chatp_autoscaler_errors_total{source="redis"|"kubernetes"}`
    pub errors: IntCounterVec,
}

pub static AUTOSCALER_METRICS: LazyLock<AutoscalerMetrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let metrics = AutoscalerMetrics {
        users: registered(&registry, IntGauge::new("chatp_autoscaler_users", "Users online at the last count")),
        replicas: registered(
            &registry,
            IntGaugeVec::new(
                Opts::new("chatp_autoscaler_replicas", "Replicas of the chat Deployment: current, desired, target"),
                &["of"],
            ),
        ),
        decisions: labelled_counter(&registry, "chatp_autoscaler_decisions_total", "Decisions by action", "action"),
        errors: labelled_counter(&registry, "chatp_autoscaler_errors_total", "Failed ticks by source", "source"),
        registry,
    };
    // Counters exist at 0 from the start, as chat_server's.
    for action in AUTOSCALER_ACTIONS {
        metrics.decisions.with_label_values(&[action]);
    }
    for source in ["redis", "kubernetes"] {
        metrics.errors.with_label_values(&[source]);
    }
    metrics
});

/// The actions `chatp_autoscaler_decisions_total` counts (`Action::label`).
pub const AUTOSCALER_ACTIONS: [&str; 5] = ["up", "down", "pending-down", "none", "paused"];

impl AutoscalerMetrics {
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}
