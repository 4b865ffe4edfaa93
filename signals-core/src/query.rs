//! Typed queries: conditions built from a model's column constants ([`Filter`]), orderings
//! ([`Order`]) and the query that holds them ([`Query`]), with the SQL text and arguments each
//! backend runs. Nothing here executes: `ops::query` runs a query.
//!
//! Uses `backend`, `error`, `value` and `meta`.

use std::fmt;
use std::marker::PhantomData;

use crate::backend::Backend;
use crate::error::Result;
use crate::meta::{Column, ModelMeta};
use crate::value::{Args, DynField, FieldType};

/// A condition on the rows of model `M`, built from its column constants: `Post::VIEWS.gt(5)`.
/// Combine conditions with `&` (and), `|` (or) and `!` (not). A column of another model, or a
/// value of another type than the column's, does not compile.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Db, Model};
///
/// #[derive(Model)]
/// struct Post { id: Option<i64>, status: String, views: i64, note: Option<String> }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE post (id INTEGER PRIMARY KEY, status TEXT NOT NULL, views INTEGER NOT NULL, note TEXT)").await?;
/// for (status, views) in [("draft", 1), ("published", 50), ("published", 7), ("archived", 90)] {
///     Post { id: None, status: status.into(), views, note: None }.save(&db).await?;
/// }
/// let popular = Post::query()
///     .filter(Post::STATUS.eq("published") & Post::VIEWS.gt(5))
///     .filter(!Post::NOTE.is_not_null())
///     .count(&db)
///     .await?;
/// assert_eq!(popular, 2);
/// let either = Post::query().filter(Post::STATUS.in_(["draft", "archived"]) | Post::VIEWS.eq(7));
/// assert_eq!(either.count(&db).await?, 3);
/// # Ok(()) }
/// ```
pub struct Filter<M> {
    node: Node,
    _model: PhantomData<fn() -> M>,
}

/// A condition with its model erased.
enum Node {
    /// `column <op> value`.
    Compare {
        column: &'static str,
        op: &'static str,
        value: Box<dyn DynField>,
    },
    /// `column IS [NOT] NULL`.
    Null {
        column: &'static str,
        negated: bool,
    },
    /// `column IN (values)`; false for no values.
    In {
        column: &'static str,
        values: Vec<Box<dyn DynField>>,
    },
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
}

impl<M> Filter<M> {
    fn new(node: Node) -> Self {
        Filter {
            node,
            _model: PhantomData,
        }
    }

    /// Both conditions (as `self & other`).
    pub fn and(self, other: Filter<M>) -> Filter<M> {
        Filter::new(match self.node {
            Node::All(mut nodes) => {
                nodes.push(other.node);
                Node::All(nodes)
            }
            node => Node::All(vec![node, other.node]),
        })
    }

    /// Either condition (as `self | other`).
    pub fn or(self, other: Filter<M>) -> Filter<M> {
        Filter::new(match self.node {
            Node::Any(mut nodes) => {
                nodes.push(other.node);
                Node::Any(nodes)
            }
            node => Node::Any(vec![node, other.node]),
        })
    }
}

impl<M> std::ops::BitAnd for Filter<M> {
    type Output = Filter<M>;
    fn bitand(self, other: Filter<M>) -> Filter<M> {
        self.and(other)
    }
}

impl<M> std::ops::BitOr for Filter<M> {
    type Output = Filter<M>;
    fn bitor(self, other: Filter<M>) -> Filter<M> {
        self.or(other)
    }
}

impl<M> std::ops::Not for Filter<M> {
    type Output = Filter<M>;
    /// The condition's negation. (A row where a compared column is NULL matches neither the
    /// condition nor its negation, as in SQL and Django.)
    fn not(self) -> Filter<M> {
        Filter::new(Node::Not(Box::new(self.node)))
    }
}

