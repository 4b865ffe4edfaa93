//! Running one statement: on a pool (a pooled connection per statement) or on a transaction's
//! connection ([`TxConn`]), per backend; SQLite transactions run on the connection's handle.
//!
//! Uses `error`, `backend`, `value` and the connections of `conn`.

use sqlx::mysql::MySql;
use sqlx::postgres::Postgres;

use super::server::ServerTx;
use super::sqlite_raw::RawTx;
use super::{ConnRef, Pool};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::value::sqlite::SqlValue;
use crate::value::{Args, Row, sqlx_sqlite_args};

/// What a statement did.
pub(crate) struct Outcome {
    pub(crate) rows: u64,
    pub(crate) last_id: i64,
}

/// The connection of one open transaction, per backend.
pub(crate) enum TxConn {
    /// SQLite transactions run on the connection's own handle; see `sqlite_raw`.
    Sqlite(RawTx),
    Postgres(ServerTx<Postgres>),
    MySql(ServerTx<MySql>),
}

impl TxConn {
    /// Takes a connection from `pool` and begins a transaction on it (SQLite: `BEGIN
    /// IMMEDIATE` on the handle, taking the write lock up front).
    pub(crate) async fn begin(pool: &Pool) -> Result<TxConn> {
        Ok(match pool {
            Pool::Sqlite(p) => TxConn::Sqlite(RawTx::begin(p).await?),
            Pool::Postgres(p) => TxConn::Postgres(ServerTx::begin(p).await?),
            Pool::MySql(p) => TxConn::MySql(ServerTx::begin(p).await?),
        })
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            TxConn::Sqlite(_) => Backend::Sqlite,
            TxConn::Postgres(_) => Backend::Postgres,
            TxConn::MySql(_) => Backend::MySql,
        }
    }

    /// Commits. A server connection that fails while COMMIT is under way leaves the outcome
    /// unknown: [`Error::CommitOutcomeUnknown`]. (SQLite answers a COMMIT definitely.)
    pub(crate) async fn commit(self) -> Result<()> {
        let res = match self {
            TxConn::Sqlite(t) => return t.commit().await,
            TxConn::Postgres(t) => t.commit().await,
            TxConn::MySql(t) => t.commit().await,
        };
        res.map_err(|err| match err {
            Error::Connection(source) => Error::CommitOutcomeUnknown(source),
            err => err,
        })
    }

    pub(crate) async fn rollback(self) -> Result<()> {
        match self {
            TxConn::Sqlite(t) => t.rollback().await,
            TxConn::Postgres(t) => t.rollback().await,
            TxConn::MySql(t) => t.rollback().await,
        }
    }

    /// Runs one statement without arguments or result (the savepoint statements).
    pub(crate) async fn run(&mut self, sql: &str) -> Result<()> {
        match self {
            TxConn::Sqlite(t) => t.run(sql).await,
            TxConn::Postgres(t) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut **t)
                    .await?;
                Ok(())
            }
            TxConn::MySql(t) => {
                t.in_flight = true;
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut **t)
                    .await?;
                t.in_flight = false;
                Ok(())
            }
        }
    }

    /// A MySQL statement of this transaction was cancelled midway: sqlx's MySQL driver counts
    /// on an answer to a statement as soon as it starts one, before it is sent, so cancelled
    /// before that, the connection would wait forever for an answer that never comes (and so
    /// would the next user of the pool). Marks the connection to be closed when dropped (which
    /// rolls back on the server) and returns `true`.
    pub(crate) fn discard_if_cancelled_midway(&mut self) -> bool {
        match self {
            TxConn::MySql(t) if t.in_flight => {
                t.discard();
                true
            }
            _ => false,
        }
    }

    /// The connection, for SQL of the user's own; on SQLite the handle is given back to sqlx
    /// (still in the transaction) and taken again by the next statement of the transaction.
    pub(crate) fn conn(&mut self) -> Result<ConnRef<'_>> {
        Ok(match self {
            TxConn::Sqlite(t) => ConnRef::Sqlite(t.release()?),
            TxConn::Postgres(t) => ConnRef::Postgres(t),
            TxConn::MySql(t) => ConnRef::MySql(t),
        })
    }
}

