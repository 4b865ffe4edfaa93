//! Applying sqlx migrations under one lock that holds on every backend.
//!
//! sqlx's migrator locks the database itself on PostgreSQL and MySQL, but on MariaDB its
//! `GET_LOCK(name, -1)` returns NULL, which is no lock at all (MariaDB takes a negative timeout
//! as an error, where MySQL waits forever), and the migrator ignores the answer: concurrent
//! first runs then apply one migration twice, or find it half applied. On SQLite it takes no
//! lock. [`run`] takes one of its own, checks that the server granted it, and runs the
//! migrations with sqlx's own lock turned off:
//!
//! - PostgreSQL: a session advisory lock (`pg_advisory_lock`) keyed by the database's name;
//! - MySQL/MariaDB: `GET_LOCK` with a finite timeout, asked again until it answers 1 (granted);
//! - SQLite: an exclusive lock on the file `<database>.migrate-lock` beside a database file (an
//!   in-memory database is one connection's, and needs none).
//!
//! The lock and the migrations run on a connection taken from the pool (so with the session
//! its `after_connect` sets up: a `search_path`, an `sql_mode`) and detached from it: closed
//! when the run ends, cancelled or killed midway included, which releases a server's lock, so
//! no pooled connection is ever handed on while holding one.
//!
//! [`run`] sends [`PRE_MIGRATE`] before it applies anything and [`POST_MIGRATE`] after, both
//! while it holds the lock (Django's `pre_migrate` and `post_migrate`).
//!
//! Uses `error`, `conn` and of `signal` custom signals.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::migrate::{Migrate, MigrateError, Migrator};

use crate::conn::{Db, PoolRef};
use crate::error::{Error, Result};
use crate::signal::Signal;

/// Sent by [`run`] once it holds the migration lock, before it applies anything, with the
/// migrations it is about to apply (none when the database is up to date: it is sent on every
/// run, as Django sends it on every `migrate`). An error stops the run: nothing is applied.
pub static PRE_MIGRATE: Signal<Migrating> = Signal::new("pre_migrate");

/// Sent by [`run`] after the migrations were applied, still holding the lock, with those it
/// applied (none when the database was up to date: it is sent on every run). The place for
/// data a schema change calls for, such as the rows a new table needs for the existing ones
/// (Django's `post_migrate`, where the `auth` app creates permissions); write it idempotent,
/// since it runs every time. An error is [`run`]'s error; the migrations stay applied, and the
/// next run sends `post_migrate` with none: work from the database's state, not from
/// [`Migrating::migrations`] alone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use std::borrow::Cow;
/// use signals_core::migrate::{self, Migrating, POST_MIGRATE};
/// use signals_core::sqlx::migrate::{Migration, MigrationType, Migrator};
/// use signals_core::sqlx::{AssertSqlSafe, SqlSafeStr};
///
/// let tags = Migration::new(1, Cow::Borrowed("tags"), MigrationType::Simple,
///     AssertSqlSafe("CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").into_sql_str(), false);
/// POST_MIGRATE.connect("default_tags", async |m: &Migrating| {
///     if m.applied(1) {
///         m.db.execute_unprepared("INSERT INTO tag (name) VALUES ('general')").await?;
///     }
///     Ok(())
/// });
/// let db = signals_core::Db::connect("sqlite::memory:").await?;
/// migrate::run(&db, &Migrator::with_migrations(vec![tags])).await?;
/// # assert!(POST_MIGRATE.disconnect("default_tags"));
/// # Ok(()) }
/// ```
pub static POST_MIGRATE: Signal<Migrating> = Signal::new("post_migrate");

/// What [`PRE_MIGRATE`] and [`POST_MIGRATE`] carry.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Migrating {
    /// The database being migrated (its pool: receivers read and write through it).
    pub db: Db,
    /// For `pre_migrate`, the migrations about to be applied; for `post_migrate`, those
    /// applied; oldest first.
    pub migrations: Vec<MigrationInfo>,
}

