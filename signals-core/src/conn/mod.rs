//! Connections: the [`Db`] pool handle and connecting (`connect`), one transaction's
//! connection per backend (`server` for PostgreSQL and MySQL, `sqlite_raw` for SQLite, run on
//! the connection's own handle: `sqlite_handle`, the crate's only `unsafe`), the connection a
//! SQLite `Db` keeps between its operations (`sqlite_keep`), and running one statement on a
//! pool, the kept connection or a transaction's connection (`exec`).
//!
//! Uses `error`, `backend` and `value`. Knows nothing of savepoints or signals: those are
//! `tx`'s and `signal`'s.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::mysql::{MySqlConnection, MySqlPool};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::sqlite::{SqliteConnection, SqlitePool};

use crate::backend::Backend;
use crate::error::{Error, Result};

mod connect;
mod exec;
mod server;
mod sqlite_handle;
mod sqlite_keep;
mod sqlite_raw;

pub(crate) use exec::{Handle, Outcome, TxConn};
use sqlite_keep::{Keeper, Lent};

/// Default limit of saves nested inside receivers; see [`Db::with_max_depth`].
pub const DEFAULT_MAX_DEPTH: u32 = 16;

#[derive(Clone)]
pub(crate) enum Pool {
    /// With the connection a `Db` keeps, when it keeps one (see `sqlite_keep`).
    Sqlite(SqlitePool, Option<Keeper>),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// A pool of connections to SQLite, PostgreSQL or MySQL, chosen by URL at run time.
///
/// Cloning is cheap: clones share the pool. Pass `&db` to [`Model::save`](crate::Model::save),
/// [`Model::delete`](crate::Model::delete) and the loaders; each call takes a connection for as
/// long as it needs one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Backend, Db};
///
/// let db = Db::connect("sqlite::memory:").await?;
/// assert_eq!(db.backend(), Backend::Sqlite);
/// db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY)").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    pub(crate) pool: Pool,
    pub(crate) max_depth: u32,
    pub(crate) on_commit_timeout: Option<Duration>,
    /// Tells this pool from others (clones share it): see [`receivers_running`].
    pub(crate) id: u64,
    /// How many saves and deletes of this pool are running receivers in a transaction of
    /// their own (each holding a connection): see [`Db::explain_pool_timeout`].
    pub(crate) busy: Arc<AtomicUsize>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend())
            .field("max_depth", &self.max_depth)
            .field("on_commit_timeout", &self.on_commit_timeout)
            .finish_non_exhaustive()
    }
}

