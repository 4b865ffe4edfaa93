//! Dead letters: the events that failed every attempt (or failed for good), with their last
//! error. List them, replay them (one, a selection, or all) once the cause is fixed, discard
//! them, and purge the old ones; the example's `outbox dead`, `outbox replay`, `outbox
//! discard` and `outbox purge-dead` commands call these.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_outbox::Result<()> {
//! use signals_outbox::dead::{self, Select};
//!
//! let db = signals_core::Db::connect("sqlite::memory:").await?;
//! signals_outbox::install(&db).await?;
//! for letter in dead::list(&db, &Select::all().receiver("send_welcome"), 50).await? {
//!     println!("{} {}.{}: {}", letter.event_id, letter.model, letter.receiver, letter.error);
//! }
//! // After a fix is deployed: the runners handle them again, each once.
//! let replayed = dead::replay(&db, &Select::all().model("User")).await?;
//! assert_eq!(replayed, 0);
//! # Ok(()) }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use signals_core::durable::{OUTBOX_TABLE, now_millis, partition};
use signals_core::{Backend, Db, Sql, Tx};

use crate::error::{Error, Result};
use crate::schema::DEAD_LETTER_TABLE;
use crate::store::State;

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The event's id, as its receiver saw it ([`Event::id`](signals_core::durable::Event::id)).
    pub event_id: String,
    /// The model's name.
    pub model: String,
    /// The receiver's name.
    pub receiver: String,
    /// What committed, as the outbox wrote it: `created`, `updated` or `deleted` (or what an
    /// unreadable row held instead).
    pub committed: String,
    /// The instance as JSON, as its save committed it.
    pub payload: String,
    /// The last delivery's error.
    pub error: String,
    /// How many deliveries were made.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub failed_at: SystemTime,
}

/// Which dead letters an operation takes: all of them, narrowed by each condition added
/// (conditions combine with AND).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use signals_outbox::dead::Select;
/// let old = Select::all().failed_before(SystemTime::now() - Duration::from_secs(86_400));
/// let two = Select::events(["0d6c…", "9f1e…"]);
/// let mails = Select::all().model("User").receiver("send_welcome");
/// # let _ = (old, two, mails);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Select {
    event_ids: Option<Vec<String>>,
    model: Option<String>,
    receiver: Option<String>,
    failed_before: Option<i64>,
    failed_after: Option<i64>,
}

impl Select {
    /// Every dead letter.
    pub fn all() -> Self {
        Select::default()
    }

    /// The dead letter of event `id`.
    pub fn event(id: impl Into<String>) -> Self {
        Select::events([id.into()])
    }

    /// The dead letters of these events.
    pub fn events<I: IntoIterator<Item = S>, S: Into<String>>(ids: I) -> Self {
        Select {
            event_ids: Some(ids.into_iter().map(Into::into).collect()),
            ..Select::default()
        }
    }

    /// Only events of model `model`.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Only events of receivers named `receiver`.
    pub fn receiver(mut self, receiver: impl Into<String>) -> Self {
        self.receiver = Some(receiver.into());
        self
    }

    /// Only those dead-lettered before `time`.
    pub fn failed_before(mut self, time: SystemTime) -> Self {
        self.failed_before = Some(millis(time));
        self
    }

    /// Only those dead-lettered at `time` or after.
    pub fn failed_after(mut self, time: SystemTime) -> Self {
        self.failed_after = Some(millis(time));
        self
    }

    /// This selection as several, each naming at most [`IDS_PER_STATEMENT`] events (every
    /// backend limits the values a statement binds).
    fn parts(&self) -> Vec<Select> {
        match &self.event_ids {
            Some(ids) if ids.len() > IDS_PER_STATEMENT => ids
                .chunks(IDS_PER_STATEMENT)
                .map(|ids| Select {
                    event_ids: Some(ids.to_vec()),
                    ..self.clone()
                })
                .collect(),
            _ => vec![self.clone()],
        }
    }

    /// Appends ` WHERE ..` for these conditions.
    fn push_where(&self, sql: &mut Sql) -> Result<()> {
        sql.push(" WHERE 1 = 1");
        if let Some(ids) = &self.event_ids {
            if ids.is_empty() {
                sql.push(" AND 1 = 0");
            } else {
                sql.push(" AND event_id IN (");
                sql.list(ids, |sql, id| sql.bind(id).map(drop))?;
                sql.push(")");
            }
        }
        if let Some(model) = &self.model {
            sql.push(" AND model = ").bind(model)?;
        }
        if let Some(receiver) = &self.receiver {
            sql.push(" AND receiver = ").bind(receiver)?;
        }
        if let Some(before) = self.failed_before {
            sql.push(" AND failed_at < ").bind(&before)?;
        }
        if let Some(after) = self.failed_after {
            sql.push(" AND failed_at >= ").bind(&after)?;
        }
        Ok(())
    }
}

