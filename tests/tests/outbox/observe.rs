//! What an operator sees of durable receivers (issue 30, item 4): the runners' metrics
//! through the `metrics` facade, and one trace from `save()` to the receiver's span, its W3C
//! context carried in the outbox row and the broker message. On SQLite, PostgreSQL and MySQL,
//! in-process and through the broker.

use std::sync::{Mutex, OnceLock};

use futures_util::StreamExt as _;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use opentelemetry::trace::{TraceContextExt as _, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{
    SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample, SpanData, SpanExporter,
};
use signals_tests::outbox::OutboxOrder;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::*;

// ---- metrics ----

/// The recorder this test binary installs (once) to read what the runners report.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only metrics recorder");
        snapshotter
    })
}

/// Taking a snapshot resets the recorder's values, so the bodies that read them run one at
/// a time (each reads only the metrics of its own label).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The metrics recorded since the last snapshot that carry `test = label`: (name, the other
/// labels as `k=v`, sorted, value).
fn metrics_of(label: &str) -> Vec<(String, Vec<String>, DebugValue)> {
    let mut out = Vec::new();
    for (key, _, _, value) in snapshotter().snapshot().into_vec() {
        let key = key.key();
        if !key
            .labels()
            .any(|l| l.key() == "test" && l.value() == label)
        {
            continue;
        }
        let mut labels: Vec<String> = key
            .labels()
            .filter(|l| l.key() != "test")
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        out.push((key.name().to_owned(), labels, value));
    }
    out
}

fn counter(metrics: &[(String, Vec<String>, DebugValue)], name: &str) -> u64 {
    metrics
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, _, v)| match v {
            DebugValue::Counter(c) => *c,
            other => panic!("{name} is no counter: {other:?}"),
        })
        .sum()
}

fn gauge(metrics: &[(String, Vec<String>, DebugValue)], name: &str, label: Option<&str>) -> f64 {
    let found: Vec<f64> = metrics
        .iter()
        .filter(|(n, labels, _)| n == name && label.is_none_or(|l| labels.iter().any(|x| x == l)))
        .map(|(_, _, v)| match v {
            DebugValue::Gauge(g) => g.into_inner(),
            other => panic!("{name} is no gauge: {other:?}"),
        })
        .collect();
    assert_eq!(found.len(), 1, "one {name} {label:?} gauge: {metrics:?}");
    found[0]
}

outbox_test!(runners_report_metrics, |_url, db| {
    let _one = ONE_AT_A_TIME.lock().await;
    let label = uuid::Uuid::new_v4().simple().to_string();
    let config = |label: &str| {
        quick(Config::default())
            .metric_label("test", label)
            .metrics_every(Duration::ZERO)
    };
    snapshotter(); // installed before the runners record anything
    orders(&db, 5, "fine").await;
    orders(&db, 1, "permanent").await;
    orders(&db, 1, "flaky:1").await;
    let running = signals_outbox::spawn(db.clone(), None, config(&label))
        .await
        .expect("spawn");
    signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
        .await
        .expect("handled");
    // A round after the last delivery sets the gauges.
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.stop().await.expect("stop");
    let m = metrics_of(&label);
    assert_eq!(counter(&m, "signals_outbox_handled_total"), 6, "{m:?}");
    assert_eq!(counter(&m, "signals_outbox_dead_total"), 1);
    assert_eq!(
        counter(&m, "signals_outbox_failures_total"),
        2,
        "the permanent and one flaky"
    );
    let handled = m
        .iter()
        .find(|(n, _, _)| n == "signals_outbox_handled_total")
        .expect("handled");
    assert_eq!(handled.1, ["model=OutboxOrder", "receiver=record_order"]);
    let latencies = m
        .iter()
        .find_map(|(n, _, v)| match v {
            DebugValue::Histogram(h) if n == "signals_outbox_handling_seconds" => Some(h.clone()),
            _ => None,
        })
        .expect("latencies");
    assert_eq!(latencies.len(), 6);
    assert!(
        latencies
            .iter()
            .all(|s| s.into_inner() >= 0.0 && s.into_inner() < 30.0)
    );
    assert_eq!(
        gauge(&m, "signals_outbox_events", Some("state=pending")),
        0.0
    );
    assert_eq!(
        gauge(&m, "signals_outbox_events", Some("state=handled")),
        6.0
    );
    assert_eq!(gauge(&m, "signals_outbox_events", Some("state=dead")), 1.0);
    assert_eq!(gauge(&m, "signals_outbox_lag_seconds", None), 0.0);

    // Nothing runs them: the lag grows with the oldest pending event.
    orders(&db, 2, "waiting").await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let label = uuid::Uuid::new_v4().simple().to_string();
    let idle = Embedded::new(db.clone(), config(&label)).expect("runner");
    let stop = CancellationToken::new();
    stop.cancel();
    // `run` refreshes the gauges after its first round, then sees the stop.
    let mut sql = signals_core::Sql::new(db.backend());
    sql.push("UPDATE signals_outbox SET next_at = 9000000000000 WHERE state = 0");
    sql.execute(&db).await.expect("not due yet");
    idle.run(stop.cancelled_owned()).await.expect("run");
    let m = metrics_of(&label);
    assert_eq!(
        gauge(&m, "signals_outbox_events", Some("state=pending")),
        2.0
    );
    let lag = gauge(&m, "signals_outbox_lag_seconds", None);
    assert!(
        (1.0..30.0).contains(&lag),
        "the oldest pending event waits: {lag}"
    );
    db.execute_unprepared("UPDATE signals_outbox SET next_at = 0")
        .await
        .expect("due");

    // Through the broker: the relay counts what it publishes, the worker what it handles.
    let Some((names, _js)) = Names::new(&nats_url()).await else {
        return;
    };
    let label = uuid::Uuid::new_v4().simple().to_string();
    orders(&db, 3, "fine").await;
    let config = names
        .config
        .clone()
        .metric_label("test", &label)
        .metrics_every(Duration::ZERO);
    let running = signals_outbox::spawn(db.clone(), Some(&names.url), config)
        .await
        .expect("spawn");
    signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
        .await
        .expect("handled");
    running.stop().await.expect("stop");
    let m = metrics_of(&label);
    assert_eq!(counter(&m, "signals_outbox_published_total"), 5, "{m:?}");
    assert_eq!(counter(&m, "signals_outbox_handled_total"), 5);
});