impl Db {
    pub(crate) fn from_pool(pool: Pool) -> Db {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Db {
            pool,
            max_depth: DEFAULT_MAX_DEPTH,
            on_commit_timeout: None,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            busy: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Bounds each piece of after-commit work (`#[on_commit]` receivers, [`Tx::on_commit`]):
    /// work still running after `limit` is stopped and reported as [`Error::TimedOut`] in
    /// `post_commit_errors()` / [`Tx::commit_reporting`], and the rest runs. Without a limit
    /// (the default) the commit's caller waits for all of it; for work that may take long, spawn
    /// it (`tokio::spawn`) from the receiver instead. Needs tokio's time driver
    /// (`#[tokio::main]` enables it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use std::time::Duration;
    /// use signals_core::{Db, ErrorKind};
    ///
    /// let db = Db::connect("sqlite::memory:").await?.with_on_commit_timeout(Duration::from_millis(50));
    /// let mut tx = db.begin().await?;
    /// tx.on_commit(std::future::pending()); // never finishes
    /// tx.on_commit(async { println!("still runs") });
    /// let errors = tx.commit_reporting().await?;
    /// assert_eq!(errors[0].kind(), ErrorKind::TimedOut);
    /// # Ok(()) }
    /// ```
    ///
    /// [`Tx::on_commit`]: crate::Tx::on_commit
    /// [`Tx::commit_reporting`]: crate::Tx::commit_reporting
    /// [`Error::TimedOut`]: crate::Error::TimedOut
    pub fn with_on_commit_timeout(mut self, limit: Duration) -> Self {
        self.on_commit_timeout = Some(limit);
        self
    }

    /// SQLite: whether this `Db` keeps one connection out of the pool between its operations
    /// ([`Db::connect`] does; a pool you wrap with `Db::from` does not unless you ask). Other
    /// backends ignore it.
    ///
    /// A kept connection holds its SQLite handle (taken once from sqlx's worker thread) and
    /// the statements it prepared, so transactions and statements on it involve no other
    /// thread: a save with receivers costs a few microseconds over SQLite's own work instead
    /// of a chain of thread wake-ups (BENCHMARKS.md). Operations that find it busy take a
    /// connection from the pool as before, except when the pool has only one connection (an
    /// in-memory database): they wait for it then, as they would for the pool. It goes back
    /// to the pool on [`Db::close`], and for good when [`Db::pool`] is asked for on a
    /// one-connection pool, so that your SQL finds it there. Keep it off for a one-connection
    /// pool you also use directly through a clone of the sqlx pool.
    ///
    /// Such a `Db` (and its clones) also queues its own writes on a file (transactions, and
    /// statements in autocommit), so they take SQLite's write lock in the order they asked for
    /// it: SQLite's busy handler alone is not fair, and under a steady stream of writers one of
    /// them could wait past the busy timeout. A write whose turn does not come within the busy
    /// timeout fails as SQLite would, "database is locked"
    /// ([`ErrorKind::Conflict`](crate::ErrorKind::Conflict)): a task that holds a transaction
    /// must write through it, not through the `Db`, or it waits for itself.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::Db;
    /// use signals_core::sqlx::sqlite::SqlitePoolOptions;
    ///
    /// let pool = SqlitePoolOptions::new().max_connections(4).connect("sqlite::memory:").await?;
    /// let db = Db::from(pool).with_kept_connection(true);
    /// assert!(db.keeps_connection());
    /// let db = db.with_kept_connection(false);
    /// assert!(!db.keeps_connection());
    /// # Ok(()) }
    /// ```
    pub fn with_kept_connection(mut self, keep: bool) -> Self {
        if let Pool::Sqlite(pool, keeper) = &mut self.pool {
            // Keeping already: the clones go on sharing one kept connection and one queue.
            if !(keep && keeper.as_ref().is_some_and(Keeper::keeping)) {
                *keeper = keep.then(|| Keeper::new(pool, None));
            }
        }
        self
    }

    /// Whether this `Db` keeps a connection: see [`with_kept_connection`](Self::with_kept_connection).
    pub fn keeps_connection(&self) -> bool {
        matches!(&self.pool, Pool::Sqlite(_, Some(keeper)) if keeper.keeping())
    }

    /// The limit set by [`with_on_commit_timeout`](Self::with_on_commit_timeout), if any.
    pub fn on_commit_timeout(&self) -> Option<Duration> {
        self.on_commit_timeout
    }

    /// Sets how deeply saves and deletes may nest inside receivers before failing with
    /// [`Error::RecursionLimit`](crate::Error::RecursionLimit) (default [`DEFAULT_MAX_DEPTH`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// let db = signals_core::Db::connect("sqlite::memory:").await?.with_max_depth(4);
    /// assert_eq!(db.max_depth(), 4);
    /// # Ok(()) }
    /// ```
    pub fn with_max_depth(mut self, depth: u32) -> Self {
        self.max_depth = depth;
        self
    }

    /// The nesting limit set by [`with_max_depth`](Self::with_max_depth).
    pub fn max_depth(&self) -> u32 {
        self.max_depth
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(..) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
            Pool::MySql(_) => Backend::MySql,
        }
    }

    /// The underlying sqlx pool, for SQL of your own (sqlx is re-exported as
    /// [`signals_core::sqlx`](crate::sqlx)).
    ///
    /// A SQLite `Db` from [`Db::connect`] keeps one connection out of the pool between its
    /// operations, its handle held and statements prepared (see [`Db::connect`]). On an
    /// in-memory database that is the pool's only connection, so calling `pool()` there makes
    /// this `Db` stop keeping it for good: SQL of your own then finds it in the pool, and the
    /// crate's operations take it from the pool as yours do. On a file the pool has other
    /// connections, and nothing changes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, PoolRef};
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// if let PoolRef::Sqlite(pool) = db.pool() {
    ///     let one: i64 = signals_core::sqlx::query_scalar("SELECT 1").fetch_one(pool).await?;
    ///     assert_eq!(one, 1);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn pool(&self) -> PoolRef<'_> {
        // SQL of your own on an in-memory SQLite database needs its one connection.
        if let Pool::Sqlite(_, Some(keeper)) = &self.pool {
            keeper.stop_if_single();
        }
        self.sqlx_pool()
    }

    /// The pool, for the crate's own use: with [`Db::lend_to_pool`] around it on SQLite.
    pub(crate) fn sqlx_pool(&self) -> PoolRef<'_> {
        match &self.pool {
            Pool::Sqlite(p, _) => PoolRef::Sqlite(p),
            Pool::Postgres(p) => PoolRef::Postgres(p),
            Pool::MySql(p) => PoolRef::MySql(p),
        }
    }

    /// Runs SQL text that takes no arguments (DDL, several statements separated by `;`).
    pub async fn execute_unprepared(&self, sql: &str) -> Result<()> {
        use sqlx::Executor as _;
        self.check_not_reentered()?;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.pool {
            Pool::Sqlite(p, keeper) => {
                let _lent = Db::lend(keeper).await;
                p.execute(sql).await.map(drop)?
            }
            Pool::Postgres(p) => p.execute(sql).await.map(drop)?,
            Pool::MySql(p) => p.execute(sql).await.map(drop)?,
        }
        Ok(())
    }

    /// For the crate's own SQL on the sqlx pool: on an in-memory SQLite database, its one
    /// connection, given back by the keeper for as long as the guard lives.
    pub(crate) async fn lend_to_pool(&self) -> Option<Lent> {
        match &self.pool {
            Pool::Sqlite(_, keeper) => Db::lend(keeper).await,
            _ => None,
        }
    }

    async fn lend(keeper: &Option<Keeper>) -> Option<Lent> {
        match keeper {
            Some(keeper) => keeper.lend_to_pool().await,
            None => None,
        }
    }

    /// Closes every connection of the pool, waiting for those in use to come back.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p, keeper) => {
                if let Some(keeper) = keeper {
                    keeper.stop();
                    // Given back by its user when busy: `close` waits for it as for the rest.
                }
                p.close().await
            }
            Pool::Postgres(p) => p.close().await,
            Pool::MySql(p) => p.close().await,
        }
    }
}

