//! The relay: publishes the outbox's committed events to NATS JetStream, in order per
//! partition, each with its event id as `Nats-Msg-Id` so the stream drops a republished one,
//! and marks them published once JetStream has acknowledged them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use signals_core::Db;
use signals_core::durable::committed_from_name;
use tracing::Instrument as _;

use crate::config::Config;
use crate::error::{Error, Result, broker};
use crate::observe::Observe;
use crate::store::{self, Claim, DeadLetter, OutboxEvent};
use crate::trace;
use crate::wake::Wake;

/// Headers every published event carries besides `Nats-Msg-Id`.
pub(crate) const MODEL_HEADER: &str = "Signals-Model";
pub(crate) const RECEIVER_HEADER: &str = "Signals-Receiver";
pub(crate) const EVENT_HEADER: &str = "Signals-Event";
/// When the event committed (milliseconds since the epoch): a worker compares it with the
/// inbox's memory (see [`purge`](crate::purge)).
pub(crate) const COMMITTED_AT_HEADER: &str = "Signals-Committed-At";
/// The event's id (the message id is the event id, or `<event id>@<ms>` for a replay).
pub(crate) const EVENT_ID_HEADER: &str = "Signals-Event-Id";
/// When the event's dead letter was replayed (milliseconds since the epoch).
pub(crate) const REPLAYED_AT_HEADER: &str = "Signals-Replayed-At";

/// Creates the stream events go to, or checks it exists: subjects `<prefix>.>`, file
/// storage, the configured duplicate window, and events kept for
/// [`Config::retention`] (an existing stream is brought to it, so the stream never grows
/// without bound).
pub async fn ensure_stream(js: &jetstream::Context, config: &Config) -> Result<stream::Stream> {
    config.check()?;
    let wanted = stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        duplicate_window: config.duplicate_window,
        max_age: config.retention,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    let doing = || format!("creating stream `{}`", config.stream);
    let mut stream = js
        .get_or_create_stream(wanted)
        .await
        .map_err(|e| broker(&doing(), e))?;
    let info = stream.info().await.map_err(|e| broker(&doing(), e))?;
    if info.config.max_age != config.retention {
        let mut updated = info.config.clone();
        updated.max_age = config.retention;
        js.update_stream(updated)
            .await
            .map_err(|e| broker(&format!("setting the retention of `{}`", config.stream), e))?;
        stream = js
            .get_stream(&config.stream)
            .await
            .map_err(|e| broker(&doing(), e))?;
    }
    Ok(stream)
}

/// The message of one outbox event: its instance as the payload, its id, model, receiver,
/// kind and commit time as headers, and its id as `Nats-Msg-Id`, which the stream
/// de-duplicates by. An event made due again (its dead letter replayed) is published under
/// `<event id>@<ms>` instead, so the duplicate window does not drop it as a copy of its first
/// publication.
fn message(event: &OutboxEvent) -> PublishMessage {
    let mut headers = HeaderMap::new();
    headers.insert(EVENT_ID_HEADER, event.event_id.as_str());
    headers.insert(MODEL_HEADER, event.model.as_str());
    headers.insert(RECEIVER_HEADER, event.receiver.as_str());
    headers.insert(EVENT_HEADER, event.event.as_str());
    headers.insert(COMMITTED_AT_HEADER, event.created_at.to_string().as_str());
    trace::to_headers(&trace::from_json(event.trace.as_deref()), &mut headers);
    let message_id = if event.next_at > 0 {
        headers.insert(REPLAYED_AT_HEADER, event.next_at.to_string().as_str());
        format!("{}@{}", event.event_id, event.next_at)
    } else {
        event.event_id.clone()
    };
    PublishMessage::build()
        .payload(event.payload.clone().into())
        .headers(headers)
        .message_id(&message_id)
}

