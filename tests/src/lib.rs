//! The harness that runs every behaviour test on SQLite, PostgreSQL and MySQL.
//!
//! [`db_test!`] turns one async test body into three tests (`<name>::sqlite`,
//! `<name>::postgres`, `<name>::mysql`). Each runs in a database of its own, created for it and
//! dropped afterwards, so tests run in parallel and leave nothing behind:
//!
//! - SQLite: a fresh file in the temp directory (WAL mode, as users run it);
//! - PostgreSQL: `CREATE DATABASE` on the server at `SIGNALS_TEST_POSTGRES_URL`
//!   (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! - MySQL/MariaDB: `CREATE DATABASE` on the server at `SIGNALS_TEST_MYSQL_URL`
//!   (default `mysql://root@127.0.0.1:3306/test`).
//!
//! A server that cannot be reached skips its tests with a message, except when `CI` is set (to
//! anything but `false` or `0`) or `SIGNALS_REQUIRE_SERVERS=1`: then it fails them.

pub mod catalog;
pub mod outbox;
pub mod proxy;

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::FutureExt as _;
use signals_core::sqlx::{self, Connection as _, Executor as _};
use signals_core::{Backend, Db, PoolRef};

pub use signals_core;

/// Declares the three tests `<name>::sqlite`, `<name>::postgres` and `<name>::mysql`, each
/// running `$run` (a future) with `$backend` bound to its backend: the one place the three
/// are spelled out, under [`db_test!`], [`url_test!`] and the outbox tests' own setup.
///
/// ```ignore
/// each_backend!(my_test, |backend| run_my_way(backend, stringify!(my_test)));
/// ```
#[macro_export]
macro_rules! each_backend {
    ($(#[$meta:meta])* $name:ident, |$backend:ident| $run:expr) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $crate::each_backend!(@tests |$backend| $run);
        }
    };
    (@tests |$backend:ident| $run:expr) => {
        #[test]
        fn sqlite() {
            let $backend = $crate::signals_core::Backend::Sqlite;
            $crate::block_on(::std::boxed::Box::pin($run))
        }

        #[test]
        fn postgres() {
            let $backend = $crate::signals_core::Backend::Postgres;
            $crate::block_on(::std::boxed::Box::pin($run))
        }

        #[test]
        fn mysql() {
            let $backend = $crate::signals_core::Backend::MySql;
            $crate::block_on(::std::boxed::Box::pin($run))
        }
    };
}

/// Declares a test that runs on all three databases.
///
/// ```ignore
/// db_test!(async fn saves(db) {
///     create_tables(&db, SCHEMA).await;
///     // ...
/// });
/// ```
#[macro_export]
macro_rules! db_test {
    ($(#[$meta:meta])* async fn $name:ident($db:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            // The body once, run by the three tests (written into each, it would be compiled
            // three times).
            async fn body($db: $crate::signals_core::Db) $body

            $crate::each_backend!(@tests |backend| {
                $crate::run(backend, stringify!($name), body)
            });
        }
    };
}

/// Whether a missing server (database or broker) fails a test instead of skipping it: under
/// `CI` (but `false` or `0`) or with `SIGNALS_REQUIRE_SERVERS=1`.
pub fn servers_required() -> bool {
    let ci = std::env::var("CI").unwrap_or_default();
    let required = std::env::var("SIGNALS_REQUIRE_SERVERS").unwrap_or_default();
    (!ci.is_empty() && ci != "false" && ci != "0") || required == "1"
}

/// The admin URL of the server for `backend`.
pub fn server_url(backend: Backend) -> String {
    match backend {
        Backend::Postgres => std::env::var("SIGNALS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        Backend::MySql => std::env::var("SIGNALS_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into()),
        _ => String::new(),
    }
}

/// `url` with its database (path) replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

fn unique_name(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let test: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(30)
        .collect();
    format!("sigt_{test}_{}_{n}_{nanos}", std::process::id())
}

