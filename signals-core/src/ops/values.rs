//! Running selections: values of some columns and aggregates instead of whole models
//! (`Query::values`, grouped by the columns when it has aggregates), aggregates over all the
//! rows (`Query::aggregate`), and rows with counts of their related rows (`Query::annotate`).
//!
//! Uses `error`, `meta`, `query`, `tx`, `value` and `model`.

use std::marker::PhantomData;

use crate::error::Result;
use crate::meta::Column;
use crate::model::Model;
use crate::query::{Aggregate, Filter, Items, Query, Select, Selection, Shape};
use crate::tx::Executor;
use crate::value::{RefersTo, Row};

impl<M: Model> Query<M> {
    fn selecting<S: Selection<M>>(mut self, selection: S, annotate: bool, whole: bool) -> Self {
        let mut items = Items::default();
        selection.__items(&mut items);
        self.select = Some(Select {
            items: items.0,
            distinct: false,
            annotate,
            whole,
        });
        self
    }

    /// The values of some columns and aggregates instead of whole rows, each row read as
    /// the selection's type (a tuple for several): Django's `values_list(..)`. With
    /// aggregates, the rows are grouped by the selected columns, one result per group
    /// (Django's `values("status").annotate(Sum("views"))`); without a column, the
    /// aggregates are over all the rows. Rows come in the query's order; without one, in key
    /// order, or in no particular order when grouped or [`distinct`](Values::distinct).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Post { id: Option<i64>, status: String, title: String }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<Post>().await?;
    /// for (status, title) in [("draft", "b"), ("published", "a"), ("draft", "c")] {
    ///     Post { id: None, status: status.into(), title: title.into() }.save(&db).await?;
    /// }
    /// let titles: Vec<String> = Post::query().order_by(Post::TITLE.asc()).values(Post::TITLE).all(&db).await?;
    /// assert_eq!(titles, ["a", "b", "c"]);
    /// let statuses: Vec<String> = Post::query()
    ///     .order_by(Post::STATUS.asc())
    ///     .values(Post::STATUS)
    ///     .distinct()
    ///     .all(&db)
    ///     .await?;
    /// assert_eq!(statuses, ["draft", "published"]);
    /// let per_status: Vec<(String, i64)> = Post::query()
    ///     .order_by(Post::STATUS.asc())
    ///     .values((Post::STATUS, Post::ID.count()))
    ///     .all(&db)
    ///     .await?;
    /// assert_eq!(per_status, [("draft".to_owned(), 2), ("published".to_owned(), 1)]);
    /// # Ok(()) }
    /// ```
    pub fn values<S: Selection<M>>(self, selection: S) -> Values<M, S> {
        Values {
            query: self.selecting(selection, false, false),
            _marker: PhantomData,
        }
    }

    /// Aggregates over all the rows the query matches (within its window, when it has one):
    /// Django's `aggregate(..)`. One aggregate, or a tuple of them, read as its type.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Order { id: Option<i64>, total: f64 }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<Order>().await?;
    /// assert_eq!(Order::query().aggregate(&db, Order::TOTAL.sum()).await?, None);
    /// for total in [10.0, 30.0, 20.0] {
    ///     Order { id: None, total }.save(&db).await?;
    /// }
    /// let (least, count) = Order::query().aggregate(&db, (Order::TOTAL.min(), Order::ID.count())).await?;
    /// assert_eq!((least, count), (Some(10.0), 3));
    /// // The two largest orders: the window first, then the sum.
    /// let top_two = Order::query().order_by(Order::TOTAL.desc()).limit(2).aggregate(&db, Order::TOTAL.sum()).await?;
    /// assert_eq!(top_two, Some(50.0));
    /// # Ok(()) }
    /// ```
    pub async fn aggregate<'e, S: Selection<M>>(
        self,
        ex: impl Executor<'e>,
        selection: S,
    ) -> Result<S::Out> {
        let query = self.selecting(selection, false, true);
        let mut target = ex.__target();
        let (sql, args) = query
            .sql(&M::META, target.backend(), Shape::Rows)?
            .into_parts();
        let row = target
            .fetch_optional(sqlx::AssertSqlSafe(sql), args, read_values::<M, S>)
            .await?;
        // Aggregates without grouping give one row, whatever the rows.
        row.ok_or_else(|| {
            crate::error::Error::InvalidQuery(format!(
                "the aggregate of `{}` rows gave no row",
                M::META.name
            ))
        })
    }

    /// Each row with values computed from its related rows (Django's `annotate(..)`), read
    /// as `(row, value)`: counts of the rows that refer to it
    /// ([`Column::related_count`]), alone or in a tuple. Order by them with
    /// [`Aggregate::desc`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Author { id: Option<i64>, name: String }
    ///
    /// #[derive(Model)]
    /// struct Post {
    ///     id: Option<i64>,
    ///     #[model(foreign_key = Author, on_delete = cascade)]
    ///     author_id: i64,
    ///     published: bool,
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<(Author, Post)>().await?;
    /// for name in ["ada", "bob", "cy"] {
    ///     Author { id: None, name: name.into() }.save(&db).await?;
    /// }
    /// for (author_id, published) in [(2, true), (2, false), (1, true)] {
    ///     Post { id: None, author_id, published }.save(&db).await?;
    /// }
    /// // Authors with their post counts, the most prolific first.
    /// let authors = Author::query()
    ///     .order_by(Post::AUTHOR_ID.related_count().desc())
    ///     .order_by(Author::NAME.asc())
    ///     .annotate((Post::AUTHOR_ID.related_count(), Post::AUTHOR_ID.related_count_where(Post::PUBLISHED.eq(true))))
    ///     .all(&db)
    ///     .await?;
    /// let rows: Vec<(&str, i64, i64)> = authors.iter().map(|(a, (n, p))| (a.name.as_str(), *n, *p)).collect();
    /// assert_eq!(rows, [("bob", 2, 1), ("ada", 1, 1), ("cy", 0, 0)]);
    /// # Ok(()) }
    /// ```
    pub fn annotate<S: Selection<M>>(self, selection: S) -> Annotated<M, S> {
        Annotated {
            query: self.selecting(selection, true, false),
            _marker: PhantomData,
        }
    }
}

