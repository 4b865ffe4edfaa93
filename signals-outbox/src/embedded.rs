//! The in-process runner: durable receivers run from the outbox table itself, with no broker,
//! under the same rules as workers (inbox, retries with backoff, dead letters).

use std::future::Future;

use signals_core::Db;

use crate::config::Config;
use crate::error::Result;
use crate::handle::{Outcome, handle};
use crate::store::{self, Claim, OutboxEvent};
use crate::wake::Wake;

/// Runs durable receivers in this process, straight from the outbox: the default when no
/// broker is configured. Several may run, in one process or many, against one database: each
/// round claims the outbox's partitions as a relay does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_outbox::Result<()> {
/// use signals_core::{Db, Model};
/// use signals_core::durable::Delivery;
///
/// #[derive(Model, Clone, serde::Serialize, serde::Deserialize)]
/// #[on_commit(greet, durable)]
/// struct Guest { id: Option<i64>, name: String }
///
/// async fn greet(guest: Guest, delivery: &mut Delivery<'_>) -> signals_core::Result<()> {
///     let mut note = Note { id: None, text: format!("hello, {}", guest.name) };
///     note.save(delivery.tx()).await?; // once, however often the event is delivered
///     Ok(())
/// }
///
/// #[derive(Model)]
/// struct Note { id: Option<i64>, text: String }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE guest (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").await?;
/// db.execute_unprepared("CREATE TABLE note (id INTEGER PRIMARY KEY, text TEXT NOT NULL)").await?;
/// signals_outbox::install(&db).await?;
///
/// Guest { id: None, name: "Ada".into() }.save(&db).await?; // the event commits with the row
/// let runner = signals_outbox::Embedded::new(db.clone(), signals_outbox::Config::default())?;
/// assert_eq!(runner.drain().await?, 1);
/// assert_eq!(Note::all(&db).await?[0].text, "hello, Ada");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Embedded {
    db: Db,
    config: Config,
}

impl Embedded {
    /// A runner on `db`; fails when `config` cannot work.
    pub fn new(db: Db, config: Config) -> Result<Self> {
        config.check()?;
        Ok(Embedded { db, config })
    }

    /// One round: claims partitions, runs up to a batch of due events. Returns how many
    /// deliveries it made (handled, duplicates and failures alike).
    pub async fn run_once(&self) -> Result<usize> {
        let db = &self.db;
        let mut claim =
            Claim::take(db, &self.config.name, self.config.lease, self.config.claim).await?;
        let events = claim.pending(db, self.config.batch).await?;
        let n = events.len();
        for event in events {
            self.deliver(event).await?;
        }
        claim.end().await?;
        Ok(n)
    }

    /// Runs rounds until no event is due; returns the deliveries made. A command-line program
    /// calls this before it exits, so that what it committed is handled. Events waiting for
    /// a retry later stay for a later run.
    pub async fn drain(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self.run_once().await?;
            total += n;
            if n == 0 {
                store::release(&self.db, &self.config.name).await?;
                return Ok(total);
            }
        }
    }

    /// Runs until `shutdown` completes: a round whenever events may be due, waking at once
    /// for commits of this process (and on PostgreSQL of every process), and every poll
    /// interval otherwise. A failing round (the database away) is logged and tried again.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut wake = Wake::new(&self.db, self.config.local_wakeups).await;
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let full = match self.run_once().await {
                Ok(n) => n >= self.config.batch,
                Err(err) => {
                    tracing::warn!(error = %err, "embedded outbox round failed; retrying");
                    false
                }
            };
            if full {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = wake.wait(self.config.poll) => {}
            }
        }
        store::release(&self.db, &self.config.name).await
    }

    async fn deliver(&self, row: OutboxEvent) -> Result<()> {
        let attempt = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
        let event = match row.to_event(attempt) {
            Ok(event) => event,
            Err(err) => {
                let event = signals_core::durable::Event {
                    id: row.event_id.clone(),
                    model: row.model.clone(),
                    receiver: row.receiver.clone(),
                    committed: signals_core::Committed::Deleted,
                    attempt,
                };
                let error = err.to_string();
                return store::dead_letter(&self.db, &event, &row.payload, &error, Some(row.id))
                    .await;
            }
        };
        match handle(&self.db, &event, &row.payload, Some(row.id)).await? {
            Outcome::Ran | Outcome::Duplicate => Ok(()),
            Outcome::Failed(error) if attempt >= self.config.max_attempts => {
                tracing::error!(event_id = %event.id, %error, attempt, "dead-lettered");
                store::dead_letter(&self.db, &event, &row.payload, &error, Some(row.id)).await
            }
            Outcome::Failed(error) => {
                let delay = self.config.delay(attempt);
                store::retry_later(&self.db, row.id, i64::from(attempt), delay, &error).await
            }
        }
    }
}
