//! Values: which Rust types can be fields and keys ([`FieldType`], open to the user's types,
//! each stored as a [`BuiltinType`] of `builtin`), how they are bound as arguments (`args`),
//! read from rows (`row`), and stored on SQLite (`sqlite`), statically dispatched per backend.
//!
//! Uses `error` and `backend` only.

use std::fmt::Debug;

use sqlx::error::BoxDynError;
use sqlx::mysql::MySql;
use sqlx::postgres::Postgres;
use sqlx::{Decode, Encode, Type};

use crate::backend::Backend;
use crate::error::{Error, Result};

mod args;
mod builtin;
mod row;
pub(crate) mod sqlite;

pub use args::Args;
pub(crate) use args::{DynField, sqlx_sqlite_args};
pub use row::{Record, Row};
use sqlite::{SqlRef, SqlValue};

mod sealed {
    /// The built-in field types: only this crate stores values itself.
    pub trait Sealed {}

    /// Keeps `Option<Option<T>>` out: it has no column type.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is already nullable, so it cannot be wrapped in another `Option`",
        label = "a field is `Option<T>` of a type stored as a non-`Option` type"
    )]
    pub trait NonOption {}
}

/// A Rust type that can be a model field on every supported database.
///
/// Built in (see [`BuiltinType`]): `bool`, `i16`, `i32`, `i64`, `f32`, `f64`, `String`,
/// `Vec<u8>`, `chrono::NaiveDate`, `chrono::NaiveTime`, `chrono::NaiveDateTime`,
/// `chrono::DateTime<Utc>`, `uuid::Uuid`, [`Json<T>`](crate::Json) and `serde_json::Value`
/// (feature `json`), `rust_decimal::Decimal` (feature `decimal`), and `Option<T>` of each (a
/// nullable column). `i8`, `u8`, `u16` and `u32` are stored in the next wider signed integer.
/// The same model then runs unchanged on SQLite, PostgreSQL and MySQL.
///
/// Any other type becomes a field by saying which built-in type it is stored as:
/// `#[derive(FieldType)]` does it for a newtype (stored as what it wraps) and for an enum of
/// unit variants (stored as text, or as an integer with `#[field(integer)]`):
///
/// ```
/// use signals_core::{FieldType, Model};
///
/// #[derive(Debug, Clone, PartialEq, FieldType)]
/// struct Email(String);
///
/// #[derive(Debug, Clone, Copy, PartialEq, FieldType)]
/// #[field(rename_all = "lowercase")]
/// enum Status { Draft, Published } // stored as 'draft', 'published'
///
/// #[derive(Debug, Clone, Copy, PartialEq, FieldType)]
/// #[field(integer)]
/// enum Priority { Low = 1, High = 5 } // stored as 1, 5
///
/// #[derive(Model)]
/// struct Post { id: Option<i64>, author: Email, status: Status, priority: Option<Priority> }
/// ```
///
/// By hand, implement [`to_stored`](Self::to_stored) and [`from_stored`](Self::from_stored); a
/// value that cannot be read back is a decode error naming the model and column:
///
/// ```
/// use signals_core::FieldType;
/// use sqlx::error::BoxDynError;
///
/// /// An amount in cents, stored as a BIGINT.
/// #[derive(Debug, Clone, Copy, PartialEq)]
/// struct Cents(u64);
///
/// impl FieldType for Cents {
///     type Stored = i64;
///     fn to_stored(&self) -> i64 {
///         // Fits: `from_stored` refuses the rest, and so does `Cents::new` in a real app.
///         i64::try_from(self.0).unwrap_or(i64::MAX)
///     }
///     fn from_stored(cents: i64) -> Result<Self, BoxDynError> {
///         Ok(Cents(u64::try_from(cents).map_err(|_| format!("negative amount: {cents}"))?))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a model field",
    label = "unsupported field type",
    note = "built-in field types: bool, i8..i64, u8..u32, f32, f64, String, Vec<u8>, \
            chrono::NaiveDate, NaiveTime, NaiveDateTime, DateTime<Utc>, uuid::Uuid, Json<T>, \
            serde_json::Value, rust_decimal::Decimal, or an Option of one of them",
    note = "a type of your own becomes a field with `#[derive(signals_core::FieldType)]` (a newtype \
            or an enum) or an `impl FieldType` saying which built-in type stores it"
)]
pub trait FieldType: Debug + Send + Sync + Sized + 'static {
    /// The built-in type the value is stored as.
    type Stored: BuiltinType;

    /// The value as it is stored.
    fn to_stored(&self) -> Self::Stored;

    /// The value from what is stored; `Err` (say why) is a decode error naming the model
    /// and column.
    fn from_stored(stored: Self::Stored) -> std::result::Result<Self, BoxDynError>;

    /// Whether the type can hold SQL `NULL` (only `Option` can, or a type stored as one).
    #[doc(hidden)]
    const NULLABLE: bool = <Self::Stored as BuiltinType>::__NULLABLE;

    /// Whether this value is SQL `NULL` (only `None` is).
    fn is_null(&self) -> bool {
        Self::NULLABLE && self.to_stored().is_null()
    }

    #[doc(hidden)]
    #[inline]
    fn __bind(&self, args: &mut Args, column: &'static str) -> Result<()> {
        args.bind_builtin(&self.to_stored(), column)
    }

    #[doc(hidden)]
    #[inline]
    fn __read(
        row: &Row<'_>,
        index: usize,
        model: &'static str,
        column: &'static str,
    ) -> Result<Self> {
        let stored = <Self::Stored as FieldType>::__read(row, index, model, column)?;
        Self::from_stored(stored).map_err(|source| Error::Decode {
            model,
            column,
            source: sqlx::Error::Decode(source),
        })
    }

    /// Binds the value of a column declared `max_digits = digits, decimal_places = places`:
    /// decimals rounded to the places (half away from zero) as PostgreSQL and MySQL store
    /// them, so SQLite stores (and compares) the same value; one with more digits than the
    /// column holds is refused on every backend ([`Error::InvalidValue`]), as the servers
    /// refuse it.
    #[doc(hidden)]
    #[inline]
    fn __bind_scaled(
        &self,
        args: &mut Args,
        column: &'static str,
        digits: u32,
        places: u32,
    ) -> Result<()> {
        let mut stored = self.to_stored();
        stored.__rescale(places);
        stored
            .__check_digits(digits, places)
            .map_err(|reason| Error::InvalidValue { column, reason })?;
        args.bind_builtin(&stored, column)
    }

    /// Reads a column declared with `decimal_places = places`: its decimals with exactly
    /// that many places, as PostgreSQL and MySQL return them (SQLite keeps the text it was
    /// given, `1.5` for `1.50`), as Django does.
    #[doc(hidden)]
    #[inline]
    fn __read_scaled(
        row: &Row<'_>,
        index: usize,
        model: &'static str,
        column: &'static str,
        places: u32,
    ) -> Result<Self> {
        let mut stored = <Self::Stored as FieldType>::__read(row, index, model, column)?;
        stored.__rescale(places);
        Self::from_stored(stored).map_err(|source| Error::Decode {
            model,
            column,
            source: sqlx::Error::Decode(source),
        })
    }

    /// The value as JSON, for type-erased instances: as the database stores it (times to
    /// the microsecond, a decimal of a column without declared places to the 10 that MySQL's
    /// `DECIMAL(38, 10)` keeps, without trailing zeros).
    #[doc(hidden)]
    fn __json(&self) -> serde_json::Value {
        let mut stored = self.to_stored();
        stored.__unscaled_form();
        BuiltinType::__to_json(&stored)
    }

    /// [`__json`](Self::__json) of a column declared with `decimal_places = places`: its
    /// decimals with exactly that many places, as they are stored.
    #[doc(hidden)]
    fn __json_scaled(&self, places: u32) -> serde_json::Value {
        let mut stored = self.to_stored();
        stored.__rescale(places);
        BuiltinType::__to_json(&stored)
    }

    /// Reads a nullable column into `Option<Self>`.
    #[doc(hidden)]
    #[inline]
    fn __read_option(
        row: &Row<'_>,
        index: usize,
        model: &'static str,
        column: &'static str,
    ) -> Result<Option<Self>> {
        if row.is_null(index, model, column)? {
            return Ok(None);
        }
        Self::__read(row, index, model, column).map(Some)
    }
}

