//! SQLite values: how each field type is stored and read.
//!
//! Statements of a transaction run on the SQLite handle itself (see `conn::sqlite_raw`), the others
//! through sqlx; both go through these functions, so a row reads and writes the same either
//! way. Each one mirrors sqlx-sqlite 0.9 (`src/types/*.rs`): the same storage (text formats of
//! dates included) and the same values accepted on reading, so rows written by sqlx code of
//! your own read back here, and the other way round. `tests/tests/types.rs` checks both
//! directions for every type.
//!
//! Uses nothing else of the crate.

use chrono::{
    DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset as _, SecondsFormat,
    TimeZone as _, Utc,
};
use sqlx::error::BoxDynError;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row as _, Sqlite, TypeInfo as _, ValueRef as _};

#[doc(hidden)]
pub use rusqlite::types::{Value as SqlValue, ValueRef as SqlRef};

/// The storage class of a value, as sqlx names it in its errors.
fn class(value: SqlRef<'_>) -> &'static str {
    match value {
        SqlRef::Null => "NULL",
        SqlRef::Integer(_) => "INTEGER",
        SqlRef::Real(_) => "REAL",
        SqlRef::Text(_) => "TEXT",
        SqlRef::Blob(_) => "BLOB",
    }
}

fn mismatch(rust: &str, value: SqlRef<'_>) -> BoxDynError {
    format!(
        "mismatched types; Rust type `{rust}` is not compatible with SQLite value of type `{}`",
        class(value)
    )
    .into()
}

pub(crate) fn encode_bool(v: &bool) -> SqlValue {
    SqlValue::Integer(i64::from(*v))
}

pub(crate) fn decode_bool(value: SqlRef<'_>) -> Result<bool, BoxDynError> {
    match value {
        SqlRef::Integer(i) => Ok(i != 0),
        other => Err(mismatch("bool", other)),
    }
}

pub(crate) fn encode_int<T: Copy + Into<i64>>(v: &T) -> SqlValue {
    SqlValue::Integer((*v).into())
}

pub(crate) fn decode_int<T: TryFrom<i64>>(value: SqlRef<'_>) -> Result<T, BoxDynError>
where
    T::Error: std::error::Error + Send + Sync + 'static,
{
    match value {
        SqlRef::Integer(i) => Ok(T::try_from(i)?),
        other => Err(mismatch(std::any::type_name::<T>(), other)),
    }
}

pub(crate) fn encode_f32(v: &f32) -> SqlValue {
    SqlValue::Real(f64::from(*v))
}

pub(crate) fn decode_f32(value: SqlRef<'_>) -> Result<f32, BoxDynError> {
    match value {
        #[allow(clippy::cast_possible_truncation)]
        SqlRef::Real(f) => Ok(f as f32),
        other => Err(mismatch("f32", other)),
    }
}

pub(crate) fn encode_f64(v: &f64) -> SqlValue {
    SqlValue::Real(*v)
}

pub(crate) fn decode_f64(value: SqlRef<'_>) -> Result<f64, BoxDynError> {
    match value {
        SqlRef::Real(f) => Ok(f),
        other => Err(mismatch("f64", other)),
    }
}

pub(crate) fn decode_string(value: SqlRef<'_>) -> Result<String, BoxDynError> {
    match value {
        SqlRef::Text(t) => Ok(std::str::from_utf8(t)?.to_owned()),
        other => Err(mismatch("String", other)),
    }
}

pub(crate) fn encode_bytes(v: &[u8]) -> SqlValue {
    SqlValue::Blob(v.to_vec())
}

pub(crate) fn decode_bytes(value: SqlRef<'_>) -> Result<Vec<u8>, BoxDynError> {
    match value {
        SqlRef::Blob(b) | SqlRef::Text(b) => Ok(b.to_vec()),
        other => Err(mismatch("Vec<u8>", other)),
    }
}

/// The 16 bytes, as a BLOB.
pub(crate) fn encode_uuid(v: &uuid::Uuid) -> SqlValue {
    SqlValue::Blob(v.as_bytes().to_vec())
}

pub(crate) fn decode_uuid(value: SqlRef<'_>) -> Result<uuid::Uuid, BoxDynError> {
    match value {
        SqlRef::Blob(b) | SqlRef::Text(b) => Ok(uuid::Uuid::from_slice(b)?),
        other => Err(mismatch("Uuid", other)),
    }
}

/// `2024-02-29`.
pub(crate) fn encode_date(v: &NaiveDate) -> SqlValue {
    SqlValue::Text(v.format("%F").to_string())
}

pub(crate) fn decode_date(value: SqlRef<'_>) -> Result<NaiveDate, BoxDynError> {
    match value {
        SqlRef::Text(t) => Ok(NaiveDate::parse_from_str(std::str::from_utf8(t)?, "%F")?),
        other => Err(mismatch("NaiveDate", other)),
    }
}

/// `13:45:00.123` (sqlx's `%T%.f`).
pub(crate) fn encode_time(v: &NaiveTime) -> SqlValue {
    SqlValue::Text(v.format("%T%.f").to_string())
}

/// A time as text in one of the formats sqlx's SQLite driver reads.
pub(crate) fn decode_time(value: SqlRef<'_>) -> Result<NaiveTime, BoxDynError> {
    let text = match value {
        SqlRef::Text(t) | SqlRef::Blob(t) => std::str::from_utf8(t)?,
        other => return Err(mismatch("NaiveTime", other)),
    };
    const FORMATS: &[&str] = &["%T.f", "%T%.f", "%R", "%RZ", "%T%.fZ", "%R%:z", "%T%.f%:z"];
    FORMATS
        .iter()
        .find_map(|format| NaiveTime::parse_from_str(text, format).ok())
        .ok_or_else(|| format!("invalid time: {text}").into())
}

/// `2024-02-29 13:45:00.123`.
pub(crate) fn encode_datetime(v: &NaiveDateTime) -> SqlValue {
    SqlValue::Text(v.format("%F %T%.f").to_string())
}

pub(crate) fn decode_datetime(value: SqlRef<'_>) -> Result<NaiveDateTime, BoxDynError> {
    Ok(datetime(value, "NaiveDateTime")?.naive_local())
}

/// RFC 3339, `2024-02-29T13:45:00.123+00:00`.
pub(crate) fn encode_utc(v: &DateTime<Utc>) -> SqlValue {
    SqlValue::Text(v.to_rfc3339_opts(SecondsFormat::AutoSi, false))
}

pub(crate) fn decode_utc(value: SqlRef<'_>) -> Result<DateTime<Utc>, BoxDynError> {
    Ok(Utc.from_utc_datetime(&datetime(value, "DateTime<Utc>")?.naive_utc()))
}

/// A date and time as text in one of SQLite's formats, as a Unix timestamp (INTEGER), or as a
/// Julian day number (REAL).
fn datetime(value: SqlRef<'_>, rust: &str) -> Result<DateTime<FixedOffset>, BoxDynError> {
    let parsed = match value {
        SqlRef::Text(t) => {
            let text = std::str::from_utf8(t)?;
            datetime_from_text(text).ok_or_else(|| format!("invalid datetime: {text}"))?
        }
        SqlRef::Integer(i) => Utc
            .fix()
            .timestamp_opt(i, 0)
            .single()
            .ok_or_else(|| format!("invalid datetime: {i}"))?,
        SqlRef::Real(f) => {
            datetime_from_julian_day(f).ok_or_else(|| format!("invalid datetime: {f}"))?
        }
        other => return Err(mismatch(rust, other)),
    };
    Ok(parsed)
}

fn datetime_from_text(value: &str) -> Option<DateTime<FixedOffset>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(value) {
        return Some(dt);
    }
    const FORMATS: &[&str] = &[
        "%F %T%.f",
        "%F %R",
        "%F %RZ",
        "%F %R%:z",
        "%F %T%.fZ",
        "%F %T%.f%:z",
        "%FT%R",
        "%FT%RZ",
        "%FT%R%:z",
        "%FT%T%.f",
        "%FT%T%.fZ",
        "%FT%T%.f%:z",
    ];
    for format in FORMATS {
        if let Ok(dt) = DateTime::parse_from_str(value, format) {
            return Some(dt);
        }
        if let Ok(dt) = NaiveDateTime::parse_from_str(value, format) {
            return Some(Utc.fix().from_utc_datetime(&dt));
        }
    }
    None
}

fn datetime_from_julian_day(value: f64) -> Option<DateTime<FixedOffset>> {
    let epoch_in_julian_days = 2_440_587.5;
    let seconds_in_day = 86400.0;
    let timestamp = (value - epoch_in_julian_days) * seconds_in_day;
    if !timestamp.is_finite() {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (seconds, nanos) = (
        timestamp.trunc() as i64,
        (timestamp.fract() * 1E9).abs() as u32,
    );
    Utc.fix().timestamp_opt(seconds, nanos).single()
}

/// JSON as TEXT, as sqlx's `Json<T>` stores it; a value serde cannot serialize (a map with
/// non-string keys) is refused.
#[cfg(feature = "json")]
pub(crate) fn encode_json<T: serde::Serialize>(v: &T) -> Result<SqlValue, BoxDynError> {
    Ok(SqlValue::Text(serde_json::to_string(v)?))
}

/// JSON from TEXT or a BLOB, as sqlx's `Json<T>` reads it.
#[cfg(feature = "json")]
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    value: SqlRef<'_>,
) -> Result<T, BoxDynError> {
    match value {
        SqlRef::Text(t) | SqlRef::Blob(t) => Ok(serde_json::from_slice(t)?),
        other => Err(mismatch("Json", other)),
    }
}

/// A decimal as TEXT with its scale (`1.50`), which SQLite keeps exactly in a TEXT column
/// (a NUMERIC one would turn it into the REAL `1.5`).
#[cfg(feature = "decimal")]
pub(crate) fn encode_decimal(v: &rust_decimal::Decimal) -> SqlValue {
    SqlValue::Text(v.to_string())
}

/// A decimal from TEXT (exactly, or an error when it has more digits than `Decimal` holds),
/// or from the INTEGER or REAL a NUMERIC column (Django's on SQLite) turned it into.
#[cfg(feature = "decimal")]
pub(crate) fn decode_decimal(value: SqlRef<'_>) -> Result<rust_decimal::Decimal, BoxDynError> {
    use rust_decimal::Decimal;
    match value {
        SqlRef::Text(t) => {
            let text = std::str::from_utf8(t)?;
            Decimal::from_str_exact(text)
                .or_else(|_| Decimal::from_scientific(text))
                .map_err(|e| format!("invalid decimal {text:?}: {e}").into())
        }
        SqlRef::Integer(i) => Ok(Decimal::from(i)),
        SqlRef::Real(f) => Ok(Decimal::try_from(f)?),
        other => Err(mismatch("Decimal", other)),
    }
}

/// Column `index` of a row read through sqlx, as the value SQLite holds.
pub(crate) fn from_sqlx_row(row: &SqliteRow, index: usize) -> Result<SqlRef<'_>, sqlx::Error> {
    let value = row.try_get_raw(index)?;
    if value.is_null() {
        return Ok(SqlRef::Null);
    }
    let decoded = match value.type_info().name() {
        "INTEGER" => <i64 as Decode<Sqlite>>::decode(value).map(SqlRef::Integer),
        "REAL" => <f64 as Decode<Sqlite>>::decode(value).map(SqlRef::Real),
        "TEXT" => <&[u8] as Decode<Sqlite>>::decode(value).map(SqlRef::Text),
        _ => <&[u8] as Decode<Sqlite>>::decode(value).map(SqlRef::Blob),
    };
    decoded.map_err(sqlx::Error::Decode)
}

