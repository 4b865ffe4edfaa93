//! Running a typed [`Query`]: its rows as models, the first one, how many, whether any; an
//! atomic update of them; deleting them with their signals.
//!
//! Uses `error`, `query`, `tx` and `model`.

use super::atomically;
use crate::error::Result;
use crate::meta::Column;
use crate::model::{Deleted, Model};
use crate::query::{Filter, Lock, Query, Selected, Set, Shape};
use crate::signal::hooks::Hooks;
use crate::tx::{Executor, Target, Tx};
use crate::value::{RefersTo, Row};

impl<M: Model> Query<M> {
    /// The rows of the query's SQL on `target` (which stays usable), each read by `read`:
    /// a model, a model and its parent, values.
    pub(crate) async fn rows_by<T: Send>(
        self,
        target: &mut Target<'_>,
        read: fn(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let (sql, args) = self
            .sql(&M::META, target.backend(), Shape::Rows)?
            .into_parts();
        target.fetch_all(sqlx::AssertSqlSafe(sql), args, read).await
    }

    /// [`rows_by`](Self::rows_by) of the first row, if any (the query limited to one row).
    pub(crate) async fn first_by<T: Send>(
        self,
        target: &mut Target<'_>,
        read: fn(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let (sql, args) = self
            .at_most_one()
            .sql(&M::META, target.backend(), Shape::Rows)?
            .into_parts();
        target
            .fetch_optional(sqlx::AssertSqlSafe(sql), args, read)
            .await
    }

    /// The rows, as models, in the query's order.
    pub async fn all<'e>(self, ex: impl Executor<'e>) -> Result<Vec<M>> {
        self.rows_by(&mut ex.__target(), M::__load).await
    }

    /// The first row, if any (the query limited to one row).
    pub async fn first<'e>(self, ex: impl Executor<'e>) -> Result<Option<M>> {
        self.first_by(&mut ex.__target(), M::__load).await
    }

    /// How many rows the query returns (its limit and offset applied).
    pub async fn count<'e>(self, ex: impl Executor<'e>) -> Result<i64> {
        let mut target = ex.__target();
        let (sql, args) = self
            .sql(&M::META, target.backend(), Shape::Count)?
            .into_parts();
        target.fetch_i64(sqlx::AssertSqlSafe(sql), args).await
    }

    /// Whether the query returns any row (reading at most one).
    pub async fn exists<'e>(self, ex: impl Executor<'e>) -> Result<bool> {
        let mut target = ex.__target();
        let (sql, args) = self
            .sql(&M::META, target.backend(), Shape::Exists)?
            .into_parts();
        let found = target
            .fetch_optional(sqlx::AssertSqlSafe(sql), args, |_| Ok(()))
            .await?;
        Ok(found.is_some())
    }

    /// Updates the matched rows in one statement and returns how many matched: Django's
    /// `QuerySet.update()`, with `Column::add` for `F()` expressions. Like Django's, it sends
    /// no signal (it loads no instance); to run receivers, load the rows and save them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Author { id: Option<i64>, name: String, post_count: i64 }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared("CREATE TABLE author (id INTEGER PRIMARY KEY, name TEXT NOT NULL, post_count INTEGER NOT NULL)").await?;
    /// Author { id: None, name: "ada".into(), post_count: 2 }.save(&db).await?;
    /// let matched = Author::query()
    ///     .filter(Author::NAME.eq("ada"))
    ///     .update(&db, Author::POST_COUNT.add(1))
    ///     .await?;
    /// assert_eq!(matched, 1);
    /// assert_eq!(Author::get(&db, 1).await?.map(|a| a.post_count), Some(3));
    /// # Ok(()) }
    /// ```
    pub async fn update<'e>(self, ex: impl Executor<'e>, set: Set<M>) -> Result<u64> {
        let mut target = ex.__target();
        let (sql, args) = self
            .update_sql(&M::META, target.backend(), &set)?
            .into_parts();
        Ok(target.execute(sqlx::AssertSqlSafe(sql), args).await?.rows)
    }
}

impl<M: Hooks> Query<M> {
    /// Deletes the matched rows with their delete receivers and cascades, in one transaction
    /// (a savepoint of the caller's): Django's `QuerySet.delete()`, which sends the signals
    /// too. The rows are read locked (`FOR UPDATE`), then deleted as
    /// [`Model::bulk_delete`](crate::Model::bulk_delete) deletes them: level by level with
    /// `IN` lists, batched receivers once per batch.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Tag { id: Option<i64>, uses: i64 }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY, uses INTEGER NOT NULL)").await?;
    /// for uses in [0, 3, 0] {
    ///     Tag { id: None, uses }.save(&db).await?;
    /// }
    /// let deleted = Tag::query().filter(Tag::USES.eq(0)).delete(&db).await?;
    /// assert_eq!(deleted.total(), 2);
    /// assert_eq!(Tag::query().count(&db).await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn delete<'e>(mut self, ex: impl Executor<'e>) -> Result<Deleted> {
        self.lock = Lock::Update;
        let (mut deleted, post_commit_errors) = atomically(
            ex.__target(),
            M::META.name,
            "delete",
            None,
            async |tx: &mut Tx| {
                let rows = self.all(&mut *tx).await?;
                // The rows were not the caller's slice: errors say what failed, not an index.
                let mut deleted = crate::ops::bulk_delete::delete_all(&rows, tx)
                    .await
                    .map_err(crate::ops::cascade::unrow)?;
                deleted.receiver_errors = std::mem::take(&mut tx.scopes.current().robust_errors);
                Ok(deleted)
            },
        )
        .await?;
        deleted.post_commit_errors = post_commit_errors;
        Ok(deleted)
    }
}

