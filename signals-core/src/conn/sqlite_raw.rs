//! SQLite transactions run on the connection's own handle.
//!
//! sqlx runs each SQLite statement on a worker thread of the connection; handing a statement
//! over and waiting for its answer costs tens of microseconds, many times what SQLite itself
//! takes. A save with receivers runs half a dozen statements, so a transaction instead takes
//! the handle from the worker once (sqlx's [`SqliteConnection::lock_handle`]) and runs BEGIN,
//! every statement of the saves and receivers, and COMMIT on it directly through rusqlite,
//! which drives the same libsqlite3 that sqlx bundles.
//!
//! The transaction is then SQLite's alone: sqlx's own bookkeeping stays at "no transaction",
//! and this module is what ends it. Rolling back when a [`RawTx`] is dropped unfinished (its
//! future cancelled, a panic, a forgotten commit) happens synchronously on the handle when it
//! is held, or from a spawned task otherwise, before the connection can be used again.
//!
//! While the handle is held, the thread running the transaction runs SQLite: a statement that
//! waits for a lock would block that thread. BEGIN waits for other writers, and COMMIT, with a
//! rollback journal (not in WAL mode), for readers; so both are tried without waiting and, when
//! another connection holds the lock, waited for on sqlx's worker thread as before. (Once a
//! transaction holds the write lock, its other statements wait for nobody, except a write that
//! spills SQLite's page cache to a rollback-journal database while others read.)
//!
//! Uses `error`, `value` and the statement outcome of `conn`. The crate's only `unsafe` code.
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{LockedSqliteHandle, Sqlite, SqliteConnection, SqlitePool};

use super::Outcome;
use crate::error::{Error, Result};
use crate::value::Row;
use crate::value::sqlite::SqlValue;

/// A SQLite transaction on a pooled connection, run on its handle.
pub(crate) struct RawTx {
    /// The handle, taken from sqlx's worker; `None` while the connection is lent out through
    /// [`Tx::conn`](crate::Tx::conn), and after the transaction ended.
    ///
    /// Declared before `conn`, which it borrows: fields drop in declaration order.
    locked: Option<Locked>,
    /// `None` only once dropped or handed to the task that rolls it back.
    conn: Option<PoolConnection<Sqlite>>,
    /// BEGIN may have run and neither COMMIT nor ROLLBACK has: dropping must roll back.
    open: bool,
    /// The connection's busy timeout, restored after each statement tried without waiting.
    busy_timeout: Duration,
    /// The handle was given back to sqlx's worker thread since it was last taken.
    lent: bool,
}

/// The handle while it is taken from sqlx's worker thread.
struct Locked {
    /// A rusqlite connection over the handle, not owning it (dropping it finalizes the
    /// statements it prepared and leaves the handle open). Declared before `_guard`: it must
    /// be gone before the worker thread can use the handle again.
    db: rusqlite::Connection,
    /// Keeps sqlx's worker thread waiting. Really borrows the `PoolConnection` of the
    /// `RawTx`; see `RawTx::lock` for why the `'static` is sound.
    _guard: LockedSqliteHandle<'static>,
}

impl RawTx {
    /// Takes a connection from the pool and begins an immediate (write) transaction on it.
    pub(crate) async fn begin(pool: &SqlitePool) -> Result<RawTx> {
        let mut tx = RawTx {
            locked: None,
            conn: Some(pool.acquire().await?),
            open: false,
            busy_timeout: Duration::ZERO,
            lent: false,
        };
        tx.begin_immediate().await?;
        Ok(tx)
    }

    /// `BEGIN IMMEDIATE`, taking the write lock up front: a deferred transaction that reads
    /// and then writes fails with SQLITE_BUSY when another connection wrote in between.
    async fn begin_immediate(&mut self) -> Result<()> {
        // From here on, a cancelled or failed BEGIN leaves the connection to be checked and
        // rolled back if needed when dropped.
        self.open = true;
        let db = self.lock().await?;
        let ms: i64 = db
            .pragma_query_value(None, "busy_timeout", |r| r.get(0))
            .map_err(error)?;
        self.busy_timeout = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        let res = self.without_waiting("BEGIN IMMEDIATE").await;
        if res.is_err() {
            self.open = false;
        }
        res
    }

    /// Runs `sql` (BEGIN or COMMIT, the statements that wait for other connections' locks) on
    /// the handle without waiting; if another connection holds the lock, runs it again on
    /// sqlx's worker thread, which waits for it (up to the connection's busy timeout) without
    /// blocking this thread, and with it perhaps the very task that holds the lock.
    async fn without_waiting(&mut self, sql: &'static str) -> Result<()> {
        let timeout = self.busy_timeout;
        let db = self.lock().await?;
        db.busy_timeout(Duration::ZERO).map_err(error)?;
        let res = run_batch(db, sql);
        db.busy_timeout(timeout).map_err(error)?;
        match res {
            Err(e) if is_busy(&e) => {
                // A BEGIN or COMMIT that failed as busy did nothing: run it again.
                let conn = self.release()?;
                sqlx::raw_sql(sql).execute(conn).await?;
                Ok(())
            }
            res => res,
        }
    }

