//! The built-in field types: how each is bound, read, checked and stored on SQLite, and the
//! `Option` of each. Also the integers stored in a wider one (`i8`, `u8`, `u16`, `u32`).
//!
//! Uses `error`, `backend` and the rest of `value`.

use sqlx::error::BoxDynError;

use super::sqlite::{self, SqlRef, SqlValue};
use super::{Args, BuiltinType, FieldType, Row, SqlType, sealed};
use crate::backend::Backend;
use crate::error::Result;

/// The `FieldType` items every built-in type has alike: stored as itself, bound and read
/// directly.
macro_rules! stored_as_itself {
    () => {
        type Stored = Self;
        const NULLABLE: bool = false;
        #[inline]
        fn to_stored(&self) -> Self {
            self.clone()
        }
        #[inline]
        fn from_stored(stored: Self) -> std::result::Result<Self, BoxDynError> {
            Ok(stored)
        }
        #[inline]
        fn is_null(&self) -> bool {
            false
        }
        #[inline]
        fn __bind(&self, args: &mut Args, column: &'static str) -> Result<()> {
            args.bind_builtin(self, column)
        }
    };
}

/// A built-in type read with one decode of the value, `NULL` included.
macro_rules! read_directly {
    () => {
        #[inline]
        fn __read(
            row: &Row<'_>,
            index: usize,
            model: &'static str,
            column: &'static str,
        ) -> Result<Self> {
            row.get(index, model, column)
        }
        #[inline]
        fn __read_option(
            row: &Row<'_>,
            index: usize,
            model: &'static str,
            column: &'static str,
        ) -> Result<Option<Self>> {
            row.get(index, model, column)
        }
    };
}

/// The SQLite methods of a `BuiltinType` impl, from the type's encoder and decoder in
/// [`sqlite`].
macro_rules! sqlite_codec {
    ($encode:ident, $decode:ident) => {
        #[inline]
        fn __to_sqlite(&self) -> std::result::Result<SqlValue, BoxDynError> {
            Ok(sqlite::$encode(self))
        }
        #[inline]
        fn __from_sqlite(value: SqlRef<'_>) -> std::result::Result<Self, BoxDynError> {
            sqlite::$decode(value)
        }
    };
}

/// Each type names its column type and its SQLite encoder and decoder.
macro_rules! builtin_types {
    ($($ty:ty => $sql:ident, $encode:ident, $decode:ident, $json:path;)*) => {$(
        impl FieldType for $ty {
            stored_as_itself!();
            read_directly!();
        }
        impl BuiltinType for $ty {
            const SQL_TYPE: SqlType = SqlType::$sql;
            sqlite_codec!($encode, $decode);
            fn __to_json(&self) -> serde_json::Value {
                $json(self)
            }
        }
        impl sealed::Sealed for $ty {}
        impl sealed::NonOption for $ty {}
    )*};
}

builtin_types! {
    bool => Bool, encode_bool, decode_bool, to_json::bool;
    f32 => Real, encode_f32, decode_f32, to_json::f32;
    f64 => Double, encode_f64, decode_f64, to_json::f64;
    Vec<u8> => Bytes, encode_bytes, decode_bytes, to_json::serialized;
    uuid::Uuid => Uuid, encode_uuid, decode_uuid, to_json::display;
}

impl FieldType for chrono::NaiveTime {
    stored_as_itself!();
    read_directly!();
}
impl BuiltinType for chrono::NaiveTime {
    const SQL_TYPE: SqlType = SqlType::Time;
    sqlite_codec!(encode_time, decode_time);
    fn __to_json(&self) -> serde_json::Value {
        to_json::time(self)
    }
    fn __server_form(&self) -> Option<Self> {
        to_json::floored(self)
    }
}
impl sealed::Sealed for chrono::NaiveTime {}
impl sealed::NonOption for chrono::NaiveTime {}

/// The JSON form of the built-in values.
mod to_json {
    use serde_json::Value;

    pub(super) fn bool(v: &bool) -> Value {
        Value::Bool(*v)
    }

    pub(super) fn int<T: Copy + Into<i64>>(v: &T) -> Value {
        Value::from((*v).into())
    }

    pub(super) fn f32(v: &f32) -> Value {
        f64(&f64::from(*v))
    }

    /// NaN and the infinities, which JSON has no numbers for, as the strings `"NaN"`, `"inf"`
    /// and `"-inf"` (so that a change between them, or from NULL, shows).
    pub(super) fn f64(v: &f64) -> Value {
        serde_json::Number::from_f64(*v).map_or_else(|| Value::String(v.to_string()), Value::Number)
    }

