//! Conditions on a model's rows ([`Filter`]), built from its column constants, and orderings
//! ([`Order`]); each condition writes its own SQL.
//!
//! Uses `backend`, `error`, `value` and `meta`; `in_query` conditions take a [`Query`].

use std::fmt;
use std::marker::PhantomData;

use super::Query;
use crate::backend::Backend;
use crate::error::Result;
use crate::meta::Column;
use crate::value::{Args, BuiltinType, DynField, FieldType, SqlType};

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
    pub(super) node: Node,
    _model: PhantomData<fn() -> M>,
}

/// A condition with its model erased.
pub(super) enum Node {
    /// `column <op> value`.
    Compare {
        column: &'static str,
        op: &'static str,
        value: Box<dyn DynField>,
        /// Decimals, which SQLite stores as text: compared as numbers there.
        numeric_text: bool,
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
        numeric_text: bool,
    },
    /// `column` contains, starts with or ends with `text`, case-sensitively on every backend.
    Text {
        column: &'static str,
        text: String,
        at: Anchor,
    },
    /// `column IN (SELECT key FROM table WHERE ..)`: a reference whose row matches a query of
    /// the referenced model.
    InQuery {
        column: &'static str,
        table: &'static str,
        key: &'static str,
        filter: Option<Box<Node>>,
    },
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    /// A condition built wrong, reported when the query runs.
    Invalid(String),
}

/// Whether values of `T` are decimals, which SQLite stores as exact text and which compare
/// and sort there as numbers (REAL, to about 15 significant digits), not as text.
fn numeric_text<T: FieldType>() -> bool {
    <T::Stored as BuiltinType>::SQL_TYPE == SqlType::Decimal
}

/// The column, as a number when `cast` (a decimal on SQLite).
pub(super) fn write_column(backend: Backend, out: &mut String, column: &str, cast: bool) {
    as_number(out, cast, |out| backend.quote(out, column));
}

fn as_number(out: &mut String, cast: bool, write: impl FnOnce(&mut String)) {
    if cast {
        out.push_str("CAST(");
    }
    write(out);
    if cast {
        out.push_str(" AS REAL)");
    }
}

/// Where a text must stand in a column's value.
#[derive(Clone, Copy)]
pub(super) enum Anchor {
    Anywhere,
    Start,
    End,
}

impl Anchor {
    /// The pattern matching `text` here: a `LIKE` pattern (`%` and `_` escaped with `\`, the
    /// default escape character of PostgreSQL and MySQL), or on SQLite, whose `LIKE` ignores
    /// case, a case-sensitive `GLOB` pattern (`*`, `?` and `[` escaped in brackets).
    fn pattern(self, text: &str, backend: Backend) -> String {
        let (any, mut out) = if backend == Backend::Sqlite {
            ('*', String::new())
        } else {
            ('%', String::new())
        };
        if matches!(self, Anchor::Anywhere | Anchor::End) {
            out.push(any);
        }
        for c in text.chars() {
            match (backend, c) {
                (Backend::Sqlite, '*' | '?' | '[') => {
                    out.push('[');
                    out.push(c);
                    out.push(']');
                }
                (Backend::Sqlite, c) => out.push(c),
                (_, '%' | '_' | '\\') => {
                    out.push('\\');
                    out.push(c);
                }
                (_, c) => out.push(c),
            }
        }
        if matches!(self, Anchor::Anywhere | Anchor::Start) {
            out.push(any);
        }
        out
    }
}

/// A field type holding text, for the text conditions ([`Column::contains`] and others).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not text",
    label = "text conditions need a column stored as text: `String`, a newtype of it, a text enum, or an `Option` of one"
)]
pub trait Text: FieldType {}
impl<T: FieldType> Text for T where T::Stored: text::StoredAsText {}

mod text {
    #[diagnostic::on_unimplemented(message = "`{Self}` is not stored as text")]
    /// The built-in types holding text.
    pub trait StoredAsText {}
    impl StoredAsText for String {}
    impl StoredAsText for Option<String> {}
}

/// Text conditions, case-sensitive on every backend (Django's `contains`, `startswith`,
/// `endswith`, which on SQLite ignore case: here they never do). The text is matched as it is:
/// `%`, `_` and the like are not wildcards.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Db, Model};
///
/// #[derive(Model)]
/// struct Post { id: Option<i64>, title: String }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE post (id INTEGER PRIMARY KEY, title TEXT NOT NULL)").await?;
/// for title in ["Rust in 100% safe code", "rust notes", "Trusty"] {
///     Post { id: None, title: title.into() }.save(&db).await?;
/// }
/// assert_eq!(Post::query().filter(Post::TITLE.contains("ust")).count(&db).await?, 3);
/// assert_eq!(Post::query().filter(Post::TITLE.starts_with("Rust")).count(&db).await?, 1);
/// assert_eq!(Post::query().filter(Post::TITLE.contains("100%")).count(&db).await?, 1);
/// assert_eq!(Post::query().filter(Post::TITLE.ends_with("y")).count(&db).await?, 1);
/// # Ok(()) }
/// ```
impl<M, T: Text> Column<M, T> {
    fn text(self, text: impl Into<String>, at: Anchor) -> Filter<M> {
        Filter::new(Node::Text {
            column: self.name(),
            text: text.into(),
            at,
        })
    }

