//! Values: which Rust types can be fields and keys, how they are bound as arguments
//! (`args`), read from rows (`row`), and stored on SQLite (`sqlite`), statically dispatched
//! per backend.
//!
//! Uses `error` and `backend` only.

use std::fmt::Debug;

use sqlx::error::BoxDynError;
use sqlx::mysql::MySql;
use sqlx::postgres::Postgres;
use sqlx::sqlite::Sqlite;
use sqlx::{Decode, Encode, Type};

use crate::backend::Backend;
use crate::error::{Error, Result};

mod args;
mod row;
pub(crate) mod sqlite;

pub use args::Args;
pub(crate) use args::{DynField, sqlx_sqlite_args};
pub use row::Row;
use sqlite::{SqlRef, SqlValue};

/// A Rust type that can be a model field on every supported database.
///
/// Implemented for `bool`, `i16`, `i32`, `i64`, `f32`, `f64`, `String`, `Vec<u8>`,
/// `chrono::NaiveDate`, `chrono::NaiveTime`, `chrono::NaiveDateTime`, `chrono::DateTime<Utc>`,
/// `uuid::Uuid`, and
/// `Option<T>` of each (which maps to a nullable column). The same model then runs unchanged on
/// SQLite, PostgreSQL and MySQL. The set is closed: this crate stores and reads SQLite values
/// itself (exactly as sqlx does), so it implements the trait for these types only.
///
/// ```
/// fn assert_field<T: signals_core::FieldType>() {}
/// assert_field::<Option<chrono::NaiveDate>>();
/// assert_field::<Vec<u8>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a model field",
    label = "unsupported field type",
    note = "model fields must be one of: bool, i16, i32, i64, f32, f64, String, Vec<u8>, \
            chrono::NaiveDate, chrono::NaiveTime, chrono::NaiveDateTime, chrono::DateTime<Utc>, \
            uuid::Uuid, or an Option of one of them"
)]
pub trait FieldType:
    Debug
    + Send
    + Sync
    + 'static
    + for<'q> Encode<'q, Sqlite>
    + Type<Sqlite>
    + for<'r> Decode<'r, Sqlite>
    + for<'q> Encode<'q, Postgres>
    + Type<Postgres>
    + for<'r> Decode<'r, Postgres>
    + for<'q> Encode<'q, MySql>
    + Type<MySql>
    + for<'r> Decode<'r, MySql>
{
    /// Whether the type can hold SQL `NULL` (only `Option` can).
    const NULLABLE: bool = false;

    /// Whether [`__read`](Self::__read) is the type's own (integers: any integer width of the
    /// column), so that `Option<Self>` reads through it too.
    #[doc(hidden)]
    const __OWN_READ: bool = false;

    /// Whether this value is SQL `NULL` (only `None` is).
    fn is_null(&self) -> bool {
        false
    }

    /// Refuses a value the backend would store as something else, or not at all: MySQL turns
    /// dates past year 9999 into `0000-00-00` without an error, PostgreSQL's text cannot hold
    /// NUL. `Err` says why, for [`Error::InvalidValue`].
    #[doc(hidden)]
    #[inline]
    fn __check(&self, _backend: Backend) -> std::result::Result<(), String> {
        Ok(())
    }

    /// The value as SQLite stores it, exactly as sqlx's SQLite driver encodes it, so rows
    /// written through sqlx and through SQLite's own handle are the same.
    #[doc(hidden)]
    fn __to_sqlite(&self) -> SqlValue;

    /// Reads a SQLite value, accepting exactly what sqlx's SQLite driver accepts.
    #[doc(hidden)]
    fn __from_sqlite(value: SqlRef<'_>) -> std::result::Result<Self, BoxDynError>
    where
        Self: Sized;

    #[doc(hidden)]
    #[inline]
    fn __bind(&self, args: &mut Args, column: &'static str) -> Result<()>
    where
        Self: Sized,
    {
        args.bind(self, column)
    }

    #[doc(hidden)]
    #[inline]
    fn __read(
        row: &Row<'_>,
        index: usize,
        model: &'static str,
        column: &'static str,
    ) -> Result<Self>
    where
        Self: Sized,
    {
        row.get(index, model, column)
    }
}

/// The SQLite methods of a `FieldType` impl, from the type's encoder and decoder in
/// [`sqlite`].
macro_rules! sqlite_codec {
    ($encode:ident, $decode:ident) => {
        #[inline]
        fn __to_sqlite(&self) -> SqlValue {
            sqlite::$encode(self)
        }
        #[inline]
        fn __from_sqlite(value: SqlRef<'_>) -> std::result::Result<Self, BoxDynError> {
            sqlite::$decode(value)
        }
    };
}

/// Each type names its SQLite encoder and decoder in [`sqlite`].
macro_rules! field_types {
    ($($ty:ty => $encode:ident, $decode:ident;)*) => {$(
        impl FieldType for $ty {
            sqlite_codec!($encode, $decode);
        }
        impl sealed::NonOption for $ty {}
    )*};
}

field_types! {
    bool => encode_bool, decode_bool;
    f32 => encode_f32, decode_f32;
    f64 => encode_f64, decode_f64;
    Vec<u8> => encode_bytes, decode_bytes;
    chrono::NaiveTime => encode_time, decode_time;
    uuid::Uuid => encode_uuid, decode_uuid;
}

/// Integers read from a column of any integer width (a PostgreSQL `serial`, INT4, into an
/// `i64`; a value that does not fit is a decode error naming the column).
macro_rules! integer_types {
    ($($ty:ty),*) => {$(
        impl FieldType for $ty {
            const __OWN_READ: bool = true;
            sqlite_codec!(encode_int, decode_int);
            #[inline]
            fn __read(row: &Row<'_>, index: usize, model: &'static str, column: &'static str) -> Result<Self> {
                row.get_integer(index, model, column)
            }
        }
        impl sealed::NonOption for $ty {}
    )*};
}
integer_types!(i16, i32, i64);

impl FieldType for String {
    #[inline]
    fn __to_sqlite(&self) -> SqlValue {
        SqlValue::Text(self.clone())
    }
    #[inline]
    fn __from_sqlite(value: SqlRef<'_>) -> std::result::Result<Self, BoxDynError> {
        sqlite::decode_string(value)
    }
    fn __check(&self, backend: Backend) -> std::result::Result<(), String> {
        if backend == Backend::Postgres && self.contains('\0') {
            return Err("PostgreSQL text cannot hold the NUL character (\\0)".into());
        }
        Ok(())
    }
}
impl sealed::NonOption for String {}

/// MySQL keeps years 1 to 9999 and silently stores any other date as `0000-00-00`.
fn check_year(year: i32, backend: Backend) -> std::result::Result<(), String> {
    if backend == Backend::MySql && !(1..=9999).contains(&year) {
        return Err(format!(
            "year {year} is outside MySQL's date range (years 1 to 9999)"
        ));
    }
    Ok(())
}

macro_rules! date_types {
    ($($ty:ty => $encode:ident, $decode:ident;)*) => {$(
        impl FieldType for $ty {
            sqlite_codec!($encode, $decode);
            fn __check(&self, backend: Backend) -> std::result::Result<(), String> {
                use chrono::Datelike as _;
                check_year(self.year(), backend)
            }
        }
        impl sealed::NonOption for $ty {}
    )*};
}

date_types! {
    chrono::NaiveDate => encode_date, decode_date;
    chrono::NaiveDateTime => encode_datetime, decode_datetime;
    chrono::DateTime<chrono::Utc> => encode_utc, decode_utc;
}

impl<T: FieldType + sealed::NonOption> FieldType for Option<T> {
    const NULLABLE: bool = true;

    #[inline]
    fn __read(
        row: &Row<'_>,
        index: usize,
        model: &'static str,
        column: &'static str,
    ) -> Result<Self> {
        // Only PostgreSQL needs the integer's own read; elsewhere one decode does it all.
        if T::__OWN_READ && row.needs_own_read() {
            if row.is_null(index, model, column)? {
                return Ok(None);
            }
            return T::__read(row, index, model, column).map(Some);
        }
        row.get(index, model, column)
    }

    fn is_null(&self) -> bool {
        self.is_none()
    }

    #[inline]
    fn __to_sqlite(&self) -> SqlValue {
        match self {
            Some(value) => value.__to_sqlite(),
            None => SqlValue::Null,
        }
    }

    #[inline]
    fn __from_sqlite(value: SqlRef<'_>) -> std::result::Result<Self, BoxDynError> {
        match value {
            SqlRef::Null => Ok(None),
            value => T::__from_sqlite(value).map(Some),
        }
    }

    fn __check(&self, backend: Backend) -> std::result::Result<(), String> {
        match self {
            Some(value) => value.__check(backend),
            None => Ok(()),
        }
    }
}

mod sealed {
    /// Keeps `Option<Option<T>>` out: it has no column type.
    pub trait NonOption {}
}

/// A type that can be a model's primary key field.
///
/// `Option<i64>` (and `Option<i32>`, `Option<i16>`) are keys the database assigns: `None` until
/// the first save, which INSERTs and reads the new key back. Plain `i64`, `i32`, `i16`, `String`
/// and `uuid::Uuid` are keys the application assigns: every save tries UPDATE first and INSERTs
/// when no row matched, as Django does.
///
/// ```
/// use signals_core::Model;
///
/// #[derive(Model)]
/// struct Setting {
///     #[model(primary_key)]
///     name: String, // assigned by the application
///     value: String,
/// }
///
/// fn key_of<M: Model>() {}
/// key_of::<Setting>(); // Setting::Key is String
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a primary key",
    label = "unsupported primary key type",
    note = "use `Option<i64>` (or `Option<i32>`, `Option<i16>`) for a key the database assigns, \
            or `i64`, `i32`, `i16`, `String`, `uuid::Uuid` for one the application assigns"
)]
pub trait PrimaryKey: FieldType {
    /// The key's value type, as passed to [`Model::get`](crate::Model::get).
    type Key: FieldType + Clone;