/// What a key column can be compared with across a relation, in [`Column::in_query`]: the
/// rows of a query of `K` itself (their keys), or a column selected from a query of another
/// model that refers to `K` ([`Query::select`]). Keys of another model do not fit, so they
/// cannot be compared by mistake.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not give keys of `{K}`",
    label = "expected a query of `{K}`, or `.select(..)` of a column that refers to `{K}`",
    note = "a column's third type parameter says whose keys it holds: its own model for the \
            primary key, the parent for a `foreign_key` or `one_to_one` field"
)]
pub trait Subquery<K> {
    #[doc(hidden)]
    fn __filter<C>(self, column: &'static str) -> Filter<C>;
}

impl<K: Model> Subquery<K> for Query<K> {
    fn __filter<C>(self, column: &'static str) -> Filter<C> {
        Filter::in_query(
            column,
            K::META.table,
            K::META.columns[K::META.primary_key],
            self,
        )
    }
}

impl<P: Model, T, K> Subquery<K> for Selected<P, T, K> {
    fn __filter<C>(self, column: &'static str) -> Filter<C> {
        Filter::in_query(column, P::META.table, self.column, self.query)
    }
}

/// Never implemented: it only says, where a column holding no model's keys is compared with
/// a query, what to do instead.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "this column holds no model's keys, so it cannot be compared with a query",
    label = "declare the field a reference, `#[model(foreign_key = Parent, on_delete = ..)]` (or \
             `one_to_one`), to compare it with `Parent`'s rows"
)]
pub trait HoldsKeys<Q> {}

impl<C, T> Column<C, T, ()> {
    /// Not available on this column: it is neither a key nor a reference (see [`Column`]), so
    /// no query's keys can be compared with it. Declare the field a reference to use
    /// `in_query`.
    pub fn in_query<Q>(self, _query: Q) -> Filter<C>
    where
        Self: HoldsKeys<Q>,
    {
        Filter::invalid(format!("`{}` holds no model's keys", self.name()))
    }
}

impl<C, T, R: Model> Column<C, T, R> {
    /// Rows whose key or reference names a row that `query` matches: Django's lookups across
    /// a relation (`Comment.objects.filter(post__author_id=3)`), as a subquery.
    ///
    /// The column says whose keys it holds (see [`Column`]): a reference to `Post` takes a
    /// query of `Post` (`Comment::POST_ID.in_query(Post::query()..)`), and a key takes a
    /// column of another query that refers to it (`Author::ID.in_query(Post::query()
    /// ..select(Post::AUTHOR_ID))`, the reverse direction). Keys of another model
    /// (`Author::ID.in_query(Post::query())`) do not compile. `query` takes conditions only (an
    /// ordering or a window makes the query fail with
    /// [`Error::InvalidQuery`](crate::Error::InvalidQuery) when it runs).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Post { id: Option<i64>, author: String }
    ///
    /// #[derive(Model)]
    /// struct Comment {
    ///     id: Option<i64>,
    ///     #[model(foreign_key = Post, on_delete = cascade)]
    ///     post_id: i64,
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared(
    ///     "CREATE TABLE post (id INTEGER PRIMARY KEY, author TEXT NOT NULL);
    ///      CREATE TABLE comment (id INTEGER PRIMARY KEY, post_id INTEGER NOT NULL);",
    /// ).await?;
    /// for (post, author) in [(1, "ada"), (2, "bob")] {
    ///     Post { id: None, author: author.into() }.save(&db).await?;
    ///     Comment { id: None, post_id: post }.save(&db).await?;
    ///     Comment { id: None, post_id: post }.save(&db).await?;
    /// }
    /// let on_adas_posts = Comment::query()
    ///     .filter(Comment::POST_ID.in_query(Post::query().filter(Post::AUTHOR.eq("ada"))))
    ///     .count(&db)
    ///     .await?;
    /// assert_eq!(on_adas_posts, 2);
    /// # Ok(()) }
    /// ```
    pub fn in_query(self, query: impl Subquery<R>) -> Filter<C>
    where
        T: RefersTo<R::Key>,
    {
        query.__filter(self.name())
    }
}
