//! The relay: publishes the outbox's committed events to NATS JetStream, in order per
//! partition, each with its event id as `Nats-Msg-Id` so the stream drops a republished one,
//! and marks them published once JetStream has acknowledged them.

use std::future::Future;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use signals_core::Db;
use tracing::Instrument as _;

use crate::config::Config;
use crate::error::{Result, broker};
use crate::store::{self, Claim};
use crate::wake::Wake;

/// Headers every published event carries besides `Nats-Msg-Id`.
pub(crate) const MODEL_HEADER: &str = "Signals-Model";
pub(crate) const RECEIVER_HEADER: &str = "Signals-Receiver";
pub(crate) const EVENT_HEADER: &str = "Signals-Event";

/// Creates the stream events go to, or checks it exists: subjects `<prefix>.>`, file
/// storage, the configured duplicate window.
pub async fn ensure_stream(js: &jetstream::Context, config: &Config) -> Result<stream::Stream> {
    config.check()?;
    js.get_or_create_stream(stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        duplicate_window: config.duplicate_window,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| broker(&format!("creating stream `{}`", config.stream), e))
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
}

impl Relay {
    /// A relay from `db` to the stream of `config`, which it creates when missing.
    pub async fn new(db: Db, js: jetstream::Context, config: Config) -> Result<Self> {
        ensure_stream(&js, &config).await?;
        Ok(Relay { db, js, config })
    }

    /// One round: claims partitions, publishes up to a batch of their pending events, marks
    /// those JetStream acknowledged. Returns how many it marked.
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
        let published = async {
            // Sent back to back, then the acks awaited: one round trip for the batch.
            let mut acks = Vec::with_capacity(events.len());
            for event in &events {
                let mut headers = HeaderMap::new();
                headers.insert(MODEL_HEADER, event.model.as_str());
                headers.insert(RECEIVER_HEADER, event.receiver.as_str());
                headers.insert(EVENT_HEADER, event.event.as_str());
                let message = PublishMessage::build()
                    .payload(event.payload.clone().into())
                    .headers(headers)
                    .message_id(&event.event_id);
                let subject = self.config.subject(&event.model, &event.receiver);
                match self.js.send_publish(subject, message).await {
                    Ok(ack) => acks.push(ack),
                    Err(err) => {
                        tracing::warn!(error = %err, "publish failed");
                        break;
                    }
                }
            }
            // Only the events up to the first one not acknowledged are marked: the rest are
            // published again next round, in order (the stream drops those it has).
            let mut ids = Vec::with_capacity(acks.len());
            let mut failure = None;
            for (event, ack) in events.iter().zip(acks) {
                match ack.await {
                    Ok(_) => ids.push(event.id),
                    Err(err) => {
                        failure = Some(broker("waiting for a publish ack", err));
                        break;
                    }
                }
            }
            (ids, failure)
        }
        .instrument(span)
        .await;
        let (ids, failure) = published;
        if !ids.is_empty() {
            store::mark_published(claim.on(db).await?, db.backend(), &ids).await?;
        }
        claim.end().await?;
        if ids.len() == events.len() {
            return Ok(ids.len());
        }
        let err = failure.unwrap_or_else(|| {
            crate::error::Error::Broker("publishing failed; the events stay in the outbox".into())
        });
        if ids.is_empty() {
            return Err(err);
        }
        tracing::warn!(error = %err, published = ids.len(), "publishing stopped mid-batch");
        Ok(ids.len())
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
            let wait = match self.run_once().await {
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