/// A database made for one test; [`Scratch::drop_now`] removes it, and so does dropping the
/// `Scratch` (a test cancelled or panicking before `drop_now`), so no database outlives its
/// test. `.ci/run` checks after the suite that none is left.
pub struct Scratch {
    backend: Backend,
    /// The URL of the test's own database.
    pub url: String,
    name: String,
    /// Still to be removed (not yet by `drop_now`).
    armed: bool,
}

impl Drop for Scratch {
    /// Removes the database when `drop_now` did not run: on a thread of its own with a
    /// runtime of its own, since a test's runtime may be the one shutting down.
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.armed = false;
        let (backend, name) = (self.backend, std::mem::take(&mut self.name));
        let dropped =
            std::thread::spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(remove(backend, &name)),
                    Err(e) => eprintln!("cannot drop the test database {name}: {e}"),
                }
            });
        let _ = dropped.join();
    }
}

/// Removes the database `name`, retrying for a while: a server busy with the other tests (or
/// out of connections) must not leave it behind.
async fn remove(backend: Backend, name: &str) {
    if backend == Backend::Sqlite {
        // The database and every file made beside it: `-wal`, `-shm`, an application's lock
        // file (example-account's `.migrate-lock`).
        let path = std::path::Path::new(name);
        let (Some(dir), Some(stem)) = (path.parent(), path.file_name()) else {
            return;
        };
        let stem = stem.to_string_lossy();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(stem.as_ref())
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        return;
    }
    let admin = server_url(backend);
    let mut last_error = String::new();
    for attempt in 0..50u64 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100 * attempt.min(10))).await;
        }
        let res = if backend == Backend::Postgres {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            match sqlx::PgConnection::connect(&admin).await {
                Ok(mut c) => c.execute(sqlx::AssertSqlSafe(sql)).await.map(drop),
                Err(e) => Err(e),
            }
        } else {
            let sql = format!("DROP DATABASE IF EXISTS {name}");
            match sqlx::MySqlConnection::connect(&admin).await {
                Ok(mut c) => c.execute(sqlx::AssertSqlSafe(sql)).await.map(drop),
                Err(e) => Err(e),
            }
        };
        match res {
            Ok(()) => return,
            Err(e) => last_error = e.to_string(),
        }
    }
    eprintln!("LEFT BEHIND: cannot drop the test database {name} on {backend}: {last_error}");
}

impl Scratch {
    /// Creates a fresh database for `test`, or returns `None` when the server is unreachable
    /// and servers are not required.
    pub async fn create(backend: Backend, test: &str) -> Option<Scratch> {
        let name = unique_name(test);
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                Some(Scratch {
                    backend,
                    url: format!("sqlite://{}", path.display()),
                    name: path.display().to_string(),
                    armed: true,
                })
            }
            _ => {
                let admin = server_url(backend);
                let create = format!("CREATE DATABASE {name}");
                let res = match backend {
                    Backend::Postgres => match sqlx::PgConnection::connect(&admin).await {
                        Ok(mut c) => c.execute(sqlx::AssertSqlSafe(create)).await.map(drop),
                        Err(e) => Err(e),
                    },
                    _ => match sqlx::MySqlConnection::connect(&admin).await {
                        Ok(mut c) => c.execute(sqlx::AssertSqlSafe(create)).await.map(drop),
                        Err(e) => Err(e),
                    },
                };
                match res {
                    Ok(()) => Some(Scratch {
                        backend,
                        url: with_database(&admin, &name),
                        name,
                        armed: true,
                    }),
                    Err(e) if !servers_required() => {
                        eprintln!(
                            "SKIPPED {test} on {backend}: cannot reach {admin} ({e}); set \
                             SIGNALS_TEST_{}_URL, or CI=true to make this a failure",
                            if backend == Backend::Postgres {
                                "POSTGRES"
                            } else {
                                "MYSQL"
                            }
                        );
                        None
                    }
                    Err(e) => {
                        panic!("{backend} server required (CI is set) but {admin} failed: {e}")
                    }
                }
            }
        }
    }

    /// Removes the database.
    pub async fn drop_now(mut self) {
        self.armed = false;
        remove(self.backend, &self.name).await;
    }
}