impl<M> fmt::Debug for Filter<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        let mut args = Args::new(Backend::Sqlite, 0);
        let _ = self
            .node
            .write(Backend::Sqlite, &mut text, &mut args, &mut 0);
        f.debug_tuple("Filter").field(&text).finish()
    }
}

/// The conditions on a column, from the column constants the derive generates.
impl<M, T: FieldType> Column<M, T> {
    fn compare(self, op: &'static str, value: T) -> Filter<M> {
        Filter::new(Node::Compare {
            column: self.name(),
            op,
            value: Box::new(value),
        })
    }

    /// Rows whose column equals `value`; `None` matches NULL (`IS NULL`), as in
    /// [`Model::filter`](crate::Model::filter).
    pub fn eq(self, value: impl Into<T>) -> Filter<M> {
        let value = value.into();
        if value.is_null() {
            return self.is_null();
        }
        self.compare("=", value)
    }

    /// Rows whose column differs from `value` (NULLs excluded); `None` matches every non-NULL
    /// value (`IS NOT NULL`).
    pub fn ne(self, value: impl Into<T>) -> Filter<M> {
        let value = value.into();
        if value.is_null() {
            return self.is_not_null();
        }
        self.compare("<>", value)
    }

    /// Rows whose column is less than `value`.
    pub fn lt(self, value: impl Into<T>) -> Filter<M> {
        self.compare("<", value.into())
    }

    /// Rows whose column is at most `value`.
    pub fn le(self, value: impl Into<T>) -> Filter<M> {
        self.compare("<=", value.into())
    }

    /// Rows whose column is greater than `value`.
    pub fn gt(self, value: impl Into<T>) -> Filter<M> {
        self.compare(">", value.into())
    }

    /// Rows whose column is at least `value`.
    pub fn ge(self, value: impl Into<T>) -> Filter<M> {
        self.compare(">=", value.into())
    }

    /// Rows whose column is one of `values` (none for an empty list); the values are bound,
    /// never written into the SQL.
    pub fn in_<V: Into<T>>(self, values: impl IntoIterator<Item = V>) -> Filter<M> {
        Filter::new(Node::In {
            column: self.name(),
            values: values
                .into_iter()
                .map(|v| Box::new(v.into()) as Box<dyn DynField>)
                .collect(),
        })
    }

    /// Rows whose column is NULL.
    pub fn is_null(self) -> Filter<M> {
        Filter::new(Node::Null {
            column: self.name(),
            negated: false,
        })
    }

    /// Rows whose column is not NULL.
    pub fn is_not_null(self) -> Filter<M> {
        Filter::new(Node::Null {
            column: self.name(),
            negated: true,
        })
    }

    /// Ascending order by this column, for [`Query::order_by`].
    pub fn asc(self) -> Order<M> {
        Order {
            column: self.name(),
            descending: false,
            _model: PhantomData,
        }
    }

    /// Descending order by this column, for [`Query::order_by`].
    pub fn desc(self) -> Order<M> {
        Order {
            column: self.name(),
            descending: true,
            _model: PhantomData,
        }
    }
}

impl Node {
    /// Appends the condition's SQL to `out` and binds its values, `params` counting the
    /// placeholders so far.
    fn write(
        &self,
        backend: Backend,
        out: &mut String,
        args: &mut Args,
        params: &mut usize,
    ) -> Result<()> {
        let mut placeholder = |out: &mut String| {
            *params += 1;
            backend.placeholder(out, *params);
        };
        match self {
            Node::Compare { column, op, value } => {
                backend.quote(out, column);
                out.push(' ');
                out.push_str(op);
                out.push(' ');
                placeholder(out);
                value.bind_to(args, column)?;
            }
            Node::Null { column, negated } => {
                backend.quote(out, column);
                out.push_str(if *negated { " IS NOT NULL" } else { " IS NULL" });
            }
            Node::In { column, values } if values.is_empty() => {
                let _ = column;
                out.push_str("1 = 0");
            }
            Node::In { column, values } => {
                backend.quote(out, column);
                out.push_str(" IN (");
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    placeholder(out);
                    value.bind_to(args, column)?;
                }
                out.push(')');
            }
            Node::All(nodes) | Node::Any(nodes) => {
                let joiner = if matches!(self, Node::All(_)) {
                    " AND "
                } else {
                    " OR "
                };
                out.push('(');
                for (i, node) in nodes.iter().enumerate() {
                    if i > 0 {
                        out.push_str(joiner);
                    }
                    node.write(backend, out, args, params)?;
                }
                out.push(')');
            }
            Node::Not(node) => {
                out.push_str("NOT (");
                node.write(backend, out, args, params)?;
                out.push(')');
            }
        }
        Ok(())
    }
}

