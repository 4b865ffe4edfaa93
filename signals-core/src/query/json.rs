//! Conditions on the values inside JSON columns, by key ([`JsonKey`]): Django's
//! `attributes__color="red"`, the same rows on every backend (PostgreSQL's JSONB operators,
//! MySQL's and SQLite's JSON functions).
//!
//! Uses `backend`, `error`, `sql` and `meta`.

use std::marker::PhantomData;

use super::filter::{Filter, Node};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::meta::Column;
use crate::sql::Sql;
use crate::value::FieldType;

/// A key inside the JSON objects of a column of model `M` (`Product::ATTRIBUTES.key("color")`),
/// or deeper (`.key("size").key("width")`), for conditions on the value it holds. A row
/// whose value there is missing, or of another JSON type than the condition's, does not
/// match (and does match its negation).
///
/// Values are compared as JSON values, the same way on every backend: a string with a
/// string (code point by code point), a number with a number (as 64-bit floats: `3` is
/// `3.0`), a boolean with a boolean. A key holding `"3"` does not equal `3`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use serde_json::json;
/// use signals_core::{Db, Model};
///
/// #[derive(Model)]
/// struct Product { id: Option<i64>, attributes: serde_json::Value }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.create_tables::<Product>().await?;
/// for attributes in [
///     json!({"color": "red", "size": {"width": 30}, "stock": true}),
///     json!({"color": "blue", "size": {"width": 12.5}}),
///     json!({"color": null}),
///     json!({"colour": "red"}),
/// ] {
///     Product { id: None, attributes }.save(&db).await?;
/// }
/// let count = |filter| async { Product::query().filter(filter).count(&db).await };
/// assert_eq!(count(Product::ATTRIBUTES.key("color").eq("red")).await?, 1);
/// assert_eq!(count(Product::ATTRIBUTES.key("size").key("width").gt(20)).await?, 1);
/// assert_eq!(count(Product::ATTRIBUTES.key("stock").eq(true)).await?, 1);
/// assert_eq!(count(Product::ATTRIBUTES.key("color").is_null()).await?, 1);
/// assert_eq!(count(Product::ATTRIBUTES.key("color").exists()).await?, 3);
/// assert_eq!(count(!Product::ATTRIBUTES.key("color").eq("red")).await?, 3);
/// # Ok(()) }
/// ```
pub struct JsonKey<M> {
    column: &'static str,
    path: Vec<String>,
    _model: PhantomData<fn() -> M>,
}

impl<M> std::fmt::Debug for JsonKey<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonKey({}", self.column)?;
        for key in &self.path {
            write!(f, " -> {key:?}")?;
        }
        f.write_str(")")
    }
}

/// What a JSON condition asks of the value at a key.
pub(crate) enum Test {
    /// There is a value (JSON `null` too).
    Exists,
    /// JSON `null`.
    Null,
    Text(String),
    Bool(bool),
    /// A number, compared with `op` (`=`, `<`, ...).
    Number(&'static str, f64),
}

/// A JSON value a key can be compared with: a string, a number or a boolean.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be compared with a value inside JSON",
    label = "compare a JSON key with a string, a number or a bool (`is_null` for JSON null)"
)]
pub trait JsonScalar {
    #[doc(hidden)]
    fn __test(self) -> JsonTest;
}

/// A JSON condition's test, for [`JsonScalar`].
#[doc(hidden)]
pub struct JsonTest(pub(crate) Test);

impl JsonScalar for &str {
    fn __test(self) -> JsonTest {
        JsonTest(Test::Text(self.to_owned()))
    }
}
impl JsonScalar for String {
    fn __test(self) -> JsonTest {
        JsonTest(Test::Text(self))
    }
}
impl JsonScalar for bool {
    fn __test(self) -> JsonTest {
        JsonTest(Test::Bool(self))
    }
}
macro_rules! json_numbers {
    ($($ty:ty),*) => {$(
        impl JsonScalar for $ty {
            #[allow(clippy::cast_precision_loss, clippy::cast_lossless)]
            fn __test(self) -> JsonTest {
                JsonTest(Test::Number("=", self as f64))
            }
        }
    )*};
}
json_numbers!(i8, i16, i32, i64, u8, u16, u32, f32, f64);

