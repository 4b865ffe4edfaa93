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
    /// The primary key only, in the query's order (with `lock`, to lock the rows).
    Keys,
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

    /// The joins the query's orderings and `select_related` need: each distinct path of
    /// references, every prefix before the paths that extend it. Join `n` (from 1) is the
    /// `n - 1`th.
    fn joins(&self, shape: Shape) -> Vec<&[Via]> {
        let mut paths: Vec<&[Via]> = Vec::new();
        // `Count` and `Exists` need no join: every join follows a reference to a key, which
        // matches one row at most (a LEFT JOIN), so it changes no count.
        if matches!(shape, Shape::Rows | Shape::Keys) || self.windowed() {
            paths.extend(self.order.iter().map(|term| term.via.as_slice()));
        }
        if shape == Shape::Rows {
            paths.extend(self.related.iter().map(std::slice::from_ref));
        }
        let mut joins: Vec<&[Via]> = Vec::new();
        for path in paths {
            for len in 1..=path.len() {
                let prefix = &path[..len];
                if !joins.contains(&prefix) {
                    joins.push(prefix);
                }
            }
        }
        joins
    }

    /// Refuses an ordering by an aggregate of the rows where nothing groups them (a plain
    /// query, `annotate`, `aggregate`): no backend runs it as meant (MySQL would give one row).
    fn check_orderings(&self, meta: &ModelMeta, select: Option<&Select>) -> Result<()> {
        let grouped =
            select.is_some_and(|s| !s.annotate && !s.whole && s.items.iter().any(Item::groups));
        if !grouped
            && self
                .order
                .iter()
                .any(|t| t.expr.as_ref().is_some_and(|e| e.groups()))
        {
            return Err(crate::error::Error::InvalidQuery(format!(
                "a query of `{}` rows is ordered by an aggregate of its rows, which only a \
                 grouped selection has: select it with the columns it groups by, through \
                 `values`, or order by a related count",
                meta.name
            )));
        }
        Ok(())
    }

    /// Refuses a selection that no backend would run as meant, saying what to do instead.
    fn check_select(&self, meta: &ModelMeta, select: &Select) -> Result<()> {
        let refuse = |why: String| Err(crate::error::Error::InvalidQuery(why));
        let name = meta.name;
        let key = meta.columns[meta.primary_key];
        let groups = select.items.iter().any(Item::groups);
        let keyed = select
            .items
            .iter()
            .any(|item| matches!(item, Item::Column(c, _) if *c == key));
        if groups && !keyed && select.items.iter().any(Item::per_row) {
            return refuse(format!(
                "a grouped selection of `{name}` values cannot hold a related count, which is \
                 per row: select the key (`{key}`) among its columns, or count in `annotate`"
            ));
        }
        if self.lock != Lock::None {
            return refuse(format!(
                "a selection of `{name}` values cannot lock rows: lock them with `all` instead"
            ));
        }
        if select.annotate && select.items.iter().any(Item::groups) {
            return refuse(format!(
                "`annotate` of `{name}` rows takes counts of related rows (`related_count`):                  aggregate the rows themselves with `aggregate`, or per group with `values`"
            ));
        }
        if select.whole && !select.items.iter().all(Item::groups) {
            return refuse(format!(
                "`aggregate` of `{name}` rows takes aggregates of its columns only: select                  columns with them through `values`, which groups by them"
            ));
        }
        if select.collapses() && !select.whole {
            let selected = |column: &str| {
                select
                    .items
                    .iter()
                    .any(|item| matches!(item, Item::Column(c, _) if *c == column))
            };
            for term in &self.order {
                let fits = if term.expr.is_some() {
                    !select.distinct
                } else {
                    term.via.is_empty() && selected(term.column)
                };
                if !fits {
                    return refuse(format!(
                        "a {} selection of `{name}` values is ordered only by the columns it                          selects{}: select the ordering's column too, or drop it",
                        if select.distinct {
                            "distinct"
                        } else {
                            "grouped"
                        },
                        if select.distinct {
                            ""
                        } else {
                            " and by aggregates"
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    fn windowed(&self) -> bool {
        self.limit.is_some() || self.offset.is_some()
    }

    /// The SQL text and arguments of the query on `backend`.
    pub(crate) fn sql(&self, meta: &ModelMeta, backend: Backend, shape: Shape) -> Result<Sql> {
        let mut sql = Sql::with_capacity(backend, 4);
        let joins = self.joins(shape);
        sql.scope_of(meta.table, !joins.is_empty());
        let base = sql.scope();
        // The scope of the join that `path` ends with.
        let scope_of = |path: &[Via]| {
            let n = joins.iter().position(|j| *j == path).map_or(0, |i| i + 1);
            Sql::join_scope(path[path.len() - 1].table, n as u16)
        };
        let select = self.select.as_ref().filter(|_| shape == Shape::Rows);
        if let Some(select) = select {
            self.check_select(meta, select)?;
        }
        self.check_orderings(meta, select)?;
        let wrapped = select.filter(|s| s.whole && self.windowed());
        if let Some(select) = wrapped {
            // Aggregates over a window: over the window's rows, under the table's name.
            sql.push("SELECT ");
            sql.list(&select.items, |sql, item| item.write(sql))?;
            sql.push(" FROM (");
        }
        sql.push("SELECT ");
        let windowed = self.windowed();
        let key = meta.columns[meta.primary_key];
        match shape {
            Shape::Rows if select.is_some_and(|s| !s.annotate) && wrapped.is_none() => {
                let select = select.expect("checked");
                if select.distinct && !exact_distinct(backend, select) {
                    sql.push("DISTINCT ");
                }
                sql.list(&select.items, |sql, item| item.write(sql))?;
            }
            Shape::Rows => {
                sql.each(meta.columns, |sql, column| {
                    sql.column(column);
                });
                if let Some(select) = select.filter(|s| s.annotate) {
                    for item in &select.items {
                        sql.push(", ");
                        item.write(&mut sql)?;
                    }
                }
                for via in &self.related {
                    let scope = scope_of(std::slice::from_ref(via));
                    for column in via.columns {
                        sql.push(", ").column_of(scope, column);
                    }
                }
            }
            Shape::Keys => {
                sql.column(key);
            }
            Shape::Count if windowed => {
                sql.push("COUNT(*) FROM (SELECT 1 AS one");
            }
            Shape::Count => {
                sql.push("COUNT(*)");
            }
            Shape::Exists => {
                sql.push("1");
            }
        }
        sql.push(" FROM ").ident(meta.table);
        for path in &joins {
            let via = path[path.len() - 1];
            let parent = if path.len() == 1 {
                base
            } else {
                scope_of(&path[..path.len() - 1])
            };
            let scope = scope_of(path);
            // A join after a LEFT JOIN stays one: its parent row may be missing.
            let outer = path.iter().any(|v| v.nullable);
            sql.push(if outer { " LEFT JOIN " } else { " JOIN " })
                .ident(via.table)
                .push(" AS ");
            sql.qualifier(scope).push(" ON ");
            sql.column_of(scope, via.key)
                .push(" = ")
                .column_of(parent, via.column);
        }
        if let Some(filter) = &self.filter {
            sql.push(" WHERE ");
            filter.write(&mut sql)?;
        }
        if let Some(after) = &self.after_key {
            sql.push(if self.filter.is_some() {
                " AND "
            } else {
                " WHERE "
            });
            sql.column(key).push(" > ");
            sql.bind_dyn(after.as_ref(), key)?;
        }
        let grouped = select.filter(|s| wrapped.is_none() && !s.annotate);
        if let Some(select) = grouped.filter(|s| {
            (!s.distinct && s.items.iter().any(Item::groups)) || exact_distinct(backend, s)
        }) {
            let mut first = true;
            for item in &select.items {
                if let Item::Column(column, text) = item {
                    sql.push(if first { " GROUP BY " } else { ", " });
                    if *text && backend == Backend::MySql {
                        // Byte for byte: MySQL's `PAD SPACE` takes `a` and `a ` for one
                        // value. The column itself too, for `ONLY_FULL_GROUP_BY`.
                        text::write_binary(&mut sql, column, false);
                        sql.push(", ");
                    }
                    sql.column(column);
                    first = false;
                }
            }
        }
        let ordered = matches!(shape, Shape::Rows | Shape::Keys);
        let collapsed = select.is_some_and(|s| s.collapses() && wrapped.is_none());
        if (ordered || (shape == Shape::Count && windowed)) && !(collapsed && self.order.is_empty())
        {
            sql.push(" ORDER BY ");
            if self.order.is_empty() {
                sql.column(key);
            }
            sql.list(&self.order, |sql, term| {
                let direction = if term.descending { " DESC" } else { " ASC" };
                // The orderings that are to be the same on every backend put NULLs where
                // SQLite and MySQL do: first going up, last going down (PostgreSQL's own is
                // the reverse).
                let nulls = match (term.binary, backend, term.descending) {
                    (Some(_), Backend::Postgres, false) => " NULLS FIRST",
                    (Some(_), Backend::Postgres, true) => " NULLS LAST",
                    _ => "",
                };
                let outer = (!term.via.is_empty()).then(|| sql.set_scope(scope_of(&term.via)));
                let column = term.column;
                match term.binary {
                    _ if term.expr.is_some() => {
                        term.expr.as_ref().expect("checked").write(sql)?;
                    }
                    None => {
                        let cast = term.numeric_text && backend == Backend::Sqlite;
                        filter::write_column(sql, column, cast);
                    }
                    Some(false) => text::write_binary(sql, column, false),
                    // Folded, then the text itself: `Ab` and `ab` in one order everywhere.
                    Some(true) => {
                        text::write_binary(sql, column, true);
                        sql.push(direction).push(nulls).push(", ");
                        text::write_binary(sql, column, false);
                    }
                }
                sql.push(direction).push(nulls);
                if let Some(outer) = outer {
                    sql.leave(outer);
                }
                Ok(())
            })?;
        }
        let limit = if shape == Shape::Exists {
            Some(self.limit.map_or(1, |n| n.min(1)))
        } else {
            self.limit
        };
        // Numbers of the caller's, written as numbers: no text of theirs reaches the SQL.
        match (limit, self.offset) {
            (Some(limit), None) => sql.push(&format!(" LIMIT {limit}")),
            (Some(limit), Some(offset)) => sql.push(&format!(" LIMIT {limit} OFFSET {offset}")),
            (None, Some(offset)) => sql.push(&match backend {
                // MySQL has no OFFSET without LIMIT; SQLite takes -1 for "no limit".
                Backend::MySql => format!(" LIMIT 18446744073709551615 OFFSET {offset}"),
                Backend::Sqlite => format!(" LIMIT -1 OFFSET {offset}"),
                _ => format!(" OFFSET {offset}"),
            }),
            (None, None) => &mut sql,
        };
        if shape == Shape::Count && windowed {
            sql.push(") AS counted");
        }
        if wrapped.is_some() {
            sql.push(") AS ").ident(meta.table);
        }
        if ordered && backend != Backend::Sqlite && select.is_none_or(|s| s.annotate) {
            // SQLite's write transactions hold the whole database already.
            match (self.lock, backend) {
                (Lock::None, _) => {}
                (Lock::Update, _) => {
                    sql.push(" FOR UPDATE");
                    if !joins.is_empty() && backend == Backend::Postgres {
                        // The rows of the query's own table (a joined row may be absent).
                        sql.push(" OF ").ident(meta.table);
                    }
                    sql.push(match self.wait {
                        Contended::Wait => "",
                        Contended::Skip => " SKIP LOCKED",
                        Contended::Fail => " NOWAIT",
                    });
                }
                (Lock::KeyShare, Backend::Postgres) => {
                    sql.push(" FOR KEY SHARE");
                }
                (Lock::KeyShare, _) => {
                    sql.push(" LOCK IN SHARE MODE");
                }
            }
        }
        Ok(sql)
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
