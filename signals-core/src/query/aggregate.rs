//! Aggregates over a query's rows ([`Aggregate`]: count, sum, average, least, greatest, and
//! counts of related rows) and what a query selects instead of whole models ([`Selection`]:
//! columns and aggregates, alone or in tuples), each writing its own SQL and reading its own
//! value back.
//!
//! Uses `backend`, `error`, `sql`, `value` and `meta`.

use std::fmt;
use std::marker::PhantomData;

use super::filter::{Filter, Node, correlated, is_text, numeric_text, write_column};
use super::order::{Expression, Order, Term};
use super::text::write_binary;
use crate::backend::Backend;
use crate::error::Result;
use crate::meta::Column;
use crate::sql::Sql;
use crate::value::{FieldType, Row};

/// A value computed from a query's rows of model `M`, read back as `O`: `Post::VIEWS.sum()`,
/// `Post::ID.count()`, `Comment::POST_ID.related_count()`. Select it with
/// [`Query::aggregate`](crate::Query::aggregate) (over all the rows),
/// [`Query::values`](crate::Query::values) (per group of the columns selected with it) or
/// [`Query::annotate`](crate::Query::annotate) (related counts, per row); order by it with
/// [`asc`](Self::asc) and [`desc`](Self::desc).
///
/// Sums of integers are `i64`, of floats `f64` and of decimals `Decimal`; averages are `f64`;
/// least and greatest values have the column's type. Each is `None` over no rows (a count is
/// 0), as in SQL and Django. On SQLite, which stores decimals as text, they are summed,
/// averaged and compared as REAL numbers: sums and extremes of decimals come back rounded to
/// 15 significant digits, and where large values nearly cancel, the digits REAL lost show
/// (`1000000.01 + -1000000.00` is `0.0100000000093132` there): sum money in cents, or in
/// Rust, when SQLite must be exact.
pub struct Aggregate<M, O> {
    pub(super) expr: Expr,
    _marker: PhantomData<fn() -> (M, O)>,
}

impl<M, O> fmt::Debug for Aggregate<M, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Aggregate").field(&self.expr).finish()
    }
}

/// An aggregate with its model erased.
pub(crate) enum Expr {
    /// `FUNC([DISTINCT] column)`.
    Func {
        func: Func,
        column: &'static str,
        numeric_text: bool,
        /// Text: compared byte for byte (distinct values, least and greatest).
        text: bool,
    },
    /// `(SELECT COUNT(*) FROM table WHERE table.inner = outer_row.outer AND ..)`.
    Related {
        outer: &'static str,
        table: &'static str,
        inner: &'static str,
        filter: Option<Box<Node>>,
    },
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sql = Sql::new(Backend::Sqlite);
        sql.scope_of("?", false);
        let _ = self.write(&mut sql);
        f.write_str(sql.text())
    }
}

/// An aggregate function, with what its result is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Count,
    CountDistinct,
    Sum(Kind),
    Avg,
    Min,
    Max,
}

/// What a sum adds up.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Float,
    Decimal,
}

impl Expr {
    /// Whether it aggregates the query's own rows (so other selected columns group them),
    /// rather than related rows, per row.
    pub(super) fn groups(&self) -> bool {
        matches!(self, Expr::Func { .. })
    }

