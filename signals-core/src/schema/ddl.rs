//! The crate's one writer of DDL: tables, columns, constraints and indexes of a [`State`] on
//! each backend. `Schema::create_statements` and the generated migrations both use it, so a
//! table made by `create_tables` and one made by migrations are the same.

use serde_json::Value;

use super::state::{ColumnState, Constraint, Reference, TableState};
use crate::backend::Backend;
use crate::value::SqlType;

/// `name`, quoted for `backend`.
pub(crate) fn q(backend: Backend, name: &str) -> String {
    let mut out = String::new();
    backend.quote(&mut out, name);
    out
}

fn q_list(backend: Backend, names: &[String]) -> String {
    names
        .iter()
        .map(|n| q(backend, n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statements that make `table` on `backend`: its `CREATE TABLE` (named `as_name`), then
/// its indexes (inside the `CREATE TABLE` on MySQL, which would otherwise make its own for
/// each foreign key).
pub(crate) fn create_table(table: &TableState, as_name: &str, backend: Backend) -> Vec<String> {
    let mut sql = format!("CREATE TABLE {} (", q(backend, as_name));
    let mut parts: Vec<String> = table
        .columns
        .iter()
        .map(|c| column_definition(table, c, backend))
        .collect();
    for u in &table.unique {
        parts.push(format!(
            "CONSTRAINT {} UNIQUE ({})",
            q(backend, &u.name),
            q_list(backend, &u.columns)
        ));
    }
    if backend == Backend::MySql {
        for i in &table.indexes {
            parts.push(format!(
                "INDEX {} ({})",
                q(backend, &i.name),
                q_list(backend, &i.columns)
            ));
        }
    }
    for r in &table.references {
        parts.push(reference_clause(r, backend));
    }
    sql.push_str("\n    ");
    sql.push_str(&parts.join(",\n    "));
    sql.push_str("\n)");
    if backend == Backend::MySql {
        let collation = table.collation.as_deref().unwrap_or("utf8mb4_bin");
        sql.push_str(&format!(" DEFAULT CHARSET=utf8mb4 COLLATE={collation}"));
    }
    let mut out = vec![sql];
    if backend != Backend::MySql {
        out.extend(
            table
                .indexes
                .iter()
                .map(|i| create_index(as_name, i, backend)),
        );
    }
    out
}

fn reference_clause(r: &Reference, backend: Backend) -> String {
    format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
        q(backend, &r.name),
        q(backend, &r.column),
        q(backend, &r.table),
        q(backend, &r.to_column)
    )
}

pub(crate) fn create_index(table: &str, index: &Constraint, backend: Backend) -> String {
    format!(
        "CREATE INDEX {} ON {} ({})",
        q(backend, &index.name),
        q(backend, table),
        q_list(backend, &index.columns)
    )
}

pub(crate) fn drop_index(table: &str, index: &Constraint, backend: Backend) -> String {
    match backend {
        Backend::MySql => format!(
            "DROP INDEX {} ON {}",
            q(backend, &index.name),
            q(backend, table)
        ),
        _ => format!("DROP INDEX {}", q(backend, &index.name)),
    }
}

pub(crate) fn add_unique(table: &str, u: &Constraint, backend: Backend) -> String {
    format!(
        "ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({})",
        q(backend, table),
        q(backend, &u.name),
        q_list(backend, &u.columns)
    )
}

pub(crate) fn drop_unique(table: &str, u: &Constraint, backend: Backend) -> String {
    match backend {
        Backend::MySql => format!(
            "ALTER TABLE {} DROP INDEX {}",
            q(backend, table),
            q(backend, &u.name)
        ),
        _ => format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            q(backend, table),
            q(backend, &u.name)
        ),
    }
}

pub(crate) fn add_reference(table: &str, r: &Reference, backend: Backend) -> String {
    format!(
        "ALTER TABLE {} ADD {}",
        q(backend, table),
        reference_clause(r, backend)
    )
}

/// The statements that rename constraint `old` of `table` (a unique constraint, an index or
/// a reference, as `kind` says) to `new`, so that its name follows its table's and columns'.
/// SQLite keeps no names for its unique constraints and references; its index is made anew.
pub(crate) fn rename_constraint(
    table: &str,
    kind: ConstraintKind<'_>,
    new: &str,
    backend: Backend,
) -> Vec<String> {
    let t = q(backend, table);
    let n = q(backend, new);
    match (kind, backend) {
        (ConstraintKind::Unique(_) | ConstraintKind::Reference(_), Backend::Sqlite) => Vec::new(),
        (ConstraintKind::Index(i), Backend::Sqlite) => vec![
            drop_index(table, i, backend),
            create_index(
                table,
                &Constraint {
                    name: new.to_owned(),
                    columns: i.columns.clone(),
                },
                backend,
            ),
        ],
        (ConstraintKind::Unique(u), Backend::Postgres) => vec![format!(
            "ALTER TABLE {t} RENAME CONSTRAINT {} TO {n}",
            q(backend, &u.name)
        )],
        (ConstraintKind::Reference(r), Backend::Postgres) => vec![format!(
            "ALTER TABLE {t} RENAME CONSTRAINT {} TO {n}",
            q(backend, &r.name)
        )],
        (ConstraintKind::Index(i), Backend::Postgres) => {
            vec![format!("ALTER INDEX {} RENAME TO {n}", q(backend, &i.name))]
        }
        (ConstraintKind::Unique(c) | ConstraintKind::Index(c), Backend::MySql) => vec![format!(
            "ALTER TABLE {t} RENAME INDEX {} TO {n}",
            q(backend, &c.name)
        )],
        (ConstraintKind::Reference(r), Backend::MySql) => vec![
            drop_reference(table, r, backend),
            add_reference(
                table,
                &Reference {
                    name: new.to_owned(),
                    ..r.clone()
                },
                backend,
            ),
        ],
    }
}

/// A constraint of one kind, for [`rename_constraint`].
#[derive(Clone, Copy)]
pub(crate) enum ConstraintKind<'a> {
    Unique(&'a Constraint),
    Index(&'a Constraint),
    Reference(&'a Reference),
}

pub(crate) fn drop_reference(table: &str, r: &Reference, backend: Backend) -> String {
    match backend {
        Backend::MySql => format!(
            "ALTER TABLE {} DROP FOREIGN KEY {}",
            q(backend, table),
            q(backend, &r.name)
        ),
        _ => format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            q(backend, table),
            q(backend, &r.name)
        ),
    }
}

/// `"name" TYPE [NOT NULL] [DEFAULT ..] [PRIMARY KEY]`, as in a `CREATE TABLE` of `table`.
pub(crate) fn column_definition(table: &TableState, c: &ColumnState, backend: Backend) -> String {
    definition(table, c, backend, true)
}

/// [`column_definition`] without `PRIMARY KEY`, for MySQL's `MODIFY COLUMN` of a key (which
/// stays the key; saying it again is "multiple primary key defined").
pub(crate) fn modify_definition(table: &TableState, c: &ColumnState, backend: Backend) -> String {
    definition(table, c, backend, false)
}

fn definition(table: &TableState, c: &ColumnState, backend: Backend, key: bool) -> String {
    let mut sql = q(backend, &c.name);
    sql.push(' ');
    if c.auto_increment {
        sql.push_str(match backend {
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => match c.sql_type {
                SqlType::SmallInt => "SMALLINT GENERATED BY DEFAULT AS IDENTITY",
                SqlType::Integer => "INTEGER GENERATED BY DEFAULT AS IDENTITY",
                _ => "BIGINT GENERATED BY DEFAULT AS IDENTITY",
            },
            Backend::MySql => match c.sql_type {
                SqlType::SmallInt => "SMALLINT AUTO_INCREMENT",
                SqlType::Integer => "INT AUTO_INCREMENT",
                _ => "BIGINT AUTO_INCREMENT",
            },
        });
        if key && backend != Backend::Sqlite {
            sql.push_str(" PRIMARY KEY");
        }
        return sql;
    }
    sql.push_str(&column_type(c, backend, table.indexed(&c.name)));
    if !c.nullable {
        sql.push_str(" NOT NULL");
    }
    if let Some(default) = &c.default {
        sql.push_str(" DEFAULT ");
        sql.push_str(&default_clause(c, default, backend, table.indexed(&c.name)));
    }
    if c.primary_key && key {
        sql.push_str(" PRIMARY KEY");
    }
    sql
}

/// A default as a `DEFAULT` takes it: MySQL wants an expression, in parentheses, for its
/// TEXT, BLOB and JSON columns.
pub(crate) fn default_clause(
    c: &ColumnState,
    v: &Value,
    backend: Backend,
    indexed: bool,
) -> String {
    let lit = literal(v, backend);
    let long =
        backend == Backend::MySql && column_type(c, backend, indexed).starts_with(['L', 'J']);
    if long { format!("({lit})") } else { lit }
}

/// A default's SQL literal. Strings double their quotes; on MySQL a string with a backslash is
/// written in hexadecimal, which reads the same whatever `NO_BACKSLASH_ESCAPES` says.
pub(crate) fn literal(v: &Value, backend: Backend) -> String {
    match v {
        Value::Bool(true) => "TRUE".into(),
        Value::Bool(false) => "FALSE".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if backend == Backend::MySql && s.contains('\\') => {
            let hex: String = s.bytes().map(|b| format!("{b:02X}")).collect();
            format!("X'{hex}'")
        }
        Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        // A state holds strings, numbers and booleans only.
        other => format!("'{}'", other.to_string().replace('\'', "''")),
    }
}

/// The value rows already in a table get for a new column that may not be NULL and has no
/// default: the type's zero, as a Rust `Default` gives.
pub(crate) fn zero(c: &ColumnState, backend: Backend) -> &'static str {
    use Backend::{MySql, Postgres, Sqlite};
    match (c.sql_type, backend) {
        (SqlType::Bool, _) => "FALSE",
        (SqlType::SmallInt | SqlType::Integer | SqlType::BigInt, _) => "0",
        (SqlType::Real | SqlType::Double, _) => "0.0",
        (SqlType::Decimal, _) => "'0'",
        (SqlType::Text, _) => "''",
        (SqlType::Json, _) => "'null'",
        (SqlType::Bytes, Postgres) => "'\\x'",
        (SqlType::Bytes, _) => "X''",
        (SqlType::Date, _) => "'1970-01-01'",
        (SqlType::Time, _) => "'00:00:00'",
        (SqlType::DateTime, _) => "'1970-01-01 00:00:00'",
        (SqlType::Timestamp, Postgres) => "'1970-01-01 00:00:00+00'",
        (SqlType::Timestamp, MySql) => "'1970-01-01 00:00:00'",
        (SqlType::Timestamp, Sqlite) => "'1970-01-01T00:00:00+00:00'",
        (SqlType::Uuid, Postgres) => "'00000000-0000-0000-0000-000000000000'",
        (SqlType::Uuid, _) => "X'00000000000000000000000000000000'",
    }
}

/// The column type of `c` on `backend`; `indexed` says MySQL needs `VARCHAR(255)` for text
/// without a `max_length` (it cannot index `LONGTEXT`).
pub(crate) fn column_type(c: &ColumnState, backend: Backend, indexed: bool) -> String {
    use Backend::{MySql, Postgres, Sqlite};
    let fixed = match (c.sql_type, backend) {
        (SqlType::Bool, _) => "BOOLEAN",
        (SqlType::SmallInt, _) => "SMALLINT",
        (SqlType::Integer, MySql) => "INT",
        (SqlType::Integer, _) => "INTEGER",
        (SqlType::BigInt, _) => "BIGINT",
        (SqlType::Real, MySql) => "FLOAT",
        (SqlType::Real, _) => "REAL",
        (SqlType::Double, Sqlite) => "REAL",
        (SqlType::Double, Postgres) => "DOUBLE PRECISION",
        (SqlType::Double, MySql) => "DOUBLE",
        (SqlType::Text, _) => {
            return match (c.max_length, backend) {
                (Some(n), _) => format!("VARCHAR({n})"),
                (None, MySql) if indexed => "VARCHAR(255)".into(),
                (None, MySql) => "LONGTEXT".into(),
                (None, _) => "TEXT".into(),
            };
        }
        (SqlType::Bytes, Sqlite) => "BLOB",
        (SqlType::Bytes, Postgres) => "BYTEA",
        (SqlType::Bytes, MySql) => "LONGBLOB",
        (SqlType::Date, _) => "DATE",
        (SqlType::Time, MySql) => "TIME(6)",
        (SqlType::Time, _) => "TIME",
        (SqlType::DateTime | SqlType::Timestamp, Sqlite) => "DATETIME",
        (SqlType::DateTime, Postgres) => "TIMESTAMP",
        (SqlType::Timestamp, Postgres) => "TIMESTAMPTZ",
        (SqlType::DateTime | SqlType::Timestamp, MySql) => "DATETIME(6)",
        (SqlType::Uuid, Sqlite) => "BLOB",
        (SqlType::Uuid, Postgres) => "UUID",
        (SqlType::Uuid, MySql) => "BINARY(16)",
        (SqlType::Json, Sqlite) => "TEXT",
        (SqlType::Json, Postgres) => "JSONB",
        (SqlType::Json, MySql) => "JSON",
        (SqlType::Decimal, Sqlite) => "TEXT",
        (SqlType::Decimal, _) => {
            let name = if backend == Postgres {
                "NUMERIC"
            } else {
                "DECIMAL"
            };
            return match (c.decimal, backend) {
                (Some((p, s)), _) => format!("{name}({p}, {s})"),
                (None, Postgres) => name.into(),
                (None, _) => format!("{name}(38, 10)"),
            };
        }
    };
    fixed.into()
}
