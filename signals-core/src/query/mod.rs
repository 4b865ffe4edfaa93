//! Typed queries: conditions built from a model's column constants ([`Filter`], in `filter`;
//! text in `text`, JSON keys in `json` and `json_path`), orderings and the joins they need
//! ([`Order`], in `order`), aggregates and what a query selects ([`Aggregate`], [`Selection`],
//! in `aggregate`), assignments of an atomic update ([`Set`], in `update`), and the query that
//! holds them ([`Query`]), with the SQL text and arguments each backend runs. Nothing here
//! executes: `ops` runs a query.
//!
//! Uses `backend`, `error`, `value` and `meta`.

use std::fmt;
use std::marker::PhantomData;

use crate::backend::Backend;
use crate::error::Result;
use crate::meta::ModelMeta;
use crate::sql::Sql;

mod aggregate;
mod filter;
mod json;
mod json_path;
mod order;
mod parts;
mod raw;
mod text;
mod update;

pub use aggregate::{Aggregate, Ordered, Selection, Summable};
pub(crate) use aggregate::{Item, Items};
use filter::Node;
pub use filter::{Filter, Text};
pub use json::{JsonField, JsonKey, JsonScalar};
pub use order::Order;
use order::Term;
pub(crate) use order::Via;
use parts::Parts;
pub use raw::Raw;
pub use update::{Numeric, Set};

/// A query of model `M`'s rows: conditions, orderings, a window. Build it with
/// [`Model::query`](crate::Model::query), run it with `all`, `first`, `count` or `exists`.
/// Placeholders, quoting and `LIMIT` spelling are each backend's; every value is bound.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Db, Model};
///
/// #[derive(Debug, Model)]
/// struct Post { id: Option<i64>, status: String, views: i64 }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE post (id INTEGER PRIMARY KEY, status TEXT NOT NULL, views INTEGER NOT NULL)").await?;
/// for views in [5, 40, 12, 40, 3, 77] {
///     Post { id: None, status: "published".into(), views }.save(&db).await?;
/// }
/// // The second page of three, most viewed first, ties by key.
/// let page = Post::query()
///     .filter(Post::STATUS.eq("published"))
///     .order_by(Post::VIEWS.desc())
///     .order_by(Post::ID.asc())
///     .limit(3)
///     .offset(3)
///     .all(&db)
///     .await?;
/// assert_eq!(page.iter().map(|p| p.views).collect::<Vec<_>>(), [12, 5, 3]);
/// let top = Post::query().order_by(Post::VIEWS.desc()).first(&db).await?;
/// assert_eq!(top.map(|p| p.views), Some(77));
/// assert!(Post::query().filter(Post::VIEWS.ge(70)).exists(&db).await?);
/// # Ok(()) }
/// ```
pub struct Query<M> {
    filter: Option<Node>,
    order: Vec<Term>,
    /// References whose rows are read with each row (`select_related`), joined.
    pub(crate) related: Vec<Via>,
    /// What the query selects instead of (or with) whole rows.
    pub(crate) select: Option<Select>,
    limit: Option<u64>,
    offset: Option<u64>,
    /// Lock the rows read until the transaction ends.
    pub(crate) lock: Lock,
    /// Rows after this primary key only (a stream's next chunk).
    pub(crate) after_key: Option<Box<dyn crate::value::DynField>>,
    /// What a locking read does about rows another transaction holds.
    wait: Contended,
    _model: PhantomData<fn() -> M>,
}

impl<M> Default for Query<M> {
    fn default() -> Self {
        Query {
            filter: None,
            order: Vec::new(),
            related: Vec::new(),
            select: None,
            limit: None,
            offset: None,
            lock: Lock::None,
            after_key: None,
            wait: Contended::Wait,
            _model: PhantomData,
        }
    }
}

impl<M> fmt::Debug for Query<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("order", &self.order)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// How a query locks the rows it reads, until the transaction ends (servers only: SQLite's
/// write transactions hold the whole database already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    None,
    /// `FOR UPDATE`: no other transaction changes, deletes or locks the rows.
    Update,
    /// A shared lock that only a delete (or a key change, or `FOR UPDATE`) waits for:
    /// PostgreSQL's `FOR KEY SHARE`, MySQL's `LOCK IN SHARE MODE`.
    KeyShare,
}