    pub(super) fn write(&self, sql: &mut Sql) -> Result<()> {
        let backend = sql.backend();
        match self {
            Expr::Func {
                func,
                column,
                text: true,
                ..
            } if matches!(func, Func::CountDistinct | Func::Min | Func::Max) => {
                // Byte for byte (MySQL's `PAD SPACE` would take `a` and `a ` for one value,
                // PostgreSQL's locale would order by its collation).
                let mysql = backend == Backend::MySql && *func != Func::CountDistinct;
                if mysql {
                    sql.push("CONVERT(");
                }
                sql.push(match func {
                    Func::CountDistinct => "COUNT(DISTINCT ",
                    Func::Min => "MIN(",
                    _ => "MAX(",
                });
                write_binary(sql, column, false);
                sql.push(")");
                if mysql {
                    sql.push(" USING utf8mb4)");
                }
            }
            Expr::Func {
                func,
                column,
                numeric_text,
                ..
            } => {
                // Decimals are text on SQLite: numbers there only as REAL.
                let real = *numeric_text && backend == Backend::Sqlite;
                let (open, close) = match (func, backend) {
                    (Func::Count, _) => ("COUNT(", ")"),
                    (Func::CountDistinct, _) => ("COUNT(DISTINCT ", ")"),
                    // PostgreSQL sums integers as NUMERIC (a cast past BIGINT fails); MySQL's
                    // DECIMAL is read as an integer, refused when it does not fit (its cast
                    // to SIGNED would saturate with a mere warning).
                    (Func::Sum(Kind::Integer), Backend::Postgres) => ("CAST(SUM(", ") AS BIGINT)"),
                    #[cfg(not(feature = "decimal"))]
                    (Func::Sum(Kind::Integer), Backend::MySql) => ("CAST(SUM(", ") AS SIGNED)"),
                    // PostgreSQL adds REAL (f32) values as REAL: each as a double first.
                    (Func::Sum(Kind::Float), Backend::Postgres) => {
                        ("SUM(CAST(", " AS DOUBLE PRECISION))")
                    }
                    (Func::Sum(_), _) => ("SUM(", ")"),
                    (Func::Avg, Backend::Postgres) => ("CAST(AVG(", ") AS DOUBLE PRECISION)"),
                    (Func::Avg, Backend::MySql) => ("CAST(AVG(", ") AS DOUBLE)"),
                    (Func::Avg, Backend::Sqlite) => ("AVG(", ")"),
                    (Func::Min, _) => ("MIN(", ")"),
                    (Func::Max, _) => ("MAX(", ")"),
                };
                let cast = real && !matches!(func, Func::Count | Func::CountDistinct);
                let write = |sql: &mut Sql| {
                    sql.push(open);
                    write_column(sql, column, cast);
                    sql.push(close);
                };
                if cast && func != &Func::Avg {
                    // A decimal again, as text of the 15 significant digits REAL holds, which
                    // reads back exactly (`10.25 + 0.1` is `10.35`, not `10.350000000000001`).
                    sql.push("iif(");
                    write(sql);
                    sql.push(" IS NULL, NULL, printf('%.15g', ");
                    write(sql);
                    sql.push("))");
                } else {
                    write(sql);
                }
            }
            Expr::Related {
                outer,
                table,
                inner,
                filter,
            } => {
                correlated(
                    sql,
                    "(SELECT COUNT(*)",
                    outer,
                    table,
                    inner,
                    filter.as_deref(),
                )?;
            }
        }
        Ok(())
    }
}

impl Expression for Expr {
    fn write(&self, sql: &mut Sql) -> Result<()> {
        Expr::write(self, sql)
    }

    fn groups(&self) -> bool {
        Expr::groups(self)
    }
}

impl<M, O> Aggregate<M, O> {
    fn func(func: Func, column: &'static str, numeric_text: bool, text: bool) -> Self {
        Aggregate {
            expr: Expr::Func {
                func,
                column,
                numeric_text,
                text,
            },
            _marker: PhantomData,
        }
    }

    /// The number of rows of `table` whose `inner` column holds the outer row's `outer`
    /// column, among those `filter` matches.
    pub(crate) fn related<C>(
        outer: &'static str,
        table: &'static str,
        inner: &'static str,
        filter: Option<Filter<C>>,
    ) -> Self {
        Aggregate {
            expr: Expr::Related {
                outer,
                table,
                inner,
                filter: filter.map(|f| Box::new(f.node)),
            },
            _marker: PhantomData,
        }
    }

    /// Ascending order by the aggregate's value (NULL first on SQLite and MySQL, last on
    /// PostgreSQL, as plain [`Column::asc`]).
    pub fn asc(self) -> Order<M> {
        self.order(false)
    }

    /// Descending order by the aggregate's value.
    pub fn desc(self) -> Order<M> {
        self.order(true)
    }

    fn order(self, descending: bool) -> Order<M> {
        Order::new(Term {
            column: "",
            descending,
            numeric_text: false,
            binary: None,
            via: Vec::new(),
            expr: Some(Box::new(self.expr)),
        })
    }
}

/// The aggregates of any column.
impl<M, T: FieldType, R> Column<M, T, R> {
    /// How many rows have a value (not NULL) in this column: Django's `Count("column")`.
    /// Count the rows themselves with the primary key (`Post::ID.count()`).
    pub fn count(self) -> Aggregate<M, i64> {
        Aggregate::func(Func::Count, self.name(), false, false)
    }