tokio::task_local! {
    static EVENTS: RefCell<Vec<String>>;
}

/// Records an event (a receiver ran) for [`take_events`]; events are per test.
pub fn record(event: impl Into<String>) {
    let event = event.into();
    let _ = EVENTS.try_with(|e| e.borrow_mut().push(event));
}

/// Runs `fut` with its own event list (for tasks a test spawns: task-locals do not follow
/// `tokio::spawn`).
pub fn with_events<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    EVENTS.scope(RefCell::new(Vec::new()), fut)
}

/// The events recorded since the last call, in order.
pub fn take_events() -> Vec<String> {
    EVENTS
        .try_with(|e| std::mem::take(&mut *e.borrow_mut()))
        .unwrap_or_default()
}

/// Runs one test body on `backend` in a fresh database, then drops the database, even when
/// the body panics (the panic is then resumed).
pub fn run<'a, F, Fut>(backend: Backend, test: &'a str, body: F) -> TestFuture<'a>
where
    F: FnOnce(Db) -> Fut + 'a,
    Fut: Future<Output = ()> + 'a,
{
    run_boxed(
        backend,
        test,
        Box::new(move |db| Box::pin(body(db)) as TestFuture<'a>),
    )
}

/// A test's future, boxed: the harness around it is compiled once rather than once per test.
pub type TestFuture<'a> = std::pin::Pin<Box<dyn Future<Output = ()> + 'a>>;

/// [`run`], compiled once.
fn run_boxed<'a>(
    backend: Backend,
    test: &'a str,
    body: Box<dyn FnOnce(Db) -> TestFuture<'a> + 'a>,
) -> TestFuture<'a> {
    Box::pin(with_scratch(backend, test, async move |url| {
        let db = match Db::connect(&url).await {
            Ok(db) => db,
            Err(e) => panic!("cannot connect to the scratch database: {e}"),
        };
        let outcome = AssertUnwindSafe(body(db.clone())).catch_unwind().await;
        db.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }))
}

/// Runs a test's future on a runtime of two worker threads, as
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` does; compiled once.
pub fn block_on(test: TestFuture<'_>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the test's runtime")
        .block_on(test)
}

/// Runs `body` with the URL of a fresh database on `backend` (for tests of programs that
/// connect by URL), then drops the database, even when the body panics.
pub async fn with_scratch<F>(backend: Backend, test: &str, body: F)
where
    F: AsyncFnOnce(String),
{
    let Some(scratch) = Scratch::create(backend, test).await else {
        return;
    };
    let outcome =
        AssertUnwindSafe(EVENTS.scope(RefCell::new(Vec::new()), body(scratch.url.clone())))
            .catch_unwind()
            .await;
    scratch.drop_now().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Declares a test that gets the URL of a fresh database, on all three backends.
///
/// ```ignore
/// url_test!(async fn runs_the_binary(url) { /* DATABASE_URL=url ... */ });
/// ```
#[macro_export]
macro_rules! url_test {
    ($(#[$meta:meta])* async fn $name:ident($url:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($url: String) $body

            $crate::each_backend!(@tests |backend| {
                $crate::with_scratch(backend, stringify!($name), body)
            });
        }
    };
}

