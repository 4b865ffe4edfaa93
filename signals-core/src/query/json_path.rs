//! The SQL of conditions on the values inside JSON columns ([`Test`] at a path of keys), for
//! each backend: PostgreSQL's JSONB operators, MySQL's and SQLite's JSON functions. The
//! conditions themselves are `JsonKey`'s, in `json`.
//!
//! Uses `backend`, `error` and `sql`.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::sql::Sql;

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
