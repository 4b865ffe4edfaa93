//! A SQLite connection's handle, taken from sqlx's worker thread, and statements run on it.
//!
//! sqlx runs each SQLite statement on a worker thread of the connection; handing a statement
//! over and waiting for its answer costs tens of microseconds, many times what SQLite itself
//! takes. The crate instead takes the handle from the worker (sqlx's
//! [`SqliteConnection::lock_handle`]) and runs statements on it directly through rusqlite,
//! which drives the same libsqlite3 that sqlx bundles; errors and statement logs come out as
//! sqlx's would.
//!
//! Uses `error`, `value` and the statement outcome of `conn`. The crate's only `unsafe` code.
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use sqlx::sqlite::{LockedSqliteHandle, SqliteConnection};

use super::Outcome;
use crate::error::{Error, Result};
use crate::value::Row;
use crate::value::sqlite::SqlValue;

/// The handle while it is taken from sqlx's worker thread.
pub(crate) struct Locked {
    /// A rusqlite connection over the handle, not owning it (dropping it finalizes the
    /// statements it prepared and leaves the handle open). Declared before `_guard`: it must
    /// be gone before the worker thread can use the handle again.
    pub(crate) db: rusqlite::Connection,
    /// Keeps sqlx's worker thread waiting. Really borrows the `PoolConnection` it was taken
    /// from; see [`Locked::take`] for why the `'static` is sound.
    _guard: LockedSqliteHandle<'static>,
}

/// How many statements a connection keeps prepared: every statement of the models a program
/// saves, loads and deletes (each model has a handful), so a kept connection prepares each
/// once (rusqlite's default keeps 16).
const PREPARED_STATEMENTS: usize = 256;

impl Locked {
    /// Takes the handle of `conn` from sqlx's worker thread (a hand-off to that thread).
    ///
    /// The `Locked` must be dropped before `conn` is used through sqlx again, moved back to a
    /// pool or dropped; it may be moved, with `conn`, anywhere meanwhile.
    pub(crate) async fn take(conn: &mut SqliteConnection) -> Result<Locked> {
        let mut guard = untraced(conn.lock_handle()).await?;
        let handle = guard.as_raw_handle();
        // SAFETY: the guard borrows `conn`, which its owners keep alive and unused by sqlx
        // (never used through sqlx, moved into a pool or dropped) for as long as the `Locked`
        // lives: `RawTx` clears `locked` before it touches `conn` and declares it first so it
        // also drops first, `Held` does the same, and `roll_back` drops it before returning.
        // What the guard points at lives in sqlx's reference-counted worker state, not in the
        // connection value itself, so moving the connection (with its `PoolConnection`, into
        // a `RawTx` or the kept slot) does not move it.
        let guard: LockedSqliteHandle<'static> = unsafe { std::mem::transmute(guard) };
        // SAFETY: the handle is valid and ours alone while the guard is held, and the
        // rusqlite connection is dropped before the guard (`Locked`'s field order). It
        // does not own the handle, so dropping it does not close it.
        let db = unsafe { rusqlite::Connection::from_handle(handle.as_ptr()) }.map_err(error)?;
        db.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
        Ok(Locked { db, _guard: guard })
    }