    pub(super) fn display<T: std::fmt::Display>(v: &T) -> Value {
        Value::String(v.to_string())
    }

    pub(super) fn serialized<T: serde::Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap_or(Value::Null)
    }

    /// Times to the microsecond, the precision PostgreSQL and MySQL store (they drop the
    /// nanoseconds of `Utc::now()`), so that a change is what the database would store on
    /// every backend, not a nanosecond the instance kept.
    fn micros<T: chrono::Timelike + Clone>(v: &T) -> T {
        floored(v).unwrap_or_else(|| v.clone())
    }

    /// `v` floored to the microsecond, when it has a finer part.
    pub(super) fn floored<T: chrono::Timelike>(v: &T) -> Option<T> {
        let nanos = v.nanosecond();
        match nanos % 1_000 {
            0 => None,
            extra => v.with_nanosecond(nanos - extra),
        }
    }

    pub(super) fn time(v: &chrono::NaiveTime) -> Value {
        Value::String(micros(v).to_string())
    }

    pub(super) fn datetime(v: &chrono::NaiveDateTime) -> Value {
        Value::String(micros(v).format("%FT%T%.f").to_string())
    }

    pub(super) fn utc(v: &chrono::DateTime<chrono::Utc>) -> Value {
        Value::String(micros(v).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

/// Integers read from a column of any integer width (a PostgreSQL `serial`, INT4, into an
/// `i64`; a value that does not fit is a decode error naming the column).
macro_rules! integer_types {
    ($($ty:ty => $sql:ident),*) => {$(
        impl FieldType for $ty {
            stored_as_itself!();
            #[inline]
            fn __read(row: &Row<'_>, index: usize, model: &'static str, column: &'static str) -> Result<Self> {
                row.get_integer(index, model, column)
            }
            #[inline]
            fn __read_option(row: &Row<'_>, index: usize, model: &'static str, column: &'static str) -> Result<Option<Self>> {
                // Only PostgreSQL needs the integer's own read; elsewhere one decode does it all.
                if !row.needs_own_read() {
                    return row.get(index, model, column);
                }
                if row.is_null(index, model, column)? {
                    return Ok(None);
                }
                row.get_integer(index, model, column).map(Some)
            }
        }
        impl BuiltinType for $ty {
            const SQL_TYPE: SqlType = SqlType::$sql;
            sqlite_codec!(encode_int, decode_int);
            fn __to_json(&self) -> serde_json::Value {
                to_json::int(self)
            }
            fn __compatible_postgres(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                use sqlx::TypeInfo as _;
                matches!(ty.name(), "INT2" | "INT4" | "INT8")
            }
            fn __compatible_mysql(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
                use sqlx::TypeInfo as _;
                let name = ty.name();
                let name = name.strip_suffix(" UNSIGNED").unwrap_or(name);
                matches!(name, "BOOLEAN" | "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT")
            }
        }
        impl sealed::Sealed for $ty {}
        impl sealed::NonOption for $ty {}
    )*};
}
integer_types!(i16 => SmallInt, i32 => Integer, i64 => BigInt);

impl FieldType for String {
    stored_as_itself!();
    read_directly!();
}
impl BuiltinType for String {
    const SQL_TYPE: SqlType = SqlType::Text;
    #[inline]
    fn __to_sqlite(&self) -> std::result::Result<SqlValue, BoxDynError> {
        Ok(SqlValue::Text(self.clone()))
    }
    #[inline]
    fn __from_sqlite(value: SqlRef<'_>) -> std::result::Result<Self, BoxDynError> {
        sqlite::decode_string(value)
    }
    fn __to_json(&self) -> serde_json::Value {
        serde_json::Value::String(self.clone())
    }
    fn __check(&self, backend: Backend) -> std::result::Result<(), String> {
        if backend == Backend::Postgres && self.contains('\0') {
            return Err("PostgreSQL text cannot hold the NUL character (\\0)".into());
        }
        Ok(())
    }
}
impl sealed::Sealed for String {}
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
    ($($ty:ty => $sql:ident, $encode:ident, $decode:ident, $json:path, $server:expr, $mysql:expr;)*) => {$(
        impl FieldType for $ty {
            stored_as_itself!();
            read_directly!();
        }
        impl BuiltinType for $ty {
            const SQL_TYPE: SqlType = SqlType::$sql;
            sqlite_codec!($encode, $decode);
            fn __to_json(&self) -> serde_json::Value {
                $json(self)
            }
            fn __check(&self, backend: Backend) -> std::result::Result<(), String> {
                use chrono::Datelike as _;
                check_year(self.year(), backend)
            }
            #[inline]
            fn __server_form(&self) -> Option<Self> {
                let server: fn(&Self) -> Option<Self> = $server;
                server(self)
            }
            #[inline]
            fn __bind_mysql(
                &self,
                args: &mut sqlx::mysql::MySqlArguments,
            ) -> std::result::Result<(), BoxDynError> {
                let bind: fn(&Self, &mut sqlx::mysql::MySqlArguments) -> std::result::Result<(), BoxDynError> = $mysql;
                bind(self, args)
            }
        }
        impl sealed::Sealed for $ty {}
        impl sealed::NonOption for $ty {}
    )*};
}

date_types! {
    chrono::NaiveDate => Date, encode_date, decode_date, to_json::display,
        |_| None, |v, args| sqlx::Arguments::add(args, v);
    chrono::NaiveDateTime => DateTime, encode_datetime, decode_datetime, to_json::datetime,
        to_json::floored, |v, args| sqlx::Arguments::add(args, v);
    // As a DATETIME on MySQL: a TIMESTAMP parameter outside 1970–2038 is NULL to MariaDB.
    chrono::DateTime<chrono::Utc> => Timestamp, encode_utc, decode_utc, to_json::utc,
        to_json::floored, |v, args| sqlx::Arguments::add(args, v.naive_utc());
}

/// JSON: JSONB on PostgreSQL, JSON on MySQL, TEXT on SQLite, as sqlx stores it.
#[cfg(feature = "json")]
mod json {
    use std::fmt::Debug;

    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use sqlx::types::Json;

    use super::*;

    impl<T> FieldType for Json<T>
    where
        T: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static,
    {
        stored_as_itself!();
        read_directly!();
    }
    impl<T> BuiltinType for Json<T>
    where
        T: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static,
    {
        const SQL_TYPE: SqlType = SqlType::Json;
        fn __to_sqlite(&self) -> std::result::Result<SqlValue, BoxDynError> {
            sqlite::encode_json(&self.0)
        }
        fn __from_sqlite(value: SqlRef<'_>) -> std::result::Result<Self, BoxDynError> {
            sqlite::decode_json(value).map(Json)
        }
        fn __to_json(&self) -> serde_json::Value {
            super::to_json::serialized(&self.0)
        }
    }
    impl<T> sealed::Sealed for Json<T> {}
    impl<T> sealed::NonOption for Json<T> {}

    impl FieldType for serde_json::Value {
        stored_as_itself!();
        read_directly!();
    }
    impl BuiltinType for serde_json::Value {
        const SQL_TYPE: SqlType = SqlType::Json;
        fn __to_sqlite(&self) -> std::result::Result<SqlValue, BoxDynError> {
            sqlite::encode_json(self)
        }
        fn __from_sqlite(value: SqlRef<'_>) -> std::result::Result<Self, BoxDynError> {
            sqlite::decode_json(value)
        }
        fn __to_json(&self) -> serde_json::Value {
            self.clone()
        }
    }
    impl sealed::Sealed for serde_json::Value {}
    impl sealed::NonOption for serde_json::Value {}
}

/// Exact decimals: NUMERIC on PostgreSQL, DECIMAL on MySQL, TEXT on SQLite.
#[cfg(feature = "decimal")]
mod decimal {
    use rust_decimal::Decimal;

    use super::*;

    impl FieldType for Decimal {
        stored_as_itself!();
        read_directly!();
    }
    impl BuiltinType for Decimal {
        const SQL_TYPE: SqlType = SqlType::Decimal;
        sqlite_codec!(encode_decimal, decode_decimal);
        fn __unscaled_form(&mut self) {
            if self.scale() > 10 {
                *self = self.round_dp_with_strategy(
                    10,
                    rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                );
            }
            *self = self.normalize();
        }
        fn __rescale(&mut self, places: u32) {
            if self.scale() != places {
                *self = self.round_dp_with_strategy(
                    places,
                    rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                );
                self.rescale(places);
            }
        }
        fn __check_digits(&self, digits: u32, places: u32) -> std::result::Result<(), String> {
            let whole = self.trunc().abs();
            let room = digits.saturating_sub(places);
            let held = if whole.is_zero() {
                0
            } else {
                whole.to_string().len() as u32
            };
            if held > room {
                return Err(format!(
                    "{self} has {held} digits before its point, more than the {room} a \
                     DECIMAL({digits}, {places}) column holds"
                ));
            }
            Ok(())
        }
        fn __to_json(&self) -> serde_json::Value {
            super::to_json::display(self)
        }
    }
    impl sealed::Sealed for Decimal {}
    impl sealed::NonOption for Decimal {}
}

/// `Option<T>` of any field type: a nullable column, `None` for NULL.
impl<T: FieldType> FieldType for Option<T>
where
    T::Stored: sealed::NonOption,
{
    type Stored = Option<T::Stored>;
    const NULLABLE: bool = true;

    #[inline]
    fn to_stored(&self) -> Option<T::Stored> {
        self.as_ref().map(T::to_stored)
    }

    #[inline]
    fn from_stored(stored: Option<T::Stored>) -> std::result::Result<Self, BoxDynError> {
        stored.map(T::from_stored).transpose()
    }

    #[inline]
    fn is_null(&self) -> bool {
        self.is_none()
    }

    #[inline]
    fn __bind(&self, args: &mut Args, column: &'static str) -> Result<()> {
        match self {
            Some(value) => value.__bind(args, column),
            None => args.bind_builtin(&None::<T::Stored>, column),
        }
    }

    #[inline]
    fn __read(
        row: &Row<'_>,
        index: usize,
        model: &'static str,
        column: &'static str,
    ) -> Result<Self> {
        T::__read_option(row, index, model, column)
    }

    #[inline]
    fn __read_scaled(
        row: &Row<'_>,
        index: usize,
        model: &'static str,
        column: &'static str,
        places: u32,
    ) -> Result<Self> {
        if row.is_null(index, model, column)? {
            return Ok(None);
        }
        T::__read_scaled(row, index, model, column, places).map(Some)
    }
}

impl<T: BuiltinType + sealed::NonOption> BuiltinType for Option<T> {
    const SQL_TYPE: SqlType = T::SQL_TYPE;
    const __NULLABLE: bool = true;

    fn __compatible_postgres(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        T::__compatible_postgres(ty)
    }

    fn __compatible_mysql(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
        T::__compatible_mysql(ty)
    }

    #[inline]
    fn __to_sqlite(&self) -> std::result::Result<SqlValue, BoxDynError> {
        match self {
            Some(value) => value.__to_sqlite(),
            None => Ok(SqlValue::Null),
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

    fn __server_form(&self) -> Option<Self> {
        self.as_ref().and_then(T::__server_form).map(Some)
    }

    fn __bind_mysql(
        &self,
        args: &mut sqlx::mysql::MySqlArguments,
    ) -> std::result::Result<(), BoxDynError> {
        match self {
            Some(value) => value.__bind_mysql(args),
            None => sqlx::Arguments::add(args, None::<T>),
        }
    }

    fn __unscaled_form(&mut self) {
        if let Some(value) = self {
            value.__unscaled_form();
        }
    }

    fn __rescale(&mut self, places: u32) {
        if let Some(value) = self {
            value.__rescale(places);
        }
    }

    fn __check_digits(&self, digits: u32, places: u32) -> std::result::Result<(), String> {
        match self {
            Some(value) => value.__check_digits(digits, places),
            None => Ok(()),
        }
    }

    fn __to_json(&self) -> serde_json::Value {
        self.as_ref()
            .map_or(serde_json::Value::Null, BuiltinType::__to_json)
    }
}
impl<T: sealed::NonOption> sealed::Sealed for Option<T> {}

/// Integers without a column type of their own on every backend (PostgreSQL has no unsigned
/// or one-byte integers), stored in the next wider signed integer; a stored value out of the
/// type's range is a decode error.
macro_rules! widened_integers {
    ($($ty:ty => $stored:ty),*) => {$(
        impl FieldType for $ty {
            type Stored = $stored;
            #[inline]
            fn to_stored(&self) -> $stored {
                <$stored>::from(*self)
            }
            #[inline]
            fn from_stored(stored: $stored) -> std::result::Result<Self, BoxDynError> {
                <$ty>::try_from(stored).map_err(|_| {
                    format!("{stored} is out of range for `{}`", stringify!($ty)).into()
                })
            }
        }
    )*};
}
widened_integers!(i8 => i16, u8 => i16, u16 => i32, u32 => i64);
