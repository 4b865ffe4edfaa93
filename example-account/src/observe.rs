//! What the app shows an operator of its durable receivers: traces from a save to its
//! receiver (`--trace`: spans printed to stderr, one line each, with their W3C trace ids),
//! and the runners' metrics in Prometheus' text format (`relay` / `worker --metrics-bind`).

use std::sync::Arc;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::Error;

/// Prints each finished span to stderr on one line: its name, trace, span and parent ids,
/// whether the parent came from another process, and its duration.
#[derive(Debug)]
struct StderrSpans;

impl SpanExporter for StderrSpans {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        for span in batch {
            let took = span
                .end_time
                .duration_since(span.start_time)
                .unwrap_or_default();
            eprintln!(
                "span {} trace={} span={} parent={}{} {:.1} ms",
                span.name,
                span.span_context.trace_id(),
                span.span_context.span_id(),
                span.parent_span_id,
                if span.parent_span_is_remote {
                    " (from another process)"
                } else {
                    ""
                },
                took.as_secs_f64() * 1000.0
            );
        }
        std::future::ready(Ok(()))
    }
}

/// What `install` set up; dropped at exit, it flushes the spans.
#[derive(Debug)]
pub struct Installed {
    tracer: Option<SdkTracerProvider>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Some(tracer) = self.tracer.take() {
            let _ = tracer.shutdown();
        }
    }
}

/// Logs at `INFO` to stderr when `log` (the long-running commands), and with `trace` exports
/// every span to stderr through OpenTelemetry, propagating the W3C trace context (durable
/// events carry it from the save to the receiver's span).
pub fn install(log: bool, trace: bool) -> Installed {
    let fmt = log.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    let level = tracing_subscriber::filter::LevelFilter::INFO;
    // sqlx's notices (PostgreSQL's "relation already exists, skipping") are not news.
    let logged = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target("sqlx", tracing_subscriber::filter::LevelFilter::WARN);
    let tracer = trace.then(|| {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        SdkTracerProvider::builder()
            .with_simple_exporter(StderrSpans)
            .build()
    });
    let otel = tracer.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer("example-account"))
    });
    let _ = tracing_subscriber::registry()
        .with(fmt.map(|f| tracing_subscriber::Layer::with_filter(f, logged)))
        .with(otel.map(|o| tracing_subscriber::Layer::with_filter(o, level)))
        .try_init();
    Installed { tracer }
}

/// Records the runners' metrics (the `metrics` facade) for [`serve_metrics`].
pub fn install_metrics() -> Result<PrometheusHandle, Error> {
    PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| Error::Config(format!("cannot record metrics: {e}")))
}

/// Serves `GET /metrics` in Prometheus' text format on `bind` until the process ends.
pub async fn serve_metrics(bind: &str, handle: PrometheusHandle) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {bind}: {e}")))?;
    let handle = Arc::new(handle);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    eprintln!("metrics at http://{bind}/metrics");
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "the metrics server stopped");
        }
    });
    Ok(())
}