/// A row read as a selection.
fn read_values<M, S: Selection<M>>(row: &Row<'_>) -> Result<S::Out> {
    S::__read(row, &mut 0)
}

/// A row read as a model and a selection after its columns.
fn read_annotated<M: Model, S: Selection<M>>(row: &Row<'_>) -> Result<(M, S::Out)> {
    let this = M::__load(row)?;
    let values = S::__read(row, &mut M::META.columns.len())?;
    Ok((this, values))
}

/// A query's values instead of its rows: [`Query::values`].
pub struct Values<M, S> {
    query: Query<M>,
    _marker: PhantomData<fn() -> S>,
}

impl<M, S> std::fmt::Debug for Values<M, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Values")
            .field("query", &self.query)
            .finish()
    }
}

impl<M: Model, S: Selection<M>> Values<M, S> {
    /// Each distinct result once (`SELECT DISTINCT`): Django's `distinct()`. A distinct
    /// selection can be ordered by its own columns only.
    pub fn distinct(mut self) -> Self {
        if let Some(select) = &mut self.query.select {
            select.distinct = true;
        }
        self
    }

    /// The results, in the query's order.
    pub async fn all<'e>(self, ex: impl Executor<'e>) -> Result<Vec<S::Out>> {
        self.query
            .rows_by(&mut ex.__target(), read_values::<M, S>)
            .await
    }

    /// The first result, if any.
    pub async fn first<'e>(self, ex: impl Executor<'e>) -> Result<Option<S::Out>> {
        self.query
            .first_by(&mut ex.__target(), read_values::<M, S>)
            .await
    }
}

/// A query's rows with values computed from their related rows: [`Query::annotate`].
pub struct Annotated<M, S> {
    query: Query<M>,
    _marker: PhantomData<fn() -> S>,
}

impl<M, S> std::fmt::Debug for Annotated<M, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Annotated")
            .field("query", &self.query)
            .finish()
    }
}

impl<M: Model, S: Selection<M>> Annotated<M, S> {
    /// The rows with their values, in the query's order.
    pub async fn all<'e>(self, ex: impl Executor<'e>) -> Result<Vec<(M, S::Out)>> {
        self.query
            .rows_by(&mut ex.__target(), read_annotated::<M, S>)
            .await
    }

    /// The first row with its values, if any.
    pub async fn first<'e>(self, ex: impl Executor<'e>) -> Result<Option<(M, S::Out)>> {
        self.query
            .first_by(&mut ex.__target(), read_annotated::<M, S>)
            .await
    }
}

/// Counts of related rows, for [`Query::annotate`] and orderings.
impl<C: Model, T, R: Model> Column<C, T, R>
where
    T: RefersTo<R::Key>,
{
    /// For each row of the referenced model, how many rows of `C` refer to it through this
    /// column: Django's `annotate(Count("post"))`, as a subquery (0 for none).
    pub fn related_count(self) -> Aggregate<R, i64> {
        Aggregate::related::<C>(
            R::META.columns[R::META.primary_key],
            C::META.table,
            self.name(),
            None,
        )
    }

    /// [`related_count`](Self::related_count) of the referring rows `filter` matches:
    /// `annotate(Count("post", filter=Q(post__published=True)))`.
    pub fn related_count_where(self, filter: Filter<C>) -> Aggregate<R, i64> {
        Aggregate::related(
            R::META.columns[R::META.primary_key],
            C::META.table,
            self.name(),
            Some(filter),
        )
    }
}