/// The types this crate stores itself, on every backend: what a [`FieldType`] is stored as.
///
/// The set is closed (the crate stores and reads SQLite values itself, exactly as sqlx does);
/// a type of your own is stored as one of these through [`FieldType::Stored`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a built-in field type, so it cannot be what a field is stored as",
    label = "not a built-in field type",
    note = "`FieldType::Stored` must be one of: bool, i16, i32, i64, f32, f64, String, Vec<u8>, \
            chrono::NaiveDate, NaiveTime, NaiveDateTime, DateTime<Utc>, uuid::Uuid, Json<T>, \
            serde_json::Value, rust_decimal::Decimal, or an Option of one of them"
)]
pub trait BuiltinType:
    FieldType<Stored = Self>
    + sealed::Sealed
    + for<'q> Encode<'q, Postgres>
    + Type<Postgres>
    + for<'r> Decode<'r, Postgres>
    + for<'q> Encode<'q, MySql>
    + Type<MySql>
    + for<'r> Decode<'r, MySql>
{
    /// The column type, for [schemas](crate::schema).
    const SQL_TYPE: SqlType;

    /// Whether a PostgreSQL column of type `ty` can hold the values (sqlx's own rule, wider
    /// for integers, which read any integer width).
    #[doc(hidden)]
    fn __compatible_postgres(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <Self as Type<Postgres>>::compatible(ty)
    }

    /// Whether a MySQL column of type `ty` can hold the values (sqlx's own rule).
    #[doc(hidden)]
    fn __compatible_mysql(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
        <Self as Type<MySql>>::compatible(ty)
    }

    #[doc(hidden)]
    const __NULLABLE: bool = false;

    /// Refuses a value the backend would store as something else, or not at all: MySQL turns
    /// dates past year 9999 into `0000-00-00` without an error, PostgreSQL's text cannot hold
    /// NUL. `Err` says why, for [`Error::InvalidValue`].
    #[doc(hidden)]
    #[inline]
    fn __check(&self, _backend: Backend) -> std::result::Result<(), String> {
        Ok(())
    }

    /// The value as the crate sends it to PostgreSQL and MySQL, when that differs from the
    /// value: times floored to the microsecond, which both servers keep (left to sqlx, a
    /// PostgreSQL time before 2000 would be rounded up instead, being counted back from 2000).
    #[doc(hidden)]
    #[inline]
    fn __server_form(&self) -> Option<Self> {
        None
    }

    /// Binds the value to a MySQL statement. A `DateTime<Utc>` goes as a `DATETIME` (its UTC
    /// date and time), since MariaDB stores a `TIMESTAMP` parameter outside 1970–2038 as NULL.
    #[doc(hidden)]
    #[inline]
    fn __bind_mysql(
        &self,
        args: &mut sqlx::mysql::MySqlArguments,
    ) -> std::result::Result<(), BoxDynError> {
        sqlx::Arguments::add(args, self)
    }

    /// Brings a decimal of a column without declared places to what every backend keeps of it:
    /// 10 places at most (MySQL's `DECIMAL(38, 10)`, rounding half away from zero), without
    /// trailing zeros (`12.5` and `12.5000000000` alike); other types are left as they are.
    #[doc(hidden)]
    #[inline]
    fn __unscaled_form(&mut self) {}

    /// Brings a decimal to `places` decimal places (rounding half away from zero, as
    /// PostgreSQL and MySQL store it); other types are left as they are.
    #[doc(hidden)]
    #[inline]
    fn __rescale(&mut self, _places: u32) {}

    /// Refuses a decimal with more digits before its point than a `DECIMAL(digits, places)`
    /// column holds; other types pass.
    #[doc(hidden)]
    #[inline]
    fn __check_digits(&self, _digits: u32, _places: u32) -> std::result::Result<(), String> {
        Ok(())
    }

    /// The value as SQLite stores it, exactly as sqlx's SQLite driver encodes it, so rows
    /// written through sqlx and through SQLite's own handle are the same.
    #[doc(hidden)]
    fn __to_sqlite(&self) -> std::result::Result<SqlValue, BoxDynError>;

    /// Reads a SQLite value, accepting exactly what sqlx's SQLite driver accepts.
    #[doc(hidden)]
    fn __from_sqlite(value: SqlRef<'_>) -> std::result::Result<Self, BoxDynError>;

    /// The value as JSON, for type-erased instances: numbers and booleans as such, dates and
    /// times in ISO 8601, decimals and UUIDs as strings, bytes as an array, NULL as `null`.
    #[doc(hidden)]
    fn __to_json(&self) -> serde_json::Value;
}

/// The kind of column a built-in field type needs; [`schema`](crate::schema) writes it for
/// each backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SqlType {
    /// `bool`.
    Bool,
    /// `i16`.
    SmallInt,
    /// `i32`.
    Integer,
    /// `i64`.
    BigInt,
    /// `f32`.
    Real,
    /// `f64`.
    Double,
    /// `String`.
    Text,
    /// `Vec<u8>`.
    Bytes,
    /// `chrono::NaiveDate`.
    Date,
    /// `chrono::NaiveTime`.
    Time,
    /// `chrono::NaiveDateTime`.
    DateTime,
    /// `chrono::DateTime<Utc>`.
    Timestamp,
    /// `uuid::Uuid`.
    Uuid,
    /// `Json<T>`, `serde_json::Value`.
    Json,
    /// `rust_decimal::Decimal`.
    Decimal,
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
    type Key: FieldType + Clone + Ord;

    /// Whether the database assigns the key (an auto-increment column).
    #[doc(hidden)]
    const __AUTO: bool = false;

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
            const __AUTO: bool = true;
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
    /// The parent `R` a row has through this reference: `R` itself, or `Option<R>` for a
    /// nullable reference (`Query::select_related`).
    type Loaded<R>;

    /// The referenced key, `None` for a NULL reference.
    fn referenced_key(&self) -> Option<&K>;

    /// The parent a join found (`None`: no row), as [`Loaded`](Self::Loaded); `None` when a
    /// reference that cannot be NULL found no parent.
    fn loaded<R>(parent: Option<R>) -> Option<Self::Loaded<R>>;
}
impl<K: FieldType + sealed::NonOption> RefersTo<K> for K {
    type Loaded<R> = R;
    fn referenced_key(&self) -> Option<&K> {
        Some(self)
    }
    fn loaded<R>(parent: Option<R>) -> Option<R> {
        parent
    }
}
impl<K: FieldType + sealed::NonOption> RefersTo<K> for Option<K> {
    type Loaded<R> = Option<R>;
    fn referenced_key(&self) -> Option<&K> {
        self.as_ref()
    }
    fn loaded<R>(parent: Option<R>) -> Option<Option<R>> {
        Some(parent)
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
