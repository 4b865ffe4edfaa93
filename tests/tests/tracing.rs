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
