//! The connection a SQLite [`Db`](crate::Db) keeps between its operations.
//!
//! Taking a pooled connection, taking its handle from sqlx's worker thread and giving both
//! back costs a chain of thread wake-ups per transaction (tens of microseconds, several times
//! what SQLite takes for a save), and statements prepared on the handle die with each
//! transaction. So a `Db` opened with [`Db::connect`](crate::Db::connect) keeps one connection
//! out of the pool, its handle held and its statements prepared: its transactions and its
//! statements outside transactions run there while it is free, with no hand-off at all.
//!
//! - **Only when free.** On a file, an operation that finds the kept connection busy (another
//!   task's transaction is on it) takes a connection from the pool as before: nothing waits
//!   for the keeper that would not have waited anyway. An in-memory database has one
//!   connection, so there the keeper is the way in, waited for as the pool would be (up to
//!   its acquire timeout, then the same `PoolTimedOut`).
//! - **Given back whenever sqlx needs it.** [`Db::pool`](crate::Db::pool) on an in-memory
//!   database stops the keeping for good (SQL of your own then finds its one connection in the
//!   pool), and the crate's own uses of the pool (migrations, schema checks,
//!   `execute_unprepared`) hold the keeper with the connection given back while they run.
//!   [`Db::close`](crate::Db::close) stops keeping, so the pool gets every connection back.
//! - **Never a transaction left open.** A connection goes back to the keeper only after its
//!   COMMIT or ROLLBACK succeeded, with its handle held; one whose transaction cannot be ended
//!   is closed, as before.
//! - **Statements finalized before sqlx sees the connection.** sqlx closes a connection with
//!   `sqlite3_close`, which fails (and sqlx panics) while statements are unfinalized; the kept
//!   statements are finalized (`Locked` dropped) before the connection goes back to the pool,
//!   and a kept connection is out of the pool, where nothing of sqlx closes it.
//!
//! Uses `error` and the handle (`sqlite_handle`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use super::sqlite_handle::{Locked, error};
use crate::error::{Error, Result};

/// The connection a SQLite `Db` keeps, shared by its clones.
#[derive(Clone)]
pub(crate) struct Keeper {
    slot: Arc<Mutex<Slot>>,
    /// Cleared for good by [`Keeper::stop`].
    keeping: Arc<AtomicBool>,
    /// The pool has one connection (an in-memory database): the kept one, so wait for the
    /// keeper rather than pass it by.
    single: bool,
    /// How long to wait for it then: the pool's acquire timeout.
    wait: Duration,
    /// The `Db`'s own write transactions, first come first served: see [`Keeper::queue`].
    writers: Arc<Semaphore>,
    /// The connections' busy timeout in milliseconds, as given or last read; `UNKNOWN` until
    /// then.
    busy_ms: Arc<AtomicU64>,
    /// The pool, to read the busy timeout off one of its connections when not given.
    pool: SqlitePool,
}

/// No busy timeout known yet: see [`Keeper::queue`].
const UNKNOWN: u64 = u64::MAX;

/// The keeper held with its connection in the pool: see [`Keeper::lend_to_pool`].
pub(crate) type Lent = OwnedMutexGuard<Slot>;

/// The kept connection, when there is one.
#[derive(Default)]
pub(crate) struct Slot {
    held: Option<Held>,
}

/// A connection kept with its handle held, between transactions (none is open on it).
pub(crate) struct Held {
    /// Declared before `conn`, which it borrows: dropped first.
    pub(crate) locked: Locked,
    pub(crate) conn: PoolConnection<Sqlite>,
    pub(crate) busy_timeout: Duration,
}

impl Keeper {
    /// Keeps a connection of `pool`, whose connections wait `busy` for a lock when known
    /// ([`Db::connect`](crate::Db::connect) sets it); otherwise it is read off the first
    /// connection a transaction begins on.
    pub(crate) fn new(pool: &SqlitePool, busy: Option<Duration>) -> Keeper {
        Keeper {
            slot: Arc::new(Mutex::new(Slot::default())),
            keeping: Arc::new(AtomicBool::new(true)),
            single: pool.options().get_max_connections() == 1,
            wait: pool.options().get_acquire_timeout(),
            writers: Arc::new(Semaphore::new(1)),
            busy_ms: Arc::new(AtomicU64::new(busy.map_or(UNKNOWN, millis))),
            pool: pool.clone(),
        }
    }