/// A field type stored as JSON (`serde_json::Value`, `Json<T>`, or an `Option` of one).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not stored as JSON",
    label = "`key` needs a JSON column: `serde_json::Value`, `Json<T>`, or an `Option` of one"
)]
pub trait JsonField: FieldType {}
impl<T: FieldType> JsonField for T where T::Stored: stored::StoredAsJson {}

mod stored {
    /// The built-in types holding JSON.
    pub trait StoredAsJson {}
    #[cfg(feature = "json")]
    impl StoredAsJson for serde_json::Value {}
    #[cfg(feature = "json")]
    impl StoredAsJson for Option<serde_json::Value> {}
    #[cfg(feature = "json")]
    impl<T> StoredAsJson for sqlx::types::Json<T> {}
    #[cfg(feature = "json")]
    impl<T> StoredAsJson for Option<sqlx::types::Json<T>> {}
}

impl<M, T: FieldType, R> Column<M, T, R> {
    /// The value at key `name` of this JSON column's objects: see [`JsonKey`].
    pub fn key(self, name: impl Into<String>) -> JsonKey<M>
    where
        T: JsonField,
    {
        JsonKey {
            column: self.name(),
            path: vec![name.into()],
            _model: PhantomData,
        }
    }
}

impl<M> JsonKey<M> {
    /// The value at key `name` of the object at this key.
    pub fn key(mut self, name: impl Into<String>) -> JsonKey<M> {
        self.path.push(name.into());
        self
    }

    fn test(self, test: Test) -> Filter<M> {
        Filter::new(Node::Json {
            column: self.column,
            path: self.path,
            test,
        })
    }

    /// Rows whose value at the key equals `value` (a string, a number or a bool, of the
    /// same JSON type).
    pub fn eq(self, value: impl JsonScalar) -> Filter<M> {
        self.test(value.__test().0)
    }

    /// Rows whose value at the key is JSON `null` (not a missing key: see
    /// [`exists`](Self::exists)).
    pub fn is_null(self) -> Filter<M> {
        self.test(Test::Null)
    }

    /// Rows whose objects have the key, whatever its value (JSON `null` too).
    pub fn exists(self) -> Filter<M> {
        self.test(Test::Exists)
    }

    fn number(self, op: &'static str, n: impl Into<f64>) -> Filter<M> {
        self.test(Test::Number(op, n.into()))
    }

    /// Rows whose value at the key is a number greater than `n`.
    pub fn gt(self, n: impl Into<f64>) -> Filter<M> {
        self.number(">", n)
    }

    /// Rows whose value at the key is a number at least `n`.
    pub fn ge(self, n: impl Into<f64>) -> Filter<M> {
        self.number(">=", n)
    }

    /// Rows whose value at the key is a number less than `n`.
    pub fn lt(self, n: impl Into<f64>) -> Filter<M> {
        self.number("<", n)
    }

    /// Rows whose value at the key is a number at most `n`.
    pub fn le(self, n: impl Into<f64>) -> Filter<M> {
        self.number("<=", n)
    }
}

/// The JSON path of `path` for MySQL and SQLite, `$."a"."b"`; keys they cannot spell there
/// (with `"` or `\`, which SQLite's paths cannot escape) are refused.
fn dotted(column: &str, path: &[String]) -> Result<String> {
    let mut out = String::from("$");
    for key in path {
        if key.contains(['"', '\\', '\0']) {
            return Err(Error::InvalidQuery(format!(
                "the JSON key {key:?} of `{column}` holds `\"`, `\\` or NUL, which not every \
                 backend's JSON paths can spell"
            )));
        }
        out.push_str(".\"");
        out.push_str(key);
        out.push('"');
    }
    Ok(out)
}

