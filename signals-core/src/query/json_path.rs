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
        // SQLite's paths cannot escape `"` or `\`; MariaDB's parser finds no key with a
        // control character or one starting with `-` inside its quotes.
        if key.contains(['"', '\\']) || key.chars().any(char::is_control) || key.starts_with('-') {
            return Err(Error::InvalidQuery(format!(
                "the JSON key {key:?} of `{column}` holds `\"`, `\\` or a control character, or \
                 starts with `-`, which not every backend's JSON paths can spell"
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
    match test {
        // No value is NaN, above +∞ or below -∞ (and MySQL cannot bind them).
        Test::Number(op, n) if !n.is_finite() => {
            let every_number = match *op {
                "<" | "<=" => *n == f64::INFINITY,
                ">" | ">=" => *n == f64::NEG_INFINITY,
                _ => false,
            };
            if every_number {
                return is_number(sql, column, path, &dotted);
            }
            sql.push("1 = 0");
            return Ok(());
        }
        // PostgreSQL's JSON cannot hold NUL: no value there is a text with one.
        Test::Text(text) if sql.backend() == Backend::Postgres && text.contains('\0') => {
            sql.push("1 = 0");
            return Ok(());
        }
        _ => {}
    }
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
                    // As a 64-bit float, as the servers compare: an INTEGER past 2^53 would
                    // be compared exactly with the bound REAL.
                    sql.push(" IN ('integer', 'real') THEN CAST(");
                    call(sql, "json_extract")?;
                    sql.push(" AS REAL) END ").push(op).push(" ");
                    sql.bind_as(n, column)?;
                }
            }
        }
    }
    Ok(())
}

/// Writes the condition that the value at `path` of `column` is a number.
fn is_number(sql: &mut Sql, column: &'static str, path: &[String], dotted: &str) -> Result<()> {
    match sql.backend() {
        Backend::Postgres => {
            sql.push("jsonb_typeof(").column(column);
            for key in path {
                sql.push(" -> ");
                sql.bind_as(key, column)?;
            }
            sql.push(") = 'number'");
        }
        Backend::MySql => {
            sql.push("JSON_TYPE(JSON_EXTRACT(")
                .column(column)
                .push(", ");
            sql.bind_as(&dotted.to_owned(), column)?
                .push(")) IN ('INTEGER', 'DOUBLE', 'DECIMAL', 'UNSIGNED INTEGER')");
        }
        Backend::Sqlite => {
            sql.push("json_type(").column(column).push(", ");
            sql.bind_as(&dotted.to_owned(), column)?
                .push(") IN ('integer', 'real')");
        }
    }
    Ok(())
}
