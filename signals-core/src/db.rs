//! The database handle, transactions, and the internal statement runner.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::Database;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};
use sqlx_core::transaction::TransactionManager;

use crate::error::{Error, Result};
use crate::sqlite_raw::RawTx;
use crate::value::{Args, Row, sqlx_sqlite_args};

/// Default limit of saves nested inside receivers; see [`Db::with_max_depth`].
pub const DEFAULT_MAX_DEPTH: u32 = 16;

/// The database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite, embedded (sqlx's bundled libsqlite3).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Backend {
    /// Index used for per-backend caches.
    #[doc(hidden)]
    pub const fn index(self) -> usize {
        match self {
            Backend::Sqlite => 0,
            Backend::Postgres => 1,
            Backend::MySql => 2,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
            Backend::MySql => "MySQL",
        })
    }
}

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
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
    max_depth: u32,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend())
            .field("max_depth", &self.max_depth)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Connects to the database named by `url` and checks that it answers.
    ///
    /// - `sqlite::memory:` — a private in-memory database (one connection, so that every
    ///   statement sees the same data);
    /// - `sqlite://path/to/file.db` or `sqlite:file.db` — a file, created if missing, in WAL
    ///   mode with foreign keys enforced; write transactions take the write lock up front
    ///   (`BEGIN IMMEDIATE`), so concurrent saves wait instead of failing with
    ///   "database is locked";
    /// - `postgres://user@host:5432/db` (or `postgresql://`);
    /// - `mysql://user@host:3306/db` (MySQL or MariaDB; `mariadb://` is accepted too).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use signals_core::{Db, ErrorKind};
    ///
    /// let err = Db::connect("oracle://scott@tiger").await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Config);
    /// assert!(err.to_string().contains("`oracle`"));
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Db> {
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let pool = match scheme.as_str() {
            "sqlite" => {
                let memory = is_sqlite_memory(url);
                let mut opts = SqliteConnectOptions::from_str(url)
                    .map_err(|e| config_error(url, e))?
                    .create_if_missing(true)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                // An embedded connection cannot be dropped by a server: checking it before each
                // use would only cost a round trip to its worker thread.
                let mut pool = SqlitePoolOptions::new().test_before_acquire(false);
                if memory {
                    // sqlx opens `:memory:` as a shared-cache database, which vanishes with its
                    // last connection and, between connections, locks whole tables and fails
                    // at once (SQLITE_LOCKED) instead of waiting: keep exactly one connection,
                    // forever, so the data lives as long as the pool and nothing conflicts.
                    pool = pool
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None);
                } else {
                    opts = opts.journal_mode(SqliteJournalMode::Wal);
                    check_connect::<SqliteConnection>(url, &opts).await?;
                }
                Pool::Sqlite(
                    pool.connect_with(opts)
                        .await
                        .map_err(|e| connect_error(url, e))?,
                )
            }
            "postgres" | "postgresql" => {
                let opts = PgConnectOptions::from_str(url).map_err(|e| config_error(url, e))?;
                check_connect::<PgConnection>(url, &opts).await?;
                Pool::Postgres(
                    PgPoolOptions::new()
                        .connect_with(opts)
                        .await
                        .map_err(|e| connect_error(url, e))?,
                )
            }
            "mysql" | "mariadb" => {
                let url = if scheme == "mariadb" {
                    format!("mysql{}", &url["mariadb".len()..])
                } else {
                    url.to_owned()
                };
                let opts =
                    MySqlConnectOptions::from_str(&url).map_err(|e| config_error(&url, e))?;
                check_connect::<MySqlConnection>(&url, &opts).await?;
                Pool::MySql(
                    MySqlPoolOptions::new()
                        .connect_with(opts)
                        .await
                        .map_err(|e| connect_error(&url, e))?,
                )
            }
            _ => {
                return Err(Error::Config(format!(
                    "unsupported database URL scheme `{scheme}` in `{}`; expected `sqlite:`, \
                     `postgres://` or `mysql://`",
                    redact(url)
                )));
            }
        };
        Ok(Db {
            pool,
            max_depth: DEFAULT_MAX_DEPTH,
        })
    }

    /// Sets how deeply saves and deletes may nest inside receivers before failing with
    /// [`Error::RecursionLimit`] (default [`DEFAULT_MAX_DEPTH`]).
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
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
            Pool::MySql(_) => Backend::MySql,
        }
    }

    /// The underlying sqlx pool, for SQL of your own (sqlx is re-exported as
    /// [`signals_core::sqlx`](crate::sqlx)).
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
        match &self.pool {
            Pool::Sqlite(p) => PoolRef::Sqlite(p),
            Pool::Postgres(p) => PoolRef::Postgres(p),
            Pool::MySql(p) => PoolRef::MySql(p),
        }
    }

    /// Runs SQL text that takes no arguments (DDL, several statements separated by `;`).
    pub async fn execute_unprepared(&self, sql: &str) -> Result<()> {
        use sqlx::Executor as _;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.pool {
            Pool::Sqlite(p) => p.execute(sql).await.map(drop)?,
            Pool::Postgres(p) => p.execute(sql).await.map(drop)?,
            Pool::MySql(p) => p.execute(sql).await.map(drop)?,
        }
        Ok(())
    }

    /// Closes every connection of the pool, waiting for those in use to come back.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
            Pool::MySql(p) => p.close().await,
        }
    }

    /// Begins a transaction. Saves and deletes given `&mut tx` run in savepoints inside it;
    /// work scheduled with [`Tx::on_commit`] runs after [`Tx::commit`]. Dropping the
    /// transaction without committing rolls it back.
    ///
    /// On SQLite the transaction takes the connection's SQLite handle from sqlx's worker thread
    /// once and runs every statement on it directly (sqlx otherwise hands each statement to
    /// that thread and waits, which costs many times what SQLite itself takes). It begins with
    /// `BEGIN IMMEDIATE`, taking the write lock up front; waiting for another writer happens on
    /// sqlx's worker thread, never on yours.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// let db = signals_core::Db::connect("sqlite::memory:").await?;
    /// let mut tx = db.begin().await?;
    /// tx.on_commit(async { println!("committed") });
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn begin(&self) -> Result<Tx> {
        let inner = match &self.pool {
            // Runs on the connection's handle; takes the write lock up front.
            Pool::Sqlite(p) => TxInner::Sqlite(RawTx::begin(p).await?),
            Pool::Postgres(p) => TxInner::Postgres(ServerTx::begin(p).await?),
            Pool::MySql(p) => TxInner::MySql(ServerTx::begin(p).await?),
        };
        Ok(Tx {
            backend: self.backend(),
            inner: Some(inner),
            hooks: Vec::new(),
            marks: Vec::new(),
            in_doubt: None,
            abandoned: Arc::new(AtomicU32::new(NONE_ABANDONED)),
            max_depth: self.max_depth,
            robust_errors: Vec::new(),
        })
    }

    /// Runs `f` in a transaction: commits when it returns `Ok`, rolls back when it returns
    /// `Err`, and returns what `f` returned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Tx};
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY)").await?;
    /// let n = db
    ///     .transaction(async |tx: &mut Tx| {
    ///         tx.on_commit(async { println!("runs after COMMIT") });
    ///         Ok::<_, signals_core::Error>(42)
    ///     })
    ///     .await?;
    /// assert_eq!(n, 42);
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: AsyncFnOnce(&mut Tx) -> std::result::Result<T, E>,
        E: From<Error>,
    {
        self.transaction_reporting(f).await.map(|(value, _)| value)
    }

    /// [`transaction`](Self::transaction), also returning the errors of the work that ran
    /// after the commit (see [`Tx::commit_reporting`]).
    pub(crate) async fn transaction_reporting<T, E, F>(
        &self,
        f: F,
    ) -> std::result::Result<(T, Vec<Error>), E>
    where
        F: AsyncFnOnce(&mut Tx) -> std::result::Result<T, E>,
        E: From<Error>,
    {
        let mut tx = self.begin().await?;
        match f(&mut tx).await {
            Ok(value) => {
                let errors = tx.commit_reporting().await?;
                Ok((value, errors))
            }
            Err(err) => {
                // The closure's error is the one that matters; a failed rollback ends in the
                // connection being discarded by the pool.
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }
}

impl From<SqlitePool> for Db {
    /// Wraps a pool you configured yourself. Use a busy timeout for concurrent writers, one
    /// connection for `:memory:`, and `test_before_acquire(false)` ([`Db::connect`] does): an
    /// embedded connection has nothing to test, and the test costs a round trip to the
    /// connection's worker thread on every use.
    fn from(pool: SqlitePool) -> Db {
        Db {
            pool: Pool::Sqlite(pool),
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

impl From<PgPool> for Db {
    /// Wraps a pool you configured yourself.
    fn from(pool: PgPool) -> Db {
        Db {
            pool: Pool::Postgres(pool),
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

impl From<MySqlPool> for Db {
    /// Wraps a pool you configured yourself.
    fn from(pool: MySqlPool) -> Db {
        Db {
            pool: Pool::MySql(pool),
            max_depth: DEFAULT_MAX_DEPTH,
        }
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

/// The open connection of a transaction, for SQL of your own; see [`Tx::conn`].
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

fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            let creds = &url[start + 3..at];
            match creds.find(':') {
                Some(colon) => {
                    format!("{}{}:***{}", &url[..start + 3], &creds[..colon], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Opens and closes one connection, so that an unreachable server or a wrong password fails
/// at once with its real cause (a pool would retry until its acquire timeout and report only
/// that it timed out).
async fn check_connect<C: sqlx::Connection>(
    url: &str,
    opts: &<C as sqlx::Connection>::Options,
) -> Result<()> {
    use sqlx::ConnectOptions as _;
    let conn = opts.connect().await.map_err(|e| connect_error(url, e))?;
    let _ = conn.close().await;
    Ok(())
}

fn config_error(url: &str, err: sqlx::Error) -> Error {
    Error::Config(format!("cannot use database URL `{}`: {err}", redact(url)))
}

fn connect_error(url: &str, err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::Configuration(e) => config_error(url, sqlx::Error::Configuration(e)),
        source => Error::Connect {
            url: redact(url),
            source,
        },
    }
}

pub(crate) enum TxInner {
    /// SQLite transactions run on the connection's own handle; see `sqlite_raw`.
    Sqlite(RawTx),
    Postgres(ServerTx<Postgres>),
    MySql(ServerTx<MySql>),
}

impl TxInner {
    /// Runs one savepoint statement of the transaction.
    async fn run(&mut self, sql: &str) -> Result<()> {
        match self {
            TxInner::Sqlite(t) => t.run(sql).await,
            TxInner::Postgres(t) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut **t)
                    .await?;
                Ok(())
            }
            TxInner::MySql(t) => {
                t.in_flight = true;
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut **t)
                    .await?;
                t.in_flight = false;
                Ok(())
            }
        }
    }
}

/// A PostgreSQL or MySQL transaction on a pooled connection: BEGIN, COMMIT and ROLLBACK through
/// sqlx's transaction manager (so sqlx knows the connection is in a transaction), savepoints of
/// the crate's own (see [`Tx::enter`]).
pub(crate) struct ServerTx<DB: Database> {
    conn: PoolConnection<DB>,
    /// A statement was under way when the operation running it was cancelled (set around
    /// every MySQL statement, and around COMMIT and ROLLBACK): the connection may expect an
    /// answer to a query it never sent, so it is never used again (see [`Tx::repair`]).
    in_flight: bool,
}

impl<DB: Database> ServerTx<DB> {
    async fn begin(pool: &sqlx::Pool<DB>) -> Result<Self> {
        let mut guard = CloseUnlessKept(None);
        let conn = guard.0.insert(pool.acquire().await?);
        DB::TransactionManager::begin(conn, None).await?;
        match guard.0.take() {
            Some(conn) => Ok(ServerTx {
                conn,
                in_flight: false,
            }),
            None => Err(Error::Transaction("connection lost while beginning".into())),
        }
    }

    async fn commit(mut self) -> Result<()> {
        if self.in_flight {
            return Err(Error::Transaction(
                "cannot commit: a statement of this transaction was cancelled midway".into(),
            ));
        }
        self.in_flight = true;
        DB::TransactionManager::commit(&mut self.conn).await?;
        self.in_flight = false;
        Ok(())
    }

    async fn rollback(mut self) -> Result<()> {
        if self.in_flight {
            // The connection cannot be trusted with a ROLLBACK; dropping `self` closes it,
            // which rolls back on the server.
            return Ok(());
        }
        self.in_flight = true;
        DB::TransactionManager::rollback(&mut self.conn).await?;
        self.in_flight = false;
        Ok(())
    }

    /// Closes the connection when the transaction is dropped, which rolls it back.
    fn discard(&mut self) {
        self.conn.close_on_drop();
    }
}

impl<DB: Database> std::ops::Deref for ServerTx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: Database> std::ops::DerefMut for ServerTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: Database> Drop for ServerTx<DB> {
    /// Not committed or rolled back (dropped, or its commit cancelled): queues the ROLLBACK on
    /// the connection, as sqlx's own `Transaction` does; it is sent before the connection's next
    /// use, which is the pool's check when the connection returns to it.
    fn drop(&mut self) {
        if self.in_flight {
            // Its state is unknown: closing it ends the transaction on the server.
            self.conn.close_on_drop();
            return;
        }
        for _ in 0..DB::TransactionManager::get_transaction_depth(&self.conn) {
            DB::TransactionManager::start_rollback(&mut self.conn);
        }
    }
}

/// A connection whose BEGIN is under way: dropped before it is kept (the future cancelled, or
/// BEGIN failed), the connection may or may not be inside a transaction, and sqlx would hand it
/// to the next user as it is; it is closed instead (which ends any transaction).
struct CloseUnlessKept<DB: Database>(Option<PoolConnection<DB>>);

impl<DB: Database> Drop for CloseUnlessKept<DB> {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.0 {
            conn.close_on_drop();
        }
    }
}

/// A savepoint statement whose operation was cancelled while it ran: whether it took effect is
/// unknown until the transaction's next use settles it (see [`Tx::repair`]).
#[derive(Debug, Clone, Copy)]
enum InDoubt {
    /// `SAVEPOINT`: nothing ran inside it.
    Begin,
    /// `RELEASE SAVEPOINT` of an operation whose statements all succeeded.
    Release(u32),
    /// `ROLLBACK TO SAVEPOINT`: the operation, or one cancelled inside it, is being undone.
    Rollback(u32),
}

fn savepoint_name(level: u32) -> String {
    format!("signals_sp_{level}")
}

/// The error every backend gives for a savepoint that does not exist.
fn no_such_savepoint(err: &Error) -> bool {
    let Error::Database(sqlx::Error::Database(e)) = err else {
        return false;
    };
    // PostgreSQL's SQLSTATE 3B001; MySQL's error 1305; SQLite's message.
    e.code().as_deref() == Some("3B001")
        || e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|e| e.number() == 1305)
        || e.message().starts_with("no such savepoint")
}

type Hook = Pin<Box<dyn Future<Output = Result<()>> + Send + 'static>>;

const NONE_ABANDONED: u32 = u32::MAX;

/// An open transaction.
///
/// Get one from [`Db::begin`] or [`Db::transaction`], or inside a receiver from the signal's
/// `tx()`. Pass `&mut tx` wherever a [`Db`] is accepted: saves and deletes then run in a
/// savepoint of this transaction, so a failing one undoes only itself.
///
/// Dropping a `Tx` without [`commit`](Self::commit) rolls it back and drops its
/// [`on_commit`](Self::on_commit) work.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{ConnRef, Db, Model};
///
/// #[derive(Model)]
/// struct Tag { id: Option<i64>, name: String }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").await?;
///
/// let mut tx = db.begin().await?;
/// Tag { id: None, name: "kept".into() }.save(&mut tx).await?;
/// tx.on_commit(async { println!("runs once the tags are committed") });
/// // SQL of your own, in the same transaction:
/// if let ConnRef::Sqlite(conn) = tx.conn().await? {
///     signals_core::sqlx::query("INSERT INTO tag (name) VALUES ('raw')").execute(conn).await?;
/// }
/// tx.commit().await?;
///
/// let mut tx = db.begin().await?;
/// Tag { id: None, name: "dropped".into() }.save(&mut tx).await?;
/// tx.rollback().await?;
///
/// let names: Vec<String> = Tag::all(&db).await?.into_iter().map(|t| t.name).collect();
/// assert_eq!(names, ["kept", "raw"]);
/// # Ok(()) }
/// ```
pub struct Tx {
    /// `None` only after `commit`/`rollback`, which consume the `Tx`.
    inner: Option<TxInner>,
    backend: Backend,
    hooks: Vec<Hook>,
    /// For each open savepoint, how many hooks were registered before it.
    marks: Vec<usize>,
    /// A savepoint statement cancelled while it ran, settled on the next use.
    in_doubt: Option<InDoubt>,
    /// The lowest savepoint level whose operation was cancelled (its future dropped), or
    /// `NONE_ABANDONED`. Repaired on the next use of the transaction.
    abandoned: Arc<AtomicU32>,
    max_depth: u32,
    /// Errors of robust receivers, taken by the save or delete they belong to.
    pub(crate) robust_errors: Vec<Error>,
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("backend", &self.backend())
            .field("savepoints", &self.marks.len())
            .field("on_commit", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

/// An open savepoint; dropping it without `Tx::leave` marks it abandoned.
#[doc(hidden)]
#[derive(Debug)]
pub struct Savepoint {
    level: u32,
    abandoned: Arc<AtomicU32>,
    armed: bool,
}

impl Drop for Savepoint {
    fn drop(&mut self) {
        if self.armed {
            self.abandoned.fetch_min(self.level, Ordering::SeqCst);
        }
    }
}

impl Tx {
    /// Which database this transaction runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn inner_mut(&mut self) -> Result<&mut TxInner> {
        self.inner
            .as_mut()
            .ok_or_else(|| Error::Transaction("transaction already finished".into()))
    }

    /// How many savepoints are open (how deeply saves are nested inside receivers).
    pub fn depth(&self) -> u32 {
        self.marks.len() as u32
    }

    /// Schedules `work` to run after the outermost transaction commits (Django's
    /// `transaction.on_commit`). It is dropped, never run, if the transaction or the savepoint
    /// it was scheduled in rolls back. Work runs in the order it was scheduled, awaited by
    /// [`commit`](Self::commit); it cannot fail the commit, so handle its errors inside it.
    pub fn on_commit<F>(&mut self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.hooks.push(Box::pin(async move {
            work.await;
            Ok(())
        }));
    }

    /// Schedules after-commit work whose error [`commit_reporting`](Self::commit_reporting)
    /// returns (the `#[on_commit]` receivers).
    pub(crate) fn on_commit_reporting<F>(&mut self, work: F)
    where
        F: Future<Output = Result<()>> + Send + 'static,
    {
        self.hooks.push(Box::pin(work));
    }

    /// The transaction's connection, for SQL of your own; it runs inside the transaction (and
    /// inside the current savepoint, if any).
    ///
    /// For nesting, use [`savepoint`](Self::savepoint) rather than sqlx's own `begin()` on this
    /// connection: on SQLite the transaction runs on the connection's handle, out of sqlx's
    /// sight, so sqlx would try a second `BEGIN` and fail with "cannot start a transaction
    /// within a transaction".
    pub async fn conn(&mut self) -> Result<ConnRef<'_>> {
        self.repair().await?;
        Ok(match self.inner_mut()? {
            // Hands the connection back to sqlx (still in the transaction); the next statement
            // of the transaction takes it back.
            TxInner::Sqlite(t) => ConnRef::Sqlite(t.release()?),
            TxInner::Postgres(t) => ConnRef::Postgres(t),
            TxInner::MySql(t) => ConnRef::MySql(t),
        })
    }

    /// Commits, then runs the work scheduled with [`on_commit`](Self::on_commit) and the
    /// models' `#[on_commit]` receivers. Errors of those receivers cannot undo the commit:
    /// they are logged; [`commit_reporting`](Self::commit_reporting) returns them.
    pub async fn commit(self) -> Result<()> {
        self.commit_reporting().await.map(drop)
    }

    /// [`commit`](Self::commit), returning the errors of the `#[on_commit]` receivers that
    /// ran after it, in order. `Err` means the commit itself failed (nothing ran then).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// let db = signals_core::Db::connect("sqlite::memory:").await?;
    /// let tx = db.begin().await?;
    /// assert!(tx.commit_reporting().await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn commit_reporting(mut self) -> Result<Vec<Error>> {
        self.repair().await?;
        // No savepoint is open here but those of operations still running elsewhere, which
        // `&mut` borrowing rules out; COMMIT would release them anyway.
        self.marks.clear();
        let hooks = std::mem::take(&mut self.hooks);
        match self.inner.take() {
            None => return Err(Error::Transaction("transaction already finished".into())),
            Some(TxInner::Sqlite(t)) => t.commit().await?,
            Some(TxInner::Postgres(t)) => t.commit().await?,
            Some(TxInner::MySql(t)) => t.commit().await?,
        }
        let mut errors = Vec::new();
        for hook in hooks {
            if let Err(err) = hook.await {
                tracing::error!(error = %err, "after-commit work failed; the commit stands");
                errors.push(err);
            }
        }
        Ok(errors)
    }

    /// Rolls back everything and drops the scheduled work.
    pub async fn rollback(mut self) -> Result<()> {
        self.hooks.clear();
        self.marks.clear();
        match self.inner.take() {
            None => return Err(Error::Transaction("transaction already finished".into())),
            Some(TxInner::Sqlite(t)) => t.rollback().await?,
            Some(TxInner::Postgres(t)) => t.rollback().await?,
            Some(TxInner::MySql(t)) => t.rollback().await?,
        }
        Ok(())
    }

    /// Runs `f` in a savepoint of this transaction (Django's nested `atomic()`): when it
    /// returns `Err`, everything it did — rows, and work scheduled with
    /// [`on_commit`](Self::on_commit) — is rolled back, and the transaction stays usable.
    ///
    /// Saves and deletes of models with receivers already run in a savepoint. A model without
    /// receivers saves with a single statement and no savepoint; on PostgreSQL a statement
    /// that fails aborts the whole transaction, so wrap such saves in `savepoint` where you
    /// mean to carry on after an error (a duplicate key you then look up, say).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, ErrorKind, Model, Tx};
    ///
    /// #[derive(Model)]
    /// struct Tag { id: Option<i64>, name: String }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)").await?;
    ///
    /// let mut tx = db.begin().await?;
    /// Tag { id: None, name: "rust".into() }.save(&mut tx).await?;
    /// let dup = tx
    ///     .savepoint(async |tx: &mut Tx| Tag { id: None, name: "rust".into() }.save(tx).await)
    ///     .await;
    /// assert_eq!(dup.unwrap_err().kind(), ErrorKind::UniqueViolation);
    /// Tag { id: None, name: "sql".into() }.save(&mut tx).await?; // still usable
    /// tx.commit().await?;
    /// assert_eq!(Tag::all(&db).await?.len(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn savepoint<T, E, F>(&mut self, f: F) -> std::result::Result<T, E>
    where
        F: AsyncFnOnce(&mut Tx) -> std::result::Result<T, E>,
        E: From<Error>,
    {
        self.atomically("savepoint", f).await
    }

    /// [`savepoint`](Self::savepoint), naming the model in a depth-limit error.
    pub(crate) async fn atomically<T, E, F>(
        &mut self,
        model: &'static str,
        f: F,
    ) -> std::result::Result<T, E>
    where
        F: AsyncFnOnce(&mut Tx) -> std::result::Result<T, E>,
        E: From<Error>,
    {
        let sp = self.enter(model).await?;
        match f(&mut *self).await {
            Ok(value) => {
                self.leave(sp, true).await?;
                Ok(value)
            }
            Err(err) => {
                // If even the rollback fails, the savepoint stays marked and the next use of
                // the transaction retries it; the original error is the one to report.
                let _ = self.leave(sp, false).await;
                Err(err)
            }
        }
    }

    /// Opens a savepoint for an operation on `model`, refusing past the depth limit.
    ///
    /// The crate names and tracks its savepoints itself (`signals_sp_<level>`) rather than
    /// through sqlx's transaction manager, so that an operation cancelled in the middle of a
    /// savepoint statement can be settled exactly: sqlx's bookkeeping would be off by one
    /// level then, and its clean-up of a cancelled `SAVEPOINT` rolls back the level *around*
    /// it (on PostgreSQL at depth one, the whole transaction).
    pub(crate) async fn enter(&mut self, model: &'static str) -> Result<Savepoint> {
        self.repair().await?;
        let level = self.depth() + 1;
        if level > self.max_depth {
            return Err(Error::RecursionLimit {
                model,
                depth: self.max_depth,
            });
        }
        let sql = format!("SAVEPOINT {}", savepoint_name(level));
        self.in_doubt = Some(InDoubt::Begin);
        let res = self.inner_mut()?.run(&sql).await;
        self.in_doubt = None;
        res?;
        self.marks.push(self.hooks.len());
        Ok(Savepoint {
            level,
            abandoned: self.abandoned.clone(),
            armed: true,
        })
    }

    /// Closes the savepoint: releases it when `ok`, rolls back to it otherwise (dropping the
    /// work scheduled inside it). If that fails, the savepoint stays open and marked
    /// abandoned, and the next use of the transaction rolls back to it.
    pub(crate) async fn leave(&mut self, mut sp: Savepoint, ok: bool) -> Result<()> {
        // An operation cancelled inside this one is settled first.
        self.repair().await?;
        let level = self.depth();
        let name = savepoint_name(level);
        let (doubt, sql) = if ok {
            (InDoubt::Release(level), format!("RELEASE SAVEPOINT {name}"))
        } else {
            (
                InDoubt::Rollback(level),
                format!("ROLLBACK TO SAVEPOINT {name}"),
            )
        };
        self.in_doubt = Some(doubt);
        let res = self.inner_mut()?.run(&sql).await;
        self.in_doubt = None;
        res?;
        // A savepoint rolled back to stays open, empty, as sqlx leaves its own: the next one
        // at this level takes the same name, and the enclosing release or commit ends both.
        self.close_to(level - 1, ok);
        sp.armed = false;
        Ok(())
    }

    /// Forgets the savepoints above `level`, with the after-commit work scheduled inside them
    /// unless `keep_hooks`.
    fn close_to(&mut self, level: u32, keep_hooks: bool) {
        let keep = level as usize;
        if self.marks.len() > keep {
            if !keep_hooks {
                self.hooks.truncate(self.marks[keep]);
            }
            self.marks.truncate(keep);
        }
    }

    /// Brings the transaction back to where it was before any operation that was cancelled
    /// (its future dropped mid-way): first settles the savepoint statement that was running
    /// when it was cancelled, if any, then rolls back to the savepoint of the outermost
    /// cancelled operation. Cancelled itself, it leaves what it has not done for the next use.
    async fn repair(&mut self) -> Result<()> {
        if let Some(TxInner::MySql(t)) = &mut self.inner
            && t.in_flight
        {
            // sqlx's MySQL driver counts on an answer to a statement as soon as it starts one,
            // before it is sent: cancelled before that, the connection would wait forever for
            // an answer that never comes (and so would the next user of the pool).
            t.discard();
            return Err(Error::Transaction(
                "an operation on this transaction was cancelled in the middle of a statement, \
                 which leaves a MySQL connection unusable: the transaction is rolled back (its \
                 connection is closed); begin a new one"
                    .into(),
            ));
        }
        if let Some(doubt) = self.in_doubt {
            self.settle(doubt).await.map_err(unrepaired)?;
            self.in_doubt = None;
        }
        let level = self.abandoned.load(Ordering::SeqCst);
        if level != NONE_ABANDONED && self.marks.len() >= level as usize {
            // Its savepoint exists: it was opened and neither released nor rolled back to.
            let sql = format!("ROLLBACK TO SAVEPOINT {}", savepoint_name(level));
            self.in_doubt = Some(InDoubt::Rollback(level));
            self.inner_mut()?.run(&sql).await.map_err(unrepaired)?;
            self.in_doubt = None;
            self.close_to(level - 1, false);
        }
        self.abandoned.store(NONE_ABANDONED, Ordering::SeqCst);
        Ok(())
    }

    /// Settles a savepoint statement that was cancelled while it ran.
    async fn settle(&mut self, doubt: InDoubt) -> Result<()> {
        match doubt {
            // Nothing ran inside it, and the operation that opened it is gone. If it exists,
            // it is shadowed by the next savepoint of that name, and ended with the enclosing
            // one: nothing to undo.
            InDoubt::Begin => Ok(()),
            // Every statement of the operation succeeded: finish releasing, so the operation
            // is kept whole, as if the cancellation had come an instant later.
            InDoubt::Release(level) => {
                self.release_if_open(level).await?;
                self.close_to(level - 1, true);
                Ok(())
            }
            // The savepoint was never released: rolling back to it again is harmless.
            InDoubt::Rollback(level) => {
                let sql = format!("ROLLBACK TO SAVEPOINT {}", savepoint_name(level));
                self.inner_mut()?.run(&sql).await?;
                self.close_to(level - 1, false);
                Ok(())
            }
        }
    }

    /// `RELEASE SAVEPOINT` at `level`, or nothing if it was released already.
    async fn release_if_open(&mut self, level: u32) -> Result<()> {
        let release = format!("RELEASE SAVEPOINT {}", savepoint_name(level));
        let inner = self.inner_mut()?;
        if !matches!(inner, TxInner::Postgres(_)) {
            // SQLite and MySQL report a missing savepoint and carry on.
            return match inner.run(&release).await {
                Err(e) if no_such_savepoint(&e) => Ok(()),
                res => res,
            };
        }
        // On PostgreSQL any failed statement aborts the transaction: try the release inside a
        // savepoint of its own, which a release of the one below ends too.
        inner.run("SAVEPOINT signals_probe").await?;
        match inner.run(&release).await {
            Err(e) if no_such_savepoint(&e) => {
                inner.run("ROLLBACK TO SAVEPOINT signals_probe").await?;
                inner.run("RELEASE SAVEPOINT signals_probe").await
            }
            res => res,
        }
    }
}

/// An error settling a cancelled operation: the transaction cannot be trusted any more.
fn unrepaired(err: Error) -> Error {
    Error::Transaction(format!(
        "an operation on this transaction was cancelled and its savepoint could not be \
         settled ({err}); roll the transaction back"
    ))
}

/// Where statements run: `&Db` (a pooled connection per statement) or `&mut Tx`.
///
/// Every method that touches the database takes `impl Executor`, so the same call works at top
/// level and inside a receiver:
///
/// ```
/// # use signals_core::{Db, Executor, Model, Result};
/// async fn count_users<'e>(ex: impl Executor<'e>) -> Result<usize> {
/// #   #[derive(Model)] struct User { id: Option<i64> }
///     Ok(User::all(ex).await?.len())
/// }
/// ```
pub trait Executor<'e>: Send + Sized {
    #[doc(hidden)]
    fn __target(self) -> Target<'e>;
}

impl<'e> Executor<'e> for &'e Db {
    fn __target(self) -> Target<'e> {
        Target::Db(self)
    }
}

impl<'e> Executor<'e> for &'e mut Tx {
    fn __target(self) -> Target<'e> {
        Target::Tx(self)
    }
}

