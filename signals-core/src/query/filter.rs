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
use crate::sql::Sql;
use crate::value::{BuiltinType, DynField, FieldType, SqlType};

use super::order::{Order, Term};
use super::text::Anchor;
pub use super::text::Text;

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
pub(crate) enum Node {
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
    /// `column` contains, starts with, ends with or is `text`; with `fold`, ignoring the case
    /// of ASCII letters (the same on every backend).
    Text {
        column: &'static str,
        text: String,
        at: Anchor,
        fold: bool,
    },
    /// `column IN (SELECT key FROM table WHERE ..)`: a reference whose row matches a query of
    /// the referenced model.
    InQuery {
        column: &'static str,
        table: &'static str,
        key: &'static str,
        filter: Option<Box<Node>>,
    },
    /// `EXISTS (SELECT 1 FROM table WHERE table.inner = outer_row.outer AND ..)`: a row of
    /// `table` related to the outer row (through a reference of either side) that matches
    /// `filter`.
    Related {
        outer: &'static str,
        table: &'static str,
        inner: &'static str,
        filter: Option<Box<Node>>,
    },
    /// The value at `path` inside the JSON of `column` passes `test` (false, not NULL, when
    /// it is missing or of another type).
    Json {
        column: &'static str,
        path: Vec<String>,
        test: super::json_path::Test,
    },
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    /// A condition built wrong, reported when the query runs.
    Invalid(String),
}

/// Whether values of `T` are decimals, which SQLite stores as exact text and which compare
/// and sort there as numbers (REAL, to about 15 significant digits), not as text.
/// Whether values of `T` are text, which MySQL's `PAD SPACE` collations compare with trailing
/// spaces ignored: grouped and compared byte for byte where the result must be the same on
/// every backend.
pub(super) fn is_text<T: FieldType>() -> bool {
    <T::Stored as BuiltinType>::SQL_TYPE == SqlType::Text
}

pub(super) fn numeric_text<T: FieldType>() -> bool {
    <T::Stored as BuiltinType>::SQL_TYPE == SqlType::Decimal
}

/// The column, as a number when `cast` (a decimal on SQLite).
pub(super) fn write_column(sql: &mut Sql, column: &str, cast: bool) {
    as_number(sql, cast, |sql| {
        sql.column(column);
    });
}

fn as_number(sql: &mut Sql, cast: bool, write: impl FnOnce(&mut Sql)) {
    if cast {
        sql.push("CAST(");
    }
    write(sql);
    if cast {
        sql.push(" AS REAL)");
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

    /// Rows with a related row of `table` (`table.inner = outer`, `outer` a column of
    /// `M`'s table) that `filter` matches, as `EXISTS`.
    pub(crate) fn related<R>(
        outer: &'static str,
        table: &'static str,
        inner: &'static str,
        filter: Option<Filter<R>>,
    ) -> Filter<M> {
        Filter::new(Node::Related {
            outer,
            table,
            inner,
            filter: filter.map(|f| Box::new(f.node)),
        })
    }

    /// A condition built wrong, reported when the query runs.
    pub(crate) fn invalid(reason: String) -> Self {
        Filter::new(Node::Invalid(reason))
    }

    pub(super) fn new(node: Node) -> Self {
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
        let mut sql = Sql::new(Backend::Sqlite);
        sql.scope_of("?", false);
        let _ = self.node.write(&mut sql);
        f.debug_tuple("Filter").field(&sql.text()).finish()
    }
}

/// The conditions on a column, from the column constants the derive generates.
impl<M, T: FieldType, R> Column<M, T, R> {
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
        Order::new(Term {
            column: self.name(),
            descending: false,
            numeric_text: numeric_text::<T>(),
            binary: None,
            via: Vec::new(),
            expr: None,
        })
    }

    /// Descending order by this column, for [`Query::order_by`].
    pub fn desc(self) -> Order<M> {
        Order::new(Term {
            column: self.name(),
            descending: true,
            numeric_text: numeric_text::<T>(),
            binary: None,
            via: Vec::new(),
            expr: None,
        })
    }
}