/// An ordering of the rows of model `M`: `Post::VIEWS.desc()`.
pub struct Order<M> {
    column: &'static str,
    descending: bool,
    _model: PhantomData<fn() -> M>,
}

impl<M> fmt::Debug for Order<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = if self.descending { "DESC" } else { "ASC" };
        write!(f, "Order({} {direction})", self.column)
    }
}

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
    order: Vec<(&'static str, bool)>,
    limit: Option<u64>,
    offset: Option<u64>,
    _model: PhantomData<fn() -> M>,
}

impl<M> Default for Query<M> {
    fn default() -> Self {
        Query {
            filter: None,
            order: Vec::new(),
            limit: None,
            offset: None,
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

impl<M> Query<M> {
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
        self.order.push((order.column, order.descending));
        self
    }

    /// Returns at most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }

    /// The SQL text and arguments of the query on `backend`.
    pub(crate) fn sql(
        &self,
        meta: &ModelMeta,
        backend: Backend,
        shape: Shape,
    ) -> Result<(String, Args)> {
        let mut out = String::from("SELECT ");
        let windowed = self.limit.is_some() || self.offset.is_some();
        match shape {
            Shape::Rows => {
                for (i, column) in meta.columns.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    backend.quote(&mut out, column);
                }
            }
            Shape::Count if windowed => out.push_str("COUNT(*) FROM (SELECT 1 AS one"),
            Shape::Count => out.push_str("COUNT(*)"),
            Shape::Exists => out.push('1'),
        }
        out.push_str(" FROM ");
        backend.quote(&mut out, meta.table);
        let mut args = Args::new(backend, 4);
        if let Some(filter) = &self.filter {
            out.push_str(" WHERE ");
            filter.write(backend, &mut out, &mut args, &mut 0)?;
        }
        if shape == Shape::Rows || (shape == Shape::Count && windowed) {
            out.push_str(" ORDER BY ");
            if self.order.is_empty() {
                backend.quote(&mut out, meta.columns[meta.primary_key]);
            }
            for (i, (column, descending)) in self.order.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                backend.quote(&mut out, column);
                out.push_str(if *descending { " DESC" } else { " ASC" });
            }
        }
        let limit = if shape == Shape::Exists {
            Some(1)
        } else {
            self.limit
        };
        // Numbers of the caller's, written as numbers: no text of theirs reaches the SQL.
        match (limit, self.offset) {
            (Some(limit), None) => out.push_str(&format!(" LIMIT {limit}")),
            (Some(limit), Some(offset)) => {
                out.push_str(&format!(" LIMIT {limit} OFFSET {offset}"));
            }
            (None, Some(offset)) => out.push_str(&match backend {
                // MySQL has no OFFSET without LIMIT; SQLite takes -1 for "no limit".
                Backend::MySql => format!(" LIMIT 18446744073709551615 OFFSET {offset}"),
                Backend::Sqlite => format!(" LIMIT -1 OFFSET {offset}"),
                _ => format!(" OFFSET {offset}"),
            }),
            (None, None) => {}
        }
        if shape == Shape::Count && windowed {
            out.push_str(") AS counted");
        }
        Ok((out, args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Receivers;

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
            .map(|(sql, _)| sql)
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
