//! The SQL of text conditions and orderings: case-sensitive (`contains`, ...) and ignoring
//! the case of ASCII letters (`icontains`, ...), and orderings by code point, each the same on
//! every backend. The conditions themselves are `Column`'s, in `filter`.
//!
//! Uses `backend`, `error`, `sql` and `value`.

use crate::backend::Backend;
use crate::error::Result;
use crate::sql::Sql;
use crate::value::FieldType;

/// Where a text must stand in a column's value.
#[derive(Clone, Copy)]
pub(crate) enum Anchor {
    Anywhere,
    Start,
    End,
    /// The whole value.
    Exact,
}

/// Writes `column` with its ASCII capitals made small, and nothing else changed, the same on
/// every backend: SQLite's `lower` does just that; PostgreSQL's and MySQL's would also fold
/// other letters (by the locale or the column's collation), so they get `translate` and a
/// `REPLACE` per capital.
pub(super) fn write_folded(sql: &mut Sql, column: &str) {
    const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    match sql.backend() {
        Backend::Sqlite => {
            sql.push("lower(").column(column).push(")");
        }
        Backend::Postgres => {
            sql.push("translate(").column(column).push(", '");
            sql.push(UPPER)
                .push("', '")
                .push(&UPPER.to_ascii_lowercase())
                .push("')");
        }
        Backend::MySql => {
            for _ in 0..UPPER.len() {
                sql.push("REPLACE(");
            }
            sql.column(column);
            for c in UPPER.chars() {
                // Letters of the crate's own: no text of the caller's reaches the SQL.
                sql.push(&format!(", '{c}', '{}')", c.to_ascii_lowercase()));
            }
        }
    }
}

/// Writes `column` for an ordering that is the same on every backend: by its characters'
/// code points (byte order in UTF-8), whatever the database's or the column's collation.
pub(crate) fn write_binary(sql: &mut Sql, column: &str, fold: bool) {
    let write = |sql: &mut Sql| {
        if fold {
            write_folded(sql, column);
        } else {
            sql.column(column);
        }
    };
    match sql.backend() {
        Backend::Postgres => {
            write(sql);
            sql.push(" COLLATE \"C\"");
        }
        Backend::MySql => {
            sql.push("CAST(");
            write(sql);
            sql.push(" AS BINARY)");
        }
        Backend::Sqlite => {
            write(sql);
            sql.push(" COLLATE BINARY");
        }
    }
}

/// The escape character of the crate's `LIKE` patterns, given in an explicit `ESCAPE` clause:
/// a backslash would depend on the server's mode (MySQL's `NO_BACKSLASH_ESCAPES` makes it an
/// ordinary character, and `%` matched anything after it), and `!` is no wildcard anywhere.
const LIKE_ESCAPE: char = '!';
const LIKE_ESCAPE_STR: &str = "!";

impl Anchor {
    /// The `LIKE` pattern matching `text` here (PostgreSQL and MySQL): `%`, `_` and the escape
    /// character escaped with [`LIKE_ESCAPE`].
    fn like_pattern(self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 2);
        if matches!(self, Anchor::Anywhere | Anchor::End) {
            out.push('%');
        }
        for c in text.chars() {
            if matches!(c, '%' | '_' | LIKE_ESCAPE) {
                out.push(LIKE_ESCAPE);
            }
            out.push(c);
        }
        if matches!(self, Anchor::Anywhere | Anchor::Start) {
            out.push('%');
        }
        out
    }

    /// Writes the condition that `column` holds `text` here, binding `text`.
    ///
    /// - PostgreSQL and MySQL: `LIKE` (MySQL: `LIKE BINARY`, case-sensitive whatever the
    ///   column's collation) with an explicit `ESCAPE`, which holds in every `sql_mode`.
    /// - SQLite, whose `LIKE` ignores case and whose `GLOB` stops at a NUL character (so
    ///   `"a\0b"` did not end with `"b"`, and a pattern with a NUL matched every row): byte
    ///   comparisons, which count NULs like any other character, `instr` for "anywhere" and
    ///   `substr` of the value as a BLOB for either end (UTF-8 makes a byte match a character
    ///   match).
    /// - PostgreSQL text cannot hold NUL, so no value there holds a text with one: the
    ///   condition is false for every value (and NULL for NULL, as `LIKE` would be).
    ///
    /// With `fold`, the value's ASCII capitals are made small first ([`write_folded`]) and
    /// so are the text's: `Ab` matches `aB`, but `É` only `É`.
    pub(super) fn write(
        self,
        sql: &mut Sql,
        column: &'static str,
        text: &str,
        fold: bool,
    ) -> Result<()> {
        let folded;
        let text = if fold {
            folded = text.to_ascii_lowercase();
            folded.as_str()
        } else {
            text
        };
        let value = |sql: &mut Sql| {
            if fold {
                write_folded(sql, column);
            } else {
                sql.column(column);
            }
        };
        match sql.backend() {
            Backend::Sqlite => {
                let bytes = text.len();
                if matches!(self, Anchor::Exact) {
                    sql.push("CAST(");
                    value(sql);
                    sql.push(" AS BLOB) = CAST(");
                    sql.bind_as(&text.to_owned(), column)?.push(" AS BLOB)");
                } else if bytes == 0 || matches!(self, Anchor::Anywhere) {
                    sql.push("instr(");
                    value(sql);
                    sql.push(", ");
                    sql.bind_as(&text.to_owned(), column)?.push(") > 0");
                } else {
                    // `substr` of an empty BLOB is NULL, not empty: a value shorter than the
                    // text is told apart first, so `NOT` keeps it as on the other backends
                    // (a NULL value stays NULL).
                    sql.push("(length(CAST(");
                    value(sql);
                    // Numbers of the crate's own, written as numbers.
                    sql.push(&format!(" AS BLOB)) >= {bytes} AND substr(CAST("));
                    value(sql);
                    sql.push(&if matches!(self, Anchor::Start) {
                        format!(" AS BLOB), 1, {bytes}) = CAST(")
                    } else {
                        format!(" AS BLOB), -{bytes}) = CAST(")
                    });
                    sql.bind_as(&text.to_owned(), column)?.push(" AS BLOB))");
                }
            }
            Backend::Postgres if text.contains('\0') => {
                sql.push("(").column(column).push(" IS NULL AND NULL)");
            }
            backend => {
                value(sql);
                sql.push(if backend == Backend::MySql {
                    " LIKE BINARY "
                } else {
                    " LIKE "
                });
                sql.bind_as(&self.like_pattern(text), column)?
                    .push(" ESCAPE '")
                    .push(LIKE_ESCAPE_STR)
                    .push("'");
            }
        }
        Ok(())
    }
}

/// A field type holding text, for the text conditions ([`Column::contains`](crate::Column::contains) and others).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not text",
    label = "text conditions need a column stored as text: `String`, a newtype of it, a text enum, or an `Option` of one"
)]
pub trait Text: FieldType {}
impl<T: FieldType> Text for T where T::Stored: stored::StoredAsText {}

mod stored {
    #[diagnostic::on_unimplemented(message = "`{Self}` is not stored as text")]
    /// The built-in types holding text.
    pub trait StoredAsText {}
    impl StoredAsText for String {}
    impl StoredAsText for Option<String> {}
}
