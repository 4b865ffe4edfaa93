//! Which database a [`Db`](crate::Db) talks to, and the dialect facts the SQL text needs:
//! identifier quoting, placeholders, how a generated key is read back, how many values one
//! statement may bind, how an insert skips a row whose key exists. Each fact lives here
//! once; [`Sql`](crate::Sql) and the statements read it.
//!
//! Uses nothing else of the crate.

use std::fmt::{self, Write as _};

/// The database a [`Db`](crate::Db) talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite, embedded (sqlx's bundled libsqlite3).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Backend {
    /// Index used for per-backend caches.
    pub(crate) const fn index(self) -> usize {
        match self {
            Backend::Sqlite => 0,
            Backend::Postgres => 1,
            Backend::MySql => 2,
        }
    }

    /// Appends `name` as a quoted identifier: `"name"`, or `` `name` `` on MySQL, with the
    /// quote character doubled inside.
    pub(crate) fn quote(self, out: &mut String, name: &str) {
        let q = if self == Backend::MySql { '`' } else { '"' };
        out.push(q);
        for c in name.chars() {
            if c == q {
                out.push(q);
            }
            out.push(c);
        }
        out.push(q);
    }

    /// Appends the placeholder of the `n`th parameter (from 1): `$n` on PostgreSQL, `?`
    /// elsewhere.
    pub(crate) fn placeholder(self, out: &mut String, n: usize) {
        if self == Backend::Postgres {
            let _ = write!(out, "${n}");
        } else {
            out.push('?');
        }
    }

    /// Whether an INSERT reads the key the database generated with `RETURNING` (PostgreSQL,
    /// whose drivers report no last insert id) rather than from the statement's outcome.
    pub(crate) const fn returns_generated_key(self) -> bool {
        matches!(self, Backend::Postgres)
    }

    /// How many values one statement may bind: SQLite's `SQLITE_MAX_VARIABLE_NUMBER` (32,766),
    /// the 65,535 of PostgreSQL's and MySQL's protocols.
    ///
    /// ```
    /// assert_eq!(signals_core::Backend::Sqlite.max_params(), 32_766);
    /// ```
    pub const fn max_params(self) -> usize {
        match self {
            Backend::Sqlite => 32_766,
            Backend::Postgres | Backend::MySql => 65_535,
        }
    }

    /// How an INSERT that skips rows whose unique key exists starts and ends:
    /// `INSERT OR IGNORE INTO` on SQLite, `INSERT INTO .. ON CONFLICT DO NOTHING` on
    /// PostgreSQL, `INSERT IGNORE INTO` on MySQL.
    ///
    /// ```
    /// use signals_core::Backend;
    /// assert_eq!(Backend::Postgres.insert_or_ignore(), ("INSERT INTO ", " ON CONFLICT DO NOTHING"));
    /// assert_eq!(Backend::MySql.insert_or_ignore(), ("INSERT IGNORE INTO ", ""));
    /// ```
    pub const fn insert_or_ignore(self) -> (&'static str, &'static str) {
        match self {
            Backend::Sqlite => ("INSERT OR IGNORE INTO ", ""),
            Backend::Postgres => ("INSERT INTO ", " ON CONFLICT DO NOTHING"),
            Backend::MySql => ("INSERT IGNORE INTO ", ""),
        }
    }
}

/// At most this many rows go in one multi-row statement, one `IN` list and one batch of a
/// bulk write, whatever the backend's limit of bound values allows: it bounds a statement's
/// size (MySQL's `max_allowed_packet`) and a batch's.
pub const MAX_CHUNK_ROWS: usize = 1000;

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
            Backend::MySql => "MySQL",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn quoting_and_placeholders() {
        let mut s = String::new();
        Backend::MySql.quote(&mut s, "a`b");
        Backend::Postgres.quote(&mut s, "c\"d");
        Backend::Postgres.placeholder(&mut s, 3);
        Backend::Sqlite.placeholder(&mut s, 3);
        assert_eq!(s, "`a``b`\"c\"\"d\"$3?");
    }
}
