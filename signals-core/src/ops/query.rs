//! Running a typed [`Query`]: its rows as models, the first one, how many, whether any.
//!
//! Uses `error`, `query`, `tx` and `model`.

use crate::error::Result;
use crate::model::Model;
use crate::query::{Query, Shape};
use crate::tx::Executor;

impl<M: Model> Query<M> {
    /// The rows, as models, in the query's order.
    pub async fn all<'e>(self, ex: impl Executor<'e>) -> Result<Vec<M>> {
        let mut target = ex.__target();
        let (sql, args) = self.sql(&M::META, target.backend(), Shape::Rows)?;
        target
            .fetch_all(sqlx::AssertSqlSafe(sql), args, M::__from_row)
            .await
    }

    /// The first row, if any (the query limited to one row).
    pub async fn first<'e>(self, ex: impl Executor<'e>) -> Result<Option<M>> {
        let mut target = ex.__target();
        let (sql, args) = self.limit(1).sql(&M::META, target.backend(), Shape::Rows)?;
        target
            .fetch_optional(sqlx::AssertSqlSafe(sql), args, M::__from_row)
            .await
    }

    /// How many rows the query returns (its limit and offset applied).
    pub async fn count<'e>(self, ex: impl Executor<'e>) -> Result<i64> {
        let mut target = ex.__target();
        let (sql, args) = self.sql(&M::META, target.backend(), Shape::Count)?;
        target.fetch_i64(sqlx::AssertSqlSafe(sql), args).await
    }

    /// Whether the query returns any row (reading at most one).
    pub async fn exists<'e>(self, ex: impl Executor<'e>) -> Result<bool> {
        let mut target = ex.__target();
        let (sql, args) = self.sql(&M::META, target.backend(), Shape::Exists)?;
        let found = target
            .fetch_optional(sqlx::AssertSqlSafe(sql), args, |_| Ok(()))
            .await?;
        Ok(found.is_some())
    }
}
