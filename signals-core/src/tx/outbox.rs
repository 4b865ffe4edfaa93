//! Durable events: the outbox rows a transaction buffers (per savepoint, in its scope frames)
//! and writes with one multi-row INSERT per chunk just before its COMMIT, and the process-wide
//! count of commits that wrote some, which runners in this process wait on.
//!
//! Uses `error`, `backend`, `value`, `sql` and `conn`.

use std::sync::OnceLock;

use tokio::sync::watch;

use super::exec::Target;
use crate::backend::{Backend, MAX_CHUNK_ROWS};
use crate::error::{Error, Result};
use crate::sql::Sql;

/// The table durable events are written to.
pub const OUTBOX_TABLE: &str = "signals_outbox";

/// Decides, just before COMMIT, whether a conditioned durable event (`changed(..)`) is
/// written, and as which kind (`created` or `updated`); `None` drops it.
pub(crate) struct Condition(pub(crate) Box<dyn FnOnce() -> Option<&'static str> + Send + Sync>);

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Condition(..)")
    }
}

/// One durable receiver's event, waiting for its transaction's commit.
#[derive(Debug)]
pub(crate) struct OutboxRow {
    pub(crate) event_id: String,
    pub(crate) model: &'static str,
    pub(crate) receiver: &'static str,
    pub(crate) instance_key: String,
    pub(crate) part: i32,
    /// `created`, `updated` or `deleted`.
    pub(crate) event: &'static str,
    pub(crate) payload: String,
    /// For a `changed(..)` receiver: decided just before COMMIT.
    pub(crate) condition: Option<Condition>,
    /// The save's W3C trace context, as JSON (the `otel` feature).
    pub(crate) trace: Option<String>,
}

/// The rows to write: conditioned ones decided now (each at most once), in order.
pub(crate) fn decide(rows: Vec<OutboxRow>) -> Vec<OutboxRow> {
    rows.into_iter()
        .filter_map(|mut row| match row.condition.take() {
            None => Some(row),
            Some(Condition(decide)) => decide().map(|event| OutboxRow { event, ..row }),
        })
        .collect()
}

/// The PostgreSQL channel a transaction that wrote durable events notifies at its commit, so
/// relays in other processes wake at once (`LISTEN signals_outbox`).
pub const NOTIFY_CHANNEL: &str = "signals_outbox";

/// The columns written, in order; the others take their defaults.
const COLUMNS: [&str; 8] = [
    "event_id",
    "model",
    "receiver",
    "instance_key",
    "part",
    "event",
    "payload",
    "created_at",
];

/// Milliseconds since the Unix epoch: the outbox's clock.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Writes `rows` to the outbox inside the transaction `target` runs on: one multi-row INSERT
/// per [`MAX_CHUNK_ROWS`] rows (8,000 values, under every backend's limit).
pub(crate) async fn write(
    target: &mut Target<'_>,
    backend: Backend,
    rows: &[OutboxRow],
) -> Result<()> {
    let now = now_millis();
    for chunk in rows.chunks(MAX_CHUNK_ROWS) {
        let (sql, args) = insert(backend, chunk, now)?.into_parts();
        target.execute(sqlx::AssertSqlSafe(sql), args).await?;
    }
    if backend == Backend::Postgres {
        // Delivered when (and only if) the transaction commits; one per transaction.
        let mut sql = Sql::with_capacity(backend, 1);
        sql.push("SELECT pg_notify(")
            .bind_as(&NOTIFY_CHANNEL.to_owned(), "channel")?
            .push(", '')");
        let (sql, args) = sql.into_parts();
        target.execute(sqlx::AssertSqlSafe(sql), args).await?;
    }
    Ok(())
}

