//! The outbox's rows: claiming partitions, reading pending events, marking them, the inbox and
//! the dead letters, and the counters.

use std::time::Duration;

use signals_core::durable::{Event, OUTBOX_TABLE, PARTITIONS, committed_from_name, now_millis};
use signals_core::{Backend, Db, Tx};

use crate::db::{Col, On, V, execute, fetch, insert_ignore, marks};
use crate::error::{Error, Result};
use crate::schema::{DEAD_LETTER_TABLE, INBOX_TABLE, META_TABLE, PARTITION_TABLE};

/// States of an outbox row.
pub(crate) const PENDING: i64 = 0;
pub(crate) const PUBLISHED: i64 = 1;
pub(crate) const HANDLED: i64 = 2;
pub(crate) const DEAD: i64 = 3;

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
}

impl OutboxEvent {
    /// The event as its receiver sees it, for delivery number `attempt`.
    pub(crate) fn to_event(&self, attempt: u32) -> Result<Event> {
        let committed = committed_from_name(&self.event).ok_or_else(|| {
            Error::Config(format!(
                "outbox event {} says `{}` committed; expected created, updated or deleted",
                self.event_id, self.event
            ))
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
        if backend == Backend::Sqlite {
            let now = now_millis();
            let until = now + lease.as_millis() as i64;
            // Its own partitions first (renewed), then free or expired ones, up to `most`: one
            // statement, so two runners never take the same partition.
            execute(
                On::Pool(db.pool()),
                backend,
                &format!(
                    "UPDATE {PARTITION_TABLE} SET owner = ?, lease_until = ? \
                     WHERE part IN (SELECT part FROM {PARTITION_TABLE} p \
                     WHERE (owner IS NULL OR owner = ? OR lease_until < ?) AND {HAS_PENDING} \
                     ORDER BY owner IS NOT ?, (part + ?) % {PARTITIONS} LIMIT {most})"
                ),
                &[
                    V::T(owner.into()),
                    V::I(until),
                    V::T(owner.into()),
                    V::I(now),
                    V::T(owner.into()),
                    V::I(rotation()),
                ],
            )
            .await?;
            let rows = fetch(
                On::Pool(db.pool()),
                backend,
                &format!(
                    "SELECT part FROM {PARTITION_TABLE} WHERE owner = ? AND lease_until = ? \
                     ORDER BY part"
                ),
                &[V::T(owner.into()), V::I(until)],
                &[Col::I],
            )
            .await?;
            return Ok(Claim {
                parts: rows.iter().map(|r| r[0].int()).collect(),
                tx: None,
            });
        }
        let mut tx = db.begin().await?;
        let rows = fetch(
            On::Conn(tx.conn().await?),
            backend,
            &format!(
                "SELECT part FROM {PARTITION_TABLE} p WHERE {HAS_PENDING} \
                 ORDER BY (part + ?) % {PARTITIONS} LIMIT {most} FOR UPDATE SKIP LOCKED"
            ),
            &[V::I(rotation())],
            &[Col::I],
        )
        .await?;
        Ok(Claim {
            parts: rows.iter().map(|r| r[0].int()).collect(),
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
    pub(crate) async fn pending(&mut self, db: &Db, limit: usize) -> Result<Vec<OutboxEvent>> {
        let parts = std::mem::take(&mut self.parts);
        let res = pending(self.on(db).await?, db.backend(), &parts, limit).await;
        self.parts = parts;
        res
    }

    /// Where the round's reads and marks run: the claim's transaction, or the pool.
    pub(crate) async fn on<'a>(&'a mut self, db: &'a Db) -> Result<On<'a>> {
        Ok(match &mut self.tx {
            Some(tx) => On::Conn(tx.conn().await?),
            None => On::Pool(db.pool()),
        })
    }
}

/// Gives up a SQLite lease at once (a clean shutdown), so another runner need not wait for it
/// to expire.
pub(crate) async fn release(db: &Db, owner: &str) -> Result<()> {
    if db.backend() == Backend::Sqlite {
        execute(
            On::Pool(db.pool()),
            db.backend(),
            &format!("UPDATE {PARTITION_TABLE} SET owner = NULL, lease_until = 0 WHERE owner = ?"),
            &[V::T(owner.into())],
        )
        .await?;
    }
    Ok(())
}

/// Up to `limit` pending events of `parts`, due by now, oldest first.
async fn pending(
    on: On<'_>,
    backend: Backend,
    parts: &[i64],
    limit: usize,
) -> Result<Vec<OutboxEvent>> {
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, event_id, model, receiver, event, payload, attempts, created_at \
         FROM {OUTBOX_TABLE} WHERE state = ? AND next_at <= ? AND part IN ({}) \
         ORDER BY id LIMIT {limit}",
        marks(parts.len())
    );
    let mut vals = vec![V::I(PENDING), V::I(now_millis())];
    vals.extend(parts.iter().map(|p| V::I(*p)));
    let rows = fetch(
        on,
        backend,
        &sql,
        &vals,
        &[
            Col::I,
            Col::T,
            Col::T,
            Col::T,
            Col::T,
            Col::T,
            Col::I,
            Col::I,
        ],
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter();
            let mut next = || r.next().unwrap_or(V::I(0));
            OutboxEvent {
                id: next().int(),
                event_id: next().into_text(),
                model: next().into_text(),
                receiver: next().into_text(),
                event: next().into_text(),
                payload: next().into_text(),
                attempts: next().int(),
                created_at: next().int(),
            }
        })
        .collect())
}

/// Marks outbox rows published (their broker ack came back); a round has at most
/// `MAX_BATCH` of them.
pub(crate) async fn mark_published(on: On<'_>, backend: Backend, ids: &[i64]) -> Result<()> {
    let sql = format!(
        "UPDATE {OUTBOX_TABLE} SET state = ?, published_at = ? WHERE id IN ({})",
        marks(ids.len())
    );
    let mut vals = vec![V::I(PUBLISHED), V::I(now_millis())];
    vals.extend(ids.iter().map(|i| V::I(*i)));
    execute(on, backend, &sql, &vals).await?;
    Ok(())
}

/// The most events one round reads, publishes and marks.
pub const MAX_BATCH: usize = 1000;

/// Records `event` as handled in `tx`; `false` when it was already (the delivery is a
/// duplicate, and `tx` must not run the receiver).
pub(crate) async fn record_handled(tx: &mut Tx, event: &Event) -> Result<bool> {
    let backend = tx.backend();
    let sql = insert_ignore(
        backend,
        INBOX_TABLE,
        "event_id, receiver, handled_at",
        "(?, ?, ?)",
    );
    let vals = [
        V::T(event.id.clone()),
        V::T(format!("{}.{}", event.model, event.receiver)),
        V::I(now_millis()),
    ];
    Ok(execute(On::Conn(tx.conn().await?), backend, &sql, &vals).await? == 1)
}

/// Sets one outbox row's state in `tx` (the embedded runner, with the receiver's work).
pub(crate) async fn set_state(tx: &mut Tx, id: i64, state: i64) -> Result<()> {
    let backend = tx.backend();
    execute(
        On::Conn(tx.conn().await?),
        backend,
        &format!("UPDATE {OUTBOX_TABLE} SET state = ? WHERE id = ?"),
        &[V::I(state), V::I(id)],
    )
    .await?;
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
    execute(
        On::Pool(db.pool()),
        db.backend(),
        &format!(
            "UPDATE {OUTBOX_TABLE} SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?"
        ),
        &[
            V::I(attempts),
            V::I(now_millis() + delay.as_millis() as i64),
            V::T(error.into()),
            V::I(id),
        ],
    )
    .await?;
    Ok(())
}

/// A dead letter: an event as the outbox or the broker gave it (its kind as written, readable
/// or not), the last error, and how many deliveries were tried.
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
    let backend = db.backend();
    let mut tx = db.begin().await?;
    let sql = insert_ignore(
        backend,
        DEAD_LETTER_TABLE,
        "event_id, model, receiver, event, payload, error, attempts, failed_at",
        "(?, ?, ?, ?, ?, ?, ?, ?)",
    );
    let vals = [
        V::T(letter.event_id.into()),
        V::T(letter.model.into()),
        V::T(letter.receiver.into()),
        V::T(letter.kind.into()),
        V::T(letter.payload.into()),
        V::T(letter.error.into()),
        V::I(letter.attempts),
        V::I(now_millis()),
    ];
    execute(On::Conn(tx.conn().await?), backend, &sql, &vals).await?;
    if let Some(id) = outbox_id {
        set_state(&mut tx, id, DEAD).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// How many events are where, read from the tables: the same figures from every process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Committed, neither published nor handled yet.
    pub pending: u64,
    /// Published to the broker by a relay.
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
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM {OUTBOX_TABLE} WHERE state = {PENDING}), \
         (SELECT COUNT(*) FROM {OUTBOX_TABLE} WHERE state = {PUBLISHED}), \
         (SELECT COUNT(*) FROM {INBOX_TABLE}), \
         (SELECT COUNT(*) FROM {DEAD_LETTER_TABLE})"
    );
    let rows = fetch(
        On::Pool(db.pool()),
        db.backend(),
        &sql,
        &[],
        &[Col::I, Col::I, Col::I, Col::I],
    )
    .await?;
    let n = |i: usize| rows.first().map_or(0, |r| r[i].int().max(0) as u64);
    Ok(Stats {
        pending: n(0),
        published: n(1),
        handled: n(2),
        dead: n(3),
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
    let before = now_millis() - age.as_millis() as i64;
    let outbox = execute(
        On::Pool(db.pool()),
        db.backend(),
        &format!("DELETE FROM {OUTBOX_TABLE} WHERE state IN (?, ?) AND created_at < ?"),
        &[V::I(PUBLISHED), V::I(HANDLED), V::I(before)],
    )
    .await?;
    // The horizon first: a worker that reads it late refuses an event it could still have
    // recognized, never the other way round.
    execute(
        On::Pool(db.pool()),
        db.backend(),
        &format!("UPDATE {META_TABLE} SET value = ? WHERE name = ? AND value < ?"),
        &[V::I(before), V::T(INBOX_HORIZON.into()), V::I(before)],
    )
    .await?;
    let inbox = execute(
        On::Pool(db.pool()),
        db.backend(),
        &format!("DELETE FROM {INBOX_TABLE} WHERE handled_at < ?"),
        &[V::I(before)],
    )
    .await?;
    Ok(Purged { outbox, inbox })
}

/// The meta row holding the inbox's horizon: events handled before it may have been purged
/// from the inbox.
pub(crate) const INBOX_HORIZON: &str = "inbox_horizon";

/// The time (milliseconds since the epoch) before which the inbox may have forgotten events,
/// read in `tx`: 0 when it was never purged.
pub(crate) async fn inbox_horizon(tx: &mut Tx) -> Result<i64> {
    let backend = tx.backend();
    let rows = fetch(
        On::Conn(tx.conn().await?),
        backend,
        &format!("SELECT value FROM {META_TABLE} WHERE name = ?"),
        &[V::T(INBOX_HORIZON.into())],
        &[Col::I],
    )
    .await?;
    Ok(rows.first().map_or(0, |r| r[0].int()))
}