/// Writes the condition that the value at `path` of `column` passes `test`, binding the
/// keys (PostgreSQL) or the path (MySQL, SQLite) and the value.
pub(super) fn write(
    sql: &mut Sql,
    column: &'static str,
    path: &[String],
    test: &Test,
) -> Result<()> {
    // Refused alike on every backend.
    let dotted = dotted(column, path)?;
    match sql.backend() {
        Backend::Postgres => {
            let value = |sql: &mut Sql| -> Result<()> {
                sql.push("(").column(column);
                for key in path {
                    sql.push(" -> ");
                    sql.bind_as(key, column)?;
                }
                sql.push(")");
                Ok(())
            };
            match test {
                Test::Exists => {
                    value(sql)?;
                    sql.push(" IS NOT NULL");
                }
                Test::Null => {
                    value(sql)?;
                    sql.push(" = 'null'::jsonb");
                }
                Test::Text(text) => {
                    value(sql)?;
                    sql.push(" = to_jsonb(CAST(");
                    sql.bind_as(text, column)?.push(" AS TEXT))");
                }
                Test::Bool(b) => {
                    value(sql)?;
                    sql.push(if *b {
                        " = 'true'::jsonb"
                    } else {
                        " = 'false'::jsonb"
                    });
                }
                Test::Number(op, n) => {
                    // CASE: no cast of a value that is no number.
                    sql.push("CASE WHEN jsonb_typeof(");
                    value(sql)?;
                    sql.push(") = 'number' THEN CAST(");
                    value(sql)?;
                    sql.push(" #>> '{}' AS DOUBLE PRECISION) END ")
                        .push(op)
                        .push(" ");
                    sql.bind_as(n, column)?;
                }
            }
        }
        Backend::MySql => {
            let value = |sql: &mut Sql| -> Result<()> {
                sql.push("JSON_EXTRACT(").column(column).push(", ");
                sql.bind_as(&dotted, column)?.push(")");
                Ok(())
            };
            let typed = |sql: &mut Sql, types: &str| -> Result<()> {
                sql.push("JSON_TYPE(");
                value(sql)?;
                sql.push(") IN (").push(types).push(")");
                Ok(())
            };
            match test {
                Test::Exists => {
                    value(sql)?;
                    sql.push(" IS NOT NULL");
                }
                Test::Null => typed(sql, "'NULL'")?,
                Test::Text(text) => {
                    sql.push("(");
                    typed(sql, "'STRING'")?;
                    sql.push(" AND CAST(JSON_UNQUOTE(");
                    value(sql)?;
                    sql.push(") AS BINARY) = CAST(");
                    sql.bind_as(text, column)?.push(" AS BINARY))");
                }
                Test::Bool(b) => {
                    sql.push("(");
                    typed(sql, "'BOOLEAN'")?;
                    sql.push(" AND JSON_UNQUOTE(");
                    value(sql)?;
                    sql.push(if *b { ") = 'true')" } else { ") = 'false')" });
                }
                Test::Number(op, n) => {
                    sql.push("CASE WHEN ");
                    typed(sql, "'INTEGER', 'DOUBLE', 'DECIMAL', 'UNSIGNED INTEGER'")?;
                    sql.push(" THEN CAST(JSON_UNQUOTE(");
                    value(sql)?;
                    sql.push(") AS DOUBLE) END ").push(op).push(" ");
                    sql.bind_as(n, column)?;
                }
            }
        }
        Backend::Sqlite => {
            let call = |sql: &mut Sql, function: &str| -> Result<()> {
                sql.push(function).push("(").column(column).push(", ");
                sql.bind_as(&dotted, column)?.push(")");
                Ok(())
            };
            match test {
                Test::Exists => {
                    call(sql, "json_type")?;
                    sql.push(" IS NOT NULL");
                }
                Test::Null => {
                    call(sql, "json_type")?;
                    sql.push(" = 'null'");
                }
                Test::Text(text) => {
                    sql.push("(");
                    call(sql, "json_type")?;
                    sql.push(" = 'text' AND CAST(");
                    call(sql, "json_extract")?;
                    sql.push(" AS BLOB) = CAST(");
                    sql.bind_as(text, column)?.push(" AS BLOB))");
                }
                Test::Bool(b) => {
                    call(sql, "json_type")?;
                    sql.push(if *b { " = 'true'" } else { " = 'false'" });
                }
                Test::Number(op, n) => {
                    sql.push("CASE WHEN ");
                    call(sql, "json_type")?;
                    sql.push(" IN ('integer', 'real') THEN ");
                    call(sql, "json_extract")?;
                    sql.push(" END ").push(op).push(" ");
                    sql.bind_as(n, column)?;
                }
            }
        }
    }
    Ok(())
}