/// Creates tables from DDL written once for all backends, with these placeholders:
///
/// | placeholder | SQLite | PostgreSQL | MySQL |
/// |---|---|---|---|
/// | `{pk}` | `INTEGER PRIMARY KEY` | `BIGSERIAL PRIMARY KEY` | `BIGINT AUTO_INCREMENT PRIMARY KEY` |
/// | `{bigint}` | `INTEGER` | `BIGINT` | `BIGINT` |
/// | `{int}` | `INTEGER` | `INTEGER` | `INT` |
/// | `{smallint}` | `INTEGER` | `SMALLINT` | `SMALLINT` |
/// | `{bool}` | `BOOLEAN` | `BOOLEAN` | `BOOLEAN` |
/// | `{double}` | `REAL` | `DOUBLE PRECISION` | `DOUBLE` |
/// | `{float}` | `REAL` | `REAL` | `FLOAT` |
/// | `{varchar}` | `TEXT` | `TEXT` | `VARCHAR(191)` (indexable) |
/// | `{text}` | `TEXT` | `TEXT` | `LONGTEXT` |
/// | `{blob}` | `BLOB` | `BYTEA` | `LONGBLOB` |
/// | `{date}` | `DATE` | `DATE` | `DATE` |
/// | `{datetime}` | `DATETIME` | `TIMESTAMP` | `DATETIME(6)` |
/// | `{timestamptz}` | `DATETIME` | `TIMESTAMPTZ` | `DATETIME(6)` |
/// | `{uuid}` | `BLOB` | `UUID` | `BINARY(16)` |
///
/// Identifiers in double quotes (`"order"`) are quoted with backticks on MySQL. Statements
/// are separated by `;`.
pub async fn create_tables(db: &Db, ddl: &str) {
    let backend = db.backend();
    let types: &[(&str, [&str; 3])] = &[
        (
            "{pk}",
            [
                "INTEGER PRIMARY KEY",
                "BIGSERIAL PRIMARY KEY",
                "BIGINT AUTO_INCREMENT PRIMARY KEY",
            ],
        ),
        ("{bigint}", ["INTEGER", "BIGINT", "BIGINT"]),
        ("{int}", ["INTEGER", "INTEGER", "INT"]),
        ("{smallint}", ["INTEGER", "SMALLINT", "SMALLINT"]),
        ("{bool}", ["BOOLEAN", "BOOLEAN", "BOOLEAN"]),
        ("{double}", ["REAL", "DOUBLE PRECISION", "DOUBLE"]),
        ("{float}", ["REAL", "REAL", "FLOAT"]),
        ("{varchar}", ["TEXT", "TEXT", "VARCHAR(191)"]),
        ("{text}", ["TEXT", "TEXT", "LONGTEXT"]),
        ("{blob}", ["BLOB", "BYTEA", "LONGBLOB"]),
        ("{date}", ["DATE", "DATE", "DATE"]),
        ("{datetime}", ["DATETIME", "TIMESTAMP", "DATETIME(6)"]),
        ("{timestamptz}", ["DATETIME", "TIMESTAMPTZ", "DATETIME(6)"]),
        ("{uuid}", ["BLOB", "UUID", "BINARY(16)"]),
    ];
    let mut sql = if backend == Backend::MySql {
        ddl.replace('"', "`")
    } else {
        ddl.to_owned()
    };
    for (placeholder, per_backend) in types {
        let column = match backend {
            Backend::Sqlite => 0,
            Backend::Postgres => 1,
            _ => 2,
        };
        sql = sql.replace(placeholder, per_backend[column]);
    }
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        if let Err(e) = db.execute_unprepared(statement).await {
            panic!("schema statement failed on {backend}: {e}\n{statement}");
        }
    }
}

/// Counts rows with plain SQL, bypassing the crate.
pub async fn count(db: &Db, table: &str) -> i64 {
    scalar(db, &format!("SELECT COUNT(*) FROM {table}")).await
}