fn millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn time_of(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// The columns read, in [`LetterRow`]'s order.
const COLUMNS: &str = "event_id, model, receiver, event, payload, error, attempts, failed_at";
type LetterRow = (String, String, String, String, String, String, i64, i64);

fn letter(
    (event_id, model, receiver, committed, payload, error, attempts, failed_at): LetterRow,
) -> DeadLetter {
    DeadLetter {
        event_id,
        model,
        receiver,
        committed,
        payload,
        error,
        attempts: u32::try_from(attempts.max(0)).unwrap_or(u32::MAX),
        failed_at: time_of(failed_at),
    }
}

/// Up to `limit` dead letters of `select`, oldest failure first.
pub async fn list(db: &Db, select: &Select, limit: usize) -> Result<Vec<DeadLetter>> {
    let mut rows: Vec<LetterRow> = Vec::new();
    for part in select.parts() {
        let mut sql = Sql::new(db.backend());
        sql.push(&format!("SELECT {COLUMNS} FROM {DEAD_LETTER_TABLE}"));
        part.push_where(&mut sql)?;
        sql.push(&format!(
            " ORDER BY failed_at, event_id LIMIT {}",
            limit.min(i64::MAX as usize)
        ));
        rows.extend(sql.fetch_all::<LetterRow>(db).await?);
    }
    rows.sort_by(|a, b| (a.7, &a.0).cmp(&(b.7, &b.0)));
    rows.truncate(limit);
    Ok(rows.into_iter().map(letter).collect())
}

/// The event ids of the letters of `select`, oldest failure first.
async fn ids_of(db: &Db, select: &Select) -> Result<Vec<String>> {
    let mut rows: Vec<(i64, String)> = Vec::new();
    for part in select.parts() {
        let mut sql = Sql::new(db.backend());
        sql.push(&format!(
            "SELECT failed_at, event_id FROM {DEAD_LETTER_TABLE}"
        ));
        part.push_where(&mut sql)?;
        rows.extend(sql.fetch_all::<(i64, String)>(db).await?);
    }
    rows.sort();
    rows.dedup();
    Ok(rows.into_iter().map(|(_, id)| id).collect())
}

/// The dead letter of event `event_id`, if there is one.
pub async fn get(db: &Db, event_id: &str) -> Result<Option<DeadLetter>> {
    Ok(list(db, &Select::event(event_id), 1).await?.pop())
}

/// Dead letters taken per transaction by [`replay`] and [`discard`].
const CHUNK: usize = 500;

/// The most event ids one statement binds.
const IDS_PER_STATEMENT: usize = 1000;

/// Sends the dead letters of `select` back to the runners: each leaves the dead letters and
/// its event is pending again in the outbox, with its id, instance and kind as they were
/// and its attempts counted afresh, in the same transaction, so an event is replayed once
/// however many replays run at the same time (the others find no dead letter). Returns how
/// many were replayed. The letters are those there when it is called: one dead-lettered again
/// while this runs is not taken again.
///
/// A relay publishes a replayed event under a message id of its own (`<event id>@<ms>`),
/// which the stream's duplicate window does not drop; a worker runs it even when it
/// committed before the inbox's horizon (see [`purge`](crate::purge)): replaying says it
/// never ran.
pub async fn replay(db: &Db, select: &Select) -> Result<u64> {
    chunked(db, select, Requeue::Replay).await
}

/// Deletes the dead letters of `select`, and their outbox rows: the events are given up.
/// Returns how many were discarded.
pub async fn discard(db: &Db, select: &Select) -> Result<u64> {
    chunked(db, select, Requeue::Discard).await
}

/// Discards the dead letters older than `age` (see [`discard`]); returns how many.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_outbox::Result<()> {
/// use std::time::Duration;
/// let db = signals_core::Db::connect("sqlite::memory:").await?;
/// signals_outbox::install(&db).await?;
/// let purged = signals_outbox::dead::purge(&db, Duration::from_secs(30 * 86_400)).await?;
/// assert_eq!(purged, 0);
/// # Ok(()) }
/// ```
pub async fn purge(db: &Db, age: Duration) -> Result<u64> {
    let before = SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH);
    discard(db, &Select::all().failed_before(before)).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Requeue {
    Replay,
    Discard,
}

/// Runs `what` over the letters of `select` as they are when it is called (a letter
/// dead-lettered again meanwhile is not taken twice, whatever the clocks of the machines that
/// write them say), a chunk per transaction, each transaction tried again when the database
/// broke a deadlock.
async fn chunked(db: &Db, select: &Select, what: Requeue) -> Result<u64> {
    let ids = ids_of(db, select).await?;
    let mut total = 0;
    for chunk in ids.chunks(CHUNK) {
        let mut tries = 0;
        let done = loop {
            tries += 1;
            let mut tx = db.begin().await?;
            match take_chunk(&mut tx, chunk, what).await {
                Ok(n) => match tx.commit().await {
                    Ok(()) => break n,
                    Err(err) if err.is_retryable() && tries < 5 => continue,
                    Err(err) => return Err(err.into()),
                },
                Err(Error::Database(err)) if err.is_retryable() && tries < 5 => {
                    let _ = tx.rollback().await;
                    continue;
                }
                Err(err) => {
                    let _ = tx.rollback().await;
                    return Err(err);
                }
            }
        };
        total += done as u64;
    }
    Ok(total)
}

/// One chunk in `tx`: the letters of events `ids` still there read locked, deleted, and
/// their events requeued or deleted. Returns how many.
async fn take_chunk(tx: &mut Tx, ids: &[String], what: Requeue) -> Result<usize> {
    let backend = tx.backend();
    let mut sql = Sql::new(backend);
    sql.push(&format!("SELECT {COLUMNS} FROM {DEAD_LETTER_TABLE}"));
    Select::events(ids.iter().cloned()).push_where(&mut sql)?;
    sql.push(" ORDER BY failed_at, event_id");
    if backend != Backend::Sqlite {
        // SQLite's write transaction is the lock already.
        sql.push(" FOR UPDATE");
    }
    let rows: Vec<LetterRow> = sql.fetch_all(&mut *tx).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&String> = rows.iter().map(|r| &r.0).collect();
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "DELETE FROM {DEAD_LETTER_TABLE} WHERE event_id IN ("
    ));
    sql.list(&ids, |sql, id| sql.bind(*id).map(drop))?;
    sql.push(")");
    sql.execute(&mut *tx).await?;
    let now = now_millis();
    for (event_id, model, receiver, committed, payload, ..) in &rows {
        match what {
            Requeue::Discard => {
                let mut sql = Sql::new(backend);
                sql.push(&format!("DELETE FROM {OUTBOX_TABLE} WHERE event_id = "))
                    .bind(event_id)?
                    .push(" AND state = ")
                    .bind(&State::Dead)?;
                sql.execute(&mut *tx).await?;
            }
            Requeue::Replay => {
                let mut sql = Sql::new(backend);
                sql.push(&format!("UPDATE {OUTBOX_TABLE} SET state = "))
                    .bind(&State::Pending)?
                    .push(", attempts = 0, last_error = NULL, next_at = ")
                    .bind(&now)?
                    .push(" WHERE event_id = ")
                    .bind(event_id)?;
                if sql.execute(&mut *tx).await? == 0 {
                    // Its outbox row was purged (published long ago): written anew, in the
                    // partition of its event id (its instance's key went with the row).
                    let mut sql = Sql::new(backend);
                    sql.push(&format!(
                        "INSERT INTO {OUTBOX_TABLE} (event_id, model, receiver, instance_key, \
                         part, event, payload, created_at, next_at) VALUES ("
                    ));
                    sql.bind(event_id)?
                        .push(", ")
                        .bind(model)?
                        .push(", ")
                        .bind(receiver)?
                        .push(", ")
                        .bind(event_id)?
                        .push(", ")
                        .bind(&i64::from(partition(model, event_id)))?
                        .push(", ")
                        .bind(committed)?
                        .push(", ")
                        .bind(payload)?
                        .push(", ")
                        .bind(&now)?
                        .push(", ")
                        .bind(&now)?
                        .push(")");
                    sql.execute(&mut *tx).await?;
                }
            }
        }
    }
    if what == Requeue::Replay {
        tracing::info!(events = rows.len(), "dead letters replayed");
    }
    Ok(rows.len())
}
