//! From one [`State`] to another on one backend: the changes, in words and in SQL.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::schema::ddl::{self, q};
use crate::schema::state::{ColumnState, State, TableState};
use crate::value::SqlType;

use super::change::{Diff, Renames, describe, removed, same_reference};

fn makemigrations(msg: String) -> Error {
    Error::Makemigrations(msg)
}

/// The columns of `t`, renamed per `renames`, and its constraints and the references to it
/// that name them, in `state`.
fn apply_renames(
    state: &mut State,
    renames: &Renames,
    backend: Backend,
    out: &mut Diff,
) -> Result<()> {
    for (old, new) in &renames.tables {
        if state.table(new).is_some() {
            return Err(makemigrations(format!(
                "cannot rename table `{old}` to `{new}`: the migrations have a table `{new}` already"
            )));
        }
        let Some(t) = state.table_mut(old) else {
            return Err(makemigrations(format!(
                "cannot rename table `{old}`: the migrations have no such table"
            )));
        };
        t.name = new.clone();
        for t in &mut state.tables {
            for r in &mut t.references {
                if r.table == *old {
                    r.table = new.clone();
                }
            }
        }
        out.change(
            format!("rename_{old}"),
            format!("rename table `{old}` to `{new}`"),
        );
        out.sql.push(format!(
            "ALTER TABLE {} RENAME TO {}",
            q(backend, old),
            q(backend, new)
        ));
    }
    for (table, old, new) in &renames.columns {
        let Some(t) = state.table_mut(table) else {
            return Err(makemigrations(format!(
                "cannot rename column `{table}.{old}`: the migrations have no table `{table}`"
            )));
        };
        if t.column(new).is_some() {
            return Err(makemigrations(format!(
                "cannot rename column `{table}.{old}` to `{new}`: `{table}` has a column `{new}` already"
            )));
        }
        let Some(c) = t.columns.iter_mut().find(|c| c.name == *old) else {
            return Err(makemigrations(format!(
                "cannot rename column `{table}.{old}`: the migrations' `{table}` has no such column"
            )));
        };
        c.name = new.clone();
        for u in t.unique.iter_mut().chain(t.indexes.iter_mut()) {
            for col in &mut u.columns {
                if col == old {
                    *col = new.clone();
                }
            }
        }
        for r in &mut t.references {
            if r.column == *old {
                r.column = new.clone();
            }
        }
        for other in &mut state.tables {
            for r in &mut other.references {
                if r.table == *table && r.to_column == *old {
                    r.to_column = new.clone();
                }
            }
        }
        out.change(
            format!("rename_{table}_{old}"),
            format!("rename column `{table}.{old}` to `{new}`"),
        );
        out.sql.push(format!(
            "ALTER TABLE {} RENAME COLUMN {} TO {}",
            q(backend, table),
            q(backend, old),
            q(backend, new)
        ));
    }
    Ok(())
}

/// Gives the constraints of `to` the names those with the same columns have in `from`: the
/// database knows them by those.
fn carry_names(from: &TableState, to: &mut TableState) {
    for u in &mut to.unique {
        if let Some(f) = from.unique.iter().find(|f| f.columns == u.columns) {
            u.name.clone_from(&f.name);
        }
    }
    for i in &mut to.indexes {
        if let Some(f) = from.indexes.iter().find(|f| f.columns == i.columns) {
            i.name.clone_from(&f.name);
        }
    }
    for r in &mut to.references {
        if let Some(f) = from.references.iter().find(|f| same_reference(f, r)) {
            r.name.clone_from(&f.name);
        }
    }
}

