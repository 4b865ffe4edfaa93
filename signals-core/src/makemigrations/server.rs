//! PostgreSQL and MySQL/MariaDB: the statements of a [`Diff`], each change in place.

use super::change::{Diff, describe, removed, same_reference};
use crate::backend::Backend;
use crate::schema::ddl::{self, q};
use crate::schema::state::{ColumnState, TableState};

/// PostgreSQL and MySQL: each change in place, in an order each step can run in.
pub(crate) fn sql(
    created: &[&TableState],
    common: &[(&TableState, &TableState)],
    dropped: &[&TableState],
    backend: Backend,
    out: &mut Diff,
) {
    let sql = &mut out.sql;
    let altered = |f: &TableState, t: &TableState, col: &String| -> bool {
        match (f.column(col), t.column(col)) {
            (Some(a), Some(b)) => {
                ddl::column_type(a, backend, f.indexed(col))
                    != ddl::column_type(b, backend, t.indexed(col))
            }
            _ => false,
        }
    };
    // 1. References that go, so that tables, columns and the indexes under them can go; and
    //    those that stay on a column whose type changes (MySQL refuses to change it under a
    //    foreign key), made again in step 7.
    //    So do those to a key whose type changes (a wider key, with its references).
    let key_altered = |r: &crate::schema::state::Reference| {
        common
            .iter()
            .find(|(_, t)| t.name == r.table)
            .is_some_and(|(pf, pt)| altered(pf, pt, &r.to_column))
    };
    let mut remade = Vec::new();
    for (f, t) in common {
        for r in &f.references {
            let kept = t.references.iter().any(|n| same_reference(n, r));
            let changes = altered(f, t, &r.column) || key_altered(r);
            if !kept || changes {
                sql.push(ddl::drop_reference(&t.name, r, backend));
            }
            if kept && changes {
                remade.push(ddl::add_reference(&t.name, r, backend));
            }
        }
    }
    for t in dropped {
        for r in &t.references {
            sql.push(ddl::drop_reference(&t.name, r, backend));
        }
    }
    // 2. New tables, parents first.
    for t in created {
        sql.extend(ddl::create_table(t, &t.name, backend));
    }
    // 3. New columns: NULL-able or with a default at once; others filled, then NOT NULL.
    for (f, t) in common {
        for c in &t.columns {
            if f.column(&c.name).is_some() {
                continue;
            }
            if c.nullable || c.default.is_some() {
                sql.push(format!(
                    "ALTER TABLE {} ADD COLUMN {}",
                    q(backend, &t.name),
                    ddl::column_definition(t, c, backend)
                ));
                continue;
            }
            let mut open = c.clone();
            open.nullable = true;
            sql.push(format!(
                "ALTER TABLE {} ADD COLUMN {}",
                q(backend, &t.name),
                ddl::column_definition(t, &open, backend)
            ));
            sql.push(format!(
                "UPDATE {} SET {} = {}",
                q(backend, &t.name),
                q(backend, &c.name),
                ddl::zero(c, backend)
            ));
            sql.push(not_null(t, c, backend));
        }
    }
    // 4. Indexes and unique constraints on columns whose type stays (MySQL keeps a
    //    reference's index until another covers it, so these come before the old ones go:
    //    a `foreign_key` becoming a `one_to_one` trades its index for a unique constraint).
    let mut late = Vec::new();
    for (f, t) in common {
        for i in removed(&t.indexes, &f.indexes) {
            if i.columns.iter().any(|c| altered(f, t, c)) {
                late.push(ddl::create_index(&t.name, i, backend));
            } else {
                sql.push(ddl::create_index(&t.name, i, backend));
            }
        }
        for u in removed(&t.unique, &f.unique) {
            if u.columns.iter().any(|c| altered(f, t, c)) {
                late.push(ddl::add_unique(&t.name, u, backend));
            } else {
                sql.push(ddl::add_unique(&t.name, u, backend));
            }
        }
    }
    // 5. Unique constraints and indexes that go.
    for (f, t) in common {
        for u in removed(&f.unique, &t.unique) {
            sql.push(ddl::drop_unique(&t.name, u, backend));
        }
        for i in removed(&f.indexes, &t.indexes) {
            sql.push(ddl::drop_index(&t.name, i, backend));
        }
    }
    // 6. Columns that change, columns that go, and MySQL's collation.
    for (f, t) in common {
        if backend == Backend::MySql && f.collation != t.collation {
            sql.push(format!(
                "ALTER TABLE {} CONVERT TO CHARACTER SET utf8mb4 COLLATE {}",
                q(backend, &t.name),
                t.collation.as_deref().unwrap_or("utf8mb4_bin")
            ));
        }
        for c in &t.columns {
            let Some(old) = f.column(&c.name) else {
                continue;
            };
            alter_column(f, old, t, c, backend, sql);
        }
        for c in &f.columns {
            if t.column(&c.name).is_none() {
                sql.push(format!(
                    "ALTER TABLE {} DROP COLUMN {}",
                    q(backend, &t.name),
                    q(backend, &c.name)
                ));
            }
        }
    }
    // 7. The indexes, unique constraints and references left for after the changes, and the
    //    new references.
    sql.extend(late);
    sql.extend(remade);
    for (f, t) in common {
        for r in &t.references {
            if !f.references.iter().any(|o| same_reference(o, r)) {
                sql.push(ddl::add_reference(&t.name, r, backend));
            }
        }
    }
    // 8. Tables that go, children first.
    for t in dropped {
        sql.push(format!("DROP TABLE {}", q(backend, &t.name)));
    }
}

