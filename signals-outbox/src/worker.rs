//! Workers: share one durable JetStream consumer and run the receivers of the events it
//! delivers, each in a transaction with its inbox row; failures are delivered again after a
//! backoff, and dead-lettered after the last attempt.

use std::future::Future;
use std::sync::Arc;

use async_nats::jetstream::{self, AckKind, consumer};
use futures_util::StreamExt as _;
use futures_util::future::{FusedFuture as _, FutureExt as _};
use signals_core::Db;
use signals_core::durable::{Event, PARTITIONS, committed_from_name};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{Result, broker};
use crate::handle::{Outcome, handle, served};
use crate::observe::Observe;
use crate::relay::{
    COMMITTED_AT_HEADER, EVENT_HEADER, EVENT_ID_HEADER, MODEL_HEADER, RECEIVER_HEADER,
    REPLAYED_AT_HEADER, ensure_stream,
};
use crate::store::{self, DeadLetter};
use crate::trace;

/// Runs durable receivers from JetStream. Start any number, on any machines, with the same
/// [`Config`]: they share the durable consumer, so each event goes to one of them at a time,
/// and the inbox makes a second delivery (after a worker died before its ack) run nothing.
///
/// A worker and the programs that save must agree on the receivers. A worker logs the
/// receivers it serves when it starts ([`receivers`](crate::receivers) lists them), and an
/// event for a receiver it lacks is **dead-lettered at once**, its error naming the receiver
/// and those the worker has, never run by a worker that cannot: deploy a worker that has it,
/// then [replay](crate::dead::replay) the dead letters. (Workers of one consumer share its
/// events, so an event left for "another worker" could come back to this one any number of
/// times.) A receiver's [`Permanent`](signals_core::durable::Permanent) error is
/// dead-lettered at once too.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> signals_outbox::Result<()> {
/// let db = signals_core::Db::connect("postgres://postgres@127.0.0.1/app").await?;
/// let nats = async_nats::connect("127.0.0.1:4222").await.expect("NATS");
/// let worker = signals_outbox::Worker::new(db, async_nats::jetstream::new(nats), Default::default()).await?;
/// worker.run(async { tokio::signal::ctrl_c().await.ok(); }).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Worker {
    db: Db,
    /// The shared consumer, or with [`Config::ordered_per_instance`] one per partition.
    consumers: Vec<consumer::PullConsumer>,
    config: Config,
    observe: Arc<Observe>,
}