impl Migrating {
    /// Whether migration `version` is among [`migrations`](Self::migrations).
    pub fn applied(&self, version: i64) -> bool {
        self.migrations.iter().any(|m| m.version == version)
    }
}

/// One migration, as the migrate signals name it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationInfo {
    /// Its version (the number its file name starts with).
    pub version: i64,
    /// Its description.
    pub description: String,
}

/// The migrations of `migrator` not applied on `conn` yet, oldest first.
async fn pending<C: Migrate>(conn: &mut C, migrator: &Migrator) -> Result<Vec<MigrationInfo>> {
    conn.ensure_migrations_table(&migrator.table_name)
        .await
        .map_err(migrate_error)?;
    let applied = conn
        .list_applied_migrations(&migrator.table_name)
        .await
        .map_err(migrate_error)?;
    Ok(migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .map(|m| MigrationInfo {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect())
}

/// Sends `signal` for `migrations`.
async fn send(signal: &Signal<Migrating>, db: &Db, migrations: Vec<MigrationInfo>) -> Result<()> {
    signal
        .send(&Migrating {
            db: db.clone(),
            migrations,
        })
        .await
        .map(drop)
}

/// How long one `GET_LOCK` waits before it is asked again (MariaDB and MySQL answer 0 then).
const MYSQL_LOCK_WAIT: Duration = Duration::from_secs(5);

/// Applies the migrations of `migrator` that `db` has not applied yet, under one lock per
/// database that holds on every backend (see the [module](self)): any number of processes may
/// run it at once, as every instance of an application does at start-up, and each migration
/// is applied once. Sends [`PRE_MIGRATE`] and [`POST_MIGRATE`] while it holds the lock.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use std::borrow::Cow;
/// use signals_core::sqlx::migrate::{Migration, MigrationType, Migrator};
/// use signals_core::sqlx::{AssertSqlSafe, SqlSafeStr};
///
/// let migrator = Migrator::with_migrations(vec![Migration::new(
///     1,
///     Cow::Borrowed("tags"),
///     MigrationType::Simple,
///     AssertSqlSafe("CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").into_sql_str(),
///     false,
/// )]);
/// let db = signals_core::Db::connect("sqlite::memory:").await?;
/// signals_core::migrate::run(&db, &migrator).await?;
/// signals_core::migrate::run(&db, &migrator).await?; // nothing left to apply
/// db.execute_unprepared("INSERT INTO tag (name) VALUES ('rust')").await?;
/// # Ok(()) }
/// ```
pub async fn run(db: &Db, migrator: &Migrator) -> Result<()> {
    db.check_not_reentered()?;
    let migrator = unlocked(migrator);
    match db.sqlx_pool() {
        PoolRef::Sqlite(pool) => {
            // An in-memory database's one connection, given back to the pool meanwhile.
            let _lent = db.lend_to_pool().await;
            // A file (which `Db::connect` created if missing) is locked beside it; an
            // in-memory database is one connection's, which serializes everything.
            let file = pool.connect_options().get_filename().to_path_buf();
            let _lock = if file.is_file() {
                Some(lock_file(&file).await?)
            } else {
                None
            };
            let plan = {
                let mut conn = pool.acquire().await?;
                pending(&mut *conn, &migrator).await?
            };
            // The receivers use the database, through the `Db` (whose SQLite connection the
            // pool has only while lent): sent with the file lock held, the connection back.
            drop(_lent);
            send(&PRE_MIGRATE, db, plan.clone()).await?;
            {
                let _lent = db.lend_to_pool().await;
                let mut conn = ReferencesOff::new(pool.acquire().await?).await?;
                migrator
                    .run_direct(None, conn.conn(), false)
                    .await
                    .map_err(migrate_error)?;
                conn.restore().await?;
            }
            send(&POST_MIGRATE, db, plan).await
        }
        PoolRef::Postgres(pool) => {
            let conn = pool.acquire().await?.detach();
            let res = locked(db, conn, &migrator, pg_lock, PG_UNLOCK).await;
            forget_statements(pool).await;
            res
        }
        PoolRef::MySql(pool) => {
            let conn = pool.acquire().await?.detach();
            locked(db, conn, &migrator, mysql_lock, MYSQL_UNLOCK).await
        }
    }
}

/// A SQLite connection that does not enforce references while migrations run: a migration
/// that rebuilds a table (see [`makemigrations`](crate::makemigrations)) drops the table
/// others reference, which SQLite allows only so (`PRAGMA foreign_keys` cannot change inside
/// the migration's transaction). Each such migration checks the references itself before it
/// commits. Enforcement is turned back on before the connection goes back to the pool: by
/// [`restore`](Self::restore), or, when the run ends early (an error, a cancelled future),
/// on a task that holds the connection until it is done, closing it if that fails.
struct ReferencesOff(Option<sqlx::pool::PoolConnection<sqlx::Sqlite>>);

const REFERENCES_ON: &str = "PRAGMA foreign_keys = ON";

impl ReferencesOff {
    /// Held by the guard from before the `PRAGMA` is sent: cancelled while it runs, the
    /// connection is restored by the guard's drop, never handed back as it is.
    async fn new(conn: sqlx::pool::PoolConnection<sqlx::Sqlite>) -> Result<Self> {
        let mut guard = ReferencesOff(Some(conn));
        sqlx::raw_sql("PRAGMA foreign_keys = OFF")
            .execute(guard.conn())
            .await?;
        Ok(guard)
    }

    fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        self.0.as_mut().expect("held until restored")
    }

    /// Turns enforcement back on; the guard lets the connection go only once it is on.
    async fn restore(mut self) -> Result<()> {
        if let Err(err) = sqlx::raw_sql(REFERENCES_ON).execute(self.conn()).await {
            if let Some(mut conn) = self.0.take() {
                conn.close_on_drop();
            }
            return Err(err.into());
        }
        self.0.take();
        Ok(())
    }
}

impl Drop for ReferencesOff {
    fn drop(&mut self) {
        let Some(mut conn) = self.0.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if sqlx::raw_sql(REFERENCES_ON)
                        .execute(&mut *conn)
                        .await
                        .is_err()
                    {
                        conn.close_on_drop();
                    }
                });
            }
            Err(_) => conn.close_on_drop(),
        }
    }
}

