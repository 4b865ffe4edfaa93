//! The outbox's rows: claiming partitions, reading pending events, marking them, the inbox and
//! the dead letters, and the counters. Statements are written with signals-core's [`Sql`]
//! (placeholders numbered from the values bound) and rows read into typed tuples.

use std::time::Duration;

use signals_core::durable::{Event, OUTBOX_TABLE, PARTITIONS, committed_from_name, now_millis};
use signals_core::{Backend, Db, FieldType, Sql, Tx};

use crate::error::{Error, Result};
use crate::schema::{DEAD_LETTER_TABLE, INBOX_TABLE, META_TABLE, PARTITION_TABLE};

/// Where an outbox row is: the `state` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FieldType)]
#[field(integer)]
pub(crate) enum State {
    /// Committed, neither published nor handled yet.
    Pending = 0,
    /// Published to the broker by a relay.
    Published = 1,
    /// Handled by the embedded runner.
    Handled = 2,
    /// Dead-lettered.
    Dead = 3,
}

/// One event read from the outbox.
#[derive(Debug, Clone)]
pub(crate) struct OutboxEvent {
    pub(crate) id: i64,
    pub(crate) event_id: String,
    pub(crate) model: String,
    pub(crate) receiver: String,
    pub(crate) event: String,
    pub(crate) payload: String,
    pub(crate) attempts: i64,
    /// When the event committed, in milliseconds since the epoch.
    pub(crate) created_at: i64,
    /// When it became due again (a retry of the embedded runner, or a replay of its dead
    /// letter), in milliseconds since the epoch; 0 for an event as committed.
    pub(crate) next_at: i64,
    /// Its instance's partition.
    pub(crate) part: i64,
    /// The save's W3C trace context, as JSON, if it had one.
    pub(crate) trace: Option<String>,
}

/// The columns of [`OutboxEvent`], in its order.
type EventRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
);

impl OutboxEvent {
    fn from_row(
        (id, event_id, model, receiver, event, payload, attempts, created_at, next_at, part, trace): EventRow,
    ) -> Self {
        OutboxEvent {
            id,
            event_id,
            model,
            receiver,
            event,
            payload,
            attempts,
            created_at,
            next_at,
            part,
            trace,
        }
    }

    /// The event as its receiver sees it, for delivery number `attempt`.
    pub(crate) fn to_event(&self, attempt: u32) -> Result<Event> {
        let committed = committed_from_name(&self.event).ok_or_else(|| Error::Corrupt {
            event_id: self.event_id.clone(),
            reason: format!(
                "the outbox row says `{}` committed; expected created, updated or deleted",
                self.event
            ),
        })?;
        Ok(Event {
            id: self.event_id.clone(),
            model: self.model.clone(),
            receiver: self.receiver.clone(),
            committed,
            attempt,
        })
    }
}

/// The condition that partition `p` has an event waiting: a probe of the outbox's
/// `(state, part, id)` index.
const HAS_PENDING: &str =
    "EXISTS (SELECT 1 FROM signals_outbox o WHERE o.state = 0 AND o.part = p.part)";

/// Where a round starts among the partitions: random, so that a runner claiming fewer than
/// all of them starves none.
fn rotation() -> i64 {
    (uuid::Uuid::new_v4().as_u128() % PARTITIONS as u128) as i64
}

/// The partitions a runner holds for one round: on PostgreSQL and MySQL, row locks
/// (`FOR UPDATE SKIP LOCKED`) of a transaction that ends with the round, so a runner that dies
/// releases them with its connection; on SQLite, a lease in the table, renewed each round.
pub(crate) struct Claim {
    pub(crate) parts: Vec<i64>,
    pub(crate) tx: Option<Tx>,
}