    /// How many distinct values (NULL aside) the column holds: `Count("column",
    /// distinct=True)`.
    pub fn count_distinct(self) -> Aggregate<M, i64> {
        Aggregate::func(Func::CountDistinct, self.name(), false, is_text::<T>())
    }
}

/// A numeric column that can be summed, and what its sum is read as: `i64` for integers,
/// `f64` for floats, `Decimal` for decimals (each an `Option`: no rows sum to NULL).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be summed or averaged",
    label = "`sum` and `avg` need a numeric column (an integer, f32, f64, Decimal, or an Option of one)"
)]
pub trait Summable: FieldType {
    /// The sum's type.
    type Sum: FieldType;
    #[doc(hidden)]
    const KIND: Kind;
}

macro_rules! summable {
    ($sum:ty, $kind:ident: $($ty:ty),*) => {$(
        impl Summable for $ty {
            type Sum = Option<$sum>;
            const KIND: Kind = Kind::$kind;
        }
        impl Summable for Option<$ty> {
            type Sum = Option<$sum>;
            const KIND: Kind = Kind::$kind;
        }
    )*};
}
summable!(i64, Integer: i8, i16, i32, i64, u8, u16, u32);
summable!(f64, Float: f32, f64);
#[cfg(feature = "decimal")]
summable!(rust_decimal::Decimal, Decimal: rust_decimal::Decimal);

/// Sums and averages of numeric columns.
impl<M, T: FieldType, R> Column<M, T, R> {
    /// The sum of the column's values (NULLs aside): Django's `Sum("column")`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Post { id: Option<i64>, status: String, views: i32 }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<Post>().await?;
    /// for (status, views) in [("draft", 3), ("published", 50), ("published", 7)] {
    ///     Post { id: None, status: status.into(), views }.save(&db).await?;
    /// }
    /// let (total, average, most) = Post::query()
    ///     .aggregate(&db, (Post::VIEWS.sum(), Post::VIEWS.avg(), Post::VIEWS.max()))
    ///     .await?;
    /// assert_eq!((total, average, most), (Some(60), Some(20.0), Some(50)));
    /// // Per status, most viewed first: `values("status").annotate(Sum("views"))`.
    /// let per_status: Vec<(String, Option<i64>)> = Post::query()
    ///     .order_by(Post::VIEWS.sum().desc())
    ///     .values((Post::STATUS, Post::VIEWS.sum()))
    ///     .all(&db)
    ///     .await?;
    /// assert_eq!(per_status, [("published".to_owned(), Some(57)), ("draft".to_owned(), Some(3))]);
    /// # Ok(()) }
    /// ```
    pub fn sum<O>(self) -> Aggregate<M, O>
    where
        T: Summable<Sum = O>,
    {
        Aggregate::func(Func::Sum(T::KIND), self.name(), numeric_text::<T>(), false)
    }

    /// The average of the column's values (NULLs aside), as `f64`: Django's `Avg("column")`.
    pub fn avg<O>(self) -> Aggregate<M, Option<f64>>
    where
        T: Summable<Sum = O>,
    {
        Aggregate::func(Func::Avg, self.name(), numeric_text::<T>(), false)
    }
}

/// A column whose values have an order every backend agrees on, for `min` and `max`, and the
/// type of its least and greatest value (`Option` of the column's: no rows have none).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no least or greatest value on every backend",
    label = "`min` and `max` need a column of numbers, text, decimals, dates or times (or an Option of one)"
)]
pub trait Ordered: FieldType {
    /// The least or greatest value's type.
    type Extreme: FieldType;
}
impl<T: FieldType> Ordered for T
where
    T::Stored: sealed::OrderedStored,
    Option<T>: FieldType,
{
    type Extreme = Option<T>;
}
impl<T: FieldType> Ordered for Option<T>
where
    T::Stored: sealed::OrderedStored,
    Option<T>: FieldType,
{
    type Extreme = Option<T>;
}

mod sealed {
    /// The built-in types whose least and greatest values every backend computes (not `bool`,
    /// UUIDs, bytes or JSON: PostgreSQL has no `min` of those).
    #[diagnostic::on_unimplemented(
        message = "a column stored as `{Self}` has no least or greatest value on every backend",
        label = "`min` and `max` need a column of numbers, text, decimals, dates or times (or an Option of one)"
    )]
    pub trait OrderedStored {}
    macro_rules! ordered {
        ($($ty:ty),*) => {$( impl OrderedStored for $ty {} )*};
    }
    ordered!(i8, i16, i32, i64, u8, u16, u32, f32, f64, String);
    ordered!(
        chrono::NaiveDate,
        chrono::NaiveTime,
        chrono::NaiveDateTime,
        chrono::DateTime<chrono::Utc>
    );
    #[cfg(feature = "decimal")]
    ordered!(rust_decimal::Decimal);
}