/// Clears the prepared statements of the pool's idle connections: PostgreSQL refuses to run a
/// statement prepared before a migration changed a column it reads (`cached plan must not
/// change result type`). Connections busy elsewhere, and other processes' pools, keep theirs
/// (see the README's "Migrations").
async fn forget_statements(pool: &sqlx::PgPool) {
    use sqlx::Connection as _;
    let mut held = Vec::new();
    while let Some(mut conn) = pool.try_acquire() {
        if conn.clear_cached_statements().await.is_err() {
            conn.close_on_drop();
        }
        held.push(conn);
    }
}

const PG_LOCK: &str = "SELECT pg_advisory_lock(hashtext('signals.migrate.' || current_database()))";
const PG_UNLOCK: &str =
    "SELECT pg_advisory_unlock(hashtext('signals.migrate.' || current_database()))";
const MYSQL_UNLOCK: &str = "SELECT RELEASE_LOCK(CONCAT('signals_migrate_', MD5(DATABASE())))";

/// Runs the migrations on `conn`, a server connection of their own, holding the lock `lock`
/// takes, with the migrate signals around them, then releases it (`unlock`) and closes the
/// connection (which releases it too).
async fn locked<C>(
    db: &Db,
    mut conn: C,
    migrator: &Migrator,
    lock: impl AsyncFnOnce(&mut C) -> Result<()>,
    unlock: &'static str,
) -> Result<()>
where
    C: sqlx::Connection + sqlx::migrate::Migrate,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
{
    let res = async {
        lock(&mut conn).await?;
        let res = async {
            let plan = pending(&mut conn, migrator).await?;
            send(&PRE_MIGRATE, db, plan.clone()).await?;
            migrator
                .run_direct(None, &mut conn, false)
                .await
                .map_err(migrate_error)?;
            send(&POST_MIGRATE, db, plan).await
        }
        .await;
        sqlx::raw_sql(unlock).execute(&mut conn).await?;
        res
    }
    .await;
    let _ = conn.close().await;
    res
}

