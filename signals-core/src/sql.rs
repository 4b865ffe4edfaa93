//! SQL text for a model, built once per model and backend from its [`ModelMeta`]. Text only:
//! nothing here executes.
//!
//! Uses `backend` (quoting, placeholders) and `meta`.

use std::fmt::Write as _;

use crate::backend::Backend;
use crate::meta::ModelMeta;

/// At most this many rows go in one multi-row statement, one `IN` list and one batch of a
/// bulk write, whatever the backend's limit of bound parameters allows: it bounds a
/// statement's size (MySQL's `max_allowed_packet`) and a batch's.
pub const MAX_CHUNK_ROWS: usize = 1000;

/// The statements a model runs, with columns in field order and the primary key bound last
/// (UPDATE, by-key statements) or first (`insert_with_key`).
#[doc(hidden)]
#[derive(Debug)]
pub struct Statements {
    /// INSERT of the non-key columns; the database assigns the key (PostgreSQL: `RETURNING`).
    pub(crate) insert: String,
    /// INSERT of the key and then the other columns.
    pub(crate) insert_with_key: String,
    /// UPDATE of the non-key columns WHERE key = ?.
    pub(crate) update: String,
    pub(crate) select_by_key: String,
    /// SELECT by key that locks the row until the transaction ends (`FOR UPDATE`; SQLite's
    /// write transactions hold the whole database already).
    pub(crate) select_by_key_for_update: String,
    pub(crate) select_all: String,
    pub(crate) delete_by_key: String,
    /// Per column: SELECT ... WHERE column = ?.
    pub(crate) select_where: Vec<String>,
    /// Per column: SELECT ... WHERE column IS NULL.
    pub(crate) select_where_null: Vec<String>,
    /// Per column: SELECT COUNT(*) ... WHERE column = ?.
    pub(crate) count_where: Vec<String>,
}

struct Writer {
    backend: Backend,
    params: usize,
}

impl Writer {
    fn new(backend: Backend) -> Self {
        Writer { backend, params: 0 }
    }

    fn ident(&self, out: &mut String, name: &str) {
        self.backend.quote(out, name);
    }

    fn param(&mut self, out: &mut String) {
        self.params += 1;
        self.backend.placeholder(out, self.params);
    }
}

impl Statements {
    /// Builds every statement of `meta` for `backend`.
    pub fn build(meta: &ModelMeta, backend: Backend) -> Statements {
        let pk = meta.columns[meta.primary_key];
        let others: Vec<&str> = meta
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != meta.primary_key)
            .map(|(_, c)| *c)
            .collect();
        let w = Writer::new(backend);
        let mut table = String::new();
        w.ident(&mut table, meta.table);
        let mut pk_q = String::new();
        w.ident(&mut pk_q, pk);
        let mut col_list = String::new();
        for (i, c) in meta.columns.iter().enumerate() {
            if i > 0 {
                col_list.push_str(", ");
            }
            w.ident(&mut col_list, c);
        }
        let select = format!("SELECT {col_list} FROM {table}");

        let insert = {
            let mut w = Writer::new(backend);
            let mut s = format!("INSERT INTO {table} ");
            if others.is_empty() {
                s.push_str(if backend == Backend::MySql {
                    "() VALUES ()"
                } else {
                    "DEFAULT VALUES"
                });
            } else {
                s.push('(');
                for (i, c) in others.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    w.ident(&mut s, c);
                }
                s.push_str(") VALUES (");
                for i in 0..others.len() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    w.param(&mut s);
                }
                s.push(')');
            }
            if backend.returns_generated_key() {
                let _ = write!(s, " RETURNING CAST({pk_q} AS BIGINT)");
            }
            s
        };

        let insert_with_key = {
            let mut w = Writer::new(backend);
            let mut s = format!("INSERT INTO {table} ({pk_q}");
            for c in &others {
                s.push_str(", ");
                w.ident(&mut s, c);
            }
            s.push_str(") VALUES (");
            for i in 0..=others.len() {
                if i > 0 {
                    s.push_str(", ");
                }
                w.param(&mut s);
            }
            s.push(')');
            s
        };

        let update = {
            let mut w = Writer::new(backend);
            let mut s = format!("UPDATE {table} SET ");
            if others.is_empty() {
                // Nothing to change: still tells whether the row exists.
                let _ = write!(s, "{pk_q} = {pk_q}");
            }
            for (i, c) in others.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                w.ident(&mut s, c);
                s.push_str(" = ");
                w.param(&mut s);
            }
            let _ = write!(s, " WHERE {pk_q} = ");
            w.param(&mut s);
            s
        };

        let by_key = |prefix: &str| {
            let mut w = Writer::new(backend);
            let mut s = format!("{prefix} WHERE {pk_q} = ");
            w.param(&mut s);
            s
        };

        let per_column = |f: &dyn Fn(&str, &mut Writer) -> String| {
            meta.columns
                .iter()
                .map(|c| {
                    let mut col = String::new();
                    w.ident(&mut col, c);
                    f(&col, &mut Writer::new(backend))
                })
                .collect::<Vec<_>>()
        };

        Statements {
            insert,
            insert_with_key,
            update,
            select_by_key: by_key(&select),
            select_by_key_for_update: if backend == Backend::Sqlite {
                by_key(&select)
            } else {
                format!("{} FOR UPDATE", by_key(&select))
            },
            select_all: format!("{select} ORDER BY {pk_q}"),
            delete_by_key: by_key(&format!("DELETE FROM {table}")),
            select_where: per_column(&|col, w| {
                let mut s = format!("{select} WHERE {col} = ");
                w.param(&mut s);
                let _ = write!(s, " ORDER BY {pk_q}");
                s
            }),
            select_where_null: per_column(&|col, _| {
                format!("{select} WHERE {col} IS NULL ORDER BY {pk_q}")
            }),
            count_where: per_column(&|col, w| {
                let mut s = format!("SELECT COUNT(*) FROM {table} WHERE {col} = ");
                w.param(&mut s);
                s
            }),
        }
    }
}