/// Makes column `c` of `t` NOT NULL (its other properties as they are in `t`).
fn not_null(t: &TableState, c: &ColumnState, backend: Backend) -> String {
    if backend == Backend::Postgres {
        format!(
            "ALTER TABLE {} ALTER COLUMN {} SET NOT NULL",
            q(backend, &t.name),
            q(backend, &c.name)
        )
    } else {
        format!(
            "ALTER TABLE {} MODIFY COLUMN {}",
            q(backend, &t.name),
            ddl::modify_definition(t, c, backend)
        )
    }
}

/// The statements that turn column `a` of `f` into `b` of `t` on a server.
fn alter_column(
    f: &TableState,
    a: &ColumnState,
    t: &TableState,
    b: &ColumnState,
    backend: Backend,
    sql: &mut Vec<String>,
) {
    if describe(f, a, backend) == describe(t, b, backend) {
        return;
    }
    let table = q(backend, &t.name);
    let col = q(backend, &b.name);
    // Rows holding NULL take the default before the column refuses NULL.
    if a.nullable
        && !b.nullable
        && let Some(d) = &b.default
    {
        sql.push(format!(
            "UPDATE {table} SET {col} = {} WHERE {col} IS NULL",
            ddl::literal(d, backend)
        ));
    }
    if backend == Backend::MySql {
        sql.push(format!(
            "ALTER TABLE {table} MODIFY COLUMN {}",
            ddl::modify_definition(t, b, backend)
        ));
        return;
    }
    let from_type = ddl::column_type(a, backend, false);
    let to_type = ddl::column_type(b, backend, false);
    if from_type != to_type {
        if a.default.is_some() {
            sql.push(format!(
                "ALTER TABLE {table} ALTER COLUMN {col} DROP DEFAULT"
            ));
        }
        sql.push(format!(
            "ALTER TABLE {table} ALTER COLUMN {col} TYPE {to_type} USING {col}::{to_type}"
        ));
        if let Some(d) = &b.default {
            sql.push(format!(
                "ALTER TABLE {table} ALTER COLUMN {col} SET DEFAULT {}",
                ddl::literal(d, backend)
            ));
        }
    } else if a.default != b.default {
        sql.push(match &b.default {
            Some(d) => format!(
                "ALTER TABLE {table} ALTER COLUMN {col} SET DEFAULT {}",
                ddl::literal(d, backend)
            ),
            None => format!("ALTER TABLE {table} ALTER COLUMN {col} DROP DEFAULT"),
        });
    }
    if a.nullable && !b.nullable {
        sql.push(format!(
            "ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL"
        ));
    } else if !a.nullable && b.nullable {
        sql.push(format!(
            "ALTER TABLE {table} ALTER COLUMN {col} DROP NOT NULL"
        ));
    }
}