impl Claim {
    pub(crate) async fn take(db: &Db, owner: &str, lease: Duration, most: usize) -> Result<Claim> {
        let backend = db.backend();
        let owner = owner.to_owned();
        if backend == Backend::Sqlite {
            let now = now_millis();
            let until = later(now, lease);
            // Its own partitions first (renewed), then free or expired ones, up to `most`: one
            // statement, so two runners never take the same partition.
            let mut sql = Sql::new(backend);
            sql.push(&format!("UPDATE {PARTITION_TABLE} SET owner = "))
                .bind(&owner)?
                .push(", lease_until = ")
                .bind(&until)?
                .push(&format!(
                    " WHERE part IN (SELECT part FROM {PARTITION_TABLE} p \
                     WHERE (owner IS NULL OR owner = "
                ))
                .bind(&owner)?
                .push(" OR lease_until < ")
                .bind(&now)?
                .push(&format!(") AND {HAS_PENDING} ORDER BY owner IS NOT "))
                .bind(&owner)?
                .push(", (part + ")
                .bind(&rotation())?
                .push(&format!(") % {PARTITIONS} LIMIT {most})"));
            sql.execute(db).await?;
            let mut sql = Sql::new(backend);
            sql.push(&format!(
                "SELECT part FROM {PARTITION_TABLE} WHERE owner = "
            ))
            .bind(&owner)?
            .push(" AND lease_until = ")
            .bind(&until)?
            .push(" ORDER BY part");
            let parts: Vec<(i64,)> = sql.fetch_all(db).await?;
            return Ok(Claim {
                parts: parts.into_iter().map(|(p,)| p).collect(),
                tx: None,
            });
        }
        let mut tx = db.begin().await?;
        let mut sql = Sql::new(backend);
        sql.push(&format!(
            "SELECT part FROM {PARTITION_TABLE} p WHERE {HAS_PENDING} ORDER BY (part + "
        ))
        .bind(&rotation())?
        .push(&format!(
            ") % {PARTITIONS} LIMIT {most} FOR UPDATE SKIP LOCKED"
        ));
        let parts: Vec<(i64,)> = sql.fetch_all(&mut tx).await?;
        Ok(Claim {
            parts: parts.into_iter().map(|(p,)| p).collect(),
            tx: Some(tx),
        })
    }

    /// Ends the round: the transaction commits (releasing the partitions); a SQLite lease
    /// stays for the next round.
    pub(crate) async fn end(self) -> Result<()> {
        if let Some(tx) = self.tx {
            tx.commit().await?;
        }
        Ok(())
    }

    /// Up to `limit` pending events of the claimed partitions, due by now, oldest first.
    ///
    /// On PostgreSQL, one range of the `(state, part, id)` index per partition, merged: a
    /// single `ORDER BY id LIMIT n` over all of them made it walk the primary key instead,
    /// past every published row not yet purged (16 ms a round at 100,000 of them, and
    /// growing). SQLite and MariaDB take the single query's index well, and the merge cost
    /// them more than it saved (BENCHMARKS.md).
    pub(crate) async fn pending(&mut self, db: &Db, limit: usize) -> Result<Vec<OutboxEvent>> {
        if self.parts.is_empty() {
            return Ok(Vec::new());
        }
        const COLUMNS: &str = "id, event_id, model, receiver, event, payload, attempts, \
                               created_at, next_at, part, trace_context";
        let now = now_millis();
        let mut sql = Sql::new(db.backend());
        if db.backend() != Backend::Postgres {
            sql.push(&format!(
                "SELECT {COLUMNS} FROM {OUTBOX_TABLE} WHERE state = "
            ))
            .bind(&State::Pending)?
            .push(" AND next_at <= ")
            .bind(&now)?
            .push(" AND part IN (");
            sql.list(&self.parts, |sql, part| sql.bind(part).map(drop))?;
            sql.push(&format!(") ORDER BY id LIMIT {limit}"));
            let rows: Vec<EventRow> = match &mut self.tx {
                Some(tx) => sql.fetch_all(tx).await?,
                None => sql.fetch_all(db).await?,
            };
            return Ok(rows.into_iter().map(OutboxEvent::from_row).collect());
        }
        sql.push(&format!("SELECT {COLUMNS} FROM ("));
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                sql.push(" UNION ALL ");
            }
            sql.push(&format!(
                "SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM {OUTBOX_TABLE} WHERE state = "
            ))
            .bind(&State::Pending)?
            .push(" AND part = ")
            .bind(part)?
            .push(" AND next_at <= ")
            .bind(&now)?
            .push(&format!(" ORDER BY id LIMIT {limit}) p{i}"));
        }
        sql.push(&format!(") due ORDER BY id LIMIT {limit}"));
        let rows: Vec<EventRow> = match &mut self.tx {
            Some(tx) => sql.fetch_all(tx).await?,
            None => sql.fetch_all(db).await?,
        };
        Ok(rows.into_iter().map(OutboxEvent::from_row).collect())
    }

    /// Marks outbox rows published (their broker ack came back), in the round's transaction;
    /// a round has at most [`MAX_BATCH`] of them.
    pub(crate) async fn mark_published(&mut self, db: &Db, ids: &[i64]) -> Result<()> {
        let mut sql = Sql::new(db.backend());
        sql.push(&format!("UPDATE {OUTBOX_TABLE} SET state = "))
            .bind(&State::Published)?
            .push(", published_at = ")
            .bind(&now_millis())?
            .push(" WHERE id IN (");
        sql.list(ids, |sql, id| sql.bind(id).map(drop))?;
        // A worker may have dead-lettered an event before its relay marked it: it stays dead.
        sql.push(") AND state = ").bind(&State::Pending)?;
        match &mut self.tx {
            Some(tx) => sql.execute(tx).await?,
            None => sql.execute(db).await?,
        };
        Ok(())
    }
}