// ---- traces ----

/// The spans this test binary's tracer exported.
static SPANS: Mutex<Vec<SpanData>> = Mutex::new(Vec::new());

#[derive(Debug)]
struct Collect;

impl SpanExporter for Collect {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        SPANS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(batch);
        std::future::ready(Ok(()))
    }
}

/// Samples the traces this file starts (root spans named `trace_probe`) and nothing else, so
/// the binary's other tests cost the tracer next to nothing.
#[derive(Debug, Clone)]
struct Probes;

impl ShouldSample for Probes {
    fn should_sample(
        &self,
        _parent: Option<&opentelemetry::Context>,
        _trace_id: TraceId,
        name: &str,
        _kind: &opentelemetry::trace::SpanKind,
        _attributes: &[opentelemetry::KeyValue],
        _links: &[opentelemetry::trace::Link],
    ) -> SamplingResult {
        SamplingResult {
            decision: if name == "trace_probe" {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state: Default::default(),
        }
    }
}

/// A `tracing` subscriber exporting to OpenTelemetry, and the W3C propagator, for this
/// test binary (once).
fn install_tracer() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt as _;
        let provider = SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
                Probes,
            )))
            .with_simple_exporter(Collect)
            .build();
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("signals-tests")));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    });
}

/// The `handle` spans of trace `trace`: the runner's handling of an event.
fn handled_in(trace: TraceId) -> Vec<SpanData> {
    SPANS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|s| s.span_context.trace_id() == trace && s.name == "handle")
        .cloned()
        .collect()
}

/// Saves one order inside a new root span; returns its trace.
async fn traced_save(db: &Db) -> TraceId {
    let probe = tracing::info_span!("trace_probe");
    let trace = probe.context().span().span_context().trace_id();
    assert_ne!(trace, TraceId::INVALID, "the probe is sampled");
    async {
        OutboxOrder {
            id: None,
            note: "traced".into(),
        }
        .save(db)
        .await
        .expect("save");
    }
    .instrument(probe)
    .await;
    trace
}

outbox_test!(one_trace_runs_from_the_save_to_the_receiver, |_url, db| {
    install_tracer();
    // In-process: the context travels in the outbox row.
    let trace = traced_save(&db).await;
    let mut sql = signals_core::Sql::new(db.backend());
    sql.push("SELECT trace_context FROM signals_outbox");
    let stored: Vec<(Option<String>,)> = sql.fetch_all(&db).await.expect("read");
    let stored = stored[0]
        .0
        .clone()
        .expect("the row carries the save's context");
    assert!(stored.contains(&format!("00-{trace}-")), "{stored}");
    let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
    assert_eq!(runner.drain().await.expect("drain"), 1);
    let spans = handled_in(trace);
    assert_eq!(spans.len(), 1, "the receiver's span is in the save's trace");
    assert!(spans[0].parent_span_is_remote);

    // Through the broker, the worker on tasks of their own (nothing inherited): the context
    // travels in the message's headers.
    let Some((names, js)) = Names::new(&nats_url()).await else {
        return;
    };
    let trace = traced_save(&db).await;
    let running = signals_outbox::spawn(db.clone(), Some(&names.url), names.config.clone())
        .await
        .expect("spawn");
    signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
        .await
        .expect("handled");
    running.stop().await.expect("stop");
    let spans = handled_in(trace);
    assert_eq!(spans.len(), 1, "the worker's span is in the save's trace");
    assert!(spans[0].parent_span_is_remote);
    let stream = js.get_stream(&names.stream).await.expect("stream");
    let reader = stream
        .create_consumer(jetstream::consumer::pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("reader");
    let mut batch = reader
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("fetch");
    let message = batch.next().await.expect("a message").expect("message");
    let traceparent = message
        .headers
        .as_ref()
        .and_then(|h| h.get("traceparent"))
        .map(|v| v.as_str().to_owned())
        .expect("the message carries a traceparent");
    assert!(
        traceparent.starts_with(&format!("00-{trace}-")),
        "{traceparent}"
    );
});

outbox_test!(
    a_traced_save_into_an_older_outbox_says_to_install,
    |url, db| {
        install_tracer();
        let other = Db::connect(&url).await.expect("connect");
        other
            .execute_unprepared("ALTER TABLE signals_outbox DROP COLUMN trace_context")
            .await
            .expect("drop the column");
        other.close().await;
        let mut order = OutboxOrder {
            id: None,
            note: "traced".into(),
        };
        let probe = tracing::info_span!("trace_probe");
        let err = order
            .save(&db)
            .instrument(probe)
            .await
            .expect_err("the column is missing");
        let text = err.to_string();
        assert!(
            text.contains("trace_context") && text.contains("signals_outbox::install"),
            "{text}"
        );
        assert_eq!(order.id, None, "nothing kept");
        assert!(OutboxOrder::all(&db).await.expect("usable").is_empty());
        signals_outbox::install(&db).await.expect("install");
        order.save(&db).await.expect("saves once installed");
        assert_eq!(stats(&db).await.expect("stats").pending, 1);
    }
);