/// Why `event` can never be published, if it cannot: a row changed by hand (no model or
/// receiver to name its subject, an unknown kind, a control character where a header holds
/// it: NATS headers are lines).
fn unpublishable(event: &OutboxEvent) -> Option<String> {
    for (what, value) in [
        ("model", &event.model),
        ("receiver", &event.receiver),
        ("event id", &event.event_id),
        ("kind", &event.event),
    ] {
        if value.chars().any(char::is_control) {
            return Some(format!(
                "the event's {what} {value:?} holds a control character, which no message \
                 header can carry (the outbox row was changed by hand?)"
            ));
        }
    }
    if event.model.is_empty() || event.receiver.is_empty() {
        return Some(format!(
            "the event names no {} (the outbox row was changed by hand?)",
            if event.model.is_empty() {
                "model"
            } else {
                "receiver"
            }
        ));
    }
    if committed_from_name(&event.event).is_none() {
        return Some(format!(
            "the event says `{}` committed; expected created, updated or deleted (the outbox \
             row was changed by hand?)",
            event.event
        ));
    }
    None
}

/// Whether a publish ack's error is the stream refusing this message whatever happens: too
/// large for the stream's `max_msg_size` (JetStream error 10054) or its headers too large
/// (10097).
fn refused_for_good(err: &async_nats::jetstream::context::PublishError) -> bool {
    use std::error::Error as _;
    err.source()
        .and_then(|e| e.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|e| matches!(e.error_code().0, 10054 | 10097))
}

/// Publishes the outbox of one database to JetStream. Run one or several (on any machines):
/// each round claims the partitions no other relay holds, so events of one instance are
/// published in the order they committed. A relay killed at any point loses nothing: what it
/// had not marked published is published again, and the stream drops the copies it already
/// has (within its duplicate window).
///
/// ```no_run
/// # #[tokio::main] async fn main() -> signals_outbox::Result<()> {
/// let db = signals_core::Db::connect("postgres://postgres@127.0.0.1/app").await?;
/// let nats = async_nats::connect("127.0.0.1:4222").await.expect("NATS");
/// let relay = signals_outbox::Relay::new(db, async_nats::jetstream::new(nats), Default::default()).await?;
/// relay.run(async { tokio::signal::ctrl_c().await.ok(); }).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Relay {
    db: Db,
    js: jetstream::Context,
    config: Config,
    observe: Arc<Observe>,
}

impl Relay {
    /// A relay from `db` to the stream of `config`, which it creates when missing.
    pub async fn new(db: Db, js: jetstream::Context, config: Config) -> Result<Self> {
        ensure_stream(&js, &config).await?;
        let observe = Arc::new(Observe::new(&config));
        Ok(Relay {
            db,
            js,
            config,
            observe,
        })
    }

    /// One round: claims partitions, publishes up to a batch of their pending events, marks
    /// those JetStream acknowledged. Returns how many it marked (published or refused).
    ///
    /// An event the broker can never take is dead-lettered with the reason and logged, so it
    /// does not hold back the events after it: a message larger than the server's
    /// `max_payload` (or the stream's maximum message size), an event whose model or receiver
    /// name is empty (no subject can hold it), or whose kind is none of `created`, `updated`
    /// and `deleted` (a row changed by hand). A refusal that may pass later (the broker away,
    /// a timeout) leaves the event and those after it for the next round.
    pub async fn run_once(&self) -> Result<usize> {
        let db = &self.db;
        let mut claim =
            Claim::take(db, &self.config.name, self.config.lease, self.config.claim).await?;
        let events = claim.pending(db, self.config.batch).await?;
        if events.is_empty() {
            claim.end().await?;
            return Ok(0);
        }
        let span = tracing::info_span!("publish", events = events.len());
        let (ids, refused, failure) = self.publish(&events).instrument(span).await;
        if !ids.is_empty() {
            claim.mark_published(db, &ids).await?;
        }
        claim.end().await?;
        let marked: std::collections::HashSet<i64> = ids.iter().copied().collect();
        for event in events.iter().filter(|e| marked.contains(&e.id)) {
            self.observe.published(&event.model, &event.receiver);
        }
        for (event, reason) in &refused {
            tracing::error!(
                event_id = %event.event_id,
                model = %event.model,
                receiver = %event.receiver,
                %reason,
                "the broker refuses this event; dead-lettered"
            );
            store::dead_letter(
                db,
                &DeadLetter::of(event, reason, event.attempts.max(0)),
                Some(event.id),
            )
            .await?;
            self.observe.dead(&event.model, &event.receiver);
        }
        let done = ids.len() + refused.len();
        match failure {
            None => Ok(done),
            Some(err) if done == 0 => Err(err),
            Some(err) => {
                tracing::warn!(error = %err, published = done, "publishing stopped mid-batch");
                Ok(done)
            }
        }
    }