/// Where one statement runs: a pool, or a transaction's connection (whose savepoints the
/// caller has settled).
pub(crate) enum Handle<'a> {
    Pool(&'a Pool),
    Tx(&'a mut TxConn),
}

/// Runs `$body` with `$e` bound to the sqlx executor and `$a` to the sqlx arguments, once per
/// backend and handle kind; `$row` names the `Row` variant for that backend. SQLite
/// transactions do not come here: they run on the handle (`Handle::route`).
///
/// With `write`, a statement on a pool takes its connection first and then runs on it: the
/// statement is its own transaction (autocommit), so a connection that fails once it was sent
/// leaves its outcome unknown ([`autocommit`]), while one that could not be had ran nothing.
macro_rules! dispatch {
    ($handle:expr, $args:expr, |$e:ident, $a:ident, $row:ident| $body:expr) => {
        dispatch!(@arms $handle, $args, false, |$e, $a, $row| $body)
    };
    ($handle:expr, $args:expr, write = $write:expr, |$e:ident, $a:ident, $row:ident| $body:expr) => {
        dispatch!(@arms $handle, $args, $write, |$e, $a, $row| $body)
    };
    (@pool $pool:ident, $write:expr, |$e:ident| $body:expr) => {
        if $write {
            // Boxed: sqlx's `acquire` future is larger than everything else a statement keeps,
            // and would sit inline in every operation's future (and on the stack of every
            // poll), nested saves included.
            let mut conn = Box::pin($pool.acquire()).await?;
            let $e = &mut *conn;
            autocommit(async { $body }.await)
        } else {
            let $e = $pool;
            $body
        }
    };
    (@arms $handle:expr, $args:expr, $write:expr, |$e:ident, $a:ident, $row:ident| $body:expr) => {
        match ($handle, $args) {
            (Handle::Pool(Pool::Sqlite(pool)), Args::Sqlite(values)) => {
                let $a = sqlx_sqlite_args(values)?;
                #[allow(unused_imports)]
                use Row::Sqlite as $row;
                dispatch!(@pool pool, $write, |$e| $body)
            }
            (Handle::Pool(Pool::Postgres(pool)), Args::Postgres($a)) => {
                #[allow(unused_imports)]
                use Row::Postgres as $row;
                dispatch!(@pool pool, $write, |$e| $body)
            }
            (Handle::Pool(Pool::MySql(pool)), Args::MySql($a)) => {
                #[allow(unused_imports)]
                use Row::MySql as $row;
                dispatch!(@pool pool, $write, |$e| $body)
            }
            (Handle::Tx(TxConn::Postgres(t)), Args::Postgres($a)) => {
                let $e = &mut **t;
                #[allow(unused_imports)]
                use Row::Postgres as $row;
                $body
            }
            (Handle::Tx(TxConn::MySql(t)), Args::MySql($a)) => {
                // Cancelled inside, the flag stays set: see `discard_if_cancelled_midway`.
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
    };
}

/// The outcome of a statement that ran on a pool in autocommit, where it is its own
/// transaction: the connection failing once it was sent leaves unknown whether it committed,
/// as a connection failing during COMMIT does.
fn autocommit<T>(res: Result<T>) -> Result<T> {
    res.map_err(|err| match err {
        Error::Connection(source) => Error::CommitOutcomeUnknown(source),
        err => err,
    })
}

/// See [`Handle::route`].
enum Route<'a> {
    Raw(&'a mut RawTx, Vec<SqlValue>),
    Sqlx(Handle<'a>, Args),
}

fn mismatch() -> Error {
    Error::Config("internal error: arguments built for another backend".into())
}

impl<'a> Handle<'a> {
    /// Where a statement runs: on a SQLite transaction's handle, or through sqlx.
    fn route(self, args: Args) -> Result<Route<'a>> {
        match (self, args) {
            (Handle::Tx(TxConn::Sqlite(raw)), Args::Sqlite(values)) => Ok(Route::Raw(raw, values)),
            (Handle::Tx(TxConn::Sqlite(_)), _) => Err(mismatch()),
            (handle, args) => Ok(Route::Sqlx(handle, args)),
        }
    }

    /// Runs a statement (bound, never interpolated) and tells what it did.
    pub(crate) async fn execute(
        self,
        sql: impl sqlx::SqlSafeStr + Send,
        args: Args,
    ) -> Result<Outcome> {
        let sql = sql.into_sql_str();
        match self.route(args)? {
            Route::Raw(raw, values) => raw.execute(sql.as_str(), &values).await,
            // Statements run with `execute` write: on a pool, in autocommit.
            Route::Sqlx(handle, args) => dispatch!(handle, args, write = true, |e, a, _R| {
                let res = sqlx::query_with(sql, a).execute(e).await?;
                Ok(outcome(res))
            }),
        }
    }

    pub(crate) async fn fetch_all<M>(
        self,
        sql: impl sqlx::SqlSafeStr + Send,
        args: Args,
        decode: fn(&Row<'_>) -> Result<M>,
    ) -> Result<Vec<M>> {
        let sql = sql.into_sql_str();
        match self.route(args)? {
            Route::Raw(raw, values) => {
                let mut all = Vec::new();
                raw.query(sql.as_str(), &values, |row| {
                    all.push(decode(row)?);
                    Ok(())
                })
                .await?;
                Ok(all)
            }
            Route::Sqlx(handle, args) => dispatch!(handle, args, |e, a, R| {
                let rows = sqlx::query_with(sql, a).fetch_all(e).await?;
                rows.iter().map(|r| decode(&R(r))).collect()
            }),
        }
    }

    pub(crate) async fn fetch_optional<M>(
        self,
        sql: impl sqlx::SqlSafeStr + Send,
        args: Args,
        decode: fn(&Row<'_>) -> Result<M>,
    ) -> Result<Option<M>> {
        let sql = sql.into_sql_str();
        match self.route(args)? {
            Route::Raw(raw, values) => {
                let mut first = None;
                raw.query(sql.as_str(), &values, |row| {
                    if first.is_none() {
                        first = Some(decode(row)?);
                    }
                    Ok(())
                })
                .await?;
                Ok(first)
            }
            Route::Sqlx(handle, args) => dispatch!(handle, args, |e, a, R| {
                match sqlx::query_with(sql, a).fetch_optional(e).await? {
                    Some(r) => decode(&R(&r)).map(Some),
                    None => Ok(None),
                }
            }),
        }
    }

    /// Runs a statement that returns one integer (`COUNT(*)`, or with `write`, an INSERT's
    /// `RETURNING id`).
    pub(crate) async fn fetch_i64(
        self,
        sql: impl sqlx::SqlSafeStr + Send,
        args: Args,
        write: bool,
    ) -> Result<i64> {
        use sqlx::Row as _;
        let sql = sql.into_sql_str();
        match self.route(args)? {
            Route::Raw(raw, values) => {
                let mut value = None;
                raw.query(sql.as_str(), &values, |row| {
                    if value.is_none() {
                        value = Some(row.get::<i64>(0, "", "")?);
                    }
                    Ok(())
                })
                .await?;
                value.ok_or_else(|| Error::Database(sqlx::Error::RowNotFound))
            }
            Route::Sqlx(handle, args) => dispatch!(handle, args, write = write, |e, a, _R| {
                let row = sqlx::query_with(sql, a).fetch_one(e).await?;
                Ok(row.try_get::<i64, _>(0)?)
            }),
        }
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