/// Gives up a SQLite lease at once (a clean shutdown), so another runner need not wait for it
/// to expire.
pub(crate) async fn release(db: &Db, owner: &str) -> Result<()> {
    if db.backend() == Backend::Sqlite {
        let mut sql = Sql::new(db.backend());
        sql.push(&format!(
            "UPDATE {PARTITION_TABLE} SET owner = NULL, lease_until = 0 WHERE owner = "
        ))
        .bind(&owner.to_owned())?;
        sql.execute(db).await?;
    }
    Ok(())
}

/// The most events one round reads, publishes and marks.
pub const MAX_BATCH: usize = 1000;

/// `INSERT .. (columns) VALUES (` that skips a row whose key exists, on `backend`; the caller
/// binds the values, closes with `)` and calls [`ignored`].
fn insert_ignore(backend: Backend, table: &str, columns: &str) -> Sql {
    let mut sql = Sql::new(backend);
    sql.push(backend.insert_or_ignore().0)
        .push(table)
        .push(" (")
        .push(columns)
        .push(") VALUES (");
    sql
}

/// Ends an [`insert_ignore`].
fn ignored(sql: &mut Sql) {
    let end = sql.backend().insert_or_ignore().1;
    sql.push(")").push(end);
}

/// Records `event` as handled in `tx`; `false` when it was already (the delivery is a
/// duplicate, and `tx` must not run the receiver).
pub(crate) async fn record_handled(tx: &mut Tx, event: &Event) -> Result<bool> {
    let mut sql = insert_ignore(tx.backend(), INBOX_TABLE, "event_id, receiver, handled_at");
    sql.bind(&event.id)?
        .push(", ")
        .bind(&format!("{}.{}", event.model, event.receiver))?
        .push(", ")
        .bind(&now_millis())?;
    ignored(&mut sql);
    Ok(sql.execute(tx).await? == 1)
}

/// Sets one outbox row's state in `tx` (the embedded runner, with the receiver's work).
pub(crate) async fn set_state(tx: &mut Tx, id: i64, state: State) -> Result<()> {
    let mut sql = Sql::new(tx.backend());
    sql.push(&format!("UPDATE {OUTBOX_TABLE} SET state = "))
        .bind(&state)?
        .push(" WHERE id = ")
        .bind(&id)?;
    sql.execute(tx).await?;
    Ok(())
}