    /// The handle, taking it from sqlx's worker thread first if it was lent out.
    pub(crate) async fn lock(&mut self) -> Result<&rusqlite::Connection> {
        if self.locked.is_none() {
            let conn = self
                .conn
                .as_mut()
                .ok_or_else(|| Error::Transaction("transaction already finished".into()))?;
            if self.lent {
                settle(conn).await?;
                self.lent = false;
            }
            let mut guard = conn.lock_handle().await?;
            let handle = guard.as_raw_handle();
            // SAFETY: the guard borrows the connection in `self.conn`, which stays in place
            // (never moved out, touched or dropped) for as long as `self.locked` is `Some`:
            // `release` and `Drop` clear `self.locked` before they touch `self.conn`, and
            // `self.locked` is declared first so it also drops first. What the guard points
            // at lives in sqlx's reference-counted worker state, not in the `PoolConnection`
            // itself, so moving the `RawTx` does not move it.
            let guard: LockedSqliteHandle<'static> = unsafe { std::mem::transmute(guard) };
            // SAFETY: the handle is valid and ours alone while the guard is held, and the
            // rusqlite connection is dropped before the guard (`Locked`'s field order). It
            // does not own the handle, so dropping it does not close it.
            let db =
                unsafe { rusqlite::Connection::from_handle(handle.as_ptr()) }.map_err(error)?;
            self.locked = Some(Locked { db, _guard: guard });
        }
        match &self.locked {
            Some(locked) => Ok(&locked.db),
            None => Err(Error::Transaction("SQLite handle unavailable".into())),
        }
    }

    /// Gives the handle back to sqlx's worker thread and lends out the connection, still in
    /// the transaction.
    pub(crate) fn release(&mut self) -> Result<&mut SqliteConnection> {
        if self.locked.take().is_some() {
            self.lent = true;
        }
        self.conn
            .as_deref_mut()
            .ok_or_else(|| Error::Transaction("transaction already finished".into()))
    }

    /// Runs one statement without arguments or results on the handle (a savepoint step).
    pub(crate) async fn run(&mut self, sql: &str) -> Result<()> {
        let db = self.lock().await?;
        run_batch(db, sql)
    }

    pub(crate) async fn commit(mut self) -> Result<()> {
        // In WAL mode a commit never waits; with a rollback journal it waits for readers.
        self.without_waiting("COMMIT").await?;
        self.open = false;
        Ok(())
    }

    pub(crate) async fn rollback(mut self) -> Result<()> {
        let db = self.lock().await?;
        run_batch(db, "ROLLBACK")?;
        // Only now: if ROLLBACK failed, dropping `self` tries again.
        self.open = false;
        Ok(())
    }

    pub(crate) async fn execute(&mut self, sql: &str, args: &[SqlValue]) -> Result<Outcome> {
        let db = self.lock().await?;
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

    /// Runs a query, calling `each` on every row.
    pub(crate) async fn query(
        &mut self,
        sql: &str,
        args: &[SqlValue],
        mut each: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let db = self.lock().await?;
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
}

impl Drop for RawTx {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        if let Some(locked) = self.locked.take() {
            // Synchronous on the handle: the connection goes back to the pool clean.
            let clean = locked.db.is_autocommit() || locked.db.execute_batch("ROLLBACK").is_ok();
            drop(locked);
            if !clean {
                // Never hand on a connection inside a transaction: closing it rolls back.
                if let Some(conn) = &mut self.conn {
                    conn.close_on_drop();
                }
            }
            return;
        }
        // The connection was lent out through `Tx::conn`: roll back once the handle is ours
        // again, before the connection returns to the pool.
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if !roll_back(&mut conn).await {
                        // Closing the connection rolls the transaction back.
                        conn.close_on_drop();
                    }
                });
            }
            // No runtime to roll back on: closing the connection rolls the transaction back.
            Err(_) => conn.close_on_drop(),
        }
    }
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
async fn settle(conn: &mut SqliteConnection) -> Result<()> {
    use sqlx::Connection as _;
    conn.ping().await?;
    Ok(())
}

/// Rolls back the transaction open on a connection lent out to sqlx; `false` if that failed.
async fn roll_back(conn: &mut SqliteConnection) -> bool {
    if settle(conn).await.is_err() {
        return false;
    }
    let Ok(mut guard) = conn.lock_handle().await else {
        return false;
    };
    let handle = guard.as_raw_handle();
    // SAFETY: as in `RawTx::lock`; `db` is declared after `guard`, so it is dropped first.
    let Ok(db) = (unsafe { rusqlite::Connection::from_handle(handle.as_ptr()) }) else {
        return false;
    };
    db.is_autocommit() || db.execute_batch("ROLLBACK").is_ok()
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

fn run_batch(db: &rusqlite::Connection, sql: &str) -> Result<()> {
    let log = Log::start(sql);
    db.prepare_cached(sql)
        .and_then(|mut stmt| stmt.raw_execute())
        .map_err(error)?;
    log.finish(0, 0);
    Ok(())
}

/// SQLITE_BUSY, with any extended code: another connection holds the lock.
fn is_busy(err: &Error) -> bool {
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
fn error(err: rusqlite::Error) -> Error {
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
