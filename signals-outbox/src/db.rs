//! Statements of the outbox's own tables on the three backends: written once with `?`
//! placeholders (numbered for PostgreSQL here), values bound, run on a pool or on a
//! transaction's connection.

use signals_core::sqlx::{self, AssertSqlSafe, Row as _};
use signals_core::{Backend, ConnRef, PoolRef};

use crate::error::{Error, Result};

/// Where a statement runs.
pub(crate) enum On<'a> {
    Pool(PoolRef<'a>),
    Conn(ConnRef<'a>),
}

/// A bound value.
#[derive(Debug, Clone)]
pub(crate) enum V {
    I(i64),
    T(String),
}

/// How to read a column.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Col {
    I,
    T,
}

/// `sql` with `?` turned into `$1`, `$2`.. for PostgreSQL. The outbox's statements hold no
/// `?` of their own.
pub(crate) fn text(backend: Backend, sql: &str) -> String {
    if backend != Backend::Postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// `INSERT .. VALUES (values)` that does nothing when the row's key exists:
/// `INSERT OR IGNORE` on SQLite, `ON CONFLICT DO NOTHING` on PostgreSQL, `INSERT IGNORE` on
/// MySQL.
pub(crate) fn insert_ignore(backend: Backend, table: &str, columns: &str, values: &str) -> String {
    match backend {
        Backend::Sqlite => format!("INSERT OR IGNORE INTO {table} ({columns}) VALUES {values}"),
        Backend::Postgres => {
            format!("INSERT INTO {table} ({columns}) VALUES {values} ON CONFLICT DO NOTHING")
        }
        _ => format!("INSERT IGNORE INTO {table} ({columns}) VALUES {values}"),
    }
}

/// `?, ?, ..` for `n` values.
pub(crate) fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Runs `$body` once per backend and handle, `$e` bound to the sqlx executor.
macro_rules! on {
    ($on:expr, |$e:ident| $body:expr) => {
        match $on {
            On::Pool(PoolRef::Sqlite($e)) => $body,
            On::Pool(PoolRef::Postgres($e)) => $body,
            On::Pool(PoolRef::MySql($e)) => $body,
            On::Conn(ConnRef::Sqlite($e)) => $body,
            On::Conn(ConnRef::Postgres($e)) => $body,
            On::Conn(ConnRef::MySql($e)) => $body,
            _ => Err(Error::Config(
                "a database backend this crate does not know".into(),
            )),
        }
    };
}

macro_rules! bound {
    ($sql:expr, $vals:expr) => {{
        let mut q = sqlx::query(AssertSqlSafe($sql));
        for v in $vals {
            q = match v {
                V::I(i) => q.bind(*i),
                V::T(s) => q.bind(s.clone()),
            };
        }
        q
    }};
}

/// Runs a statement; returns the rows it changed.
pub(crate) async fn execute(on: On<'_>, backend: Backend, sql: &str, vals: &[V]) -> Result<u64> {
    let sql = text(backend, sql);
    on!(on, |e| Ok(bound!(sql, vals)
        .execute(e)
        .await?
        .rows_affected()))
}

/// Runs a query; returns its rows, each column read as `cols` says.
pub(crate) async fn fetch(
    on: On<'_>,
    backend: Backend,
    sql: &str,
    vals: &[V],
    cols: &[Col],
) -> Result<Vec<Vec<V>>> {
    let sql = text(backend, sql);
    on!(on, |e| {
        let rows = bound!(sql, vals).fetch_all(e).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut values = Vec::with_capacity(cols.len());
            for (i, col) in cols.iter().enumerate() {
                values.push(match col {
                    Col::I => V::I(row.try_get::<i64, _>(i)?),
                    Col::T => V::T(row.try_get::<String, _>(i)?),
                });
            }
            out.push(values);
        }
        Ok(out)
    })
}

impl V {
    pub(crate) fn int(&self) -> i64 {
        match self {
            V::I(i) => *i,
            _ => 0,
        }
    }

    pub(crate) fn into_text(self) -> String {
        match self {
            V::T(s) => s,
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_per_backend() {
        assert_eq!(
            text(Backend::Postgres, "a = ? AND b IN (?, ?)"),
            "a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(text(Backend::MySql, "a = ?"), "a = ?");
        assert_eq!(marks(3), "?, ?, ?");
    }
}