    /// The key, or `None` when it is not assigned yet.
    fn key(&self) -> Option<&Self::Key>;

    /// Stores a key the database generated. Only called when [`key`](Self::key) was `None`.
    fn set_generated(&mut self, id: i64) -> Result<()>;

    /// Clears the key after the row was deleted, where the type allows it.
    fn clear(&mut self) {}
}

macro_rules! auto_keys {
    ($($ty:ty),*) => {$(
        impl PrimaryKey for Option<$ty> {
            type Key = $ty;
            #[inline]
            fn key(&self) -> Option<&$ty> {
                self.as_ref()
            }
            fn set_generated(&mut self, id: i64) -> Result<()> {
                let id = <$ty>::try_from(id).map_err(|_| {
                    Error::Config(format!(
                        "the database generated key {id}, which does not fit the key type `{}`",
                        stringify!($ty)
                    ))
                })?;
                *self = Some(id);
                Ok(())
            }
            fn clear(&mut self) {
                *self = None;
            }
        }
    )*};
}

macro_rules! manual_keys {
    ($($ty:ty),*) => {$(
        impl PrimaryKey for $ty {
            type Key = $ty;
            #[inline]
            fn key(&self) -> Option<&$ty> {
                Some(self)
            }
            fn set_generated(&mut self, _id: i64) -> Result<()> {
                Ok(())
            }
        }
    )*};
}

auto_keys!(i16, i32, i64);
manual_keys!(i16, i32, i64, String, uuid::Uuid);

/// A field type that can refer to a parent whose key type is `K` (the key itself, or an
/// `Option` of it for a nullable reference).
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot refer to a model whose primary key is `{K}`",
    label = "the field type must be `{K}` or `Option<{K}>`"
)]
pub trait RefersTo<K> {
    /// The referenced key, `None` for a NULL reference.
    fn referenced_key(&self) -> Option<&K>;
}
impl<K: FieldType + sealed::NonOption> RefersTo<K> for K {
    fn referenced_key(&self) -> Option<&K> {
        Some(self)
    }
}
impl<K: FieldType + sealed::NonOption> RefersTo<K> for Option<K> {
    fn referenced_key(&self) -> Option<&K> {
        self.as_ref()
    }
}

/// Fields that may be set to NULL (`on_delete = set_null`).
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`on_delete = set_null` needs a nullable field, but this field is `{Self}`",
    label = "make this field an `Option<_>`"
)]
pub trait Nullable {}
impl<T> Nullable for Option<T> {}