impl Node {
    /// Appends the condition's SQL and binds its values.
    pub(super) fn write(&self, sql: &mut Sql) -> Result<()> {
        let backend = sql.backend();
        match self {
            // PostgreSQL text cannot hold NUL: no value there equals (or differs from, but
            // for NULL) a text with one; an order against one would be the server's guess.
            Node::Compare {
                column, op, value, ..
            } if backend == Backend::Postgres && value.is_text_with_nul() => {
                sql.push("(").column(column);
                match *op {
                    "=" => sql.push(" IS NULL AND NULL)"),
                    "<>" => sql.push(" IS NOT NULL OR NULL)"),
                    _ => {
                        return Err(crate::error::Error::InvalidQuery(format!(
                            "`{column}` is compared ({op}) with a text holding NUL (U+0000), \
                             which PostgreSQL text cannot hold"
                        )));
                    }
                };
            }
            Node::Compare {
                column,
                op,
                value,
                numeric_text,
            } => {
                let cast = *numeric_text && backend == Backend::Sqlite;
                write_column(sql, column, cast);
                sql.push(" ").push(op).push(" ");
                let mut bound = Ok(());
                as_number(sql, cast, |sql| {
                    bound = sql.bind_dyn(value.as_ref(), column)
                });
                bound?;
            }
            Node::Null { column, negated } => {
                sql.column(column)
                    .push(if *negated { " IS NOT NULL" } else { " IS NULL" });
            }
            Node::In {
                column,
                values,
                numeric_text,
            } => {
                // A text with NUL matches no PostgreSQL value (its text cannot hold one).
                let storable =
                    |v: &dyn DynField| backend != Backend::Postgres || !v.is_text_with_nul();
                if !values.iter().any(|v| storable(v.as_ref())) {
                    sql.push("1 = 0");
                    return Ok(());
                }
                let cast = *numeric_text && backend == Backend::Sqlite;
                write_column(sql, column, cast);
                sql.push(" IN (");
                let storable = values.iter().filter(|v| storable(v.as_ref()));
                sql.list(storable, |sql, value| {
                    let mut bound = Ok(());
                    as_number(sql, cast, |sql| {
                        bound = sql.bind_dyn(value.as_ref(), column)
                    });
                    bound
                })?;
                sql.push(")");
            }
            Node::Text {
                column,
                text,
                at,
                fold,
            } => at.write(sql, column, text, *fold)?,
            Node::InQuery {
                column,
                table,
                key,
                filter,
            } => {
                // The key bare in the select list: only the subquery's table is in scope
                // there.
                sql.column(column)
                    .push(" IN (SELECT ")
                    .ident(key)
                    .push(" FROM ");
                let outer = sql.enter(table);
                // No NULL in the list: `NOT IN` a list with one is never true.
                sql.push(" WHERE ").column(key).push(" IS NOT NULL");
                if let Some(filter) = filter {
                    sql.push(" AND ");
                    filter.write(sql)?;
                }
                sql.leave(outer);
                sql.push(")");
            }
            Node::Related {
                outer,
                table,
                inner,
                filter,
            } => {
                correlated(
                    sql,
                    "EXISTS (SELECT 1",
                    outer,
                    table,
                    inner,
                    filter.as_deref(),
                )?;
            }
            Node::Json { column, path, test } => {
                // Two-valued, so that `!` matches the rows without the value.
                sql.push("COALESCE(");
                super::json_path::write(sql, column, path, test)?;
                sql.push(", FALSE)");
            }
            Node::All(nodes) | Node::Any(nodes) => {
                let joiner = if matches!(self, Node::All(_)) {
                    " AND "
                } else {
                    " OR "
                };
                sql.push("(");
                for (i, node) in nodes.iter().enumerate() {
                    if i > 0 {
                        sql.push(joiner);
                    }
                    node.write(sql)?;
                }
                sql.push(")");
            }
            Node::Invalid(reason) => {
                return Err(crate::error::Error::InvalidQuery(reason.clone()));
            }
            Node::Not(node) => {
                sql.push("NOT (");
                node.write(sql)?;
                sql.push(")");
            }
        }
        Ok(())
    }
}

/// Writes `{select} FROM table WHERE table.inner = outer_row.outer [AND filter])`: a subquery
/// of the rows of `table` related to the outer row (`EXISTS (SELECT 1`, `(SELECT COUNT(*)`), its
/// table under an alias of its own, so that it may be the outer row's table too.
pub(super) fn correlated(
    sql: &mut Sql,
    select: &str,
    outer: &'static str,
    table: &'static str,
    inner: &'static str,
    filter: Option<&Node>,
) -> Result<()> {
    let outer_scope = sql.scope();
    sql.push(select).push(" FROM ");
    let saved = sql.enter(table);
    sql.push(" WHERE ")
        .column(inner)
        .push(" = ")
        .column_of(outer_scope, outer);
    if let Some(filter) = filter {
        sql.push(" AND ");
        filter.write(sql)?;
    }
    sql.leave(saved);
    sql.push(")");
    Ok(())
}

