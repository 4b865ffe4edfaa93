//! Every dispatch is visible through `tracing`: signals with their flags, receivers by name.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use signals_core::{Db, Model, PostSave, Result};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

/// Keeps `message fields...` of every `signals_core` event, with its span's fields.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<String>>>);

struct Fields(String);
impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Events {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = Fields(String::new());
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields.0);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if !event.metadata().target().starts_with("signals_core") {
            return;
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        // Each enclosing span, innermost first, with its fields.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                let span_fields = span
                    .extensions()
                    .get::<String>()
                    .cloned()
                    .unwrap_or_default();
                fields
                    .0
                    .push_str(&format!(" [{}{span_fields}]", span.name()));
            }
        }
        self.0.lock().unwrap().push(fields.0);
    }
}

#[derive(Debug, Model)]
#[post_save(announce)]
struct Note {
    id: Option<i64>,
    body: String,
}

async fn announce(_: &Note, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

#[test]
fn signals_and_receivers_are_traced() {
    let events = Events::default();
    tracing::subscriber::set_global_default(Registry::default().with(events.clone())).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.execute_unprepared("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            .await
            .unwrap();
        Note {
            id: None,
            body: "hi".into(),
        }
        .save(&db)
        .await
        .unwrap();
    });
    let seen = events.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "sent [pre_save model=Note adding=true raw=false]",
            "sent [post_save model=Note created=true raw=false]",
            "receiver ran [receiver model=Note signal=post_save receiver=announce] \
             [post_save model=Note created=true raw=false]",
        ]
    );
}

/// Names the spans that closed.
#[derive(Clone, Default)]
struct Closed(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Closed {
    fn on_close(&self, id: tracing::span::Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            self.0.lock().unwrap().push(span.name().to_owned());
        }
    }
}

/// A span current when a `Db`'s kept SQLite connection first takes its handle ends when the
/// caller leaves it: sqlx keeps the span of each command it queues, and the request to let go of
/// the handle stayed queued while the connection kept it (the life of the `Db`), so a request's
/// span never ended and a tracing backend never exported it.
#[test]
fn a_span_ends_with_its_caller_on_a_kept_sqlite_connection() {
    let closed = Closed::default();
    // This thread's own subscriber; the runtime polls everything on this thread.
    let _local = tracing::subscriber::set_default(Registry::default().with(closed.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.execute_unprepared("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            .await
            .unwrap();
        for body in ["first", "second"] {
            tracing::Instrument::instrument(
                async {
                    Note {
                        id: None,
                        body: body.into(),
                    }
                    .save(&db)
                    .await
                    .unwrap();
                },
                tracing::info_span!("request"),
            )
            .await;
        }
        let ended = closed
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == "request")
            .count();
        assert_eq!(ended, 2, "both requests' spans ended while the Db lives");
        db.close().await;
    });
}
