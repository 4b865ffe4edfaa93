//! Rows read from any backend, decoded field by field.
//!
//! Uses `error` and the field types of `value`.

use sqlx::mysql::MySqlRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Type, ValueRef as _};

use super::BuiltinType;
use super::sqlite::{self, SqlRef};
use crate::error::{Error, Result};

/// A row read from any backend; generated `__from_row` code reads fields by position.
#[doc(hidden)]
pub enum Row<'r> {
    Sqlite(&'r SqliteRow),
    /// A row read on a transaction's own SQLite handle.
    SqliteRaw(&'r rusqlite::Row<'r>),
    Postgres(&'r PgRow),
    MySql(&'r MySqlRow),
    /// A row whose columns are not in the model's order (a query of the user's own, read
    /// through `sqlx::FromRow`): field `i` is the row's column `ordinals[i]`.
    Mapped(&'r Row<'r>, &'r [usize]),
    /// Columns after the first `n` of a row (a joined model's): field `i` is the row's column
    /// `n + i`.
    Offset(&'r Row<'r>, usize),
}

impl Row<'_> {
    /// Reads column `index`, naming `model.column` in the error.
    #[inline]
    pub fn get<T: BuiltinType>(
        &self,
        index: usize,
        model: &'static str,
        column: &'static str,
    ) -> Result<T> {
        if let Row::Mapped(row, ordinals) = self {
            let ordinal = ordinals.get(index).copied().unwrap_or(index);
            return row.get(ordinal, model, column);
        }
        if let Row::Offset(row, n) = self {
            return row.get(n + index, model, column);
        }
        let res = match self {
            // SQLite values go through one decoder whichever way the row was read, so a row
            // reads the same inside a transaction (on the handle) and outside it (via sqlx).
            Row::Sqlite(r) => sqlite::from_sqlx_row(r, index).and_then(read_sqlite),
            Row::SqliteRaw(r) => sqlite::from_raw_row(r, index).and_then(read_sqlite),
            Row::Postgres(r) => read_sqlx(*r, index),
            Row::MySql(r) => read_sqlx(*r, index),
            Row::Mapped(..) | Row::Offset(..) => unreachable!("handled above"),
        };
        res.map_err(|source| Error::Decode {
            model,
            column,
            source,
        })
    }
}

impl Row<'_> {
    /// The ordinal of the column named `name`, if the row has one.
    pub(crate) fn ordinal_of(&self, name: &str) -> Option<usize> {
        use sqlx::Row as _;
        match self {
            Row::Sqlite(r) => r.try_column(name).ok().map(sqlx::Column::ordinal),
            Row::SqliteRaw(r) => r.as_ref().column_index(name).ok(),
            Row::Postgres(r) => r.try_column(name).ok().map(sqlx::Column::ordinal),
            Row::MySql(r) => r.try_column(name).ok().map(sqlx::Column::ordinal),
            Row::Mapped(row, _) => row.ordinal_of(name),
            Row::Offset(row, n) => row.ordinal_of(name).and_then(|o| o.checked_sub(*n)),
        }
    }

    /// Whether field types with a read of their own (integers) must use it on this row:
    /// PostgreSQL's, whose integer types are strict, and MySQL's, whose UNSIGNED columns
    /// sqlx's signed integers refuse.
    pub(crate) fn needs_own_read(&self) -> bool {
        match self {
            Row::Postgres(_) | Row::MySql(_) => true,
            Row::Mapped(row, _) | Row::Offset(row, _) => row.needs_own_read(),
            _ => false,
        }
    }

    /// Whether column `index` is NULL.
    pub(crate) fn is_null(
        &self,
        index: usize,
        model: &'static str,
        column: &'static str,
    ) -> Result<bool> {
        let res = match self {
            Row::Mapped(row, ordinals) => {
                return row.is_null(ordinals.get(index).copied().unwrap_or(index), model, column);
            }
            Row::Offset(row, n) => return row.is_null(n + index, model, column),
            Row::Sqlite(r) => sqlite::from_sqlx_row(r, index).map(|v| v == SqlRef::Null),
            Row::SqliteRaw(r) => sqlite::from_raw_row(r, index).map(|v| v == SqlRef::Null),
            Row::Postgres(r) => sqlx::Row::try_get_raw(*r, index).map(|v| v.is_null()),
            Row::MySql(r) => sqlx::Row::try_get_raw(*r, index).map(|v| v.is_null()),
        };
        res.map_err(|source| Error::Decode {
            model,
            column,
            source,
        })
    }

    /// Reads an integer from a column of any integer width: PostgreSQL's integer types are
    /// strict in sqlx (an `i64` cannot read INT4), and tables made elsewhere (Django's `serial`
    /// keys, `integer` counters) have narrower columns than the fields. A value that does not
    /// fit the field is a decode error.
    pub(crate) fn get_integer<T>(
        &self,
        index: usize,
        model: &'static str,
        column: &'static str,
    ) -> Result<T>
    where
        T: BuiltinType + TryFrom<i64>,
    {
        let r = match self {
            Row::Mapped(row, ordinals) => {
                return row.get_integer(
                    ordinals.get(index).copied().unwrap_or(index),
                    model,
                    column,
                );
            }
            Row::Offset(row, n) => return row.get_integer(n + index, model, column),
            Row::Postgres(r) => *r,
            Row::MySql(r) => return mysql_integer(r, index, model, column),
            _ => return self.get(index, model, column),
        };
        let read = || -> std::result::Result<T, sqlx::Error> {
            use sqlx::{Row as _, TypeInfo as _};
            let raw = r.try_get_raw(index)?;
            if raw.is_null() {
                return Err(not_null());
            }
            let value: i64 = match raw.type_info().name() {
                "INT2" => r.try_get::<i16, _>(index)?.into(),
                "INT4" => r.try_get::<i32, _>(index)?.into(),
                _ => r.try_get::<i64, _>(index)?,
            };
            fit(value)
        };
        read().map_err(|source| Error::Decode {
            model,
            column,
            source,
        })
    }
}

/// An integer from a MySQL column, signed or UNSIGNED (Django's `PositiveIntegerField`), which
/// sqlx's signed integers refuse.
fn mysql_integer<T>(
    r: &MySqlRow,
    index: usize,
    model: &'static str,
    column: &'static str,
) -> Result<T>
where
    T: BuiltinType + TryFrom<i64>,
{
    let read = || -> std::result::Result<T, sqlx::Error> {
        use sqlx::{Row as _, TypeInfo as _};
        let raw = r.try_get_raw(index)?;
        // An exact number (a SUM of integers): an integer when it is one and fits.
        #[cfg(feature = "decimal")]
        if raw.type_info().name() == "DECIMAL" {
            if raw.is_null() {
                return Err(not_null());
            }
            let exact: rust_decimal::Decimal = r.try_get(index)?;
            let value = exact
                .fract()
                .is_zero()
                .then(|| i64::try_from(exact).ok())
                .flatten()
                .ok_or_else(|| {
                    sqlx::Error::Decode(
                        format!("{exact} does not fit the field's type `i64`").into(),
                    )
                })?;
            return fit(value);
        }
        if !raw.type_info().name().ends_with(" UNSIGNED") {
            return read_sqlx(r, index);
        }
        if raw.is_null() {
            return Err(not_null());
        }
        let wide = r.try_get::<u64, _>(index)?;
        let value = i64::try_from(wide).map_err(|_| {
            sqlx::Error::Decode(format!("{wide} does not fit the field's type `i64`").into())
        })?;
        fit(value)
    };
    read().map_err(|source| Error::Decode {
        model,
        column,
        source,
    })
}

/// An integer into the field's type, or a decode error saying it does not fit.
fn fit<T: TryFrom<i64>>(value: i64) -> std::result::Result<T, sqlx::Error> {
    T::try_from(value).map_err(|_| {
        sqlx::Error::Decode(
            format!(
                "{value} does not fit the field's type `{}`",
                std::any::type_name::<T>()
            )
            .into(),
        )
    })
}

/// NULL read into a field that cannot hold it.
fn not_null() -> sqlx::Error {
    sqlx::Error::Decode(
        "the column is NULL but the field cannot hold NULL; declare it `Option<_>`".into(),
    )
}

#[inline]
fn read_sqlite<T: BuiltinType>(value: SqlRef<'_>) -> std::result::Result<T, sqlx::Error> {
    if !T::__NULLABLE && value == SqlRef::Null {
        return Err(not_null());
    }
    T::__from_sqlite(value).map_err(sqlx::Error::Decode)
}

#[inline]
fn read_sqlx<R, T>(row: &R, index: usize) -> std::result::Result<T, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    T: BuiltinType + for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    // sqlx skips its type check for NULL and would read NULL as a default value: refuse NULL
    // for fields that cannot hold it.
    if !T::__NULLABLE && row.try_get_raw(index)?.is_null() {
        return Err(not_null());
    }
    row.try_get::<T, _>(index)
}