/// For each table renamed, and each column renamed, in `renames`: the constraints of `next`
/// on them whose names (carried from the database) are not the models' (`to`) are renamed in
/// the database, in `cur` and in `next`.
fn rename_constraints(
    cur: &mut State,
    next: &mut State,
    to: &State,
    renames: &Renames,
    backend: Backend,
    out: &mut Diff,
) {
    use crate::schema::ddl::ConstraintKind;
    for t in &mut next.tables {
        let table_renamed = renames.tables.iter().any(|(_, new)| *new == t.name);
        let renamed_columns: Vec<&String> = renames
            .columns
            .iter()
            .filter(|(table, _, _)| *table == t.name)
            .map(|(_, _, new)| new)
            .collect();
        if !table_renamed && renamed_columns.is_empty() {
            continue;
        }
        let (Some(fresh), Some(c)) = (to.table(&t.name), cur.table_mut(&t.name)) else {
            continue;
        };
        let touched = |columns: &[String]| {
            table_renamed || columns.iter().any(|col| renamed_columns.contains(&col))
        };
        let mut sql = Vec::new();
        let mut words = Vec::new();
        for (kind, list, fresh_list, cur_list) in [
            ("unique", &mut t.unique, &fresh.unique, &mut c.unique),
            ("index", &mut t.indexes, &fresh.indexes, &mut c.indexes),
        ] {
            for u in list.iter_mut() {
                let Some(f) = fresh_list.iter().find(|f| f.columns == u.columns) else {
                    continue;
                };
                if f.name == u.name || !touched(&u.columns) {
                    continue;
                }
                let Some(old) = cur_list.iter_mut().find(|o| o.name == u.name) else {
                    continue;
                };
                let what = if kind == "unique" {
                    ConstraintKind::Unique(old)
                } else {
                    ConstraintKind::Index(old)
                };
                sql.extend(ddl::rename_constraint(&t.name, what, &f.name, backend));
                words.push(format!("rename {kind} `{}` to `{}`", u.name, f.name));
                old.name.clone_from(&f.name);
                u.name.clone_from(&f.name);
            }
        }
        for r in &mut t.references {
            let Some(f) = fresh.references.iter().find(|f| same_reference(f, r)) else {
                continue;
            };
            if f.name == r.name || !touched(std::slice::from_ref(&r.column)) {
                continue;
            }
            let Some(old) = c.references.iter_mut().find(|o| o.name == r.name) else {
                continue;
            };
            sql.extend(ddl::rename_constraint(
                &t.name,
                ConstraintKind::Reference(old),
                &f.name,
                backend,
            ));
            words.push(format!("rename reference `{}` to `{}`", r.name, f.name));
            old.name.clone_from(&f.name);
            r.name.clone_from(&f.name);
        }
        for w in words {
            out.change(format!("rename_{}", t.name), w);
        }
        out.sql.extend(sql);
    }
}

/// The longest text a column holds on `backend`, `None` for any.
fn text_length(t: &TableState, c: &ColumnState, backend: Backend) -> Option<u32> {
    match c.max_length {
        Some(n) => Some(n),
        None if backend == Backend::MySql && t.indexed(&c.name) => Some(255),
        None => None,
    }
}

/// Whether changing column `a` of `ta` into `b` of `tb` can lose values: a shorter text, a
/// smaller decimal, or another type that is not a widening of it.
fn narrows(
    ta: &TableState,
    a: &ColumnState,
    tb: &TableState,
    b: &ColumnState,
    backend: Backend,
) -> bool {
    use SqlType::{BigInt, Decimal, Double, Integer, Real, SmallInt, Text};
    if ddl::column_type(a, backend, ta.indexed(&a.name))
        == ddl::column_type(b, backend, tb.indexed(&b.name))
    {
        return false;
    }
    match (a.sql_type, b.sql_type) {
        // SQLite keeps any text in any text column, whatever its declared length.
        (Text, Text) if backend == Backend::Sqlite => false,
        (Text, Text) => match (text_length(ta, a, backend), text_length(tb, b, backend)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(x), Some(y)) => y < x,
        },
        (Decimal, Decimal) => match (a.decimal, b.decimal) {
            (_, None) => {
                backend == Backend::MySql && a.decimal.is_some_and(|(p, s)| s > 10 || p - s > 28)
            }
            (None, Some(_)) => true,
            (Some((p, s)), Some((p2, s2))) => s2 < s || p2 - s2 < p - s,
        },
        (SmallInt, Integer | BigInt | Double) | (Integer, BigInt | Double) | (Real, Double) => {
            false
        }
        _ => true,
    }
}