    /// Rows whose text contains `text`.
    pub fn contains(self, text: impl Into<String>) -> Filter<M> {
        self.text(text, Anchor::Anywhere)
    }

    /// Rows whose text starts with `text`.
    pub fn starts_with(self, text: impl Into<String>) -> Filter<M> {
        self.text(text, Anchor::Start)
    }

    /// Rows whose text ends with `text`.
    pub fn ends_with(self, text: impl Into<String>) -> Filter<M> {
        self.text(text, Anchor::End)
    }
}

impl<M> Filter<M> {
    /// `column` names a row of the table `table` (key column `key`) that `query` matches; a
    /// query with an ordering or a window is refused (MySQL takes none in such a subquery).
    pub(crate) fn in_query<P>(
        column: &'static str,
        table: &'static str,
        key: &'static str,
        query: Query<P>,
    ) -> Filter<M> {
        if !query.order.is_empty() || query.limit.is_some() || query.offset.is_some() {
            return Filter::new(Node::Invalid(format!(
                "the query of `{table}` inside `in_query` takes conditions only: drop \
                 `order_by`, `limit` and `offset`"
            )));
        }
        Filter::new(Node::InQuery {
            column,
            table,
            key,
            filter: query.filter.map(Box::new),
        })
    }

    /// A condition built wrong, reported when the query runs.
    pub(crate) fn invalid(reason: String) -> Self {
        Filter::new(Node::Invalid(reason))
    }

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
            numeric_text: numeric_text::<T>(),
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
            numeric_text: numeric_text::<T>(),
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
            numeric_text: numeric_text::<T>(),
            _model: PhantomData,
        }
    }

    /// Descending order by this column, for [`Query::order_by`].
    pub fn desc(self) -> Order<M> {
        Order {
            column: self.name(),
            descending: true,
            numeric_text: numeric_text::<T>(),
            _model: PhantomData,
        }
    }
}

impl Node {
    /// Appends the condition's SQL to `out` and binds its values, `params` counting the
    /// placeholders so far.
    pub(super) fn write(
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
            Node::Compare {
                column,
                op,
                value,
                numeric_text,
            } => {
                let cast = *numeric_text && backend == Backend::Sqlite;
                write_column(backend, out, column, cast);
                out.push(' ');
                out.push_str(op);
                out.push(' ');
                as_number(out, cast, |out| placeholder(out));
                value.bind_to(args, column)?;
            }
            Node::Null { column, negated } => {
                backend.quote(out, column);
                out.push_str(if *negated { " IS NOT NULL" } else { " IS NULL" });
            }
            Node::In { values, .. } if values.is_empty() => {
                out.push_str("1 = 0");
            }
            Node::In {
                column,
                values,
                numeric_text,
            } => {
                let cast = *numeric_text && backend == Backend::Sqlite;
                write_column(backend, out, column, cast);
                out.push_str(" IN (");
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    as_number(out, cast, |out| placeholder(out));
                    value.bind_to(args, column)?;
                }
                out.push(')');
            }
            Node::Text { column, text, at } => {
                backend.quote(out, column);
                out.push_str(match backend {
                    Backend::Sqlite => " GLOB ",
                    Backend::MySql => " LIKE BINARY ",
                    _ => " LIKE ",
                });
                placeholder(out);
                args.bind(&at.pattern(text, backend), column)?;
            }
            Node::InQuery {
                column,
                table,
                key,
                filter,
            } => {
                backend.quote(out, column);
                out.push_str(" IN (SELECT ");
                backend.quote(out, key);
                out.push_str(" FROM ");
                backend.quote(out, table);
                if let Some(filter) = filter {
                    out.push_str(" WHERE ");
                    filter.write(backend, out, args, params)?;
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
            Node::Invalid(reason) => {
                return Err(crate::error::Error::InvalidQuery(reason.clone()));
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
    pub(super) column: &'static str,
    pub(super) descending: bool,
    pub(super) numeric_text: bool,
    _model: PhantomData<fn() -> M>,
}

impl<M> fmt::Debug for Order<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = if self.descending { "DESC" } else { "ASC" };
        write!(f, "Order({} {direction})", self.column)
    }
}