/// A failed attempt of the embedded runner: tried again after `delay`.
pub(crate) async fn retry_later(
    db: &Db,
    id: i64,
    attempts: i64,
    delay: Duration,
    error: &str,
) -> Result<()> {
    let mut sql = Sql::new(db.backend());
    sql.push(&format!("UPDATE {OUTBOX_TABLE} SET attempts = "))
        .bind(&attempts)?
        .push(", next_at = ")
        .bind(&later(now_millis(), delay))?
        .push(", last_error = ")
        .bind(&error.to_owned())?
        .push(" WHERE id = ")
        .bind(&id)?;
    sql.execute(db).await?;
    Ok(())
}

/// A dead letter: an event as the outbox or the broker gave it (its kind as written, readable
/// or not), the last error, and how many deliveries were tried.
#[derive(Clone, Copy)]
pub(crate) struct DeadLetter<'a> {
    pub(crate) event_id: &'a str,
    pub(crate) model: &'a str,
    pub(crate) receiver: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) error: &'a str,
    pub(crate) attempts: i64,
}

impl<'a> DeadLetter<'a> {
    /// The dead letter of an outbox row.
    pub(crate) fn of(row: &'a OutboxEvent, error: &'a str, attempts: i64) -> Self {
        DeadLetter {
            event_id: &row.event_id,
            model: &row.model,
            receiver: &row.receiver,
            kind: &row.event,
            payload: &row.payload,
            error,
            attempts,
        }
    }
}

