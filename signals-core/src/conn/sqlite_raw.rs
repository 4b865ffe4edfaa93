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
//! A `Db`'s own writes on a database file queue for their turn (`Keeper::queue`): a
//! transaction before BEGIN, a statement in autocommit before it runs (`conn/exec.rs`), so
//! that SQLite's busy handler, which is not fair, cannot starve one of them past its busy
//! timeout while the others keep writing.
//!
//! Uses `error`, `value`, the statement outcome of `conn`, the handle (`sqlite_handle`) and
//! the kept connection (`sqlite_keep`).

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::OwnedSemaphorePermit;

use super::Outcome;
use super::sqlite_handle::{Locked, error, execute_on, is_busy, roll_back, run_batch, settle};
use super::sqlite_keep::{Entered, Held, Keeper};
use crate::error::{Error, Result};
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
    /// The `Db`'s kept connection, entered: this transaction runs on it (or on the connection
    /// it will keep) and gives it back at its end; see `sqlite_keep`.
    kept: Option<Entered>,
    /// This transaction's turn among the `Db`'s writers (see `Keeper::queue`), given up when
    /// it ends: after its ROLLBACK when dropped unfinished.
    turn: Option<OwnedSemaphorePermit>,
}

impl RawTx {
    /// Begins an immediate (write) transaction: on the connection `keeper` keeps when it is
    /// free (no hand-off to sqlx's worker, its statements prepared already), else on one
    /// taken from the pool.
    pub(crate) async fn begin(pool: &SqlitePool, keeper: Option<&Keeper>) -> Result<RawTx> {
        let mut tx = RawTx {
            locked: None,
            conn: None,
            open: false,
            busy_timeout: Duration::ZERO,
            lent: false,
            kept: None,
            turn: None,
        };
        // The turn first, then the keeper: the writer whose turn it is never waits for one
        // that is still queued.
        if let Some(keeper) = keeper {
            tx.turn = keeper.queue().await?;
        }
        if let Some(keeper) = keeper
            && let Some(mut entered) = keeper.enter().await?
        {
            if let Some(held) = entered.take() {
                tx.busy_timeout = held.busy_timeout;
                tx.locked = Some(held.locked);
                tx.conn = Some(held.conn);
            }
            tx.kept = Some(entered);
        }
        if tx.conn.is_none() {
            tx.conn = Some(pool.acquire().await?);
        }
        tx.begin_immediate().await?;
        if let Some(keeper) = keeper {
            keeper.saw_busy_timeout(tx.busy_timeout);
        }
        Ok(tx)
    }

    /// `BEGIN IMMEDIATE`, taking the write lock up front: a deferred transaction that reads
    /// and then writes fails with SQLITE_BUSY when another connection wrote in between.
    async fn begin_immediate(&mut self) -> Result<()> {
        // From here on, a cancelled or failed BEGIN leaves the connection to be checked and
        // rolled back if needed when dropped.
        self.open = true;
        // A kept connection comes with its handle and busy timeout; another is read once.
        if self.locked.is_none() {
            self.lock().await?;
            if let Some(locked) = &self.locked {
                self.busy_timeout = locked.busy_timeout()?;
            }
        }
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
            self.locked = Some(Locked::take(conn).await?);
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
        self.keep();
        Ok(())
    }

    pub(crate) async fn rollback(mut self) -> Result<()> {
        let db = self.lock().await?;
        run_batch(db, "ROLLBACK")?;
        // Only now: if ROLLBACK failed, dropping `self` tries again.
        self.open = false;
        self.keep();
        Ok(())
    }

    /// The transaction ended cleanly: a connection entered from the `Db`'s keeper goes back
    /// to it, handle and prepared statements with it (when its handle is held: after a
    /// hand-off to sqlx's worker that is not the case, and the connection goes back to the
    /// pool instead, as it does when the keeper stopped keeping).
    fn keep(&mut self) {
        let Some(mut entered) = self.kept.take() else {
            return;
        };
        if !self.open
            && self.locked.is_some()
            && let (Some(locked), Some(conn)) = (self.locked.take(), self.conn.take())
        {
            entered.put(Held {
                locked,
                conn,
                busy_timeout: self.busy_timeout,
            });
        }
    }

    pub(crate) async fn execute(&mut self, sql: &str, args: &[SqlValue]) -> Result<Outcome> {
        let db = self.lock().await?;
        execute_on(db, sql, args)
    }
}

impl Drop for RawTx {
    fn drop(&mut self) {
        if !self.open {
            // Ended (its connection kept already, or going back to the pool), or never begun.
            return;
        }
        if let Some(locked) = &self.locked {
            // Synchronous on the handle: the connection goes back to the keeper or the pool
            // clean.
            let clean = locked.db.is_autocommit() || locked.db.execute_batch("ROLLBACK").is_ok();
            if clean {
                self.open = false;
                self.keep();
                return;
            }
            self.locked = None;
            // Never hand on a connection inside a transaction: closing it rolls back.
            if let Some(conn) = &mut self.conn {
                conn.close_on_drop();
            }
            return;
        }
        // The connection was lent out through `Tx::conn`: roll back once the handle is ours
        // again, before the connection returns to the pool.
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let turn = self.turn.take();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if !roll_back(&mut conn).await {
                        // Closing the connection rolls the transaction back.
                        conn.close_on_drop();
                    }
                    // The next writer's turn only once the lock is free.
                    drop(conn);
                    drop(turn);
                });
            }
            // No runtime to roll back on: closing the connection rolls the transaction back.
            Err(_) => conn.close_on_drop(),
        }
    }
}