/// Runs a query that returns one integer with plain sqlx, bypassing the crate.
pub async fn scalar(db: &Db, sql: &str) -> i64 {
    let sql_text = sql.to_owned();
    let sql = sqlx::AssertSqlSafe(sql_text.clone());
    let res = match db.pool() {
        PoolRef::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
        PoolRef::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
        PoolRef::MySql(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
        _ => panic!("unknown backend"),
    };
    match res {
        Ok(n) => n,
        Err(e) => panic!("`{sql_text}` failed: {e}"),
    }
}

/// Runs one SQL statement with plain sqlx, bypassing the crate.
pub async fn exec(db: &Db, sql: &str) {
    if let Err(e) = db.execute_unprepared(sql).await {
        panic!("`{sql}` failed: {e}");
    }
}

/// Polls `probe` every 20 ms until it gives `Ok(value)`, and returns that value; once `limit`
/// has passed, fails the test with `what` and the last `Err` (what was seen instead). For
/// what happens in another task or process (a worker handling events, a file a child writes).
///
/// ```ignore
/// let pid = eventually("the worker's pid", Duration::from_secs(60), async || {
///     let text = std::fs::read_to_string(&marker).map_err(|e| e.to_string())?;
///     text.trim().parse::<u32>().map_err(|e| e.to_string())
/// })
/// .await;
/// ```
pub async fn eventually<T, E: std::fmt::Debug>(
    what: &str,
    limit: std::time::Duration,
    mut probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let start = std::time::Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                start.elapsed() < limit,
                "{what}: not after {limit:?}; {seen:?}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Starts a thread with a stack of `bytes` that runs the future `make` returns on a
/// current-thread runtime of its own: for tests of how deep receivers' nested operations go
/// within a small stack. Join the handle for the future's output.
pub fn on_a_stack_of<T, F>(
    bytes: usize,
    make: impl FnOnce() -> F + Send + 'static,
) -> std::thread::JoinHandle<T>
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .stack_size(bytes)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the thread's runtime")
                .block_on(make())
        })
        .expect("a thread with a small stack")
}

/// Another pool on the MySQL database `db` uses, each of its connections running `setup` first
/// (`SET SESSION ..`): the server's modes users run, such as `sql_mode`'s
/// `NO_BACKSLASH_ESCAPES` and `ANSI` ([`STRICT_MODES`]). `None` on another backend.
pub async fn mysql_pool_running(db: &Db, setup: &'static [&'static str]) -> Option<Db> {
    let PoolRef::MySql(pool) = db.pool() else {
        return None;
    };
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .after_connect(move |conn, _| {
            Box::pin(async move {
                for statement in setup {
                    conn.execute(*statement).await?;
                }
                Ok(())
            })
        })
        .connect_with((*pool.connect_options()).clone())
        .await
        .expect("a second MySQL pool");
    Some(Db::from(pool))
}

/// `sql_mode` with `NO_BACKSLASH_ESCAPES` and `ANSI`, for [`mysql_pool_running`].
pub const STRICT_MODES: &str =
    "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES,ANSI')";

/// Another pool on the database `db` uses, with the same connect options, as another process
/// would have (for tests of what runs from several processes at once).
pub async fn another_pool(db: &Db) -> Db {
    match db.pool() {
        PoolRef::Sqlite(p) => Db::from(
            sqlx::sqlite::SqlitePoolOptions::new()
                .connect_with((*p.connect_options()).clone())
                .await
                .expect("another SQLite pool"),
        ),
        PoolRef::Postgres(p) => Db::from(
            sqlx::postgres::PgPoolOptions::new()
                .connect_with((*p.connect_options()).clone())
                .await
                .expect("another PostgreSQL pool"),
        ),
        PoolRef::MySql(p) => Db::from(
            sqlx::mysql::MySqlPoolOptions::new()
                .connect_with((*p.connect_options()).clone())
                .await
                .expect("another MySQL pool"),
        ),
        _ => unreachable!("a backend the harness does not run"),
    }
}

/// Polls `work` until it has waited `waits` times, then drops it: the operation is cancelled
/// at its `waits`-th await point, wherever that falls (taking a connection, taking the SQLite
/// handle, waiting for another writer, a statement, the commit). `Some` if it finished first.
pub async fn cancel_at<F: std::future::Future>(waits: usize, work: F) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    let mut waited = 0;
    std::future::poll_fn(|cx| match work.as_mut().poll(cx) {
        std::task::Poll::Ready(out) => std::task::Poll::Ready(Some(out)),
        std::task::Poll::Pending if waited == waits => std::task::Poll::Ready(None),
        std::task::Poll::Pending => {
            waited += 1;
            std::task::Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306/test?ssl-mode=disabled", "x"),
            "mysql://root@127.0.0.1:3306/x?ssl-mode=disabled"
        );
        assert_eq!(with_database("mysql://root@h", "x"), "mysql://root@h/x");
    }
}
