//! Durable model-signal receivers: a transactional outbox, relayed through NATS JetStream to
//! workers on any number of machines, or run in-process when no broker is configured.
//!
//! A receiver listed with `durable` in `#[on_commit(..)]` does not run after the commit as a
//! future of this process: the save writes an event (the instance as JSON, what committed,
//! the receiver's name) to the `signals_outbox` table **in its own transaction**. A rolled
//! back save leaves no event; a committed one cannot lose it, whatever happens to the process
//! or the broker after the commit. Then:
//!
//! - with no broker, an [`Embedded`] runner in the application runs the receivers from the
//!   outbox table;
//! - with NATS, [`Relay`]s publish the outbox to a JetStream stream (the event id as
//!   `Nats-Msg-Id`, so republished events are dropped), and [`Worker`]s on any machines
//!   share one durable consumer and run the receivers.
//!
//! Either way, each delivery runs in a transaction that first records the event id in the
//! inbox table: the receiver's database work (through [`Delivery::tx`]) happens exactly
//! once, however often the event is delivered. A failing receiver is retried with backoff;
//! after [`Config::max_attempts`] (or its own [`Config::retry`]) the event goes to the dead
//! letters with its last error, and the other events keep flowing; a
//! [`Permanent`](signals_core::durable::Permanent) error goes there at once. [`stats`] and
//! [`receiver_stats`] read the counters.
//!
//! Operating them:
//!
//! - [`dead`]: list, replay (each event handled once, however many replays race), discard and
//!   purge the dead letters;
//! - [`wait_until_handled`]: wait until what committed so far is handled (tests, a program
//!   about to exit);
//! - [`Config::ordered_per_instance`]: each instance's events handled in commit order across
//!   every worker;
//! - [`receivers`]: what this program serves; an event for a receiver it lacks is
//!   dead-lettered at once, naming it;
//! - metrics, through the [`metrics`](https://docs.rs/metrics) facade (nothing is recorded
//!   until the program installs a recorder), each with the labels of
//!   [`Config::metric_label`]:
//!
//!   | metric | kind | labels | what |
//!   |---|---|---|---|
//!   | `signals_outbox_published_total` | counter | `model`, `receiver` | events a relay published |
//!   | `signals_outbox_handled_total` | counter | `model`, `receiver` | deliveries whose receiver ran and committed |
//!   | `signals_outbox_duplicates_total` | counter | `model`, `receiver` | deliveries of events handled already |
//!   | `signals_outbox_failures_total` | counter | `model`, `receiver` | failed deliveries (retried or dead-lettered) |
//!   | `signals_outbox_dead_total` | counter | `model`, `receiver` | events dead-lettered |
//!   | `signals_outbox_handling_seconds` | histogram | `model`, `receiver` | from the save's commit to the receiver's |
//!   | `signals_outbox_events` | gauge | `state` (`pending`, `published`, `handled`, `dead`) | the tables' counts, every [`Config::metrics_every`] |
//!   | `signals_outbox_lag_seconds` | gauge | | the age of the oldest pending event |
//!
//! - traces: with the `otel` feature, the W3C trace context of the save (its current span's,
//!   through OpenTelemetry's global propagator) travels in the outbox row and the broker
//!   message's headers, and the runner's `handle` span takes it as its parent: one trace from
//!   `save()` on one machine to the receiver on another.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_outbox::Result<()> {
//! use signals_core::{Db, Model};
//! use signals_core::durable::Delivery;
//!
//! #[derive(Model, Clone, serde::Serialize, serde::Deserialize)]
//! #[on_commit(send_welcome, durable)]
//! struct User { id: Option<i64>, username: String }
//!
//! async fn send_welcome(user: User, delivery: &mut Delivery<'_>) -> signals_core::Result<()> {
//!     println!("welcome, {} (delivery {})", user.username, delivery.event().attempt);
//!     Ok(())
//! }
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! db.execute_unprepared("CREATE TABLE user (id INTEGER PRIMARY KEY, username TEXT NOT NULL)").await?;
//! signals_outbox::install(&db).await?;
//!
//! User { id: None, username: "ada".into() }.save(&db).await?;
//! assert_eq!(signals_outbox::stats(&db).await?.pending, 1);
//!
//! // No NATS URL: the receivers run in this process.
//! let running = signals_outbox::spawn(db.clone(), None, signals_outbox::Config::default()).await?;
//! while signals_outbox::stats(&db).await?.handled < 1 {
//!     tokio::time::sleep(std::time::Duration::from_millis(5)).await;
//! }
//! running.stop().await?;
//! # Ok(()) }
//! ```
//!
//! [`Delivery::tx`]: signals_core::durable::Delivery::tx

