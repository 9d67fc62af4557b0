//! Prometheus metrics: every counter and histogram registered once, here, and a small named
//! function for each thing that is counted, so the rest of the code never spells a metric's
//! name or a label.
//!
//! Counters and histograms count what this process did (with several instances on one
//! PostgreSQL database, each instance counts its own). The gauges read from the database at
//! each scrape (jobs pending and dead) are the database's, so with several instances they are
//! the cluster's, the same on every instance. The `prometheus` crate writes the text format
//! and adds the process basics (CPU, memory, open files) on Linux.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::meta::graph::ErrorClass;

/// What became of a `POST /webhook`.
#[derive(Debug, Clone, Copy)]
pub enum WebhookOutcome {
    /// Stored, and answered 200.
    Accepted,
    /// Missing or wrong signature: 403, nothing stored.
    BadSignature,
    /// Over the size limit: 413.
    TooLarge,
    /// The body could not be read: 400.
    BadRequest,
    /// The database could not take it: 503 or 500, Meta sends it again.
    NotStored,
}

impl WebhookOutcome {
    fn label(self) -> &'static str {
        match self {
            WebhookOutcome::Accepted => "accepted",
            WebhookOutcome::BadSignature => "bad_signature",
            WebhookOutcome::TooLarge => "too_large",
            WebhookOutcome::BadRequest => "bad_request",
            WebhookOutcome::NotStored => "not_stored",
        }
    }
}

/// What became of one delivery to a forwarding destination.
#[derive(Debug, Clone, Copy)]
pub enum ForwardOutcome {
    Delivered,
    /// Failed this time; it will be tried again.
    Retried,
    /// Given up on.
    Dead,
}

impl ForwardOutcome {
    fn label(self) -> &'static str {
        match self {
            ForwardOutcome::Delivered => "delivered",
            ForwardOutcome::Retried => "retried",
            ForwardOutcome::Dead => "dead",
        }
    }
}

/// The labels Graph calls are counted under: `ok`, or the class of the error.
fn graph_label(outcome: Result<(), ErrorClass>) -> &'static str {
    match outcome {
        Ok(()) => "ok",
        Err(ErrorClass::Transient) => "transient",
        Err(ErrorClass::RateLimited) => "rate_limited",
        Err(ErrorClass::Token) => "token",
        Err(ErrorClass::Permission) => "permission",
        Err(ErrorClass::Permanent) => "permanent",
    }
}

/// Every metric, registered once in one registry.
struct Metrics {
    registry: Registry,
    webhooks: IntCounterVec,
    leads_saved: IntCounterVec,
    leads_erased: IntCounter,
    graph_calls: IntCounterVec,
    graph_seconds: Histogram,
    save_to_stream_seconds: Histogram,
    forward_deliveries: IntCounterVec,
    jobs_pending: IntGauge,
    jobs_dead: IntGauge,
    open_streams: IntGauge,
}

/// Buckets for waits that are milliseconds when all is well and seconds when it is not.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    // Our metrics are named `leadstream_*`; the process basics keep their usual `process_*`.
    let registry = Registry::new();
    fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
        r.register(Box::new(c.clone())).expect("registered once");
        c
    }
    fn histogram(r: &Registry, name: &str, help: &str) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
        let h = Histogram::with_opts(opts).expect("valid histogram");
        r.register(Box::new(h.clone())).expect("registered once");
        h
    }
    fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
        let g = IntGauge::new(name, help).expect("valid gauge");
        r.register(Box::new(g.clone())).expect("registered once");
        g
    }
    let m = Metrics {
        webhooks: counter_vec(
            &registry,
            "leadstream_webhooks_total",
            "POST /webhook requests by outcome.",
            &["outcome"],
        ),
        leads_saved: counter_vec(
            &registry,
            "leadstream_leads_saved_total",
            "Leads this instance saved, by source (webhook, sync, demo).",
            &["source"],
        ),
        leads_erased: {
            let c = IntCounter::new(
                "leadstream_leads_erased_total",
                "Leads erased, by hand or by the retention period.",
            )
            .expect("valid counter");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        },
        graph_calls: counter_vec(
            &registry,
            "leadstream_graph_calls_total",
            "Calls to Meta's Graph API by outcome (ok or the class of the error).",
            &["outcome"],
        ),
        graph_seconds: histogram(
            &registry,
            "leadstream_graph_call_duration_seconds",
            "How long calls to Meta's Graph API took.",
        ),
        save_to_stream_seconds: histogram(
            &registry,
            "leadstream_save_to_stream_seconds",
            "From a lead's save to its frame handed to the open streams.",
        ),
        forward_deliveries: counter_vec(
            &registry,
            "leadstream_forward_deliveries_total",
            "Deliveries to forwarding destinations by outcome.",
            &["outcome"],
        ),
        jobs_pending: gauge(
            &registry,
            "leadstream_jobs_pending",
            "Leads waiting to be fetched from Graph (the database's count).",
        ),
        jobs_dead: gauge(
            &registry,
            "leadstream_jobs_dead",
            "Dead letters: leads set aside after Graph refused them (the database's count).",
        ),
        open_streams: gauge(
            &registry,
            "leadstream_open_streams",
            "Dashboard streams open on this instance.",
        ),
        registry,
    };
    // Every outcome shows from the start at 0, so an alert on a rate sees the first one.
    for o in [
        WebhookOutcome::Accepted,
        WebhookOutcome::BadSignature,
        WebhookOutcome::TooLarge,
        WebhookOutcome::BadRequest,
        WebhookOutcome::NotStored,
    ] {
        m.webhooks.with_label_values(&[o.label()]);
    }
    for o in [Ok(()), Err(ErrorClass::Transient), Err(ErrorClass::Token)] {
        m.graph_calls.with_label_values(&[graph_label(o)]);
    }
    for o in [
        ForwardOutcome::Delivered,
        ForwardOutcome::Retried,
        ForwardOutcome::Dead,
    ] {
        m.forward_deliveries.with_label_values(&[o.label()]);
    }
    #[cfg(target_os = "linux")]
    {
        let process = prometheus::process_collector::ProcessCollector::for_self();
        m.registry
            .register(Box::new(process))
            .expect("registered once");
    }
    m
});

