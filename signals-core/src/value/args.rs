//! Arguments of one statement, built for the backend it runs on.
//!
//! Uses `error`, `backend` and the field types of `value`.

use std::fmt::Debug;

use sqlx::Arguments as _;
use sqlx::mysql::MySqlArguments;
use sqlx::postgres::PgArguments;
use sqlx::sqlite::SqliteArguments;

use super::sqlite::SqlValue;
use super::{BuiltinType, FieldType};
use crate::backend::Backend;
use crate::error::{Error, Result};

/// Arguments for one statement, for the backend of the handle it will run on.
#[doc(hidden)]
pub enum Args {
    /// SQLite values, bound either on the connection's own handle (in a transaction) or
    /// through sqlx.
    Sqlite(Vec<SqlValue>),
    Postgres(PgArguments),
    MySql(MySqlArguments),
}

impl Args {
    pub(crate) fn new(backend: Backend, capacity: usize) -> Self {
        match backend {
            Backend::Sqlite => Args::Sqlite(Vec::with_capacity(capacity)),
            Backend::Postgres => {
                let mut a = PgArguments::default();
                a.reserve(capacity, capacity * 8);
                Args::Postgres(a)
            }
            Backend::MySql => {
                let mut a = MySqlArguments::default();
                a.reserve(capacity, capacity * 8);
                Args::MySql(a)
            }
        }
    }

    fn backend(&self) -> Backend {
        match self {
            Args::Sqlite(_) => Backend::Sqlite,
            Args::Postgres(_) => Backend::Postgres,
            Args::MySql(_) => Backend::MySql,
        }
    }

    /// Binds one field value; `column` names it in the error when the value is refused.
    #[inline]
    pub fn bind<T: FieldType>(&mut self, value: &T, column: &'static str) -> Result<()> {
        value.__bind(self, column)
    }

    /// Binds one value of a built-in type.
    #[inline]
    pub fn bind_builtin<T: BuiltinType>(&mut self, value: &T, column: &'static str) -> Result<()> {
        let invalid = |reason: String| Error::InvalidValue { column, reason };
        value.__check(self.backend()).map_err(invalid)?;
        let server_form = match self {
            Args::Sqlite(_) => None,
            _ => value.__server_form(),
        };
        let value = server_form.as_ref().unwrap_or(value);
        let res = match self {
            Args::Sqlite(a) => value.__to_sqlite().map(|v| a.push(v)),
            Args::Postgres(a) => a.add(value),
            Args::MySql(a) => value.__bind_mysql(a),
        };
        res.map_err(|e| invalid(e.to_string()))
    }
}

/// SQLite values as sqlx arguments, for statements that run through sqlx.
pub(crate) fn sqlx_sqlite_args(values: Vec<SqlValue>) -> Result<SqliteArguments> {
    let mut args = SqliteArguments::default();
    args.reserve(values.len(), 0);
    for value in values {
        let res = match value {
            SqlValue::Null => args.add(None::<i64>),
            SqlValue::Integer(i) => args.add(i),
            SqlValue::Real(f) => args.add(f),
            SqlValue::Text(s) => args.add(s),
            SqlValue::Blob(b) => args.add(b),
        };
        res.map_err(|e| Error::Database(sqlx::Error::Encode(e)))?;
    }
    Ok(args)
}

/// A bindable value with its type erased, for the parent keys that relations pass around.
#[doc(hidden)]
pub(crate) trait DynField: Debug + Send + Sync {
    fn bind_to(&self, args: &mut Args, column: &'static str) -> Result<()>;

    /// Whether the value is text holding a NUL character, which PostgreSQL text cannot hold.
    fn is_text_with_nul(&self) -> bool;
}

impl<T: FieldType> DynField for T {
    fn bind_to(&self, args: &mut Args, column: &'static str) -> Result<()> {
        args.bind(self, column)
    }

    fn is_text_with_nul(&self) -> bool {
        matches!(self.to_stored().__to_sqlite(), Ok(SqlValue::Text(text)) if text.contains('\0'))
    }
}
