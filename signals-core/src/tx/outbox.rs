//! Durable events: the outbox rows a transaction buffers (per savepoint, in its scope frames)
//! and writes with one multi-row INSERT per chunk just before its COMMIT, and the process-wide
//! count of commits that wrote some, which runners in this process wait on.
//!
//! Uses `error`, `backend`, `value`, `sql` and `conn`.

use std::sync::OnceLock;

use tokio::sync::watch;

use super::exec::Target;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::value::Args;

/// The table durable events are written to.
pub const OUTBOX_TABLE: &str = "signals_outbox";

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

/// Rows per INSERT: 8,000 parameters, under every backend's limit.
const CHUNK: usize = 1000;

/// Milliseconds since the Unix epoch: the outbox's clock.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Writes `rows` to the outbox inside the transaction `target` runs on.
pub(crate) async fn write(
    target: &mut Target<'_>,
    backend: Backend,
    rows: &[OutboxRow],
) -> Result<()> {
    let now = now_millis();
    for chunk in rows.chunks(CHUNK) {
        let sql = insert_sql(backend, chunk.len());
        let mut args = Args::new(backend, chunk.len() * COLUMNS.len());
        for row in chunk {
            args.bind_builtin(&row.event_id, "event_id")?;
            args.bind_builtin(&row.model.to_owned(), "model")?;
            args.bind_builtin(&row.receiver.to_owned(), "receiver")?;
            args.bind_builtin(&row.instance_key, "instance_key")?;
            args.bind_builtin(&row.part, "part")?;
            args.bind_builtin(&row.event.to_owned(), "event")?;
            args.bind_builtin(&row.payload, "payload")?;
            args.bind_builtin(&now, "created_at")?;
        }
        // Text of the crate's own: the table, columns and placeholders; values are bound.
        target.execute(sqlx::AssertSqlSafe(sql), args).await?;
    }
    if backend == Backend::Postgres {
        // Delivered when (and only if) the transaction commits; one per transaction.
        let mut args = Args::new(backend, 1);
        args.bind_builtin(&NOTIFY_CHANNEL.to_owned(), "channel")?;
        target.execute("SELECT pg_notify($1, '')", args).await?;
    }
    Ok(())
}

/// The outbox write's error, naming the fix when the table is missing (PostgreSQL's SQLSTATE
/// 42P01, MySQL's error 1146, SQLite's "no such table").
pub(crate) fn missing_table_hint(err: Error) -> Error {
    let missing = match &err {
        Error::Database(sqlx::Error::Database(e)) => {
            e.code().as_deref() == Some("42P01")
                || e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .is_some_and(|e| e.number() == 1146)
                || e.message().starts_with("no such table")
        }
        _ => false,
    };
    if !missing {
        return err;
    }
    Error::Config(format!(
        "a durable receiver's event cannot be written: the table `{OUTBOX_TABLE}` is missing \
         ({err}); create the outbox's tables with `signals_outbox::install(&db)` (or its \
         `schema::statements` in a migration). Nothing was committed."
    ))
}

fn insert_sql(backend: Backend, n: usize) -> String {
    let mut s = format!(
        "INSERT INTO {OUTBOX_TABLE} ({}) VALUES ",
        COLUMNS.join(", ")
    );
    let mut param = 0;
    for r in 0..n {
        s.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..COLUMNS.len() {
            if c > 0 {
                s.push_str(", ");
            }
            param += 1;
            backend.placeholder(&mut s, param);
        }
        s.push(')');
    }
    s
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
        let sql = insert_sql(Backend::Postgres, 2);
        assert!(sql.starts_with("INSERT INTO signals_outbox (event_id, model,"));
        assert!(sql.ends_with("($9, $10, $11, $12, $13, $14, $15, $16)"));
        assert_eq!(insert_sql(Backend::Sqlite, 1).matches('?').count(), 8);
    }
}