/// One `POST /webhook` answered.
pub fn webhook(outcome: WebhookOutcome) {
    METRICS.webhooks.with_label_values(&[outcome.label()]).inc();
}

/// `n` leads saved by this instance from `source` (`webhook`, `sync` or `demo`).
pub fn leads_saved(source: &str, n: u64) {
    if n > 0 {
        METRICS.leads_saved.with_label_values(&[source]).inc_by(n);
    }
}

/// `n` leads erased.
pub fn leads_erased(n: u64) {
    METRICS.leads_erased.inc_by(n);
}

/// One call to Graph, how it ended and how long it took.
pub fn graph_call(outcome: Result<(), ErrorClass>, took: Duration) {
    METRICS
        .graph_calls
        .with_label_values(&[graph_label(outcome)])
        .inc();
    METRICS.graph_seconds.observe(took.as_secs_f64());
}

/// A lead's frame handed to the streams `since_save` after the lead was saved.
pub fn published(since_save: Duration) {
    METRICS
        .save_to_stream_seconds
        .observe(since_save.as_secs_f64());
}

/// One delivery to a forwarding destination.
pub fn forward_delivery(outcome: ForwardOutcome) {
    METRICS
        .forward_deliveries
        .with_label_values(&[outcome.label()])
        .inc();
}

/// What a scrape reads at that moment rather than counts as it happens.
pub struct Gauges {
    pub jobs_pending: i64,
    pub jobs_dead: i64,
    pub open_streams: usize,
}

/// Every metric in Prometheus' text format, with `gauges` as read for this scrape.
pub fn render(gauges: &Gauges) -> Result<String, String> {
    let m = &*METRICS;
    m.jobs_pending.set(gauges.jobs_pending);
    m.jobs_dead.set(gauges.jobs_dead);
    m.open_streams.set(gauges.open_streams as i64);
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&m.registry.gather(), &mut out)
        .map_err(|e| format!("could not write the metrics: {e}"))?;
    String::from_utf8(out).map_err(|e| format!("could not write the metrics: {e}"))
}

/// The text format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_things_show_in_the_text_format() {
        webhook(WebhookOutcome::Accepted);
        leads_saved("sync", 2);
        graph_call(Err(ErrorClass::RateLimited), Duration::from_millis(30));
        let text = render(&Gauges {
            jobs_pending: 3,
            jobs_dead: 1,
            open_streams: 2,
        })
        .unwrap();
        for line in [
            "leadstream_jobs_pending 3",
            "leadstream_jobs_dead 1",
            "leadstream_open_streams 2",
            "leadstream_webhooks_total{outcome=\"bad_signature\"}",
            "leadstream_graph_calls_total{outcome=\"rate_limited\"}",
            "leadstream_leads_saved_total{source=\"sync\"}",
            "leadstream_graph_call_duration_seconds_bucket{le=\"0.05\"}",
            "leadstream_forward_deliveries_total{outcome=\"dead\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
