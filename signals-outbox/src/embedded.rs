//! The in-process runner: durable receivers run from the outbox table itself, with no broker,
//! under the same rules as workers (inbox, retries with backoff, dead letters).

use std::future::Future;
use std::sync::Arc;

use signals_core::durable::Event;
use signals_core::{Db, Tx};

use crate::config::Config;
use crate::error::Result;
use crate::handle::{Outcome, deliver_in};
use crate::observe::Observe;
use crate::store::{self, Claim, DeadLetter, OutboxEvent};
use crate::trace;
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
    observe: Arc<Observe>,
}

impl Embedded {
    /// A runner on `db`; fails when `config` cannot work (or gives retries to a receiver this
    /// program does not have).
    pub fn new(db: Db, config: Config) -> Result<Self> {
        config.check()?;
        config.check_receivers()?;
        let observe = Arc::new(Observe::new(&config));
        Ok(Embedded {
            db,
            config,
            observe,
        })
    }

    /// One round: claims partitions, runs up to a batch of due events. Returns how many
    /// deliveries it made (handled, duplicates and failures alike).
    ///
    /// The round's events run in one transaction, each in a savepoint of its own with its
    /// inbox row: a failing receiver undoes only its own event, and the round pays one commit
    /// instead of one per event. Should that commit fail (a deferred constraint, say), the
    /// round's events run again one transaction each, so one event cannot hold up the rest.
    pub async fn run_once(&self) -> Result<usize> {
        let db = &self.db;
        let mut claim =
            Claim::take(db, &self.config.name, self.config.lease, self.config.claim).await?;
        let rows = claim.pending(db, self.config.batch).await?;
        let n = rows.len();
        if n > 0 {
            let failures = match self.deliver_together(&rows).await {
                Ok(failures) => failures,
                Err(err) => {
                    tracing::warn!(error = %err, "the round's commit failed; one event at a time");
                    let mut failures = Vec::new();
                    for row in &rows {
                        if let Some(failure) = self.deliver_alone(row).await? {
                            failures.push(failure);
                        }
                    }
                    failures
                }
            };
            for failed in failures {
                self.settle(failed).await?;
            }
        }
        claim.end().await?;
        if n > 0 {
            crate::wake::settled();
        }
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
        tracing::debug!(
            receivers = %crate::handle::served().join(", "),
            "embedded runner serving durable receivers"
        );
        let mut wake = Wake::new(&self.db, self.config.local_wakeups).await;
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let round = self.run_once().await;
            self.observe.refresh(&self.db).await;
            let full = match round {
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

    /// Runs `rows` in one transaction, a savepoint each; returns those that failed.
    async fn deliver_together<'r>(&self, rows: &'r [OutboxEvent]) -> Result<Vec<Failed<'r>>> {
        let mut failures = Vec::new();
        let mut settled = Vec::with_capacity(rows.len());
        let mut tx = self.db.begin().await?;
        for row in rows {
            let event = match row.to_event(attempt(row)) {
                Ok(event) => event,
                Err(err) => {
                    failures.push(Failed::unreadable(row, err));
                    continue;
                }
            };
            // Each event's saves are judged by `changed(..)` receivers as a worker, running
            // it in a transaction of its own, would judge them.
            tx.__judge_changes_afresh();
            let res = tx
                .savepoint(async |tx: &mut Tx| {
                    let trace = trace::from_json(row.trace.as_deref());
                    match deliver_in(tx, &event, &row.payload, Some(row.id), None, &trace).await? {
                        Outcome::Failed(failure) => Err(Undo(failure.error, failure.permanent)),
                        outcome => Ok(outcome),
                    }
                })
                .await;
            match res {
                Ok(outcome) => settled.push((row, matches!(outcome, Outcome::Ran))),
                Err(Undo(error, permanent)) => failures.push(Failed {
                    row,
                    event: Some(event),
                    error,
                    permanent,
                }),
            }
        }
        tx.commit().await?;
        for (row, ran) in settled {
            self.observe_settled(row, ran);
        }
        Ok(failures)
    }