/// The changes from `from` (what the migrations made) to `to` (what the models ask for) on
/// `backend`, with `renames` applied first.
pub(crate) fn diff(from: &State, to: &State, backend: Backend, renames: &Renames) -> Result<Diff> {
    let mut out = Diff::default();
    let mut cur = from.clone();
    apply_renames(&mut cur, renames, backend, &mut out)?;
    let mut next = to.clone();
    for t in &mut next.tables {
        if let Some(f) = cur.table(&t.name) {
            carry_names(f, t);
        }
    }
    // A renamed table's or column's constraints take the names the models give them, so that
    // a table or column made later under the old name does not find its names taken.
    rename_constraints(&mut cur, &mut next, to, renames, backend, &mut out);
    next.dedup_names(&cur.names());
    out.state = next.clone();

    // Keys cannot change in place on the servers: refused before anything is written.
    for t in &next.tables {
        let Some(f) = cur.table(&t.name) else {
            continue;
        };
        let key = |t: &TableState| -> Vec<(String, bool)> {
            t.columns
                .iter()
                .filter(|c| c.primary_key)
                .map(|c| (c.name.clone(), c.auto_increment))
                .collect()
        };
        if key(f) != key(t) {
            return Err(makemigrations(format!(
                "the primary key of `{}` changes; makemigrations does not change keys: write \
                 this migration by hand (a new table, copied, then swapped)",
                t.name
            )));
        }
    }

    let created: Vec<&TableState> = next
        .tables
        .iter()
        .filter(|t| cur.table(&t.name).is_none())
        .collect();
    let dropped: Vec<&TableState> = cur
        .tables
        .iter()
        .rev()
        .filter(|t| next.table(&t.name).is_none())
        .collect();
    let common: Vec<(&TableState, &TableState)> = next
        .tables
        .iter()
        .filter_map(|t| cur.table(&t.name).map(|f| (f, t)))
        .collect();

    // Words first, the same on every backend.
    for t in &created {
        out.change(
            format!("create_{}", t.name),
            format!("create table `{}`", t.name),
        );
    }
    for (f, t) in &common {
        words(f, t, backend, &mut out);
    }
    for t in &dropped {
        out.change(
            format!("drop_{}", t.name),
            format!("drop table `{}`", t.name),
        );
        out.destroys
            .push(format!("table `{}` and every row in it", t.name));
    }

    match backend {
        Backend::Sqlite => super::sqlite::sql(&created, &common, &dropped, &mut out),
        _ => super::server::sql(&created, &common, &dropped, backend, &mut out),
    }
    Ok(out)
}