/// Takes the database's migration lock on a PostgreSQL connection, waiting for another run
/// that holds it (a session advisory lock, keyed by the database's name).
async fn pg_lock(conn: &mut sqlx::PgConnection) -> Result<()> {
    sqlx::raw_sql(PG_LOCK).execute(conn).await?;
    Ok(())
}

/// `migrator` without sqlx's own lock, which [`run`] replaces.
fn unlocked(migrator: &Migrator) -> Migrator {
    Migrator {
        migrations: Cow::Owned(migrator.migrations.to_vec()),
        ignore_missing: migrator.ignore_missing,
        locking: false,
        no_tx: migrator.no_tx,
        table_name: migrator.table_name.clone(),
        create_schemas: migrator.create_schemas.clone(),
    }
}

/// Takes the database's migration lock on a MySQL or MariaDB connection, waiting for another
/// run that holds it. `GET_LOCK` answers 1 when granted, 0 when it timed out (asked again) and
/// NULL on an error, which is refused: never run migrations unlocked.
async fn mysql_lock(conn: &mut sqlx::MySqlConnection) -> Result<()> {
    loop {
        let granted: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(GET_LOCK(CONCAT('signals_migrate_', MD5(DATABASE())), ?) AS SIGNED)",
        )
        .bind(MYSQL_LOCK_WAIT.as_secs() as i64)
        .fetch_one(&mut *conn)
        .await?;
        match granted {
            Some(1) => return Ok(()),
            Some(_) => tracing::info!("waiting for another run's migration lock"),
            None => {
                return Err(Error::Migrate(
                    "the server refused the migration lock (GET_LOCK answered NULL); nothing \
                     was applied"
                        .into(),
                ));
            }
        }
    }
}

/// Takes the exclusive lock of the file `<db>.migrate-lock` beside the SQLite database `db`,
/// waiting (on a blocking thread) for another process that holds it; released when the
/// returned file is dropped (or the process ends).
async fn lock_file(db: &Path) -> Result<std::fs::File> {
    let mut name = db.as_os_str().to_owned();
    name.push(".migrate-lock");
    let path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| lock_error(&path, &e))?;
    let locked = tokio::task::spawn_blocking(move || file.lock().map(|()| file)).await;
    match locked {
        Ok(Ok(file)) => Ok(file),
        Ok(Err(e)) => Err(lock_error(&path, &e)),
        Err(e) => Err(Error::Migrate(format!(
            "waiting for the migration lock `{}` failed: {e}",
            path.display()
        ))),
    }
}

fn lock_error(path: &Path, err: &std::io::Error) -> Error {
    Error::Migrate(format!(
        "cannot take the migration lock `{}`: {err}",
        path.display()
    ))
}

/// sqlx's migration error, its database errors keeping their kind, and a migration left
/// unfinished explained without inviting an edit of the bookkeeping table.
fn migrate_error(err: MigrateError) -> Error {
    match err {
        MigrateError::Execute(err) => Error::from(err),
        MigrateError::ExecuteMigration(err, version) => {
            Error::Migrate(format!("migration {version} failed: {}", Error::from(err)))
        }
        MigrateError::Dirty(version) => Error::Migrate(format!(
            "migration {version} did not finish in an earlier run (MySQL and MariaDB cannot \
             roll back DDL, so part of it may be in the database); compare the database with \
             the migration and complete or undo it before migrating again"
        )),
        err => Error::Migrate(err.to_string()),
    }
}
