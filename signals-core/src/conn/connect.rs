//! Opening a [`Db`] from a URL: options per backend, a first connection that reports the real
//! cause of a failure, and URLs with their passwords masked for messages.
//!
//! Uses `error` and the pool types of `conn`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions};

use super::{Db, Keeper, Pool};
use crate::error::{Error, Result};

/// How long a SQLite connection of [`Db::connect`](crate::Db::connect) waits for a lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Db {
    /// Connects to the database named by `url` and checks that it answers.
    ///
    /// - `sqlite::memory:` — a private in-memory database (one connection, so that every
    ///   statement sees the same data);
    /// - `sqlite://path/to/file.db` or `sqlite:file.db` — a file, created if missing, in WAL
    ///   mode with foreign keys enforced; write transactions take the write lock up front
    ///   (`BEGIN IMMEDIATE`), so concurrent saves wait instead of failing with
    ///   "database is locked";
    /// - on both, the `Db` keeps one connection out of the pool between its operations, its
    ///   SQLite handle held and its statements prepared, so that a save runs without handing
    ///   work to sqlx's worker thread (see [`Db::with_kept_connection`]);
    /// - `postgres://user@host:5432/db` (or `postgresql://`);
    /// - `mysql://user@host:3306/db` (MySQL or MariaDB; `mariadb://` is accepted too). Its
    ///   sessions run at `READ COMMITTED`, as Django's do (MySQL's default is `REPEATABLE
    ///   READ`): a plain read in a transaction sees the latest commit, which the crate's
    ///   many-to-many changes rely on. A pool you configure yourself (`Db::from`) should set
    ///   the same in its `after_connect`.
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
                    .busy_timeout(SQLITE_BUSY_TIMEOUT);
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
                let pool = pool
                    .connect_with(opts)
                    .await
                    .map_err(|e| connect_error(url, e))?;
                let keeper = Keeper::new(&pool, Some(SQLITE_BUSY_TIMEOUT));
                Pool::Sqlite(pool, Some(keeper))
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
                        .after_connect(|conn, _| Box::pin(read_committed(conn)))
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
        Ok(Db::from_pool(pool))
    }
}

/// The isolation level of the crate's MySQL/MariaDB sessions: `READ COMMITTED`, as Django
/// sets it (and PostgreSQL's default). Under MySQL's default, `REPEATABLE READ`, a plain
/// `SELECT` in a transaction reads the snapshot of its first read, not the latest commit: a
/// many-to-many change that reads which links exist after locking the rows that guard them
/// would act on links as they were, adding a second row for a link another connection just
/// made, or reporting a removal twice. The crate's reads that decide a write take their locks
/// first, so under `READ COMMITTED` they see what the locks protect.
pub(crate) const MYSQL_ISOLATION: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

async fn read_committed(conn: &mut MySqlConnection) -> std::result::Result<(), sqlx::Error> {
    use sqlx::Executor as _;
    conn.execute(MYSQL_ISOLATION).await.map(drop)
}

fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The URL without its credentials, for messages: the password of the user part
/// (`postgres://user:***@host`) and every query parameter that carries one
/// (`?password=***`, as PostgreSQL's URLs accept, and any other `*pass*` parameter).
pub(crate) fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            let creds = &base[start + 3..at];
            match creds.find(':') {
                Some(colon) => {
                    format!(
                        "{}{}:***{}",
                        &base[..start + 3],
                        &creds[..colon],
                        &base[at..]
                    )
                }
                None => base.to_owned(),
            }
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("pass") => {
                    format!("{key}=***")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
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
        assert_eq!(
            redact("postgres://u@h:1/x?password=hunter2"),
            "postgres://u@h:1/x?password=***"
        );
        assert_eq!(
            redact("postgresql:///db?host=/run&user=u&password=hunter2&sslmode=disable"),
            "postgresql:///db?host=/run&user=u&password=***&sslmode=disable"
        );
        assert_eq!(
            redact("mysql://root:p@ss:w@rd@db:3306/x?PASSWORD=a&sslpassword=b"),
            "mysql://root:***@db:3306/x?PASSWORD=***&sslpassword=***"
        );
    }
}