/// A save or delete of `model` running its receivers in this task, on the pool `pool`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Running {
    pub(crate) pool: u64,
    pub(crate) model: &'static str,
    pub(crate) operation: &'static str,
}

tokio::task_local! {
    static RUNNING: Running;
}

/// Runs `work` (the transaction body of a save or delete with receivers) with the task marked,
/// so that a receiver's statement on the same pool fails at once: see
/// [`Db::check_not_reentered`]. (Work a receiver spawns onto another task is not marked.)
///
/// A plain function returning the scope's future: an `async fn` would keep `work` twice in its
/// state (as its argument and inside the scope), and saves nest.
pub(crate) fn receivers_running<F: Future>(
    running: Running,
    work: F,
) -> impl Future<Output = F::Output> {
    RUNNING.scope(running, work)
}

/// Counts an operation running receivers on a connection of its `Db` until dropped.
pub(crate) struct Busy(Arc<AtomicUsize>);

impl Busy {
    pub(crate) fn new(db: &Db) -> Busy {
        db.busy.fetch_add(1, Ordering::Relaxed);
        Busy(db.busy.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Db {
    /// A pool timeout while saves or deletes of this pool run receivers, each holding one of
    /// its connections, most likely comes from work those receivers wait for on other tasks
    /// (`tokio::spawn`), which the task-local check of [`Db::check_not_reentered`] cannot
    /// see: [`Error::PoolTimedOut`](crate::Error::PoolTimedOut) says so.
    pub(crate) fn explain_pool_timeout(&self, err: Error) -> Error {
        match err {
            Error::Connection(source @ sqlx::Error::PoolTimedOut) => {
                let receivers = self.busy.load(Ordering::Relaxed);
                if receivers == 0 {
                    return Error::Connection(source);
                }
                Error::PoolTimedOut { receivers, source }
            }
            err => err,
        }
    }

    /// Refuses a statement on this pool from a receiver of a save or delete that holds one of
    /// its connections: [`Error::ReceiverUsedPool`](crate::Error::ReceiverUsedPool).
    pub(crate) fn check_not_reentered(&self) -> Result<()> {
        match RUNNING.try_with(|running| *running) {
            Ok(running) if running.pool == self.id => Err(Error::ReceiverUsedPool {
                model: running.model,
                operation: running.operation,
            }),
            _ => Ok(()),
        }
    }
}

impl From<SqlitePool> for Db {
    /// Wraps a pool you configured yourself. Use a busy timeout for concurrent writers, one
    /// connection for `:memory:`, and `test_before_acquire(false)` ([`Db::connect`] does): an
    /// embedded connection has nothing to test, and the test costs a round trip to the
    /// connection's worker thread on every use.
    fn from(pool: SqlitePool) -> Db {
        Db::from_pool(Pool::Sqlite(pool, None))
    }
}

impl From<PgPool> for Db {
    /// Wraps a pool you configured yourself.
    fn from(pool: PgPool) -> Db {
        Db::from_pool(Pool::Postgres(pool))
    }
}

impl From<MySqlPool> for Db {
    /// Wraps a pool you configured yourself. Give its sessions the isolation level the crate
    /// needs, `READ COMMITTED` (see [`Db::connect`]), in its `after_connect`:
    ///
    /// ```no_run
    /// # async fn f() -> signals_core::Result<()> {
    /// use signals_core::sqlx::{Executor as _, mysql::MySqlPoolOptions};
    ///
    /// let pool = MySqlPoolOptions::new()
    ///     .after_connect(|conn, _| Box::pin(async move {
    ///         conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").await?;
    ///         Ok(())
    ///     }))
    ///     .connect("mysql://root@127.0.0.1/app")
    ///     .await?;
    /// let db = signals_core::Db::from(pool);
    /// # Ok(()) }
    /// ```
    fn from(pool: MySqlPool) -> Db {
        Db::from_pool(Pool::MySql(pool))
    }
}

/// A borrowed sqlx pool of one of the three backends; see [`Db::pool`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum PoolRef<'a> {
    /// SQLite.
    Sqlite(&'a SqlitePool),
    /// PostgreSQL.
    Postgres(&'a PgPool),
    /// MySQL or MariaDB.
    MySql(&'a MySqlPool),
}

/// The open connection of a transaction, for SQL of your own; see [`Tx::conn`](crate::Tx::conn).
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnRef<'a> {
    /// SQLite.
    Sqlite(&'a mut SqliteConnection),
    /// PostgreSQL.
    Postgres(&'a mut PgConnection),
    /// MySQL or MariaDB.
    MySql(&'a mut MySqlConnection),
}