/// The outbox write's error, naming the fix when the table is missing (PostgreSQL's SQLSTATE
/// 42P01, MySQL's error 1146, SQLite's "no such table").
pub(crate) fn missing_table_hint(err: Error) -> Error {
    let (missing_table, missing_column) = match &err {
        Error::Database(sqlx::Error::Database(e)) => {
            let mysql = e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>();
            let names_column = e.message().contains("trace_context");
            (
                e.code().as_deref() == Some("42P01")
                    || mysql.is_some_and(|e| e.number() == 1146)
                    || e.message().starts_with("no such table"),
                names_column
                    && (e.code().as_deref() == Some("42703")
                        || mysql.is_some_and(|e| e.number() == 1054)
                        || e.message().contains("has no column named")),
            )
        }
        _ => (false, false),
    };
    if missing_column {
        return Error::Config(format!(
            "a durable receiver's event cannot be written: the table `{OUTBOX_TABLE}` predates \
             its column `trace_context` ({err}), which a save with a trace context (the `otel` \
             feature) writes; run `signals_outbox::install(&db)` (or a migration of its \
             `schema::added_columns`). Nothing was committed."
        ));
    }
    if !missing_table {
        return err;
    }
    Error::Config(format!(
        "a durable receiver's event cannot be written: the table `{OUTBOX_TABLE}` is missing \
         ({err}); create the outbox's tables with `signals_outbox::install(&db)` (or its \
         `schema::statements` in a migration). Nothing was committed."
    ))
}

/// One multi-row INSERT of `rows`, committed at `now`. The trace context's column is named
/// only when some row has one, so a program without tracing writes the columns the outbox's
/// first version had.
fn insert(backend: Backend, rows: &[OutboxRow], now: i64) -> Result<Sql> {
    let traced = rows.iter().any(|r| r.trace.is_some());
    let mut sql = Sql::with_capacity(backend, rows.len() * (COLUMNS.len() + 1));
    sql.push("INSERT INTO ")
        .push(OUTBOX_TABLE)
        .push(" (")
        .push(&COLUMNS.join(", "))
        .push(if traced { ", trace_context" } else { "" })
        .push(") VALUES ");
    sql.list(rows, |sql, row| {
        sql.push("(")
            .bind_as(&row.event_id, "event_id")?
            .push(", ")
            .bind_as(&row.model.to_owned(), "model")?
            .push(", ")
            .bind_as(&row.receiver.to_owned(), "receiver")?
            .push(", ")
            .bind_as(&row.instance_key, "instance_key")?
            .push(", ")
            .bind_as(&row.part, "part")?
            .push(", ")
            .bind_as(&row.event.to_owned(), "event")?
            .push(", ")
            .bind_as(&row.payload, "payload")?
            .push(", ")
            .bind_as(&now, "created_at")?;
        if traced {
            sql.push(", ").bind_as(&row.trace, "trace_context")?;
        }
        sql.push(")");
        Ok(())
    })?;
    Ok(sql)
}

fn commits_sender() -> &'static watch::Sender<u64> {
    static COMMITS: OnceLock<watch::Sender<u64>> = OnceLock::new();
    COMMITS.get_or_init(|| watch::Sender::new(0))
}

/// A transaction that wrote outbox rows committed.
pub(crate) fn committed() {
    commits_sender().send_modify(|n| *n = n.wrapping_add(1));
}

/// Changes each time a transaction of this process commits durable events: a runner waits on
/// it instead of polling the outbox table (other processes' commits still need the poll).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut commits = signals_core::durable::commits();
/// // In a runner's loop: wake on a commit here, or after the poll interval.
/// let _ = tokio::time::timeout(std::time::Duration::from_millis(1), commits.changed()).await;
/// # }
/// ```
pub fn commits() -> watch::Receiver<u64> {
    commits_sender().subscribe()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_binds_eight_per_row() {
        let row = || OutboxRow {
            event_id: "e".into(),
            model: "M",
            receiver: "r",
            instance_key: "Some(1)".into(),
            part: 3,
            event: "created",
            payload: "{}".into(),
            condition: None,
            trace: None,
        };
        let sql = insert(Backend::Postgres, &[row(), row()], 0).expect("binds");
        assert!(
            sql.text()
                .starts_with("INSERT INTO signals_outbox (event_id, model,")
        );
        assert!(
            sql.text()
                .ends_with("($9, $10, $11, $12, $13, $14, $15, $16)")
        );
        let sql = insert(Backend::Sqlite, &[row()], 0).expect("binds");
        assert_eq!(sql.text().matches('?').count(), 8);
    }
}
