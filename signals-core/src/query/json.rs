//! Conditions on the values inside JSON columns, by key ([`JsonKey`]): Django's
//! `attributes__color="red"`, the same rows on every backend (PostgreSQL's JSONB operators,
//! MySQL's and SQLite's JSON functions).
//!
//! Uses `backend`, `error`, `sql` and `meta`.

use std::marker::PhantomData;

use super::filter::{Filter, Node};
use super::json_path::Test;
use crate::meta::Column;
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