/// What a locking read does about rows another transaction holds locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contended {
    /// Waits for them (up to the server's lock timeout).
    Wait,
    /// Leaves them out (`SKIP LOCKED`).
    Skip,
    /// Fails at once (`NOWAIT`).
    Fail,
}

/// Values selected instead of whole rows ([`Query::values`](crate::Query::values)), or with
/// them (`annotate`).
pub(crate) struct Select {
    pub(crate) items: Vec<Item>,
    pub(crate) distinct: bool,
    /// After the model's columns.
    pub(crate) annotate: bool,
    /// Over the query's rows, its window applied first (`aggregate`).
    pub(crate) whole: bool,
}

impl Select {
    /// Whether rows are grouped or made distinct: no default ordering by key then.
    fn collapses(&self) -> bool {
        self.distinct || self.items.iter().any(Item::groups)
    }
}

/// Whether a distinct selection is written as a grouping by its columns instead: on MySQL,
/// with text among them, grouped byte for byte (`DISTINCT` would take `a` and `a ` for one).
fn exact_distinct(backend: Backend, select: &Select) -> bool {
    select.distinct
        && backend == Backend::MySql
        && select
            .items
            .iter()
            .any(|item| matches!(item, Item::Column(_, true)))
}

/// What a query's SQL selects.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Every column, for models.
    Rows,
    /// `COUNT(*)` of the rows the query would return.
    Count,
    /// One constant row when there is any.
    Exists,
}

/// One column of a query's rows, as the subquery of a condition across a relation:
/// `Post::query().select(Post::AUTHOR_ID)` are the authors of the posts the query matches (see
/// [`Column::in_query`](crate::Column::in_query)). `R` is whose keys the column holds.
pub struct Selected<M, T, R> {
    pub(crate) query: Query<M>,
    pub(crate) column: &'static str,
    _marker: PhantomData<fn() -> (T, R)>,
}

impl<M, T, R> fmt::Debug for Selected<M, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selected")
            .field("column", &self.column)
            .field("query", &self.query)
            .finish()
    }
}

impl<M> Query<M> {
    /// This query's values of `column`, for a condition across a relation: with a reference
    /// column, the keys of the rows it refers to (Django's `.values("author_id")` in an
    /// `__in` lookup).
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
    /// for name in ["ada", "bob"] {
    ///     Author { id: None, name: name.into() }.save(&db).await?;
    /// }
    /// Post { id: None, author_id: 1, published: true }.save(&db).await?;
    /// Post { id: None, author_id: 2, published: false }.save(&db).await?;
    /// // Authors with a published post: Django's `Author.objects.filter(post__published=True)`.
    /// let published = Post::query().filter(Post::PUBLISHED.eq(true)).select(Post::AUTHOR_ID);
    /// let authors = Author::query().filter(Author::ID.in_query(published)).all(&db).await?;
    /// assert_eq!(authors.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["ada"]);
    /// # Ok(()) }
    /// ```
    pub fn select<T, R>(self, column: crate::meta::Column<M, T, R>) -> Selected<M, T, R> {
        Selected {
            query: self,
            column: column.name(),
            _marker: PhantomData,
        }
    }

