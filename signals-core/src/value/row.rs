//! Rows read from any backend, decoded field by field.
//!
//! Uses `error` and the field types of `value`.

use sqlx::mysql::MySqlRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Type, ValueRef as _};

use super::FieldType;
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
}

impl Row<'_> {
    /// Reads column `index`, naming `model.column` in the error.
    #[inline]
    pub fn get<T: FieldType>(
        &self,
        index: usize,
        model: &'static str,
        column: &'static str,
    ) -> Result<T> {
        if let Row::Mapped(row, ordinals) = self {
            let ordinal = ordinals.get(index).copied().unwrap_or(index);
            return row.get(ordinal, model, column);
        }
        let res = match self {
            // SQLite values go through one decoder whichever way the row was read, so a row
            // reads the same inside a transaction (on the handle) and outside it (via sqlx).
            Row::Sqlite(r) => sqlite::from_sqlx_row(r, index).and_then(read_sqlite),
            Row::SqliteRaw(r) => sqlite::from_raw_row(r, index).and_then(read_sqlite),
            Row::Postgres(r) => read_sqlx(*r, index),
            Row::MySql(r) => read_sqlx(*r, index),
            Row::Mapped(..) => unreachable!("handled above"),
        };
        res.map_err(|source| Error::Decode {
            model,
            column,
            source,
        })
    }
}

/// NULL read into a field that cannot hold it.
fn not_null() -> sqlx::Error {
    sqlx::Error::Decode(
        "the column is NULL but the field cannot hold NULL; declare it `Option<_>`".into(),
    )
}

#[inline]
fn read_sqlite<T: FieldType>(value: SqlRef<'_>) -> std::result::Result<T, sqlx::Error> {
    if !T::NULLABLE && value == SqlRef::Null {
        return Err(not_null());
    }
    T::__from_sqlite(value).map_err(sqlx::Error::Decode)
}

#[inline]
fn read_sqlx<R, T>(row: &R, index: usize) -> std::result::Result<T, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    T: FieldType + for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    // sqlx skips its type check for NULL and would read NULL as a default value: refuse NULL
    // for fields that cannot hold it.
    if !T::NULLABLE && row.try_get_raw(index)?.is_null() {
        return Err(not_null());
    }
    row.try_get::<T, _>(index)
}