    /// Publishes `events` back to back, then awaits the acks: one round trip for the batch.
    /// Returns the outbox ids to mark published (those acknowledged before the first event
    /// the broker may take later but did not now: that one and those after it are published
    /// again next round, in order, and the stream drops the copies it has), the events
    /// refused for good, with the reason, and the failure that stopped the batch, if any.
    async fn publish<'e>(
        &self,
        events: &'e [OutboxEvent],
    ) -> (Vec<i64>, Vec<(&'e OutboxEvent, String)>, Option<Error>) {
        let mut refused = Vec::new();
        let mut acks = Vec::with_capacity(events.len());
        let mut failure = None;
        for event in events {
            if let Some(reason) = unpublishable(event) {
                refused.push((event, reason));
                continue;
            }
            let message = message(event);
            let subject = self
                .config
                .subject_in(event.part, &event.model, &event.receiver);
            match self.js.send_publish(subject, message).await {
                Ok(ack) => acks.push((event, ack)),
                Err(err) if err.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    refused.push((event, format!("the broker refuses the message: {err}")));
                }
                Err(err) => {
                    failure = Some(broker("publishing", err));
                    break;
                }
            }
        }
        let mut ids = Vec::with_capacity(acks.len());
        for (event, ack) in acks {
            match ack.await {
                Ok(_) => ids.push(event.id),
                Err(err) if refused_for_good(&err) => {
                    refused.push((event, format!("the stream refuses the message: {err}")));
                }
                Err(err) => {
                    if err.kind() == PublishErrorKind::StreamNotFound {
                        // Deleted by an operator: made again for the next round.
                        if let Err(err) = ensure_stream(&self.js, &self.config).await {
                            tracing::warn!(error = %err, "cannot create the stream again");
                        }
                    }
                    failure = Some(broker("waiting for a publish ack", err));
                    break;
                }
            }
        }
        // A refused event is dead-lettered whatever happened to the others: it publishes
        // nothing, so it cannot come out of order.
        (ids, refused, failure)
    }
    /// Publishes until `shutdown` completes. Commits of this process wake it at once, and on
    /// PostgreSQL every process's (`LISTEN signals_outbox`); otherwise it looks every poll
    /// interval. While the broker or the database is away it logs and retries, waiting longer
    /// each time up to the backoff cap; nothing is lost meanwhile.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut wake = Wake::new(&self.db, self.config.local_wakeups).await;
        let mut shutdown = std::pin::pin!(shutdown);
        let mut failures = 0u32;
        loop {
            let round = self.run_once().await;
            self.observe.refresh(&self.db).await;
            let wait = match round {
                Ok(n) if n >= self.config.batch => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    self.config.poll
                }
                Err(err) => {
                    failures += 1;
                    tracing::warn!(error = %err, failures, "relay round failed; retrying");
                    self.config.delay(failures).max(Duration::from_millis(50))
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = wake.wait(wait), if failures == 0 => {}
                () = tokio::time::sleep(wait), if failures > 0 => {}
            }
        }
        store::release(&self.db, &self.config.name).await
    }
}