/// `UPDATE table SET <the columns at indices> WHERE key = ?`, the key bound last.
pub(crate) fn partial_update(
    meta: &ModelMeta,
    backend: Backend,
    indices: impl Iterator<Item = usize>,
) -> String {
    let mut w = Writer::new(backend);
    let mut s = String::from("UPDATE ");
    w.ident(&mut s, meta.table);
    s.push_str(" SET ");
    let mut pk = String::new();
    w.ident(&mut pk, meta.columns[meta.primary_key]);
    let mut any = false;
    for i in indices.filter(|i| *i != meta.primary_key) {
        if any {
            s.push_str(", ");
        }
        any = true;
        w.ident(&mut s, meta.columns[i]);
        s.push_str(" = ");
        w.param(&mut s);
    }
    if !any {
        let _ = write!(s, "{pk} = {pk}");
    }
    let _ = write!(s, " WHERE {pk} = ");
    w.param(&mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Receivers;

    const META: ModelMeta = ModelMeta {
        name: "User",
        table: "account_user",
        fields: &["id", "username", "email"],
        columns: &["id", "username", "e\"mail"],
        primary_key: 0,
        receivers: Receivers::NONE,
    };

    #[test]
    fn postgres_statements() {
        let s = Statements::build(&META, Backend::Postgres);
        assert_eq!(
            s.insert,
            r#"INSERT INTO "account_user" ("username", "e""mail") VALUES ($1, $2) RETURNING CAST("id" AS BIGINT)"#
        );
        assert_eq!(
            s.update,
            r#"UPDATE "account_user" SET "username" = $1, "e""mail" = $2 WHERE "id" = $3"#
        );
        assert_eq!(
            s.insert_with_key,
            r#"INSERT INTO "account_user" ("id", "username", "e""mail") VALUES ($1, $2, $3)"#
        );
        assert_eq!(
            s.select_where[1],
            r#"SELECT "id", "username", "e""mail" FROM "account_user" WHERE "username" = $1 ORDER BY "id""#
        );
    }

    #[test]
    fn mysql_statements() {
        let s = Statements::build(&META, Backend::MySql);
        assert_eq!(
            s.insert,
            "INSERT INTO `account_user` (`username`, `e\"mail`) VALUES (?, ?)"
        );
        assert_eq!(s.delete_by_key, "DELETE FROM `account_user` WHERE `id` = ?");
        assert_eq!(
            where_in(&META, Backend::MySql, InList::SetNull, 1, 2),
            "UPDATE `account_user` SET `username` = NULL WHERE `username` IN (?, ?)"
        );
        assert_eq!(
            multi_row_insert(&META, Backend::Postgres, 2, true),
            r#"INSERT INTO "account_user" ("username", "e""mail") VALUES ($1, $2), ($3, $4) RETURNING CAST("id" AS BIGINT)"#
        );
    }

    #[test]
    fn partial_updates() {
        assert_eq!(
            partial_update(&META, Backend::Postgres, [2, 0].into_iter()),
            r#"UPDATE "account_user" SET "e""mail" = $1 WHERE "id" = $2"#
        );
        assert_eq!(
            partial_update(&META, Backend::MySql, [0].into_iter()),
            "UPDATE `account_user` SET `id` = `id` WHERE `id` = ?"
        );
    }

    #[test]
    fn key_only_model() {
        const KEY_ONLY: ModelMeta = ModelMeta {
            name: "Tag",
            table: "tag",
            fields: &["id"],
            columns: &["id"],
            primary_key: 0,
            receivers: Receivers::NONE,
        };
        let s = Statements::build(&KEY_ONLY, Backend::Sqlite);
        assert_eq!(s.insert, r#"INSERT INTO "tag" DEFAULT VALUES"#);
        assert_eq!(s.update, r#"UPDATE "tag" SET "id" = "id" WHERE "id" = ?"#);
        let s = Statements::build(&KEY_ONLY, Backend::MySql);
        assert_eq!(s.insert, "INSERT INTO `tag` () VALUES ()");
    }
}

/// A statement over the rows whose `column` is in a list of `n` values (`IN (?, ..)`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum InList {
    /// `SELECT <every column> .. ORDER BY key`.
    Select,
    /// `DELETE`.
    Delete,
    /// `UPDATE .. SET column = NULL`.
    SetNull,
}

/// `SELECT`/`DELETE`/`UPDATE .. SET column = NULL` of the rows of `meta` whose column at
/// `column` is one of `n` bound values.
pub(crate) fn where_in(
    meta: &ModelMeta,
    backend: Backend,
    what: InList,
    column: usize,
    n: usize,
) -> String {
    let mut w = Writer::new(backend);
    let mut table = String::new();
    w.ident(&mut table, meta.table);
    let mut col = String::new();
    w.ident(&mut col, meta.columns[column]);
    let mut s = match what {
        InList::Select => {
            let mut s = String::from("SELECT ");
            for (i, c) in meta.columns.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                w.ident(&mut s, c);
            }
            let _ = write!(s, " FROM {table}");
            s
        }
        InList::Delete => format!("DELETE FROM {table}"),
        InList::SetNull => format!("UPDATE {table} SET {col} = NULL"),
    };
    let _ = write!(s, " WHERE {col} IN (");
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        w.param(&mut s);
    }
    s.push(')');
    if let InList::Select = what {
        s.push_str(" ORDER BY ");
        w.ident(&mut s, meta.columns[meta.primary_key]);
    }
    s
}

