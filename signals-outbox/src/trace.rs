//! The W3C trace context a durable event carries from its save to its receiver: written with
//! the outbox row by signals-core (its `otel` feature), copied by relays into the broker
//! message's headers, and given by runners to the receiver's span as its parent (this crate's
//! `otel` feature), so one trace runs from `save()` on one machine to the receiver on another.

use std::collections::BTreeMap;

use async_nats::HeaderMap;

/// The fields of a trace context by name, as the propagator wrote them (`traceparent`,
/// `tracestate`), each fit for a message header.
pub(crate) type Fields = Vec<(String, String)>;

/// Whether `name: value` can be a message header (NATS headers are lines of `name: value`).
fn header_safe(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
        && !value.chars().any(char::is_control)
}

/// The fields an outbox row holds (a JSON object), without any no header could carry (a row
/// changed by hand).
pub(crate) fn from_json(text: Option<&str>) -> Fields {
    let Some(text) = text else {
        return Fields::new();
    };
    match serde_json::from_str::<BTreeMap<String, String>>(text) {
        Ok(fields) => fields
            .into_iter()
            .filter(|(name, value)| header_safe(name, value))
            .collect(),
        Err(err) => {
            tracing::warn!(error = %err, "an outbox row's trace context is not a JSON object; ignored");
            Fields::new()
        }
    }
}

/// Adds `fields` to a message's headers.
pub(crate) fn to_headers(fields: &Fields, headers: &mut HeaderMap) {
    for (name, value) in fields {
        headers.insert(name.as_str(), value.as_str());
    }
}

/// The trace context's fields among a message's headers: those the global propagator reads.
#[cfg(feature = "otel")]
pub(crate) fn from_headers(headers: Option<&HeaderMap>) -> Fields {
    let Some(headers) = headers else {
        return Fields::new();
    };
    let names = opentelemetry::global::get_text_map_propagator(|p| {
        p.fields().map(str::to_owned).collect::<Vec<_>>()
    });
    names
        .into_iter()
        .filter_map(|name| {
            let value = headers.get(name.as_str())?.as_str().to_owned();
            Some((name, value))
        })
        .collect()
}

/// Without the `otel` feature no span is given a parent: nothing to read.
#[cfg(not(feature = "otel"))]
pub(crate) fn from_headers(_headers: Option<&HeaderMap>) -> Fields {
    Fields::new()
}

/// Makes the trace context of `fields` the parent of `span` (before it is entered).
#[cfg(feature = "otel")]
pub(crate) fn adopt(span: &tracing::Span, fields: &Fields) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if fields.is_empty() {
        return;
    }
    struct Reader<'a>(&'a Fields);
    impl opentelemetry::propagation::Extractor for Reader<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
                .map(|(_, value)| value.as_str())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(name, _)| name.as_str()).collect()
        }
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Reader(fields)));
    if let Err(err) = span.set_parent(cx) {
        tracing::debug!(error = %err, "the receiver's span cannot take the save's trace");
    }
}

/// Without the `otel` feature spans are not given a parent.
#[cfg(not(feature = "otel"))]
pub(crate) fn adopt(_span: &tracing::Span, _fields: &Fields) {}