/// The changes to one table kept, in words, and what they destroy.
fn words(f: &TableState, t: &TableState, backend: Backend, out: &mut Diff) {
    let name = &t.name;
    for c in &t.columns {
        match f.column(&c.name) {
            None => {
                let fill = match &c.default {
                    _ if c.nullable && c.default.is_none() => String::new(),
                    Some(d) => format!(
                        " (rows there get its default, {})",
                        ddl::literal(d, backend)
                    ),
                    None if t.unique.iter().any(|u| u.columns == [c.name.clone()]) => format!(
                        " (rows there get {}, which its unique constraint refuses for a second \
                         row: edit this migration to give them distinct values first)",
                        ddl::zero(c, backend)
                    ),
                    None => format!(
                        " (rows there get {}: give the field `#[model(default = ..)]` to choose)",
                        ddl::zero(c, backend)
                    ),
                };
                out.change(
                    format!("add_{name}_{}", c.name),
                    format!(
                        "add column `{name}.{}` {}{fill}",
                        c.name,
                        describe(t, c, backend)
                    ),
                );
            }
            Some(old) => {
                let before = describe(f, old, backend);
                let after = describe(t, c, backend);
                if before != after {
                    out.change(
                        format!("alter_{name}_{}", c.name),
                        format!("alter column `{name}.{}`: {before} → {after}", c.name),
                    );
                    if narrows(f, old, t, c, backend) {
                        out.destroys.push(format!(
                            "column `{name}.{}` narrows from {} to {}: values it cannot hold fail \
                             the migration or are cut",
                            c.name,
                            ddl::column_type(old, backend, f.indexed(&old.name)),
                            ddl::column_type(c, backend, t.indexed(&c.name)),
                        ));
                    }
                }
            }
        }
    }
    for c in &f.columns {
        if t.column(&c.name).is_none() {
            out.change(
                format!("drop_{name}_{}", c.name),
                format!("drop column `{name}.{}`", c.name),
            );
            out.destroys
                .push(format!("column `{name}.{}` and its values", c.name));
        }
    }
    for (kind, old, new) in [
        ("unique", &f.unique, &t.unique),
        ("index", &f.indexes, &t.indexes),
    ] {
        for c in removed(old, new) {
            let cols = c.columns.join(", ");
            out.change(
                format!("drop_{}", c.name),
                format!("drop {kind} `{}` on `{name}` ({cols})", c.name),
            );
        }
        for c in removed(new, old) {
            let cols = c.columns.join(", ");
            out.change(
                c.name.clone(),
                format!("add {kind} `{}` on `{name}` ({cols})", c.name),
            );
        }
    }
    for r in &f.references {
        if !t.references.iter().any(|n| same_reference(n, r)) {
            out.change(
                format!("drop_{}", r.name),
                format!(
                    "drop reference `{name}.{}` → `{}.{}`",
                    r.column, r.table, r.to_column
                ),
            );
        }
    }
    for r in &t.references {
        match f.references.iter().find(|o| same_reference(o, r)) {
            None => out.change(
                r.name.clone(),
                format!(
                    "add reference `{name}.{}` → `{}.{}`",
                    r.column, r.table, r.to_column
                ),
            ),
            Some(o) if o.on_delete != r.on_delete => out.change(
                format!("{name}_{}_on_delete", r.column),
                format!(
                    "on_delete of `{name}.{}`: {} → {} (the crate does it, with signals: no SQL)",
                    r.column, o.on_delete, r.on_delete
                ),
            ),
            Some(_) => {}
        }
    }
    if backend == Backend::MySql && f.collation != t.collation {
        out.change(
            format!("{name}_collation"),
            format!(
                "convert table `{name}` from {} to {} (text compares and is unique as on the other backends)",
                f.collation.as_deref().unwrap_or("utf8mb4_bin"),
                t.collation.as_deref().unwrap_or("utf8mb4_bin"),
            ),
        );
    }
}

/// Renames that would explain what was dropped and added: a dropped table whose columns a new
/// one has, a dropped column of the type of one added to the same table.
pub(crate) fn rename_candidates(from: &State, to: &State, renames: &Renames) -> Renames {
    let mut out = Renames::default();
    let shape = |t: &TableState| -> Vec<(String, SqlType)> {
        let mut v: Vec<_> = t
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.sql_type))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let renamed_from = |name: &str| renames.tables.iter().any(|(o, _)| o == name);
    let renamed_to = |name: &str| renames.tables.iter().any(|(_, n)| n == name);
    let dropped: Vec<&TableState> = from
        .tables
        .iter()
        .filter(|t| to.table(&t.name).is_none() && !renamed_from(&t.name))
        .collect();
    for t in to
        .tables
        .iter()
        .filter(|t| from.table(&t.name).is_none() && !renamed_to(&t.name))
    {
        if let Some(d) = dropped
            .iter()
            .find(|d| shape(d) == shape(t) && !out.tables.iter().any(|(o, _)| *o == d.name))
        {
            out.tables.push((d.name.clone(), t.name.clone()));
        }
    }
    for t in &to.tables {
        let old_name = renames
            .tables
            .iter()
            .find(|(_, n)| *n == t.name)
            .map_or(t.name.as_str(), |(o, _)| o.as_str());
        let Some(f) = from.table(old_name) else {
            continue;
        };
        let given = |col: &str, old: bool| {
            renames
                .columns
                .iter()
                .any(|(tb, o, n)| *tb == t.name && if old { o == col } else { n == col })
        };
        let gone: Vec<&ColumnState> = f
            .columns
            .iter()
            .filter(|c| t.column(&c.name).is_none() && !given(&c.name, true))
            .collect();
        for c in t
            .columns
            .iter()
            .filter(|c| f.column(&c.name).is_none() && !given(&c.name, false))
        {
            if let Some(g) = gone.iter().find(|g| {
                g.sql_type == c.sql_type
                    && !out
                        .columns
                        .iter()
                        .any(|(tb, o, _)| *tb == t.name && *o == g.name)
            }) {
                out.columns
                    .push((t.name.clone(), g.name.clone(), c.name.clone()));
            }
        }
    }
    out
}