/// `INSERT INTO t (non-key columns) VALUES (..), (..) [RETURNING key]` for `n` rows, the
/// database assigning the keys.
pub(crate) fn multi_row_insert(
    meta: &ModelMeta,
    backend: Backend,
    n: usize,
    returning: bool,
) -> String {
    let mut w = Writer::new(backend);
    let mut s = String::from("INSERT INTO ");
    w.ident(&mut s, meta.table);
    let others = meta
        .columns
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != meta.primary_key);
    s.push_str(" (");
    for (n, (_, c)) in others.enumerate() {
        if n > 0 {
            s.push_str(", ");
        }
        w.ident(&mut s, c);
    }
    s.push_str(") VALUES ");
    let per_row = meta.columns.len() - 1;
    for r in 0..n {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for i in 0..per_row {
            if i > 0 {
                s.push_str(", ");
            }
            w.param(&mut s);
        }
        s.push(')');
    }
    if returning {
        let mut key = String::new();
        w.ident(&mut key, meta.columns[meta.primary_key]);
        if backend == Backend::Postgres {
            let _ = write!(s, " RETURNING CAST({key} AS BIGINT)");
        } else {
            let _ = write!(s, " RETURNING {key}");
        }
    }
    s
}

/// `UPDATE t SET a = CASE key WHEN ? THEN ? .. END, .. WHERE key IN (?, ..)` for `n` rows and
/// the columns at `fields` (the key excluded). Bound: per field, per row, the row's key then
/// its value; then the `n` keys.
pub(crate) fn multi_row_update(
    meta: &ModelMeta,
    backend: Backend,
    fields: &[usize],
    n: usize,
) -> String {
    let mut w = Writer::new(backend);
    let mut s = String::from("UPDATE ");
    w.ident(&mut s, meta.table);
    s.push_str(" SET ");
    let mut key = String::new();
    w.ident(&mut key, meta.columns[meta.primary_key]);
    for (f, &i) in fields.iter().enumerate() {
        if f > 0 {
            s.push_str(", ");
        }
        w.ident(&mut s, meta.columns[i]);
        let _ = write!(s, " = CASE {key}");
        for _ in 0..n {
            s.push_str(" WHEN ");
            w.param(&mut s);
            s.push_str(" THEN ");
            w.param(&mut s);
        }
        s.push_str(" END");
    }
    let _ = write!(s, " WHERE {key} IN (");
    for r in 0..n {
        if r > 0 {
            s.push_str(", ");
        }
        w.param(&mut s);
    }
    s.push(')');
    s
}
