//! Running one statement: on a pool (a pooled connection per statement) or on a transaction's
//! connection ([`TxConn`]), per backend; SQLite transactions run on the connection's handle.
//!
//! Uses `error`, `backend`, `value` and the connections of `conn`.

use sqlx::mysql::MySql;
use sqlx::postgres::Postgres;

use super::server::ServerTx;
use super::sqlite_handle::{error, execute_on, is_busy, query_on};
use super::sqlite_keep::{Entered, Keeper};
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
            Pool::Sqlite(p, keeper) => TxConn::Sqlite(RawTx::begin(p, keeper.as_ref()).await?),
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
    ///
    /// On a server the COMMIT runs to its end in a task of its own: a cancellation of the
    /// operation awaiting it, once the operation counts its work as staying (`CommitSent`),
    /// must not stop it halfway, with the COMMIT perhaps never sent and the connection closed,
    /// which rolls the transaction back while the caller's keys say it committed. (SQLite's
    /// COMMIT runs on its connection's thread, which finishes it either way.)
    pub(crate) async fn commit(self) -> Result<()> {
        let res = match self {
            TxConn::Sqlite(t) => return t.commit().await,
            TxConn::Postgres(t) => to_the_end(t.commit()).await,
            TxConn::MySql(t) => to_the_end(t.commit()).await,
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
                let res = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut **t)
                    .await
                    .map_err(Error::from);
                // Answered, even with an error (a savepoint the server's deadlock rollback
                // took away): the connection is in step. Only a cancellation leaves it set.
                t.in_flight = false;
                if let Err(err) = &res
                    && crate::error::ends_transaction(err)
                {
                    t.rolled_back = true;
                }
                res?;
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
            // Given up (see `give_up`): its state is unknown.
            TxConn::Postgres(t) if t.in_flight => {
                t.discard();
                true
            }
            _ => false,
        }
    }

    /// Whether the server rolled the whole transaction back (a MySQL deadlock).
    pub(crate) fn rolled_back(&self) -> bool {
        matches!(self, TxConn::MySql(t) if t.rolled_back)
    }

    /// Notes the savepoint depth of the statements that follow.
    pub(crate) fn set_depth(&mut self, depth: u32) {
        if let TxConn::Postgres(t) = self {
            t.depth = depth;
        }
    }

    /// On PostgreSQL, the savepoint depth of a write that was cancelled midway (it may have
    /// run), taken: `None` when none was.
    pub(crate) fn cancelled_write(&mut self) -> Option<u32> {
        match self {
            TxConn::Postgres(t) => t.write_depth.take(),
            _ => None,
        }
    }

    /// Gives up a transaction whose state is unknown: it is never used again, and its
    /// connection is closed (which rolls it back) when it is dropped.
    pub(crate) fn give_up(&mut self) {
        match self {
            TxConn::Postgres(t) => {
                t.in_flight = true;
                t.discard();
            }
            TxConn::MySql(t) => {
                t.in_flight = true;
                t.discard();
            }
            TxConn::Sqlite(_) => {}
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
    // MySQL: the connection is taken explicitly, and closed (not given back to the pool)
    // when the statement is cancelled midway. sqlx's MySQL driver counts on an answer as
    // soon as it starts a statement, so a connection given back mid-statement made its next
    // user (a read or a write on the pool, or the pool's own check) wait forever.
    (@mysql_pool $pool:ident, $write:expr, |$e:ident| $body:expr) => {{
        // Boxed, as above.
        let conn = Box::pin($pool.acquire()).await?;
        let mut conn = CloseIfCancelled(Some(conn));
        let res = {
            let $e = conn.get();
            async { $body }.await
        };
        conn.finished();
        if $write { autocommit(res) } else { res }
    }};
    (@arms $handle:expr, $args:expr, $write:expr, |$e:ident, $a:ident, $row:ident| $body:expr) => {
        match ($handle, $args) {
            (Handle::Pool(Pool::Sqlite(pool, _)), Args::Sqlite(values)) => {
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
                dispatch!(@mysql_pool pool, $write, |$e| $body)
            }
            (Handle::Tx(TxConn::Postgres(t)), Args::Postgres($a)) => {
                // A write cancelled inside leaves its depth: see `TxConn::cancelled_write`.
                if $write {
                    t.write_depth = Some(t.depth);
                }
                let res = {
                    let $e = &mut **t;
                    #[allow(unused_imports)]
                    use Row::Postgres as $row;
                    async { $body }.await
                };
                t.write_depth = None;
                res
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
                if let Err(err) = &res
                    && crate::error::ends_transaction(err)
                {
                    t.rolled_back = true;
                }
                res
            }
            _ => return Err(mismatch()),
        }
    };
}

/// A pooled MySQL connection running one statement: closed when dropped before
/// [`finished`](Self::finished) (the statement's future was cancelled midway), given back to
/// the pool otherwise.
struct CloseIfCancelled(Option<sqlx::pool::PoolConnection<MySql>>);

impl CloseIfCancelled {
    fn get(&mut self) -> &mut sqlx::MySqlConnection {
        match &mut self.0 {
            Some(conn) => conn,
            None => unreachable!("taken only by `finished`"),
        }
    }

    /// The statement was answered: the connection goes back to the pool.
    fn finished(&mut self) {
        self.0 = None;
    }
}

impl Drop for CloseIfCancelled {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.0 {
            conn.close_on_drop();
        }
    }
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
    /// A SQLite `Db`'s kept connection, entered, and its pool to fall back on.
    Kept(Entered, &'a Pool, Vec<SqlValue>),
    Sqlx(Handle<'a>, Args),
}

impl Route<'_> {
    /// Runs `f` on the kept connection's handle, in autocommit, without waiting for another
    /// connection's lock. `Ok(Err(route))`: it could not run there (the lock is taken, or the
    /// connection could not be had), and runs through sqlx instead, which waits for the lock
    /// on sqlx's worker thread, not on this one. A statement refused as busy did nothing.
    async fn on_kept<T>(
        entered: &mut Entered,
        pool: &Pool,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
    ) -> Option<Result<T>> {
        let Pool::Sqlite(sqlite, _) = pool else {
            return None;
        };
        let held = match entered.held(sqlite).await {
            Ok(held) => held,
            Err(err) => return Some(Err(err)),
        };
        let db = &held.locked.db;
        if let Err(err) = db.busy_timeout(std::time::Duration::ZERO) {
            return Some(Err(error(err)));
        }
        let res = f(db);
        let _ = db.busy_timeout(held.busy_timeout);
        match res {
            Err(err) if is_busy(&err) => {
                // Through the pool, which must find the connection there on `:memory:`.
                entered.give_back();
                None
            }
            res => Some(res),
        }
    }
}

fn mismatch() -> Error {
    Error::Config("internal error: arguments built for another backend".into())
}

impl<'a> Handle<'a> {
    /// The keeper of a SQLite `Db` that keeps a connection, whose queue a write in autocommit
    /// waits in for its turn (see `Keeper::queue`): `None` elsewhere.
    fn keeper(&self) -> Option<&'a Keeper> {
        match self {
            Handle::Pool(pool) => match *pool {
                Pool::Sqlite(_, Some(keeper)) => Some(keeper),
                _ => None,
            },
            Handle::Tx(_) => None,
        }
    }

    /// Where a statement runs: on a SQLite transaction's handle, on a SQLite `Db`'s kept
    /// connection when it is free, or through sqlx.
    async fn route(self, args: Args) -> Result<Route<'a>> {
        match (self, args) {
            (Handle::Tx(TxConn::Sqlite(raw)), Args::Sqlite(values)) => Ok(Route::Raw(raw, values)),
            (Handle::Tx(TxConn::Sqlite(_)), _) => Err(mismatch()),
            (Handle::Pool(pool @ Pool::Sqlite(_, Some(keeper))), Args::Sqlite(values)) => {
                Ok(match keeper.enter().await? {
                    Some(entered) => Route::Kept(entered, pool, values),
                    None => Route::Sqlx(Handle::Pool(pool), Args::Sqlite(values)),
                })
            }
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
        // Held until the statement ran.
        let _turn = match self.keeper() {
            Some(keeper) => keeper.queue().await?,
            None => None,
        };
        let (handle, args) = match self.route(args).await? {
            Route::Raw(raw, values) => return raw.execute(sql.as_str(), &values).await,
            Route::Kept(mut entered, pool, values) => {
                let text = sql.as_str();
                match Route::on_kept(&mut entered, pool, |db| execute_on(db, text, &values)).await {
                    Some(res) => return res,
                    None => (Handle::Pool(pool), Args::Sqlite(values)),
                }
            }
            Route::Sqlx(handle, args) => (handle, args),
        };
        // Statements run with `execute` write: on a pool, in autocommit.
        dispatch!(handle, args, write = true, |e, a, _R| {
            let res = sqlx::query_with(sql, a).execute(e).await?;
            Ok(outcome(res))
        })
    }

    /// Runs a query and hands each row to `each` (only the first with `first_only`, where
    /// the driver can stop early). Not generic: the query paths are compiled once, here, and
    /// each model's crate compiles only the small wrappers of `Target` (see BENCHMARKS.md,
    /// "Build cost").
    pub(crate) async fn rows(
        self,
        sql: sqlx::SqlStr,
        args: Args,
        first_only: bool,
        each: &mut (dyn FnMut(&Row<'_>) -> Result<()> + Send),
    ) -> Result<()> {
        let (handle, args) = match self.route(args).await? {
            Route::Raw(raw, values) => {
                return query_on(raw.lock().await?, sql.as_str(), &values, &mut *each);
            }
            Route::Kept(mut entered, pool, values) => {
                let text = sql.as_str();
                let run = |db: &rusqlite::Connection| query_on(db, text, &values, &mut *each);
                match Route::on_kept(&mut entered, pool, run).await {
                    Some(res) => return res,
                    None => (Handle::Pool(pool), Args::Sqlite(values)),
                }
            }
            Route::Sqlx(handle, args) => (handle, args),
        };
        dispatch!(handle, args, |e, a, R| {
            if first_only {
                match sqlx::query_with(sql, a).fetch_optional(e).await? {
                    Some(r) => each(&R(&r)),
                    None => Ok(()),
                }
            } else {
                let rows = sqlx::query_with(sql, a).fetch_all(e).await?;
                rows.iter().try_for_each(|r| each(&R(r)))
            }
        })
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
        let one = |db: &rusqlite::Connection, text: &str, values: &[SqlValue]| {
            let mut value = None;
            query_on(db, text, values, |row| {
                if value.is_none() {
                    value = Some(row.get::<i64>(0, "", "")?);
                }
                Ok(())
            })?;
            value.ok_or_else(|| Error::Database(sqlx::Error::RowNotFound))
        };
        let _turn = match self.keeper().filter(|_| write) {
            Some(keeper) => keeper.queue().await?,
            None => None,
        };
        let (handle, args) = match self.route(args).await? {
            Route::Raw(raw, values) => {
                let text = sql.as_str();
                return one(raw.lock().await?, text, &values);
            }
            Route::Kept(mut entered, pool, values) => {
                let text = sql.as_str();
                match Route::on_kept(&mut entered, pool, |db| one(db, text, &values)).await {
                    Some(res) => return res,
                    None => (Handle::Pool(pool), Args::Sqlite(values)),
                }
            }
            Route::Sqlx(handle, args) => (handle, args),
        };
        dispatch!(handle, args, write = write, |e, a, _R| {
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

/// Runs `commit` in a task of its own, so that it finishes even when the future awaiting it
/// is dropped.
async fn to_the_end(commit: impl Future<Output = Result<()>> + Send + 'static) -> Result<()> {
    match tokio::spawn(commit).await {
        Ok(res) => res,
        Err(err) => Err(Error::Transaction(format!(
            "the COMMIT's task did not finish: {err}"
        ))),
    }
}