mod config;
pub mod dead;
mod embedded;
mod error;
mod handle;
mod observe;
mod relay;
pub mod schema;
mod store;
mod trace;
mod wait;
mod wake;
mod worker;

use signals_core::Db;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use async_nats;
pub use config::{Config, Retry};
pub use embedded::Embedded;
pub use error::{BrokerError, Error, Result};
pub use relay::{Relay, ensure_stream};
pub use schema::install;
pub use store::{MAX_BATCH, Purged, Stats, purge, stats};
pub use wait::{ReceiverStats, receiver_stats, wait_until_handled};
pub use worker::Worker;

/// The durable receivers of this program, as `Model.receiver`, sorted: what a worker or the
/// embedded runner serves (they log it when they start).
///
/// ```
/// let served: Vec<String> = signals_outbox::receivers();
/// assert!(served.windows(2).all(|w| w[0] <= w[1]));
/// ```
pub fn receivers() -> Vec<String> {
    let mut served: Vec<String> = signals_core::durable::receivers()
        .map(|r| format!("{}.{}", r.model, r.receiver))
        .collect();
    served.sort();
    served
}

/// Runners started by [`spawn`], stopped together by [`stop`](Self::stop).
#[derive(Debug)]
pub struct Running {
    stop: CancellationToken,
    tasks: JoinSet<(&'static str, Result<()>)>,
}

impl Running {
    /// Stops the runners: each finishes the delivery or round it is in, then returns. Every
    /// runner is awaited; the first error is returned and the others logged.
    pub async fn stop(mut self) -> Result<()> {
        self.stop.cancel();
        let mut first = None;
        while let Some(joined) = self.tasks.join_next().await {
            let err = match joined {
                Ok((_, Ok(()))) => continue,
                Ok((task, Err(err))) => {
                    tracing::error!(task, error = %err, "a runner failed");
                    err
                }
                Err(source) => Error::Task {
                    task: "runner",
                    source,
                },
            };
            if first.is_none() {
                first = Some(err);
            } else {
                tracing::error!(error = %err, "a further runner failed");
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Starts what runs the durable receivers of this program on tokio tasks: with no `nats_url`,
/// an [`Embedded`] runner; with one, a [`Relay`] and a [`Worker`] on that server (run more of
/// either elsewhere to spread the work). The same receivers run either way.
pub async fn spawn(db: Db, nats_url: Option<&str>, config: Config) -> Result<Running> {
    config.check()?;
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    match nats_url {
        None => {
            let runner = Embedded::new(db, config)?;
            let until = stop.clone().cancelled_owned();
            tasks.spawn(async move { ("embedded runner", runner.run(until).await) });
        }
        Some(url) => {
            let client = async_nats::connect(url)
                .await
                .map_err(|e| error::broker(&format!("connecting to {url}"), e))?;
            let js = async_nats::jetstream::new(client);
            let relay = Relay::new(db.clone(), js.clone(), config.clone()).await?;
            let worker = Worker::new(db, js, config).await?;
            let until = stop.clone().cancelled_owned();
            tasks.spawn(async move { ("relay", relay.run(until).await) });
            let until = stop.clone().cancelled_owned();
            tasks.spawn(async move { ("worker", worker.run(until).await) });
        }
    }
    Ok(Running { stop, tasks })
}

#[cfg(test)]
mod tests {
    use signals_core::Model;
    use signals_core::durable::Delivery;

    mod shop {
        use super::*;
        #[derive(Model, Clone, serde::Serialize, serde::Deserialize)]
        #[on_commit(notify, durable)]
        pub(super) struct Order {
            id: Option<i64>,
        }
        async fn notify(_: Order, _: &mut Delivery<'_>) -> signals_core::Result<()> {
            Ok(())
        }
    }

    mod billing {
        use super::*;
        #[derive(Model, Clone, serde::Serialize, serde::Deserialize)]
        #[on_commit(notify, durable)]
        pub(super) struct Order {
            id: Option<i64>,
        }
        async fn notify(_: Order, _: &mut Delivery<'_>) -> signals_core::Result<()> {
            Ok(())
        }
    }

    /// Two models of one name in different modules register receivers an event cannot tell
    /// apart: a runner refuses to start rather than run one for the other's events.
    #[tokio::test]
    async fn receivers_an_event_cannot_tell_apart_stop_the_runners() {
        let _ = (
            std::any::type_name::<shop::Order>(),
            std::any::type_name::<billing::Order>(),
        );
        let db = signals_core::Db::connect("sqlite::memory:")
            .await
            .expect("db");
        let err = crate::Embedded::new(db, crate::Config::default()).expect_err("ambiguous");
        assert!(
            err.to_string()
                .contains("two durable receivers are registered as `Order.notify`"),
            "{err}"
        );
    }
}