/// Internal: where one statement runs.
#[doc(hidden)]
pub enum Target<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

pub(crate) struct Outcome {
    pub(crate) rows: u64,
    pub(crate) last_id: i64,
}

/// Runs `$body` with `$e` bound to the sqlx executor and `$a` to the sqlx arguments, once per
/// backend and handle kind; `$row` names the `Row` variant for that backend. SQLite
/// transactions do not come here: they run on the handle (`Target::route`).
macro_rules! dispatch {
    ($target:expr, $args:expr, |$e:ident, $a:ident, $row:ident| $body:expr) => {
        match ($target, $args) {
            (
                Target::Db(Db {
                    pool: Pool::Sqlite($e),
                    ..
                }),
                Args::Sqlite(values),
            ) => {
                let $a = sqlx_sqlite_args(values)?;
                #[allow(unused_imports)]
                use Row::Sqlite as $row;
                $body
            }
            (
                Target::Db(Db {
                    pool: Pool::Postgres($e),
                    ..
                }),
                Args::Postgres($a),
            ) => {
                #[allow(unused_imports)]
                use Row::Postgres as $row;
                $body
            }
            (
                Target::Db(Db {
                    pool: Pool::MySql($e),
                    ..
                }),
                Args::MySql($a),
            ) => {
                #[allow(unused_imports)]
                use Row::MySql as $row;
                $body
            }
            (Target::Tx(tx), args) => {
                tx.repair().await?;
                match (tx.inner_mut()?, args) {
                    (TxInner::Postgres(t), Args::Postgres($a)) => {
                        let $e = &mut **t;
                        #[allow(unused_imports)]
                        use Row::Postgres as $row;
                        $body
                    }
                    (TxInner::MySql(t), Args::MySql($a)) => {
                        t.in_flight = true;
                        let res = {
                            let $e = &mut **t;
                            #[allow(unused_imports)]
                            use Row::MySql as $row;
                            async { $body }.await
                        };
                        t.in_flight = false;
                        res
                    }
                    _ => return Err(mismatch()),
                }
            }
            _ => return Err(mismatch()),
        }
    };
}