    /// The connection's busy timeout (set by its options), read once per connection.
    pub(crate) fn busy_timeout(&self) -> Result<Duration> {
        let ms: i64 = self
            .db
            .pragma_query_value(None, "busy_timeout", |r| r.get(0))
            .map_err(error)?;
        Ok(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }
}

/// Runs one statement on a handle and tells what it did.
pub(crate) fn execute_on(
    db: &rusqlite::Connection,
    sql: &str,
    args: &[SqlValue],
) -> Result<Outcome> {
    let log = Log::start(sql);
    let mut stmt = prepare(db, sql, args)?;
    let mut rows = stmt.raw_query();
    let mut returned = 0;
    while rows.next().map_err(error)?.is_some() {
        returned += 1;
    }
    drop(rows);
    let outcome = Outcome {
        rows: db.changes(),
        last_id: db.last_insert_rowid(),
    };
    log.finish(outcome.rows, returned);
    Ok(outcome)
}

/// Runs a query on a handle, calling `each` on every row.
pub(crate) fn query_on(
    db: &rusqlite::Connection,
    sql: &str,
    args: &[SqlValue],
    mut each: impl FnMut(&Row<'_>) -> Result<()>,
) -> Result<()> {
    let log = Log::start(sql);
    let mut stmt = prepare(db, sql, args)?;
    let mut rows = stmt.raw_query();
    let mut returned = 0;
    while let Some(row) = rows.next().map_err(error)? {
        returned += 1;
        each(&Row::SqliteRaw(row))?;
    }
    drop(rows);
    log.finish(0, returned);
    Ok(())
}

/// Polls `fut` with no current `tracing` span.
///
/// sqlx queues each command for its worker thread with the span current when it was sent, and
/// `lock_handle`'s request to let go of the handle can stay queued for as long as the handle is
/// held: a kept connection's, for the life of its `Db`. The span current then (a request's, a
/// command's) stayed open that long, so a tracing backend never saw it end, nor exported it.
fn untraced<F: std::future::Future>(fut: F) -> impl std::future::Future<Output = F::Output> {
    let mut fut = Box::pin(fut);
    let none = tracing::Dispatch::none();
    std::future::poll_fn(move |cx| {
        tracing::dispatcher::with_default(&none, || fut.as_mut().poll(cx))
    })
}

/// Makes sure sqlx's worker thread holds the handle again before it is taken anew.
///
/// `lock_handle` sends the worker a request to let go of the handle and waits for it; if the
/// handle happens to be free at that moment (given back an instant ago, and the worker not yet
/// waiting for it), the wait ends at once and the request stays queued. Taken back to back,
/// such stale requests pile up until the worker's queue is full, and then the next
/// `lock_handle` holds the handle while it waits for room in the queue, which only the worker,
/// waiting for the handle, could make: a deadlock (reproduced with sqlx 0.9.0 by calling
/// `lock_handle` in a loop). Any command answered by the worker first ends the danger: the
/// worker answers only while it holds the handle, after the requests queued before it.
pub(crate) async fn settle(conn: &mut SqliteConnection) -> Result<()> {
    use sqlx::Connection as _;
    conn.ping().await?;
    Ok(())
}

/// Rolls back the transaction open on a connection lent out to sqlx; `false` if that failed.
pub(crate) async fn roll_back(conn: &mut SqliteConnection) -> bool {
    if settle(conn).await.is_err() {
        return false;
    }
    let Ok(locked) = Locked::take(conn).await else {
        return false;
    };
    locked.db.is_autocommit() || locked.db.execute_batch("ROLLBACK").is_ok()
}

/// Prepares (or reuses) `sql` and binds `args` to it.
fn prepare<'c>(
    db: &'c rusqlite::Connection,
    sql: &str,
    args: &[SqlValue],
) -> Result<rusqlite::CachedStatement<'c>> {
    let mut stmt = db.prepare_cached(sql).map_err(error)?;
    for (i, arg) in args.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, arg).map_err(error)?;
    }
    Ok(stmt)
}

pub(crate) fn run_batch(db: &rusqlite::Connection, sql: &str) -> Result<()> {
    let log = Log::start(sql);
    db.prepare_cached(sql)
        .and_then(|mut stmt| stmt.raw_execute())
        .map_err(error)?;
    log.finish(0, 0);
    Ok(())
}

/// SQLITE_BUSY, with any extended code: another connection holds the lock.
pub(crate) fn is_busy(err: &Error) -> bool {
    match err {
        Error::Database(sqlx::Error::Database(e)) | Error::Conflict(sqlx::Error::Database(e)) => e
            .try_downcast_ref::<HandleError>()
            .is_some_and(|e| e.code & 0xff == rusqlite::ffi::SQLITE_BUSY),
        _ => false,
    }
}

/// Logs each statement as sqlx does (target `sqlx::query`, level DEBUG), so statement logs
/// look the same whether a statement ran through sqlx or on the handle.
struct Log<'s> {
    sql: &'s str,
    start: Option<Instant>,
}

impl<'s> Log<'s> {
    #[inline]
    fn start(sql: &'s str) -> Self {
        let on = tracing::enabled!(target: "sqlx::query", tracing::Level::DEBUG);
        Log {
            sql,
            start: on.then(Instant::now),
        }
    }

    #[inline]
    fn finish(self, rows_affected: u64, rows_returned: u64) {
        let Some(start) = self.start else { return };
        let elapsed = start.elapsed();
        let mut summary = self
            .sql
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
            .join(" ");
        let statement = if summary == self.sql {
            String::new()
        } else {
            summary.push_str(" …");
            format!("\n\n{}\n", self.sql)
        };
        tracing::debug!(
            target: "sqlx::query",
            summary,
            db.statement = statement,
            rows_affected,
            rows_returned,
            ?elapsed,
            elapsed_secs = elapsed.as_secs_f64(),
        );
    }
}

/// A rusqlite error as the error the same failure gives through sqlx, so it has the same
/// [`ErrorKind`](crate::ErrorKind).
pub(crate) fn error(err: rusqlite::Error) -> Error {
    Error::from(match err {
        rusqlite::Error::SqliteFailure(e, message) => {
            sqlx::Error::Database(Box::new(HandleError {
                code: e.extended_code,
                message: message.unwrap_or_else(|| e.to_string()),
            }))
        }
        other => sqlx::Error::Protocol(other.to_string()),
    })
}

/// An error SQLite reported on the handle (sqlx's own `SqliteError` cannot be built outside
/// sqlx; this one answers the same: the extended result code and SQLite's message).
#[derive(Debug)]
struct HandleError {
    code: i32,
    message: String,
}

impl std::fmt::Display for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for HandleError {}

impl sqlx::error::DatabaseError for HandleError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        use sqlx::error::ErrorKind as K;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => K::UniqueViolation,
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => K::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => K::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => K::CheckViolation,
            _ => K::Other,
        }
    }
}
