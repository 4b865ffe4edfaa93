//! The statements of a model, built once per model and backend from its [`ModelMeta`], and
//! the multi-row and `IN`-list statements of bulk writes and cascades, all through [`Sql`].

use super::Sql;
use crate::backend::Backend;
use crate::meta::ModelMeta;

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
        let new = || Sql::new(backend);
        let select = |sql: &mut Sql| {
            sql.push("SELECT ")
                .each(meta.columns, |s, c| {
                    s.ident(c);
                })
                .push(" FROM ")
                .ident(meta.table);
        };

        let insert = {
            let mut s = new();
            s.push("INSERT INTO ").ident(meta.table).push(" ");
            if others.is_empty() {
                s.push(if backend == Backend::MySql {
                    "() VALUES ()"
                } else {
                    "DEFAULT VALUES"
                });
            } else {
                s.push("(")
                    .each(&others, |s, c| {
                        s.ident(c);
                    })
                    .push(") VALUES (")
                    .each(&others, |s, _| {
                        s.param();
                    })
                    .push(")");
            }
            if backend.returns_generated_key() {
                s.push(" RETURNING CAST(").ident(pk).push(" AS BIGINT)");
            }
            s.into_text()
        };

        let insert_with_key = {
            let mut s = new();
            s.push("INSERT INTO ")
                .ident(meta.table)
                .push(" (")
                .each(std::iter::once(&pk).chain(&others), |s, c| {
                    s.ident(c);
                })
                .push(") VALUES (")
                .each(0..=others.len(), |s, _| {
                    s.param();
                })
                .push(")");
            s.into_text()
        };

        let update = {
            let mut s = new();
            s.push("UPDATE ").ident(meta.table).push(" SET ");
            if others.is_empty() {
                // Nothing to change: still tells whether the row exists.
                s.ident(pk).push(" = ").ident(pk);
            }
            s.each(&others, |s, c| {
                s.ident(c).push(" = ").param();
            })
            .push(" WHERE ")
            .ident(pk)
            .push(" = ")
            .param();
            s.into_text()
        };

        let by_key = |head: &dyn Fn(&mut Sql), lock: bool| {
            let mut s = new();
            head(&mut s);
            s.push(" WHERE ").ident(pk).push(" = ").param();
            if lock && backend != Backend::Sqlite {
                // SQLite's write transactions hold the whole database already.
                s.push(" FOR UPDATE");
            }
            s.into_text()
        };

        let per_column = |f: &dyn Fn(&mut Sql, &str)| {
            meta.columns
                .iter()
                .map(|c| {
                    let mut s = new();
                    f(&mut s, c);
                    s.into_text()
                })
                .collect::<Vec<_>>()
        };
        let order = |s: &mut Sql| {
            s.push(" ORDER BY ").ident(pk);
        };

        Statements {
            insert,
            insert_with_key,
            update,
            select_by_key: by_key(&select, false),
            select_by_key_for_update: by_key(&select, true),
            select_all: {
                let mut s = new();
                select(&mut s);
                order(&mut s);
                s.into_text()
            },
            delete_by_key: by_key(
                &|s| {
                    s.push("DELETE FROM ").ident(meta.table);
                },
                false,
            ),
            select_where: per_column(&|s, col| {
                select(s);
                s.push(" WHERE ").ident(col).push(" = ").param();
                order(s);
            }),
            select_where_null: per_column(&|s, col| {
                select(s);
                s.push(" WHERE ").ident(col).push(" IS NULL");
                order(s);
            }),
            count_where: per_column(&|s, col| {
                s.push("SELECT COUNT(*) FROM ")
                    .ident(meta.table)
                    .push(" WHERE ")
                    .ident(col)
                    .push(" = ")
                    .param();
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
    let pk = meta.columns[meta.primary_key];
    let mut s = Sql::new(backend);
    s.push("UPDATE ").ident(meta.table).push(" SET ");
    let mut any = false;
    s.each(indices.filter(|i| *i != meta.primary_key), |s, i| {
        any = true;
        s.ident(meta.columns[i]).push(" = ").param();
    });
    if !any {
        s.ident(pk).push(" = ").ident(pk);
    }
    s.push(" WHERE ").ident(pk).push(" = ").param();
    s.into_text()
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
    let col = meta.columns[column];
    let mut s = Sql::new(backend);
    match what {
        InList::Select => {
            s.push("SELECT ")
                .each(meta.columns, |s, c| {
                    s.ident(c);
                })
                .push(" FROM ")
                .ident(meta.table);
        }
        InList::Delete => {
            s.push("DELETE FROM ").ident(meta.table);
        }
        InList::SetNull => {
            s.push("UPDATE ")
                .ident(meta.table)
                .push(" SET ")
                .ident(col)
                .push(" = NULL");
        }
    }
    s.push(" WHERE ")
        .ident(col)
        .push(" IN (")
        .each(0..n, |s, _| {
            s.param();
        })
        .push(")");
    if let InList::Select = what {
        s.push(" ORDER BY ").ident(meta.columns[meta.primary_key]);
    }
    s.into_text()
}

/// `INSERT INTO t (non-key columns) VALUES (..), (..) [RETURNING key]` for `n` rows, the
/// database assigning the keys.
pub(crate) fn multi_row_insert(
    meta: &ModelMeta,
    backend: Backend,
    n: usize,
    returning: bool,
) -> String {
    let others: Vec<&str> = meta
        .columns
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != meta.primary_key)
        .map(|(_, c)| *c)
        .collect();
    let mut s = Sql::new(backend);
    s.push("INSERT INTO ")
        .ident(meta.table)
        .push(" (")
        .each(&others, |s, c| {
            s.ident(c);
        })
        .push(") VALUES ")
        .each(0..n, |s, _| {
            s.push("(")
                .each(&others, |s, _| {
                    s.param();
                })
                .push(")");
        });
    if returning {
        let key = meta.columns[meta.primary_key];
        if backend == Backend::Postgres {
            s.push(" RETURNING CAST(").ident(key).push(" AS BIGINT)");
        } else {
            s.push(" RETURNING ").ident(key);
        }
    }
    s.into_text()
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
    let key = meta.columns[meta.primary_key];
    let mut s = Sql::new(backend);
    s.push("UPDATE ")
        .ident(meta.table)
        .push(" SET ")
        .each(fields, |s, &i| {
            s.ident(meta.columns[i]).push(" = CASE ").ident(key);
            for _ in 0..n {
                s.push(" WHEN ").param().push(" THEN ").param();
            }
            s.push(" END");
        })
        .push(" WHERE ")
        .ident(key)
        .push(" IN (")
        .each(0..n, |s, _| {
            s.param();
        })
        .push(")");
    s.into_text()
}
