//! SQLite: the statements of a [`Diff`], rebuilding tables where `ALTER TABLE` cannot.

use super::change::{Diff, removed, same_reference};
use crate::backend::Backend;
use crate::schema::ddl::{self, q};
use crate::schema::state::{ColumnState, TableState};

/// The temporary table whose CHECK fails a SQLite migration that leaves a reference pointing
/// nowhere (`PRAGMA foreign_key_check`, made an error).
const SQLITE_REFERENCE_CHECK: [&str; 3] = [
    "CREATE TEMP TABLE IF NOT EXISTS \"signals_reference_check\" (\"missing\" INTEGER CONSTRAINT \"a reference points to a row that is not there\" CHECK (\"missing\" = 0))",
    "INSERT INTO temp.\"signals_reference_check\" SELECT count(*) FROM pragma_foreign_key_check",
    "DROP TABLE temp.\"signals_reference_check\"",
];

/// SQLite: what `ALTER TABLE` does (renames, plain new columns, indexes) in place; any other
/// change rebuilds the table as SQLite documents: a new table, the rows copied, the old one
/// dropped, the new one renamed, its indexes made, and the references checked.
pub(crate) fn sql(
    created: &[&TableState],
    common: &[(&TableState, &TableState)],
    dropped: &[&TableState],
    out: &mut Diff,
) {
    let backend = Backend::Sqlite;
    let sql = &mut out.sql;
    for t in created {
        sql.extend(ddl::create_table(t, &t.name, backend));
    }
    let mut rebuilt = false;
    for (f, t) in common {
        let plain_add =
            |c: &ColumnState| (c.nullable || c.default.is_some()) && !t.indexed(&c.name);
        let columns_change = t.columns.iter().any(|c| match f.column(&c.name) {
            None => !plain_add(c),
            Some(old) => {
                ddl::column_definition(f, old, backend) != ddl::column_definition(t, c, backend)
            }
        }) || f.columns.iter().any(|c| t.column(&c.name).is_none());
        let constraints_change = !removed(&f.unique, &t.unique).is_empty()
            || !removed(&t.unique, &f.unique).is_empty()
            || f.references
                .iter()
                .any(|r| !t.references.iter().any(|n| same_reference(n, r)))
            || t.references
                .iter()
                .any(|r| !f.references.iter().any(|o| same_reference(o, r)));
        if columns_change || constraints_change {
            rebuilt = true;
            let temp = format!("__signals_new_{}", t.name);
            sql.extend(ddl::create_table(
                &TableState {
                    indexes: Vec::new(),
                    ..(*t).clone()
                },
                &temp,
                backend,
            ));
            let mut names = Vec::new();
            let mut values = Vec::new();
            for c in &t.columns {
                let value = match f.column(&c.name) {
                    Some(old) => match (&c.default, old.nullable && !c.nullable) {
                        (Some(d), true) => format!(
                            "COALESCE({}, {})",
                            q(backend, &c.name),
                            ddl::literal(d, backend)
                        ),
                        _ => q(backend, &c.name),
                    },
                    None if c.default.is_some() => {
                        ddl::literal(c.default.as_ref().expect("checked"), backend)
                    }
                    None if c.nullable => continue,
                    None => ddl::zero(c, backend).to_owned(),
                };
                names.push(q(backend, &c.name));
                values.push(value);
            }
            sql.push(format!(
                "INSERT INTO {} ({}) SELECT {} FROM {}",
                q(backend, &temp),
                names.join(", "),
                values.join(", "),
                q(backend, &t.name)
            ));
            if t.columns.iter().any(|c| c.auto_increment) {
                // AUTOINCREMENT never gives a key twice: the new table goes on from the old
                // one's high-water mark (`sqlite_sequence`), deleted rows' keys included.
                let new = ddl::literal(&serde_json::Value::from(temp.as_str()), backend);
                let old = ddl::literal(&serde_json::Value::from(t.name.as_str()), backend);
                sql.push(format!(
                    "INSERT INTO sqlite_sequence (name, seq) SELECT {new}, 0 WHERE NOT EXISTS \
                     (SELECT 1 FROM sqlite_sequence WHERE name = {new})"
                ));
                sql.push(format!(
                    "UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM \
                     sqlite_sequence WHERE name = {old}), 0)) WHERE name = {new}"
                ));
            }
            sql.push(format!("DROP TABLE {}", q(backend, &t.name)));
            sql.push(format!(
                "ALTER TABLE {} RENAME TO {}",
                q(backend, &temp),
                q(backend, &t.name)
            ));
            sql.extend(
                t.indexes
                    .iter()
                    .map(|i| ddl::create_index(&t.name, i, backend)),
            );
            continue;
        }
        for c in &t.columns {
            if f.column(&c.name).is_none() {
                sql.push(format!(
                    "ALTER TABLE {} ADD COLUMN {}",
                    q(backend, &t.name),
                    ddl::column_definition(t, c, backend)
                ));
            }
        }
        for i in removed(&f.indexes, &t.indexes) {
            sql.push(ddl::drop_index(&t.name, i, backend));
        }
        for i in removed(&t.indexes, &f.indexes) {
            sql.push(ddl::create_index(&t.name, i, backend));
        }
    }
    for t in dropped {
        sql.push(format!("DROP TABLE {}", q(backend, &t.name)));
        rebuilt = true;
    }
    if rebuilt {
        sql.extend(SQLITE_REFERENCE_CHECK.iter().map(|s| (*s).to_owned()));
    }
}