    /// Counts a delivery whose transaction committed: handled, or a duplicate.
    fn observe_settled(&self, row: &OutboxEvent, ran: bool) {
        if ran {
            self.observe
                .handled(&row.model, &row.receiver, row.created_at);
        } else {
            self.observe.duplicate(&row.model, &row.receiver);
        }
    }

    /// Runs `row` in a transaction of its own; returns it when it failed.
    async fn deliver_alone<'r>(&self, row: &'r OutboxEvent) -> Result<Option<Failed<'r>>> {
        let event = match row.to_event(attempt(row)) {
            Ok(event) => event,
            Err(err) => return Ok(Some(Failed::unreadable(row, err))),
        };
        let mut tx = self.db.begin().await?;
        let trace = trace::from_json(row.trace.as_deref());
        let outcome = deliver_in(&mut tx, &event, &row.payload, Some(row.id), None, &trace).await?;
        let (error, permanent) = match outcome {
            Outcome::Failed(failure) => (failure.error, failure.permanent),
            outcome => match tx.commit().await {
                Ok(()) => {
                    self.observe_settled(row, matches!(outcome, Outcome::Ran));
                    return Ok(None);
                }
                Err(err) => (format!("commit failed: {err}"), false),
            },
        };
        Ok(Some(Failed {
            row,
            event: Some(event),
            error,
            permanent,
        }))
    }

    /// A failed delivery: tried again after the backoff, or dead-lettered after the
    /// receiver's last attempt (at once for an event that cannot be read, a receiver this
    /// program lacks, or a permanent error).
    async fn settle(&self, failed: Failed<'_>) -> Result<()> {
        let Failed {
            row,
            event,
            error,
            permanent,
        } = failed;
        let attempt = attempt(row);
        self.observe.failed(&row.model, &row.receiver);
        let letter = DeadLetter::of(row, &error, i64::from(attempt));
        let Some(event) = event else {
            // The row's own `event` is kept in the dead letter, unreadable as it is.
            tracing::error!(event_id = %row.event_id, %error, "unreadable event dead-lettered");
            self.observe.dead(&row.model, &row.receiver);
            return store::dead_letter(&self.db, &letter, Some(row.id)).await;
        };
        let retry = self.config.retry_of(&event.model, &event.receiver);
        if permanent || attempt >= retry.attempts() {
            tracing::error!(event_id = %event.id, %error, attempt, "dead-lettered");
            self.observe.dead(&row.model, &row.receiver);
            return store::dead_letter(&self.db, &letter, Some(row.id)).await;
        }
        let delay = retry.delay(attempt);
        store::retry_later(&self.db, row.id, i64::from(attempt), delay, &error).await
    }
}

/// A failed delivery: the row, its event (`None` when it cannot be read), the error, and
/// whether no later delivery can succeed.
struct Failed<'r> {
    row: &'r OutboxEvent,
    event: Option<Event>,
    error: String,
    permanent: bool,
}

impl<'r> Failed<'r> {
    fn unreadable(row: &'r OutboxEvent, err: crate::error::Error) -> Self {
        Failed {
            row,
            event: None,
            error: err.to_string(),
            permanent: true,
        }
    }
}

/// Which delivery of `row` this is, from 1.
fn attempt(row: &OutboxEvent) -> u32 {
    u32::try_from(row.attempts + 1).unwrap_or(u32::MAX)
}

/// A savepoint's failure: rolled back, the error kept, and whether it is permanent.
struct Undo(String, bool);

impl From<signals_core::Error> for Undo {
    fn from(err: signals_core::Error) -> Self {
        Undo(err.to_string(), false)
    }
}

impl From<crate::error::Error> for Undo {
    fn from(err: crate::error::Error) -> Self {
        Undo(err.to_string(), false)
    }
}