/// What a row of a statement of your own ([`Sql`](crate::Sql)) reads into: a tuple of field
/// types, one per column in order (`(i64,)` for one column). A column that does not fit its
/// field type is a [`Decode`](crate::Error::Decode) error naming its position.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be read from a row",
    label = "read rows into a tuple of field types, one per column: `(i64, String)`, `(i64,)`"
)]
pub trait Record: Sized + Send + 'static {
    #[doc(hidden)]
    fn __decode(row: &Row<'_>) -> Result<Self>;
}

/// The names of a statement's columns in errors: their positions.
const POSITIONS: [&str; 12] = [
    "column 1",
    "column 2",
    "column 3",
    "column 4",
    "column 5",
    "column 6",
    "column 7",
    "column 8",
    "column 9",
    "column 10",
    "column 11",
    "column 12",
];

macro_rules! tuple_records {
    ($(($($t:ident $i:tt),+))*) => {$(
        impl<$($t: super::FieldType),+> Record for ($($t,)+) {
            #[inline]
            fn __decode(row: &Row<'_>) -> Result<Self> {
                Ok(($($t::__read(row, $i, "a statement of your own", POSITIONS[$i])?,)+))
            }
        }
    )*};
}

tuple_records! {
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, E 4)
    (A 0, B 1, C 2, D 3, E 4, F 5)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11)
}