/// See [`Target::route`].
enum Route<'a> {
    Handle(&'a mut RawTx, Vec<crate::sqlite_value::SqlValue>),
    Sqlx(Args),
}

fn mismatch() -> Error {
    Error::Config("internal error: arguments built for another backend".into())
}

impl Target<'_> {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Target::Db(db) => db.backend(),
            Target::Tx(tx) => tx.backend(),
        }
    }

    pub(crate) fn reborrow(&mut self) -> Target<'_> {
        match self {
            Target::Db(db) => Target::Db(db),
            Target::Tx(tx) => Target::Tx(tx),
        }
    }

    /// Where a statement runs: on a SQLite transaction's handle (after undoing the savepoints
    /// of cancelled operations, as for any statement in a transaction), or through sqlx.
    async fn route(&mut self, args: Args) -> Result<Route<'_>> {
        let Target::Tx(tx) = self else {
            return Ok(Route::Sqlx(args));
        };
        if !matches!(tx.inner, Some(TxInner::Sqlite(_))) {
            return Ok(Route::Sqlx(args));
        }
        tx.repair().await?;
        match (tx.inner.as_mut(), args) {
            (Some(TxInner::Sqlite(raw)), Args::Sqlite(values)) => Ok(Route::Handle(raw, values)),
            _ => Err(mismatch()),
        }
    }

    pub(crate) async fn execute(&mut self, sql: &'static str, args: Args) -> Result<Outcome> {
        self.execute_sql(sql, args).await
    }

    /// [`execute`](Self::execute) for SQL built at run time (still bound, never interpolated).
    pub(crate) async fn execute_sql(
        &mut self,
        sql: impl sqlx::SqlSafeStr + Send,
        args: Args,
    ) -> Result<Outcome> {
        let sql = sql.into_sql_str();
        let args = match self.route(args).await? {
            Route::Handle(raw, values) => return raw.execute(sql.as_str(), &values).await,
            Route::Sqlx(args) => args,
        };
        dispatch!(self.reborrow(), args, |e, a, _R| {
            let res = sqlx::query_with(sql, a).execute(e).await?;
            Ok(outcome(res))
        })
    }

    pub(crate) async fn fetch_all<M>(
        &mut self,
        sql: &'static str,
        args: Args,
        decode: fn(&Row<'_>) -> Result<M>,
    ) -> Result<Vec<M>> {
        let args = match self.route(args).await? {
            Route::Handle(raw, values) => {
                let mut all = Vec::new();
                raw.query(sql, &values, |row| {
                    all.push(decode(row)?);
                    Ok(())
                })
                .await?;
                return Ok(all);
            }
            Route::Sqlx(args) => args,
        };
        dispatch!(self.reborrow(), args, |e, a, R| {
            let rows = sqlx::query_with(sql, a).fetch_all(e).await?;
            rows.iter().map(|r| decode(&R(r))).collect()
        })
    }

    pub(crate) async fn fetch_optional<M>(
        &mut self,
        sql: &'static str,
        args: Args,
        decode: fn(&Row<'_>) -> Result<M>,
    ) -> Result<Option<M>> {
        let args = match self.route(args).await? {
            Route::Handle(raw, values) => {
                let mut first = None;
                raw.query(sql, &values, |row| {
                    if first.is_none() {
                        first = Some(decode(row)?);
                    }
                    Ok(())
                })
                .await?;
                return Ok(first);
            }
            Route::Sqlx(args) => args,
        };
        dispatch!(self.reborrow(), args, |e, a, R| {
            match sqlx::query_with(sql, a).fetch_optional(e).await? {
                Some(r) => decode(&R(&r)).map(Some),
                None => Ok(None),
            }
        })
    }

    /// Runs a statement that returns one integer (`COUNT(*)`, `RETURNING id`).
    pub(crate) async fn fetch_i64(&mut self, sql: &'static str, args: Args) -> Result<i64> {
        use sqlx::Row as _;
        let args = match self.route(args).await? {
            Route::Handle(raw, values) => {
                let mut value = None;
                raw.query(sql, &values, |row| {
                    if value.is_none() {
                        value = Some(row.get::<i64>(0, "", "")?);
                    }
                    Ok(())
                })
                .await?;
                return value.ok_or_else(|| Error::Database(sqlx::Error::RowNotFound));
            }
            Route::Sqlx(args) => args,
        };
        dispatch!(self.reborrow(), args, |e, a, _R| {
            let row = sqlx::query_with(sql, a).fetch_one(e).await?;
            Ok(row.try_get::<i64, _>(0)?)
        })
    }
}

trait IntoOutcome {
    fn into_outcome(self) -> Outcome;
}
impl IntoOutcome for sqlx::sqlite::SqliteQueryResult {
    fn into_outcome(self) -> Outcome {
        Outcome {
            rows: self.rows_affected(),
            last_id: self.last_insert_rowid(),
        }
    }
}
impl IntoOutcome for sqlx::postgres::PgQueryResult {
    fn into_outcome(self) -> Outcome {
        Outcome {
            rows: self.rows_affected(),
            last_id: 0,
        }
    }
}
impl IntoOutcome for sqlx::mysql::MySqlQueryResult {
    fn into_outcome(self) -> Outcome {
        Outcome {
            rows: self.rows_affected(),
            last_id: self.last_insert_id() as i64,
        }
    }
}
fn outcome<T: IntoOutcome>(res: T) -> Outcome {
    res.into_outcome()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://bob:secret@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(redact("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    }
}