/// Least and greatest values.
impl<M, T: FieldType, R> Column<M, T, R> {
    /// The column's least value (NULLs aside): Django's `Min("column")`.
    pub fn min<O>(self) -> Aggregate<M, O>
    where
        T: Ordered<Extreme = O>,
    {
        Aggregate::func(Func::Min, self.name(), numeric_text::<T>(), is_text::<T>())
    }

    /// The column's greatest value (NULLs aside): Django's `Max("column")`.
    pub fn max<O>(self) -> Aggregate<M, O>
    where
        T: Ordered<Extreme = O>,
    {
        Aggregate::func(Func::Max, self.name(), numeric_text::<T>(), is_text::<T>())
    }
}

/// The values a selection writes, in order.
#[doc(hidden)]
#[derive(Default)]
pub struct Items(pub(crate) Vec<Item>);

/// One selected value, its model erased.
pub(crate) enum Item {
    /// A column, and whether it holds text.
    Column(&'static str, bool),
    Aggregate(Expr),
}

impl Item {
    pub(super) fn write(&self, sql: &mut Sql) -> Result<()> {
        match self {
            Item::Column(column, _) => {
                sql.column(column);
                Ok(())
            }
            Item::Aggregate(expr) => expr.write(sql),
        }
    }

    /// Whether the item groups the rows (an aggregate of the query's own rows).
    pub(super) fn groups(&self) -> bool {
        matches!(self, Item::Aggregate(expr) if expr.groups())
    }

    /// Whether the item is a value per row computed from related rows (a related count).
    pub(super) fn per_row(&self) -> bool {
        matches!(self, Item::Aggregate(expr) if !expr.groups())
    }
}

/// What a query selects instead of whole models: a column of `M` (read as its field type), an
/// [`Aggregate`], or a tuple of them (read as a tuple, up to 8): `(Post::STATUS,
/// Post::VIEWS.sum())` reads `(String, Option<i64>)`. A column of another model does not
/// compile.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be selected from a query of `{M}`",
    label = "select columns of `{M}`, aggregates of them, or a tuple of them"
)]
pub trait Selection<M>: Send {
    /// What each row is read as.
    type Out: Send + 'static;
    #[doc(hidden)]
    fn __items(self, items: &mut Items);
    #[doc(hidden)]
    fn __read(row: &Row<'_>, at: &mut usize) -> Result<Self::Out>;
}

impl<M, T: FieldType, R> Selection<M> for Column<M, T, R> {
    type Out = T;
    fn __items(self, items: &mut Items) {
        items.0.push(Item::Column(self.name(), is_text::<T>()));
    }
    #[inline]
    fn __read(row: &Row<'_>, at: &mut usize) -> Result<T> {
        *at += 1;
        T::__read(row, *at - 1, "a selection", "a selected column")
    }
}

impl<M, O: FieldType> Selection<M> for Aggregate<M, O> {
    type Out = O;
    fn __items(self, items: &mut Items) {
        items.0.push(Item::Aggregate(self.expr));
    }
    #[inline]
    fn __read(row: &Row<'_>, at: &mut usize) -> Result<O> {
        *at += 1;
        O::__read(row, *at - 1, "a selection", "an aggregate")
    }
}

macro_rules! tuple_selections {
    ($(($($t:ident $v:ident),+))*) => {$(
        impl<M, $($t: Selection<M>),+> Selection<M> for ($($t,)+) {
            type Out = ($($t::Out,)+);
            fn __items(self, items: &mut Items) {
                let ($($v,)+) = self;
                $($v.__items(items);)+
            }
            #[inline]
            fn __read(row: &Row<'_>, at: &mut usize) -> Result<Self::Out> {
                Ok(($($t::__read(row, at)?,)+))
            }
        }
    )*};
}

tuple_selections! {
    (A a)
    (A a, B b)
    (A a, B b, C c)
    (A a, B b, C c, D d)
    (A a, B b, C c, D d, E e)
    (A a, B b, C c, D d, E e, F f)
    (A a, B b, C c, D d, E e, F f, G g)
    (A a, B b, C c, D d, E e, F f, G g, H h)
}