    /// A place in the queue of this `Db`'s writers (its write transactions and its writes in
    /// autocommit), held until the write ends. `None` on an in-memory database (the keeper is
    /// its queue already). The wait is bounded by the connections' busy timeout: given by
    /// `Db::connect`, else read off a connection of the pool by the first writer (`PRAGMA
    /// busy_timeout`). A turn that does not come within the busy timeout is SQLite's own
    /// answer, "database is locked" ([`ErrorKind::Conflict`](crate::ErrorKind::Conflict)):
    /// the lock was taken for that long.
    ///
    /// SQLite's busy handler is not fair: a connection waiting for the write lock sleeps and
    /// polls, and a writer that comes just as the lock is freed takes it first, so under a
    /// steady stream of writers one can wait past its busy timeout and fail. Queued here, the
    /// `Db`'s own writers take the lock in the order they came; only other `Db`s and
    /// processes still meet SQLite's busy handler.
    pub(crate) async fn queue(&self) -> Result<Option<OwnedSemaphorePermit>> {
        if self.single {
            return Ok(None);
        }
        // A free turn, without a timer: every write passes here. (The semaphore is fair: a
        // turn is free only when nobody waits for one.)
        if let Ok(turn) = self.writers.clone().try_acquire_owned() {
            return Ok(Some(turn));
        }
        let mut ms = self.busy_ms.load(Ordering::Relaxed);
        if ms == UNKNOWN {
            let read: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&self.pool)
                .await?;
            ms = u64::try_from(read).unwrap_or(0);
            self.busy_ms.store(ms, Ordering::Relaxed);
        }
        let limit = Duration::from_millis(ms);
        match tokio::time::timeout(limit, self.writers.clone().acquire_owned()).await {
            Ok(turn) => Ok(turn.ok()),
            Err(_) => Err(locked(limit)),
        }
    }

    /// Records the connections' busy timeout, read off one of them, for [`queue`](Self::queue).
    pub(crate) fn saw_busy_timeout(&self, timeout: Duration) {
        self.busy_ms.store(millis(timeout), Ordering::Relaxed);
    }

    pub(crate) fn keeping(&self) -> bool {
        self.keeping.load(Ordering::Acquire)
    }

    /// The keeper, to run on its connection: `None` when it stopped keeping, or on a file
    /// when another task is on it.
    pub(crate) async fn enter(&self) -> Result<Option<Entered>> {
        if !self.keeping() {
            return Ok(None);
        }
        let guard = if self.single {
            match tokio::time::timeout(self.wait, self.slot.clone().lock_owned()).await {
                Ok(guard) => guard,
                Err(_) => return Err(Error::Connection(sqlx::Error::PoolTimedOut)),
            }
        } else {
            match self.slot.clone().try_lock_owned() {
                Ok(guard) => guard,
                Err(_) => return Ok(None),
            }
        };
        if !self.keeping() {
            return Ok(None);
        }
        Ok(Some(Entered {
            guard,
            keeping: self.keeping.clone(),
        }))
    }

    /// Holds the keeper with its connection given back to the pool, for as long as the
    /// returned guard lives: sqlx can then use every connection. Only a one-connection pool
    /// (an in-memory database) needs this; elsewhere it returns `None` at once.
    pub(crate) async fn lend_to_pool(&self) -> Option<Lent> {
        if !self.single {
            return None;
        }
        // Past the pool's timeout, the caller's use of the pool times out as it would have.
        let mut guard = tokio::time::timeout(self.wait, self.slot.clone().lock_owned())
            .await
            .ok()?;
        if let Some(held) = guard.held.take() {
            held.give_back();
        }
        Some(guard)
    }

    /// [`stop`](Self::stop) for a one-connection pool (an in-memory database), which has no
    /// other connection for SQL of the caller's own.
    pub(crate) fn stop_if_single(&self) {
        if self.single {
            self.stop();
        }
    }

    /// Stops keeping for good, giving the connection back to the pool now if it is free
    /// (otherwise its user gives it back when done).
    pub(crate) fn stop(&self) {
        self.keeping.store(false, Ordering::Release);
        if let Ok(mut slot) = self.slot.try_lock()
            && let Some(held) = slot.held.take()
        {
            held.give_back();
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(UNKNOWN - 1)
        .min(UNKNOWN - 1)
}

/// SQLite's "database is locked" (`SQLITE_BUSY`), for a writer whose turn did not come within
/// the busy timeout: the `Db`'s earlier writers held the lock that long.
fn locked(waited: Duration) -> Error {
    error(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        Some(format!(
            "database is locked: this Db's earlier writers held it for the whole busy \
             timeout ({waited:?}); if this task holds a transaction of the Db, write through \
             the transaction, not the Db"
        )),
    ))
}

/// The keeper, entered: its connection is this holder's until dropped.
pub(crate) struct Entered {
    guard: OwnedMutexGuard<Slot>,
    keeping: Arc<AtomicBool>,
}

impl Entered {
    /// The kept connection, taken out (`None` when there is none yet: take one from the pool
    /// and [`put`](Self::put) it here when done).
    pub(crate) fn take(&mut self) -> Option<Held> {
        self.guard.held.take()
    }

    /// Keeps `held` for the next user, or gives it back to the pool if the keeper stopped.
    pub(crate) fn put(&mut self, held: Held) {
        if self.keeping.load(Ordering::Acquire) {
            self.guard.held = Some(held);
        } else {
            held.give_back();
        }
    }

    /// The kept connection, taking one from `pool` (and its handle from sqlx's worker) when
    /// none is kept yet.
    pub(crate) async fn held(&mut self, pool: &SqlitePool) -> Result<&Held> {
        if self.guard.held.is_none() {
            let mut conn = Box::pin(pool.acquire()).await?;
            let locked = Locked::take(&mut conn).await?;
            let busy_timeout = locked.busy_timeout()?;
            self.guard.held = Some(Held {
                locked,
                conn,
                busy_timeout,
            });
        }
        match &self.guard.held {
            Some(held) => Ok(held),
            None => Err(Error::Transaction("SQLite handle unavailable".into())),
        }
    }

    /// Gives the kept connection back to the pool (before SQL on the pool that must not find
    /// it missing).
    pub(crate) fn give_back(&mut self) {
        if let Some(held) = self.guard.held.take() {
            held.give_back();
        }
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        if !self.keeping.load(Ordering::Acquire) {
            self.give_back();
        }
    }
}

impl Held {
    /// Finalizes the statements, gives the handle back to sqlx's worker thread and the
    /// connection back to the pool.
    pub(crate) fn give_back(self) {
        let Held { locked, conn, .. } = self;
        drop(locked);
        // sqlx gives a connection back from a task of its runtime: without one (a `Db`
        // dropped outside of any), from a runtime made for it, whose end closes it cleanly.
        if tokio::runtime::Handle::try_current().is_ok() {
            drop(conn);
        } else if let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() {
            rt.block_on(async move { drop(conn) });
        } else {
            // No runtime at all: the connection is leaked rather than sqlx panicking.
            std::mem::forget(conn);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            held.give_back();
        }
    }
}