impl Worker {
    /// A worker on `db` for the stream and consumer of `config`, creating them when missing.
    /// Fails when `config` gives retries to a receiver this program does not have.
    pub async fn new(db: Db, js: jetstream::Context, config: Config) -> Result<Self> {
        config.check_receivers()?;
        let stream = ensure_stream(&js, &config).await?;
        // (name, subjects, events handled at once)
        let wanted: Vec<(String, String, i64)> = if config.ordered {
            (0..PARTITIONS)
                .map(|part| {
                    (
                        format!("{}-p{part}", config.consumer),
                        format!("{}.{part}.>", config.subject_prefix),
                        1,
                    )
                })
                .collect()
        } else {
            vec![(
                config.consumer.clone(),
                format!("{}.>", config.subject_prefix),
                // JetStream's default.
                1000,
            )]
        };
        let mut consumers = Vec::with_capacity(wanted.len());
        for (name, filter_subject, max_ack_pending) in wanted {
            let consumer = stream
                .get_or_create_consumer(
                    &name,
                    consumer::pull::Config {
                        durable_name: Some(name.clone()),
                        ack_policy: consumer::AckPolicy::Explicit,
                        ack_wait: config.ack_wait,
                        // Attempts are counted here, to dead-letter with the last error.
                        max_deliver: -1,
                        filter_subject,
                        max_ack_pending,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| broker(&format!("creating consumer `{name}`"), e))?;
            consumers.push(consumer);
        }
        let observe = Arc::new(Observe::new(&config));
        Ok(Worker {
            db,
            consumers,
            config,
            observe,
        })
    }

    /// Handles deliveries until `shutdown` completes; the deliveries being handled when it
    /// does are finished first. Up to [`Config::concurrency`] run at once (with
    /// [`Config::ordered_per_instance`], one per partition). Broker and database failures
    /// are logged and retried: the events wait in the stream.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tracing::info!(
            consumer = %self.config.consumer,
            ordered = self.config.ordered,
            receivers = %served().join(", "),
            "worker serving durable receivers"
        );
        let stop = CancellationToken::new();
        let stopped = async {
            shutdown.await;
            stop.cancel();
        };
        let concurrency = if self.config.ordered {
            1
        } else {
            self.config.concurrency
        };
        let pulls = futures_util::future::join_all(
            self.consumers
                .iter()
                .map(|consumer| self.pull(consumer, concurrency, stop.cancelled())),
        );
        // The gauges, read every `metrics_every` until the pulls end.
        let gauges = async {
            while !stop.is_cancelled() {
                self.observe.refresh(&self.db).await;
                let _ = tokio::time::timeout(self.config.metrics_every, stop.cancelled()).await;
            }
        };
        // At shutdown every pull stops taking messages and finishes those under way.
        tokio::join!(pulls, stopped, gauges);
        Ok(())
    }

    /// Pulls from `consumer` until `shutdown`, up to `concurrency` deliveries at once.
    async fn pull(
        &self,
        consumer: &consumer::PullConsumer,
        concurrency: usize,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        while !shutdown.is_terminated() {
            // Few messages at a time: what a worker holds, the others cannot take.
            let messages = consumer
                .stream()
                .max_messages_per_batch((2 * concurrency).max(16))
                .messages()
                .await;
            let messages = match messages {
                Ok(m) => m,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot pull from JetStream; retrying");
                    let pause = self.config.poll.max(std::time::Duration::from_millis(200));
                    let _ = tokio::time::timeout(pause, &mut shutdown).await;
                    continue;
                }
            };
            // Up to `concurrency` deliveries at once; at shutdown the stream ends and those
            // under way finish first.
            messages
                .take_until(&mut shutdown)
                .for_each_concurrent(concurrency, |next| async move {
                    match next {
                        Ok(message) => self.deliver(&message).await,
                        Err(err) => tracing::warn!(error = %err, "pulling from JetStream failed"),
                    }
                })
                .await;
        }
    }

    async fn deliver(&self, message: &jetstream::Message) {
        let res = self.try_deliver(message).await;
        crate::wake::settled();
        if let Err(err) = res {
            // The database is away, say: the message is delivered again after a while.
            tracing::warn!(error = %err, "delivery not handled; it will come again");
            let _ = message
                .ack_with(AckKind::Nak(Some(self.config.delay(1))))
                .await;
        }
    }

    async fn try_deliver(&self, message: &jetstream::Message) -> Result<()> {
        let info = message
            .info()
            .map_err(|e| broker("reading a delivery", e))?;
        let attempt = u32::try_from(info.delivered).unwrap_or(u32::MAX);
        let headers = message.headers.as_ref();
        let header = |name: &str| -> Option<String> {
            headers
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        let payload = std::str::from_utf8(&message.payload).unwrap_or_default();
        let (Some(id), Some(model), Some(receiver)) = (
            header(EVENT_ID_HEADER).or_else(|| header("Nats-Msg-Id")),
            header(MODEL_HEADER),
            header(RECEIVER_HEADER),
        ) else {
            tracing::error!(subject = %message.subject, "not an outbox event; terminated");
            return message
                .ack_with(AckKind::Term)
                .await
                .map_err(|e| broker("terminating a foreign message", e));
        };
        // When the event committed: the relay's header, or (a message without one) when the
        // stream stored it, which is later still.
        let committed_at = header(COMMITTED_AT_HEADER)
            .and_then(|ms| ms.parse::<i64>().ok())
            .unwrap_or_else(|| (info.published.unix_timestamp_nanos() / 1_000_000) as i64);
        // A replayed dead letter runs whatever the inbox's horizon: replaying says it never
        // ran.
        let remembered_from = header(REPLAYED_AT_HEADER)
            .and_then(|ms| ms.parse::<i64>().ok())
            .map_or(committed_at, |replayed| replayed.max(committed_at));
        let kind = header(EVENT_HEADER).unwrap_or_default();
        let letter = DeadLetter {
            event_id: &id,
            model: &model,
            receiver: &receiver,
            kind: &kind,
            payload,
            error: "",
            attempts: i64::from(attempt),
        };
        let dead = match committed_from_name(&kind) {
            // Not a kind this crate writes: running it as another kind would mislead the
            // receiver. Dead-lettered at once, never retried.
            None => Some(format!(
                "the event says `{kind}` committed; expected created, updated or deleted"
            )),
            Some(committed) => {
                let event = Event {
                    id: id.clone(),
                    model: model.clone(),
                    receiver: receiver.clone(),
                    committed,
                    attempt,
                };
                let retry = self.config.retry_of(&model, &receiver);
                let trace = trace::from_headers(headers);
                let outcome = handle(&self.db, &event, payload, remembered_from, &trace).await?;
                match &outcome {
                    Outcome::Ran => self.observe.handled(&model, &receiver, committed_at),
                    Outcome::Duplicate => self.observe.duplicate(&model, &receiver),
                    Outcome::Failed(_) => self.observe.failed(&model, &receiver),
                    Outcome::Forgotten(_) => {}
                }
                match outcome {
                    Outcome::Ran | Outcome::Duplicate => None,
                    Outcome::Forgotten(error) => Some(error),
                    Outcome::Failed(failure)
                        if failure.permanent || attempt >= retry.attempts() =>
                    {
                        Some(failure.error)
                    }
                    Outcome::Failed(_) => {
                        let again = AckKind::Nak(Some(retry.delay(attempt)));
                        return message
                            .ack_with(again)
                            .await
                            .map_err(|e| broker("acknowledging a delivery", e));
                    }
                }
            }
        };
        if let Some(error) = dead {
            tracing::error!(event_id = %id, %error, attempt, "dead-lettered");
            let letter = DeadLetter {
                error: &error,
                ..letter
            };
            store::dead_letter(&self.db, &letter, None).await?;
            self.observe.dead(&model, &receiver);
        }
        message
            .ack_with(AckKind::Ack)
            .await
            .map_err(|e| broker("acknowledging a delivery", e))
    }
}