    /// Keeps only the rows `filter` matches; several filters must all match.
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.filter = Some(match self.filter.take() {
            None => filter.node,
            Some(Node::All(mut nodes)) => {
                nodes.push(filter.node);
                Node::All(nodes)
            }
            Some(node) => Node::All(vec![node, filter.node]),
        });
        self
    }

    /// Orders by `order`, after the orderings given before (without any, rows come in primary
    /// key order).
    pub fn order_by(mut self, order: Order<M>) -> Self {
        self.order.push(order.term);
        self
    }

    /// Returns at most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// At most one row, and none when the query's own limit is 0.
    pub(crate) fn at_most_one(mut self) -> Self {
        self.limit = Some(self.limit.map_or(1, |n| n.min(1)));
        self
    }

    /// Locks the rows it reads until the transaction ends (Django's `select_for_update()`):
    /// no other transaction changes, deletes or locks them meanwhile; another's locking read
    /// of them waits. Run it in a transaction ([`Db::begin`](crate::Db::begin)): on a `&Db`
    /// the statement is its own transaction and the lock ends with it. On SQLite a write
    /// transaction holds the whole database, so the rows are simply read.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Debug, Model)]
    /// struct Job { id: Option<i64>, done: bool }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<Job>().await?;
    /// Job { id: None, done: false }.save(&db).await?;
    /// // A worker takes the next job no other worker holds (the job-queue pattern).
    /// let mut tx = db.begin().await?;
    /// let next = Job::query().filter(Job::DONE.eq(false)).for_update().skip_locked().first(&mut tx).await?;
    /// if let Some(mut job) = next {
    ///     job.done = true;
    ///     job.save(&mut tx).await?;
    /// }
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub fn for_update(mut self) -> Self {
        self.lock = Lock::Update;
        self
    }

    /// [`for_update`](Self::for_update), leaving out the rows another transaction holds locked
    /// instead of waiting for them (`SKIP LOCKED`, PostgreSQL and MariaDB 10.6+ / MySQL 8), so
    /// that workers take different rows of a queue at once.
    pub fn skip_locked(mut self) -> Self {
        self.lock = Lock::Update;
        self.wait = Contended::Skip;
        self
    }

    /// [`for_update`](Self::for_update), where a row another transaction holds locked fails
    /// the query at once (`NOWAIT`) with [`ErrorKind::Conflict`](crate::ErrorKind::Conflict)
    /// instead of waiting.
    pub fn nowait(mut self) -> Self {
        self.lock = Lock::Update;
        self.wait = Contended::Fail;
        self
    }

    /// Whether the query has an ordering or a window, which [`stream`](Self::stream) refuses.
    pub(crate) fn ordered_or_windowed(&self) -> bool {
        !self.order.is_empty() || self.limit.is_some() || self.offset.is_some()
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }

    /// The query's parts, without its model: what writing its SQL reads.
    fn parts(&self) -> Parts<'_> {
        Parts {
            filter: &self.filter,
            order: &self.order,
            related: &self.related,
            select: &self.select,
            limit: self.limit,
            offset: self.offset,
            lock: self.lock,
            after_key: &self.after_key,
            wait: self.wait,
        }
    }

    /// The SQL text and arguments of the query on `backend`.
    pub(crate) fn sql(&self, meta: &ModelMeta, backend: Backend, shape: Shape) -> Result<Sql> {
        self.parts().sql(meta, backend, shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Column, Receivers};

    struct Post;

    const META: ModelMeta = ModelMeta {
        name: "Post",
        table: "post",
        fields: &["id", "status", "views", "note"],
        columns: &["id", "status", "views", "note"],
        primary_key: 0,
        receivers: Receivers::NONE,
    };
    const STATUS: Column<Post, String> = Column::new(1, "status");
    const VIEWS: Column<Post, i64> = Column::new(2, "views");
    const NOTE: Column<Post, Option<String>> = Column::new(3, "note");

    fn text(q: &Query<Post>, backend: Backend, shape: Shape) -> String {
        q.sql(&META, backend, shape)
            .map(|sql| sql.text().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn sql_per_backend() {
        let q = Query::<Post>::default()
            .filter(STATUS.eq("a") | !VIEWS.in_([1, 2]))
            .filter(NOTE.ne(None::<String>).and(VIEWS.in_(Vec::<i64>::new())))
            .order_by(VIEWS.desc())
            .offset(5);
        assert_eq!(
            text(&q, Backend::Postgres, Shape::Rows),
            r#"SELECT "id", "status", "views", "note" FROM "post" WHERE (("status" = $1 OR NOT ("views" IN ($2, $3))) AND ("note" IS NOT NULL AND 1 = 0)) ORDER BY "views" DESC OFFSET 5"#
        );
        assert_eq!(
            text(&q, Backend::MySql, Shape::Count),
            "SELECT COUNT(*) FROM (SELECT 1 AS one FROM `post` WHERE ((`status` = ? OR NOT (`views` IN (?, ?))) AND (`note` IS NOT NULL AND 1 = 0)) ORDER BY `views` DESC LIMIT 18446744073709551615 OFFSET 5) AS counted"
        );
        assert_eq!(
            text(&Query::default(), Backend::Sqlite, Shape::Exists),
            r#"SELECT 1 FROM "post" LIMIT 1"#
        );
    }
}