/// Writes a dead letter (once: a repeated one is ignored) and, when `outbox_id` names its
/// outbox row, marks that row dead, in one transaction.
pub(crate) async fn dead_letter(
    db: &Db,
    letter: &DeadLetter<'_>,
    outbox_id: Option<i64>,
) -> Result<()> {
    let mut tx = db.begin().await?;
    let mut sql = insert_ignore(
        db.backend(),
        DEAD_LETTER_TABLE,
        "event_id, model, receiver, event, payload, error, attempts, failed_at",
    );
    let texts = [
        letter.event_id,
        letter.model,
        letter.receiver,
        letter.kind,
        letter.payload,
        letter.error,
    ];
    sql.list(texts, |sql, text| sql.bind(&text.to_owned()).map(drop))?;
    sql.push(", ")
        .bind(&letter.attempts)?
        .push(", ")
        .bind(&now_millis())?;
    ignored(&mut sql);
    sql.execute(&mut tx).await?;
    match outbox_id {
        Some(id) => set_state(&mut tx, id, State::Dead).await?,
        None => {
            // A worker's: the outbox row (published, or about to be marked so) is dead too, so
            // that discarding the letter takes it and nothing waits for it.
            let mut sql = Sql::new(db.backend());
            sql.push(&format!("UPDATE {OUTBOX_TABLE} SET state = "))
                .bind(&State::Dead)?
                .push(" WHERE event_id = ")
                .bind(&letter.event_id.to_owned())?
                .push(" AND state IN (")
                .bind(&State::Pending)?
                .push(", ")
                .bind(&State::Published)?
                .push(")");
            sql.execute(&mut tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// `now` plus `delay` in milliseconds, saturating: a backoff of any length is a time to come.
pub(crate) fn later(now: i64, delay: Duration) -> i64 {
    now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
}

/// `now` minus `age` in milliseconds, saturating: an age of any length is a time past.
pub(crate) fn earlier(now: i64, age: Duration) -> i64 {
    now.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
}

/// How many events are where, read from the tables: the same figures from every process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Committed, neither published nor handled yet.
    pub pending: u64,
    /// Published to the broker by a relay (and not dead-lettered since).
    pub published: u64,
    /// Handled by a receiver (the inbox), through the broker or in-process.
    pub handled: u64,
    /// Failed every attempt (the dead letters).
    pub dead: u64,
}

/// The counters of the outbox in `db`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_outbox::Result<()> {
/// let db = signals_core::Db::connect("sqlite::memory:").await?;
/// signals_outbox::install(&db).await?;
/// let stats = signals_outbox::stats(&db).await?;
/// assert_eq!((stats.pending, stats.published, stats.handled, stats.dead), (0, 0, 0, 0));
/// # Ok(()) }
/// ```
pub async fn stats(db: &Db) -> Result<Stats> {
    let mut sql = Sql::new(db.backend());
    sql.push(&format!(
        "SELECT (SELECT COUNT(*) FROM {OUTBOX_TABLE} WHERE state = "
    ))
    .bind(&State::Pending)?
    .push(&format!(
        "), (SELECT COUNT(*) FROM {OUTBOX_TABLE} WHERE state = "
    ))
    .bind(&State::Published)?
    .push(&format!(
        "), (SELECT COUNT(*) FROM {INBOX_TABLE}), (SELECT COUNT(*) FROM {DEAD_LETTER_TABLE})"
    ));
    let counts: Option<(i64, i64, i64, i64)> = sql.fetch_optional(db).await?;
    let (pending, published, handled, dead) = counts.unwrap_or_default();
    let n = |count: i64| count.max(0) as u64;
    Ok(Stats {
        pending: n(pending),
        published: n(published),
        handled: n(handled),
        dead: n(dead),
    })
}

/// What [`purge`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Purged {
    /// Outbox rows published or handled.
    pub outbox: u64,
    /// Inbox rows.
    pub inbox: u64,
}

/// Removes what a busy outbox accumulates: published and handled outbox rows, and inbox rows,
/// older than `age`. Pending events and dead letters stay.
///
/// The inbox is what stops a late duplicate, so `age` is how long it remembers: keep it at
/// least the stream's retention ([`Config::retention`](crate::Config::retention), 7 days by
/// default), the longest time JetStream may deliver an event again (a consumer made anew
/// starts from the stream's first message). The time before which the inbox was purged is
/// recorded: a worker given an event that committed before it (the inbox may have forgotten
/// that it handled it) does not run it but dead-letters it, saying so, for an operator to
/// replay if it was never handled.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_outbox::Result<()> {
/// use std::time::Duration;
/// let db = signals_core::Db::connect("sqlite::memory:").await?;
/// signals_outbox::install(&db).await?;
/// let purged = signals_outbox::purge(&db, Duration::from_secs(7 * 24 * 3600)).await?;
/// assert_eq!((purged.outbox, purged.inbox), (0, 0));
/// # Ok(()) }
/// ```
pub async fn purge(db: &Db, age: Duration) -> Result<Purged> {
    let before = earlier(now_millis(), age);
    let backend = db.backend();
    let mut sql = Sql::new(backend);
    sql.push(&format!("DELETE FROM {OUTBOX_TABLE} WHERE state IN ("))
        .bind(&State::Published)?
        .push(", ")
        .bind(&State::Handled)?
        .push(") AND created_at < ")
        .bind(&before)?;
    let outbox = sql.execute(db).await?;
    // The horizon first: a worker that reads it late refuses an event it could still have
    // recognized, never the other way round.
    let mut sql = Sql::new(backend);
    sql.push(&format!("UPDATE {META_TABLE} SET value = "))
        .bind(&before)?
        .push(" WHERE name = ")
        .bind(&INBOX_HORIZON.to_owned())?
        .push(" AND value < ")
        .bind(&before)?;
    sql.execute(db).await?;
    let mut sql = Sql::new(backend);
    sql.push(&format!("DELETE FROM {INBOX_TABLE} WHERE handled_at < "))
        .bind(&before)?;
    let inbox = sql.execute(db).await?;
    Ok(Purged { outbox, inbox })
}

/// The meta row holding the inbox's horizon: events handled before it may have been purged
/// from the inbox.
pub(crate) const INBOX_HORIZON: &str = "inbox_horizon";

/// The time (milliseconds since the epoch) before which the inbox may have forgotten events,
/// read in `tx`: 0 when it was never purged.
pub(crate) async fn inbox_horizon(tx: &mut Tx) -> Result<i64> {
    let mut sql = Sql::new(tx.backend());
    sql.push(&format!("SELECT value FROM {META_TABLE} WHERE name = "))
        .bind(&INBOX_HORIZON.to_owned())?;
    let horizon: Option<(i64,)> = sql.fetch_optional(tx).await?;
    Ok(horizon.map_or(0, |(h,)| h))
}