/// Text conditions, case-sensitive on every backend (Django's `contains`, `startswith`,
/// `endswith`, which on SQLite ignore case: here they never do). The text is matched as it is:
/// `%`, `_`, `\` and the like are not wildcards, in every MySQL `sql_mode`
/// (`NO_BACKSLASH_ESCAPES` and `ANSI` included), and a NUL character is a character like
/// any other (PostgreSQL text cannot hold one, so there no value holds a text with NUL).
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
impl<M, T: Text, R> Column<M, T, R> {
    fn text(self, text: impl Into<String>, at: Anchor) -> Filter<M> {
        Filter::new(Node::Text {
            column: self.name(),
            text: text.into(),
            at,
            fold: false,
        })
    }

    fn folded(self, text: impl Into<String>, at: Anchor) -> Filter<M> {
        Filter::new(Node::Text {
            column: self.name(),
            text: text.into(),
            at,
            fold: true,
        })
    }

    /// Rows whose text is `text`, ignoring the case of ASCII letters (Django's `iexact`):
    /// see [the case-insensitive lookups](Self::icontains).
    pub fn iexact(self, text: impl Into<String>) -> Filter<M> {
        self.folded(text, Anchor::Exact)
    }

    /// Rows whose text contains `text`, ignoring case (Django's `icontains`).
    ///
    /// "Ignoring case" means the ASCII letters: `A`–`Z` match `a`–`z`, and every other
    /// character matches only itself (`É` is not `é`, `ß` is not `SS`), on every backend and
    /// whatever the database's locale or the column's collation, so a query finds the same
    /// rows on SQLite (whose `lower` folds ASCII only), PostgreSQL and MySQL/MariaDB. As with
    /// [`contains`](Self::contains), `%` and `_` are no wildcards.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Post { id: Option<i64>, title: String }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<Post>().await?;
    /// for title in ["Rust in 100% safe code", "RUST notes", "Trusty", "Éclair"] {
    ///     Post { id: None, title: title.into() }.save(&db).await?;
    /// }
    /// assert_eq!(Post::query().filter(Post::TITLE.icontains("rust")).count(&db).await?, 3);
    /// assert_eq!(Post::query().filter(Post::TITLE.istartswith("rust")).count(&db).await?, 2);
    /// assert_eq!(Post::query().filter(Post::TITLE.iexact("rust NOTES")).count(&db).await?, 1);
    /// assert_eq!(Post::query().filter(Post::TITLE.iendswith("CODE")).count(&db).await?, 1);
    /// assert_eq!(Post::query().filter(Post::TITLE.icontains("éclair")).count(&db).await?, 0);
    /// let titles: Vec<String> = Post::query()
    ///     .order_by(Post::TITLE.asc_ignoring_case())
    ///     .all(&db)
    ///     .await?
    ///     .into_iter()
    ///     .map(|p| p.title)
    ///     .collect();
    /// assert_eq!(titles, ["Rust in 100% safe code", "RUST notes", "Trusty", "Éclair"]);
    /// # Ok(()) }
    /// ```
    pub fn icontains(self, text: impl Into<String>) -> Filter<M> {
        self.folded(text, Anchor::Anywhere)
    }

    /// Rows whose text starts with `text`, ignoring case (Django's `istartswith`): see
    /// [`icontains`](Self::icontains).
    pub fn istartswith(self, text: impl Into<String>) -> Filter<M> {
        self.folded(text, Anchor::Start)
    }

    /// Rows whose text ends with `text`, ignoring case (Django's `iendswith`): see
    /// [`icontains`](Self::icontains).
    pub fn iendswith(self, text: impl Into<String>) -> Filter<M> {
        self.folded(text, Anchor::End)
    }

    /// Ascending order by this text ignoring the case of ASCII letters, then by its code
    /// points: the same order on every backend, whatever the collations (see
    /// [`icontains`](Self::icontains)). Django's `order_by(Lower("title"))`.
    pub fn asc_ignoring_case(self) -> Order<M> {
        Order::text(self.name(), false, true)
    }

    /// Descending order by this text ignoring the case of ASCII letters: see
    /// [`asc_ignoring_case`](Self::asc_ignoring_case).
    pub fn desc_ignoring_case(self) -> Order<M> {
        Order::text(self.name(), true, true)
    }

    /// Ascending order by this text's code points (byte order in UTF-8), the same on every
    /// backend: [`asc`](Self::asc) follows the database's collation, which on PostgreSQL is
    /// its locale's (`B` before `a` in `C`, after it in `en_US`).
    pub fn asc_binary(self) -> Order<M> {
        Order::text(self.name(), false, false)
    }

    /// Descending order by this text's code points: see [`asc_binary`](Self::asc_binary).
    pub fn desc_binary(self) -> Order<M> {
        Order::text(self.name(), true, false)
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
