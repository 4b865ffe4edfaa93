//! Waiting until the events committed so far are handled, and the counts per receiver: what
//! a test (or a program about to exit) needs instead of polling [`stats`](crate::stats).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use signals_core::durable::OUTBOX_TABLE;
use signals_core::{Db, Sql};

use crate::error::{Error, Result};
use crate::schema::{DEAD_LETTER_TABLE, INBOX_TABLE};
use crate::store::State;
use crate::wake;

/// How often [`wait_until_handled`] looks again when no runner of this process told it of
/// a delivery (runners in other processes).
const LOOK_AGAIN: Duration = Duration::from_millis(25);

/// Waits until every durable event committed before the call is settled: handled by its
/// receiver, or dead-lettered (read [`stats`](crate::stats) or [`dead::list`] to tell). The
/// runners may be in this process ([`spawn`](crate::spawn), an [`Embedded`] runner) or in
/// others (relays and workers through NATS): it reads the outbox, the inbox and the dead
/// letters, waking at once when a runner of this process settles events, and every 25 ms
/// otherwise. Events committed after the call are not waited for. Fails with
/// [`Error::NotHandled`] after `timeout`, saying how many are left.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_outbox::Result<()> {
/// use std::time::Duration;
/// use signals_core::{Db, Model};
/// use signals_core::durable::Delivery;
///
/// #[derive(Model, Clone, serde::Serialize, serde::Deserialize)]
/// #[on_commit(welcome, durable)]
/// struct Visitor { id: Option<i64>, name: String }
///
/// async fn welcome(visitor: Visitor, _: &mut Delivery<'_>) -> signals_core::Result<()> {
///     println!("hello, {}", visitor.name);
///     Ok(())
/// }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.create_tables::<Visitor>().await?;
/// signals_outbox::install(&db).await?;
/// let running = signals_outbox::spawn(db.clone(), None, Default::default()).await?;
///
/// Visitor { id: None, name: "Ada".into() }.save(&db).await?;
/// signals_outbox::wait_until_handled(&db, Duration::from_secs(10)).await?;
/// let counts = signals_outbox::receiver_stats(&db).await?;
/// assert_eq!((counts[0].receiver.as_str(), counts[0].handled), ("welcome", 1));
/// running.stop().await?;
/// # Ok(()) }
/// ```
///
/// [`dead::list`]: crate::dead::list
/// [`Embedded`]: crate::Embedded
pub async fn wait_until_handled(db: &Db, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut settlements = wake::settlements();
    let mut sql = Sql::new(db.backend());
    sql.push(&format!("SELECT MAX(id) FROM {OUTBOX_TABLE}"));
    let high: Option<(Option<i64>,)> = sql.fetch_optional(db).await?;
    let Some(high) = high.and_then(|(h,)| h) else {
        return Ok(());
    };
    let mut low = i64::MIN;
    loop {
        match first_unsettled(db, low, high).await? {
            None => return Ok(()),
            Some(first) => low = first,
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(Error::NotHandled {
                events: unsettled(db, low, high).await?,
                waited: timeout,
            });
        }
        tokio::select! {
            _ = settlements.changed() => {}
            () = tokio::time::sleep(LOOK_AGAIN.min(left)) => {}
        }
    }
}

/// `FROM outbox o WHERE` the event is between `low` and `high` and neither handled nor dead.
fn push_unsettled(sql: &mut Sql, low: i64, high: i64) -> Result<()> {
    sql.push(&format!(" FROM {OUTBOX_TABLE} o WHERE o.id >= "))
        .bind(&low)?
        .push(" AND o.id <= ")
        .bind(&high)?
        .push(" AND (o.state = ")
        .bind(&State::Pending)?
        .push(" OR (o.state = ")
        .bind(&State::Published)?
        .push(&format!(
            " AND NOT EXISTS (SELECT 1 FROM {INBOX_TABLE} i WHERE i.event_id = o.event_id) \
             AND NOT EXISTS (SELECT 1 FROM {DEAD_LETTER_TABLE} d WHERE d.event_id = o.event_id)))"
        ));
    Ok(())
}

async fn first_unsettled(db: &Db, low: i64, high: i64) -> Result<Option<i64>> {
    let mut sql = Sql::new(db.backend());
    sql.push("SELECT MIN(o.id)");
    push_unsettled(&mut sql, low, high)?;
    let first: Option<(Option<i64>,)> = sql.fetch_optional(db).await?;
    Ok(first.and_then(|(f,)| f))
}

async fn unsettled(db: &Db, low: i64, high: i64) -> Result<u64> {
    let mut sql = Sql::new(db.backend());
    sql.push("SELECT COUNT(*)");
    push_unsettled(&mut sql, low, high)?;
    let count: Option<(i64,)> = sql.fetch_optional(db).await?;
    Ok(count.map_or(0, |(c,)| c.max(0) as u64))
}

/// The events of one durable receiver, by where they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiverStats {
    /// The model's name.
    pub model: String,
    /// The receiver's name.
    pub receiver: String,
    /// Committed, not yet published nor handled (waiting for a retry included).
    pub pending: u64,
    /// Handled (the inbox's rows: since its last [`purge`](crate::purge)).
    pub handled: u64,
    /// Dead-lettered.
    pub dead: u64,
}

/// The counts of every durable receiver that has events in the tables, sorted by model and
/// receiver (see [`wait_until_handled`] for an example).
pub async fn receiver_stats(db: &Db) -> Result<Vec<ReceiverStats>> {
    let backend = db.backend();
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "SELECT model, receiver, COUNT(*) FROM {OUTBOX_TABLE} WHERE state = "
    ))
    .bind(&State::Pending)?
    .push(" GROUP BY model, receiver");
    let pending: Vec<(String, String, i64)> = sql.fetch_all(db).await?;
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "SELECT model, receiver, COUNT(*) FROM {DEAD_LETTER_TABLE} GROUP BY model, receiver"
    ));
    let dead: Vec<(String, String, i64)> = sql.fetch_all(db).await?;
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "SELECT receiver, COUNT(*) FROM {INBOX_TABLE} GROUP BY receiver"
    ));
    let handled: Vec<(String, i64)> = sql.fetch_all(db).await?;
    let mut out: BTreeMap<(String, String), ReceiverStats> = BTreeMap::new();
    fn at(
        out: &mut BTreeMap<(String, String), ReceiverStats>,
        model: String,
        receiver: String,
    ) -> &mut ReceiverStats {
        out.entry((model.clone(), receiver.clone()))
            .or_insert_with(|| ReceiverStats {
                model,
                receiver,
                ..ReceiverStats::default()
            })
    }
    let n = |count: i64| count.max(0) as u64;
    for (model, receiver, count) in pending {
        at(&mut out, model, receiver).pending = n(count);
    }
    for (model, receiver, count) in dead {
        at(&mut out, model, receiver).dead = n(count);
    }
    for (name, count) in handled {
        // The inbox names a receiver `Model.receiver`; model names have no dot.
        let (model, receiver) = name.split_once('.').unwrap_or(("", name.as_str()));
        at(&mut out, model.to_owned(), receiver.to_owned()).handled = n(count);
    }
    Ok(out.into_values().collect())
}