/// Column `index` of a row read on the handle.
pub(crate) fn from_raw_row<'r>(
    row: &'r rusqlite::Row<'_>,
    index: usize,
) -> Result<SqlRef<'r>, sqlx::Error> {
    row.get_ref(index)
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_stored_as_sqlx_stores_them() {
        let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap_or_default();
        assert_eq!(encode_date(&date), SqlValue::Text("2024-02-29".into()));
        let dt = date.and_hms_milli_opt(13, 45, 0, 123).unwrap_or_default();
        assert_eq!(
            encode_datetime(&dt),
            SqlValue::Text("2024-02-29 13:45:00.123".into())
        );
        assert_eq!(
            encode_utc(&dt.and_utc()),
            SqlValue::Text("2024-02-29T13:45:00.123+00:00".into())
        );
    }

    #[test]
    fn dates_are_read_as_sqlx_reads_them() {
        let want = NaiveDate::from_ymd_opt(1970, 1, 2)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default();
        for value in [
            SqlRef::Text(b"1970-01-02 00:00:00"),
            SqlRef::Text(b"1970-01-02T00:00"),
            SqlRef::Text(b"1970-01-02T00:00:00Z"),
            SqlRef::Integer(86_400),
            SqlRef::Real(2_440_588.5),
        ] {
            assert_eq!(decode_datetime(value).ok(), Some(want), "{value:?}");
        }
        // An offset is kept as local time by `NaiveDateTime`, converted by `DateTime<Utc>`.
        let offset = SqlRef::Text(b"1970-01-02T01:00:00+01:00");
        assert_eq!(decode_utc(offset).ok(), Some(want.and_utc()));
        assert_eq!(
            decode_datetime(offset)
                .ok()
                .map(|d| d.format("%T").to_string()),
            Some("01:00:00".into())
        );
        assert!(decode_datetime(SqlRef::Blob(b"x")).is_err());
        assert!(decode_date(SqlRef::Integer(1)).is_err());
        assert!(decode_int::<i16>(SqlRef::Integer(1 << 20)).is_err());
        assert!(decode_f64(SqlRef::Integer(1)).is_err());
        assert!(decode_string(SqlRef::Blob(b"x")).is_err());
        assert_eq!(decode_bytes(SqlRef::Text(b"x")).ok(), Some(b"x".to_vec()));
    }
}
