//! Where an operation's statements run: `&Db` (a pooled connection per statement) or
//! `&mut Tx` (its connection, once any cancelled operation on it is settled).
//!
//! Uses `error`, `backend`, `value` and `conn`.

use super::Tx;
use crate::backend::Backend;
use crate::conn::{Db, Handle, Outcome};
use crate::error::Result;
use crate::sql::Sql;
use crate::value::{Args, Record, Row};

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

/// Internal: where one operation's statements run.
#[doc(hidden)]
pub enum Target<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

impl Target<'_> {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Target::Db(db) => db.backend(),
            Target::Tx(tx) => tx.backend(),
        }
    }

    /// A pool's timeout explained when receivers of the pool hold its connections (see
    /// [`Error::PoolTimedOut`](crate::Error::PoolTimedOut)).
    /// In a transaction, a failed statement is noted (on PostgreSQL it aborts the
    /// transaction up to the innermost savepoint around it; see [`Tx::note_failure`]).
    fn explain<T>(&mut self, res: Result<T>) -> Result<T> {
        match self {
            Target::Db(db) => res.map_err(|err| db.explain_pool_timeout(err)),
            Target::Tx(tx) => {
                if let Err(err) = &res {
                    tx.note_failure(err);
                }
                res
            }
        }
    }

    /// The connection the next statement runs on; in a transaction, after undoing the
    /// savepoints of cancelled operations.
    async fn handle(&mut self) -> Result<Handle<'_>> {
        match self {
            Target::Db(db) => {
                db.check_not_reentered()?;
                Ok(Handle::Pool(&db.pool))
            }
            Target::Tx(tx) => {
                tx.repair().await?;
                let depth = tx.depth();
                let inner = tx.inner_mut()?;
                inner.set_depth(depth);
                Ok(Handle::Tx(inner))
            }
        }
    }

    /// Runs a statement, text of the crate's own (a model's statements, or SQL built at run
    /// time), its values bound, never interpolated. On a pool it runs in autocommit, as its
    /// own transaction: a connection that fails once the statement was sent gives
    /// [`Error::CommitOutcomeUnknown`](crate::Error::CommitOutcomeUnknown), since it may have
    /// committed.
    pub(crate) async fn execute(
        &mut self,
        sql: impl sqlx::SqlSafeStr + Send,
        args: Args,
    ) -> Result<Outcome> {
        let res = self.handle().await?.execute(sql, args).await;
        self.explain(res)
    }

    /// Runs a query, each row decoded by `decode`.
    pub(crate) async fn fetch_all<M: Send>(
        &mut self,
        sql: impl sqlx::SqlSafeStr + Send,
        args: Args,
        decode: fn(&Row<'_>) -> Result<M>,
    ) -> Result<Vec<M>> {
        let mut all = Vec::new();
        let mut each = |row: &Row<'_>| {
            all.push(decode(row)?);
            Ok(())
        };
        self.rows(sql.into_sql_str(), args, false, &mut each)
            .await?;
        Ok(all)
    }

    /// Runs a query, its first row decoded by `decode`.
    pub(crate) async fn fetch_optional<M: Send>(
        &mut self,
        sql: impl sqlx::SqlSafeStr + Send,
        args: Args,
        decode: fn(&Row<'_>) -> Result<M>,
    ) -> Result<Option<M>> {
        let mut first = None;
        let mut each = |row: &Row<'_>| {
            if first.is_none() {
                first = Some(decode(row)?);
            }
            Ok(())
        };
        self.rows(sql.into_sql_str(), args, true, &mut each).await?;
        Ok(first)
    }

    /// Runs a query the crate built at run time (its values bound, never interpolated) and
    /// hands every row to `each`.
    pub(crate) async fn each_row(
        &mut self,
        sql: String,
        args: Args,
        each: &mut (dyn FnMut(&Row<'_>) -> Result<()> + Send),
    ) -> Result<()> {
        let sql = sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql));
        self.rows(sql, args, false, each).await
    }

    /// Runs a query and hands each row to `each` (only the first with `first_only`). Not
    /// generic: each model's crate compiles only the small wrappers above.
    pub(crate) async fn rows(
        &mut self,
        sql: sqlx::SqlStr,
        args: Args,
        first_only: bool,
        each: &mut (dyn FnMut(&Row<'_>) -> Result<()> + Send),
    ) -> Result<()> {
        let res = self.handle().await?.rows(sql, args, first_only, each).await;
        self.explain(res)
    }

    /// Runs a statement that returns one integer (`COUNT(*)`, `RETURNING id`).
    pub(crate) async fn fetch_i64(
        &mut self,
        sql: impl sqlx::SqlSafeStr + Send,
        args: Args,
    ) -> Result<i64> {
        let res = self.handle().await?.fetch_i64(sql, args, false).await;
        self.explain(res)
    }

    /// Runs an INSERT that returns the key it generated (`RETURNING id`): on a pool, a write
    /// in autocommit (see [`Target::execute`]).
    pub(crate) async fn insert_returning_key(
        &mut self,
        sql: impl sqlx::SqlSafeStr + Send,
        args: Args,
    ) -> Result<i64> {
        let res = self.handle().await?.fetch_i64(sql, args, true).await;
        self.explain(res)
    }
}

/// Running a statement of your own: on `&Db` (a pooled connection, in autocommit) or in a
/// transaction (`&mut Tx`, on SQLite on the transaction's own handle), as the crate runs its
/// own statements.
impl Sql {
    /// Runs the statement; returns how many rows it changed. On a pool the statement is its
    /// own transaction: a connection lost once it was sent is
    /// [`ErrorKind::CommitOutcomeUnknown`](crate::ErrorKind::CommitOutcomeUnknown).
    pub async fn execute<'e>(self, ex: impl Executor<'e>) -> Result<u64> {
        let (sql, args) = self.into_parts();
        let mut target = ex.__target();
        Ok(target.execute(sqlx::AssertSqlSafe(sql), args).await?.rows)
    }

    /// Runs the query; returns its rows, each read into `R` (a tuple of field types).
    pub async fn fetch_all<'e, R: Record>(self, ex: impl Executor<'e>) -> Result<Vec<R>> {
        let (sql, args) = self.into_parts();
        let mut target = ex.__target();
        target
            .fetch_all(sqlx::AssertSqlSafe(sql), args, R::__decode)
            .await
    }

    /// Runs the query; returns its first row, if any, read into `R`.
    pub async fn fetch_optional<'e, R: Record>(self, ex: impl Executor<'e>) -> Result<Option<R>> {
        let (sql, args) = self.into_parts();
        let mut target = ex.__target();
        target
            .fetch_optional(sqlx::AssertSqlSafe(sql), args, R::__decode)
            .await
    }
}
